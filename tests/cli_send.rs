//! `smsgate send` as an operator runs it: the real binary against a daemon
//! in this process with a simulated modem.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{free_port, http, InProcessDaemon};
use serde_json::Value;
use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};

const TOKEN: &str = "cli-send-token";

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("smsgate-cli-send-{}-{name}", std::process::id()))
}

/// A daemon with one simulated modem `m1` that reports delivery.
async fn gateway(name: &str) -> (InProcessDaemon, SimHandle) {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp(&format!("{name}.tty")));
    c.own_number = "+15550400000".into();
    c.status_report_delay = Duration::from_millis(50);
    c.noise_interval = Some(Duration::ZERO);
    let sim = Simulator::start(c).unwrap();
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let daemon = InProcessDaemon::start(
        &format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[[modem]]\nid = \"m1\"\nport = \"{}\"\n[sms]\ndefault_country = \"US\"\n",
            db.display(),
            sim.link().display()
        ),
        TOKEN,
    )
    .await;
    daemon.wait_ready().await;
    (daemon, sim)
}

fn smsgate(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsgate"));
    command
        .arg("send")
        .args(args)
        .env("SMSGATE_API_TOKEN", TOKEN);
    command
}

/// Run `smsgate send ARGS` off the runtime's threads.
async fn send(args: &[&str]) -> Output {
    let mut command = smsgate(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_wait_prints_each_step_until_delivered() {
    let (daemon, sim) = gateway("wait").await;
    let out = send(&[
        "--api",
        &daemon.addr,
        "--to",
        "(555) 040-0001",
        "--text",
        "Your order shipped",
        "--wait",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let id = lines[0].split_whitespace().next().unwrap();
    assert!(id.starts_with("msg_"), "{stdout}");
    let steps: Vec<&str> = lines
        .iter()
        .map(|l| {
            assert!(l.starts_with(id), "every line names the message: {l}");
            l.split_whitespace().nth(1).unwrap()
        })
        .collect();
    assert_eq!(
        steps,
        ["queued", "sending", "sent", "delivered"],
        "{stdout}"
    );
    assert!(lines[1].ends_with("sending via m1"), "{stdout}");
    let m = common::message(&daemon.addr, TOKEN, id);
    assert_eq!(m["status"], "delivered");
    assert_eq!(m["to"], "+15550400001");
    sim.shutdown().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_at_is_answered_as_scheduled_with_its_category() {
    let (daemon, sim) = gateway("later").await;
    let out = send(&[
        "--api",
        &daemon.addr,
        "--to",
        "+15550400002",
        "--text",
        "Reminder",
        "--send-at",
        "10m",
        "--category",
        "transactional",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(accepted["status"], "scheduled", "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let m = common::message(&daemon.addr, TOKEN, id);
    let at = |key: &str| chrono::DateTime::parse_from_rfc3339(m[key].as_str().unwrap()).unwrap();
    // The CLI took its "now" before the gateway stamped the message.
    let ahead = at("not_before") - at("created_at");
    assert!(
        ahead <= chrono::Duration::minutes(10) && ahead > chrono::Duration::minutes(9),
        "{ahead:?}: {m}"
    );
    assert_eq!(m["category"], "transactional");

    let out = send(&[
        "--api",
        &daemon.addr,
        "--to",
        "+15550400002",
        "--text",
        "Reminder",
        "--send-at",
        "2999-01-31T09:00:00+01:00",
    ])
    .await;
    let accepted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(accepted["status"], "scheduled");
    let m = common::message(&daemon.addr, TOKEN, accepted["id"].as_str().unwrap());
    assert_eq!(m["not_before"], "2999-01-31T08:00:00Z", "{m}");

    // Marketing reaches the API's consent rule: no recorded opt-in here.
    let out = send(&[
        "--api",
        &daemon.addr,
        "--to",
        "+15550400002",
        "--text",
        "Sale!",
        "--category",
        "marketing",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("(consent_required)"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    sim.shutdown().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_byte_body_round_trips() {
    let (daemon, sim) = gateway("utf8").await;
    let body = "Grüße aus Köln 👋 — ünïcödé ✓ Привет 你好";
    let out = send(&[
        "--api",
        &daemon.addr,
        "--to",
        "+15550400003",
        "--text",
        body,
        "--wait",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = stdout.split_whitespace().next().unwrap();
    let m = common::message(&daemon.addr, TOKEN, id);
    assert_eq!(m["body"], body);
    assert_eq!(m["alphabet"], "ucs2");
    let got = sim.received();
    assert!(
        got.iter().any(|r| r.text == body),
        "the handset got it whole"
    );
    sim.shutdown().await;
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_message_that_is_cancelled_exits_1() {
    let (daemon, sim) = gateway("cancel").await;
    let mut child = smsgate(&[
        "--api",
        &daemon.addr,
        "--to",
        "+15550400004",
        "--text",
        "Later",
        "--send-at",
        "1h",
        "--wait",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let addr = daemon.addr.clone();
    let (code, stdout) = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        assert!(first.contains(" scheduled until "), "{first}");
        let id = first.split_whitespace().next().unwrap().to_string();
        let (status, answer) = http(
            "DELETE",
            &addr,
            &format!("/v1/messages/{id}"),
            Some(TOKEN),
            None,
        );
        assert!(status < 300, "{status} {answer}");
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        (status.code(), rest)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout.last().map(|l| l.split_whitespace().nth(1)),
        Some(Some("cancelled")),
        "{stdout:?}"
    );
    sim.shutdown().await;
    daemon.stop().await;
}

/// Bad input: one line on stderr, exit code 2, nothing sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_one_line_and_exit_code_2() {
    let (daemon, sim) = gateway("bad").await;
    let unused = format!("127.0.0.1:{}", free_port());
    let a = daemon.addr.as_str();
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "--api",
                a,
                "--to",
                "+15550400005",
                "--text",
                "x",
                "--send-at",
                "tomorrow",
            ],
            "--send-at \"tomorrow\"",
        ),
        (
            &[
                "--api",
                a,
                "--to",
                "+15550400005",
                "--text",
                "x",
                "--category",
                "promo",
            ],
            "--category \"promo\"",
        ),
        (
            &["--api", a, "--to", "12", "--text", "x"],
            "(invalid_number)",
        ),
        (
            &["--api", a, "--to", "+15550400005", "--text", " "],
            "(body_empty)",
        ),
        (
            &[
                "--api",
                a,
                "--to",
                "+15550400005",
                "--text",
                "x",
                "--token",
                "wrong",
            ],
            "HTTP 401",
        ),
        (
            &["--api", &unused, "--to", "+15550400005", "--text", "x"],
            "cannot reach the API",
        ),
        (
            &[
                "--api",
                "https://gw.lan",
                "--to",
                "+15550400005",
                "--text",
                "x",
            ],
            "plain HTTP",
        ),
    ];
    for (args, says) in cases {
        let out = send(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("smsgate: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let (_, list) = http("GET", a, "/v1/messages", Some(TOKEN), None);
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(0),
        "nothing was stored: {list}"
    );
    sim.shutdown().await;
    daemon.stop().await;
}

/// A server that cuts its chunks inside a character (HTTP chunks are byte
/// counts): the answer is still read whole, and printed as it was.
#[test]
fn an_answer_chunked_inside_a_character_is_read_whole() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Read the head and the body (its length is in the head).
        while !String::from_utf8_lossy(&request).contains("\"body\"") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0);
            request.extend_from_slice(&buf[..n]);
        }
        let answer = "{\"id\":\"msg_1\",\"status\":\"queued\",\"note\":\"Grüße 👋\"}".as_bytes();
        // Split inside "ü" (2 bytes) and inside "👋" (4 bytes).
        let u = answer.iter().position(|&b| b == 0xC3).unwrap() + 1;
        let wave = answer.iter().position(|&b| b == 0xF0).unwrap() + 2;
        let mut response = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for chunk in [&answer[..u], &answer[u..wave], &answer[wave..]] {
            response.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            response.extend_from_slice(chunk);
            response.extend_from_slice(b"\r\n");
        }
        response.extend_from_slice(b"0\r\n\r\n");
        stream.write_all(&response).unwrap();
        String::from_utf8(request).unwrap()
    });
    let out = smsgate(&["--api", &addr, "--to", "+15550400006", "--text", "Grüße 👋"])
        .output()
        .unwrap();
    let request = server.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "{\"id\":\"msg_1\",\"status\":\"queued\",\"note\":\"Grüße 👋\"}"
    );
    assert!(request.contains("\"body\":\"Grüße 👋\""), "{request}");
    assert!(request
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    assert!(request.contains(&format!("Bearer {TOKEN}")));
}
