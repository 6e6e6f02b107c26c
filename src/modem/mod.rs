//! Modems: one actor per modem ([`actor`]), the dispatcher that hands them
//! work ([`dispatch`]), what each publishes ([`status`]), identity, vendor
//! quirks, the technician's probe, and `port = "auto"` ([`discovery`]);
//! settings an administrator changes while the daemon runs ([`overrides`]).

pub mod actor;
pub mod discovery;
pub mod dispatch;
pub mod expiry;
pub mod identity;
pub mod overrides;
pub mod pool;
pub mod probe;
pub mod quirks;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{ErrorInfo, Message, Store};

pub use actor::spawn_modem;
pub use dispatch::Dispatcher;
pub use status::{ModemState, ModemStatus};

/// One modem's settings (config `[[modem]]`, converted by the config module).
#[derive(Debug, Clone)]
pub struct ModemSettings {
    pub id: String,
    pub port: String,
    pub baud: u32,
    pub pin: Option<String>,
    /// Preferred SMS storage ("ME", "SM", "MT").
    pub storage: Option<String>,
    /// The number this modem's SIM answers to, when the SIM does not say.
    pub own_number: Option<String>,
    /// Per-modem send rate limit (carrier spam filters): the modem takes no
    /// work until its next slot, the others do.
    pub sends_per_minute: Option<u32>,
    /// Parts this SIM may send per local day (the carrier's limit): counted
    /// in the store, so a restart keeps the count; once spent, the modem is
    /// out of the pool until the next day, its messages wait or go to others.
    pub daily_limit: Option<u32>,
    /// Failed sends in a row that make this modem rest (None: the engine's
    /// [`pool::RestPolicy`] default, 3).
    pub rest_after_failures: Option<u32>,
    /// `port = "auto"`: where discovery says the modem is now (None: `port`).
    pub resolver: Option<discovery::PortResolver>,
}

/// What the policy says right before a message goes to the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Send,
    /// Hold it (quiet hours, rate limits) until then, and say why.
    Defer {
        until: DateTime<Utc>,
        reason: String,
    },
    /// Never send it (opted out, no consent, too late).
    Refuse(ErrorInfo),
}

/// The check right before `AT+CMGS` (consent, quiet hours, rate limits): the
/// modem engine asks it for every message and every API path leads here.
pub trait SendGate: Send + Sync {
    fn check(
        &self,
        store: &Store,
        message: &Message,
        modem_number: Option<&str>,
        now: DateTime<Utc>,
    ) -> Gate;
}

/// Settings shared by all modem actors.
#[derive(Clone)]
pub struct EngineSettings {
    /// The policy's check before each send (None: send everything).
    pub gate: Option<Arc<dyn SendGate>>,
    /// `[cluster]`: the fence a message taken from the fleet's work queue
    /// is claimed in before its first `AT+CMGS`.
    pub fleet: Option<Arc<dyn crate::fleet::FleetLink>>,
    /// The watchdog's liveness registry (None: no watchdog).
    pub liveness: Option<crate::liveness::Liveness>,
    /// Default validity period in seconds (None: the network's default).
    pub validity: Option<u32>,
    pub health_interval: Duration,
    pub sweep_interval: Duration,
    /// First retry delay after a transient failure; doubles each time.
    pub retry_base: Duration,
    /// Attempts before a transiently failing message fails for good.
    pub max_attempts: u32,
    pub reopen_backoff_max: Duration,
    /// Reset the modem (`AT+CFUN=1,1`) after this many consecutive failures.
    pub reset_after_failures: Option<u32>,
    /// How failed sends in a row take a modem out of the pool for a while.
    pub rest: pool::RestPolicy,
    /// The zone whose days `daily_limit` counts in (`[quiet_hours]
    /// default_time_zone`: the business's own).
    pub day_zone: chrono_tz::Tz,
}

impl std::fmt::Debug for EngineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineSettings")
            .field("gate", &self.gate.is_some())
            .field("validity", &self.validity)
            .field("health_interval", &self.health_interval)
            .field("retry_base", &self.retry_base)
            .field("max_attempts", &self.max_attempts)
            .field("rest", &self.rest)
            .field("day_zone", &self.day_zone)
            .finish_non_exhaustive()
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            gate: None,
            fleet: None,
            liveness: None,
            validity: Some(24 * 3600),
            health_interval: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(300),
            retry_base: Duration::from_secs(30),
            max_attempts: 5,
            reopen_backoff_max: Duration::from_secs(60),
            reset_after_failures: Some(5),
            rest: pool::RestPolicy::default(),
            day_zone: chrono_tz::UTC,
        }
    }
}
