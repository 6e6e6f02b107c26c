//! The transport task against a scripted modem on a `tokio::io::duplex`:
//! URCs interleaved into responses, URCs with no command running, timeouts on
//! tokio's paused clock (ESC after a prompt), and a peer that disappears.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use smsgate::at::command::{Cmgl, Cmgs, Csq, Echo};
use smsgate::at::parse::MessageStatus;
use smsgate::at::{spawn, AtError, CmsError, TransportConfig, Urc};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

/// Everything the modem received, split into units (a command line ending in
/// CR, a PDU ending in Ctrl-Z, or a lone ESC).
type Log = Arc<Mutex<Vec<String>>>;

/// Runs a fake modem: for each unit the host writes, `reply` says what to
/// print (or nothing). Ends at EOF.
fn modem<F>(mut port: DuplexStream, mut reply: F) -> Log
where
    F: FnMut(&str) -> Option<Vec<u8>> + Send + 'static,
{
    let log: Log = Arc::default();
    let seen = log.clone();
    tokio::spawn(async move {
        let mut unit = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = port.read(&mut byte).await {
            if byte[0] == 0x1b {
                seen.lock().unwrap().push("<ESC>".into());
                continue;
            }
            if byte[0] != b'\r' && byte[0] != 0x1a {
                unit.push(byte[0]);
                continue;
            }
            let text = String::from_utf8_lossy(&unit).to_string();
            unit.clear();
            seen.lock().unwrap().push(text.clone());
            if let Some(bytes) = reply(&text) {
                if port.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    });
    log
}

fn log_of(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

const PDU_A: &str = "0791198948004544040C9119894882006200007050307040042206CF35689E9603";
const PDU_B: &str = "0791539111161616114F048123000000FF06D0B79BFE9E03";

#[tokio::test]
async fn urc_inside_cmgl_goes_to_the_channel() {
    let (host, dev) = tokio::io::duplex(4096);
    modem(dev, |cmd| {
        match cmd {
        "AT+CMGL=4" => Some(
            format!(
                "\r\n+CMGL: 1,1,,25\r\n{PDU_A}\r\n+CMTI: \"SM\",3\r\n+CMGL: 2,3,,16\r\n{PDU_B}\r\n\r\n^RSSI: 12\r\n\r\nOK\r\n"
            )
            .into_bytes(),
        ),
        _ => Some(b"\r\nERROR\r\n".to_vec()),
    }
    });
    let (client, mut urcs) = spawn(host, TransportConfig::default());
    let list = client.send(&Cmgl(MessageStatus::All)).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].message.pdu, PDU_A);
    assert_eq!(list[1].message.pdu, PDU_B);
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 3
        })
    );
    assert!(matches!(urcs.recv().await, Some(Urc::Signal(_))));
}

#[tokio::test]
async fn urc_right_behind_a_final_result_is_forwarded_without_waiting_for_more_bytes() {
    // The modem answers and, in the same write, announces a new SMS; then it
    // is silent. The URC must not wait in the buffer for the next command.
    let (host, dev) = tokio::io::duplex(4096);
    modem(dev, |cmd| match cmd {
        "AT+CMGD=1" => Some(b"\r\nOK\r\n\r\n+CMTI: \"SM\",2\r\n".to_vec()),
        _ => Some(b"\r\nERROR\r\n".to_vec()),
    });
    let (client, mut urcs) = spawn(host, TransportConfig::default());
    let reply = client
        .raw("AT+CMGD=1", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.result, smsgate::at::FinalResult::Ok);
    let urc = tokio::time::timeout(Duration::from_secs(2), urcs.recv())
        .await
        .expect("the URC stayed in the buffer");
    assert_eq!(
        urc,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 2
        })
    );
}

#[tokio::test]
async fn cmgs_two_phases_with_echo_and_urc() {
    let (host, dev) = tokio::io::duplex(4096);
    let pdu = [
        0x00u8, 0x01, 0x00, 0x0b, 0x91, 0x51, 0x55, 0x21, 0x43, 0x65, 0xf7, 0x00, 0x00, 0x00,
    ];
    let cmd = Cmgs::new(&pdu).unwrap();
    let hex = cmd.pdu_hex().to_string();
    let expected = hex.clone();
    let log = modem(dev, move |unit| {
        if unit == "AT+CMGS=13" {
            // Echo still on: the modem repeats the command, then prompts.
            Some(b"AT+CMGS=13\r\r\n> ".to_vec())
        } else if unit == expected {
            Some(
                format!("{expected}\r\n+CMTI: \"SM\",7\r\n\r\n+CMGS: 42\r\n\r\nOK\r\n")
                    .into_bytes(),
            )
        } else {
            Some(b"\r\nERROR\r\n".to_vec())
        }
    });
    let (client, mut urcs) = spawn(host, TransportConfig::default());
    assert_eq!(client.send(&cmd).await.unwrap(), 42);
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 7
        })
    );
    assert_eq!(log_of(&log), vec!["AT+CMGS=13".to_string(), hex]);
}

/// A modem that announces an SMS between the command and its prompt.
fn announcing_modem(dev: DuplexStream) -> Log {
    modem(dev, |unit| match unit {
        "AT+CMGS=3" => Some(b"\r\n+CMTI: \"SM\",4\r\n> ".to_vec()),
        // ESC: the send is dropped, the modem answers OK.
        "" => None,
        "AT" => Some(b"\r\nOK\r\n".to_vec()),
        _ => Some(b"\r\n+CMGS: 7\r\n\r\nOK\r\n".to_vec()),
    })
}

#[tokio::test]
async fn cmgs_gives_way_to_an_sms_announced_before_its_prompt() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = announcing_modem(dev);
    let (client, mut urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    let seen = client.announced();
    assert_eq!(seen, 0);
    match client.send_unless_announced(&cmd, seen).await {
        Err(AtError::GaveWay { command }) => assert_eq!(command, "AT+CMGS=3"),
        other => panic!("{other:?}"),
    }
    // ESC instead of the PDU: nothing was sent; then the link is resynced.
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "<ESC>", "AT"]);
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "SM".into(),
            index: 4
        })
    );
    assert_eq!(client.announced(), 1);
}

#[tokio::test]
async fn cmgs_goes_when_the_announced_sms_was_already_seen() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = announcing_modem(dev);
    let (client, mut urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    // The same modem, but the caller counts one announcement as read
    // (the first +CMTI arrives with this command's prompt: 1 > 0 gives way;
    // told it has seen 1, it sends).
    assert_eq!(client.send_unless_announced(&cmd, 1).await.unwrap(), 7);
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "00010000"]);
    assert!(urcs.recv().await.is_some());
    // Plain `send` never gives way.
    assert_eq!(client.send(&cmd).await.unwrap(), 7);
}

/// A modem that prompts at once and accepts any PDU.
fn prompting_modem(dev: DuplexStream) -> Log {
    modem(dev, |unit| match unit {
        "AT+CMGS=3" => Some(b"\r\n> ".to_vec()),
        "AT" => Some(b"\r\nOK\r\n".to_vec()),
        _ => Some(b"\r\n+CMGS: 9\r\n\r\nOK\r\n".to_vec()),
    })
}

/// The command line goes at once; the PDU waits at the prompt for the
/// caller's word, which comes after the prompt arrived; the wait is
/// reported with the response (kept out of the modem's latency).
#[tokio::test(start_paused = true)]
async fn the_payload_waits_at_the_prompt_for_go() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = prompting_modem(dev);
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    let (go, go_rx) = tokio::sync::oneshot::channel();
    let send = tokio::spawn({
        let client = client.clone();
        async move { client.send_when(&cmd, None, go_rx).await }
    });
    // The modem has the command (and has prompted) before the word is given.
    while log_of(&log).is_empty() {
        tokio::task::yield_now().await;
    }
    assert_eq!(log_of(&log), vec!["AT+CMGS=3"]);
    // The word comes 3 s (of the paused clock) after the prompt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    go.send(true).unwrap();
    let (mr, held) = send.await.unwrap().unwrap();
    assert_eq!(mr, 9);
    assert_eq!(held, Duration::from_secs(3));
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "00010000"]);
}

/// `false`, or a caller that dropped its word: ESC at the prompt, nothing
/// sent, the link resynced, and the next command runs as usual.
#[tokio::test]
async fn a_withheld_payload_is_never_written() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = prompting_modem(dev);
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    let (go, go_rx) = tokio::sync::oneshot::channel();
    go.send(false).unwrap();
    match client.send_when(&cmd, None, go_rx).await {
        Err(AtError::Withheld { command }) => assert_eq!(command, "AT+CMGS=3"),
        other => panic!("{other:?}"),
    }
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "<ESC>", "AT"]);
    let (go, go_rx) = tokio::sync::oneshot::channel::<bool>();
    drop(go);
    assert!(matches!(
        client.send_when(&cmd, None, go_rx).await,
        Err(AtError::Withheld { .. })
    ));
    assert_eq!(
        log_of(&log),
        vec!["AT+CMGS=3", "<ESC>", "AT", "AT+CMGS=3", "<ESC>", "AT"]
    );
    assert_eq!(client.send(&cmd).await.unwrap(), 9);
}

/// No word within the prompt's bound (a store that cannot flush): the
/// modem is not left at its prompt; ESC, nothing sent.
#[tokio::test(start_paused = true)]
async fn no_word_at_the_prompt_withholds_the_payload() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = prompting_modem(dev);
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    let (_go, go_rx) = tokio::sync::oneshot::channel::<bool>();
    let started = Instant::now();
    assert!(matches!(
        client.send_when(&cmd, None, go_rx).await,
        Err(AtError::Withheld { .. })
    ));
    assert!(started.elapsed() >= smsgate::at::command::PROMPT_TIMEOUT);
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "<ESC>", "AT"]);
}

/// An SMS announced before the prompt still makes the command give way,
/// whatever the word.
#[tokio::test]
async fn a_gated_send_gives_way_to_an_announced_sms() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = announcing_modem(dev);
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    let (go, go_rx) = tokio::sync::oneshot::channel();
    go.send(true).unwrap();
    assert!(matches!(
        client.send_when(&cmd, Some(0), go_rx).await,
        Err(AtError::GaveWay { .. })
    ));
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "<ESC>", "AT"]);
}

#[tokio::test]
async fn cms_error_instead_of_prompt() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = modem(dev, |_| Some(b"\r\n+CMS ERROR: 304\r\n".to_vec()));
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    match client.send(&cmd).await {
        Err(AtError::Cms(e)) => {
            assert_eq!(e, CmsError::InvalidPduModeParameter);
            assert!(!e.is_transient());
        }
        other => panic!("{other:?}"),
    }
    // The PDU was never written.
    assert_eq!(log_of(&log), vec!["AT+CMGS=3".to_string()]);
}

#[tokio::test]
async fn urcs_flow_with_no_command_running() {
    let (host, mut dev) = tokio::io::duplex(4096);
    let (_client, mut urcs) = spawn(host, TransportConfig::default());
    dev.write_all(b"\r\n+CMTI: \"ME\",12\r\n\r\n+CMT: ,16\r\n")
        .await
        .unwrap();
    dev.write_all(PDU_B.as_bytes()).await.unwrap();
    dev.write_all(b"\r\n\r\nRING\r\n").await.unwrap();
    assert_eq!(
        urcs.recv().await,
        Some(Urc::NewMessage {
            storage: "ME".into(),
            index: 12
        })
    );
    assert_eq!(
        urcs.recv().await,
        Some(Urc::Deliver {
            alpha: None,
            length: 16,
            pdu: PDU_B.into()
        })
    );
    assert_eq!(urcs.recv().await, Some(Urc::Ring));
}

#[tokio::test(start_paused = true)]
async fn timeout_then_bounded_resync() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = modem(dev, |_| None); // a modem that says nothing at all
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let start = Instant::now();
    match client.send(&Csq).await {
        Err(AtError::Timeout { command, timeout }) => {
            assert_eq!(command, "AT+CSQ");
            assert_eq!(timeout, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
    // 5 s for the command, then three 1 s AT probes, on the paused clock.
    assert_eq!(start.elapsed(), Duration::from_secs(8));
    assert_eq!(log_of(&log), vec!["AT+CSQ", "AT", "AT", "AT"]);
}

#[tokio::test(start_paused = true)]
async fn late_answer_is_not_taken_for_the_next_command() {
    let (host, dev) = tokio::io::duplex(4096);
    let mut csq_seen = false;
    let log = modem(dev, move |cmd| match cmd {
        // The first AT+CSQ is answered only after the next command is sent.
        "AT+CSQ" if !csq_seen => {
            csq_seen = true;
            None
        }
        "AT" => Some(b"\r\n+CSQ: 9,99\r\n\r\nOK\r\n\r\nOK\r\n".to_vec()),
        "AT+CSQ" => Some(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n".to_vec()),
        _ => Some(b"\r\nOK\r\n".to_vec()),
    });
    let (client, _urcs) = spawn(host, TransportConfig::default());
    assert!(matches!(
        client.send(&Csq).await,
        Err(AtError::Timeout { .. })
    ));
    // The resync's AT saw the stale CSQ lines and an OK; the second OK is a
    // stray, and the next command gets its own answer.
    client.send(&Echo(false)).await.unwrap();
    assert_eq!(client.send(&Csq).await.unwrap().rssi, 20);
    assert_eq!(log_of(&log), vec!["AT+CSQ", "AT", "ATE0", "AT+CSQ"]);
}

#[tokio::test(start_paused = true)]
async fn esc_after_prompt_timeout() {
    let (host, dev) = tokio::io::duplex(4096);
    // The modem prompts, takes the PDU, and never answers (lost Ctrl-Z).
    let log = modem(dev, |cmd| {
        if cmd.starts_with("AT+CMGS=") {
            Some(b"\r\n> ".to_vec())
        } else if cmd == "AT" {
            Some(b"\r\nOK\r\n".to_vec())
        } else {
            None
        }
    });
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    let start = Instant::now();
    match client.send(&cmd).await {
        Err(AtError::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_secs(120)),
        other => panic!("{other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_secs(120));
    assert_eq!(
        log_of(&log),
        vec!["AT+CMGS=3", "00010000", "<ESC>", "AT"],
        "ESC must close the prompt before the resync"
    );
}

#[tokio::test(start_paused = true)]
async fn no_prompt_sends_esc_and_reports_it() {
    let (host, dev) = tokio::io::duplex(4096);
    let log = modem(dev, |cmd| (cmd == "AT").then(|| b"\r\nOK\r\n".to_vec()));
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let cmd = Cmgs::new(&[0x00, 0x01, 0x00, 0x00]).unwrap();
    match client.send(&cmd).await {
        Err(e @ AtError::NoPrompt { .. }) => assert!(e.is_transient()),
        other => panic!("{other:?}"),
    }
    assert_eq!(log_of(&log), vec!["AT+CMGS=3", "<ESC>", "AT"]);
}

#[tokio::test]
async fn device_gone_when_the_peer_is_dropped() {
    let (host, dev) = tokio::io::duplex(4096);
    let (client, mut urcs) = spawn(host, TransportConfig::default());
    drop(dev);
    // The task notices EOF by itself: the URC channel closes...
    assert_eq!(urcs.recv().await, None);
    // ...and every command says "device gone", not "timeout".
    match client.send(&Csq).await {
        Err(AtError::DeviceGone { reason }) => assert!(reason.contains("end of file"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn device_gone_in_the_middle_of_a_command() {
    let (host, mut dev) = tokio::io::duplex(4096);
    let (client, _urcs) = spawn(host, TransportConfig::default());
    let pending = tokio::spawn(async move { client.send(&Csq).await });
    // Wait for the command to arrive, then pull the plug.
    let mut buf = [0u8; 16];
    let n = dev.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"AT+CSQ\r");
    dev.write_all(b"\r\n+CSQ: 1").await.unwrap();
    drop(dev);
    assert!(matches!(
        pending.await.unwrap(),
        Err(AtError::DeviceGone { .. })
    ));
}

#[tokio::test]
async fn full_urc_channel_drops_and_counts_instead_of_blocking() {
    let (host, dev) = tokio::io::duplex(1 << 16);
    modem(dev, |cmd| {
        (cmd == "AT").then(|| {
            let mut out = Vec::new();
            for i in 0..10 {
                out.extend_from_slice(format!("\r\n+CMTI: \"SM\",{i}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\nOK\r\n");
            out
        })
    });
    let config = TransportConfig {
        urc_capacity: 4,
        ..TransportConfig::default()
    };
    let (client, mut urcs) = spawn(host, config);
    client.resync().await.unwrap();
    assert_eq!(client.dropped_urcs(), 6);
    assert!(matches!(
        urcs.recv().await,
        Some(Urc::NewMessage { index: 0, .. })
    ));
}
