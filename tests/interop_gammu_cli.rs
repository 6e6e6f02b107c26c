//! gammu's command line (Debian package `gammu`, 1.42 on bookworm) against the
//! simulator, for every personality: `gammu identify`, `gammu sendsms TEXT`
//! (each text then shows up in the control API's `GET /received`) and
//! `gammu getallsms` (after `POST /inject`, gammu lists the injected SMS).
//! gammu opens the pty itself, configured by a gammurc with
//! `connection = at`; its protocol log is printed when a check fails.
//!
//! gammu's init probes that the personalities answer with an error, as the
//! real modems do: `AT+MODE=2` (Alcatel), `AT+CPROT=?` (OBEX),
//! `AT+SYNCML=?`, `AT$TSSPCSW=?` (Samsung). What they must accept: for
//! Huawei, its PostConnect's `AT^PORTSEL=1` and `AT^CURC=0` (an error there
//! and gammu gives up: "PostConnect failed"); for all, `AT+CHUP=?`.
//!
//! Needs gammu on PATH (`apt-get install gammu`; `.ci/run` installs it):
//! with the `interop` feature on, a missing gammu fails these tests.

#![cfg(feature = "interop")]

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::json;

#[path = "common/simulate_child.rs"]
mod simulate_child;
use simulate_child::{control, http_get, run_bounded, start_simulator, Finished, TempDir};

const INSTALL: &str = "apt-get install gammu";
/// One gammu command, from its start to its exit.
const GAMMU_WAIT: Duration = Duration::from_secs(60);
const TO: &str = "+15550111";
const FROM: &str = "+15550100";
const GSM7: &str = "Hello from gammu: @£$ {ok} [1] 100%";
const UNICODE: &str = "Привет от gammu ✓";
const INJECTED: &str = "Reply C to confirm";

/// gammu runs, or the test fails saying what to install.
fn require_gammu() {
    let output = Command::new("gammu")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("the interop feature needs gammu's command line, which did not run ({e}): {INSTALL}")
        });
    assert!(
        output.status.success(),
        "gammu --version failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// What one gammu command did.
struct Run {
    status: ExitStatus,
    stdout: String,
    /// stderr, then gammu's protocol log (`logformat = textall`).
    log: String,
}

/// `gammu -c <gammurc> <args>`, bounded by [`GAMMU_WAIT`].
fn gammu(personality: &str, dir: &Path, args: &[&str]) -> Run {
    let rc = dir.join("gammurc");
    let logfile = dir.join("gammu.log");
    let _ = std::fs::remove_file(&logfile);
    let mut command = Command::new("gammu");
    command.arg("-c").arg(&rc).args(args);
    let Finished {
        status,
        stdout,
        stderr,
    } = run_bounded(command, GAMMU_WAIT, &format!("gammu ({INSTALL})"));
    let protocol = std::fs::read(&logfile)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let log = format!("--- stderr ---\n{stderr}\n--- gammu log ---\n{protocol}");
    let Some(status) = status else {
        panic!("{personality}: gammu {args:?} did not finish within {GAMMU_WAIT:?}\n{log}");
    };
    Run {
        status,
        stdout,
        log,
    }
}

fn write_gammurc(dir: &Path, link: &Path) {
    let rc = format!(
        "[gammu]\ndevice = {}\nconnection = at\nlogfile = {}\nlogformat = textall\n",
        link.display(),
        dir.join("gammu.log").display()
    );
    std::fs::write(dir.join("gammurc"), rc).unwrap();
}

fn gammu_cli_against(personality: &str, model: &str) {
    require_gammu();
    let started = Instant::now();
    let dir = TempDir::new("interop-gammu-cli", personality);
    let sim = start_simulator(personality, &dir);
    write_gammurc(&dir.0, &sim.link);
    let ok = |run: &Run, what: &str| {
        assert!(
            run.status.success(),
            "{personality}: gammu {what} exited {}\n{}\n{}",
            run.status,
            run.stdout,
            run.log
        );
    };

    // identify: the init (PostConnect included) and the identity commands.
    let run = gammu(personality, &dir.0, &["identify"]);
    ok(&run, "identify");
    let field = |name: &str| {
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    assert!(field("Model").contains(model), "{}", run.stdout);
    assert_eq!(field("IMEI"), "869012045678901", "{}", run.stdout);
    assert_eq!(field("SIM IMSI"), "001010123456789", "{}", run.stdout);

    // sendsms: each text reaches the simulated network intact.
    let run = gammu(personality, &dir.0, &["sendsms", "TEXT", TO, "-text", GSM7]);
    ok(&run, "sendsms");
    let run = gammu(
        personality,
        &dir.0,
        &["sendsms", "TEXT", TO, "-unicode", "-text", UNICODE],
    );
    ok(&run, "sendsms -unicode");
    let received = http_get(&sim.control, "/received");
    let got: Vec<(&str, &str)> = received
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["to"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [(TO, GSM7), (TO, UNICODE)],
        "GET /received: {received}"
    );

    // getallsms: an SMS injected through the control API is listed. The
    // simulator stores it when its task next runs, so gammu asks again
    // (bounded) until it is there.
    let (status, body) = control(
        &sim.control,
        "POST",
        "/inject",
        Some(&json!({"from": FROM, "text": INJECTED})),
    );
    assert_eq!(status, 202, "POST /inject: {body}");
    let mut last = None;
    for _ in 0..5 {
        let run = gammu(personality, &dir.0, &["getallsms"]);
        ok(&run, "getallsms");
        if run.stdout.contains(INJECTED) {
            last = Some(run);
            break;
        }
        last = Some(run);
    }
    let run = last.unwrap();
    assert!(
        run.stdout.contains(INJECTED)
            && run
                .stdout
                .contains(&format!("Remote number        : \"{FROM}\"")),
        "{personality}: gammu getallsms did not list the injected SMS\n{}\n{}",
        run.stdout,
        run.log
    );
    eprintln!(
        "{personality}: gammu CLI interop ok in {:?}",
        started.elapsed()
    );
}

#[test]
fn gammu_cli_against_sim800() {
    gammu_cli_against("sim800", "SIM800");
}

#[test]
fn gammu_cli_against_ec25() {
    gammu_cli_against("ec25", "EC25");
}

#[test]
fn gammu_cli_against_e3372() {
    gammu_cli_against("e3372", "E3372");
}
