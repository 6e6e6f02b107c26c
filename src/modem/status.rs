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

/// Counters since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub sent_parts: u64,
    pub received: u64,
    pub failed: u64,
    pub status_reports: u64,
    pub timeouts: u64,
    pub reconnects: u64,
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
