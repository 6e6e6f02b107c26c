//! Crash test (issue: gateway, "Store"): a child process accepting messages is
//! killed with SIGKILL at random moments, 50 times; after each kill the store
//! opens and every message the child acknowledged is there exactly once.
//!
//! The child is this test binary itself, re-run with an environment variable
//! that turns `crash_writer_child` into the writer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use smsgate::store::{Accepted, IdempotencyKey, MessageFilter, Store};

const CHILD_ENV: &str = "SMSGATE_CRASH_WRITER_DIR";
const ROUNDS: usize = 50;

/// The writer: 8 concurrent tasks accept messages as fast as the group commit
/// allows and print `ack <body>` once each accept returned (durable).
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&PathBuf::from(dir), 8).unwrap();
        let prefix = format!(
            "{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = store.clone();
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let body = format!("{prefix}-{t}-{n}");
                    let m = store.new_outbound(
                        "",
                        "+15550000001",
                        &body,
                        1,
                        "gsm7",
                        false,
                        None,
                        Utc::now(),
                    );
                    let key = IdempotencyKey {
                        key: body.clone(),
                        fingerprint: body.clone(),
                    };
                    if let Ok(Accepted::New(_)) = store.accept(m, Some(key)).await {
                        println!("ack {body}");
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// A small deterministic PRNG (xorshift), so a failing round can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_message() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("smsgate-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut acked_total = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let acks = acks.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(body) = line.strip_prefix("ack ") {
                        acks.lock().unwrap().push(body.to_string());
                    }
                }
            })
        };
        // Kill at a random moment: sometimes while the store is still opening.
        std::thread::sleep(Duration::from_millis(30 + rng.next() % 400));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = acks.lock().unwrap().clone();
        acked_total += acked.len();

        let store = Store::open(&dir, 8)
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cursor = None;
        loop {
            let page = store
                .list(&MessageFilter::default(), cursor.as_deref(), 500)
                .unwrap();
            for m in &page.items {
                *seen.entry(m.body.clone()).or_default() += 1;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        for body in &acked {
            assert_eq!(
                seen.get(body),
                Some(&1),
                "round {round}: acknowledged {body} not there exactly once"
            );
        }
        drop(store);
    }
    eprintln!("{ROUNDS} kills, {acked_total} acknowledged messages, none lost or doubled");
    assert!(acked_total > 0, "the writer never acknowledged anything");
    let _ = std::fs::remove_dir_all(&dir);
}
