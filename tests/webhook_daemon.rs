//! Webhooks from the real binary (`smsgate run` with a simulated modem): a
//! SIGKILL while deliveries wait for a receiver that is down loses nothing and
//! keeps their event ids; a receiver's `{"reply": ...}` is texted back.

mod common;
#[path = "common/webhook_receiver.rs"]
mod receiver;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{free_port, http, wait_ready, wait_until, ChildDaemon as Daemon};
use receiver::Receiver;
use serde_json::Value;
use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};
use smsgate::webhook::SystemClock;

const TOKEN: &str = "test-token-webhook";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "smsgate-webhook-daemon-{}-{name}",
        std::process::id()
    ))
}

fn sim(name: &str) -> SimHandle {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp(&format!("{name}.tty")));
    c.own_number = "+15550200000".into();
    c.status_report_delay = Duration::from_millis(50);
    c.noise_interval = Some(Duration::ZERO);
    Simulator::start(c).unwrap()
}

fn write_config(name: &str, port: u16, sim: &SimHandle, hook: &str) -> PathBuf {
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let path = temp(&format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[api]\nbind = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
             [[modem]]\nid = \"m1\"\nport = \"{}\"\n[sms]\ndefault_country = \"US\"\n\
             [[webhook]]\nid = \"crm\"\nurl = \"{hook}\"\nsecrets = [\"{SECRET}\"]\ntimeout = \"2s\"\n",
            db.display(),
            sim.link().display()
        ),
    )
    .unwrap();
    path
}

fn start(config: &PathBuf, port: u16) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["run", "--config"])
        .arg(config)
        .env("SMSGATE_API_TOKEN", TOKEN)
        .env("RUST_LOG", "smsgate=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(config.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    wait_ready(&format!("127.0.0.1:{port}"));
    daemon
}

fn get(addr: &str, path: &str) -> Value {
    http("GET", addr, path, Some(TOKEN), None).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_deliveries_pending_then_restart_delivers_them_with_the_same_ids() {
    let modem = sim("kill");
    let api_port = free_port();
    // Nothing listens here until after the kill: every attempt fails.
    let hook_port = free_port();
    let config = write_config(
        "kill",
        api_port,
        &modem,
        &format!("http://127.0.0.1:{hook_port}/hook"),
    );
    let addr = format!("127.0.0.1:{api_port}");
    let (daemon, pending) = tokio::task::spawn_blocking({
        let (config, addr, modem) = (config.clone(), addr.clone(), modem.clone());
        move || {
            let daemon = start(&config, api_port);
            modem.inject("+15550200009", "Is my order ready?").unwrap();
            let pending = wait_until(
                Duration::from_secs(20),
                "a failed message.received delivery",
                || {
                    let page = get(&addr, "/v1/webhooks/deliveries?status=failed&endpoint=crm");
                    let items = page["items"].as_array()?.clone();
                    items
                        .iter()
                        .any(|d| d["event_type"] == "message.received")
                        .then_some(items)
                },
            );
            (daemon, pending)
        }
    })
    .await
    .unwrap();
    let hooks = get(&addr, "/v1/webhooks");
    assert!(
        hooks["items"][0]["last_failure"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{hooks}"
    );
    let mut daemon = daemon;
    daemon.0.kill().unwrap(); // SIGKILL
    daemon.0.wait().unwrap();
    let ids: Vec<String> = pending
        .iter()
        .map(|d| d["event_id"].as_str().unwrap().to_string())
        .collect();

    let rx = Receiver::new(&[SECRET], Arc::new(SystemClock));
    rx.serve(hook_port).await;
    let _daemon = tokio::task::spawn_blocking(move || start(&config, api_port))
        .await
        .unwrap();
    let got = tokio::task::spawn_blocking({
        let rx = rx.clone();
        let ids = ids.clone();
        move || {
            wait_until(
                Duration::from_secs(30),
                "the pending events after the restart",
                || {
                    let got = rx.unique();
                    ids.iter()
                        .all(|id| got.iter().any(|r| &r.id == id))
                        .then_some(got)
                },
            )
        }
    })
    .await
    .unwrap();
    assert!(rx.rejected.lock().unwrap().is_empty());
    let inbound = got
        .iter()
        .find(|r| r.event["type"] == "message.received")
        .unwrap();
    assert_eq!(inbound.event["data"]["body"], "Is my order ready?");
    assert_eq!(inbound.event["data"]["contact"], "+15550200009");
    assert!(
        ids.contains(&inbound.id),
        "the same event id as before the kill"
    );
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_in_the_answer_is_texted_to_the_sender() {
    let modem = sim("reply");
    let rx = Receiver::new(&[SECRET], Arc::new(SystemClock));
    rx.script(|r, _| {
        if r.event["type"] == "message.received" {
            (200, r#"{"reply": "Thanks!"}"#.into(), vec![])
        } else {
            (204, String::new(), vec![])
        }
    });
    let hook = rx.serve(0).await;
    let api_port = free_port();
    let config = write_config("reply", api_port, &modem, &format!("http://{hook}/hook"));
    let addr = format!("127.0.0.1:{api_port}");
    let _daemon = tokio::task::spawn_blocking({
        let (modem, addr) = (modem.clone(), addr.clone());
        move || {
            let daemon = start(&config, api_port);
            modem
                .inject("+15550200008", "Hello, anyone there?")
                .unwrap();
            wait_until(Duration::from_secs(20), "the reply at the network", || {
                modem
                    .received()
                    .iter()
                    .any(|m| m.to == "+15550200008" && m.text == "Thanks!")
                    .then_some(())
            });
            let thread = get(&addr, "/v1/threads/%2B15550200008");
            let reply = thread["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["direction"] == "outbound")
                .cloned()
                .unwrap();
            assert_eq!(reply["body"], "Thanks!");
            assert!(reply["idempotency_key"]
                .as_str()
                .unwrap()
                .starts_with("webhook:crm:evt_"));
            daemon
        }
    })
    .await
    .unwrap();
    assert_eq!(modem.received().len(), 1, "one reply");
    modem.shutdown().await;
}
