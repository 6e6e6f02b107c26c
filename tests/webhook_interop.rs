//! smsgate's webhook signatures verified by the Standard Webhooks reference
//! library for Python (PyPI `standardwebhooks`): the worker delivers events
//! over HTTP to a local receiver, which writes what it got (id, timestamp,
//! signature header, body) to a file that `tests/interop/standardwebhooks_verify.py`
//! checks with `Webhook(secret).verify(body, headers)` for each of two secrets.
//!
//! Needs `python3 -m pip install standardwebhooks==1.1.0`; with the `interop`
//! feature on, a missing package fails the test.
#![cfg(feature = "interop")]

#[path = "common/webhook_receiver.rs"]
mod receiver;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use smsgate::store::Store;
use smsgate::webhook::{Endpoint, HttpClient, Secret, SystemClock, Worker};

const INSTALL: &str = "python3 -m pip install standardwebhooks==1.1.0";
const SECRETS: [&str; 2] = [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_cm90YXRlZC1zZWNyZXQtZm9yLXNtc2dhdGUtdGVzdHM=",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_library_verifies_our_signatures() {
    let dir = std::env::temp_dir().join(format!("smsgate-swh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir.join("db"), 8).unwrap();
    let rx = receiver::Receiver::new(&SECRETS[..1], Arc::new(SystemClock));
    let addr = rx.serve(0).await;
    store
        .register_webhooks(&[("crm".into(), format!("http://{addr}/"), vec![])])
        .await
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let worker = Worker {
        store: store.clone(),
        endpoint: Arc::new(Endpoint {
            id: "crm".into(),
            url: format!("http://{addr}/"),
            secrets: SECRETS.iter().map(|s| Secret::parse(s).unwrap()).collect(),
            events: vec![],
            timeout: Duration::from_secs(5),
            foreign: None,
        }),
        transport: Arc::new(HttpClient::new()),
        clock: Arc::new(SystemClock),
        replies: None,
    };
    tokio::spawn(worker.run(stop_rx));
    // Bodies with what JSON escapes: quotes, non-ASCII, emoji, newlines.
    let bodies = [
        "C",
        "Grüße \"aus\" Köln",
        "👍 ok\nsee you",
        "Reply R to reschedule",
    ];
    for (i, body) in bodies.iter().cycle().take(20).enumerate() {
        store
            .emit(
                "message.received",
                json!({"id": format!("msg_{i}"), "body": body}),
            )
            .await
            .unwrap();
    }
    for _ in 0..500 {
        if rx.unique().len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = rx.unique();
    assert_eq!(got.len(), 20);
    let file = dir.join("deliveries.jsonl");
    let lines: Vec<String> = got
        .iter()
        .map(|r| {
            json!({"id": r.id, "timestamp": r.timestamp, "signature": r.signature, "body": r.body})
                .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/standardwebhooks_verify.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(&file)
        .args(SECRETS)
        .output()
        .unwrap_or_else(|e| panic!("python3 did not start ({e}); then: {INSTALL}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "standardwebhooks did not verify our signatures (is it installed? {INSTALL})\n{stdout}\n{stderr}"
    );
    assert_eq!(stdout.trim(), "verified 20");
    let _ = stop.send(true);
    let _ = std::fs::remove_dir_all(&dir);
}
