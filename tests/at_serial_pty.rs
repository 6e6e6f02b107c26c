//! The real serial path: a pty pair, the slave opened with tokio-serial through
//! `open_serial`, and a scripted modem answering on the master side from a
//! plain thread. Then the master is closed to check that a vanished device is
//! reported as such (EIO on the slave), not as a timeout.

#![cfg(unix)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use smsgate::at::command::{At, Cgsn, Csq, Echo};
use smsgate::at::{open_serial, spawn, AtError, TransportConfig, Urc};

/// A pty whose slave path can be opened like a modem's `/dev/ttyUSB2`. The
/// slave fd is kept open for the test's lifetime so the master never sees a
/// hangup before tokio-serial opens the path.
struct Pty {
    master: std::fs::File,
    _slave: OwnedFd,
    path: String,
}

fn pty() -> Pty {
    let pair = nix::pty::openpty(None, None).expect("openpty");
    let path = nix::unistd::ttyname(&pair.slave)
        .expect("ttyname")
        .to_string_lossy()
        .into_owned();
    Pty {
        master: std::fs::File::from(pair.master),
        _slave: pair.slave,
        path,
    }
}

/// Answers like a SIM800 with echo off; prints a +CMTI before answering CSQ.
fn scripted_modem(mut master: std::fs::File) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = master.read(&mut byte) {
            if byte[0] != b'\r' {
                line.push(byte[0]);
                continue;
            }
            let cmd = String::from_utf8_lossy(&line).to_string();
            line.clear();
            let reply: &[u8] = match cmd.as_str() {
                "AT" | "ATE0" => b"\r\nOK\r\n",
                "AT+CSQ" => b"\r\n+CMTI: \"SM\",5\r\n\r\n+CSQ: 21,99\r\n\r\nOK\r\n",
                "AT+CGSN" => b"\r\n862951034567890\r\n\r\nOK\r\n",
                "QUIT" => b"\r\nOK\r\n",
                _ => b"\r\nERROR\r\n",
            };
            if master.write_all(reply).is_err() || cmd == "QUIT" {
                break;
            }
            seen.push(cmd);
        }
        seen
    })
}

#[tokio::test]
async fn commands_over_a_real_serial_port() {
    let pty = pty();
    let port = open_serial(&pty.path, 115_200).expect("open the pty slave");
    let modem = scripted_modem(pty.master.try_clone().unwrap());
    let (client, mut urcs) = spawn(port, TransportConfig::default());

    client.send(&At).await.unwrap();
    client.send(&Echo(false)).await.unwrap();
    let q = client.send(&Csq).await.unwrap();
    assert_eq!((q.rssi, q.dbm()), (21, Some(-71)));
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 5
        })
    );
    assert_eq!(client.send(&Cgsn).await.unwrap(), "862951034567890");
    assert!(matches!(
        client.raw("AT+BOGUS", std::time::Duration::from_secs(1)).await,
        Ok(r) if r.clone().into_lines().is_err()
    ));

    // Stop the responder thread through the port itself.
    client
        .raw("QUIT", std::time::Duration::from_secs(1))
        .await
        .unwrap();
    let seen = tokio::task::spawn_blocking(move || modem.join().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, vec!["AT", "ATE0", "AT+CSQ", "AT+CGSN", "AT+BOGUS"]);
}

#[tokio::test]
async fn closing_the_master_is_device_gone() {
    let pty = pty();
    let port = open_serial(&pty.path, 115_200).expect("open the pty slave");
    let (client, mut urcs) = spawn(port, TransportConfig::default());
    let Pty { master, _slave, .. } = pty;
    drop(master);
    // The task sees EIO (or EOF) on the slave and stops by itself.
    assert_eq!(urcs.recv().await, None);
    match client.send(&At).await {
        Err(AtError::DeviceGone { .. }) => {}
        other => panic!("expected DeviceGone, got {other:?}"),
    }
}

#[tokio::test]
async fn opening_a_missing_port_fails_cleanly() {
    match open_serial("/dev/does-not-exist-smsgate", 115_200) {
        Err(AtError::DeviceGone { .. } | AtError::Open { .. }) => {}
        other => panic!("{other:?}"),
    }
}
