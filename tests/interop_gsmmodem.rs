//! A third-party client against the simulator: python-gsmmodem-new 0.13 (PyPI)
//! completes `connect()`, `sendSms()` (each SMS then shows up in
//! `GET /received`) and the receipt of injected SMS by `+CMTI`, for each
//! personality. The client side is `tests/interop/gsmmodem_client.py`.
//!
//! Needs python3 with `python3 -m pip install python-gsmmodem-new==0.13`
//! (`.ci/run` installs it); without it these tests fail, they never skip.

#![cfg(feature = "interop")]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "common/simulate_child.rs"]
mod simulate_child;
use simulate_child::{http_get, run_bounded, start_simulator, Finished, TempDir};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/gsmmodem_client.py"
);
const INSTALL: &str = "python3 -m pip install python-gsmmodem-new==0.13";
/// The whole Python client, connect to last injected SMS.
const CLIENT_WAIT: Duration = Duration::from_secs(45);
/// Each injected SMS, inside the client.
const INJECT_WAIT_S: u64 = 20;

const TO: &str = "+15550111";
/// GSM 7-bit, with characters of the default table's extension (`{`, `[`, `~`, `€`).
const GSM7: &str = "Hello from gsmmodem: @£$¥ {ok} [1] ~€ 100%";
/// UCS2: Cyrillic, a BMP symbol and an emoji (a surrogate pair in UTF-16).
const UNICODE: &str = "Привет ✓ 👋";

fn long_gsm7() -> String {
    // 200 septets: two concatenated parts.
    "Long message, part of a concatenated SMS. ".repeat(5)
}

fn long_ucs2() -> String {
    // 100 UCS2 characters: two concatenated parts.
    "Длинное сообщение. ".repeat(5) + "Конец сообщения, всё."
}

fn injected() -> Value {
    json!([
        {"from": "+15550100", "text": "Reply C to confirm"},
        {"from": "SIMNET", "text": "Ответ 👍 €5 [ok]"},
    ])
}

/// python3 runs and imports gsmmodem 0.13, or the test fails saying what to install.
fn require_gsmmodem() {
    let output = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m, gsmmodem.modem; \
             print(m.version('python-gsmmodem-new'))",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("the interop feature needs python3, which did not run ({e}); then: {INSTALL}")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the interop feature needs the Python package python-gsmmodem-new 0.13 \
         (module gsmmodem), which python3 cannot import; install it with: {INSTALL}\n{stderr}"
    );
    let version = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        version == "0.13" || version.starts_with("0.13."),
        "python-gsmmodem-new {version} is installed; this check is for 0.13: {INSTALL}"
    );
}

/// Run the client; its JSON result and its stderr (the library's debug log).
fn run_client(personality: &str, link: &PathBuf, control: &str, spec: &Value) -> (Value, String) {
    let mut command = Command::new("python3");
    command
        .arg(SCRIPT)
        .arg(link)
        .arg(control)
        .arg(spec.to_string());
    let Finished {
        status,
        stdout,
        stderr,
    } = run_bounded(command, CLIENT_WAIT, &format!("python3 ({INSTALL})"));
    let Some(status) = status else {
        panic!(
            "{personality}: the gsmmodem client did not finish within {CLIENT_WAIT:?}\n{stderr}"
        );
    };
    assert_ne!(
        status.code(),
        Some(3),
        "{personality}: python3 cannot import gsmmodem: {INSTALL}\n{stderr}"
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{personality}: client exited {status} without a JSON result ({e}): {stdout:?}\n{stderr}")
    });
    (result, stderr)
}

fn gsmmodem_against(personality: &str) {
    require_gsmmodem();
    let started = Instant::now();
    let dir = TempDir::new("interop-gsmmodem", personality);
    let simulator = start_simulator(personality, &dir);
    let (link, control) = (&simulator.link, simulator.control.as_str());

    let sent = [
        GSM7.to_string(),
        UNICODE.to_string(),
        long_gsm7(),
        long_ucs2(),
    ];
    let spec = json!({
        "to": TO,
        "send": sent,
        "inject": injected(),
        "timeout": INJECT_WAIT_S,
    });
    let (result, log) = run_client(personality, link, control, &spec);
    let context = || format!("{personality}: client result {result}\n--- gsmmodem log ---\n{log}");

    assert_eq!(result["connected"], true, "connect() failed: {}", context());
    assert_eq!(result["error"], Value::Null, "{}", context());
    assert_eq!(
        result["sent"].as_array().map(Vec::len),
        Some(sent.len()),
        "{}",
        context()
    );

    // Every SMS the library sent reached the network, text intact; the long
    // ones as concatenated parts.
    let received = http_get(control, "/received");
    let got: Vec<(&str, &str, u64)> = received
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["to"].as_str().unwrap(),
                m["text"].as_str().unwrap(),
                m["parts"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(&str, &str, u64)> = vec![
        (TO, GSM7, 1),
        (TO, UNICODE, 1),
        (TO, sent[2].as_str(), 2),
        (TO, sent[3].as_str(), 2),
    ];
    assert_eq!(got, want, "GET /received: {received}\n{}", context());

    // Each injected SMS came through +CMTI, AT+CMGR and the callback.
    let callback: Vec<(&str, &str)> = result["received"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    let injected = injected();
    let want: Vec<(&str, &str)> = injected
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["from"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(callback, want, "{}", context());
    eprintln!(
        "{personality}: gsmmodem interop ok in {:?}",
        started.elapsed()
    );
}

#[test]
fn gsmmodem_against_sim800() {
    gsmmodem_against("sim800");
}

#[test]
fn gsmmodem_against_ec25() {
    gsmmodem_against("ec25");
}

#[test]
fn gsmmodem_against_e3372() {
    gsmmodem_against("e3372");
}
