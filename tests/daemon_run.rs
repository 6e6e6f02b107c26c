//! `smsgate run`, `check-config`, `send` and `demo` as a user runs them: the
//! real binary against a simulated modem, over HTTP, with SIGTERM.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, http, wait_ready, wait_until, ChildDaemon as Daemon};
use serde_json::{json, Value};
use smsgate::sim::{Fault, Personality, SimConfig, SimHandle, Simulator};

const TOKEN: &str = "test-token-123";

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-daemon-{}-{name}", std::process::id()))
}

fn sim(name: &str) -> SimHandle {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp(&format!("{name}.tty")));
    c.own_number = "+15550200000".into();
    c.status_report_delay = Duration::from_millis(50);
    c.noise_interval = Some(Duration::ZERO);
    Simulator::start(c).unwrap()
}

fn write_config(name: &str, port: u16, sim: &SimHandle) -> PathBuf {
    let db = temp(&format!("{name}.db"));
    let path = temp(&format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[api]\nbind = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[[modem]]\nid = \"m1\"\nport = \"{}\"\n[sms]\ndefault_country = \"US\"\n",
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&format!("127.0.0.1:{port}"));
    Daemon(child)
}

fn sigterm(d: &mut Daemon) -> (Option<i32>, Duration) {
    let started = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &d.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_until(Duration::from_secs(15), "exit after SIGTERM", || {
        d.0.try_wait().unwrap()
    });
    (status.code(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_send_deliver_reply_restart_and_stop_on_sigterm() {
    let modem = sim("run");
    modem.set_handset(smsgate::sim::HandsetScript {
        number: "+15550200001".into(),
        reply: "C".into(),
        delay: Duration::from_millis(200),
        ..Default::default()
    });
    let port = free_port();
    let config = write_config("run", port, &modem);
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = tokio::task::spawn_blocking({
        let config = config.clone();
        move || start(&config, port)
    })
    .await
    .unwrap();

    let id = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            // `smsgate send`, as an operator would.
            let out = Command::new(env!("CARGO_BIN_EXE_smsgate"))
                .args([
                    "send",
                    "--api",
                    &addr,
                    "--to",
                    "(555) 020-0001",
                    "--text",
                    "Reply C to confirm",
                ])
                .env("SMSGATE_API_TOKEN", TOKEN)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let accepted: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(
                accepted["to"], "+15550200001",
                "national input normalised with the default country"
            );
            let id = accepted["id"].as_str().unwrap().to_string();
            wait_until(Duration::from_secs(20), "delivered", || {
                (common::message(&addr, TOKEN, &id)["status"] == "delivered").then_some(())
            });
            wait_until(Duration::from_secs(20), "the reply in the thread", || {
                let (_, thread) = http(
                    "GET",
                    &addr,
                    "/v1/threads/%2B15550200001",
                    Some(TOKEN),
                    None,
                );
                let items = thread["items"].as_array()?.clone();
                items
                    .iter()
                    .any(|m| m["direction"] == "inbound" && m["body"] == "C")
                    .then_some(())
            });
            id
        }
    })
    .await
    .unwrap();

    let (code, took) = sigterm(&mut daemon);
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // Restart: the data is there.
    let mut daemon = tokio::task::spawn_blocking({
        let config = config.clone();
        move || start(&config, port)
    })
    .await
    .unwrap();
    let m = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || common::message(&addr, TOKEN, &id)
    })
    .await
    .unwrap();
    assert_eq!(m["status"], "delivered");
    assert_eq!(sigterm(&mut daemon).0, Some(0));
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_unanswered_cmgs_exits_in_time_and_the_message_is_unknown() {
    let modem = sim("inflight");
    let port = free_port();
    let config = write_config("inflight", port, &modem);
    let addr = format!("127.0.0.1:{port}");
    let mut daemon = tokio::task::spawn_blocking({
        let config = config.clone();
        move || start(&config, port)
    })
    .await
    .unwrap();
    // The firmware hangs: AT+CMGS is written and never answered.
    modem
        .fault(Fault::StopAnswering { duration: None })
        .unwrap();
    let id = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            let (status, accepted) = http(
                "POST",
                &addr,
                "/v1/messages",
                Some(TOKEN),
                Some(&json!({"to": "+15550200002", "body": "hello"})),
            );
            assert_eq!(status, 202);
            let id = accepted["id"].as_str().unwrap().to_string();
            wait_until(Duration::from_secs(10), "sending", || {
                (common::message(&addr, TOKEN, &id)["status"] == "sending").then_some(())
            });
            id
        }
    })
    .await
    .unwrap();
    let (code, took) = tokio::task::spawn_blocking(move || {
        let r = sigterm(&mut daemon);
        drop(daemon);
        r
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    modem.fault(Fault::Clear).unwrap();
    let mut daemon = tokio::task::spawn_blocking({
        let config = config.clone();
        move || start(&config, port)
    })
    .await
    .unwrap();
    let m = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || common::message(&addr, TOKEN, &id)
    })
    .await
    .unwrap();
    assert_eq!(m["status"], "unknown", "{m:#}");
    assert!(modem.received().is_empty(), "never resent silently");
    tokio::task::spawn_blocking(move || sigterm(&mut daemon))
        .await
        .unwrap();
    modem.shutdown().await;
}

#[test]
fn check_config_accepts_good_files_and_names_the_bad_key() {
    let good = temp("good.toml");
    std::fs::write(&good, "[api]\nbind = \"127.0.0.1:8080\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let bad = temp("bad.toml");
    std::fs::write(&bad, "[sms]\nmax_parts = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sms.max_parts"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_delivers_and_its_customers_answer() {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let demo = tokio::spawn(smsgate::demo::run(
        Some("127.0.0.1:0".into()),
        Some("127.0.0.1:0".parse().unwrap()),
        async move {
            let _ = stop_rx.await;
        },
        move |started, banner| {
            let _ = started_tx.send((started.api, banner));
        },
    ));
    let (api, banner) = started_rx.await.unwrap();
    assert!(banner.contains("curl"));
    let token = banner
        .lines()
        .find_map(|l| l.strip_prefix("export TOKEN="))
        .unwrap()
        .to_string();
    let addr = api.to_string();
    tokio::task::spawn_blocking(move || {
        wait_ready(&addr);
        let [ana, ben, chloe, dev] = &smsgate::demo::CUSTOMERS;
        let thread = |number: &str| {
            let path = format!("/v1/threads/{}?limit=100", number.replace('+', "%2B"));
            http("GET", &addr, &path, Some(&token), None).1
        };
        let outcome = |t: &serde_json::Value| t["thread"]["outcomes"][0]["name"].clone();
        // The demo reminds each customer by itself; they answer as scripted.
        let a = wait_until(Duration::from_secs(40), "Ana confirms", || {
            let t = thread(ana.number);
            (outcome(&t) == "appointment_confirmed").then_some(t)
        });
        assert_eq!(a["thread"]["state"], "closed");
        let b = wait_until(Duration::from_secs(40), "Ben books slot 2", || {
            let t = thread(ben.number);
            (outcome(&t) == "appointment_booked").then_some(t)
        });
        assert_eq!(b["thread"]["outcomes"][0]["value"], "Thu 14:00");
        wait_until(
            Duration::from_secs(40),
            "Chloe in the inbox, urgent",
            || {
                let (_, inbox) = http("GET", &addr, "/v1/inbox", Some(&token), None);
                (inbox["items"][0]["contact"] == chloe.number
                    && inbox["items"][0]["priority"] == "urgent")
                    .then_some(())
            },
        );
        wait_until(Duration::from_secs(40), "Dev opted out", || {
            let path = format!("/v1/contacts/{}/consent", dev.number.replace('+', "%2B"));
            let (_, consent) = http("GET", &addr, &path, Some(&token), None);
            (consent["status"] == "opted_out").then_some(())
        });
        let (status, summary) = http("GET", &addr, "/v1/metrics/summary", Some(&token), None);
        assert_eq!(status, 200, "{summary}");
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    demo.await.unwrap().unwrap();
}
