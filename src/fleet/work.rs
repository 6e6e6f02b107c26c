//! The fleet's outbound work queue and events stream (feature `fleet`).
//!
//! - `hand`: a message accepted here goes to `SMSGATE_OUTBOUND` (work-queue
//!   retention) on `smsgate.out.<site>` (a requested modem, or a contact
//!   whose sticky sender is at that site) or `smsgate.out.any`.
//! - The puller takes what this gateway's modems can send soon (its own
//!   site's subject and `any`), stores it as taken and holds the JetStream
//!   message (progress acknowledgements keep it) until the local record is
//!   settled and durable, then acknowledges it. A gateway that dies holding
//!   messages stops acknowledging them: JetStream gives them to another.
//! - The fence bucket `smsgate_sent`: one key per message, created by the
//!   gateway about to send it (or cancelling it); a create fails for every
//!   other, so a message redelivered to two gateways goes out once, and one
//!   a gateway began sending before it died stays that gateway's (`unknown`
//!   at its restart, as on a single gateway).
//! - The sticky bucket `smsgate_sticky`: contact -> the site that last sent
//!   to it, so a contact keeps the number it knows across the fleet.
//! - Events: the state changes of the fleet's messages this gateway holds
//!   go to `SMSGATE_EVENTS` on `smsgate.events.<site>`; every gateway
//!   applies the other sites' (the message reads the same everywhere; no
//!   webhook fires for them: the sending gateway's did).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream, AckKind};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::nats::{publish_task, run_task, watch_from_start, watched, Repeat, RETRY};
use super::{Claim, ClaimFor, FleetLink, Pending};
use crate::conversation::rulebook::{RuleBook, RulesChange};
use crate::modem::Dispatcher;
use crate::store::{FleetLeg, Message, MessageStatus, Store, Taken};

pub const OUTBOUND_STREAM: &str = "SMSGATE_OUTBOUND";
pub const EVENTS_STREAM: &str = "SMSGATE_EVENTS";
pub const FENCE_BUCKET: &str = "smsgate_sent";
pub const STICKY_BUCKET: &str = "smsgate_sticky";
pub const SITES_BUCKET: &str = "smsgate_sites";
/// The contacts erased anywhere in the fleet: [`crate::store::erased_key`]
/// (the hex of the number's SHA-256: a pseudonym, which can be reversed by
/// trying numbers) -> [`Erased`]. Kept for good (one small key per
/// erasure), so that a gateway away from the events stream for longer than
/// it keeps events still erases them.
pub const ERASED_BUCKET: &str = "smsgate_erased";

/// Every gateway's campaigns: campaign id -> `{site, record}`, put by the
/// creating gateway when its record changes; kept for good (a small record
/// each), so a gateway that joins later lists them all.
pub const CAMPAIGNS_BUCKET: &str = "smsgate_campaigns";

/// The conversation rules stored through the API (`PUT /v1/rules`, the
/// rules page): one key, [`RULES_KEY`] -> the last change made at any
/// gateway ([`crate::conversation::rulebook::RulesChange`]).
pub const RULES_BUCKET: &str = "smsgate_rules";
pub const RULES_KEY: &str = "rules";

/// How many erasures of the bucket are applied at once (one scan of this
/// gateway's contacts for each batch).
const ERASURES_BATCH: usize = 1000;
/// How long an entry of the erasures bucket waits before it is applied.
const ERASURES_GRACE: Duration = Duration::from_secs(10);

/// How often a gateway says it is there, at most (a third of `gone_after`
/// when that is shorter).
const HEARTBEAT_MAX: Duration = Duration::from_secs(10);
/// How often the messages accepted here are checked against the fence's
/// memory ([`super::FENCE_SAFE`]).
const EXPIRY_SWEEP: Duration = Duration::from_secs(3600);

/// The subject of messages any site may send.
const ANY: &str = "any";

/// How long JetStream waits for an acknowledgement before it gives a
/// message to another gateway; a held message is kept with progress
/// acknowledgements at a third of it.
const ACK_WAIT: Duration = Duration::from_secs(30);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Messages held per modem (what the modems send in a few hundred ms).
const HELD_PER_MODEM: usize = 8;

/// How often the holder looks at what it holds.
const HOLD_TICK: Duration = Duration::from_millis(100);

/// How long a pull waits for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// The store's aux tree of the fleet's cursors, and the events cursor.
const AUX: &str = "fleet";
const EVENTS_CURSOR: &[u8] = b"events_cursor";
const EVENTS_BATCH: usize = 256;
/// Applied events are acknowledged after a flush: at the latest this long
/// after they were applied, or once this many wait.
const ACK_FLUSH: Duration = Duration::from_millis(20);
/// How often this gateway's campaigns that changed are announced to the
/// fleet (a campaign's counters change with every message of it: one
/// announcement a period, not one per change).
pub const CAMPAIGN_ANNOUNCE: Duration = Duration::from_secs(2);
const ACK_BATCH: usize = 256;

/// What the fence bucket holds for a message.
#[derive(Debug, Serialize, Deserialize)]
struct Fence {
    site: String,
    /// "send" or "cancel".
    #[serde(rename = "for")]
    purpose: String,
}

/// What the sticky bucket holds for a contact.
#[derive(Debug, Serialize, Deserialize)]
struct Sticky {
    site: String,
}

/// A message of the work queue this gateway holds.
struct Held {
    message: jetstream::Message,
    /// Room taken while it is due soon (given back while it waits longer).
    permit: Option<OwnedSemaphorePermit>,
    progressed: Instant,
}

/// A message not due within this long does not take room (scheduled,
/// deferred by quiet hours or a rate limit).
const SOON: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// A message of the work queue not due for longer than [`SOON`] is given
/// back to JetStream to deliver again then (at most this much later).
const LATER_MAX: Duration = Duration::from_secs(600);

struct Buckets {
    fence: kv::Store,
    sticky: kv::Store,
    /// site -> [`Heard`]: when each gateway last said it is there.
    sites: kv::Store,
    erased: kv::Store,
    campaigns: kv::Store,
    rules: kv::Store,
    outbound: stream::Stream,
    events: stream::Stream,
}

/// The work queue's side of one gateway.
pub struct Work {
    js: jetstream::Context,
    site: String,
    replicas: usize,
    store: Store,
    dispatcher: Arc<Dispatcher>,
    buckets: tokio::sync::OnceCell<Buckets>,
    held: Mutex<HashMap<String, Held>>,
    room: Arc<Semaphore>,
    /// Where the events stream's lag is shown.
    freshness: Arc<super::Freshness>,
    /// The sticky bucket as last seen: contact key -> site (a tree of the
    /// store, `aux_fleet_sticky`, not memory: one key per contact the fleet
    /// has talked with; rebuilt by the watch at each start).
    sticky: sled::Tree,
    /// How the other sites' events count in this gateway's conversation
    /// metrics (None: not counted).
    metrics: Option<RemoteMetrics>,
    /// A gateway not heard from for this long is gone (`[cluster]
    /// gone_after`).
    gone_after: Duration,
}

/// What a settling pass of [`Work::watch_sites`] did.
#[derive(Default)]
struct Settled {
    /// The gone sites whose claims were settled.
    sites: Vec<String>,
    /// Whether the pass past the fence's memory ran through.
    expiry: bool,
    /// Why it stopped short.
    error: Option<String>,
}

/// The wall-clock time `at` was, by this gateway's clock.
fn since(at: Instant) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(at.elapsed()).unwrap_or_default()
}

/// A gateway's heartbeat in [`SITES_BUCKET`].
#[derive(Serialize, Deserialize)]
struct Heard {
    at: chrono::DateTime<chrono::Utc>,
}

/// What reading another site's event as a metric fact needs: the policy
/// (a received keyword) and the metrics' wiring, as the conversation
/// engine counts this gateway's own events.
pub struct RemoteMetrics {
    pub policy: Arc<crate::policy::Policy>,
    pub wiring: Arc<crate::conversation::engine::MetricsWiring>,
}

impl Work {
    pub fn new(
        js: jetstream::Context,
        site: String,
        replicas: usize,
        store: Store,
        dispatcher: Arc<Dispatcher>,
        modems: usize,
        freshness: Arc<super::Freshness>,
    ) -> Result<Work, crate::store::StoreError> {
        let sticky = store.aux_tree(Store::FLEET_STICKY)?;
        Ok(Work {
            js,
            site,
            replicas,
            store,
            dispatcher,
            buckets: tokio::sync::OnceCell::new(),
            held: Mutex::new(HashMap::new()),
            room: Arc::new(Semaphore::new(HELD_PER_MODEM * modems.max(1))),
            freshness,
            sticky,
            metrics: None,
            gone_after: Duration::from_secs(900),
        })
    }

    /// When another gateway counts as gone (`[cluster] gone_after`).
    pub fn with_gone_after(mut self, gone_after: Duration) -> Work {
        self.gone_after = gone_after;
        self
    }

    /// The other sites' events count in this gateway's conversation metrics.
    pub fn with_metrics(mut self, metrics: Option<RemoteMetrics>) -> Work {
        self.metrics = metrics;
        self
    }

    /// The streams and buckets, created when missing.
    async fn buckets(&self) -> Result<&Buckets, String> {
        self.buckets
            .get_or_try_init(|| async {
                let outbound = self
                    .js
                    .get_or_create_stream(stream::Config {
                        name: OUTBOUND_STREAM.into(),
                        subjects: vec!["smsgate.out.>".into()],
                        retention: stream::RetentionPolicy::WorkQueue,
                        num_replicas: self.replicas,
                        storage: stream::StorageType::File,
                        duplicate_window: Duration::from_secs(120),
                        ..stream::Config::default()
                    })
                    .await
                    .map_err(|e| format!("the work queue: {e}"))?;
                let events = self
                    .js
                    .get_or_create_stream(stream::Config {
                        name: EVENTS_STREAM.into(),
                        subjects: vec!["smsgate.events.>".into()],
                        num_replicas: self.replicas,
                        storage: stream::StorageType::File,
                        duplicate_window: Duration::from_secs(120),
                        max_age: Duration::from_secs(7 * 24 * 3600),
                        ..stream::Config::default()
                    })
                    .await
                    .map_err(|e| format!("the events stream: {e}"))?;
                // Each key's latest value only (history 1), replicated as
                // the streams are.
                let kv = |name: &'static str, description: &'static str, keep: Duration| {
                    super::nats::bucket(&self.js, name, description, 1, self.replicas, keep)
                };
                let fence = kv(
                    FENCE_BUCKET,
                    "smsgate: which gateway sends each message",
                    super::FENCE_KEEP,
                )
                .await?;
                let sticky = kv(
                    STICKY_BUCKET,
                    "smsgate: the site each contact was last texted from",
                    Duration::ZERO,
                )
                .await?;
                let sites = kv(
                    SITES_BUCKET,
                    "smsgate: when each gateway was last heard from",
                    Duration::ZERO,
                )
                .await?;
                let erased = kv(
                    ERASED_BUCKET,
                    "smsgate: the contacts erased in the fleet (hashed), and when",
                    Duration::ZERO,
                )
                .await?;
                let campaigns = kv(
                    CAMPAIGNS_BUCKET,
                    "smsgate: every gateway's campaigns, as their gateways last put them",
                    Duration::ZERO,
                )
                .await?;
                let rules = kv(
                    RULES_BUCKET,
                    "smsgate: the conversation rules last stored at any gateway",
                    Duration::ZERO,
                )
                .await?;
                Ok(Buckets {
                    fence,
                    sticky,
                    sites,
                    erased,
                    campaigns,
                    rules,
                    outbound,
                    events,
                })
            })
            .await
    }

    /// The work queue's subject for `message`: a requested modem is one of
    /// this site's (the API checked it); a contact texted before keeps the
    /// site (this gateway's own sticky map first, then the fleet's).
    fn subject(&self, message: &Message) -> String {
        if message.requested_modem.is_some() {
            return format!("smsgate.out.{}", self.site);
        }
        if let Ok(Some(_)) = self.store.sticky_modem(&message.contact) {
            return format!("smsgate.out.{}", self.site);
        }
        // The replica of the sticky bucket (a preference: a contact not in
        // it yet goes to any site).
        let key = super::consent_key(&message.contact, None);
        let site = self.sticky_site(&key).unwrap_or_else(|| ANY.into());
        format!("smsgate.out.{site}")
    }

    async fn hand_one(&self, message: &Message) -> Result<(), String> {
        self.buckets().await?;
        let subject = self.subject(message);
        let mut taken = message.clone();
        taken.fleet = None;
        let payload = serde_json::to_vec(&taken).map_err(|e| e.to_string())?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, message.id.as_str());
        self.js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| format!("the work queue: {e}"))?
            .await
            .map_err(|e| format!("the work queue's acknowledgement: {e}"))?;
        Ok(())
    }

    async fn claim_one(&self, id: &str, why: ClaimFor) -> Result<Claim, String> {
        let buckets = self.buckets().await?;
        let purpose = match why {
            ClaimFor::Send => "send",
            ClaimFor::Cancel => "cancel",
        };
        let value = serde_json::to_vec(&Fence {
            site: self.site.clone(),
            purpose: purpose.into(),
        })
        .map_err(|e| e.to_string())?;
        match buckets.fence.create(id, value.into()).await {
            Ok(_) => return Ok(Claim::Mine),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("the fence bucket: {e}")),
        }
        let held = buckets
            .fence
            .get(id)
            .await
            .map_err(|e| format!("the fence bucket: {e}"))?;
        let held: Option<Fence> = held.and_then(|raw| serde_json::from_slice(&raw).ok());
        Ok(match held {
            // Claimed here before (a restart between the claim and the
            // "sending" mark): still this gateway's.
            Some(f) if f.site == self.site && f.purpose == purpose => Claim::Mine,
            Some(f) if f.purpose == "cancel" => Claim::Cancelled(f.site),
            Some(f) => Claim::Theirs(f.site),
            None => Claim::Theirs("unknown".into()),
        })
    }

    /// Whether the fence holds a claim for message `id` (a broker that
    /// cannot be asked: no).
    async fn claimed(&self, id: &str) -> bool {
        let Ok(buckets) = self.buckets().await else {
            return false;
        };
        matches!(buckets.fence.get(id).await, Ok(Some(_)))
    }

    /// Pull from `subject`'s durable consumer while there is room.
    pub async fn pull(self: Arc<Self>, target: String, stop: watch::Receiver<bool>) {
        let what = format!("pulling {target}");
        run_task(&what, Repeat::UntilStopped, stop, |mut stop| {
            let (this, target) = (&self, &target);
            async move { this.pull_once(target, &mut stop).await }
        })
        .await;
    }

    async fn pull_once(
        &self,
        target: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let name = format!("out-{target}");
        let consumer: consumer::PullConsumer = buckets
            .outbound
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("smsgate.out.{target}"),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("the consumer {name}: {e}"))?;
        loop {
            // No ready modem (unplugged, resting, paused by the SIM's
            // limits): take nothing, the other gateways send it.
            if !self.can_send() {
                tokio::select! {
                    biased;
                    r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                    _ = tokio::time::sleep(RETRY) => {}
                }
                continue;
            }
            // Wait for room: what the modems send soon.
            let first = tokio::select! {
                biased;
                r = stop.changed() => {
                    if r.is_err() || *stop.borrow() { return Ok(()) }
                    continue;
                }
                p = self.room.clone().acquire_owned() => p.map_err(|e| e.to_string())?,
            };
            let room = 1 + self.room.available_permits();
            let mut permits = vec![first];
            let mut batch = consumer
                .fetch()
                .max_messages(room)
                .expires(PULL_EXPIRES)
                .messages()
                .await
                .map_err(|e| format!("a pull from {name}: {e}"))?;
            loop {
                let next = tokio::select! {
                    biased;
                    r = stop.changed() => {
                        if r.is_err() || *stop.borrow() { return Ok(()) }
                        continue;
                    }
                    next = batch.next() => next,
                };
                let Some(next) = next else { break };
                let message = next.map_err(|e| format!("a pull from {name}: {e}"))?;
                let permit = match permits.pop() {
                    Some(p) => p,
                    None => match self.room.clone().try_acquire_owned() {
                        Ok(p) => p,
                        // The room was taken meanwhile: JetStream gives it
                        // out again (to this gateway or another).
                        Err(_) => {
                            let _ = message.ack_with(AckKind::Nak(None)).await;
                            continue;
                        }
                    },
                };
                self.take(message, permit).await;
            }
        }
    }

    /// Whether a modem of this gateway is ready to send.
    fn can_send(&self) -> bool {
        self.dispatcher
            .statuses()
            .iter()
            .any(|m| m.state == crate::modem::ModemState::Ready)
    }

    /// Publish again what this gateway accepted and handed to the fleet
    /// that is still waiting here: a gateway killed between its durable
    /// accept and the publication (or one whose publication was not
    /// acknowledged) has such records. Once, when the streams are there; a
    /// message that was published after all is dropped as a duplicate by
    /// JetStream or, later, stopped by the fence.
    pub async fn republish_handed(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "publishing waiting messages again";
        run_task(what, Repeat::UntilDone, stop, |_| {
            let this = &self;
            async move {
                this.buckets().await?;
                let store = this.store.clone();
                let waiting = tokio::task::spawn_blocking(move || store.handed_waiting())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let now = chrono::Utc::now();
                // One past the fence's memory is settled by the sweep of
                // `watch_sites`, never published again.
                let waiting: Vec<&Message> = waiting
                    .iter()
                    .filter(|m| !super::past_the_fence(m, now))
                    .collect();
                for message in &waiting {
                    this.hand_one(message).await?;
                }
                if !waiting.is_empty() {
                    tracing::info!(
                        count = waiting.len(),
                        "fleet: waiting messages accepted here published again"
                    );
                }
                Ok(())
            }
        })
        .await;
    }

    /// Store one message of the work queue here and hold it.
    async fn take(&self, js_message: jetstream::Message, permit: OwnedSemaphorePermit) {
        let message: Message = match serde_json::from_slice(&js_message.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(subject = %js_message.subject, error = %e, "fleet: an unreadable message in the work queue; dropped");
                let _ = js_message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let id = message.id.clone();
        let now = chrono::Utc::now();
        if let Some(due) = message.not_before.filter(|t| *t > now + SOON) {
            // Not due yet: JetStream keeps it and delivers it again nearer
            // the time (to whichever gateway has room then), unless it was
            // claimed meanwhile (a cancel, or a copy another gateway holds):
            // then this copy is done with, long before the claim expires.
            if self.claimed(&id).await {
                tracing::info!(message_id = %id, "fleet: a scheduled message claimed already (cancelled, or held elsewhere); its copy in the work queue is dropped");
                let _ = js_message.ack_with(AckKind::Term).await;
                return;
            }
            let wait = (due - now).to_std().unwrap_or(RETRY).min(LATER_MAX);
            let _ = js_message.ack_with(AckKind::Nak(Some(wait))).await;
            return;
        }
        if super::past_the_fence(&message, now) {
            // A claim made for it may have expired: nobody may claim it.
            // The gateway that accepted it settles it.
            tracing::warn!(message_id = %id, "fleet: a message past the fence's memory in the work queue; dropped (it is unknown where it was accepted)");
            let _ = js_message.ack_with(AckKind::Term).await;
            return;
        }
        match self.store.take_from_fleet(message) {
            Ok(Taken::Queued) | Ok(Taken::Held) => {
                if let Ok(mut held) = self.held.lock() {
                    held.insert(
                        id,
                        Held {
                            message: js_message,
                            permit: Some(permit),
                            progressed: Instant::now(),
                        },
                    );
                }
                self.dispatcher.notify();
            }
            Ok(Taken::Done) => {
                let _ = js_message.ack().await;
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "fleet: cannot store a message of the work queue; it goes back");
                let _ = js_message.ack_with(AckKind::Nak(Some(RETRY))).await;
            }
        }
    }

    /// Acknowledge what is settled here (durable first), keep the rest.
    pub async fn hold(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HOLD_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                _ = tick.tick() => {}
            }
            self.hold_pass().await;
        }
    }

    async fn hold_pass(&self) {
        let ids: Vec<String> = match self.held.lock() {
            Ok(held) => held.keys().cloned().collect(),
            Err(_) => return,
        };
        let mut settled = Vec::new();
        let mut sent = Vec::new();
        let mut waiting_long = Vec::new();
        let later = chrono::Utc::now() + SOON;
        for id in ids {
            let record = match self.store.get(&id) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "fleet: cannot read a held message");
                    continue;
                }
            };
            let done = match &record {
                None => true,
                Some(m) if m.fleet != Some(FleetLeg::Taken) => true,
                Some(m) => !(m.status.is_waiting() || m.status == MessageStatus::Sending),
            };
            if let Some(m) = record.as_ref().filter(|m| m.status.is_waiting()) {
                if m.not_before.is_some_and(|t| t > later) {
                    waiting_long.push(id.clone());
                }
            }
            if done {
                if let Some(m) = record.filter(|m| {
                    m.fleet == Some(FleetLeg::Taken)
                        && matches!(m.status, MessageStatus::Sent | MessageStatus::Delivered)
                }) {
                    sent.push((m.contact, m.created_at));
                }
                settled.push(id);
            }
        }
        if !settled.is_empty() {
            // The result is durable before the work queue forgets the message.
            if let Err(e) = self.store.sync().await {
                tracing::error!(error = %e, "fleet: cannot make results durable; acknowledging later");
                return;
            }
        }
        let mut acks = Vec::new();
        let mut progress = Vec::new();
        if let Ok(mut held) = self.held.lock() {
            for id in &settled {
                if let Some(h) = held.remove(id) {
                    acks.push(h.message);
                }
            }
            for id in &waiting_long {
                if let Some(h) = held.get_mut(id) {
                    h.permit = None;
                }
            }
            let now = Instant::now();
            for h in held.values_mut() {
                if now.duration_since(h.progressed) >= PROGRESS_EVERY {
                    h.progressed = now;
                    progress.push(h.message.clone());
                }
            }
        }
        for m in acks {
            if let Err(e) = m.ack().await {
                tracing::warn!(error = %e, "fleet: an acknowledgement was not sent; JetStream will give the message again (the fence stops a second send)");
            }
        }
        for m in progress {
            let _ = m.ack_with(AckKind::Progress).await;
        }
        self.stick(sent).await;
    }

    /// These contacts talk with this site now (texted from, or texted to,
    /// its modems, in a message made then): the fleet's sticky bucket says
    /// so, unless it already does or the contact was erased since (the
    /// erasure's purge of the key stays).
    async fn stick(&self, contacts: Vec<(String, chrono::DateTime<chrono::Utc>)>) {
        if contacts.is_empty() {
            return;
        }
        let Ok(buckets) = self.buckets().await else {
            return;
        };
        let value = serde_json::to_vec(&Sticky {
            site: self.site.clone(),
        })
        .unwrap_or_default();
        for (contact, at) in contacts {
            if self
                .store
                .erased_at(&contact)
                .ok()
                .flatten()
                .is_some_and(|erased| at <= erased)
            {
                continue;
            }
            let key = super::consent_key(&contact, None);
            let known = self.sticky_site(&key);
            if known.as_deref() == Some(self.site.as_str()) {
                continue;
            }
            if let Err(e) = buckets.sticky.put(&key, value.clone().into()).await {
                tracing::warn!(contact = %crate::phone::masked(&contact), error = %e, "fleet: the sticky sender was not shared");
            }
        }
    }

    /// The replica's site for contact key `key` (a preference: unreadable
    /// is none).
    fn sticky_site(&self, key: &str) -> Option<String> {
        let raw = self.sticky.get(key.as_bytes()).ok()??;
        String::from_utf8(raw.to_vec()).ok()
    }

    /// Keep the replica of the sticky bucket: each contact's latest site.
    pub async fn watch_sticky(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "watching the sticky bucket";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let this = &self;
            async move { this.watch_sticky_once(&mut stop).await }
        })
        .await;
    }

    async fn watch_sticky_once(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let buckets = self.buckets().await?;
        // Rebuilt from the bucket's history: a key purged meanwhile (or a
        // bucket made anew) leaves nothing behind.
        self.sticky
            .clear()
            .map_err(|e| format!("the sticky replica: {e}"))?;
        let mut changes = watch_from_start(&buckets.sticky, ">", "the sticky bucket").await?;
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                change = changes.next() => {
                    let entry = watched(change, "the sticky bucket")?;
                    let site = (entry.operation == kv::Operation::Put)
                        .then(|| serde_json::from_slice::<Sticky>(&entry.value).ok())
                        .flatten()
                        .map(|s| s.site);
                    let kept = match site {
                        Some(site) => self.sticky.insert(entry.key.as_bytes(), site.as_bytes()).map(|_| ()),
                        None => self.sticky.remove(entry.key.as_bytes()).map(|_| ()),
                    };
                    kept.map_err(|e| format!("the sticky replica: {e}"))?;
                }
            }
        }
    }

    /// Say that this gateway is there, watch when the others last did, and
    /// settle what a gateway that is gone claimed: a message accepted here
    /// that it claimed to send and never finished becomes `unknown` here
    /// (it may have reached the network; nobody sends it again).
    pub async fn watch_sites(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "watching the fleet's gateways";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let this = &self;
            async move { this.watch_sites_once(&mut stop).await }
        })
        .await;
    }

    async fn watch_sites_once(
        self: &Arc<Self>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let every = (self.gone_after / 3).clamp(Duration::from_millis(100), HEARTBEAT_MAX);
        let mut changes = watch_from_start(&buckets.sites, ">", "the sites bucket").await?;
        let mut beat = tokio::time::interval(every);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // site -> when this gateway last heard from it (its own clock: the
        // other gateways' clocks may be off; a site in the history at start
        // counts as heard then); the sites settled since.
        let mut heard: HashMap<String, Instant> = HashMap::new();
        let mut settled: std::collections::HashSet<String> = Default::default();
        let mut expired_swept: Option<Instant> = None;
        // A pass that settles what gone gateways held runs apart, so that
        // the beat goes on however long it takes.
        let mut settling: Option<tokio::task::JoinHandle<Settled>> = None;
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                _ = beat.tick() => {
                    let value = serde_json::to_vec(&Heard { at: chrono::Utc::now() })
                        .map_err(|e| e.to_string())?;
                    buckets
                        .sites
                        .put(&self.site, value.into())
                        .await
                        .map_err(|e| format!("the sites bucket: {e}"))?;
                    if let Some(pass) = settling.take_if(|p| p.is_finished()) {
                        match pass.await {
                            Ok(done) => {
                                settled.extend(done.sites);
                                if done.expiry {
                                    expired_swept = Some(Instant::now());
                                }
                                if let Some(e) = done.error {
                                    tracing::warn!(error = %e, "fleet: settling what gone gateways held stopped; tried again");
                                }
                            }
                            Err(e) => tracing::error!(error = %e, "fleet: settling what gone gateways held failed"),
                        }
                    }
                    // Judged only on a current view: this gateway's own beat
                    // of the round before came back through the watch, and
                    // the other sites' events are applied (a gateway that
                    // finished its work and left must not look as if it held
                    // messages whose events are still on their way).
                    let current = heard.get(&self.site).is_some_and(|at| at.elapsed() < every * 3)
                        && self.freshness.events_pending().is_some_and(|n| n < ACK_BATCH as u64);
                    if !current || settling.is_some() {
                        continue;
                    }
                    let gone: Vec<(String, chrono::DateTime<chrono::Utc>)> = heard
                        .iter()
                        .filter(|(site, at)| {
                            **site != self.site && at.elapsed() > self.gone_after && !settled.contains(*site)
                        })
                        .map(|(site, at)| (site.clone(), since(*at)))
                        .collect();
                    let expiry = expired_swept.is_none_or(|at: Instant| at.elapsed() >= EXPIRY_SWEEP);
                    if gone.is_empty() && !expiry {
                        continue;
                    }
                    let alive: std::collections::HashSet<String> = heard
                        .iter()
                        .filter(|(_, at)| at.elapsed() <= self.gone_after)
                        .map(|(site, _)| site.clone())
                        .collect();
                    let this = self.clone();
                    settling = Some(tokio::spawn(async move {
                        this.settle(gone, expiry.then_some(alive)).await
                    }));
                }
                change = changes.next() => {
                    let entry = watched(change, "the sites bucket")?;
                    if entry.operation == kv::Operation::Put {
                        settled.remove(&entry.key);
                        heard.insert(entry.key, Instant::now());
                    } else {
                        heard.remove(&entry.key);
                    }
                }
            }
        }
    }

    /// One settling pass: what each gone site (with when it was last
    /// heard from) claimed, then, with the sites alive, what is past the
    /// fence's memory.
    async fn settle(
        &self,
        gone: Vec<(String, chrono::DateTime<chrono::Utc>)>,
        alive: Option<std::collections::HashSet<String>>,
    ) -> Settled {
        let mut done = Settled::default();
        for (site, at) in gone {
            match self.settle_gone(&site, at).await {
                Ok(()) => done.sites.push(site),
                Err(e) => {
                    done.error = Some(e);
                    return done;
                }
            }
        }
        if let Some(alive) = alive {
            match self.settle_past_fence(|site| alive.contains(site)).await {
                Ok(()) => done.expiry = true,
                Err(e) => done.error = Some(e),
            }
        }
        done
    }

    /// Settle the messages accepted here that are past the fence's memory
    /// ([`super::FENCE_SAFE`]) and that no gateway still alive holds: they
    /// are `unknown` (nobody may claim them now; one may have been sent
    /// under a claim that expired).
    async fn settle_past_fence(&self, alive: impl Fn(&str) -> bool) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let store = self.store.clone();
        let now = chrono::Utc::now();
        let open = tokio::task::spawn_blocking(move || store.handed_open())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut settled = 0;
        for message in open.iter().filter(|m| super::past_the_fence(m, now)) {
            let claim = buckets
                .fence
                .get(&message.id)
                .await
                .map_err(|e| format!("the fence bucket: {e}"))?
                .and_then(|raw| serde_json::from_slice::<Fence>(&raw).ok());
            // Still held by a gateway that is there: it finishes it.
            if claim.is_some_and(|f| f.purpose == "send" && alive(&f.site)) {
                continue;
            }
            if self
                .store
                .fleet_expired(&message.id)
                .await
                .map_err(|e| e.to_string())?
            {
                settled += 1;
            }
        }
        if settled > 0 {
            tracing::warn!(unknown = settled, "fleet: messages accepted here and not finished within the fence's memory are unknown");
        }
        Ok(())
    }

    /// Settle what gateway `site` (last heard from `at`) claimed to send of
    /// the messages accepted here.
    async fn settle_gone(
        &self,
        site: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let store = self.store.clone();
        let open = tokio::task::spawn_blocking(move || store.handed_open())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut settled = 0;
        for message in &open {
            let claim = buckets
                .fence
                .get(&message.id)
                .await
                .map_err(|e| format!("the fence bucket: {e}"))?
                .and_then(|raw| serde_json::from_slice::<Fence>(&raw).ok());
            if claim.is_some_and(|f| f.site == site && f.purpose == "send")
                && self
                    .store
                    .sender_gone(&message.id, site, at)
                    .await
                    .map_err(|e| e.to_string())?
            {
                settled += 1;
            }
        }
        tracing::warn!(%site, last_heard = %at, unknown = settled, "fleet: a gateway is gone; what it claimed to send and never finished is unknown here");
        Ok(())
    }

    /// Publish the state changes of the fleet's messages recorded here, in
    /// the order of the event log, from a durable cursor.
    pub async fn publish_events(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "publishing message events";
        publish_task(what, &self.store, stop, || self.publish_pending()).await;
    }

    async fn publish_pending(&self) -> Result<(), String> {
        self.buckets().await?;
        let aux = self.store.aux_tree(AUX).map_err(|e| e.to_string())?;
        loop {
            let from = aux
                .get(EVENTS_CURSOR)
                .map_err(|e| e.to_string())?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            let batch = self
                .store
                .events_from(from, EVENTS_BATCH)
                .map_err(|e| e.to_string())?;
            let Some(&(last, _)) = batch.last() else {
                return Ok(());
            };
            let mut acks = Vec::new();
            let mut received = Vec::new();
            let mut erased = Vec::new();
            for (_, event) in &batch {
                let shared = match event.kind.as_str() {
                    // Another gateway's campaign to cancel: that gateway
                    // does.
                    crate::store::FLEET_CAMPAIGN_CANCEL => true,
                    // Erased here: every gateway erases the contact, and
                    // the buckets forget it (below).
                    crate::store::FLEET_CONTACT_ERASED => {
                        let at = event.data["erased_at"]
                            .as_str()
                            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
                        if let (Some(contact), Some(at)) = (event.data["contact"].as_str(), at) {
                            let numbers = event.data["numbers"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|n| n.as_str().map(str::to_string))
                                .collect();
                            let opt_out_kept = event.data["opt_out_kept"] != false;
                            erased.push((contact.to_string(), at.to_utc(), numbers, opt_out_kept));
                        }
                        true
                    }
                    // Received here: every gateway's inbox shows it, and the
                    // contact is answered from this site.
                    "message.received" => {
                        if let Some(contact) = event.data["contact"].as_str() {
                            received.push((contact.to_string(), event.created_at));
                        }
                        true
                    }
                    // A fleet's message this gateway holds or changed (a
                    // copy taken here is news once a modem has it: while it
                    // waits, another gateway may be the one that sends it).
                    k if k.starts_with("message.") => {
                        let waiting_here = event.data["fleet"] == "taken"
                            && event.data["status"]
                                .as_str()
                                .and_then(MessageStatus::parse)
                                .is_some_and(MessageStatus::is_waiting);
                        event.data.get("fleet").is_some() && !waiting_here
                    }
                    // Every thread change has thread.synced (the record
                    // and its timeline items); the others say what changed
                    // (a first response, an outcome: the metrics' facts).
                    k => k.starts_with("thread."),
                };
                if !shared {
                    continue;
                }
                // The price of a part where it was sent (the other gateways
                // do not know this one's modems).
                let price = (event.kind == "message.sent")
                    .then(|| {
                        let modem = event.data["modem"].as_str()?;
                        self.metrics.as_ref()?.wiring.costs.get(modem).copied()
                    })
                    .flatten();
                let envelope = serde_json::json!({
                    "id": event.id,
                    "kind": event.kind,
                    "created_at": event.created_at,
                    "data": event.data,
                    "price": price,
                });
                acks.push(self.publish_event(&event.id, &envelope).await?);
            }
            for ack in acks {
                ack.await
                    .map_err(|e| format!("the events stream's acknowledgement: {e}"))?;
            }
            self.stick(received).await;
            self.forget(&erased).await?;
            aux.insert(EVENTS_CURSOR, &(last + 1).to_be_bytes())
                .map_err(|e| e.to_string())?;
        }
    }

    /// The buckets forget contacts erased here: the sticky site goes, and
    /// so does the consent state unless the bucket holds an opt-out (from
    /// any site: this gateway's view may be behind), which must outlive the
    /// erasure as the tombstone does in each store. Purged (no history of
    /// the key is kept either) only at the revision read, so an opt-out
    /// put meanwhile stays. Each erasure (contact, its time, the gateway
    /// numbers of its consent, whether an opt-out was kept) is listed in
    /// the erasures bucket first, by its hash; the contact's entries in
    /// the ledger stream go last, unless it opted out.
    async fn forget(
        &self,
        erased: &[(String, chrono::DateTime<chrono::Utc>, Vec<String>, bool)],
    ) -> Result<(), String> {
        if erased.is_empty() {
            return Ok(());
        }
        let buckets = self.buckets().await?;
        let consent = self
            .js
            .get_key_value(super::CONSENT_BUCKET)
            .await
            .map_err(|e| format!("the consent bucket: {e}"))?;
        let ledger = self
            .js
            .get_stream(super::CONSENT_STREAM)
            .await
            .map_err(|e| format!("the ledger stream: {e}"))?;
        for (contact, at, numbers, opt_out_kept) in erased {
            // The later of two erasures of the contact stays listed.
            let at = *at;
            let listed = serde_json::to_vec(&Erased {
                erased_at: at,
                site: self.site.clone(),
            })
            .map_err(|e| e.to_string())?;
            let key = crate::store::erased_key(contact);
            super::nats::put_unless_newer(&buckets.erased, "erasures", &key, &listed, |held| {
                serde_json::from_slice::<Erased>(held).is_ok_and(|held| held.erased_at >= at)
            })
            .await?;
            let key = super::consent_key(contact, None);
            buckets
                .sticky
                .purge(&key)
                .await
                .map_err(|e| format!("the sticky bucket: {e}"))?;
            // The contact's consent, and its consent per gateway number.
            let per_number = numbers.iter().map(|n| super::consent_key(contact, Some(n)));
            let mut opted_out = *opt_out_kept;
            for key in std::iter::once(key.clone()).chain(per_number) {
                opted_out |= forget_consent(&consent, &key).await?;
            }
            // Its ledger entries at every site, unless it opted out here or
            // anywhere (the bucket keeps that, and the entries are its
            // proof): by subject, the contact's and its per-number ones.
            if !opted_out {
                let all_sites = super::ledger_subject("*", contact, None);
                for filter in [all_sites.clone(), format!("{all_sites}.>")] {
                    ledger
                        .purge()
                        .filter(filter)
                        .await
                        .map_err(|e| format!("the ledger stream: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

impl Work {
    /// Share the conversation rules stored through the API: a change made
    /// here goes to the rules bucket (when it is newer than the bucket's),
    /// and another gateway's change there is put in effect here when it is
    /// newer than the last change here and passes this gateway's checks.
    /// The latest change (by the gateways' clocks) wins everywhere.
    pub async fn share_rules(self: Arc<Self>, book: Arc<RuleBook>, stop: watch::Receiver<bool>) {
        let what = "sharing the conversation rules";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let (this, book) = (&self, &book);
            async move { this.share_rules_once(book, &mut stop).await }
        })
        .await;
    }

    async fn share_rules_once(
        &self,
        book: &RuleBook,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let mut here = book.changes_here();
        here.borrow_and_update();
        // A change made here while the broker was away goes first.
        self.put_rules_if_newer(&buckets.rules, book).await?;
        let mut changes = watch_from_start(&buckets.rules, RULES_KEY, "the rules bucket").await?;
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                r = here.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    here.borrow_and_update();
                    self.put_rules_if_newer(&buckets.rules, book).await?;
                }
                change = changes.next() => {
                    let entry = watched(change, "the rules bucket")?;
                    if entry.operation != kv::Operation::Put {
                        continue;
                    }
                    match serde_json::from_slice::<RulesChange>(&entry.value) {
                        Ok(change) if change.site.as_deref() == Some(self.site.as_str()) => {}
                        Ok(change) if change.site.is_some() => {
                            book.apply_shared(change).await.map_err(|e| e.to_string())?;
                        }
                        Ok(_) => tracing::error!("fleet: rules in the rules bucket without a site; skipped"),
                        Err(e) => tracing::error!(error = %e, "fleet: unreadable rules in the rules bucket; skipped"),
                    }
                }
            }
        }
    }

    /// Put the last change of the rules made here in the rules bucket,
    /// unless the bucket holds one as new or newer (or the last change here
    /// came from the bucket).
    async fn put_rules_if_newer(&self, bucket: &kv::Store, book: &RuleBook) -> Result<(), String> {
        let Some(mut last) = book.last_change().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        if last.site.is_some() {
            return Ok(());
        }
        let at = last.at;
        last.site = Some(self.site.clone());
        let value = serde_json::to_vec(&last).map_err(|e| e.to_string())?;
        let put = super::nats::put_unless_newer(bucket, "rules", RULES_KEY, &value, |held| {
            serde_json::from_slice::<RulesChange>(held).is_ok_and(|held| held.at >= at)
        })
        .await?;
        if put {
            tracing::info!("fleet: the conversation rules changed here are shared with the fleet");
        }
        Ok(())
    }
}

/// A value of the erasures bucket ([`ERASED_BUCKET`]).
#[derive(Debug, Serialize, Deserialize)]
struct Erased {
    /// When the contact was erased (the later of two erasures of it).
    erased_at: chrono::DateTime<chrono::Utc>,
    /// Where.
    site: String,
}

impl Work {
    /// Apply the erasures listed in the fleet's bucket that are not done
    /// here yet: those this gateway missed on the events stream (away
    /// longer than the stream keeps events, or new to the fleet). Each
    /// watch starts with every key's value; those done here are skipped
    /// with one look-up each.
    pub async fn watch_erasures(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "watching the erasures bucket";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let this = &self;
            async move { this.watch_erasures_once(&mut stop).await }
        })
        .await;
    }

    async fn watch_erasures_once(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let mut changes = watch_from_start(&buckets.erased, ">", "the erasures bucket").await?;
        // Applied [`ERASURES_GRACE`] after the first of a batch came (or
        // once a batch is full): the events stream brings an erasure with
        // its number meanwhile, and one done by then costs a look-up.
        let mut batch = Vec::new();
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            let wait = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                _ = wait => {
                    self.apply_erasures(&mut batch).await?;
                    due = None;
                }
                change = changes.next() => {
                    let entry = watched(change, "the erasures bucket")?;
                    if entry.operation != kv::Operation::Put {
                        continue;
                    }
                    let hash = crate::store::erased_hash_of_key(&entry.key);
                    let erased = serde_json::from_slice::<Erased>(&entry.value).ok();
                    match (hash, erased) {
                        (Some(hash), Some(erased)) => batch.push((hash, erased.erased_at)),
                        _ => {
                            tracing::error!(key = %entry.key, "fleet: an unreadable entry of the erasures bucket; skipped");
                            continue;
                        }
                    }
                    due.get_or_insert_with(|| tokio::time::Instant::now() + ERASURES_GRACE);
                    if batch.len() >= ERASURES_BATCH {
                        self.apply_erasures(&mut batch).await?;
                        due = None;
                    }
                }
            }
        }
    }

    /// Apply (and empty) a batch of the erasures bucket's entries.
    async fn apply_erasures(
        &self,
        batch: &mut Vec<(Vec<u8>, chrono::DateTime<chrono::Utc>)>,
    ) -> Result<(), String> {
        let erased = self
            .store
            .apply_hashed_erasures(batch)
            .await
            .map_err(|e| e.to_string())?;
        if erased > 0 {
            tracing::info!(contacts = erased, "fleet: contacts erased at other sites that this gateway had not heard of are erased here too");
        }
        batch.clear();
        Ok(())
    }
}

/// Purge `key` from the consent bucket unless it holds an opt-out (from any
/// site), at the revision read: an opt-out put meanwhile stays. Whether it
/// holds an opt-out.
async fn forget_consent(consent: &kv::Store, key: &str) -> Result<bool, String> {
    for _ in 0..super::nats::CAS_TRIES {
        let Some(held) = consent
            .entry(key)
            .await
            .map_err(|e| format!("the consent bucket: {e}"))?
            .filter(|e| e.operation == kv::Operation::Put)
        else {
            break;
        };
        // Unreadable: kept (it may be an opt-out).
        let opted_out = serde_json::from_slice::<serde_json::Value>(&held.value)
            .map_or(true, |v| v["entry"]["status"] == "opted_out");
        if opted_out {
            return Ok(true);
        }
        if consent
            .purge_expect_revision(key, Some(held.revision))
            .await
            .is_ok()
        {
            break;
        }
    }
    Ok(false)
}

impl Work {
    /// Announce this gateway's campaigns to the others: those that changed
    /// since their last announcement (every [`CAMPAIGN_ANNOUNCE`]; each
    /// once after a start) are put in the campaigns bucket, so that every
    /// gateway lists and reads them.
    pub async fn announce_campaigns(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // Campaign id -> a hash of the record last announced.
        let mut announced: HashMap<String, u64> = HashMap::new();
        let mut tick = tokio::time::interval(CAMPAIGN_ANNOUNCE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                _ = tick.tick() => {}
            }
            if let Err(e) = self.announce_changed(&mut announced).await {
                super::nats::failed("announcing campaigns", &e);
            }
        }
    }

    async fn announce_changed(&self, announced: &mut HashMap<String, u64>) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let store = self.store.clone();
        let known = announced.clone();
        let changed = tokio::task::spawn_blocking(move || {
            let mut changed = Vec::new();
            for entry in store.own_campaigns_raw() {
                let (id, raw) = entry.map_err(|e| e.to_string())?;
                let hash =
                        std::hash::BuildHasher::hash_one(
                            &std::hash::BuildHasherDefault::<
                                std::collections::hash_map::DefaultHasher,
                            >::default(),
                            raw.as_ref(),
                        );
                if known.get(&id) != Some(&hash) {
                    changed.push((id, hash, raw));
                }
            }
            Ok::<_, String>(changed)
        })
        .await
        .map_err(|e| e.to_string())??;
        for (id, hash, raw) in changed {
            let Ok(record) = serde_json::from_slice::<serde_json::Value>(&raw) else {
                tracing::error!(campaign = %id, "fleet: an unreadable campaign record; not announced");
                continue;
            };
            let value = serde_json::to_vec(&serde_json::json!({
                "site": self.site,
                "record": record,
            }))
            .map_err(|e| e.to_string())?;
            // One refused (a bad key) holds up none of the others.
            match buckets.campaigns.put(&id, value.into()).await {
                Ok(_) => {
                    announced.insert(id, hash);
                }
                Err(e) => {
                    tracing::warn!(campaign = %id, error = %e, "fleet: a campaign not announced; tried again");
                }
            }
        }
        Ok(())
    }

    /// Keep the other gateways' campaigns as their gateways last put them
    /// in the campaigns bucket (read-only here). Each watch starts with
    /// every campaign's latest record: a gateway new to the fleet, or away
    /// for long, lists them all.
    pub async fn watch_campaigns(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "watching the campaigns bucket";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let this = &self;
            async move { this.watch_campaigns_once(&mut stop).await }
        })
        .await;
    }

    async fn watch_campaigns_once(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Announced {
            site: String,
            record: crate::store::CampaignRecord,
        }
        let buckets = self.buckets().await?;
        let mut changes = watch_from_start(&buckets.campaigns, ">", "the campaigns bucket").await?;
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                change = changes.next() => {
                    let entry = watched(change, "the campaigns bucket")?;
                    if entry.operation != kv::Operation::Put {
                        continue;
                    }
                    match serde_json::from_slice::<Announced>(&entry.value) {
                        Ok(a) if a.site == self.site => {}
                        Ok(a) if a.record.id != entry.key => {
                            tracing::error!(key = %entry.key, "fleet: a campaign under another id in the campaigns bucket; skipped");
                        }
                        Ok(a) => {
                            self.store
                                .apply_remote_campaign(a.record, &a.site)
                                .map_err(|e| e.to_string())?;
                        }
                        Err(e) => {
                            tracing::error!(campaign = %entry.key, error = %e, "fleet: an unreadable campaign in the campaigns bucket; skipped");
                        }
                    }
                }
            }
        }
    }

    /// Publish `envelope` on this site's subject of the events stream,
    /// deduplicated by `unique` (with the site); the acknowledgement to
    /// wait for.
    async fn publish_event(
        &self,
        unique: &str,
        envelope: &serde_json::Value,
    ) -> Result<jetstream::context::PublishAckFuture, String> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}.{unique}", self.site).as_str(),
        );
        let payload = serde_json::to_vec(envelope).map_err(|e| e.to_string())?;
        self.js
            .publish_with_headers(
                format!("smsgate.events.{}", self.site),
                headers,
                payload.into(),
            )
            .await
            .map_err(|e| format!("the events stream: {e}"))
    }

    /// Apply the other sites' events to this gateway's records.
    pub async fn consume_events(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let what = "reading the events stream";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let this = &self;
            async move { this.consume_once(&mut stop).await }
        })
        .await;
    }

    async fn consume_once(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let buckets = self.buckets().await?;
        let name = format!("events-{}", self.site);
        let mut consumer: consumer::PullConsumer = buckets
            .events
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("the consumer {name}: {e}"))?;
        let prefix = "smsgate.events.";
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| format!("the consumer {name}: {e}"))?;
        let mut lag = tokio::time::interval(Duration::from_secs(1));
        // Applied, acknowledged once the store has them on disk (one flush
        // for many events): a crash before loses no acknowledged event.
        let mut applied: Vec<jetstream::Message> = Vec::new();
        let mut flush = tokio::time::interval(ACK_FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                _ = lag.tick() => {
                    if let Ok(info) = consumer.info().await {
                        let pending = info.num_pending + info.num_ack_pending as u64;
                        self.freshness.set_events_pending(pending);
                    }
                }
                _ = flush.tick(), if !applied.is_empty() => {
                    self.acknowledge(&mut applied).await?;
                }
                next = messages.next() => {
                    let message = match next {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => return Err(format!("the events stream: {e}")),
                        None => return Err("the events stream ended".into()),
                    };
                    let site = message.subject.as_str().strip_prefix(prefix).unwrap_or_default();
                    if site != self.site {
                        if let Err(e) = self.apply_event(&message.payload, site).await {
                            tracing::error!(subject = %message.subject, error = %e, "fleet: cannot apply another site's event; it comes again");
                            let _ = message.ack_with(AckKind::Nak(Some(RETRY))).await;
                            continue;
                        }
                    }
                    applied.push(message);
                    if applied.len() >= ACK_BATCH {
                        self.acknowledge(&mut applied).await?;
                    }
                }
            }
        }
    }

    /// Make what `applied` changed durable, then acknowledge them.
    async fn acknowledge(&self, applied: &mut Vec<jetstream::Message>) -> Result<(), String> {
        self.store
            .sync()
            .await
            .map_err(|e| format!("cannot make applied events durable: {e}"))?;
        for message in applied.drain(..) {
            let _ = message.ack().await;
        }
        Ok(())
    }
}

impl Work {
    /// Apply one event of another site (`site`): a message's record or a
    /// thread's, and the metric fact it is. An unreadable one is logged and
    /// skipped (Ok); a store error is Err.
    async fn apply_event(&self, payload: &[u8], site: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct Envelope {
            /// The event's id in its gateway's log.
            #[serde(default)]
            id: String,
            kind: String,
            #[serde(default)]
            created_at: Option<chrono::DateTime<chrono::Utc>>,
            data: serde_json::Value,
            /// A sent message's price of a part, where it was sent.
            #[serde(default)]
            price: Option<f64>,
        }
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "fleet: an unreadable event; skipped");
                return Ok(());
            }
        };
        let origin = crate::store::event_seq(&envelope.id).map(|seq| (site, seq));
        // Of a contact erased since: not counted (its record here is gone).
        let erased = match (envelope.data["contact"].as_str(), envelope.created_at) {
            (Some(contact), Some(at)) => self
                .store
                .erased_at(contact)
                .map_err(|e| e.to_string())?
                .is_some_and(|erased| at <= erased),
            _ => false,
        };
        if let (Some(metrics), Some(created_at), Some(origin), false) =
            (&self.metrics, envelope.created_at, origin, erased)
        {
            let event = crate::store::Event {
                id: envelope.id.clone(),
                kind: envelope.kind.clone(),
                created_at,
                data: envelope.data.clone(),
            };
            let fact = crate::conversation::engine::metric_fact(
                &self.store,
                &metrics.policy,
                &metrics.wiring,
                &event,
            )
            .map_err(|e| e.to_string())?;
            if let Some(mut fact) = fact {
                if let crate::conversation::metrics::Fact::Sent { cost, parts, .. } = &mut fact {
                    *cost = envelope.price.map(|p| p * f64::from(*parts));
                }
                self.store
                    .record_remote_metrics(
                        &[fact],
                        origin,
                        chrono::Utc::now(),
                        &metrics.wiring.counting,
                    )
                    .map_err(|e| e.to_string())?;
            }
        }
        // A gateway of an older version announces its campaigns on the
        // events stream: not read here (this version reads the campaigns
        // bucket), and not a message.
        if envelope.kind == "campaign.synced" {
            return Ok(());
        }
        if envelope.kind == crate::store::FLEET_CAMPAIGN_CANCEL {
            // Asked at another gateway, for a campaign of this one's.
            if envelope.data["site"] == self.site.as_str() {
                if let Some(id) = envelope.data["id"].as_str() {
                    self.store
                        .request_campaign_cancel(id)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            return Ok(());
        }
        if envelope.kind == crate::store::FLEET_CONTACT_ERASED {
            let contact = envelope.data["contact"].as_str();
            let at = envelope.data["erased_at"]
                .as_str()
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
            match (contact.filter(|c| !c.is_empty()), at) {
                (Some(contact), Some(at)) => {
                    let erased = self
                        .store
                        .erase_remote_contact(contact, at.to_utc())
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::info!(%site, messages = erased, "fleet: a contact erased at another site is erased here too");
                }
                _ => tracing::error!(id = %envelope.id, "fleet: an unreadable erasure; skipped"),
            }
            return Ok(());
        }
        if envelope.kind == crate::store::FLEET_GIVEN_BACK {
            // Another gateway gave back its copy of a message because the
            // recipient opted out: the accepting gateway (this one, if the
            // message is its own) fails it and reports it.
            if let Some(id) = envelope.data["id"].as_str() {
                self.store
                    .fail_given_back(id)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            return Ok(());
        }
        if envelope.kind.starts_with("thread.") {
            let items = envelope
                .data
                .get("items")
                .cloned()
                .map(serde_json::from_value::<Vec<crate::store::TimelineItem>>)
                .transpose();
            let items = match items {
                Ok(items) => items.unwrap_or_default(),
                Err(e) => {
                    tracing::error!(kind = %envelope.kind, error = %e, "fleet: a thread event's unreadable timeline items; the record alone is applied");
                    Vec::new()
                }
            };
            match serde_json::from_value::<crate::store::Thread>(envelope.data) {
                Ok(thread) => self
                    .store
                    .apply_remote_thread(&thread, &items)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => {
                    tracing::error!(kind = %envelope.kind, error = %e, "fleet: an unreadable thread event; skipped");
                    Ok(())
                }
            }
        } else {
            match serde_json::from_value::<Message>(envelope.data) {
                Ok(record) => self
                    .store
                    .apply_remote_message(record)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => {
                    tracing::error!(kind = %envelope.kind, error = %e, "fleet: an unreadable message event; skipped");
                    Ok(())
                }
            }
        }
    }
}

impl FleetLink for Work {
    fn site(&self) -> &str {
        &self.site
    }

    fn connected(&self) -> bool {
        self.js.client().connection_state() == async_nats::connection::State::Connected
    }

    fn hand(&self, message: &Message) -> Pending<'_, Result<(), String>> {
        let message = message.clone();
        Box::pin(async move { self.hand_one(&message).await })
    }

    fn claim(&self, id: &str, why: ClaimFor) -> Pending<'_, Result<Claim, String>> {
        let id = id.to_string();
        Box::pin(async move { self.claim_one(&id, why).await })
    }
}
