//! Webhook deliveries: the registered endpoints and their state (disabled by a
//! 410, last success and failure), a per-endpoint cursor over the events tree,
//! and one delivery record per (endpoint, event) with its attempts.
//!
//! Fan-out reads the events after an endpoint's cursor and, in one
//! transaction, writes their deliveries and moves the cursor, so every event
//! is handed to every endpoint exactly once even across crashes (a lost
//! fan-out is redone from the old cursor and writes the same delivery ids).
//! Attempt outcomes are not waited on for durability: losing one to a crash
//! only means the delivery is made again, which at-least-once allows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::{Transactional, Tree};
use tokio::sync::watch;

use super::keys::SEP;
use super::query::Page;
use super::records::Event;
use super::{from_json, from_json_tx, to_json, unwrap_tx, Result, Store, StoreError};

/// The trees of this file, opened with the store.
pub(crate) struct DeliveryTrees {
    /// endpoint id -> EndpointRecord.
    endpoints: Tree,
    /// endpoint id -> the sequence of the next event to fan out (u64 BE;
    /// sled's sequences start at 0).
    cursors: Tree,
    /// endpoint, SEP, event sequence -> Delivery.
    deliveries: Tree,
    /// endpoint, SEP, event sequence -> (): deliveries still to make
    /// (pending or failed), so a restart finds them without a full scan.
    open: Tree,
    /// endpoint, SEP, event sequence -> (): dead letters.
    dead: Tree,
    /// Bumped when an operator retries a delivery or enables an endpoint, so
    /// the worker reloads what it has to do.
    changes: watch::Sender<()>,
}

impl DeliveryTrees {
    pub(crate) fn open(db: &sled::Db) -> Result<DeliveryTrees> {
        Ok(DeliveryTrees {
            endpoints: db.open_tree("webhook_endpoints")?,
            cursors: db.open_tree("webhook_cursors")?,
            deliveries: db.open_tree("webhook_deliveries")?,
            open: db.open_tree("webhook_open")?,
            dead: db.open_tree("webhook_dead")?,
            changes: watch::channel(()).0,
        })
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not tried yet (or scheduled again by an operator).
    Pending,
    /// Tried and failed; another attempt is scheduled.
    Failed,
    Delivered,
    /// Refused for good, or the schedule ran out: waits for an operator.
    Dead,
}

impl DeliveryStatus {
    pub fn parse(text: &str) -> Option<DeliveryStatus> {
        Some(match text {
            "pending" => DeliveryStatus::Pending,
            "failed" => DeliveryStatus::Failed,
            "delivered" => DeliveryStatus::Delivered,
            "dead" => DeliveryStatus::Dead,
            _ => return None,
        })
    }

    fn is_open(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Failed)
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `dly_<event sequence>_<endpoint>`: derived, so a redone fan-out
    /// writes the same record.
    pub id: String,
    pub endpoint: String,
    pub event_id: String,
    pub event_type: String,
    /// Deliveries of one partition (a message, a modem) go one at a time,
    /// in event order.
    pub partition: String,
    pub attempts: u32,
    pub status: DeliveryStatus,
    /// When the next attempt is due (open deliveries only).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The retry schedule counts from here.
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (connection refused, timeout, a status).
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An endpoint as the worker registered it, with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    /// The event filter (empty: all).
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (a 410 from the receiver).
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    /// Deliveries waiting (pending or failed); counted on read.
    #[serde(default)]
    pub pending: u64,
    /// Dead letters; counted on read.
    #[serde(default)]
    pub dead: u64,
}

/// An open delivery as the worker schedules it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDelivery {
    pub seq: u64,
    pub id: String,
    pub partition: String,
    pub due: DateTime<Utc>,
}

/// What came of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// A dead letter.
    Dead,
    /// The receiver answered 410: disable the endpoint; the delivery stays
    /// open and goes out when the endpoint is enabled again.
    Disable,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
}

/// Filters of `GET /v1/webhooks/deliveries`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub endpoint: Option<String>,
}

fn key(endpoint: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(endpoint.len() + 9);
    key.extend_from_slice(endpoint.as_bytes());
    key.push(SEP);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn prefix(endpoint: &str) -> Vec<u8> {
    let mut p = endpoint.as_bytes().to_vec();
    p.push(SEP);
    p
}

fn seq_of_key(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// The event sequence behind an `evt_` id.
pub fn event_seq(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("evt_")?;
    (hex.len() == 16)
        .then(|| u64::from_str_radix(hex, 16).ok())
        .flatten()
}

fn delivery_id(endpoint: &str, seq: u64) -> String {
    format!("dly_{seq:016x}_{endpoint}")
}

/// (endpoint, seq) of a delivery id.
fn parse_delivery_id(id: &str) -> Option<(&str, u64)> {
    let rest = id.strip_prefix("dly_")?;
    let (hex, endpoint) = (rest.get(..16)?, rest.get(17..)?);
    if rest.as_bytes().get(16) != Some(&b'_') || endpoint.is_empty() {
        return None;
    }
    Some((endpoint, u64::from_str_radix(hex, 16).ok()?))
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

impl Store {
    fn trees(&self) -> &DeliveryTrees {
        &self.inner.deliveries
    }

    /// Changes an operator made (retry, enable): the worker reloads on them.
    pub fn webhook_changes(&self) -> watch::Receiver<()> {
        self.trees().changes.subscribe()
    }

    /// Make `endpoints` the configured set: new ones start at the current
    /// end of the events (history is for `GET /v1/events`), known ones keep
    /// their state and cursor, ones no longer configured are forgotten
    /// (their delivery records stay readable).
    pub async fn register_webhooks(
        &self,
        endpoints: &[(String, String, Vec<String>)],
    ) -> Result<()> {
        let t = self.trees();
        let end = match self.inner.events.last()? {
            Some((k, _)) => seq_of_key(&k).map_or(0, |s| s.saturating_add(1)),
            None => 0,
        };
        for entry in t.endpoints.iter() {
            let (k, _) = entry?;
            if !endpoints
                .iter()
                .any(|(id, _, _)| id.as_bytes() == k.as_ref())
            {
                // Configured again later, it starts afresh at the end.
                t.endpoints.remove(&k)?;
                t.cursors.remove(&k)?;
            }
        }
        for (id, url, events) in endpoints {
            let record = match t.endpoints.get(id.as_bytes())? {
                Some(raw) => WebhookEndpoint {
                    url: url.clone(),
                    events: events.clone(),
                    ..from_json(id.as_bytes(), &raw)?
                },
                None => WebhookEndpoint {
                    id: id.clone(),
                    url: url.clone(),
                    events: events.clone(),
                    enabled: true,
                    disabled_reason: None,
                    disabled_at: None,
                    last_success_at: None,
                    last_failure_at: None,
                    last_failure: None,
                    pending: 0,
                    dead: 0,
                },
            };
            let bytes = serde_json::to_vec(&record).map_err(|e| corrupt(id, &e.to_string()))?;
            t.endpoints.insert(id.as_bytes(), bytes)?;
            if t.cursors.get(id.as_bytes())?.is_none() {
                t.cursors.insert(id.as_bytes(), &end.to_be_bytes())?;
            }
        }
        self.sync().await
    }

    /// Every registered endpoint with its pending and dead counts.
    pub fn webhooks(&self) -> Result<Vec<WebhookEndpoint>> {
        let t = self.trees();
        let mut out = Vec::new();
        for entry in t.endpoints.iter() {
            let (k, raw) = entry?;
            let mut e: WebhookEndpoint = from_json(&k, &raw)?;
            e.pending = t.open.scan_prefix(prefix(&e.id)).count() as u64;
            e.dead = t.dead.scan_prefix(prefix(&e.id)).count() as u64;
            out.push(e);
        }
        Ok(out)
    }

    pub fn webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        Ok(self.webhooks()?.into_iter().find(|e| e.id == id))
    }

    /// Hand the events after `endpoint`'s cursor (at most `limit`) to it:
    /// `partition` says which ones it wants and their partition. Returns the
    /// new deliveries and whether more events may be waiting.
    pub fn fan_out(
        &self,
        endpoint: &str,
        partition: impl Fn(&Event) -> Option<String>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<(Vec<OpenDelivery>, bool)> {
        let t = self.trees();
        let at = t.cursors.get(endpoint.as_bytes())?;
        let cursor = match &at {
            Some(raw) => seq_of_key(raw).ok_or_else(|| corrupt(endpoint, "cursor"))?,
            None => 0,
        };
        let mut batch = Vec::new();
        for entry in self.inner.events.range(cursor.to_be_bytes()..).take(limit) {
            let (k, raw) = entry?;
            let seq = seq_of_key(&k).ok_or_else(|| corrupt("events", "key"))?;
            let event: Event = from_json(&k, &raw)?;
            batch.push((seq, partition(&event).map(|p| (p, event))));
        }
        let Some(&(last, _)) = batch.last() else {
            return Ok((Vec::new(), false));
        };
        if batch.iter().all(|(_, wanted)| wanted.is_none()) {
            // Nothing for this endpoint (an endpoint of message.received
            // while the modems send): the cursor alone, one key, moved only
            // if nobody else moved it meanwhile; no transaction (each writes
            // the log out twice).
            let next = last.saturating_add(1).to_be_bytes();
            let _moved_by_another =
                t.cursors
                    .compare_and_swap(endpoint.as_bytes(), at, Some(next.as_slice()))?;
            return Ok((Vec::new(), batch.len() == limit));
        }
        let created = (&t.cursors, &t.deliveries, &t.open)
            .transaction(|(cursors, deliveries, open)| {
                let now_at = cursors
                    .get(endpoint.as_bytes())?
                    .and_then(|raw| seq_of_key(&raw))
                    .unwrap_or(0);
                if now_at != cursor {
                    // Someone else fanned out meanwhile: nothing to do here.
                    return Ok(Vec::new());
                }
                let mut created = Vec::new();
                for (seq, wanted) in &batch {
                    let Some((partition, event)) = wanted else {
                        continue;
                    };
                    let k = key(endpoint, *seq);
                    if deliveries.get(&k)?.is_some() {
                        continue;
                    }
                    let d = Delivery {
                        id: delivery_id(endpoint, *seq),
                        endpoint: endpoint.to_string(),
                        event_id: event.id.clone(),
                        event_type: event.kind.clone(),
                        partition: partition.clone(),
                        attempts: 0,
                        status: DeliveryStatus::Pending,
                        next_attempt_at: Some(now),
                        first_attempt_at: None,
                        last_attempt_at: None,
                        last_status: None,
                        last_error: None,
                        created_at: now,
                        updated_at: now,
                    };
                    deliveries.insert(k.as_slice(), to_json(&d)?)?;
                    open.insert(k, &[])?;
                    created.push(OpenDelivery {
                        seq: *seq,
                        id: d.id,
                        partition: partition.clone(),
                        due: now,
                    });
                }
                cursors.insert(endpoint.as_bytes(), &last.saturating_add(1).to_be_bytes())?;
                Ok(created)
            })
            .map_err(unwrap_tx)?;
        Ok((created, batch.len() == limit))
    }

    /// An endpoint's open deliveries in event order (a restart resumes them).
    pub fn open_deliveries(&self, endpoint: &str) -> Result<Vec<OpenDelivery>> {
        let t = self.trees();
        let mut out = Vec::new();
        for entry in t.open.scan_prefix(prefix(endpoint)) {
            let (k, _) = entry?;
            let Some(raw) = t.deliveries.get(&k)? else {
                continue;
            };
            let d: Delivery = from_json(&k, &raw)?;
            if let Some(seq) = seq_of_key(&k) {
                out.push(OpenDelivery {
                    seq,
                    due: d.next_attempt_at.unwrap_or(d.created_at),
                    id: d.id,
                    partition: d.partition,
                });
            }
        }
        Ok(out)
    }

    pub fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        let Some((endpoint, seq)) = parse_delivery_id(id) else {
            return Ok(None);
        };
        let k = key(endpoint, seq);
        match self.trees().deliveries.get(&k)? {
            Some(raw) => Ok(Some(from_json(&k, &raw)?)),
            None => Ok(None),
        }
    }

    /// One event by id.
    pub fn event(&self, id: &str) -> Result<Option<Event>> {
        let Some(seq) = event_seq(id) else {
            return Ok(None);
        };
        match self.inner.events.get(seq.to_be_bytes())? {
            Some(raw) => Ok(Some(from_json(id.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// The newest event's id (a live stream without `Last-Event-ID` starts
    /// after it).
    pub fn last_event_id(&self) -> Result<Option<String>> {
        Ok(self
            .inner
            .events
            .last()?
            .and_then(|(k, _)| seq_of_key(&k))
            .map(|seq| format!("evt_{seq:016x}")))
    }

    /// Record an attempt: the delivery's state, its indexes and its
    /// endpoint's last success or failure (and disabling, on a 410).
    pub fn record_attempt(&self, id: &str, attempt: &Attempt) -> Result<Option<Delivery>> {
        let Some((endpoint, seq)) = parse_delivery_id(id) else {
            return Ok(None);
        };
        let t = self.trees();
        let k = key(endpoint, seq);
        (&t.deliveries, &t.open, &t.dead, &t.endpoints)
            .transaction(|(deliveries, open, dead, endpoints)| {
                let Some(raw) = deliveries.get(&k)? else {
                    return Ok(None);
                };
                let mut d: Delivery = from_json_tx(&k, &raw)?;
                d.attempts += 1;
                d.first_attempt_at.get_or_insert(attempt.at);
                d.last_attempt_at = Some(attempt.at);
                d.last_status = attempt.status;
                d.last_error = attempt.error.clone();
                d.updated_at = attempt.at;
                (d.status, d.next_attempt_at) = match &attempt.outcome {
                    AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None),
                    AttemptOutcome::Retry(at) => (DeliveryStatus::Failed, Some(*at)),
                    AttemptOutcome::Dead => (DeliveryStatus::Dead, None),
                    AttemptOutcome::Disable => (DeliveryStatus::Failed, Some(attempt.at)),
                };
                deliveries.insert(k.as_slice(), to_json(&d)?)?;
                if d.status.is_open() {
                    open.insert(k.as_slice(), &[])?;
                } else {
                    open.remove(k.as_slice())?;
                }
                if d.status == DeliveryStatus::Dead {
                    dead.insert(k.as_slice(), &[])?;
                }
                if let Some(raw) = endpoints.get(endpoint.as_bytes())? {
                    let mut e: WebhookEndpoint = from_json_tx(endpoint.as_bytes(), &raw)?;
                    if attempt.outcome == AttemptOutcome::Delivered {
                        e.last_success_at = Some(attempt.at);
                    } else {
                        e.last_failure_at = Some(attempt.at);
                        e.last_failure = attempt.error.clone();
                    }
                    if attempt.outcome == AttemptOutcome::Disable {
                        e.enabled = false;
                        e.disabled_at = Some(attempt.at);
                        e.disabled_reason = Some(
                            "the receiver answered 410 Gone; POST /v1/webhooks/{id}/enable resumes"
                                .replace("{id}", endpoint),
                        );
                    }
                    endpoints.insert(endpoint.as_bytes(), to_json(&e)?)?;
                }
                Ok(Some(d))
            })
            .map_err(unwrap_tx)
    }

    /// An operator's retry: the delivery is due now with a fresh schedule
    /// (a dead letter leaves the dead letters). Durable when it returns.
    pub async fn retry_delivery(&self, id: &str, now: DateTime<Utc>) -> Result<Option<Delivery>> {
        let Some((endpoint, seq)) = parse_delivery_id(id) else {
            return Ok(None);
        };
        let t = self.trees();
        let k = key(endpoint, seq);
        let outcome = (&t.deliveries, &t.open, &t.dead)
            .transaction(|(deliveries, open, dead)| {
                let Some(raw) = deliveries.get(&k)? else {
                    return Ok(None);
                };
                let mut d: Delivery = from_json_tx(&k, &raw)?;
                d.status = DeliveryStatus::Pending;
                d.attempts = 0;
                d.first_attempt_at = None;
                d.next_attempt_at = Some(now);
                d.updated_at = now;
                deliveries.insert(k.as_slice(), to_json(&d)?)?;
                open.insert(k.as_slice(), &[])?;
                dead.remove(k.as_slice())?;
                Ok(Some(d))
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        t.changes.send_replace(());
        Ok(outcome)
    }

    /// Enable an endpoint a 410 disabled. Durable when it returns.
    pub async fn enable_webhook(&self, id: &str) -> Result<Option<WebhookEndpoint>> {
        let t = self.trees();
        let found = t
            .endpoints
            .transaction(|endpoints| {
                let Some(raw) = endpoints.get(id.as_bytes())? else {
                    return Ok(false);
                };
                let mut e: WebhookEndpoint = from_json_tx(id.as_bytes(), &raw)?;
                e.enabled = true;
                e.disabled_reason = None;
                e.disabled_at = None;
                endpoints.insert(id.as_bytes(), to_json(&e)?)?;
                Ok(true)
            })
            .map_err(unwrap_tx)?;
        if !found {
            return Ok(None);
        }
        self.sync().await?;
        t.changes.send_replace(());
        self.webhook(id)
    }

    /// Deliveries matching `filter`, by endpoint then event order.
    pub fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<Delivery>> {
        let t = self.trees();
        // The open and dead indexes are small; delivered ones need the records.
        let index = match filter.status {
            Some(DeliveryStatus::Pending | DeliveryStatus::Failed) => &t.open,
            Some(DeliveryStatus::Dead) => &t.dead,
            _ => &t.deliveries,
        };
        let start = match after {
            Some(cursor) => {
                let mut k =
                    crate::pdu::hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
                k.push(0);
                k
            }
            None => filter.endpoint.as_deref().map(prefix).unwrap_or_default(),
        };
        let wanted = filter.endpoint.as_deref().map(prefix);
        let mut items = Vec::with_capacity(limit);
        let mut last = None;
        let mut more = false;
        for entry in index.range(start..) {
            let (k, _) = entry?;
            if wanted.as_ref().is_some_and(|p| !k.starts_with(p)) {
                break;
            }
            let Some(raw) = t.deliveries.get(&k)? else {
                continue;
            };
            let d: Delivery = from_json(&k, &raw)?;
            if filter.status.is_some_and(|s| s != d.status) {
                continue;
            }
            if items.len() == limit {
                more = true;
                break;
            }
            items.push(d);
            last = Some(k);
        }
        Ok(Page {
            items,
            next_cursor: if more {
                last.map(|k| crate::pdu::hex::encode(&k))
            } else {
                None
            },
        })
    }
}

/// Events looked at per pruning transaction.
const PRUNE_BATCH: usize = 1_000;

/// The time of an event, all that pruning reads of it.
#[derive(Deserialize)]
struct EventTime {
    created_at: DateTime<Utc>,
}

impl Store {
    /// Retention of events and webhook deliveries: remove the events created
    /// before `before` and their delivery records, except what is still needed.
    /// Returns (events removed, deliveries removed); durable when it returns.
    ///
    /// - Pruning stops at the first event at or after the cursor of any
    ///   configured endpoint (not yet fanned out to it; an endpoint without a
    ///   cursor counts as at 0, as `fan_out` reads it) and at the first event
    ///   created at or after `before`: events are taken in sequence order, so
    ///   an older event that follows a newer one waits for the next run.
    /// - An event with an open (pending, failed) or dead delivery stays with
    ///   all its delivery records (an operator may retry a dead letter, which
    ///   needs its event); later events are still pruned around it. The
    ///   deliveries of endpoints no longer configured are never made and
    ///   hold nothing back.
    /// - Other events go with their delivery records (all delivered) and any
    ///   `open` or `dead` index entries of them.
    ///
    /// Works in transactions of at most `PRUNE_BATCH` (1,000) events, each on
    /// a blocking thread, so writers wait on it only briefly.
    ///
    /// What clients see afterwards: `Store::event` and `Store::delivery` of a
    /// pruned id are None (not found). A pruned id is still a valid position:
    /// `GET /v1/events?after=<pruned id>` and an SSE stream resumed with a
    /// pruned `Last-Event-ID` continue with the first kept event after it
    /// (`events_after` is a range scan), without any sign that events were
    /// skipped; a client away longer than the retention misses them. Event
    /// ids are sled's `generate_id` sequence, which keeps growing, so ids are
    /// never reused, across restarts too.
    pub async fn prune_events_before(&self, before: DateTime<Utc>) -> Result<(usize, usize)> {
        let (mut events, mut deliveries, mut from) = (0, 0, Some(0));
        while let Some(start) = from {
            let (e, d, next) = self
                .blocking(move |store| store.prune_events_batch(before, start))
                .await?;
            (events, deliveries, from) = (events + e, deliveries + d, next);
        }
        if events + deliveries > 0 {
            self.sync().await?;
        }
        Ok((events, deliveries))
    }

    /// One batch of [`Store::prune_events_before`] from event sequence
    /// `start`: (events removed, deliveries removed, where the next starts).
    fn prune_events_batch(
        &self,
        before: DateTime<Utc>,
        start: u64,
    ) -> Result<(usize, usize, Option<u64>)> {
        let t = self.trees();
        let mut bound = u64::MAX;
        let mut configured = std::collections::HashSet::new();
        for entry in t.endpoints.iter() {
            let (id, _) = entry?;
            configured.insert(String::from_utf8_lossy(&id).into_owned());
            bound = bound.min(match t.cursors.get(&id)? {
                Some(raw) => seq_of_key(&raw)
                    .ok_or_else(|| corrupt(&String::from_utf8_lossy(&id), "cursor"))?,
                None => 0,
            });
        }
        // Nor what the conversation engine has yet to read.
        if let Some(engine) = self.engine_cursor_if_set()? {
            bound = bound.min(engine);
        }
        // Nor what the metrics have yet to count.
        if let Some(metrics) = self.metrics_cursor_if_set()? {
            bound = bound.min(metrics);
        }
        let mut seqs = Vec::new();
        if start < bound {
            for entry in self
                .inner
                .events
                .range(start.to_be_bytes()..bound.to_be_bytes())
            {
                let (k, raw) = entry?;
                let seq = seq_of_key(&k).ok_or_else(|| corrupt("events", "key"))?;
                if from_json::<EventTime>(&k, &raw)?.created_at >= before {
                    break;
                }
                seqs.push(seq);
                if seqs.len() == PRUNE_BATCH {
                    break;
                }
            }
        }
        let (Some(&lo), Some(&hi)) = (seqs.first(), seqs.last()) else {
            return Ok((0, 0, None));
        };
        // The delivery keys of these events, of every endpoint that has
        // records (configured or not): one range per endpoint prefix.
        let mut found: BTreeMap<u64, Vec<sled::IVec>> = BTreeMap::new();
        for p in self.delivery_prefixes()? {
            let at = |seq: u64| [p.as_slice(), &seq.to_be_bytes()].concat();
            for entry in t.deliveries.range(at(lo)..=at(hi)) {
                let (k, _) = entry?;
                if let Some(seq) = seq_of_key(&k) {
                    found.entry(seq).or_default().push(k);
                }
            }
        }
        let (events, deliveries) = (&self.inner.events, &t.deliveries, &t.open, &t.dead)
            .transaction(|(events, deliveries, open, dead)| {
                let (mut gone, mut dropped) = (0, 0);
                'event: for seq in &seqs {
                    let keys = found.get(seq).map(Vec::as_slice).unwrap_or_default();
                    for k in keys {
                        if let Some(raw) = deliveries.get(k)? {
                            let d: Delivery = from_json_tx(k, &raw)?;
                            // A removed endpoint's deliveries are never
                            // made: they hold nothing back.
                            if d.status != DeliveryStatus::Delivered
                                && configured.contains(&d.endpoint)
                            {
                                continue 'event;
                            }
                        }
                    }
                    if events.remove(&seq.to_be_bytes())?.is_none() {
                        continue; // a concurrent pruning took it
                    }
                    gone += 1;
                    for k in keys {
                        dropped += usize::from(deliveries.remove(k)?.is_some());
                        open.remove(k)?;
                        dead.remove(k)?;
                    }
                }
                Ok((gone, dropped))
            })
            .map_err(unwrap_tx)?;
        let next = (seqs.len() == PRUNE_BATCH)
            .then(|| hi.checked_add(1))
            .flatten();
        Ok((events, deliveries, next))
    }
}

impl Store {
    /// The key prefixes of the delivery records: one per endpoint that has
    /// records, configured or not (a record's key is its prefix and its
    /// event's sequence).
    fn delivery_prefixes(&self) -> Result<Vec<Vec<u8>>> {
        let deliveries = &self.trees().deliveries;
        let mut prefixes = Vec::new();
        let mut next_prefix = Vec::new();
        while let Some(entry) = deliveries.range(next_prefix.as_slice()..).next() {
            let (k, _) = entry?;
            let cut = k.len().checked_sub(8);
            let p = cut
                .and_then(|cut| k.get(..cut))
                .ok_or_else(|| corrupt("webhook_deliveries", "key"))?;
            next_prefix = [p, &u64::MAX.to_be_bytes()].concat();
            next_prefix.push(0);
            prefixes.push(p.to_vec());
        }
        Ok(prefixes)
    }

    /// Remove the events about `contact` with their delivery records (part
    /// of an erasure; not a fleet's announcement of the erasure, nor an
    /// opt-out's `consent.changed`, which may still be on their way to the
    /// other gateways and the receivers): a webhook that has not had one
    /// never gets it, and `GET /v1/events` no longer shows it. A scan of the event log
    /// (what retention keeps). Returns how many events went.
    pub(crate) fn erase_events_of(&self, contact: &str) -> Result<usize> {
        #[derive(Deserialize)]
        struct About {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            data: serde_json::Value,
        }
        let needle = contact.as_bytes();
        let mut keys = Vec::new();
        for entry in self.inner.events.iter() {
            let (k, raw) = entry?;
            if needle.is_empty() || !raw.windows(needle.len()).any(|w| w == needle) {
                continue;
            }
            let Ok(about) = serde_json::from_slice::<About>(&raw) else {
                continue;
            };
            // An opt-out's change stays (and a fleet's announcement of the
            // erasure): the opt-out survives the erasure, and must still
            // reach the other gateways and the webhook receivers.
            let kept = about.kind == super::FLEET_CONTACT_ERASED
                || (about.kind == "consent.changed" && about.data["status"] == "opted_out");
            if !kept && about.data["contact"] == contact {
                keys.push(k);
            }
        }
        let t = self.trees();
        let prefixes = self.delivery_prefixes()?;
        for chunk in keys.chunks(PRUNE_BATCH) {
            (&self.inner.events, &t.deliveries, &t.open, &t.dead)
                .transaction(|(events, deliveries, open, dead)| {
                    for k in chunk {
                        events.remove(k)?;
                        for p in &prefixes {
                            let d = [p.as_slice(), k.as_ref()].concat();
                            deliveries.remove(d.as_slice())?;
                            open.remove(d.as_slice())?;
                            dead.remove(d.as_slice())?;
                        }
                    }
                    Ok(())
                })
                .map_err(unwrap_tx)?;
        }
        Ok(keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;

    fn by_message(e: &Event) -> Option<String> {
        e.data["id"].as_str().map(str::to_string)
    }

    /// An erasure takes the contact's events out of the log, not the
    /// others' nor a fleet's announcement of the erasure nor an opt-out
    /// (still to be published and delivered).
    #[tokio::test]
    async fn the_events_of_an_erased_contact_go() {
        let s = TempStore::new();
        let emit = |kind: &'static str, contact: &'static str| {
            let store = s.store.clone();
            async move {
                let data = serde_json::json!({"contact": contact, "body": "see you"});
                store.emit(kind, data).await.unwrap()
            }
        };
        emit("message.sent", "+15550000071").await;
        emit("thread.note_added", "+15550000071").await;
        let kept = emit("message.sent", "+15550000072").await;
        let announced = emit(crate::store::FLEET_CONTACT_ERASED, "+15550000071").await;
        let consent = |status: &str| {
            let data = serde_json::json!({"contact": "+15550000071", "status": status});
            s.store.emit("consent.changed", data)
        };
        let opt_out = consent("opted_out").await.unwrap();
        consent("opted_in").await.unwrap();
        assert_eq!(s.store.erase_events_of("+15550000071").unwrap(), 3);
        let left: Vec<String> = s
            .store
            .events_from(0, 10)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.id)
            .collect();
        assert_eq!(left, vec![kept.id, announced.id, opt_out.id]);
    }

    /// Events an endpoint does not want move its cursor alone (the first
    /// time from no cursor at all), and are not read again; a wanted one
    /// after them is handed over once.
    #[tokio::test]
    async fn unwanted_events_move_the_cursor_past_them() {
        let s = TempStore::new();
        let emit = |kind: &'static str, id: &'static str| {
            let store = s.store.clone();
            async move {
                store
                    .emit(kind, serde_json::json!({ "id": id }))
                    .await
                    .unwrap()
            }
        };
        let received = |e: &Event| {
            (e.kind == "message.received")
                .then(|| by_message(e))
                .flatten()
        };
        for _ in 0..3 {
            emit("message.sent", "msg_out").await;
        }
        let now = Utc::now();
        assert_eq!(
            s.store.fan_out("crm", received, now, 2).unwrap(),
            (Vec::new(), true)
        );
        assert_eq!(
            s.store.fan_out("crm", received, now, 2).unwrap(),
            (Vec::new(), false)
        );
        assert_eq!(
            s.store.fan_out("crm", received, now, 2).unwrap(),
            (Vec::new(), false)
        );
        let wanted = emit("message.received", "msg_in").await;
        let (created, more) = s.store.fan_out("crm", received, now, 2).unwrap();
        assert_eq!((created.len(), more), (1, false));
        let d = s.store.delivery(&created[0].id).unwrap().unwrap();
        assert_eq!(d.event_id, wanted.id);
        assert!(s
            .store
            .fan_out("crm", received, now, 2)
            .unwrap()
            .0
            .is_empty());
    }

    #[tokio::test]
    async fn fan_out_once_and_resume_after_a_restart() {
        let mut s = TempStore::new();
        s.store
            .register_webhooks(&[("crm".into(), "http://x/".into(), vec![])])
            .await
            .unwrap();
        for i in 0..5 {
            s.store
                .emit(
                    "message.sent",
                    serde_json::json!({"id": format!("msg_{}", i % 2)}),
                )
                .await
                .unwrap();
        }
        let now = Utc::now();
        let (created, more) = s.store.fan_out("crm", by_message, now, 3).unwrap();
        assert_eq!((created.len(), more), (3, true));
        let (rest, more) = s.store.fan_out("crm", by_message, now, 3).unwrap();
        assert_eq!((rest.len(), more), (2, false));
        assert!(s
            .store
            .fan_out("crm", by_message, now, 3)
            .unwrap()
            .0
            .is_empty());
        let first = &created[0];
        assert_eq!(first.partition, "msg_0");
        let d = s.store.delivery(&first.id).unwrap().unwrap();
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(
            s.store.event(&d.event_id).unwrap().unwrap().kind,
            "message.sent"
        );

        let at = Utc::now();
        s.store
            .record_attempt(
                &first.id,
                &Attempt {
                    at,
                    status: Some(200),
                    error: None,
                    outcome: AttemptOutcome::Delivered,
                },
            )
            .unwrap();
        s.store
            .record_attempt(
                &created[1].id,
                &Attempt {
                    at,
                    status: Some(400),
                    error: Some("400".into()),
                    outcome: AttemptOutcome::Dead,
                },
            )
            .unwrap();
        s.store.sync().await.unwrap();
        s.restart();
        let open = s.store.open_deliveries("crm").unwrap();
        assert_eq!(open.len(), 3);
        assert!(open.windows(2).all(|w| w[0].seq < w[1].seq));
        let hooks = s.store.webhooks().unwrap();
        assert_eq!((hooks[0].pending, hooks[0].dead), (3, 1));
        let dead = s
            .store
            .list_deliveries(
                &DeliveryFilter {
                    status: Some(DeliveryStatus::Dead),
                    endpoint: None,
                },
                None,
                10,
            )
            .unwrap();
        assert_eq!(dead.items[0].id, created[1].id);
        let again = s
            .store
            .retry_delivery(&created[1].id, at)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((again.status, again.attempts), (DeliveryStatus::Pending, 0));
        assert_eq!(s.store.webhooks().unwrap()[0].dead, 0);
    }

    #[tokio::test]
    async fn a_new_endpoint_starts_at_the_end_and_paging_works() {
        let s = TempStore::new();
        s.store
            .emit("message.sent", serde_json::json!({"id": "old"}))
            .await
            .unwrap();
        s.store
            .register_webhooks(&[("a".into(), "http://x/".into(), vec![])])
            .await
            .unwrap();
        for i in 0..5 {
            s.store
                .emit("message.sent", serde_json::json!({"id": i.to_string()}))
                .await
                .unwrap();
        }
        let (created, _) = s.store.fan_out("a", by_message, Utc::now(), 100).unwrap();
        assert_eq!(
            created.len(),
            5,
            "history is not replayed to a new endpoint"
        );
        let filter = DeliveryFilter {
            status: Some(DeliveryStatus::Pending),
            endpoint: Some("a".into()),
        };
        let page = s.store.list_deliveries(&filter, None, 2).unwrap();
        let next = s
            .store
            .list_deliveries(&filter, page.next_cursor.as_deref(), 10)
            .unwrap();
        assert_eq!((page.items.len(), next.items.len()), (2, 3));
        assert_eq!(next.next_cursor, None);
        assert_eq!(parse_delivery_id(&created[0].id).map(|(e, _)| e), Some("a"));
        assert_eq!(parse_delivery_id("dly_zz"), None);
    }

    fn attempt(outcome: AttemptOutcome) -> Attempt {
        Attempt {
            at: Utc::now(),
            status: None,
            error: None,
            outcome,
        }
    }

    /// Emit `n` events, each for its own message; a cutoff after them.
    async fn emit_n(store: &Store, n: usize) -> (Vec<Event>, DateTime<Utc>) {
        let mut out = Vec::new();
        for i in 0..n {
            let data = serde_json::json!({"id": format!("msg_{i}")});
            out.push(store.emit("message.sent", data).await.unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        (out, Utc::now())
    }

    #[tokio::test]
    async fn pruning_keeps_open_dead_and_unsent_events() {
        let mut s = TempStore::new();
        let hook = ("crm".to_string(), "http://x/".to_string(), vec![]);
        s.store.register_webhooks(&[hook]).await.unwrap();
        let (early, mid) = emit_n(&s.store, 2).await;
        let (late, cutoff) = emit_n(&s.store, 5).await;
        let (new, _) = emit_n(&s.store, 1).await;
        let old: Vec<Event> = early.into_iter().chain(late).collect();
        let (d, _) = s.store.fan_out("crm", by_message, Utc::now(), 5).unwrap();
        for i in [0, 1, 3] {
            let delivered = attempt(AttemptOutcome::Delivered);
            s.store.record_attempt(&d[i].id, &delivered).unwrap();
        }
        let dead = attempt(AttemptOutcome::Dead);
        s.store.record_attempt(&d[4].id, &dead).unwrap();
        // Only the time holds back: events 0 and 1.
        assert_eq!(s.store.prune_events_before(mid).await.unwrap(), (2, 2));
        // 2 is open, 3 delivered, 4 dead, 5 and 6 not fanned out yet.
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (1, 1));
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (0, 0));
        s.restart();
        for gone in [0, 1, 3] {
            assert_eq!(s.store.event(&old[gone].id).unwrap(), None);
            assert_eq!(s.store.delivery(&d[gone].id).unwrap(), None);
        }
        let status = |i: usize| s.store.delivery(&d[i].id).unwrap().map(|d| d.status);
        assert_eq!(status(2), Some(DeliveryStatus::Pending));
        assert_eq!(status(4), Some(DeliveryStatus::Dead));
        let ids = |after: &str| -> Vec<String> {
            let events = s.store.events_after(Some(after), 10).unwrap();
            events.into_iter().map(|e| e.id).collect()
        };
        let kept = [2, 4, 5, 6].map(|i| old[i].id.clone());
        assert_eq!(ids(&old[0].id), [&kept[..], &[new[0].id.clone()]].concat());
        assert_eq!(
            ids(&old[3].id)[0],
            old[4].id,
            "a pruned id resumes after it"
        );
        let hooks = s.store.webhooks().unwrap();
        assert_eq!((hooks[0].pending, hooks[0].dead), (1, 1));
        let (rest, _) = s.store.fan_out("crm", by_message, Utc::now(), 10).unwrap();
        assert_eq!(
            rest.len(),
            3,
            "events after the cursor are still handed out"
        );
    }

    #[tokio::test]
    async fn pruning_stops_at_the_smallest_cursor() {
        let s = TempStore::new();
        let hook = |id: &str| (id.to_string(), "http://x/".to_string(), vec![]);
        s.store
            .register_webhooks(&[hook("a"), hook("b")])
            .await
            .unwrap();
        let (events, cutoff) = emit_n(&s.store, 4).await;
        let (a, _) = s.store.fan_out("a", by_message, Utc::now(), 10).unwrap();
        let (b, _) = s.store.fan_out("b", by_message, Utc::now(), 2).unwrap();
        for d in a.iter().chain(&b) {
            let delivered = attempt(AttemptOutcome::Delivered);
            s.store.record_attempt(&d.id, &delivered).unwrap();
        }
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (2, 4));
        assert_eq!(s.store.event(&events[1].id).unwrap(), None);
        assert!(s.store.event(&events[2].id).unwrap().is_some());
        assert!(s.store.delivery(&a[2].id).unwrap().is_some());
        // Forgotten, b holds nothing back; a's delivered records go too.
        s.store.register_webhooks(&[hook("a")]).await.unwrap();
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (2, 2));
        assert_eq!(s.store.delivery(&a[3].id).unwrap(), None);
    }

    #[tokio::test]
    async fn pruning_keeps_what_the_conversation_engine_has_not_read() {
        let s = TempStore::new();
        let (events, cutoff) = emit_n(&s.store, 4).await;
        // The engine has read the first two events only.
        let read = event_seq(&events[1].id).unwrap();
        s.store.advance_engine_cursor(read).unwrap();
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (2, 0));
        assert_eq!(s.store.event(&events[1].id).unwrap(), None);
        assert!(s.store.event(&events[2].id).unwrap().is_some());
        assert!(s.store.event(&events[3].id).unwrap().is_some());
    }

    #[tokio::test]
    async fn pruning_keeps_what_the_metrics_have_not_counted() {
        let s = TempStore::new();
        let (events, cutoff) = emit_n(&s.store, 4).await;
        // The engine has read all four, the metrics counted the first only.
        s.store
            .advance_engine_cursor(event_seq(&events[3].id).unwrap())
            .unwrap();
        let counting = crate::conversation::metrics::Counting::default();
        let counted = event_seq(&events[0].id).unwrap();
        s.store.record_metrics(&[], counted, &counting).unwrap();
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (1, 0));
        assert_eq!(s.store.event(&events[0].id).unwrap(), None);
        assert!(s.store.event(&events[1].id).unwrap().is_some());
        // Counted through the third: it goes too, the fourth stays.
        let counted = event_seq(&events[2].id).unwrap();
        s.store.record_metrics(&[], counted, &counting).unwrap();
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (2, 0));
        assert!(s.store.event(&events[3].id).unwrap().is_some());
    }

    #[tokio::test]
    async fn without_endpoints_old_events_go_and_ids_keep_growing() {
        let mut s = TempStore::new();
        let (old, cutoff) = emit_n(&s.store, 3).await;
        let (new, _) = emit_n(&s.store, 1).await;
        assert_eq!(s.store.prune_events_before(cutoff).await.unwrap(), (3, 0));
        assert_eq!(s.store.events_after(None, 10).unwrap(), new);
        assert_eq!(s.store.events_after(Some(&old[0].id), 10).unwrap(), new);
        let far = Utc::now() + chrono::Duration::days(1);
        assert_eq!(s.store.prune_events_before(far).await.unwrap(), (1, 0));
        s.restart();
        assert!(s.store.events_after(None, 10).unwrap().is_empty());
        assert_eq!(s.store.last_event_id().unwrap(), None);
        let next = s.store.emit("modem.status", serde_json::json!({})).await;
        let next = event_seq(&next.unwrap().id).unwrap();
        assert!(
            next > event_seq(&new[0].id).unwrap(),
            "ids are never reused"
        );
    }

    #[tokio::test]
    async fn pruning_goes_in_batches() {
        let s = TempStore::new();
        let hook = ("a".to_string(), "http://x/".to_string(), vec![]);
        s.store.register_webhooks(&[hook]).await.unwrap();
        let n = 2 * PRUNE_BATCH + 500;
        let at = Utc::now() - chrono::Duration::hours(1);
        s.store
            .inner
            .events
            .transaction(|events| {
                for i in 0..n {
                    let data = serde_json::json!({"id": format!("msg_{i}")});
                    crate::store::push_event(events, "message.sent", at, data)?;
                }
                Ok(())
            })
            .unwrap();
        let (new, _) = emit_n(&s.store, 1).await;
        let (d, _) = s.store.fan_out("a", by_message, Utc::now(), n + 1).unwrap();
        let open = PRUNE_BATCH + 500;
        for (i, d) in d.iter().enumerate().filter(|&(i, _)| i != open && i < n) {
            let outcome = if i == 10 {
                AttemptOutcome::Dead
            } else {
                AttemptOutcome::Delivered
            };
            s.store.record_attempt(&d.id, &attempt(outcome)).unwrap();
        }
        let before = Utc::now() - chrono::Duration::minutes(1);
        assert_eq!(
            s.store.prune_events_before(before).await.unwrap(),
            (n - 2, n - 2)
        );
        let left = s.store.events_after(None, 10).unwrap();
        let seqs: Vec<u64> = left.iter().filter_map(|e| event_seq(&e.id)).collect();
        assert_eq!(seqs, [d[10].seq, d[open].seq, d[n].seq]);
        assert_eq!(left[2], new[0]);
    }
}
