//! What a modem actor publishes about itself: state, identity, network,
//! signal, counters. Read by the dispatcher, the API, metrics and sd_notify.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::identity::Identity;

/// The life of a modem connection (issue: gateway, "Health").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModemState {
    /// Port open, init sequence running.
    Initializing,
    /// Registered and taking work.
    Ready,
    /// Answering, but not registered, or recovering from timeouts: sends wait.
    Degraded,
    /// Port gone or unanswered; reopening with backoff.
    Offline,
}

impl ModemState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModemState::Initializing => "initializing",
            ModemState::Ready => "ready",
            ModemState::Degraded => "degraded",
            ModemState::Offline => "offline",
        }
    }
}

/// Round trips of AT commands, as a Prometheus histogram (seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatencyHistogram {
    /// Upper bounds in milliseconds.
    pub bounds_ms: Vec<u64>,
    /// Observations per bucket (not cumulative); one more for +Inf.
    pub counts: Vec<u64>,
    pub sum_ms: u64,
    pub count: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        // From a quick `AT` (a few ms) to an `AT+CMGS` waiting for the network.
        let bounds_ms = vec![
            5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
        ];
        LatencyHistogram {
            counts: vec![0; bounds_ms.len() + 1],
            bounds_ms,
            sum_ms: 0,
            count: 0,
        }
    }
}

impl LatencyHistogram {
    pub fn observe(&mut self, took: std::time::Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = self
            .bounds_ms
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(self.bounds_ms.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c += 1;
        }
        self.sum_ms = self.sum_ms.saturating_add(ms);
        self.count += 1;
    }
}

/// Counters since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub sent_parts: u64,
    pub received: u64,
    pub failed: u64,
    pub status_reports: u64,
    pub timeouts: u64,
    pub reconnects: u64,
    /// AT command round trips.
    pub at_latency: LatencyHistogram,
}

/// A snapshot of one modem.
#[derive(Debug, Clone, Serialize)]
pub struct ModemStatus {
    pub id: String,
    pub port: String,
    pub state: ModemState,
    /// Why the state is what it is ("port gone", "not registered", ...).
    pub reason: Option<String>,
    pub identity: Identity,
    /// The number this modem sends from (config, else the SIM's).
    pub own_number: Option<String>,
    pub operator: Option<String>,
    pub registration: Option<String>,
    pub signal_csq: Option<u8>,
    pub signal_dbm: Option<i16>,
    /// Messages this modem is sending now (0 or 1).
    pub queue_depth: usize,
    pub counters: Counters,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl ModemStatus {
    pub fn new(id: &str, port: &str) -> ModemStatus {
        ModemStatus {
            id: id.to_string(),
            port: port.to_string(),
            state: ModemState::Initializing,
            reason: None,
            identity: Identity::default(),
            own_number: None,
            operator: None,
            registration: None,
            signal_csq: None,
            signal_dbm: None,
            queue_depth: 0,
            counters: Counters::default(),
            last_error: None,
            updated_at: Utc::now(),
        }
    }
}
