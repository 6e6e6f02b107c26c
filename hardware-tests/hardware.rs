//! Hardware tests: a real modem on a real network, for the field technician
//! (level 2 and 3 in TESTING.md). Built only with `--features hardware-tests`
//! (Cargo.toml `[[test]] required-features`), so plain `cargo test` never
//! compiles them; with the feature on, a missing variable FAILS the test and
//! names it (the feature is opt-in: asking for it and skipping would hide a
//! mistake).
//!
//! Each test drives the real code paths: `modem::probe::probe`, and
//! `daemon::run` with a configuration on the real port, spoken to over its
//! HTTP API. `hardware-tests/run.sh` runs them one by one and prints a table.
//!
//! | variable | |
//! |---|---|
//! | `SMSGATE_HW_PORT` | the modem's AT port (e.g. `/dev/smsgate/<serial>-at`) |
//! | `SMSGATE_HW_PEER` | a second phone's number (E.164), or this SIM's own number for a loop |
//! | `SMSGATE_HW_PIN` | the SIM PIN, if the SIM asks for one (optional) |
//! | `SMSGATE_HW_OWN_NUMBER` | this SIM's number; equal to the peer: loop mode, no human needed (optional) |
//! | `SMSGATE_HW_BAUD` | default 115200 |
//! | `SMSGATE_HW_WAIT` | seconds to wait for the network or a person, default 300 |
//! | `SMSGATE_HW_UNATTENDED` | `1`: what needs a person ends "manual" instead of waiting |
//! | `SMSGATE_HW_SIM_CONTROL` | dry run: the control address of `smsgate simulate`, whose scripted handset plays the peer and whose unplug fault plays the technician |
//! | `SMSGATE_HW_PORT2`, `SMSGATE_HW_OWN_NUMBER2` | level 3: a second modem (with `SMSGATE_HW_OWN_NUMBER`) |
//!
//! A test that needs a person and cannot have one prints
//! `SMSGATE_HW_RESULT manual: <why>` and returns; run.sh shows "manual", never
//! "pass".
#![cfg(feature = "hardware-tests")]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{http, wait_until};
use serde_json::{json, Value};
use smsgate::api::{ApiToken, Scope};
use smsgate::config::Config;

const TOKEN: &str = "hardware-test-token";

/// A required variable; its absence fails the test by name.
fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => panic!("{name} is not set (see TESTING.md, level 2: hardware tests)"),
    }
}

fn env_opt(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn wait_limit() -> Duration {
    let secs = env_opt("SMSGATE_HW_WAIT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

fn baud() -> u32 {
    env_opt("SMSGATE_HW_BAUD")
        .and_then(|s| s.parse().ok())
        .unwrap_or(115_200)
}

/// Who plays the peer: the simulator's handset, this SIM itself, or a person.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Peer {
    Simulated(String),
    Loop,
    Person,
}

fn peer_mode() -> Peer {
    if let Some(control) = env_opt("SMSGATE_HW_SIM_CONTROL") {
        return Peer::Simulated(control);
    }
    match env_opt("SMSGATE_HW_OWN_NUMBER") {
        Some(own) if own == env("SMSGATE_HW_PEER") => Peer::Loop,
        _ => Peer::Person,
    }
}

/// Say what the technician must do now (stderr: cargo shows it with --nocapture).
fn action(text: &str) {
    eprintln!("\n>>> ACTION: {text}\n");
}

/// A person is needed and none is there: say so and end the test ("manual").
fn manual(why: &str) -> bool {
    if env_opt("SMSGATE_HW_UNATTENDED").as_deref() == Some("1") {
        println!("SMSGATE_HW_RESULT manual: {why}");
        return true;
    }
    false
}

/// Before the text the peer answers: the simulator's handset is scripted to
/// reply `reply` (it answers texts that arrive after the script is set).
fn script_peer(reply: &str) {
    if let Peer::Simulated(control) = peer_mode() {
        let peer = env("SMSGATE_HW_PEER");
        let (status, body) = http(
            "POST",
            &control,
            "/handsets",
            None,
            Some(&json!({"number": peer, "reply": reply, "delay_ms": 500})),
        );
        assert!(status < 300, "simulator control: {status} {body}");
    }
}

/// After the text: the SIM texts `reply` to itself in a loop, or a person is
/// asked to. `false`: no person, the test ends "manual".
fn peer_replies(gw: &Gateway, reply: &str) -> bool {
    let peer = env("SMSGATE_HW_PEER");
    match peer_mode() {
        Peer::Simulated(_) => true,
        Peer::Loop => {
            gw.send(json!({"to": peer, "body": reply}));
            true
        }
        Peer::Person => {
            if manual(&format!("needs a person to reply {reply:?} from {peer}")) {
                return false;
            }
            action(&format!(
                "from the phone {peer}, reply to the text you just got with: {reply}"
            ));
            true
        }
    }
}

/// A daemon (`daemon::run`) on the real port(s), on its own runtime thread.
struct Gateway {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: std::path::PathBuf,
}

struct ModemUnderTest {
    id: &'static str,
    port: String,
    own_number: Option<String>,
}

impl Gateway {
    fn start(name: &str, modems: &[ModemUnderTest]) -> Gateway {
        let dir = std::env::temp_dir().join(format!("smsgate-hw-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut text = format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n",
            dir.join("db").display()
        );
        let pin = env_opt("SMSGATE_HW_PIN");
        for m in modems {
            text.push_str(&format!(
                "[[modem]]\nid = \"{}\"\nport = \"{}\"\nbaud = {}\n",
                m.id,
                m.port,
                baud()
            ));
            if let Some(pin) = &pin {
                text.push_str(&format!("pin = \"{pin}\"\n"));
            }
            if let Some(n) = &m.own_number {
                text.push_str(&format!("own_number = \"{n}\"\n"));
            }
        }
        let config = Config::from_toml(&text, std::iter::empty())
            .unwrap_or_else(|e| panic!("the test's configuration: {e}\n{text}"));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let tokens = vec![ApiToken::from_secret(
                "hardware-test",
                TOKEN,
                vec![Scope::Admin],
            )];
            let result = runtime.block_on(smsgate::daemon::run(
                config,
                tokens,
                async move {
                    let _ = stop_rx.await;
                },
                move |started| {
                    let _ = addr_tx.send(started.api.to_string());
                },
            ));
            if let Err(e) = result {
                eprintln!("daemon: {e}");
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the daemon did not start (see its error above)");
        let gw = Gateway {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            dir,
        };
        for m in modems {
            gw.wait_state(m.id, "ready", Duration::from_secs(120));
        }
        gw
    }

    fn modem(&self, id: &str) -> Value {
        http(
            "GET",
            &self.addr,
            &format!("/v1/modems/{id}"),
            Some(TOKEN),
            None,
        )
        .1
    }

    fn wait_state(&self, id: &str, state: &str, limit: Duration) {
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < limit {
            last = self.modem(id);
            if last["state"] == state {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("modem {id} not {state} after {limit:?}: {last}");
    }

    /// POST /v1/messages; returns (status, body).
    fn post(&self, body: Value) -> (u16, Value) {
        http("POST", &self.addr, "/v1/messages", Some(TOKEN), Some(&body))
    }

    /// POST /v1/messages, expecting 202; returns the id.
    fn send(&self, body: Value) -> String {
        let (status, accepted) = self.post(body);
        assert_eq!(status, 202, "{accepted}");
        accepted["id"].as_str().unwrap().to_string()
    }

    fn message(&self, id: &str) -> Value {
        http(
            "GET",
            &self.addr,
            &format!("/v1/messages/{id}"),
            Some(TOKEN),
            None,
        )
        .1
    }

    /// Wait for one of `states`; a failure on the way fails the test with its error.
    fn wait_status(&self, id: &str, states: &[&str], limit: Duration) -> Value {
        wait_until(limit, &format!("message {id} to be {states:?}"), || {
            let m = self.message(id);
            let status = m["status"].as_str().unwrap_or("").to_string();
            if states.contains(&status.as_str()) {
                return Some(m);
            }
            assert!(
                !matches!(
                    status.as_str(),
                    "failed" | "expired" | "unknown" | "cancelled"
                ),
                "message {id} ended {status}: {m:#}"
            );
            None
        })
    }

    /// The first inbound message from `contact` whose body satisfies `f`.
    fn wait_inbound(&self, contact: &str, limit: Duration, f: impl Fn(&str) -> bool) -> Value {
        let path = format!("/v1/threads/{}", contact.replace('+', "%2B"));
        wait_until(limit, &format!("a text from {contact}"), || {
            let (_, thread) = http("GET", &self.addr, &path, Some(TOKEN), None);
            thread["items"]
                .as_array()?
                .iter()
                .find(|m| m["direction"] == "inbound" && f(m["body"].as_str().unwrap_or("")))
                .cloned()
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn one_modem(name: &str) -> Gateway {
    let gw = Gateway::start(
        name,
        &[ModemUnderTest {
            id: "hw1",
            port: env("SMSGATE_HW_PORT"),
            own_number: env_opt("SMSGATE_HW_OWN_NUMBER"),
        }],
    );
    // Each test has a fresh store, but the modem's SMS storage may still hold
    // an earlier run's late STOP, swept in before "ready" and opting the peer
    // out here too. The test opts the peer in again, with evidence saying why.
    let peer = env("SMSGATE_HW_PEER");
    let (status, body) = http(
        "PUT",
        &gw.addr,
        &format!("/v1/contacts/{}/consent", peer.replace('+', "%2B")),
        Some(TOKEN),
        Some(&json!({
            "status": "opted_in",
            "source": "hardware_test",
            "evidence": "smsgate hardware test: the peer is the technician's own phone",
        })),
    );
    assert!(status < 300, "consent for the peer: {status} {body}");
    gw
}

fn stamp() -> String {
    chrono::Utc::now().format("%H:%M:%S").to_string()
}

#[test]
fn probe() {
    let port = env("SMSGATE_HW_PORT");
    let pin = env_opt("SMSGATE_HW_PIN");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(smsgate::modem::probe::probe(&port, baud(), pin.as_deref()));
    println!(
        "SMSGATE_HW_INFO model={} imei={} operator={} signal_dbm={}",
        report.identity.model.as_deref().unwrap_or("?"),
        report.identity.imei.as_deref().unwrap_or("?"),
        report.operator.as_deref().unwrap_or("?"),
        report
            .signal_dbm
            .map(|d| d.to_string())
            .unwrap_or("?".into()),
    );
    assert!(
        report.responding,
        "{port} does not answer AT: {:?}",
        report.diagnosis
    );
    assert!(report.diagnosis.is_empty(), "{:?}", report.diagnosis);
    assert!(report.pdu_mode, "PDU mode refused");
}

#[test]
fn send_to_peer() {
    let peer = env("SMSGATE_HW_PEER");
    let gw = one_modem("send");
    let id = gw.send(json!({"to": peer, "body": format!("smsgate hardware test: send ({})", stamp()), "status_report": false}));
    let m = gw.wait_status(&id, &["sent", "delivered"], wait_limit());
    assert_eq!(m["modem"], "hw1");
}

#[test]
fn receive_from_peer() {
    let peer = env("SMSGATE_HW_PEER");
    let gw = one_modem("receive");
    let reply = format!("reply {}", stamp());
    script_peer(&reply);
    let id = gw.send(json!({"to": peer, "body": "smsgate hardware test: please reply to this text", "status_report": false}));
    gw.wait_status(&id, &["sent", "delivered"], wait_limit());
    if !peer_replies(&gw, &reply) {
        return;
    }
    let any_reply = peer_mode() == Peer::Person;
    let inbound = gw.wait_inbound(&peer, wait_limit(), |body| any_reply || body == reply);
    println!("received: {}", inbound["body"]);
}

#[test]
fn delivery_report() {
    let peer = env("SMSGATE_HW_PEER");
    let gw = one_modem("report");
    let id = gw.send(json!({"to": peer, "body": format!("smsgate hardware test: delivery report ({})", stamp()), "status_report": true}));
    let m = gw.wait_status(&id, &["delivered"], wait_limit());
    println!("delivered: {}", m["history"]);
}

#[test]
fn multipart_with_emoji() {
    let peer = env("SMSGATE_HW_PEER");
    let gw = one_modem("multipart");
    // UCS-2 (the emoji is outside GSM 7-bit, 23.038 §6.2.3): 67 characters a
    // part with the concatenation header, so this is three parts.
    let body = format!(
        "smsgate hardware test {} \u{1F44D}: {}",
        stamp(),
        "a long message in several parts, joined again by the phone. ".repeat(2)
    );
    let id = gw.send(json!({"to": peer, "body": body, "status_report": true}));
    let m = gw.wait_status(&id, &["sent", "delivered"], wait_limit());
    let parts = m["parts"].as_u64().unwrap_or(0);
    assert!(parts >= 2, "{parts} parts: {m:#}");
    match peer_mode() {
        Peer::Simulated(control) => {
            let received = wait_until(
                Duration::from_secs(30),
                "the network to join the parts",
                || {
                    let (_, list) = http("GET", &control, "/received", None, None);
                    list.as_array()?
                        .iter()
                        .find(|r| r["text"] == body.as_str())
                        .cloned()
                },
            );
            assert_eq!(received["parts"].as_u64(), Some(parts));
        }
        Peer::Loop => {
            let inbound = gw.wait_inbound(&peer, wait_limit(), |b| b == body);
            println!(
                "joined again: {} characters",
                inbound["body"].as_str().unwrap_or("").chars().count()
            );
        }
        Peer::Person => {
            // The gateway side is checked (every part accepted); whether the
            // phone shows one message is for the technician's eyes.
            println!("check on {peer}: one message ending in a thumbs-up, {parts} parts");
        }
    }
}

#[test]
fn stop_round_trip() {
    let peer = env("SMSGATE_HW_PEER");
    let gw = one_modem("stop");
    script_peer("STOP");
    let id = gw.send(json!({"to": peer, "body": "smsgate hardware test: reply STOP to this text", "status_report": false}));
    gw.wait_status(&id, &["sent", "delivered"], wait_limit());
    if !peer_replies(&gw, "STOP") {
        return;
    }
    gw.wait_inbound(&peer, wait_limit(), |b| {
        b.trim().eq_ignore_ascii_case("stop")
    });
    // The opt-out holds: the next text to the peer is refused.
    let refused = wait_until(
        Duration::from_secs(30),
        "the opt-out to take effect",
        || {
            let (status, body) = gw.post(json!({"to": peer, "body": "after STOP"}));
            (status == 409).then_some(body)
        },
    );
    println!("after STOP: 409 {}", refused["code"]);
    // The scripted handset answers everything, the opt-out confirmation
    // too: back to a harmless reply for whatever runs next (a STOP already
    // on its way is swept in by the next test's gateway, which opts the
    // peer in again, see one_modem).
    script_peer("OK");
}

#[test]
fn unplug_and_replug() {
    let peer = env("SMSGATE_HW_PEER");
    let gw = one_modem("replug");
    match peer_mode() {
        Peer::Simulated(control) => {
            let (status, body) = http(
                "POST",
                &control,
                "/faults",
                None,
                Some(&json!({"kind": "unplug", "duration_ms": 3000})),
            );
            assert!(status < 300, "simulator control: {status} {body}");
        }
        _ => {
            if manual("needs a person to unplug and replug the modem") {
                return;
            }
            action("unplug the modem now");
        }
    }
    gw.wait_state("hw1", "offline", Duration::from_secs(120));
    println!("offline: {}", gw.modem("hw1")["reason"]);
    if !matches!(peer_mode(), Peer::Simulated(_)) {
        action("plug it back in");
    }
    gw.wait_state("hw1", "ready", Duration::from_secs(180));
    let id = gw.send(json!({"to": peer, "body": format!("smsgate hardware test: after replug ({})", stamp()), "status_report": false}));
    gw.wait_status(&id, &["sent", "delivered"], wait_limit());
}

/// Level 3: two modems that text each other; the sticky sender answers from
/// the modem the contact last talked to.
#[test]
fn two_modems() {
    let number1 = env("SMSGATE_HW_OWN_NUMBER");
    let number2 = env("SMSGATE_HW_OWN_NUMBER2");
    let gw = Gateway::start(
        "two",
        &[
            ModemUnderTest {
                id: "hw1",
                port: env("SMSGATE_HW_PORT"),
                own_number: Some(number1.clone()),
            },
            ModemUnderTest {
                id: "hw2",
                port: env("SMSGATE_HW_PORT2"),
                own_number: Some(number2.clone()),
            },
        ],
    );
    // hw1 -> hw2: received by hw2, from number1.
    let text = format!("smsgate hardware test: cross ({})", stamp());
    let id = gw.send(json!({"to": number2, "body": text, "modem": "hw1", "status_report": false}));
    gw.wait_status(&id, &["sent", "delivered"], wait_limit());
    let inbound = gw.wait_inbound(&number1, wait_limit(), |b| b == text);
    assert_eq!(inbound["modem"], "hw2", "{inbound:#}");
    // number1 last talked to hw2: a reply with no modem named leaves from hw2.
    let id = gw.send(json!({"to": number1, "body": "smsgate hardware test: sticky reply", "status_report": false}));
    let m = gw.wait_status(&id, &["sent", "delivered"], wait_limit());
    assert_eq!(m["modem"], "hw2", "sticky sender: {m:#}");
    gw.wait_inbound(&number2, wait_limit(), |b| {
        b == "smsgate hardware test: sticky reply"
    });
}
