//! The official Twilio helper library for Python (PyPI `twilio`) as an app
//! would use it, against the daemon's Twilio-compatible API and a simulated
//! modem: `tests/interop/twilio_client.py` creates, fetches, lists (paging
//! over 120 messages), cancels and deletes messages, gets `TwilioRestException`
//! 21610 for a recipient who sent STOP, validates every status callback (each
//! status change: queued, sending, sent, delivered; scheduled, canceled) and
//! the incoming-SMS request with `RequestValidator`, and answers the incoming
//! SMS with `MessagingResponse` TwiML, which the customer receives.
//!
//! The client is pointed at the gateway with `client.api.base_url`.
//! Needs `python3 -m pip install twilio==9.13.0` (`.ci/run` installs it); with the
//! `interop` feature on, a missing package fails the test.
#![cfg(feature = "interop")]

mod common;
#[path = "common/simulate_child.rs"]
mod simulate_child;

use std::process::Command;
use std::time::Duration;

use common::{free_port, wait_until};
use serde_json::Value;
use simulate_child::run_bounded;
use smsgate::sim::{Personality, SimConfig, Simulator};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/twilio_client.py"
);
const INSTALL: &str = "python3 -m pip install twilio==9.13.0";
const SID: &str = "AC5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";
const TOKEN: &str = "interop-auth-token";
const ADMIN: &str = "interop-admin";
const OWN: &str = "+15550600000";
const STOPPED: &str = "+15550600099";
const CUSTOMER: &str = "+15550600050";

fn require_twilio() {
    let output = Command::new("python3")
        .args([
            "-c",
            "import twilio.rest, twilio.request_validator; print(twilio.__version__)",
        ])
        .output()
        .unwrap_or_else(|e| panic!("python3 does not run ({e}); install it and {INSTALL}"));
    assert!(
        output.status.success(),
        "the twilio package is missing: {INSTALL}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "smsgate-twilio-interop-{}-{name}",
        std::process::id()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_twilio_client_and_validator_work_against_the_gateway() {
    require_twilio();
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp("tty"));
    c.own_number = OWN.into();
    c.status_report_delay = Duration::from_millis(30);
    c.noise_interval = Some(Duration::ZERO);
    let modem = Simulator::start(c).unwrap();
    let db = temp("db");
    let _ = std::fs::remove_dir_all(&db);
    let app_port = free_port();
    let digest = smsgate::pdu::hex::encode(&smsgate::api::auth::digest(TOKEN)).to_lowercase();
    let config = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 16\n[sms]\ndefault_country = \"US\"\n\
         [[modem]]\nid = \"m1\"\nport = \"{}\"\n\
         [[compat.twilio]]\naccount_sid = \"{SID}\"\nauth_token_sha256 = \"{digest}\"\nsigning_token = \"{TOKEN}\"\n\
         [[compat.twilio.number]]\nnumber = \"{OWN}\"\nsms_url = \"http://127.0.0.1:{app_port}/sms\"\n",
        db.display(),
        modem.link().display(),
    );
    let gw = common::InProcessDaemon::start(&config, ADMIN).await;
    gw.wait_ready().await;
    let addr = gw.addr.clone();
    let m = modem.clone();
    let finished = tokio::task::spawn_blocking(move || {
        // A recipient who texted STOP, and whose opt-out is recorded.
        m.inject(STOPPED, "STOP").unwrap();
        wait_until(Duration::from_secs(20), "the opt-out", || {
            let path = format!("/v1/contacts/{}/consent", STOPPED.replace('+', "%2B"));
            let (_, v) = common::http("GET", &addr, &path, Some(ADMIN), None);
            (v["status"] == "opted_out").then_some(())
        });
        let mut command = Command::new("python3");
        command.args([
            SCRIPT,
            &format!("http://{addr}"),
            SID,
            TOKEN,
            OWN,
            &app_port.to_string(),
            STOPPED,
            CUSTOMER,
        ]);
        // The customer texts in once the Python app accepts connections.
        let injector = {
            let m = m.clone();
            std::thread::spawn(move || {
                wait_until(Duration::from_secs(60), "the Python app", || {
                    std::net::TcpStream::connect(("127.0.0.1", app_port)).ok()
                });
                m.inject(CUSTOMER, "When do you open?").unwrap();
            })
        };
        let finished = run_bounded(
            command,
            Duration::from_secs(240),
            "python3 twilio_client.py",
        );
        let _ = injector.join();
        finished
    })
    .await
    .unwrap();
    assert!(
        finished.status.is_some_and(|s| s.success()),
        "the Twilio client failed:\n{}\n{}",
        finished.stdout,
        finished.stderr
    );
    let summary: Value = finished
        .stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary:\n{}", finished.stdout));
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(summary["listed"].as_u64().unwrap() >= 121, "{summary}");
    assert_eq!(
        summary["callbacks"],
        serde_json::json!(["queued", "sending", "sent", "delivered"])
    );
    assert_eq!(
        summary["canceled_callbacks"],
        serde_json::json!(["scheduled", "canceled"])
    );
    assert_eq!(summary["incoming"], "When do you open?");
    // The TwiML reply reached the customer.
    let reply = summary["reply"].as_str().unwrap().to_string();
    let m = modem.clone();
    tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(20), "the TwiML reply", || {
            m.received()
                .into_iter()
                .find(|r| r.to == CUSTOMER && r.text == reply)
        })
    })
    .await
    .unwrap();
    eprintln!(
        "twilio {} against the gateway: {summary}",
        summary["library"]
    );
    gw.stop().await;
    modem.shutdown().await;
    let _ = std::fs::remove_dir_all(&db);
}
