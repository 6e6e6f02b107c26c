//! `smsgate simulate` as a child process: its one stdout line, then the JSON
//! control API over HTTP on 127.0.0.1 and the modem on its link.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use smsgate::pdu::{self, hex, Address, SubmitOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_serial::SerialStream;

const WAIT: Duration = Duration::from_secs(10);

/// Kills the child even when an assertion fails.
struct Simulate {
    child: Child,
    link: std::path::PathBuf,
    control: String,
}

impl Drop for Simulate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.link);
    }
}

fn start(personality: &str) -> Simulate {
    let link = std::env::temp_dir().join(format!(
        "smsgate-simulate-{}-{personality}",
        std::process::id()
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["simulate", "--personality", personality, "--link"])
        .arg(&link)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut sim = Simulate {
        child,
        link: link.clone(),
        control: String::new(),
    };
    let line = rx
        .recv_timeout(WAIT)
        .expect("smsgate simulate printed its line");
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["link"], link.to_string_lossy().as_ref());
    sim.control = ready["control"].as_str().unwrap().to_string();
    assert!(sim.control.starts_with("127.0.0.1:"), "{line}");
    sim
}

/// One HTTP/1.1 request; returns the status and the body.
async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .unwrap();
        let mut response = Vec::new();
        AsyncReadExt::read_to_end(&mut stream, &mut response)
            .await
            .unwrap();
        String::from_utf8(response).unwrap()
    };
    let response = timeout(WAIT, exchange).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn read_until(port: &mut SerialStream, needle: &str) -> String {
    let mut seen = Vec::new();
    timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let mut buf = [0u8; 512];
            let n = AsyncReadExt::read(port, &mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)));
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn control_api_injects_and_lists_received() {
    let sim = start("ec25");
    let control = sim.control.clone();
    let mut port =
        SerialStream::open(&tokio_serial::new(sim.link.to_string_lossy(), 115200)).unwrap();

    // Inbound: POST /inject -> +CMTI on the port.
    let (status, body) = http(
        &control,
        "POST",
        "/inject",
        r#"{"from": "+15550100", "text": "C"}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (202, r#"{"parts":1}"#));
    read_until(&mut port, "+CMTI: \"ME\",0\r\n").await;

    // Outbound: AT+CMGS -> GET /received.
    AsyncWriteExt::write_all(&mut port, b"ATE0\r")
        .await
        .unwrap();
    read_until(&mut port, "OK\r\n").await;
    let message = pdu::encode_submit(
        &Address::parse_number("+15550111").unwrap(),
        "Reply C to confirm",
        &SubmitOptions {
            status_report: true,
            ..SubmitOptions::default()
        },
    )
    .unwrap();
    let part = &message.parts[0];
    let command = format!("AT+CMGS={}\r", part.tpdu_length);
    AsyncWriteExt::write_all(&mut port, command.as_bytes())
        .await
        .unwrap();
    read_until(&mut port, "> ").await;
    let hex = format!("{}\x1a", hex::encode(&part.pdu));
    AsyncWriteExt::write_all(&mut port, hex.as_bytes())
        .await
        .unwrap();
    read_until(&mut port, "+CMGS: 1\r\n\r\nOK\r\n").await;
    let (status, body) = http(&control, "GET", "/received", "").await;
    assert_eq!(status, 200);
    let received: serde_json::Value = serde_json::from_str(&body).unwrap();
    let first = &received[0];
    assert_eq!(first["to"], "+15550111");
    assert_eq!(first["text"], "Reply C to confirm");
    assert_eq!(first["parts"], 1);
    assert_eq!(first["status_report_requested"], true);
    assert!(first["received_at"].is_string());

    // Handsets and faults take JSON; bad JSON is a one-line 400.
    let (status, _) = http(
        &control,
        "POST",
        "/handsets",
        r#"{"number": "+15550111", "reply": "C", "delay_ms": 10}"#,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = http(
        &control,
        "POST",
        "/faults",
        r#"{"kind": "cms_error", "code": 500, "count": 1}"#,
    )
    .await;
    assert_eq!(status, 204);
    for (path, body) in [
        ("/inject", "{not json"),
        ("/inject", r#"{"from": "", "text": "x"}"#),
        ("/faults", r#"{"kind": "melt"}"#),
        ("/handsets", r#"{"number": 5}"#),
    ] {
        let (status, reply) = http(&control, "POST", path, body).await;
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert!(!reply.trim().contains('\n'), "{reply}");
        assert!(reply.contains("\"error\""), "{reply}");
    }
}

#[test]
fn non_loopback_control_address_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args([
            "simulate",
            "--link",
            "/tmp/smsgate-never",
            "--control",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
    assert!(output.stdout.is_empty());
}
