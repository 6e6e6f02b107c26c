//! `smsgate modem probe` against the simulator: each personality reads as
//! healthy; a PIN-locked SIM, a silent port, a dead port and a full storage
//! get their plain diagnosis; `modem list` hints when it finds no port.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use smsgate::modem::probe::probe;
use smsgate::sim::{Fault, Personality, SimConfig, SimHandle, Simulator};

fn sim(personality: Personality, name: &str, pin: Option<&str>) -> SimHandle {
    let mut c = SimConfig::new(personality);
    c.link =
        Some(std::env::temp_dir().join(format!("smsgate-probe-{}-{name}", std::process::id())));
    c.own_number = "+15550100100".into();
    c.noise_interval = Some(Duration::ZERO);
    c.pin = pin.map(str::to_string);
    Simulator::start(c).unwrap()
}

fn link(s: &SimHandle) -> String {
    s.link().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_personality_probes_healthy() {
    for (personality, manufacturer) in [
        (Personality::Sim800, "SIMCOM"),
        (Personality::Ec25, "Quectel"),
        (Personality::E3372, "huawei"),
    ] {
        let s = sim(personality, &format!("{personality:?}"), None);
        let report = probe(&link(&s), 115_200, None).await;
        assert!(report.responding, "{personality:?}");
        assert!(
            report.diagnosis.is_empty(),
            "{personality:?}: {:?}",
            report.diagnosis
        );
        let m = report.identity.manufacturer.clone().unwrap_or_default();
        assert!(
            m.to_lowercase().contains(&manufacturer.to_lowercase()),
            "{m}"
        );
        assert!(report
            .identity
            .imei
            .as_deref()
            .is_some_and(|i| i.len() == 15));
        assert!(
            report.identity.iccid.is_some(),
            "{personality:?}: ICCID via the vendor's command"
        );
        assert_eq!(report.identity.own_number.as_deref(), Some("+15550100100"));
        assert_eq!(report.sim.as_deref(), Some("ready"));
        assert!(report.registration.is_some());
        assert!(report.signal_dbm.is_some());
        assert!(report.smsc.is_some());
        assert!(!report.storage.is_empty());
        assert!(report.pdu_mode);
        assert_eq!(report.cnmi.as_deref(), Some("2,1,0,2,0"));
        // Each check is listed, in order, and each passed.
        let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "port",
                "AT",
                "SIM",
                "identity",
                "signal",
                "registration",
                "operator",
                "SMSC",
                "SMS storage",
                "PDU mode",
                "CNMI"
            ]
        );
        assert!(
            report.checks.iter().all(|c| c.ok && c.hints.is_empty()),
            "{personality:?}: {:?}",
            report.checks
        );
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_locked_sim_is_diagnosed_and_unlocked_with_the_pin() {
    let s = sim(Personality::Sim800, "pin", Some("1234"));
    let report = probe(&link(&s), 115_200, None).await;
    assert_eq!(report.sim.as_deref(), Some("SIM PIN"));
    assert!(
        report
            .diagnosis
            .iter()
            .any(|d| d.contains("SIM PIN needed")),
        "{:?}",
        report.diagnosis
    );
    let report = probe(&link(&s), 115_200, Some("1234")).await;
    assert_eq!(
        report.sim.as_deref(),
        Some("ready"),
        "{:?}",
        report.diagnosis
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_port_and_a_missing_one_are_diagnosed() {
    let s = sim(Personality::Ec25, "silent", None);
    s.fault(Fault::StopAnswering { duration: None }).unwrap();
    let report = probe(&link(&s), 115_200, None).await;
    assert!(!report.responding);
    // It says what it waited for, and what the silence may mean.
    let said = &report.diagnosis[0];
    assert!(said.starts_with("no answer to AT after "), "{said}");
    for hint in ["is this the AT port?", "115200 baud", "ModemManager"] {
        assert!(said.contains(hint), "no {hint:?} in: {said}");
    }
    // The failed check carries the same hint the diagnosis prints.
    let at = report.checks.iter().find(|c| c.name == "AT").unwrap();
    assert!(!at.ok);
    assert_eq!(at.hints, report.diagnosis);
    s.fault(Fault::Clear).unwrap();
    s.shutdown().await;

    let missing: PathBuf = std::env::temp_dir().join("smsgate-probe-no-such-port");
    let report = probe(&missing.to_string_lossy(), 115_200, None).await;
    assert!(
        report.diagnosis[0].contains("does not exist"),
        "{:?}",
        report.diagnosis
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_json_and_exits_by_health() {
    let s = sim(Personality::E3372, "cli", None);
    let path = link(&s);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_smsgate"))
            .args(["modem", "probe", &path, "--json"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["responding"], true);
    assert_eq!(v["pdu_mode"], true);
    assert!(v["diagnosis"].as_array().unwrap().is_empty());
    // The CLI's JSON keeps its form: the checks are the daemon's to store.
    assert!(v.get("checks").is_none(), "{v}");
    s.shutdown().await;
}

/// The storage-full fault shows as a real full modem does (`AT+CPMS?` used
/// equal to total), and the probe says so once, not once per `<mem>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_storage_is_diagnosed_once() {
    for personality in [Personality::Sim800, Personality::Ec25] {
        let s = sim(personality, &format!("full-{personality:?}"), None);
        s.fault(Fault::StorageFull { duration: None }).unwrap();
        let report = probe(&link(&s), 115_200, None).await;
        let full: Vec<&String> = report
            .diagnosis
            .iter()
            .filter(|d| d.contains("is full"))
            .collect();
        assert_eq!(full.len(), 1, "{personality:?}: {:?}", report.diagnosis);
        assert_eq!(report.storage.len(), 1, "{:?}", report.storage);
        let storage = &report.storage[0];
        assert_eq!(storage.used, storage.total, "{storage:?}");
        assert!(
            full[0].contains(&format!("{}/{}", storage.total, storage.total)),
            "{full:?}"
        );
        s.fault(Fault::Clear).unwrap();
        let report = probe(&link(&s), 115_200, None).await;
        assert!(report.diagnosis.is_empty(), "{:?}", report.diagnosis);
        s.shutdown().await;
    }
}

/// `modem list` with no port: the hints a new user needs (drivers, the
/// dialout group, ModemManager). With the simulator's link named like a USB
/// modem's port in the same directory, it is found and probed instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modem_list_gives_hints_without_ports_and_probes_what_it_finds() {
    let dev = std::env::temp_dir().join(format!("smsgate-probe-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dev);
    std::fs::create_dir_all(&dev).unwrap();
    let list = |dev: PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_smsgate"))
                .args(["modem", "list", "--dev"])
                .arg(&dev)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let out = list(dev.clone()).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for hint in [
        "no serial ports found",
        "usbserial",
        "option",
        "cdc_acm",
        "dialout",
        "ModemManager",
    ] {
        assert!(text.contains(hint), "no {hint:?} in: {text}");
    }

    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(dev.join("ttyUSB0"));
    c.noise_interval = Some(Duration::ZERO);
    let s = Simulator::start(c).unwrap();
    let out = list(dev.clone()).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{}", dev.join("ttyUSB0").display())),
        "{text}"
    );
    assert!(text.contains("responding     yes"), "{text}");
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dev);
}

/// On a silent port the CLI says, while it waits, what it is waiting for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_what_it_waits_for_on_a_silent_port() {
    let s = sim(Personality::Sim800, "cli-silent", None);
    s.fault(Fault::StopAnswering { duration: None }).unwrap();
    let path = link(&s);
    let port = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_smsgate"))
            .args(["modem", "probe", &port])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let waiting: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no answer to AT after"))
        .collect();
    assert_eq!(waiting.len(), 2, "{stderr}");
    assert!(waiting[0].starts_with(&path), "{stderr}");
    assert!(waiting[0].ends_with("asking again (2 of 3)..."), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("is this the AT port?"), "{stdout}");
    s.fault(Fault::Clear).unwrap();
    s.shutdown().await;
}
