//! A virtual GSM modem on a pty, for tests, the demo and the benchmarks.
//!
//! The simulator owns the master side of a pseudo-terminal and answers AT
//! commands on it the way real modems do (27.007, 27.005 PDU mode), with the
//! quirks of three firmware families ([`Personality`]): SIMCom SIM800, Quectel
//! EC25/EG25 and Huawei E3372/E1752. Behind the modem sits a small network
//! model: submitted SMS are decoded and recorded, status reports come back after
//! a delay, inbound SMS are stored and announced, scripted handsets reply, and
//! faults (a hung modem, garbage, `+CMS ERROR`s, full storage, unplug, reboot)
//! come on demand.
//!
//! # Layout
//!
//! - [`commands`]: the modem side of V.250 command lines (pure).
//! - [`modem`]: the firmware: command set, reply formats, storage, URCs (pure).
//! - [`storage`]: message memories ("SM", "ME", "SR").
//! - [`network`]: submitted messages, status reports, inbound queue, handsets.
//! - [`faults`]: the faults and their JSON shape.
//! - [`pty`]: the pty and its symlink.
//! - `driver`: the one task per simulator that ties them to tokio.
//! - [`control`]: the JSON control API over HTTP (`smsgate simulate`).
//!
//! # Use from Rust
//!
//! ```no_run
//! # async fn demo() -> Result<(), smsgate::sim::SimError> {
//! use smsgate::sim::{Personality, SimConfig, Simulator};
//! let mut config = SimConfig::new(Personality::Ec25);
//! config.link = Some("/tmp/ttyGSM0".into());
//! let sim = Simulator::start(config)?;
//! // open sim.link() with tokio-serial, speak AT ...
//! sim.inject("+15550100", "C")?;
//! let received = sim.received();
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Control API (`smsgate simulate`)
//!
//! `smsgate simulate --link PATH [--personality sim800|ec25|e3372]
//! [--own-number N] [--control 127.0.0.1:PORT] [--baud N]` creates the pty,
//! points PATH at it, serves JSON over HTTP on a loopback address (default
//! `127.0.0.1:0`, an ephemeral port; other addresses are refused) and, once both
//! are ready, prints one line: `{"link": "PATH", "control": "127.0.0.1:PORT"}`.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /inject` | `{"from": "+15550100", "text": "C"}` | 202 `{"parts": 1}` |
//! | `GET /received` | | 200 `[{"to", "text", "parts", "status_report_requested", "received_at"}]`, oldest first, multipart messages joined |
//! | `POST /handsets` | `{"number": "+15550100", "reply": "R", "then": ["2"], "delay_ms": 2000}` (`then`: the answers to the following messages, then quiet; `"once": true`: answer the first only) | 204 |
//! | `POST /faults` | `{"kind": "stop_answering" \| "garbage" \| "cms_error" \| "storage_full" \| "unplug" \| "reboot" \| "sms_before_prompt" \| "clear", "code": 500, "count": 2, "duration_ms": 3000, "from": "+15550001111", "text": "C"}` | 204 |
//!
//! Errors are 400 (bad JSON, bad number) or 503 (the simulator stopped) with a
//! one-line body `{"error": "..."}`. See `docs/simulator.md`.

pub mod commands;
pub mod control;
mod driver;
pub mod faults;
pub mod modem;
pub mod network;
pub mod personality;
pub mod pty;
pub mod storage;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use faults::Fault;
pub use modem::ModemIdentity;
pub use network::{HandsetScript, ReceivedMessage};
pub use personality::Personality;

use driver::{Control, Driver};
use modem::Modem;
use network::Network;

/// How one simulated modem behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub personality: Personality,
    /// The SIM's MSISDN (`AT+CNUM`); empty: none stored.
    pub own_number: String,
    /// A symlink to point at the pty's slave (`/dev/pts/N`), as udev names a
    /// modem's port; kept across unplug faults, removed at shutdown.
    pub link: Option<PathBuf>,
    /// Pace the simulator's bytes (and its reading of the client's) to this
    /// serial speed: baud/10 bytes per second. `None`: as fast as the pty goes.
    pub baud: Option<u32>,
    /// Time the firmware takes to answer each command line.
    pub command_latency: Duration,
    /// Put a URC between a command's information lines and its final result.
    pub noise_in_responses: bool,
    /// Period of the personality's unsolicited noise (`^RSSI`, `+QIND`);
    /// `None`: the personality's default; zero: none.
    pub noise_interval: Option<Duration>,
    /// Lock the SIM with this PIN (`AT+CPIN?` answers `SIM PIN`).
    pub pin: Option<String>,
    /// Delay between `+CMGS` and the status report.
    pub status_report_delay: Duration,
    /// Recipients whose status reports say "failed".
    pub failing_numbers: Vec<String>,
    /// Recipients whose handsets are busy at first: a status report saying
    /// the service centre is still trying (TP-ST 0x21) comes
    /// `status_report_delay` before the final one.
    pub busy_numbers: Vec<String>,
    /// Handsets that answer from the start.
    pub handsets: Vec<HandsetScript>,
    /// `AT+CGSN`; `None`: the personality's default. Two simulators told apart
    /// by IMEI test `port = "auto"` discovery.
    pub imei: Option<String>,
}

impl SimConfig {
    pub fn new(personality: Personality) -> SimConfig {
        SimConfig {
            personality,
            own_number: String::new(),
            link: None,
            baud: None,
            command_latency: Duration::ZERO,
            noise_in_responses: false,
            noise_interval: None,
            pin: None,
            status_report_delay: Duration::from_millis(500),
            failing_numbers: Vec::new(),
            busy_numbers: Vec::new(),
            handsets: Vec::new(),
            imei: None,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new(Personality::default())
    }
}

/// Errors of the simulator's API.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("pty: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode the message: {0}")]
    Pdu(#[from] crate::pdu::PduError),
    #[error("the simulator has stopped")]
    Stopped,
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// State the handle and the driver share.
pub(crate) struct Shared {
    network: Mutex<Network>,
    /// How many messages the network has received (for waiting on them).
    received: watch::Sender<usize>,
    /// Bumped each time a pty appears (start, and after each unplug).
    generation: watch::Sender<u64>,
    slave_path: Mutex<PathBuf>,
    link: Option<PathBuf>,
    /// Bytes the modem has read from the client (commands, PDUs, Ctrl-Z).
    wire_rx: AtomicU64,
    /// Bytes the modem has written to the client (echo, prompts, answers, URCs).
    wire_tx: AtomicU64,
    /// When each of the latest URCs left for the client (its last byte
    /// accepted by the pty), with its line: what a benchmark times from.
    urcs_written: Mutex<VecDeque<(Instant, String)>>,
}

/// How many written URCs [`SimHandle::urcs_written`] remembers.
const URC_LOG: usize = 256;

impl Shared {
    fn urc_written(&self, line: String) {
        if let Ok(mut log) = self.urcs_written.lock() {
            if log.len() == URC_LOG {
                log.pop_front();
            }
            log.push_back((Instant::now(), line));
        }
    }

    fn notify_received(&self) {
        let count = self.network.lock().map(|n| n.received.len()).unwrap_or(0);
        self.received.send_replace(count);
    }

    fn bump_generation(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    fn set_slave_path(&self, path: PathBuf) {
        if let Ok(mut p) = self.slave_path.lock() {
            *p = path;
        }
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Open the pty and start the modem's task. Call inside a tokio runtime.
    pub fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let pty = pty::Pty::open(config.link.as_deref())?;
        let mut id = ModemIdentity::new(config.personality);
        id.own_number = config.own_number.clone();
        id.pin = config.pin.clone();
        id.noise_in_responses = config.noise_in_responses;
        if let Some(imei) = &config.imei {
            id.imei = imei.clone();
        }
        let mut network = Network::new(config.failing_numbers.clone());
        network.busy_numbers = config.busy_numbers.clone();
        for h in &config.handsets {
            network.set_handset(h.clone());
        }
        let shared = Arc::new(Shared {
            network: Mutex::new(network),
            received: watch::channel(0).0,
            generation: watch::channel(1).0,
            slave_path: Mutex::new(pty.slave_path().to_path_buf()),
            link: config.link.clone(),
            wire_rx: AtomicU64::new(0),
            wire_tx: AtomicU64::new(0),
            urcs_written: Mutex::new(VecDeque::new()),
        });
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(config, shared.clone(), Modem::new(id), pty, control_rx);
        let task = tokio::spawn(driver.run());
        Ok(SimHandle {
            shared,
            control: control_tx,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }
}

/// A running simulator. Clones control the same modem; it stops when
/// [`SimHandle::shutdown`] is called or the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl SimHandle {
    /// The path clients open: the symlink when configured, else `/dev/pts/N`.
    pub fn link(&self) -> PathBuf {
        match &self.shared.link {
            Some(link) => link.clone(),
            None => self.slave_path(),
        }
    }

    /// The pty's slave, `/dev/pts/N` (changes after an unplug).
    pub fn slave_path(&self) -> PathBuf {
        self.shared
            .slave_path
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    /// An SMS from `from` (number or alphanumeric sender) to this modem; it is
    /// stored and announced as soon as the modem has room. Returns its parts.
    pub fn inject(&self, from: &str, text: &str) -> Result<usize, SimError> {
        let parts = self
            .shared
            .network
            .lock()
            .map_err(|_| SimError::Stopped)?
            .inject(from, text)?;
        self.control
            .send(Control::Wake)
            .map_err(|_| SimError::Stopped)?;
        Ok(parts)
    }

    /// An SMS stamped `sent_at` by the service centre (TP-SCTS); the same text
    /// and stamp twice are identical PDUs, two deliveries all the same.
    pub fn inject_sent_at(
        &self,
        from: &str,
        text: &str,
        sent_at: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<usize, SimError> {
        let parts = self
            .shared
            .network
            .lock()
            .map_err(|_| SimError::Stopped)?
            .inject_sent_at(from, text, sent_at, None)?;
        self.control
            .send(Control::Wake)
            .map_err(|_| SimError::Stopped)?;
        Ok(parts)
    }

    /// An SMS whose parts arrive in `order` (1-based; repeats deliver a part
    /// twice). Returns how many parts the text has.
    pub fn inject_parts(&self, from: &str, text: &str, order: &[usize]) -> Result<usize, SimError> {
        let parts = self
            .shared
            .network
            .lock()
            .map_err(|_| SimError::Stopped)?
            .inject_in_order(from, text, Some(order))?;
        self.control
            .send(Control::Wake)
            .map_err(|_| SimError::Stopped)?;
        Ok(parts)
    }

    /// Messages the network received from the modem, oldest first.
    pub fn received(&self) -> Vec<ReceivedMessage> {
        self.shared
            .network
            .lock()
            .map(|n| n.received.clone())
            .unwrap_or_default()
    }

    /// Wait until the network has received at least `count` messages.
    pub async fn wait_received(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMessage>, SimError> {
        let mut rx = self.shared.received.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n >= count))
            .await
            .map_err(|_| SimError::Timeout(timeout))?
            .map_err(|_| SimError::Stopped)?;
        Ok(self.received())
    }

    /// Script a handset (replaces the script for the same number).
    pub fn set_handset(&self, script: HandsetScript) {
        if let Ok(mut n) = self.shared.network.lock() {
            n.set_handset(script);
        }
    }

    /// Inject a fault.
    pub fn fault(&self, fault: Fault) -> Result<(), SimError> {
        self.control
            .send(Control::Fault(fault))
            .map_err(|_| SimError::Stopped)
    }

    /// How many times a pty has appeared: 1 at start, +1 after each unplug.
    pub fn generation(&self) -> u64 {
        *self.shared.generation.borrow()
    }

    /// Wait until the pty has appeared `generation` times (see
    /// [`SimHandle::generation`]): after an unplug, the device is back.
    pub async fn wait_generation(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<(), SimError> {
        let mut rx = self.shared.generation.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|g| *g >= generation))
            .await
            .map_err(|_| SimError::Timeout(timeout))?
            .map_err(|_| SimError::Stopped)?;
        Ok(())
    }

    /// Bytes on the serial wire so far, as `(rx, tx)`: what the modem read
    /// from the client and what it wrote back (echo, prompts, answers, URCs),
    /// counted when the firmware takes them in and when the pty accepts them.
    /// Benchmarks divide by the baud rate's byte rate to get wire efficiency.
    pub fn wire_bytes(&self) -> (u64, u64) {
        (
            self.shared.wire_rx.load(Ordering::Relaxed),
            self.shared.wire_tx.load(Ordering::Relaxed),
        )
    }

    /// The URCs written to the client at or after `since` (the latest
    /// 256 are kept), oldest first, each with the moment its last byte was
    /// accepted by the pty: the modem's announcement, for timing what the
    /// client does after it (e.g. `+CMTI` -> stored).
    pub fn urcs_written(&self, since: Instant) -> Vec<(Instant, String)> {
        self.shared
            .urcs_written
            .lock()
            .map(|log| log.iter().filter(|(at, _)| *at >= since).cloned().collect())
            .unwrap_or_default()
    }

    /// Inbound parts still waiting in the network for room in the modem.
    pub fn waiting_inbound(&self) -> usize {
        self.shared
            .network
            .lock()
            .map(|n| n.waiting.len())
            .unwrap_or(0)
    }

    /// Stop the modem: the pty closes and the symlink goes away.
    pub async fn shutdown(&self) {
        let _ = self.control.send(Control::Shutdown);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at::command::Cgsn;

    #[tokio::test]
    async fn the_configured_imei_answers_cgsn() {
        for (imei, expected) in [
            (Some("356938035643809"), "356938035643809"),
            (None, "869012045678901"),
        ] {
            let mut config = SimConfig::new(Personality::Ec25);
            config.noise_interval = Some(Duration::ZERO);
            config.imei = imei.map(str::to_string);
            let sim = Simulator::start(config).unwrap();
            let port = crate::at::open_serial(&sim.link().to_string_lossy(), 115_200).unwrap();
            let (client, _urcs) = crate::at::spawn(port, crate::at::TransportConfig::default());
            assert_eq!(client.send(&Cgsn).await.unwrap(), expected);
            drop(client);
            sim.shutdown().await;
        }
    }
}
