//! The conversation engine: a task that reads the event log from its own
//! durable cursor (kept in the store beside the threads) and applies each
//! event to the contact's thread:
//!
//! - `message.received`: the thread opens (a closed or snoozed one reopens),
//!   a wait starts with its SLA due time from the injected [`SlaClock`];
//!   unless the policy already handled the text as a consent keyword (STOP,
//!   START, HELP: a ledger entry for the message, or the policy's own
//!   reading of it), the injected [`Decider`] says what to do and the
//!   actions are applied: replies go through the one admission path
//!   (`compose::outbound`, `Policy::admit`, `Store::accept`) as
//!   `conversational` messages by `automation`, accepted under an
//!   Idempotency-Key made from the event id, so a crash between the accept
//!   and the cursor's move never sends twice; the other actions change the
//!   thread. A STOP also takes the thread out of its flow. Two clocks
//!   start: the wait (any answer ends it) and the person's wait (only a
//!   person's answer ends it: time to first response by a person).
//! - `message.accepted` (a conversational message accepted by anyone but
//!   the engine: a person's reply in the inbox, an app's `POST
//!   /v1/messages`, a webhook's reply by response): the answer ends the
//!   wait and moves an open thread to `waiting_on_customer`, signed by the
//!   message's author ([`by_person`] says whose answer is a person's).
//!   Read from the log, it is applied after the inbound it answers, on the
//!   engine's clock.
//! - every change to the thread and the cursor's move past the event are
//!   one transaction.
//!
//! A timer pass (on a tick and after each batch of events, `now` from the
//! injected [`Clock`]) marks waits past their SLA due time (one
//! `thread.sla_breached` per wait), wakes snoozed threads whose time has
//! come (they wait on us again, with an SLA due time), and takes threads
//! out of flows past their `expires_at`.
//!
//! Wiring (the lead's, after the rules, hours and metrics parts merge):
//! `Engine::with_decider` takes `rules::RuleSet::decide` (and flows),
//! `Engine::with_sla` takes `hours`' due time; metric facts are made from
//! the events and counted a batch at a time behind their own cursor
//! ([`Engine::catch_up`]); [`start_flow`] and [`on_outcome`] call into `flows`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use std::collections::HashMap;

use super::hours::TeamConfig;
use super::metrics::{Counting, Fact};
use super::rules::{Inbound, LiveRules};
use super::settings::ConversationConfig;
use super::{Action, FlowState, ThreadState};
use crate::compose::{self, Draft, SmsPolicy};
use crate::modem::dispatch::Dispatcher;
use crate::policy::Policy;
use crate::store::{
    Accepted, Category, ConsentRecord, ConsentStatus, Direction, Event, IdempotencyKey, Message,
    Store, StoreError, Thread, ThreadChange, ThreadChanged,
};
use crate::webhook::clock::{Clock, SystemClock};

/// What the decider is told about an inbound message.
#[derive(Debug, Clone)]
pub struct DecideInput<'a> {
    pub contact: &'a str,
    pub text: &'a str,
    pub message_id: &'a str,
    /// The thread's state before this message (a new thread: `open`).
    pub state: ThreadState,
    pub flow: Option<&'a FlowState>,
    /// The contact's tags (for now the thread's; the contact profile's once
    /// the contacts part lands).
    pub tags: &'a [String],
    pub team: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Decides the actions for an inbound message that is not a consent
/// keyword (the rules and flows, once wired). Must be deterministic for a
/// given input: a restart between a reply's accept and the cursor's move
/// decides again, and the reply's Idempotency-Key only matches the same text.
pub type Decider = Arc<dyn Fn(&DecideInput) -> Vec<Action> + Send + Sync>;

/// The SLA due time of a wait that starts at the time given, for a thread
/// of this team (None: no team); None: no SLA.
pub type SlaClock = Arc<dyn Fn(Option<&str>, DateTime<Utc>) -> Option<DateTime<Utc>> + Send + Sync>;

/// The author of what the engine does.
pub const AUTOMATION: &str = "automation";

/// The author of a webhook receiver's reply by response.
pub const WEBHOOK: &str = "webhook";

/// The author of a message sent through `POST /v1/messages` with the API
/// token named `token`.
pub fn api_author(token: &str) -> String {
    format!("api:{token}")
}

/// Whether an answer by `author` is a person's (it ends the person's wait:
/// time to first response by a person). Automation is ours (`automation`)
/// or a webhook's reply by response (`webhook`: a program answering within
/// the delivery's request); a person in the inbox, and an app through
/// `POST /v1/messages` (`api:<token>`: a CRM or helpdesk where people type
/// the answer; the gateway cannot tell), are people.
pub fn by_person(author: &str) -> bool {
    author != AUTOMATION && author != WEBHOOK
}

/// How often the timer pass runs without events.
pub const TIMER_PERIOD: Duration = Duration::from_secs(1);

/// Events read per batch.
const BATCH: usize = 256;

/// Timers handled per pass (the rest on the next).
const TIMERS_PER_PASS: usize = 1_000;

/// How long to wait after the store failed.
const STORE_RETRY: Duration = Duration::from_secs(5);

/// The state a flow starts in, for a message sent with `flow` and
/// `context` (`flows::start`: its first step, its expiry); None for a flow
/// whose context does not hold (the API refuses those before the accept).
pub fn start_flow(
    name: &str,
    context: &serde_json::Value,
    started_by: Option<&str>,
    now: DateTime<Utc>,
) -> Option<FlowState> {
    super::flows::start(name, context, started_by.map(str::to_string), now).ok()
}

/// What an outcome recorded on a thread does to it besides being recorded
/// (the flows part's `flows::on_outcome` goes here): a `payment_completed`
/// closes a thread in the payment flow and ends the flow.
pub fn on_outcome(thread: &Thread, outcome: &str) -> Vec<ThreadChange> {
    let Some(flow) = &thread.flow else {
        return Vec::new();
    };
    super::flows::on_outcome(flow, outcome)
        .into_iter()
        .filter_map(|action| match action {
            Action::Close => Some(ThreadChange::State {
                state: ThreadState::Closed,
                until: None,
            }),
            Action::Flow(f) => Some(ThreadChange::Flow(f)),
            _ => None,
        })
        .collect()
}

/// The Idempotency-Key of the `n`th reply decided for event `event_id`.
fn reply_key(event_id: &str, n: usize) -> String {
    format!("conversation:{event_id}:{n}")
}

/// Called after every change the engine or the API applied to a thread
/// (the metric facts are not counted here but from the event log, by
/// [`Engine::catch_up`]).
pub fn on_applied(_store: &Store, _changed: &ThreadChanged) {}

/// The engine and what it is wired to.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    policy: Arc<Policy>,
    /// Woken after a reply is accepted (None in tests without modems).
    dispatcher: Option<Arc<Dispatcher>>,
    sms: Arc<SmsPolicy>,
    decider: Decider,
    sla: SlaClock,
    clock: Arc<dyn Clock>,
    /// Where the metric facts go (None: not counted).
    metrics: Option<Arc<MetricsWiring>>,
}

/// What counting the metrics needs: the `[conversation]` settings, each
/// modem's price of a part, the teams' business hours.
pub struct MetricsWiring {
    pub counting: Counting,
    pub costs: HashMap<String, f64>,
    pub teams: Vec<TeamConfig>,
}

impl MetricsWiring {
    /// The metrics as `[conversation]` counts them (`costs`:
    /// `Config::cost_per_part`).
    pub fn from_config(config: &ConversationConfig, costs: HashMap<String, f64>) -> MetricsWiring {
        MetricsWiring {
            counting: Counting::from_config(config),
            costs,
            teams: config.team.clone(),
        }
    }
}

impl Engine {
    /// An engine that decides nothing and keeps no SLA until wired
    /// ([`Engine::with_decider`], [`Engine::with_sla`]), on the system clock.
    pub fn new(
        store: Store,
        policy: Arc<Policy>,
        dispatcher: Option<Arc<Dispatcher>>,
        sms: Arc<SmsPolicy>,
    ) -> Engine {
        Engine {
            store,
            policy,
            dispatcher,
            sms,
            decider: Arc::new(|_| Vec::new()),
            sla: Arc::new(|_, _| None),
            clock: Arc::new(SystemClock),
            metrics: None,
        }
    }

    /// Wired to `[conversation]`: the rules in effect (`rules`, swapped
    /// while the daemon runs: [`super::rulebook::RuleBook::live`]) and the
    /// flows decide ([`rules_decider`]), the teams' hours keep the SLA ([`team_sla`]),
    /// and the metrics are counted (`costs`: `Config::cost_per_part`).
    pub fn with_conversation(
        self,
        config: &ConversationConfig,
        rules: Arc<LiveRules>,
        costs: HashMap<String, f64>,
    ) -> Engine {
        let teams = Arc::new(config.team.clone());
        let store = self.store.clone();
        self.with_decider(rules_decider(store, rules, teams.clone()))
            .with_sla(team_sla(teams))
            .with_metrics(MetricsWiring::from_config(config, costs))
    }

    pub fn with_metrics(mut self, metrics: MetricsWiring) -> Engine {
        self.metrics = Some(Arc::new(metrics));
        self
    }

    pub fn with_decider(mut self, decider: Decider) -> Engine {
        self.decider = decider;
        self
    }

    pub fn with_sla(mut self, sla: SlaClock) -> Engine {
        self.sla = sla;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.clock = clock;
        self
    }

    /// Run until `stop` turns true: events as they become durable, timers
    /// on every [`TIMER_PERIOD`].
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut events = self.store.event_notifier();
        if let Err(e) = self.store.init_engine_cursor() {
            tracing::error!(error = %e, "conversation engine: cannot read its cursor");
        }
        let mut tick = tokio::time::interval(TIMER_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                return;
            }
            let pass = async {
                self.catch_up().await?;
                self.timers().await
            };
            if let Err(e) = pass.await {
                tracing::error!(error = %e, "conversation engine: store error; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                    r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                }
                continue;
            }
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                _ = events.changed() => {}
                _ = tick.tick() => {}
            }
        }
    }

    /// Apply every event after the engine's cursor and count the metric
    /// facts of every event after the metrics cursor; how many events were
    /// applied. Each batch of events is applied one by one (a fact is made
    /// just before its event is applied, from the thread as the events
    /// before it left it), then its facts are counted in one write that
    /// moves the metrics cursor past the batch. A crash between the two
    /// leaves the metrics cursor behind: the next pass reads those events
    /// again to count them, without applying them again.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let applied_from = self.store.engine_cursor()?;
            let counted_from = match &self.metrics {
                Some(_) => self.store.init_metrics_cursor()?,
                None => applied_from,
            };
            let batch = self
                .store
                .events_from(applied_from.min(counted_from), BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                return Ok(total);
            };
            let mut facts = Vec::new();
            let mut moved = true;
            for (seq, event) in &batch {
                if *seq >= counted_from {
                    if let Some(fact) = self.fact(event)? {
                        facts.push((*seq, fact));
                    }
                }
                if *seq >= applied_from {
                    total += 1;
                    moved = self.apply(*seq, event).await?;
                }
            }
            if let Some(wiring) = &self.metrics {
                let wiring = wiring.clone();
                self.store
                    .blocking(move |store| store.record_metrics(&facts, last, &wiring.counting))
                    .await?;
            }
            if !moved {
                self.store.advance_engine_cursor(last)?;
            }
        }
    }

    /// Apply one event; true when the cursor moved past it with a change.
    async fn apply(&self, seq: u64, event: &Event) -> Result<bool, StoreError> {
        if event.kind == "message.accepted" {
            return self.answered(seq, event).await;
        }
        if event.kind != "message.received" {
            return Ok(false);
        }
        let message: Message = match serde_json::from_value(event.data.clone()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "conversation engine: unreadable message.received; skipped");
                return Ok(false);
            }
        };
        if message.direction != Direction::Inbound {
            return Ok(false);
        }
        // Its contact erased since (the event read before the erasure took
        // it out of the log): no thread is made again.
        if self
            .store
            .erased_since(&message.contact, message.created_at)?
        {
            return Ok(false);
        }
        let now = self.clock.now();
        let contact = message.contact.as_str();
        let thread = self
            .store
            .thread_record(contact)?
            .unwrap_or_else(|| Thread::new(contact, ThreadState::Open, now));
        let consent = consent_keyword(&self.store, &self.policy, &message)?;
        // The rules decide first, so that the wait's SLA is the team's the
        // text is routed to.
        let actions = match consent {
            Some(_) => Vec::new(),
            None => (self.decider)(&DecideInput {
                contact,
                text: &message.body,
                message_id: &message.id,
                state: thread.state,
                flow: thread.flow.as_ref(),
                tags: &thread.tags,
                team: thread.team.as_deref(),
                now,
            }),
        };
        let routed = actions.iter().rev().find_map(|a| match a {
            Action::Route(team) => Some(team.as_str()),
            _ => None,
        });
        let sla_due = (self.sla)(routed.or(thread.team.as_deref()), now);
        let mut changes = vec![ThreadChange::Inbound {
            message_id: message.id.clone(),
            reopen: consent.is_none(),
            sla_due,
        }];
        match consent {
            // A STOP ends the flow, and nothing else answers it but the
            // policy's confirmation.
            Some(ConsentStatus::OptedOut) => {
                if thread.flow.is_some() {
                    changes.push(ThreadChange::Flow(None));
                }
            }
            Some(_) => {}
            None => {
                for (n, action) in actions.into_iter().enumerate() {
                    match action {
                        Action::Reply(text) => {
                            let key = reply_key(&event.id, n);
                            if let Some(reply) = self.reply(&message, &text, key, now).await? {
                                changes.push(ThreadChange::Replied {
                                    message_id: reply.id,
                                    by_person: false,
                                });
                            }
                        }
                        Action::Route(team) => changes.push(ThreadChange::Route(team)),
                        Action::Assign(person) => changes.push(ThreadChange::AssignTo(person)),
                        Action::SetPriority(p) => changes.push(ThreadChange::Priority(p)),
                        Action::Tag(tag) => changes.push(ThreadChange::Tag(tag)),
                        Action::Close => changes.push(ThreadChange::State {
                            state: ThreadState::Closed,
                            until: None,
                        }),
                        Action::Outcome { name, value } => {
                            let (campaign, variant) = self.campaign_of(thread.flow.as_ref())?;
                            changes.push(ThreadChange::Outcome {
                                name,
                                value,
                                note: None,
                                message_id: Some(message.id.clone()),
                                campaign,
                                variant,
                            });
                        }
                        Action::Flow(flow) => changes.push(ThreadChange::Flow(flow)),
                        Action::Answer { key, value } => {
                            changes.push(ThreadChange::Answer { key, value })
                        }
                    }
                }
            }
        }
        // What the message caused comes after it in the timeline, whatever
        // the injected clock says.
        let at = now.max(message.created_at);
        // A thread a consent keyword makes is not waiting on anyone.
        let initial = match consent {
            None => ThreadState::Open,
            Some(_) => ThreadState::Closed,
        };
        let changed = self
            .store
            .change_thread_then(contact, initial, &changes, Some(AUTOMATION), at, Some(seq))
            .await?;
        on_applied(&self.store, &changed);
        Ok(true)
    }

    /// `message.accepted`: an answer to the contact accepted outside the
    /// engine's decisions (a person's reply in the inbox, an app's
    /// conversational `POST /v1/messages`, a webhook's reply by response)
    /// ends the wait it answers, as of the clock, signed by its author. The
    /// engine's own replies are applied with the decision that made them
    /// (before a `Close` among its actions, and not to a later inbound).
    async fn answered(&self, seq: u64, event: &Event) -> Result<bool, StoreError> {
        let message: Message = match serde_json::from_value(event.data.clone()) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(event = %event.id, error = %e, "conversation engine: unreadable message.accepted; skipped");
                return Ok(false);
            }
        };
        let author = message.author.clone().unwrap_or_else(|| api_author("-"));
        if author == AUTOMATION
            || self
                .store
                .erased_since(&message.contact, message.created_at)?
        {
            return Ok(false);
        }
        // No thread yet (a store from before the engine): nothing waits.
        let Some(thread) = self.store.thread_record(&message.contact)? else {
            return Ok(false);
        };
        let at = self.clock.now().max(message.created_at);
        let changed = self
            .store
            .change_thread_then(
                &message.contact,
                thread.state,
                &[ThreadChange::Replied {
                    message_id: message.id.clone(),
                    by_person: by_person(&author),
                }],
                Some(&author),
                at,
                Some(seq),
            )
            .await?;
        on_applied(&self.store, &changed);
        Ok(true)
    }

    /// The campaign and variant of the message that started `flow`.
    fn campaign_of(
        &self,
        flow: Option<&FlowState>,
    ) -> Result<(Option<String>, Option<String>), StoreError> {
        let Some(id) = flow.and_then(|f| f.started_by.as_deref()) else {
            return Ok((None, None));
        };
        Ok(self
            .store
            .get(id)?
            .map_or((None, None), |m| (m.campaign, m.variant)))
    }

    /// A `conversational` reply by automation to `inbound`, admitted as
    /// `POST /v1/messages` admits (an opted-out contact gets nothing) and
    /// accepted under `key`. None: refused or not composable (logged).
    async fn reply(
        &self,
        inbound: &Message,
        text: &str,
        key: String,
        now: DateTime<Utc>,
    ) -> Result<Option<Message>, StoreError> {
        let draft = Draft {
            from: &inbound.to,
            to: &inbound.contact,
            body: text,
            status_report: self.sms.status_reports,
            send_at: None,
            max_parts: self.sms.max_parts,
        };
        let mut message = match compose::outbound(&self.store, draft, now) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(inbound = %inbound.id, error = %e, "conversation engine: reply not composed");
                return Ok(None);
            }
        };
        message.validity = self.sms.validity;
        message.category = Category::Conversational;
        message.author = Some(AUTOMATION.into());
        message.idempotency_key = Some(key.clone());
        let number = (!inbound.to.is_empty()).then_some(inbound.to.as_str());
        if let Err(refusal) = self.policy.admit(&self.store, &mut message, number, now) {
            tracing::info!(inbound = %inbound.id, code = refusal.code(), "conversation engine: reply refused");
            return Ok(None);
        }
        let fingerprint = format!("{}\n{}", inbound.contact, text);
        let key = IdempotencyKey {
            key,
            fingerprint: crate::pdu::hex::encode(&Sha256::digest(fingerprint.as_bytes())),
        };
        Ok(match self.store.accept(message, Some(key)).await? {
            Accepted::New(m) => {
                if let Some(d) = &self.dispatcher {
                    d.notify();
                }
                Some(m)
            }
            Accepted::Replay(m) => Some(m),
            Accepted::ReplayErased(_) => None,
            Accepted::KeyReused => {
                tracing::warn!(inbound = %inbound.id, "conversation engine: the decision changed across a restart; the first reply stands");
                None
            }
        })
    }

    /// Mark waits past their SLA, wake snoozed threads (they wait on us
    /// again, with their team's SLA from the wake) and take threads out of
    /// expired flows, as of the clock's now; how many threads changed.
    pub async fn timers(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut due: Vec<(String, ThreadChange)> = Vec::new();
        for contact in self.store.sla_due_by(now, TIMERS_PER_PASS)? {
            due.push((contact, ThreadChange::SlaBreached));
        }
        for contact in self.store.snoozes_due_by(now, TIMERS_PER_PASS)? {
            let team = self.store.thread_record(&contact)?.and_then(|t| t.team);
            let sla_due = (self.sla)(team.as_deref(), now);
            due.push((contact, ThreadChange::Wake { sla_due }));
        }
        for contact in self.store.flows_expired_by(now, TIMERS_PER_PASS)? {
            due.push((contact, ThreadChange::FlowExpired));
        }
        let mut changed = 0;
        for (contact, change) in due {
            let done = self
                .store
                .change_thread(
                    &contact,
                    ThreadState::Open,
                    std::slice::from_ref(&change),
                    Some(AUTOMATION),
                    now,
                )
                .await?;
            changed += usize::from(!done.items.is_empty());
            on_applied(&self.store, &done);
        }
        Ok(changed)
    }
}

/// The rules and flows as the engine's [`Decider`]: the contact's profile
/// (tags, name and fields for templates) read from the store, business
/// hours from the thread's team. Each text is decided by the rule set in
/// effect when it is read.
pub fn rules_decider(store: Store, rules: Arc<LiveRules>, teams: Arc<Vec<TeamConfig>>) -> Decider {
    Arc::new(move |input: &DecideInput| {
        let profile = match store.profile(input.contact) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "conversation engine: contact profile unreadable; deciding without it");
                Default::default()
            }
        };
        let mut tags = profile.tags.clone();
        tags.extend(input.tags.iter().cloned());
        let fields = |key: &str| profile.value(input.contact, key);
        let business_hours =
            team_of(&teams, input.team).is_none_or(|t| t.business_hours.contains(input.now));
        let decision = rules.current().decide(&Inbound {
            text: input.text,
            thread_state: input.state,
            flow: input.flow,
            contact_tags: &tags,
            contact_fields: &fields,
            business_hours,
            now: input.now,
            message_id: input.message_id,
        });
        tracing::debug!(
            message = %input.message_id,
            matched = decision.matched.as_deref().unwrap_or("-"),
            to_person = decision.to_person,
            "conversation: decided"
        );
        for note in &decision.notes {
            tracing::info!(message = %input.message_id, note = %note, "conversation: not done");
        }
        decision.actions
    })
}

/// The team a thread belongs to, or the first configured team for a thread
/// not routed yet (None: no teams configured).
fn team_of<'a>(teams: &'a [TeamConfig], team: Option<&str>) -> Option<&'a TeamConfig> {
    match team {
        Some(id) => teams.iter().find(|t| t.id == id).or(teams.first()),
        None => teams.first(),
    }
}

/// The SLA due time from the team's response standard in its business
/// hours (a thread of no configured team: the first team's; no teams: no SLA).
pub fn team_sla(teams: Arc<Vec<TeamConfig>>) -> SlaClock {
    Arc::new(move |team, from| team_of(&teams, team).map(|t| t.sla_due(from)))
}

impl Engine {
    /// The metric fact an event is, if any (None too when metrics are not
    /// wired); counted by `catch_up` with its batch.
    fn fact(&self, event: &Event) -> Result<Option<Fact>, StoreError> {
        match &self.metrics {
            Some(wiring) => metric_fact(&self.store, &self.policy, wiring, event),
            None => Ok(None),
        }
    }
}

/// The metric fact an event is, if any: what the engine counts from its
/// own event log, and a fleet's gateway from another site's events.
pub fn metric_fact(
    store: &Store,
    policy: &Policy,
    wiring: &MetricsWiring,
    event: &Event,
) -> Result<Option<Fact>, StoreError> {
    let data = &event.data;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let contact = match data.get("contact").and_then(|c| c.as_str()) {
        Some(c) => c.to_string(),
        None => return Ok(None),
    };
    Ok(match event.kind.as_str() {
        "message.received" | "message.sent" => {
            let Ok(message) = serde_json::from_value::<Message>(data.clone()) else {
                return Ok(None);
            };
            if event.kind == "message.received" {
                let opt_out =
                    consent_keyword(store, policy, &message)? == Some(ConsentStatus::OptedOut);
                Some(Fact::Inbound {
                    contact,
                    at: message.created_at,
                    opt_out,
                })
            } else {
                let team = store.thread_record(&contact)?.and_then(|t| t.team);
                let cost = message
                    .modem
                    .as_ref()
                    .and_then(|m| wiring.costs.get(m))
                    .map(|price| price * f64::from(message.parts));
                Some(Fact::Sent {
                    contact,
                    at: event.created_at,
                    message_id: message.id,
                    campaign: message.campaign,
                    variant: message.variant,
                    team,
                    parts: u32::from(message.parts),
                    cost,
                })
            }
        }
        "thread.state_changed" | "thread.responded" => {
            let change = &data["change"];
            let time = |v: &serde_json::Value| {
                v.as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            // The waits this answer ended: the contact's, and a
            // person's (which automation's answers do not end). An
            // event from before the person's clock (no `by_person`)
            // ended both when its author was a person.
            let waited_from = time(&change["waited_from"]);
            let person_waited_from = if change.get("by_person").is_some() {
                time(&change["person_waited_from"])
            } else {
                waited_from.filter(|_| data["author"].as_str().is_some_and(by_person))
            };
            if waited_from.is_none() && person_waited_from.is_none() {
                return Ok(None);
            }
            let team = text(&data["team"]);
            let hours = team_of(&wiring.teams, team.as_deref()).map(|t| &t.business_hours);
            let business = |from: Option<DateTime<Utc>>| {
                from.map(|from| match hours {
                    Some(hours) => hours.business_duration(from, event.created_at),
                    None => (event.created_at - from).to_std().unwrap_or_default(),
                })
                .unwrap_or_default()
                .as_secs()
            };
            Some(Fact::FirstResponse {
                contact,
                at: event.created_at,
                team,
                waited_from,
                business_seconds: business(waited_from),
                person_waited_from,
                person_business_seconds: business(person_waited_from),
            })
        }
        "thread.outcome" => {
            let change = &data["change"];
            let Some(name) = text(&change["name"]) else {
                return Ok(None);
            };
            Some(Fact::Outcome {
                contact,
                at: event.created_at,
                name,
                campaign: text(&change["campaign"]),
                variant: text(&change["variant"]),
                team: text(&data["team"]),
                message_id: text(&change["message_id"]),
            })
        }
        _ => None,
    })
}

/// The consent state a keyword in `message` moved to (the policy handled
/// it in the message's own transaction: its ledger entry names the
/// message), or for a HELP the current one; None: not a keyword.
fn consent_keyword(
    store: &Store,
    policy: &Policy,
    message: &Message,
) -> Result<Option<ConsentStatus>, StoreError> {
    let entry = store
        .ledger(&message.contact)?
        .into_iter()
        .rev()
        .find(|e| e.inbound_message_id.as_deref() == Some(message.id.as_str()));
    if let Some(entry) = entry {
        return Ok(Some(entry.status));
    }
    // HELP (and a keyword whose reactor was not installed) leaves no
    // ledger entry: the policy's own reading of the text says.
    let fresh = ConsentRecord {
        contact: message.contact.clone(),
        ..ConsentRecord::default()
    };
    let decision = policy.react(message, &fresh);
    Ok(match (decision.consent, decision.reply) {
        (Some((status, _)), _) => Some(status),
        (None, Some(_)) => Some(fresh.status),
        (None, None) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;
    use crate::store::{InboundPart, TimelineEntry};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    struct ManualClock(Mutex<DateTime<Utc>>);

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn policy(store: &Store) -> Arc<Policy> {
        let policy = Arc::new(Policy::from_config(&crate::config::Config::default()));
        store.set_reactor(policy.reactor(), policy.per_number());
        policy
    }

    fn sms() -> Arc<SmsPolicy> {
        Arc::new(SmsPolicy {
            default_country: "US".into(),
            max_parts: 10,
            status_reports: false,
            validity: None,
        })
    }

    async fn inbound(store: &Store, from: &str, text: &str) {
        static N: AtomicU64 = AtomicU64::new(0);
        let pdu = format!("pdu-{}", N.fetch_add(1, Ordering::Relaxed));
        store
            .receive(InboundPart {
                modem: "m1",
                own_number: "+15550000000",
                raw_pdu: pdu.as_bytes(),
                sender: from,
                text,
                alphabet: "gsm7",
                network_time: Utc::now(),
                concat: None,
                error: None,
            })
            .await
            .unwrap();
    }

    fn outbound_bodies(store: &Store, contact: &str) -> Vec<String> {
        store
            .thread(contact, None, 100)
            .unwrap()
            .items
            .into_iter()
            .filter(|m| m.direction == Direction::Outbound)
            .map(|m| m.body)
            .collect()
    }

    /// Replies "Thanks!" to everything.
    fn thanks() -> Decider {
        Arc::new(|_| vec![Action::Reply("Thanks!".into())])
    }

    #[tokio::test]
    async fn a_reply_is_sent_once_across_a_crash_between_its_accept_and_the_cursor() {
        let mut t = TempStore::new();
        let c = "+15550006001";
        let engine = |store: &Store| {
            Engine::new(store.clone(), policy(store), None, sms()).with_decider(thanks())
        };
        inbound(&t.store, c, "hello").await;
        // The first run accepts the reply, then "crashes" before the
        // transaction that moves the cursor.
        let first = engine(&t.store);
        let (seq, event) = t
            .store
            .events_from(0, 10)
            .unwrap()
            .into_iter()
            .find(|(_, e)| e.kind == "message.received")
            .unwrap();
        let message: Message = serde_json::from_value(event.data.clone()).unwrap();
        let accepted = first
            .reply(
                &message,
                "Thanks!",
                reply_key(&event.id, 0),
                first.clock.now(),
            )
            .await
            .unwrap();
        assert!(accepted.is_some());
        assert_eq!(t.store.engine_cursor().unwrap(), 0);
        drop(first);
        t.restart();
        // The restarted engine decides again: the same reply, a replay.
        let second = engine(&t.store);
        second.catch_up().await.unwrap();
        assert_eq!(outbound_bodies(&t.store, c), ["Thanks!"]);
        assert!(t.store.engine_cursor().unwrap() > seq);
        let thread = t.store.thread_record(c).unwrap().unwrap();
        assert_eq!(thread.state, ThreadState::WaitingOnCustomer);
        // And again: nothing more to do.
        second.catch_up().await.unwrap();
        assert_eq!(outbound_bodies(&t.store, c), ["Thanks!"]);
        let author = t.store.thread(c, None, 10).unwrap().items[1].author.clone();
        assert_eq!(author.as_deref(), Some(AUTOMATION));
    }

    #[tokio::test]
    async fn stop_leaves_the_flow_with_no_reply_but_the_confirmation() {
        let t = TempStore::new();
        let store = &t.store;
        let c = "+15550006002";
        let engine = Engine::new(store.clone(), policy(store), None, sms()).with_decider(thanks());
        let now = Utc::now();
        let flow = start_flow(
            "appointment",
            &serde_json::json!({"time": "Tue 10:00"}),
            None,
            now,
        );
        store
            .change_thread(
                c,
                ThreadState::WaitingOnCustomer,
                &[ThreadChange::Flow(flow)],
                None,
                now,
            )
            .await
            .unwrap();
        inbound(store, c, "STOP").await;
        engine.catch_up().await.unwrap();
        let bodies = outbound_bodies(store, c);
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert!(bodies[0].contains("unsubscribed"), "{bodies:?}");
        let thread = store.thread_record(c).unwrap().unwrap();
        assert_eq!(thread.flow, None);
        assert_eq!(
            thread.state,
            ThreadState::WaitingOnCustomer,
            "a STOP opens no wait"
        );
        let page = store.timeline(c, None, 10).unwrap();
        let left = page.items.iter().any(|e| {
            matches!(e, TimelineEntry::Item(i) if matches!(&i.kind, crate::store::ItemKind::Activity { activity, .. } if activity == "flow_left"))
        });
        assert!(left, "{page:?}");
        // Opted out now: a later text is decided on, but its reply is refused.
        inbound(store, c, "why?").await;
        engine.catch_up().await.unwrap();
        assert_eq!(outbound_bodies(store, c).len(), 1);
        assert_eq!(
            store.thread_record(c).unwrap().unwrap().state,
            ThreadState::Open,
            "nobody answered it"
        );
    }

    /// A text read by the engine before its contact was erased and
    /// applied after (the erasure took it out of the log meanwhile): no
    /// thread and no reply are made again.
    #[tokio::test]
    async fn a_text_read_before_an_erasure_makes_no_thread_after_it() {
        let t = TempStore::new();
        let store = &t.store;
        let c = "+15550006005";
        let engine = Engine::new(store.clone(), policy(store), None, sms()).with_decider(thanks());
        inbound(store, c, "Is it ready?").await;
        let (seq, event) = store
            .events_from(0, 10)
            .unwrap()
            .into_iter()
            .find(|(_, e)| e.kind == "message.received")
            .unwrap();
        store.erase_contact(c).await.unwrap();
        assert!(!engine.apply(seq, &event).await.unwrap());
        assert!(store.thread_record(c).unwrap().is_none());
        assert!(outbound_bodies(store, c).is_empty());
    }

    #[tokio::test]
    async fn a_stop_from_a_new_contact_leaves_no_thread_in_the_inbox() {
        let t = TempStore::new();
        let store = &t.store;
        let c = "+15550006004";
        let engine = Engine::new(store.clone(), policy(store), None, sms()).with_decider(thanks());
        inbound(store, c, "STOP").await;
        engine.catch_up().await.unwrap();
        let thread = store.thread_record(c).unwrap().unwrap();
        assert_eq!(thread.state, ThreadState::Closed);
        assert_eq!(thread.waiting_since, None);
        let inbox = store
            .inbox(&crate::store::InboxFilter::default(), Utc::now(), None, 10)
            .unwrap();
        assert!(inbox.items.is_empty());
        assert_eq!(outbound_bodies(store, c).len(), 1, "the confirmation only");
    }

    #[tokio::test]
    async fn sla_breach_once_and_snooze_wake_on_the_injected_clock() {
        let t = TempStore::new();
        let store = &t.store;
        let c = "+15550006003";
        let start = Utc::now();
        let clock = Arc::new(ManualClock(Mutex::new(start)));
        let engine = Engine::new(store.clone(), policy(store), None, sms())
            .with_clock(clock.clone())
            .with_sla(Arc::new(|_, at| Some(at + chrono::Duration::minutes(10))));
        inbound(store, c, "anyone there?").await;
        engine.catch_up().await.unwrap();
        let thread = store.thread_record(c).unwrap().unwrap();
        assert_eq!(thread.sla_due, Some(start + chrono::Duration::minutes(10)));
        *clock.0.lock().unwrap() = start + chrono::Duration::minutes(9);
        assert_eq!(engine.timers().await.unwrap(), 0);
        *clock.0.lock().unwrap() = start + chrono::Duration::minutes(10);
        assert_eq!(engine.timers().await.unwrap(), 1);
        assert_eq!(engine.timers().await.unwrap(), 0, "once per wait");
        let breaches = store
            .events_from(0, 100)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == "thread.sla_breached")
            .count();
        assert_eq!(breaches, 1);
        // Snooze for an hour: back in the inbox when the clock gets there.
        let now = clock.now();
        store
            .change_thread(
                c,
                ThreadState::Open,
                &[ThreadChange::State {
                    state: ThreadState::Snoozed,
                    until: Some(now + chrono::Duration::hours(1)),
                }],
                Some("ana"),
                now,
            )
            .await
            .unwrap();
        *clock.0.lock().unwrap() = now + chrono::Duration::minutes(59);
        assert_eq!(engine.timers().await.unwrap(), 0);
        let wake = now + chrono::Duration::hours(1);
        *clock.0.lock().unwrap() = wake;
        assert_eq!(engine.timers().await.unwrap(), 1);
        let woken = store.thread_record(c).unwrap().unwrap();
        assert_eq!(woken.state, ThreadState::Open);
        // It waits on us again, from the wake, with the team's SLA.
        assert_eq!(woken.waiting_since, Some(wake));
        assert_eq!(woken.sla_due, Some(wake + chrono::Duration::minutes(10)));
        *clock.0.lock().unwrap() = wake + chrono::Duration::minutes(10);
        assert_eq!(engine.timers().await.unwrap(), 1, "the woken wait breaches");
        // A flow past its expiry (context.expires: 2h) is left once.
        let now = clock.now();
        let flow = start_flow("rating", &serde_json::json!({"expires": "2h"}), None, now);
        store
            .change_thread(c, ThreadState::Open, &[ThreadChange::Flow(flow)], None, now)
            .await
            .unwrap();
        *clock.0.lock().unwrap() = now + chrono::Duration::minutes(119);
        assert_eq!(engine.timers().await.unwrap(), 0);
        *clock.0.lock().unwrap() = now + chrono::Duration::hours(2);
        assert_eq!(engine.timers().await.unwrap(), 1);
        assert_eq!(engine.timers().await.unwrap(), 0);
        assert_eq!(store.thread_record(c).unwrap().unwrap().flow, None);
    }

    /// The waits a thread event's answer ended become its first-response
    /// fact: automation's ends the wait, a person's after automation the
    /// person's only, and an event from before the person's clock (no
    /// `by_person`) both when its author is a person.
    #[test]
    fn an_answers_fact_names_the_waits_it_ended() {
        let t = TempStore::new();
        let engine = Engine::new(t.store.clone(), policy(&t.store), None, sms()).with_metrics(
            MetricsWiring {
                counting: Counting::default(),
                costs: HashMap::new(),
                teams: Vec::new(),
            },
        );
        let t0 = Utc::now();
        let at = t0 + chrono::Duration::seconds(90);
        let fact = |kind: &str, author: &str, change: serde_json::Value| {
            let event = Event {
                id: "evt_1".into(),
                kind: kind.into(),
                created_at: at,
                data: serde_json::json!({"contact": "+15550006020", "team": "support",
                    "author": author, "change": change}),
            };
            match engine.fact(&event).unwrap() {
                Some(Fact::FirstResponse {
                    waited_from,
                    business_seconds,
                    person_waited_from,
                    person_business_seconds,
                    ..
                }) => Some((
                    waited_from,
                    business_seconds,
                    person_waited_from,
                    person_business_seconds,
                )),
                None => None,
                other => panic!("{other:?}"),
            }
        };
        let both = Some((Some(t0), 90, Some(t0), 90));
        let wait_only = Some((Some(t0), 90, None, 0));
        assert_eq!(
            fact(
                "thread.state_changed",
                AUTOMATION,
                serde_json::json!({"by_person": false, "waited_from": t0})
            ),
            wait_only
        );
        assert_eq!(
            fact(
                "thread.responded",
                "ana",
                serde_json::json!({"by_person": true, "waited_from": null,
                    "person_waited_from": t0})
            ),
            Some((None, 0, Some(t0), 90))
        );
        assert_eq!(
            fact(
                "thread.state_changed",
                "ana",
                serde_json::json!({"by_person": true, "waited_from": t0,
                    "person_waited_from": t0})
            ),
            both
        );
        // Events from before the person's clock.
        let old = serde_json::json!({"from": "open", "to": "waiting_on_customer",
            "waited_from": t0});
        assert_eq!(fact("thread.state_changed", "ana", old.clone()), both);
        assert_eq!(
            fact("thread.state_changed", AUTOMATION, old.clone()),
            wait_only
        );
        assert_eq!(fact("thread.state_changed", WEBHOOK, old), wait_only);
        // A state change that ends no wait.
        assert_eq!(
            fact(
                "thread.state_changed",
                "ana",
                serde_json::json!({"from": "open", "to": "closed"})
            ),
            None
        );
    }

    /// Marks the outbound `id` sent by modem m1 (a `message.sent` event).
    async fn mark_sent(store: &Store, id: &str) {
        let now = Utc::now();
        store
            .update(id, |m| {
                m.modem = Some("m1".into());
                for part in &mut m.part_status {
                    part.status = crate::store::PartStatus::Sent;
                }
                m.transition(now, crate::store::MessageStatus::Sent);
                true
            })
            .await
            .unwrap()
            .unwrap();
    }

    /// An engine that applied events but stopped before counting their
    /// facts: after the restart the facts are counted, once, and the events
    /// are not applied again.
    #[tokio::test]
    async fn facts_of_events_applied_before_a_crash_are_counted_once() {
        let mut t = TempStore::new();
        let c = "+15550006005";
        let counting = |store: &Store| {
            Engine::new(store.clone(), policy(store), None, sms())
                .with_decider(thanks())
                .with_metrics(MetricsWiring {
                    counting: Counting::default(),
                    costs: HashMap::from([("m1".to_string(), 0.05)]),
                    teams: Vec::new(),
                })
        };
        // Applying only: what the engine did before a crash between the
        // events' changes and the write of their facts.
        let applying = |store: &Store| {
            Engine::new(store.clone(), policy(store), None, sms()).with_decider(thanks())
        };
        inbound(&t.store, c, "hello").await;
        counting(&t.store).catch_up().await.unwrap();
        let counted_before = t.store.metrics_cursor_if_set().unwrap().unwrap();
        let reply = t
            .store
            .thread(c, None, 10)
            .unwrap()
            .items
            .into_iter()
            .find(|m| m.direction == Direction::Outbound)
            .unwrap();
        mark_sent(&t.store, &reply.id).await;
        inbound(&t.store, c, "see you then").await;
        applying(&t.store).catch_up().await.unwrap();
        assert_eq!(
            t.store.metrics_cursor_if_set().unwrap(),
            Some(counted_before),
            "applied, not counted"
        );
        assert_eq!(outbound_bodies(&t.store, c), ["Thanks!", "Thanks!"]);
        t.restart();

        let engine = counting(&t.store);
        engine.catch_up().await.unwrap();
        let today = Utc::now().date_naive();
        let query = crate::conversation::metrics::SummaryQuery {
            from: today - chrono::Duration::days(1),
            to: today + chrono::Duration::days(1),
            campaign: None,
            variant: None,
            team: None,
        };
        let summary = t.store.metrics_summary(&query).unwrap();
        // The reply was sent (one part at 0.05) and answered in the window.
        assert_eq!(summary.messages_sent, 1);
        assert_eq!(summary.cost_per_outcome.parts, 1);
        assert_eq!(
            summary.reply_rate,
            crate::conversation::metrics::Rate::new(1, 1)
        );
        assert_eq!(
            t.store.metrics_cursor_if_set().unwrap(),
            Some(t.store.engine_cursor().unwrap()),
            "caught up"
        );
        assert_eq!(
            outbound_bodies(&t.store, c),
            ["Thanks!", "Thanks!"],
            "nothing applied twice"
        );
        // Read again: nothing counts twice.
        engine.catch_up().await.unwrap();
        assert_eq!(t.store.metrics_summary(&query).unwrap(), summary);
    }

    #[tokio::test]
    async fn a_text_after_the_flow_expired_goes_to_the_rules_not_the_old_flow() {
        let t = TempStore::new();
        let store = &t.store;
        let start = Utc::now();
        let clock = Arc::new(ManualClock(Mutex::new(start)));
        let rules = crate::conversation::rules::RuleSet::from_config(&[], true).unwrap();
        let engine = Engine::new(store.clone(), policy(store), None, sms())
            .with_decider(rules_decider(
                store.clone(),
                Arc::new(LiveRules::new(rules)),
                Arc::new(Vec::new()),
            ))
            .with_clock(clock.clone());
        // Three threads in the appointment flow for an hour.
        let (fresh, timed, behind) = ("+15550006011", "+15550006012", "+15550006013");
        for c in [fresh, timed, behind] {
            let context = serde_json::json!({"time": "Tue 10:00", "expires": "1h"});
            let flow = start_flow("appointment", &context, None, start);
            store
                .change_thread(
                    c,
                    ThreadState::WaitingOnCustomer,
                    &[ThreadChange::Flow(flow)],
                    Some(AUTOMATION),
                    start,
                )
                .await
                .unwrap();
        }
        let confirmed = |c: &str| {
            let thread = store.thread_record(c).unwrap().unwrap();
            thread
                .outcomes
                .iter()
                .any(|o| o.name == "appointment_confirmed")
        };
        let left = |c: &str| {
            store.timeline(c, None, 20).unwrap().items.iter().any(|e| {
                matches!(e, TimelineEntry::Item(i) if matches!(&i.kind,
                    crate::store::ItemKind::Activity { activity, .. } if activity == "flow_left"))
            })
        };
        // In time, "C" confirms.
        *clock.0.lock().unwrap() = start + chrono::Duration::minutes(59);
        inbound(store, fresh, "C").await;
        engine.catch_up().await.unwrap();
        assert!(confirmed(fresh));
        assert_eq!(
            outbound_bodies(store, fresh),
            ["Confirmed: Tue 10:00. See you then!"]
        );

        // An hour on: the timer takes one thread out of the flow first...
        *clock.0.lock().unwrap() = start + chrono::Duration::hours(1);
        inbound(store, behind, "C").await;
        // ...(the other's text is read before any timer pass: an engine
        // catching up after a stop).
        engine.catch_up().await.unwrap();
        assert_eq!(
            engine.timers().await.unwrap(),
            1,
            "the one still in its flow"
        );
        inbound(store, timed, "C").await;
        engine.catch_up().await.unwrap();
        for c in [timed, behind] {
            let thread = store.thread_record(c).unwrap().unwrap();
            assert_eq!(thread.flow, None, "{c}");
            assert!(left(c), "{c}");
            assert!(!confirmed(c), "the old flow does not read it: {c}");
            assert!(
                outbound_bodies(store, c)
                    .iter()
                    .all(|b| !b.contains("Confirmed")),
                "{c}"
            );
            // The rules placed it: the text waits for an answer.
            assert_eq!(thread.state, ThreadState::Open, "{c}");
        }
    }
}
