//! Webhooks: every event pushed to each configured receiver, signed (Standard
//! Webhooks), at least once, in order per message, retried for a day, durable
//! across restarts (ARCHITECTURE.md, "Contracts").
//!
//! # Layout
//!
//! - [`signing`]: `whsec_` secrets and the `webhook-signature` header.
//! - [`schedule`]: what an HTTP answer means; the retry schedule; `Retry-After`.
//! - [`client`]: the [`Transport`] seam and the hyper client behind it.
//! - [`clock`]: the wall clock, injectable for paused-time tests.
//! - [`worker`]: one task per endpoint: fan-out, partitions, attempts.
//! - [`reply`]: `{"reply": "..."}` answers to `message.received` sent as SMS.
//! - [`Foreign`]: an endpoint that speaks another API's callbacks (Twilio's
//!   status callbacks, Kannel's DLRs, ...; `api::compat`) through the same
//!   durable deliveries, retries and replies.
//!
//! Delivery state lives in the store (`store/deliveries.rs`); this module
//! holds no state a crash could lose.

pub mod client;
pub mod clock;
pub mod reply;
pub mod schedule;
pub mod signing;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use client::{Answer, HttpClient, Outgoing, Transport, TransportError};
pub use clock::{Clock, SystemClock, TokioClock};
pub use reply::Replies;
pub use signing::Secret;
pub use worker::Worker;

use crate::store::{Event, Store, StoreError};

/// A configured receiver, ready to use (built from `[[webhook]]` by the
/// config module, typed: this module parses nothing).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub secrets: Vec<Secret>,
    /// Event types wanted; empty: all.
    pub events: Vec<String>,
    /// How long to wait for the receiver's answer.
    pub timeout: Duration,
    /// None: Standard Webhooks to `url`; Some: another API's callbacks,
    /// built by it (`url` then only names the endpoint in the API).
    pub foreign: Option<Arc<dyn Foreign>>,
}

impl std::fmt::Debug for dyn Foreign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Foreign(..)")
    }
}

impl Endpoint {
    /// Whether this endpoint asked for events of `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }

    /// The partition of `event` if this endpoint wants it. The events only
    /// some messages' callbacks ask for ([`crate::store::CALLBACK_EVENTS`])
    /// are for those callbacks, not for `[[webhook]]` receivers.
    pub fn partition(&self, event: &Event) -> Option<String> {
        match &self.foreign {
            Some(foreign) => foreign.partition(event),
            None if crate::store::CALLBACK_EVENTS.contains(&event.kind.as_str())
                || crate::store::fleet_only(&event.kind) =>
            {
                None
            }
            None => self.wants(&event.kind).then(|| partition_of(event)),
        }
    }
}

/// An endpoint whose requests follow another API (Twilio, Kannel): it picks
/// its events, builds each attempt's request (URL, method, body, signature
/// per event), and reads a reply out of the answer. Deliveries, ordering per
/// message, retries, dead letters and replies are the webhooks' own.
pub trait Foreign: Send + Sync + 'static {
    /// The partition of an event this endpoint delivers (None: not for it).
    fn partition(&self, event: &Event) -> Option<String>;
    /// The request of one attempt (`timeout` is the endpoint's); None:
    /// nothing to send after all (settled as delivered).
    fn request(&self, event: &Event, timeout: Duration) -> Option<Outgoing>;
    /// Text to send back to the contact from a 2xx answer to a
    /// `message.received` event (through consent, once per event).
    fn reply(&self, event: &Event, answer: &Answer) -> Option<String>;
}

/// The partition an event is ordered within: the message it is about, the
/// modem for `modem.status`, the contact for `consent.changed`, else its type.
pub fn partition_of(event: &Event) -> String {
    if let Some(id) = event.data.get("id").and_then(|v| v.as_str()) {
        return id.to_string();
    }
    if let Some(modem) = event.data.get("modem").and_then(|v| v.as_str()) {
        return format!("modem:{modem}");
    }
    if let Some(contact) = event.data.get("contact").and_then(|v| v.as_str()) {
        return format!("contact:{contact}");
    }
    event.kind.clone()
}

/// Register `endpoints` in the store and start one worker each over HTTP on
/// the system clock.
pub async fn start(
    endpoints: Vec<Endpoint>,
    store: &Store,
    replies: Option<Replies>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, StoreError> {
    let registered: Vec<(String, String, Vec<String>)> = endpoints
        .iter()
        .map(|e| (e.id.clone(), e.url.clone(), e.events.clone()))
        .collect();
    store.register_webhooks(&registered).await?;
    let transport = Arc::new(HttpClient::new());
    let clock = Arc::new(SystemClock);
    Ok(endpoints
        .into_iter()
        .map(|endpoint| {
            let worker = Worker {
                store: store.clone(),
                endpoint: Arc::new(endpoint),
                transport: transport.clone(),
                clock: clock.clone(),
                replies: replies.clone(),
            };
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect())
}

/// One gauge's value for an endpoint (None: no sample).
type Gauge = fn(&crate::store::WebhookEndpoint) -> Option<f64>;

/// Prometheus families for `/metrics`: per endpoint, deliveries waiting and
/// dead, whether it is enabled, its last success.
pub fn render_metrics(store: &Store, out: &mut String) {
    use std::fmt::Write;
    let Ok(endpoints) = store.webhooks() else {
        return;
    };
    let families: [(&str, &str, Gauge); 4] = [
        (
            "smsgate_webhook_pending",
            "Deliveries waiting (pending or failed, retry scheduled).",
            |e| Some(e.pending as f64),
        ),
        (
            "smsgate_webhook_dead",
            "Dead letters waiting for an operator.",
            |e| Some(e.dead as f64),
        ),
        (
            "smsgate_webhook_enabled",
            "1 unless a 410 Gone disabled the endpoint.",
            |e| Some(f64::from(u8::from(e.enabled))),
        ),
        (
            "smsgate_webhook_last_success_timestamp_seconds",
            "Unix time of the last 2xx answer.",
            |e| e.last_success_at.map(|t| t.timestamp() as f64),
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for e in &endpoints {
            if let Some(v) = value(e) {
                let _ = writeln!(out, "{name}{{webhook=\"{}\"}} {v}", e.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events a fleet writes for its own streams (a thread's record, a
    /// copy given back, an erasure with the erased number, a cancel passed
    /// on to another gateway's campaign) reach no
    /// receiver, even one that asked for every event; the others do.
    #[test]
    fn the_fleets_own_events_reach_no_receiver() {
        let every = Endpoint {
            id: "crm".into(),
            url: "http://127.0.0.1:9/hook".into(),
            secrets: Vec::new(),
            events: Vec::new(),
            timeout: Duration::from_secs(10),
            foreign: None,
        };
        let event = |kind: &str| Event {
            id: "evt_0000000000000001".into(),
            kind: kind.into(),
            created_at: chrono::Utc::now(),
            data: serde_json::json!({"contact": "+15550000001"}),
        };
        for kind in [
            crate::store::FLEET_THREAD_EVENT,
            crate::store::FLEET_GIVEN_BACK,
            crate::store::FLEET_CONTACT_ERASED,
            crate::store::FLEET_CAMPAIGN_CANCEL,
        ] {
            assert_eq!(every.partition(&event(kind)), None, "{kind}");
        }
        assert!(every.partition(&event("message.received")).is_some());
    }
}
