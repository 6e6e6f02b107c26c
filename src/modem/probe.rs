//! `smsgate modem probe`: one look at a modem for the field technician.
//! Everything the engine needs is tried once, with short timeouts, and what is
//! wrong is said in plain words.
//!
//! The checks ([`probe_client`]) run over any [`AtLink`]: a port the CLI
//! opens itself ([`probe_reporting`]), or a running modem actor's own
//! connection (`POST /v1/modems/{id}/probe`: the actor runs them between
//! its commands, and stays the port's only owner).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::identity::{read_identity, Identity};
use crate::at::command::{
    At, Cmee, Cmgf, Cnmi, CopsQuery, CpinEnter, CpinQuery, CpmsQuery, CscaQuery, Csq, Echo,
    RegistrationQuery,
};
use crate::at::parse::{Domain, PinState, RegistrationStatus};
use crate::at::{open_serial, spawn, AtError, AtLink, TransportConfig};
use crate::store::{Store, StoreError};

/// What a probe found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    pub port: String,
    pub baud: u32,
    /// The modem answered `AT`.
    pub responding: bool,
    #[serde(flatten)]
    pub identity: Identity,
    /// "ready", "SIM PIN", "SIM PUK", "not inserted", ...
    pub sim: Option<String>,
    pub operator: Option<String>,
    /// "home", "roaming", "searching", "denied", "not registered", ...
    pub registration: Option<String>,
    pub signal_csq: Option<u8>,
    pub signal_dbm: Option<i16>,
    pub smsc: Option<String>,
    /// Per storage: name, used, total.
    pub storage: Vec<StorageUse>,
    pub pdu_mode: bool,
    /// The `AT+CNMI` setting that was accepted, if any.
    pub cnmi: Option<String>,
    /// Plain-language problems, most important first; empty when all is well.
    /// The hints of the failed [`checks`](Self::checks), in order.
    pub diagnosis: Vec<String>,
    /// Each check run, in order, with what it found (the web's Modems page
    /// lists them). Left out of the CLI's JSON, whose form scripts rely on;
    /// the daemon stores and serves them beside the report.
    #[serde(skip)]
    pub checks: Vec<ProbeCheck>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StorageUse {
    pub storage: String,
    pub used: u32,
    pub total: u32,
}

/// One check of a probe: what was asked, whether the answer is what the
/// engine needs, what it was, and what to do about a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCheck {
    /// "port", "AT", "SIM", "identity", "signal", "registration",
    /// "operator", "SMSC", "SMS storage", "PDU mode", "CNMI".
    pub name: String,
    pub ok: bool,
    /// What the modem said, in a few words.
    pub detail: String,
    /// What the CLI prints for this check's failure (its diagnosis lines);
    /// empty for a check that failed without harm (an operator name the
    /// modem does not give) or passed.
    pub hints: Vec<String>,
}

impl ProbeReport {
    /// Record a check; its hints join the diagnosis.
    fn record(&mut self, name: &str, ok: bool, detail: impl Into<String>, hints: Vec<String>) {
        self.diagnosis.extend(hints.iter().cloned());
        self.checks.push(ProbeCheck {
            name: name.to_string(),
            ok,
            detail: detail.into(),
            hints,
        });
    }
}

/// A probe the daemon ran over a modem's own connection: what
/// `POST /v1/modems/{id}/probe` answers, and the last of which per modem is
/// kept in the store ([`ProbeResults`]) for `GET` and the Modems page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub modem: String,
    pub probed_at: DateTime<Utc>,
    pub report: ProbeReport,
    /// The report's checks (kept here: the report's own JSON is the CLI's).
    pub checks: Vec<ProbeCheck>,
}

impl ProbeResult {
    pub fn new(modem: &str, probed_at: DateTime<Utc>, mut report: ProbeReport) -> ProbeResult {
        let checks = std::mem::take(&mut report.checks);
        ProbeResult {
            modem: modem.to_string(),
            probed_at,
            report,
            checks,
        }
    }
}

/// Why a modem's actor cannot run a probe now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRefused(pub String);

/// A request to the actor holding a modem: run the probe between its
/// commands, and answer here (the result is stored first).
#[derive(Debug)]
pub struct ProbeRequest {
    pub reply: oneshot::Sender<Result<ProbeResult, ProbeRefused>>,
}

/// The store's aux tree of the last probe result per modem.
const PROBE_TREE: &str = "modem_probe";

/// The last probe result of each modem, in the store (a restart keeps it:
/// the technician's last look stays on the page).
pub struct ProbeResults {
    tree: sled::Tree,
}

impl ProbeResults {
    pub fn open(store: &Store) -> Result<ProbeResults, StoreError> {
        Ok(ProbeResults {
            tree: store.aux_tree(PROBE_TREE)?,
        })
    }

    /// Keep `result` as its modem's last (made durable by the caller's
    /// `Store::sync`).
    pub fn put(&self, result: &ProbeResult) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(result).map_err(|e| StoreError::Corrupt {
            key: result.modem.clone(),
            reason: e.to_string(),
        })?;
        self.tree
            .insert(result.modem.as_bytes(), bytes)
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// `modem`'s last result, if it was ever probed by the daemon.
    pub fn get(&self, modem: &str) -> Result<Option<ProbeResult>, StoreError> {
        let Some(bytes) = self.tree.get(modem.as_bytes()).map_err(StoreError::from)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: format!("{PROBE_TREE}/{modem}"),
                reason: e.to_string(),
            })
    }
}

/// How many times the probe sends `AT` to a silent port.
const AT_ATTEMPTS: u32 = 3;

/// The `AT+CNMI` settings the CLI's probe tries, best first (issue:
/// gateway, init): reports stored (ds=2), routed (ds=1), none.
pub const CNMI_FALLBACKS: [Cnmi; 3] = [
    Cnmi {
        mode: 2,
        mt: 1,
        bm: 0,
        ds: 2,
        bfr: 0,
    },
    Cnmi {
        mode: 2,
        mt: 1,
        bm: 0,
        ds: 1,
        bfr: 0,
    },
    Cnmi {
        mode: 2,
        mt: 1,
        bm: 0,
        ds: 0,
        bfr: 0,
    },
];

/// The order the daemon tries them in (its init, and a probe over its
/// connection, which so leaves the setting as init chose it): status
/// reports routed directly (`+CDS`, ds=1) first, see `actor::init`.
pub const CNMI_DAEMON_ORDER: [Cnmi; 3] = [CNMI_FALLBACKS[1], CNMI_FALLBACKS[0], CNMI_FALLBACKS[2]];

fn registration_word(status: RegistrationStatus) -> String {
    match status {
        RegistrationStatus::NotRegistered => "not registered".into(),
        RegistrationStatus::Home => "home".into(),
        RegistrationStatus::Searching => "searching".into(),
        RegistrationStatus::Denied => "denied".into(),
        RegistrationStatus::Unknown => "unknown".into(),
        RegistrationStatus::Roaming => "roaming".into(),
        RegistrationStatus::HomeSmsOnly => "home (SMS only)".into(),
        RegistrationStatus::RoamingSmsOnly => "roaming (SMS only)".into(),
        RegistrationStatus::EmergencyOnly => "emergency only".into(),
        RegistrationStatus::Other(n) => format!("status {n}"),
    }
}

fn pin_word(state: &PinState) -> String {
    match state {
        PinState::Ready => "ready".into(),
        PinState::SimPin => "SIM PIN".into(),
        PinState::SimPuk => "SIM PUK".into(),
        PinState::PhSimPin => "PH-SIM PIN".into(),
        PinState::SimPin2 => "SIM PIN2".into(),
        PinState::SimPuk2 => "SIM PUK2".into(),
        PinState::NotInserted => "not inserted".into(),
        PinState::Other(s) => s.clone(),
    }
}

/// Probe the modem on `port`.
pub async fn probe(port: &str, baud: u32, pin: Option<&str>) -> ProbeReport {
    probe_reporting(port, baud, pin, &mut |_| {}).await
}

/// [`probe`], telling `progress` what it is waiting for when that takes a
/// while (a port that does not answer `AT` is asked three times).
pub async fn probe_reporting(
    port: &str,
    baud: u32,
    pin: Option<&str>,
    progress: &mut (dyn FnMut(&str) + Send),
) -> ProbeReport {
    let mut report = ProbeReport {
        port: port.to_string(),
        baud,
        ..ProbeReport::default()
    };
    let serial = match open_serial(port, baud) {
        Ok(s) => s,
        Err(e) => {
            let detail = e.to_string();
            report.record("port", false, detail, vec![open_advice(port, &e)]);
            return report;
        }
    };
    report.record("port", true, "opened", Vec::new());
    let config = TransportConfig {
        resync_attempts: 2,
        resync_timeout: Duration::from_millis(700),
        ..TransportConfig::default()
    };
    let (mut client, _urcs) = spawn(serial, config);
    probe_client(&mut client, pin, &CNMI_FALLBACKS, &mut report, progress).await;
    // Close the port before returning, so an immediate second probe or the
    // daemon can open it (serial ports open exclusive).
    client.close(Duration::from_secs(2)).await;
    report
}

/// What a port that never answered `AT` may be, after `waited`.
fn silent_port_advice(port: &str, baud: u32, waited: Duration) -> String {
    format!(
        "no answer to AT after {} s on {port}: is this the AT port? (USB modems \
         have several: try the others, or `smsgate modem list`); is {baud} baud \
         the modem's speed (--baud)? is another program (ModemManager, a \
         terminal) holding the port?",
        waited.as_secs_f32().round()
    )
}

/// What to check when `smsgate modem list` finds no serial port at all.
pub fn no_ports_hints(dev: &std::path::Path) -> String {
    let dev = dev.display();
    format!(
        "no serial ports found under {dev}/serial/by-id, {dev}/ttyUSB*, {dev}/ttyACM*. Check:
  - the modem is seen by the kernel: `lsusb`, `dmesg | tail` (a stick still in
    its USB storage mode needs usb_modeswitch);
  - its driver is loaded: SIMCom, Quectel and Huawei modems use usbserial and
    option (ttyUSB*), others cdc_acm (ttyACM*): `lsmod | grep -E 'option|usbserial|cdc_acm'`,
    then `sudo modprobe option`;
  - you may open serial ports: your user is in the dialout group
    (`sudo usermod -aG dialout $USER`, then log in again);
  - ModemManager does not hold the port: `sudo systemctl stop ModemManager`, or
    install smsgate's udev rules (they set ID_MM_DEVICE_IGNORE)."
    )
}

fn open_advice(port: &str, e: &AtError) -> String {
    let reason = match e {
        AtError::Open { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    if reason.contains("ermission") {
        format!("cannot open {port}: permission denied (add the user to the dialout group)")
    } else if reason.contains("busy") || reason.contains("Busy") {
        format!("cannot open {port}: busy (held by another program, e.g. ModemManager)")
    } else if matches!(e, AtError::DeviceGone { .. }) || reason.contains("No such file") {
        format!("{port} does not exist (unplugged, or another name: try `smsgate modem list`)")
    } else {
        format!("cannot open {port}: {reason}")
    }
}

/// The probe over an open link: a transport of its own (the CLI, tests on
/// the simulator) or a modem actor's session. `cnmi` is the order the
/// `AT+CNMI` settings are tried in (the first accepted one stays set).
pub async fn probe_client(
    client: &mut impl AtLink,
    pin: Option<&str>,
    cnmi: &[Cnmi],
    report: &mut ProbeReport,
    progress: &mut (dyn FnMut(&str) + Send),
) {
    let mut answered = false;
    let started = tokio::time::Instant::now();
    for attempt in 1..=AT_ATTEMPTS {
        if client.send(&At).await.is_ok() {
            answered = true;
            break;
        }
        if attempt < AT_ATTEMPTS {
            progress(&format!(
                "{}: no answer to AT after {} s; asking again ({} of {AT_ATTEMPTS})...",
                report.port,
                started.elapsed().as_secs_f32().round(),
                attempt + 1
            ));
        }
    }
    if !answered {
        let waited = started.elapsed();
        let hint = silent_port_advice(&report.port, report.baud, waited);
        let detail = format!("no answer after {} s", waited.as_secs_f32().round());
        report.record("AT", false, detail, vec![hint]);
        return;
    }
    report.responding = true;
    report.record("AT", true, "answered", Vec::new());
    let _ = client.send(&Echo(false)).await;
    let _ = client.send(&Cmee(1)).await;

    let mut sim_hints = Vec::new();
    let mut pin_state = client.send(&CpinQuery).await.ok();
    if let (Some(PinState::SimPin), Some(pin)) = (&pin_state, pin) {
        match CpinEnter::new(pin) {
            Ok(cmd) => match client.send(&cmd).await {
                Ok(()) => pin_state = client.send(&CpinQuery).await.ok(),
                Err(e) => sim_hints.push(format!(
                    "the PIN was refused ({e}); do not retry blindly: three wrong PINs lock the SIM"
                )),
            },
            Err(e) => sim_hints.push(format!("invalid PIN: {e}")),
        }
    }
    report.sim = pin_state.as_ref().map(pin_word);
    match &pin_state {
        Some(PinState::Ready) => {}
        Some(PinState::SimPin) => sim_hints
            .push("SIM PIN needed: give it with --pin (and `pin` in the modem's config)".into()),
        Some(PinState::SimPuk) => {
            sim_hints.push("SIM is PUK-locked after wrong PINs: unlock it in a phone".into())
        }
        Some(PinState::NotInserted) => sim_hints.push("no SIM card inserted".into()),
        Some(other) => sim_hints.push(format!("SIM not ready: {}", pin_word(other))),
        None => sim_hints.push("SIM state unknown (AT+CPIN? failed)".into()),
    }
    let sim_ok = matches!(pin_state, Some(PinState::Ready)) && sim_hints.is_empty();
    let sim_detail = report.sim.clone().unwrap_or_else(|| "no answer".into());
    report.record("SIM", sim_ok, sim_detail, sim_hints);

    report.identity = read_identity(client).await;
    let identity = &report.identity;
    let known: Vec<String> = [
        identity.manufacturer.as_deref(),
        identity.model.as_deref(),
        identity
            .imei
            .as_deref()
            .map(|i| format!("IMEI {i}"))
            .as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .collect();
    let identity_ok = identity.imei.is_some();
    let identity_detail = if known.is_empty() {
        "not told".to_string()
    } else {
        known.join(", ")
    };
    report.record("identity", identity_ok, identity_detail, Vec::new());

    match client.send(&Csq).await {
        Ok(signal) => {
            report.signal_csq = Some(signal.rssi);
            report.signal_dbm = signal.dbm();
            let detail = match signal.dbm() {
                Some(dbm) => format!("CSQ {} ({dbm} dBm)", signal.rssi),
                None => format!("CSQ {} (unknown)", signal.rssi),
            };
            if signal.rssi == 99 || signal.rssi == 0 {
                let hint = "no usable signal: check the antenna and coverage".to_string();
                report.record("signal", false, detail, vec![hint]);
            } else {
                report.record("signal", true, detail, Vec::new());
            }
        }
        Err(e) => report.record("signal", false, format!("AT+CSQ failed: {e}"), Vec::new()),
    }
    let mut registered = false;
    for domain in [Domain::Cs, Domain::Eps] {
        if let Ok(reg) = client.send(&RegistrationQuery(domain)).await {
            registered = reg.status.is_registered();
            report.registration = Some(registration_word(reg.status));
            if registered {
                break;
            }
        }
    }
    let registration = report
        .registration
        .clone()
        .unwrap_or_else(|| "no answer".into());
    let mut hints = Vec::new();
    if !registered && matches!(pin_state, Some(PinState::Ready)) {
        hints.push(format!(
            "not registered on a network ({registration}): check the SIM is active and has SMS service"
        ));
    }
    report.record("registration", registered, registration, hints);
    report.operator = client.send(&CopsQuery).await.ok().and_then(|o| o.name);
    let operator = report.operator.clone();
    report.record(
        "operator",
        operator.is_some(),
        operator.unwrap_or_else(|| "not told".into()),
        Vec::new(),
    );
    report.smsc = client.send(&CscaQuery).await.ok().map(|n| n.e164());
    let smsc = report.smsc.clone();
    report.record(
        "SMSC",
        smsc.is_some(),
        smsc.unwrap_or_else(|| "not told".into()),
        Vec::new(),
    );
    let mut hints = Vec::new();
    let storage_answered = match client.send(&CpmsQuery).await {
        Ok(usage) => {
            for u in usage {
                let name = u.storage.clone().unwrap_or_default();
                // `+CPMS?` names mem1, mem2 and mem3, often the same storage
                // three times: report and diagnose each storage once.
                if report.storage.iter().any(|s| s.storage == name) {
                    continue;
                }
                if u.total > 0 && u.used >= u.total {
                    hints.push(format!(
                        "SMS storage {name} is full ({}/{}): inbound SMS wait at the network",
                        u.used, u.total
                    ));
                }
                report.storage.push(StorageUse {
                    storage: name,
                    used: u.used,
                    total: u.total,
                });
            }
            true
        }
        Err(_) => false,
    };
    let storage_detail = if storage_answered {
        storage_words(&report.storage).unwrap_or_else(|| "none listed".into())
    } else {
        "AT+CPMS? failed".into()
    };
    report.record(
        "SMS storage",
        storage_answered && hints.is_empty(),
        storage_detail,
        hints,
    );
    report.pdu_mode = client.send(&Cmgf).await.is_ok();
    if report.pdu_mode {
        report.record("PDU mode", true, "AT+CMGF=0 accepted", Vec::new());
    } else {
        let hint = "PDU mode (AT+CMGF=0) refused: smsgate needs it".to_string();
        report.record("PDU mode", false, "AT+CMGF=0 refused", vec![hint]);
    }
    for setting in cnmi {
        if client.send(setting).await.is_ok() {
            report.cnmi = Some(format!(
                "{},{},{},{},{}",
                setting.mode, setting.mt, setting.bm, setting.ds, setting.bfr
            ));
            break;
        }
    }
    match report.cnmi.clone() {
        Some(setting) => report.record(
            "CNMI",
            true,
            format!("AT+CNMI={setting} accepted"),
            Vec::new(),
        ),
        None => {
            let hint = "new-message indications (AT+CNMI) refused: inbound SMS would only be found by polling".to_string();
            report.record("CNMI", false, "every AT+CNMI setting refused", vec![hint]);
        }
    }
}

/// "SM 3/30, ME 0/50", or None for no storage.
fn storage_words(storage: &[StorageUse]) -> Option<String> {
    let words: Vec<String> = storage
        .iter()
        .map(|s| format!("{} {}/{}", s.storage, s.used, s.total))
        .collect();
    (!words.is_empty()).then(|| words.join(", "))
}

impl ProbeReport {
    /// The human-readable form.
    pub fn to_text(&self) -> String {
        let row = |k: &str, v: Option<&str>| format!("{k:<14} {}\n", v.unwrap_or("-"));
        let mut out = String::new();
        out += &row("port", Some(&format!("{} @ {} baud", self.port, self.baud)));
        out += &row(
            "responding",
            Some(if self.responding { "yes" } else { "no" }),
        );
        out += &row("manufacturer", self.identity.manufacturer.as_deref());
        out += &row("model", self.identity.model.as_deref());
        out += &row("firmware", self.identity.firmware.as_deref());
        out += &row("IMEI", self.identity.imei.as_deref());
        out += &row("IMSI", self.identity.imsi.as_deref());
        out += &row("ICCID", self.identity.iccid.as_deref());
        out += &row("own number", self.identity.own_number.as_deref());
        out += &row("SIM", self.sim.as_deref());
        out += &row("operator", self.operator.as_deref());
        out += &row("registration", self.registration.as_deref());
        let signal = self.signal_csq.map(|csq| match self.signal_dbm {
            Some(dbm) => format!("CSQ {csq} ({dbm} dBm)"),
            None => format!("CSQ {csq} (unknown)"),
        });
        out += &row("signal", signal.as_deref());
        out += &row("SMSC", self.smsc.as_deref());
        out += &row("SMS storage", storage_words(&self.storage).as_deref());
        out += &row("PDU mode", Some(if self.pdu_mode { "yes" } else { "no" }));
        out += &row("CNMI routing", self.cnmi.as_deref());
        if self.diagnosis.is_empty() {
            out += "diagnosis      OK: ready to send and receive SMS\n";
        } else {
            for (i, d) in self.diagnosis.iter().enumerate() {
                out += &format!("{:<14} {d}\n", if i == 0 { "diagnosis" } else { "" });
            }
        }
        out
    }
}

/// Candidate modem ports under `dev` (`/dev` on a machine; a test's own
/// directory): stable by-id links first.
pub fn candidate_ports_in(dev: &std::path::Path) -> Vec<String> {
    let mut ports = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dev.join("serial/by-id")) {
        let mut by_id: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().to_string_lossy().into_owned())
            .collect();
        by_id.sort();
        ports.extend(by_id);
    }
    if let Ok(entries) = std::fs::read_dir(dev) {
        let mut ttys: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("ttyUSB") || name.starts_with("ttyACM")
            })
            .map(|e| e.path().to_string_lossy().into_owned())
            .collect();
        ttys.sort();
        ports.extend(ttys);
    }
    ports
}
