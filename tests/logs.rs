//! The daemon's logs as an operator reads them: the real binary with its
//! stderr on a pipe (as under a supervisor or `2> file`), a simulated modem,
//! and one `info` line per step in a message's life.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, http, wait_ready, wait_until, ChildDaemon};
use serde_json::{json, Value};
use smsgate::sim::{Personality, SimConfig, Simulator};

const TOKEN: &str = "logs-token-123";
const CONTACT: &str = "+15550300001";
const MASKED: &str = "contact=***0001";

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("smsgate-logs-{}-{name}", std::process::id()))
}

/// The `INFO` lines of the log that say `what` and carry every one of `fields`.
fn info_lines(log: &str, what: &str, fields: &[&str]) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" INFO ") && l.contains(what))
        .filter(|l| fields.iter().all(|f| l.contains(f)))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piped_logs_are_plain_and_tell_the_life_of_messages() {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp("modem.tty"));
    c.own_number = "+15550300000".into();
    c.status_report_delay = Duration::from_millis(50);
    c.noise_interval = Some(Duration::ZERO);
    let modem = Simulator::start(c).unwrap();
    let port = free_port();
    let db = temp("store");
    let _ = std::fs::remove_dir_all(&db);
    let config = temp("smsgate.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbind = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[[modem]]\nid = \"m1\"\nport = \"{}\"\n",
            db.display(),
            modem.link().display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["run", "--config"])
        .arg(&config)
        .env("SMSGATE_API_TOKEN", TOKEN)
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .env_remove("SMSGATE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr as it comes, so that the pipe never fills.
    let captured = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut stderr = child.stderr.take().unwrap();
    std::thread::spawn({
        let captured = captured.clone();
        move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                captured.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        }
    });
    let daemon = ChildDaemon(child);

    let sim = modem.clone();
    let log = tokio::task::spawn_blocking(move || {
        let log = || String::from_utf8_lossy(&captured.lock().unwrap()).into_owned();
        // Wait for a line with all of `fields`, then return it.
        let expect = |what: &str, fields: &[&str]| {
            let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                wait_until(Duration::from_secs(20), what, || {
                    info_lines(&log(), what, fields).into_iter().next()
                })
            }));
            found.unwrap_or_else(|_| panic!("no {what:?} line with {fields:?} in:\n{}", log()))
        };
        wait_ready(&addr);
        let post = |body: Value| {
            let (status, answer) = http("POST", &addr, "/v1/messages", Some(TOKEN), Some(&body));
            assert_eq!(status, 202, "{answer}");
            answer["id"].as_str().unwrap().to_string()
        };

        let first = post(json!({"to": CONTACT, "body": "Your table is ready"}));
        let id = format!("message_id={first}");
        expect("message sent", &[&id, "modem=m1", MASKED, "parts=1"]);
        expect("message delivered", &[&id, "modem=m1", MASKED]);

        // Scheduled far ahead: the opt-out below fails it.
        let waiting =
            post(json!({"to": CONTACT, "body": "See you", "send_at": "2999-01-01T00:00:00Z"}));
        sim.inject(CONTACT, "STOP").unwrap();
        let received = expect("message received", &["modem=m1", MASKED]);
        let stop_id = received
            .split_whitespace()
            .find_map(|f| f.strip_prefix("message_id="))
            .unwrap()
            .to_string();
        let by_stop = format!("message_id={stop_id}");
        expect(
            "opt-out",
            &[&by_stop, "modem=m1", MASKED, "source=sms", "keyword=stop"],
        );
        expect(
            "message failed",
            &[
                &format!("message_id={waiting}"),
                MASKED,
                "error=recipient_opted_out",
            ],
        );

        sim.inject(CONTACT, "START").unwrap();
        expect(
            "opt-in",
            &["modem=m1", MASKED, "source=sms", "keyword=start"],
        );
        log()
    })
    .await
    .unwrap();
    drop(daemon);
    modem.shutdown().await;

    assert!(!log.contains('\u{1b}'), "no ANSI escape on a pipe:\n{log}");
    // One line per step: the first message was delivered once.
    let delivered: Vec<_> = log
        .lines()
        .filter(|l| l.contains("message delivered"))
        .collect();
    assert!(!delivered.is_empty());
    let first_id = delivered[0]
        .split_whitespace()
        .find_map(|f| f.strip_prefix("message_id="))
        .unwrap();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("message delivered") && l.contains(first_id))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.contains(" opt-out ")).count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("5550300001"),
        "whole numbers stay out of info logs:\n{log}"
    );
}
