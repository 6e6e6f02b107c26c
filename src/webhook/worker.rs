//! One worker per endpoint: fans new events out to deliveries as soon as the
//! store says they are durable, and makes the deliveries, at most one attempt
//! in flight per partition (a message, a modem) so events about one message
//! arrive in order, while up to [`CONCURRENCY`] partitions proceed at once so
//! a slow one holds up nobody else. Between events it sleeps until the next
//! retry is due.
//!
//! What is due lives in memory (the [`Scheduler`]), rebuilt from the store's
//! open deliveries at start and whenever an operator retries a delivery or
//! enables the endpoint; the store stays the truth.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::client::{Outgoing, Transport};
use super::clock::Clock;
use super::reply::{reply_text, Replies};
use super::schedule::{self, Verdict};
use super::Endpoint;
use crate::store::{Attempt, AttemptOutcome, OpenDelivery, Store};

/// Attempts in flight at once per endpoint.
pub const CONCURRENCY: usize = 16;

/// Events read per fan-out transaction.
const FAN_OUT_BATCH: usize = 512;

/// How long to wait before trying again after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// Open deliveries by partition, and which partition heads are due.
#[derive(Default)]
pub struct Scheduler {
    /// Partition -> its open deliveries in event order; the head is next.
    queues: HashMap<String, VecDeque<OpenDelivery>>,
    /// (head's event sequence, partition): due now, oldest event first.
    ready: BTreeSet<(u64, String)>,
    /// (due, head's sequence, partition): due later.
    timers: BTreeSet<(DateTime<Utc>, u64, String)>,
    /// Partitions with an attempt in flight: not armed until it ends.
    in_flight: HashSet<String>,
}

impl Scheduler {
    /// Add a new delivery (event order: after what its partition has).
    pub fn add(&mut self, d: OpenDelivery, now: DateTime<Utc>) {
        let partition = d.partition.clone();
        let queue = self.queues.entry(partition.clone()).or_default();
        let was_empty = queue.is_empty();
        queue.push_back(d);
        if was_empty && !self.in_flight.contains(&partition) {
            self.arm(&partition, now);
        }
    }

    /// Replace everything with `open` (in event order), keeping in-flight
    /// partitions unarmed until their attempt ends.
    pub fn reload(&mut self, open: Vec<OpenDelivery>, now: DateTime<Utc>) {
        self.queues.clear();
        self.ready.clear();
        self.timers.clear();
        for d in open {
            self.queues
                .entry(d.partition.clone())
                .or_default()
                .push_back(d);
        }
        let idle: Vec<String> = self
            .queues
            .keys()
            .filter(|p| !self.in_flight.contains(*p))
            .cloned()
            .collect();
        for p in idle {
            self.arm(&p, now);
        }
    }

    fn arm(&mut self, partition: &str, now: DateTime<Utc>) {
        match self.queues.get(partition).and_then(VecDeque::front) {
            Some(head) if head.due <= now => {
                self.ready.insert((head.seq, partition.to_string()));
            }
            Some(head) => {
                self.timers
                    .insert((head.due, head.seq, partition.to_string()));
            }
            None => {
                self.queues.remove(partition);
            }
        }
    }

    /// Move the heads that have come due to the ready set.
    pub fn promote(&mut self, now: DateTime<Utc>) {
        while let Some((due, seq, partition)) = self.timers.first().cloned() {
            if due > now {
                break;
            }
            self.timers.pop_first();
            self.ready.insert((seq, partition));
        }
    }

    /// The next delivery to attempt, its partition marked in flight.
    pub fn take(&mut self) -> Option<OpenDelivery> {
        loop {
            let (_, partition) = self.ready.pop_first()?;
            if let Some(head) = self.queues.get(&partition).and_then(VecDeque::front) {
                self.in_flight.insert(partition);
                return Some(head.clone());
            }
        }
    }

    /// An attempt ended: the head goes (None) or waits until `next`.
    pub fn complete(
        &mut self,
        partition: &str,
        seq: u64,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) {
        self.in_flight.remove(partition);
        if let Some(queue) = self.queues.get_mut(partition) {
            if queue.front().is_some_and(|h| h.seq == seq) {
                match next {
                    None => {
                        queue.pop_front();
                    }
                    Some(at) => {
                        if let Some(head) = queue.front_mut() {
                            head.due = at;
                        }
                    }
                }
            }
        }
        self.arm(partition, now);
    }

    /// When the earliest waiting head comes due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.timers.first().map(|(due, _, _)| *due)
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Open deliveries known (in flight included).
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

/// One endpoint's worker.
pub struct Worker<T: Transport, C: Clock> {
    pub store: Store,
    pub endpoint: Arc<Endpoint>,
    pub transport: Arc<T>,
    pub clock: Arc<C>,
    /// Reply by response; None: answers' bodies are ignored.
    pub replies: Option<Replies>,
}

/// What an attempt task hands back to the loop.
struct Ended {
    partition: String,
    seq: u64,
    /// None: the delivery is finished (delivered or dead) or gone.
    next: Option<DateTime<Utc>>,
    disabled: bool,
}

impl<T: Transport, C: Clock> Worker<T, C> {
    /// Run until `stop` turns true. Attempts in flight then are abandoned:
    /// they stay open in the store and are made again after a restart.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let id = this.endpoint.id.clone();
        let mut new_events = this.store.event_notifier();
        let mut changes = this.store.webhook_changes();
        let mut scheduler = Scheduler::default();
        let mut tasks: JoinSet<Ended> = JoinSet::new();
        let mut reload = true;
        let mut fan_out = true;
        let mut enabled = true;
        // Set when the store failed: wait a little instead of spinning.
        let mut pause = false;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = this.clock.now();
            if reload {
                match this.load() {
                    Ok((open, on)) => {
                        scheduler.reload(open, now);
                        enabled = on;
                        reload = false;
                    }
                    Err(e) => {
                        tracing::error!(webhook = %id, error = %e, "cannot read deliveries");
                        pause = true;
                    }
                }
            }
            if fan_out && !reload {
                match this.fan_out(now).await {
                    Ok((created, more)) => {
                        for d in created {
                            scheduler.add(d, now);
                        }
                        fan_out = more;
                    }
                    Err(e) => {
                        tracing::error!(webhook = %id, error = %e, "cannot fan out events");
                        pause = true;
                    }
                }
            }
            scheduler.promote(now);
            while enabled && tasks.len() < CONCURRENCY {
                let Some(d) = scheduler.take() else { break };
                let worker = this.clone();
                tasks.spawn(async move { worker.attempt(d).await });
            }
            // Sleep until something happens: new events, an operator's
            // change, an attempt ending, the next retry, or the stop.
            let wait = if std::mem::take(&mut pause) {
                STORE_RETRY
            } else if fan_out || reload {
                Duration::ZERO
            } else if !enabled || !scheduler.has_ready() || tasks.len() >= CONCURRENCY {
                scheduler
                    .next_due()
                    .filter(|_| enabled)
                    .map(|due| (due - now).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(Duration::from_secs(3600))
            } else {
                Duration::ZERO
            };
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let now = this.clock.now();
                    match joined {
                        Ok(ended) => {
                            if ended.disabled {
                                enabled = false;
                            }
                            scheduler.complete(&ended.partition, ended.seq, ended.next, now);
                        }
                        Err(e) => {
                            // A panicking attempt: reload from the store.
                            tracing::error!(webhook = %id, error = %e, "delivery task failed");
                            reload = true;
                        }
                    }
                }
                Ok(()) = new_events.changed() => fan_out = true,
                Ok(()) = changes.changed() => reload = true,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tasks.abort_all();
    }

    /// Open deliveries and whether the endpoint is enabled.
    fn load(&self) -> crate::store::Result<(Vec<OpenDelivery>, bool)> {
        let open = self.store.open_deliveries(&self.endpoint.id)?;
        let enabled = self
            .store
            .webhook(&self.endpoint.id)?
            .is_none_or(|e| e.enabled);
        Ok((open, enabled))
    }

    async fn fan_out(&self, now: DateTime<Utc>) -> crate::store::Result<(Vec<OpenDelivery>, bool)> {
        let endpoint = &self.endpoint;
        let (created, more) = self.store.fan_out(
            &endpoint.id,
            |event| endpoint.partition(event),
            now,
            FAN_OUT_BATCH,
        )?;
        if !created.is_empty() {
            // The events (and so the deliveries) are on disk before any
            // receiver hears of them.
            self.store.sync().await?;
        }
        Ok((created, more))
    }

    /// One attempt at `d`, recorded in the store.
    async fn attempt(self: Arc<Self>, d: OpenDelivery) -> Ended {
        let mut ended = Ended {
            partition: d.partition.clone(),
            seq: d.seq,
            next: None,
            disabled: false,
        };
        match self.try_attempt(&d).await {
            Ok(outcome) => {
                ended.next = match outcome {
                    AttemptOutcome::Retry(at) => Some(at),
                    AttemptOutcome::Disable => {
                        ended.disabled = true;
                        Some(self.clock.now())
                    }
                    AttemptOutcome::Delivered | AttemptOutcome::Dead => None,
                };
            }
            Err(e) => {
                tracing::error!(webhook = %self.endpoint.id, delivery = %d.id, error = %e, "cannot record a delivery attempt");
                ended.next = Some(
                    self.clock.now() + chrono::Duration::from_std(STORE_RETRY).unwrap_or_default(),
                );
            }
        }
        ended
    }

    async fn try_attempt(&self, d: &OpenDelivery) -> crate::store::Result<AttemptOutcome> {
        let endpoint = &self.endpoint;
        let Some(delivery) = self.store.delivery(&d.id)? else {
            return Ok(AttemptOutcome::Dead);
        };
        let Some(event) = self.store.event(&delivery.event_id)? else {
            let attempt = Attempt {
                at: self.clock.now(),
                status: None,
                error: Some("the event is no longer in the store".into()),
                outcome: AttemptOutcome::Dead,
            };
            self.store.record_attempt(&d.id, &attempt)?;
            return Ok(AttemptOutcome::Dead);
        };
        let request = match &endpoint.foreign {
            Some(foreign) => match foreign.request(&event, endpoint.timeout) {
                Some(request) => request,
                None => {
                    let attempt = Attempt {
                        at: self.clock.now(),
                        status: None,
                        error: None,
                        outcome: AttemptOutcome::Delivered,
                    };
                    self.store.record_attempt(&d.id, &attempt)?;
                    return Ok(AttemptOutcome::Delivered);
                }
            },
            None => {
                // Served as the API serves it: the wire event, not the stored record.
                let served = crate::wire::Event::served(event.clone(), &self.store)?;
                let body =
                    serde_json::to_vec(&served).map_err(|e| crate::store::StoreError::Corrupt {
                        key: event.id.clone(),
                        reason: e.to_string(),
                    })?;
                // Signed afresh for every attempt: the timestamp is this attempt's.
                let timestamp = self.clock.now().timestamp();
                let headers =
                    super::signing::headers(&endpoint.secrets, &event.id, timestamp, &body);
                Outgoing {
                    method: hyper::Method::POST,
                    url: endpoint.url.clone(),
                    content_type: "application/json",
                    headers: headers.into_iter().collect(),
                    body: Bytes::from(body),
                    timeout: endpoint.timeout,
                }
            }
        };
        let answer = self.transport.post(request).await;
        let at = self.clock.now();
        let attempts = delivery.attempts + 1;
        let first = delivery.first_attempt_at.unwrap_or(at);
        let retry = |retry_after: Option<Duration>| match schedule::next_attempt(
            attempts,
            first,
            at,
            retry_after,
            schedule::jitter(&d.id, attempts),
        ) {
            Some(next) => AttemptOutcome::Retry(next),
            None => AttemptOutcome::Dead,
        };
        let (status, mut error, outcome) = match &answer {
            Ok(a) => {
                let error = format!("HTTP {}", a.status);
                match schedule::verdict(a.status) {
                    Verdict::Delivered => (Some(a.status), None, AttemptOutcome::Delivered),
                    Verdict::Transient => {
                        let after = a
                            .retry_after
                            .as_deref()
                            .and_then(|v| schedule::parse_retry_after(v, at));
                        (Some(a.status), Some(error), retry(after))
                    }
                    Verdict::Gone => (Some(a.status), Some(error), AttemptOutcome::Disable),
                    Verdict::Permanent => (Some(a.status), Some(error), AttemptOutcome::Dead),
                }
            }
            Err(e) => (None, Some(e.to_string()), retry(None)),
        };
        if let (Ok(a), AttemptOutcome::Delivered, Some(replies)) =
            (&answer, &outcome, &self.replies)
        {
            let text = match &endpoint.foreign {
                Some(foreign) => foreign.reply(&event, a),
                None => reply_text(&a.body),
            };
            if event.kind == "message.received" {
                if let Some(text) = text {
                    match replies.send(&endpoint.id, &event, &text).await {
                        Ok(id) => {
                            tracing::info!(webhook = %endpoint.id, event = %event.id, message_id = %id, "reply by response accepted")
                        }
                        Err(e) => {
                            tracing::warn!(webhook = %endpoint.id, event = %event.id, error = %e, "reply by response refused");
                            error = Some(format!("reply not sent: {e}"));
                        }
                    }
                }
            }
        }
        match &outcome {
            AttemptOutcome::Delivered => {}
            AttemptOutcome::Retry(next) => {
                tracing::debug!(webhook = %endpoint.id, delivery = %d.id, attempts, next = %next, error = error.as_deref().unwrap_or(""), "delivery failed; will retry")
            }
            AttemptOutcome::Dead => {
                tracing::warn!(webhook = %endpoint.id, delivery = %d.id, attempts, error = error.as_deref().unwrap_or(""), "delivery is a dead letter")
            }
            AttemptOutcome::Disable => {
                tracing::warn!(webhook = %endpoint.id, "receiver answered 410 Gone: endpoint disabled until POST /v1/webhooks/{}/enable", endpoint.id)
            }
        }
        self.store.record_attempt(
            &d.id,
            &Attempt {
                at,
                status,
                error,
                outcome: outcome.clone(),
            },
        )?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(seq: u64, p: &str, due: DateTime<Utc>) -> OpenDelivery {
        OpenDelivery {
            seq,
            id: format!("dly_{seq}"),
            partition: p.into(),
            due,
        }
    }

    #[test]
    fn one_in_flight_per_partition_oldest_first() {
        let now = Utc::now();
        let mut s = Scheduler::default();
        s.add(d(1, "a", now), now);
        s.add(d(2, "a", now), now);
        s.add(d(3, "b", now), now);
        assert_eq!(s.take().map(|d| d.seq), Some(1));
        assert_eq!(s.take().map(|d| d.seq), Some(3));
        assert_eq!(s.take(), None, "a's second waits for its first");
        s.complete("a", 1, None, now);
        assert_eq!(s.take().map(|d| d.seq), Some(2));
        // b failed: due later; nothing ready until then.
        let later = now + chrono::Duration::seconds(5);
        s.complete("b", 3, Some(later), now);
        assert_eq!(s.next_due(), Some(later));
        s.promote(now);
        assert_eq!(s.take(), None);
        s.promote(later);
        assert_eq!(s.take().map(|d| d.seq), Some(3));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn reload_keeps_in_flight_partitions_waiting() {
        let now = Utc::now();
        let mut s = Scheduler::default();
        s.add(d(1, "a", now), now);
        assert_eq!(s.take().map(|d| d.seq), Some(1));
        s.reload(vec![d(1, "a", now), d(2, "a", now), d(3, "b", now)], now);
        assert_eq!(s.take().map(|d| d.seq), Some(3));
        assert_eq!(s.take(), None);
        s.complete("a", 1, None, now);
        assert_eq!(s.take().map(|d| d.seq), Some(2));
    }
}
