//! Campaigns: one text (or A/B variants of it) to many recipients, each
//! message through the same admission as `POST /v1/messages`.
//!
//! - [`plan`] checks a campaign before anything is stored: templates (syntax),
//!   variants and weights, category, flow, context. A field a recipient has no
//!   value for is found later, per recipient, and listed as that recipient's
//!   error (`missing_field`), never sent with a blank.
//! - [`choose_variant`] picks a variant by weight with a draw seeded by the
//!   campaign id and the number: the same recipient of the same campaign
//!   always gets the same variant, so a campaign resumed after a crash chooses
//!   as it did before.
//! - [`CampaignTask`] runs in the daemon: it accepts each campaign's
//!   recipients in batches (compose and `Policy::admit` per recipient, as
//!   `POST /v1/messages` does, then the batch's messages, counts and resume
//!   cursor stored in one transaction and one flush:
//!   `Store::accept_campaign_batch`, so a crash leaves a batch wholly done or
//!   not begun and a resume, however late, sends nobody a second message),
//!   resumes unfinished campaigns at start, carries out cancels a page at a
//!   time, and keeps each campaign's status counters from the event log.
//!   In a fleet (`[cluster]`, connected) its messages go through the fleet's
//!   work queue as every API send does: stored as handed, published once
//!   the batch is durable (retried until the broker takes them), sent by
//!   whichever gateway takes them; a cancel claims each waiting one in the
//!   fleet's fence first ([`claim_for_cancel`], the API's cancel too).
//!
//! Recipients by tag come from the contacts' tag index
//! ([`recipients_with_tag`]); templates read the contact's profile
//! ([`contact_value`]) and then the campaign's context.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use super::flows;
use super::template::{self, TemplateError};
use crate::compose::{self, Draft, SmsPolicy};
use crate::fleet::{Claim, ClaimFor, FleetLink};
use crate::policy::{Policy, Refusal};
use crate::store::{
    BatchOutcome, CampaignRecord, CampaignState, Category, ContactProfile, FleetLeg, Message,
    MessageStatus, Progress, RecipientError, Store, StoreError, VariantCounts, VariantRecord,
};
use crate::webhook::clock::Clock;

/// The most recipients one campaign may have.
pub const MAX_RECIPIENTS: usize = 100_000;
/// The most variants one campaign may have.
pub const MAX_VARIANTS: usize = 26;
/// The largest weight of a variant.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Why a campaign request is refused (the API answers 422 with `code`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct CampaignError {
    pub code: &'static str,
    pub detail: String,
}

fn refuse(code: &'static str, detail: impl Into<String>) -> CampaignError {
    CampaignError {
        code,
        detail: detail.into(),
    }
}

/// A variant as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantSpec {
    pub id: String,
    /// None: the campaign's template.
    pub template: Option<String>,
    /// None: 1.
    pub weight: Option<u32>,
}

/// A campaign as asked for, after the request's JSON shape was read.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignSpec {
    pub name: String,
    pub template: Option<String>,
    /// None: one variant, `a`, with the campaign's template.
    pub variants: Option<Vec<VariantSpec>>,
    pub category: Option<String>,
    pub flow: Option<String>,
    pub context: Option<Value>,
    pub send_at: Option<DateTime<Utc>>,
}

/// The checked parts of a campaign, ready to be stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Plan {
    pub name: String,
    pub category: Category,
    pub variants: Vec<VariantRecord>,
    pub flow: Option<String>,
    pub context: Option<Value>,
    pub send_at: Option<DateTime<Utc>>,
}

/// Check a campaign request: every refusal is a [`CampaignError`].
pub fn plan(spec: CampaignSpec) -> Result<Plan, CampaignError> {
    let name = spec.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(refuse("invalid_name", "name must be 1 to 200 characters"));
    }
    let category = match spec.category.as_deref() {
        None => {
            return Err(refuse(
                "invalid_category",
                "category is required: transactional, conversational or marketing",
            ))
        }
        Some(c) => Category::parse(c).ok_or_else(|| {
            refuse(
                "invalid_category",
                format!("category {c:?}: use transactional, conversational or marketing"),
            )
        })?,
    };
    if let Some(context) = &spec.context {
        if !context.is_object() {
            return Err(refuse("invalid_context", "context must be a JSON object"));
        }
    }
    if let Some(flow) = &spec.flow {
        // The flow's own check of its context (slots, url, questions), as a
        // thread will start it: refused here rather than per recipient.
        let empty = Value::Object(Default::default());
        let context = spec.context.as_ref().unwrap_or(&empty);
        if let Err(e) = flows::start(flow, context, None, Utc::now()) {
            let code = match e {
                flows::FlowError::UnknownFlow(_) => "invalid_flow",
                _ => "invalid_flow_context",
            };
            return Err(refuse(code, e.to_string()));
        }
    }
    let check = |template: &str, whose: &str| -> Result<(), CampaignError> {
        template::placeholders(template)
            .map(|_| ())
            .map_err(|e| refuse("invalid_template", format!("{whose}: {e}")))?;
        if template.trim().is_empty() {
            return Err(refuse("invalid_template", format!("{whose} is empty")));
        }
        Ok(())
    };
    if let Some(t) = &spec.template {
        check(t, "template")?;
    }
    let specs = spec.variants.unwrap_or_else(|| {
        vec![VariantSpec {
            id: "a".into(),
            template: None,
            weight: None,
        }]
    });
    if specs.is_empty() {
        return Err(refuse(
            "invalid_variants",
            "variants is empty: leave it out for one text, or give at least one",
        ));
    }
    if specs.len() > MAX_VARIANTS {
        return Err(refuse(
            "invalid_variants",
            format!("at most {MAX_VARIANTS} variants"),
        ));
    }
    let mut variants: Vec<VariantRecord> = Vec::with_capacity(specs.len());
    for v in specs {
        let id = v.id.trim().to_string();
        let valid = !id.is_empty()
            && id.len() <= 32
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(refuse(
                "invalid_variants",
                format!("variant id {:?}: 1 to 32 letters, digits, `_` or `-`", v.id),
            ));
        }
        if variants.iter().any(|known| known.id == id) {
            return Err(refuse(
                "invalid_variants",
                format!("variant id {id:?} is given twice"),
            ));
        }
        let weight = v.weight.unwrap_or(1);
        if weight == 0 || weight > MAX_WEIGHT {
            return Err(refuse(
                "invalid_weights",
                format!("variant {id:?}: weight must be 1 to {MAX_WEIGHT}"),
            ));
        }
        let template = match v.template.or_else(|| spec.template.clone()) {
            Some(t) => t,
            None => {
                return Err(refuse(
                    "invalid_template",
                    format!("variant {id:?} has no template, and the campaign has none"),
                ))
            }
        };
        check(&template, &format!("variant {id:?}'s template"))?;
        variants.push(VariantRecord {
            id,
            template,
            weight,
        });
    }
    Ok(Plan {
        name,
        category,
        variants,
        flow: spec.flow,
        context: spec.context,
        send_at: spec.send_at,
    })
}

impl Plan {
    /// The stored record of a new campaign with `total` recipients asked
    /// for, `listed` of them distinct and valid.
    pub fn record(
        &self,
        id: String,
        total: u64,
        listed: u64,
        now: DateTime<Utc>,
    ) -> CampaignRecord {
        CampaignRecord {
            id,
            name: self.name.clone(),
            category: self.category,
            variants: self.variants.clone(),
            flow: self.flow.clone(),
            context: self.context.clone(),
            send_at: self.send_at,
            created_at: now,
            updated_at: now,
            state: if listed == 0 {
                CampaignState::Accepted
            } else {
                CampaignState::Accepting
            },
            progress: Progress {
                total,
                listed,
                ..Progress::default()
            },
            counts: vec![VariantCounts::default(); self.variants.len()],
            site: None,
        }
    }
}

/// Recipients with a contact tag, a page at a time: (numbers, next cursor).
pub fn recipients_with_tag(
    store: &Store,
    tag: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<(Vec<String>, Option<String>), StoreError> {
    let (page, next) = store.contacts_with_tag(tag, cursor, limit)?;
    Ok((page.into_iter().map(|(number, _)| number).collect(), next))
}

/// A contact's value for a template placeholder: `{{name}}`, `{{number}}`,
/// `{{external_id}}` or any of its fields.
pub fn contact_value(number: &str, profile: &ContactProfile, name: &str) -> Option<String> {
    profile.value(number, name)
}

/// A variant's metrics, served with the campaign (`variants[].metrics`):
/// the summary by campaign and variant (`Store::metrics_summary`) from the
/// campaign's first day to `today`, at most the summary's longest period.
pub fn variant_metrics(
    store: &Store,
    record: &CampaignRecord,
    variant: &str,
    today: chrono::NaiveDate,
) -> Result<super::metrics::Summary, StoreError> {
    let first = record.created_at.date_naive().min(today);
    let longest = today - chrono::Duration::days(730);
    store.metrics_summary(&super::metrics::SummaryQuery {
        from: first.max(longest),
        to: today,
        campaign: Some(record.id.clone()),
        variant: Some(variant.to_string()),
        team: None,
    })
}

/// A value of the campaign's `context` by name; `a.b` reads into objects.
/// Strings as they are, numbers and booleans as written; other values
/// (lists, objects) are not text and count as missing.
pub fn context_value(context: Option<&Value>, name: &str) -> Option<String> {
    let mut value = context?;
    for key in name.split('.') {
        value = value.as_object()?.get(key)?;
    }
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The variant (an index into `weights`) for `number` in `campaign`: a
/// weighted draw from a 64-bit hash of the two (FNV-1a, then SplitMix64's
/// finaliser to spread it), reproducible without keeping any state.
pub fn choose_variant(campaign: &str, number: &str, weights: &[u32]) -> usize {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in campaign.bytes().chain([0xFF]).chain(number.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    let mut draw = h % total;
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if draw < w {
            return i;
        }
        draw -= w;
    }
    weights.len() - 1
}

/// What becomes of one recipient before the store is asked.
enum Prepared {
    Message(Box<Message>, usize),
    Skip(&'static str),
    Error(RecipientError),
}

/// The reason a refused recipient is counted under.
fn skip_reason(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::OptedOut => "opted_out",
        Refusal::ConsentRequired => "consent_required",
        Refusal::NotConversational => "not_conversational",
    }
}

/// Recipients composed, admitted and stored per transaction: a chunk of the
/// stored list. The task holds at most two batches (one being stored, the
/// next being composed), whatever the campaign's size.
pub const BATCH: usize = 100;
/// Batches of one campaign per turn before the task looks at the others
/// (and at the event log and a stop).
const BATCHES_PER_TURN: usize = 8;
/// Messages a cancel changes per transaction.
const CANCEL_PAGE: usize = 500;

/// The first wait before messages that the fleet's broker did not take are
/// published again; it doubles up to [`HAND_RETRY_MAX`] while publications
/// keep failing.
const HAND_RETRY_FIRST: Duration = Duration::from_secs(1);
const HAND_RETRY_MAX: Duration = Duration::from_secs(30);

/// A batch being composed: the batch and the time it was admitted at.
type Composing = tokio::task::JoinHandle<Result<(BatchOutcome, DateTime<Utc>), StoreError>>;
/// A stored batch being made durable: what it released once it is.
type Flushing = tokio::task::JoinHandle<Result<Released, StoreError>>;

/// What a stored batch releases once it is durable: how many messages it
/// queued for this gateway's modems, and those it handed to the fleet.
#[derive(Default)]
struct Released {
    local: usize,
    handed: Vec<Message>,
}

/// Publish `messages` to the fleet's work queue concurrently: the ids the
/// broker did not take, and the last error.
async fn publish(fleet: &Arc<dyn FleetLink>, messages: Vec<Message>) -> (Vec<String>, String) {
    let mut publishing = tokio::task::JoinSet::new();
    for message in messages {
        let fleet = fleet.clone();
        publishing.spawn(async move {
            let result = fleet.hand(&message).await;
            (message.id, result)
        });
    }
    let mut failed = Vec::new();
    let mut error = String::new();
    while let Some(done) = publishing.join_next().await {
        match done {
            Ok((_, Ok(()))) => {}
            Ok((id, Err(e))) => {
                error = e;
                failed.push(id);
            }
            // A publication that panicked: its message is not known here
            // any more; the next start publishes it again.
            Err(e) => error = e.to_string(),
        }
    }
    (failed, error)
}

/// Why a turn of the campaign task stopped short (it tries again in 5 s).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fleet's broker could not be asked (a cancel's claims).
    #[error("the fleet's broker could not be asked: {0}")]
    Fleet(String),
}

/// What the fleet's fence says about cancelling a waiting message here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelClaim {
    /// Cancel it here: it is not the fleet's (or no longer waiting), this
    /// gateway claimed it for the cancel, or it was cancelled at another
    /// gateway already. A gateway that took it finds the claim before its
    /// first `AT+CMGS` and gives its copy back.
    Cancel,
    /// Another gateway (its site) claimed it to send it: past cancelling;
    /// its events bring its final state.
    Theirs(String),
}

/// The one cancel of a message in a fleet (the API's and a campaign's):
/// a waiting message of the fleet may be in another gateway's outbox, so
/// it is claimed in the fleet's fence for the cancel (`ClaimFor::Cancel`)
/// before it is cancelled here, and no gateway sends it after. Err: the
/// broker could not be asked (nothing is cancelled; ask again later).
pub async fn claim_for_cancel(
    fleet: &dyn FleetLink,
    message: &Message,
) -> Result<CancelClaim, String> {
    if message.fleet.is_none() || !message.status.is_waiting() {
        return Ok(CancelClaim::Cancel);
    }
    match fleet.claim(&message.id, ClaimFor::Cancel).await? {
        Claim::Mine => Ok(CancelClaim::Cancel),
        // Cancelled already (at another gateway): cancelled here too.
        Claim::Cancelled(_) => Ok(CancelClaim::Cancel),
        // Claimed by this gateway's own modem, which has not sent any of it
        // yet (a failed attempt put it back): cancelled here (the "sending"
        // mark refuses a record that no longer waits).
        Claim::Theirs(site)
            if site == fleet.site()
                && message.fleet == Some(FleetLeg::Taken)
                && message.part_status.iter().all(|p| p.mr.is_none()) =>
        {
            Ok(CancelClaim::Cancel)
        }
        Claim::Theirs(site) => Ok(CancelClaim::Theirs(site)),
    }
}

/// The daemon's campaign worker (see the module's documentation).
#[derive(Clone)]
pub struct CampaignTask {
    pub store: Store,
    pub policy: Arc<Policy>,
    pub sms: Arc<SmsPolicy>,
    /// Called after messages were queued for this gateway's modems (the
    /// dispatcher's wake-up).
    pub wake: Arc<dyn Fn() + Send + Sync>,
    /// Now, for admission (quiet hours, rate limits) and the messages'
    /// times; injected by tests.
    pub clock: Arc<dyn Clock>,
    /// The fleet (`[cluster]`): while its broker is connected, messages are
    /// handed to its work queue, and a cancel claims them in its fence.
    /// None: this gateway's modems send every message.
    pub fleet: Option<Arc<dyn FleetLink>>,
    /// Handed messages whose publication failed, published again by
    /// [`CampaignTask::republish`] beside the task's other work.
    pub unpublished: Arc<Unpublished>,
}

/// The ids of handed messages that the fleet's work queue has not taken
/// (kept as ids: each is read again before it is published, so one
/// cancelled or failed meanwhile is not). Shared by a task's clones.
#[derive(Default)]
pub struct Unpublished {
    ids: std::sync::Mutex<Vec<String>>,
    added: tokio::sync::Notify,
}

impl Unpublished {
    fn add(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        if let Ok(mut queue) = self.ids.lock() {
            queue.extend(ids);
        }
        self.added.notify_one();
    }

    fn take(&self) -> Vec<String> {
        self.ids
            .lock()
            .map(|mut queue| std::mem::take(&mut *queue))
            .unwrap_or_default()
    }

    /// How many wait to be published again.
    pub fn len(&self) -> usize {
        self.ids.lock().map(|queue| queue.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CampaignTask {
    /// Work until `stop`: count events, accept a batch of each unfinished
    /// campaign in turn, carry out cancels; sleep when there is nothing to do.
    /// Beside it, publish again what the fleet's broker did not take (a
    /// broker that refuses publications holds up no other campaign's work,
    /// nor a cancel).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        tokio::join!(self.work(stop.clone()), self.republish(stop));
    }

    async fn work(&self, mut stop: watch::Receiver<bool>) {
        let mut events = self.store.event_notifier();
        let mut changes = self.store.campaign_changes();
        loop {
            if *stop.borrow_and_update() {
                return;
            }
            events.borrow_and_update();
            changes.borrow_and_update();
            let counted = self.count_events().map_err(TaskError::from);
            let worked = self.step_until(&stop).await;
            if let Err(e) = counted.as_ref().and(worked.as_ref()) {
                tracing::error!(error = %e, "campaigns: retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            if matches!(worked, Ok(true)) || matches!(counted, Ok(true)) {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                r = stop.changed() => if r.is_err() { return },
                _ = events.changed() => {}
                _ = changes.changed() => {}
            }
        }
    }

    /// Count a page of new events; whether there may be more.
    fn count_events(&self) -> Result<bool, StoreError> {
        const PAGE: usize = 512;
        let cursor = self.store.campaign_events_cursor()?;
        let events = self.store.events_after(cursor.as_deref(), PAGE)?;
        self.store.apply_campaign_events(&events)?;
        Ok(events.len() == PAGE)
    }

    /// One batch of every campaign with work left; whether any was done.
    /// (A publication to the fleet's work queue that fails is left to
    /// [`CampaignTask::republish`].)
    pub async fn step(&self) -> Result<bool, TaskError> {
        let (_running, never) = watch::channel(false);
        self.step_until(&never).await
    }

    /// [`CampaignTask::step`], ending a turn's batches early when `stop`
    /// says so.
    async fn step_until(&self, stop: &watch::Receiver<bool>) -> Result<bool, TaskError> {
        let mut worked = false;
        for id in self.store.active_campaigns()? {
            let Some(record) = self.store.campaign(&id)? else {
                continue;
            };
            match record.state {
                CampaignState::Accepting => {
                    self.accept_batches(&record, stop).await?;
                    worked = true;
                }
                CampaignState::Cancelling => {
                    self.cancel(&record).await?;
                    worked = true;
                }
                // Finished: take it off the work list.
                CampaignState::Accepted | CampaignState::Cancelled => {
                    self.store.retire_campaign(&id)?;
                }
            }
        }
        Ok(worked)
    }

    /// The message for one recipient, or why there is none.
    fn prepare(
        &self,
        record: &CampaignRecord,
        number: &str,
        now: DateTime<Utc>,
        fleet: Option<FleetLeg>,
    ) -> Result<Prepared, StoreError> {
        // Erased after the campaign was made: its place in the list holds
        // the number's hash.
        if number.starts_with(crate::store::ERASED_PREFIX) {
            return Ok(Prepared::Skip("erased"));
        }
        let weights: Vec<u32> = record.variants.iter().map(|v| v.weight).collect();
        let index = choose_variant(&record.id, number, &weights);
        let Some(variant) = record.variants.get(index) else {
            return Ok(Prepared::Error(RecipientError {
                number: number.to_string(),
                code: "no_variant".into(),
                detail: "the campaign has no variants".into(),
            }));
        };
        let profile = self.store.profile(number)?;
        let context = record.context.as_ref();
        let body = match template::render(&variant.template, |name| {
            contact_value(number, &profile, name).or_else(|| context_value(context, name))
        }) {
            Ok(body) => body,
            Err(e) => {
                let code = match e {
                    TemplateError::Missing(_) => "missing_field",
                    TemplateError::Syntax(_) => "invalid_template",
                };
                return Ok(Prepared::Error(RecipientError {
                    number: number.to_string(),
                    code: code.into(),
                    detail: format!("variant {:?}: {e}", variant.id),
                }));
            }
        };
        let mut message = match compose::outbound(
            &self.store,
            Draft {
                from: "",
                to: number,
                body: &body,
                status_report: self.sms.status_reports,
                send_at: record.send_at,
                max_parts: self.sms.max_parts,
            },
            now,
        ) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Prepared::Error(RecipientError {
                    number: number.to_string(),
                    code: e.code().into(),
                    detail: format!("variant {:?}: {e}", variant.id),
                }))
            }
        };
        message.validity = self.sms.validity;
        message.category = record.category;
        message.campaign = Some(record.id.clone());
        message.variant = Some(variant.id.clone());
        message.flow = record.flow.clone();
        message.context = record.context.clone();
        if let Err(refusal) = self.policy.admit(&self.store, &mut message, None, now) {
            return Ok(Prepared::Skip(skip_reason(&refusal)));
        }
        // As every API send (`admit_and_accept`): sent by whichever gateway
        // takes it from the fleet's work queue; with the broker away, or
        // when it is due further ahead than the fence remembers a cancel,
        // by this gateway's modems (nothing is published, nothing goes
        // twice).
        message.fleet = fleet.filter(|_| !crate::fleet::beyond_the_fence(message.not_before, now));
        Ok(Prepared::Message(Box::new(message), index))
    }

    /// The part in the fleet of the messages composed now: handed while
    /// the fleet's broker is connected, else none (this gateway's modems).
    fn fleet_leg(&self, campaign: &str) -> Option<FleetLeg> {
        let fleet = self.fleet.as_ref()?;
        if fleet.connected() {
            return Some(FleetLeg::Handed);
        }
        tracing::warn!(%campaign, "fleet: the broker is away; this batch is kept for this gateway's modems");
        None
    }

    /// Accept up to [`BATCHES_PER_TURN`] batches of `record`'s recipients,
    /// each composed and admitted, then stored with the cursor moved past it
    /// in one transaction. Off the async workers, and overlapped: the next
    /// batch is composed on one blocking thread while this one is stored and
    /// flushed (its admission does not depend on this one's messages: every
    /// recipient is another contact). A batch is flushed while the next is
    /// stored (the log is ordered: a later batch is never on disk without
    /// the earlier ones, and a crash loses a tail of batches that the
    /// resume cursor has not passed either); once a batch is durable, the
    /// dispatcher is woken for its messages and the fleet's are handed to
    /// the work queue ([`CampaignTask::release_when_durable`]), and the
    /// turn ends only when every stored batch is released. A batch that
    /// finds the campaign no longer accepting (a cancel) or its cursor moved
    /// stores nothing and ends the turn.
    async fn accept_batches(
        &self,
        record: &CampaignRecord,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let record = Arc::new(record.clone());
        let listed = record.progress.listed;
        let mut from = record.progress.processed;
        let mut composing = Some(self.compose_batch(&record, from));
        let mut flushing: Option<Flushing> = None;
        let result = self
            .store_batches(
                &record,
                listed,
                &mut from,
                (&mut composing, &mut flushing),
                stop,
            )
            .await;
        // The last batch stored (or the one before an error) is made durable
        // before the turn ends.
        if let Some(last) = flushing.take() {
            self.release_when_durable(last).await?;
        }
        result
    }

    /// The loop of [`CampaignTask::accept_batches`]: `flushing` holds the
    /// durability wait of the batch stored last.
    async fn store_batches(
        &self,
        record: &Arc<CampaignRecord>,
        listed: u64,
        from: &mut u64,
        (composing, flushing): (&mut Option<Composing>, &mut Option<Flushing>),
        stop: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        for turn in 1..=BATCHES_PER_TURN {
            let Some(this) = composing.take() else { break };
            let (batch, now) = joined(this.await)??;
            let next = *from + batch.processed;
            let more = turn < BATCHES_PER_TURN && next < listed && !*stop.borrow();
            if more {
                *composing = Some(self.compose_batch(record, next));
            }
            let store = self.store.clone();
            let id = record.id.clone();
            let at = *from;
            let (after, stored, durability, batch) = joined(
                tokio::task::spawn_blocking(move || {
                    store
                        .accept_campaign_batch(&id, at, &batch, now)
                        .map(|(after, stored, durability)| (after, stored, durability, batch))
                })
                .await,
            )??;
            if let Some(previous) = flushing.take() {
                self.release_when_durable(previous).await?;
            }
            // Only what this batch stored (a batch run again stores nothing).
            let mut released = Released::default();
            if stored > 0 {
                for (message, _) in batch.messages {
                    if message.fleet == Some(FleetLeg::Handed) {
                        released.handed.push(message);
                    } else {
                        released.local += 1;
                    }
                }
            }
            *flushing = Some(tokio::spawn(async move {
                durability.wait().await.map(|()| released)
            }));
            let moved_on = after.is_some_and(|r| {
                r.state == CampaignState::Accepting && r.progress.processed == next
            });
            if !(more && moved_on) {
                break;
            }
            *from = next;
        }
        Ok(())
    }

    /// Wait for a stored batch to be durable, then wake the dispatcher if
    /// it queued messages for this gateway's modems, and publish those it
    /// handed to the fleet (they need no wake-up here: the gateway that
    /// takes one from the work queue wakes its own).
    async fn release_when_durable(&self, flush: Flushing) -> Result<(), StoreError> {
        let released = joined(flush.await)??;
        if released.local > 0 {
            (self.wake)();
        }
        self.hand(released.handed).await;
        Ok(())
    }

    /// Publish `messages` (durable here as handed) to the fleet's work
    /// queue, concurrently, once; what the broker did not take goes to
    /// [`CampaignTask::republish`]. Never sent here meanwhile: a handed
    /// message waits for the fleet (and one left waiting at a stop is
    /// published again at the next start: `Work::republish_handed`).
    /// Publishing one twice is harmless: the work queue drops a copy within
    /// its duplicate window, the fence any later one.
    async fn hand(&self, messages: Vec<Message>) {
        let Some(fleet) = &self.fleet else { return };
        let (failed, error) = publish(fleet, messages).await;
        if !failed.is_empty() {
            tracing::warn!(count = failed.len(), %error, "fleet: campaign messages not taken by the work queue; publishing them again");
            self.unpublished.add(failed);
        }
    }

    /// Until `stop`: publish again the messages that the broker did not
    /// take, each read again first (one cancelled or failed meanwhile, an
    /// opt-out, is not published); while publications keep failing, after
    /// 1 s, then 2 s, ... up to 30 s.
    async fn republish(&self, mut stop: watch::Receiver<bool>) {
        let Some(fleet) = &self.fleet else { return };
        let mut wait = HAND_RETRY_FIRST;
        loop {
            if self.unpublished.is_empty() {
                tokio::select! {
                    _ = self.unpublished.added.notified() => {}
                    r = stop.changed() => if r.is_err() || *stop.borrow() { return },
                }
                continue;
            }
            if *stop.borrow() {
                return;
            }
            let mut messages = Vec::new();
            let mut unread = Vec::new();
            for id in self.unpublished.take() {
                match self.store.get(&id) {
                    Ok(Some(now)) => {
                        if now.fleet == Some(FleetLeg::Handed) && now.status.is_waiting() {
                            messages.push(now);
                        }
                    }
                    Ok(None) => {}
                    Err(_) => unread.push(id),
                }
            }
            let (mut failed, error) = publish(fleet, messages).await;
            failed.extend(unread);
            if failed.is_empty() {
                wait = HAND_RETRY_FIRST;
                continue;
            }
            tracing::warn!(count = failed.len(), %error, retry_in = ?wait, "fleet: campaign messages still not taken by the work queue");
            self.unpublished.add(failed);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            }
            wait = (wait * 2).min(HAND_RETRY_MAX);
        }
    }

    /// Start composing the batch from recipient `from` on a blocking thread;
    /// it yields the batch and the time it was admitted at.
    fn compose_batch(&self, record: &Arc<CampaignRecord>, from: u64) -> Composing {
        let task = self.clone();
        let record = record.clone();
        tokio::task::spawn_blocking(move || {
            let now = task.clock.now();
            Ok((task.prepare_batch(&record, from, now)?, now))
        })
    }

    /// Compose and admit the batch from recipient `from` (nothing stored).
    fn prepare_batch(
        &self,
        record: &CampaignRecord,
        from: u64,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, StoreError> {
        let mut numbers = self.store.campaign_recipients(&record.id, from)?;
        numbers.truncate(BATCH);
        let mut batch = BatchOutcome {
            processed: numbers.len() as u64,
            ..BatchOutcome::default()
        };
        if numbers.is_empty() {
            // The list ends before `listed` says (a damaged store): finish
            // rather than ask for the same missing chunk forever.
            tracing::error!(campaign = %record.id, from, listed = record.progress.listed, "campaign recipient list ends early");
            batch.processed = record.progress.listed.saturating_sub(from).max(1);
        }
        let fleet = self.fleet_leg(&record.id);
        for number in &numbers {
            match self.prepare(record, number, now, fleet)? {
                Prepared::Skip(reason) => batch.skipped.push(reason),
                Prepared::Error(e) => batch.errors.push(e),
                Prepared::Message(message, variant) => batch.messages.push((*message, variant)),
            }
        }
        Ok(batch)
    }

    /// Cancel every message of `record` that has not reached a modem, a
    /// page per transaction, then mark the campaign cancelled. Run again
    /// after a crash, it finds the cancelled ones settled and counts them.
    /// In a fleet each waiting message is claimed in the fence first
    /// ([`claim_for_cancel`]): one another gateway claimed to send is left
    /// to it (its events bring its final state and count it here); when
    /// the broker cannot be asked, what could be claimed is cancelled and
    /// the cancel is tried again later (Err).
    async fn cancel(&self, record: &CampaignRecord) -> Result<(), TaskError> {
        let mut after: Option<String> = None;
        let mut unasked = None;
        loop {
            let (waiting, next) =
                self.store
                    .campaign_waiting(&record.id, after.as_deref(), CANCEL_PAGE)?;
            let (waiting, error) = self.fence_for_cancel(waiting).await?;
            unasked = unasked.or(error);
            if !waiting.is_empty() {
                let changed = self
                    .store
                    .cancel_waiting_many(&waiting, self.clock.now(), "campaign cancelled")
                    .await?;
                let statuses: Vec<(String, MessageStatus)> =
                    changed.into_iter().map(|(m, _)| (m.id, m.status)).collect();
                self.store
                    .record_campaign_statuses(&record.id, &statuses)
                    .await?;
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        if let Some(e) = unasked {
            return Err(TaskError::Fleet(e));
        }
        self.store.finish_campaign_cancel(&record.id).await?;
        Ok(())
    }

    /// Of a page of waiting messages, those to cancel here (all of them
    /// outside a fleet), claimed in the fleet's fence concurrently, and an
    /// error if the broker could not be asked about some (they are not
    /// among those to cancel).
    async fn fence_for_cancel(
        &self,
        waiting: Vec<String>,
    ) -> Result<(Vec<String>, Option<String>), StoreError> {
        let Some(fleet) = &self.fleet else {
            return Ok((waiting, None));
        };
        let mut cancel = Vec::with_capacity(waiting.len());
        let mut claiming = tokio::task::JoinSet::new();
        for id in waiting {
            match self.store.get(&id)? {
                Some(message) if message.fleet.is_some() && message.status.is_waiting() => {
                    let fleet = fleet.clone();
                    claiming.spawn(async move {
                        let claim = claim_for_cancel(fleet.as_ref(), &message).await;
                        (message.id, claim)
                    });
                }
                // Not the fleet's (kept for this gateway's modems) or past
                // waiting: the cancel here decides.
                _ => cancel.push(id),
            }
        }
        let mut error = None;
        while let Some(done) = claiming.join_next().await {
            match done {
                Ok((id, Ok(CancelClaim::Cancel))) => cancel.push(id),
                Ok((id, Ok(CancelClaim::Theirs(site)))) => {
                    tracing::info!(message_id = %id, %site, "campaign cancel: another gateway of the fleet is sending it");
                }
                Ok((_, Err(e))) => error = Some(e),
                Err(e) => error = Some(e.to_string()),
            }
        }
        Ok((cancel, error))
    }
}

/// A blocking task's result; a task that panicked or was cancelled is a
/// store error (the campaign task retries).
fn joined<T>(done: Result<T, tokio::task::JoinError>) -> Result<T, StoreError> {
    done.map_err(|e| StoreError::Durability(format!("campaign task: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn spec() -> CampaignSpec {
        CampaignSpec {
            name: "Spring".into(),
            template: Some("Hi, see you {{time}}".into()),
            variants: None,
            category: Some("transactional".into()),
            flow: None,
            context: Some(json!({"time": "Tue 10:00"})),
            send_at: None,
        }
    }

    #[test]
    fn a_plain_campaign_has_one_variant_with_its_template() {
        let plan = plan(spec()).unwrap();
        assert_eq!(
            plan.variants,
            vec![VariantRecord {
                id: "a".into(),
                template: "Hi, see you {{time}}".into(),
                weight: 1
            }]
        );
        assert_eq!(plan.category, Category::Transactional);
    }

    #[test]
    fn refusals_name_their_code() {
        let cases: Vec<(CampaignSpec, &str)> = vec![
            (
                CampaignSpec {
                    name: " ".into(),
                    ..spec()
                },
                "invalid_name",
            ),
            (
                CampaignSpec {
                    category: None,
                    ..spec()
                },
                "invalid_category",
            ),
            (
                CampaignSpec {
                    category: Some("promo".into()),
                    ..spec()
                },
                "invalid_category",
            ),
            (
                CampaignSpec {
                    flow: Some("survey".into()),
                    ..spec()
                },
                "invalid_flow",
            ),
            (
                CampaignSpec {
                    context: Some(json!([1])),
                    ..spec()
                },
                "invalid_context",
            ),
            (
                CampaignSpec {
                    template: Some("Hi {{name".into()),
                    ..spec()
                },
                "invalid_template",
            ),
            (
                CampaignSpec {
                    template: None,
                    ..spec()
                },
                "invalid_template",
            ),
            (
                CampaignSpec {
                    variants: Some(vec![]),
                    ..spec()
                },
                "invalid_variants",
            ),
            (
                CampaignSpec {
                    variants: Some(vec![
                        VariantSpec {
                            id: "a".into(),
                            template: None,
                            weight: None,
                        },
                        VariantSpec {
                            id: "a".into(),
                            template: None,
                            weight: None,
                        },
                    ]),
                    ..spec()
                },
                "invalid_variants",
            ),
            (
                CampaignSpec {
                    variants: Some(vec![VariantSpec {
                        id: "a b".into(),
                        template: None,
                        weight: None,
                    }]),
                    ..spec()
                },
                "invalid_variants",
            ),
            (
                CampaignSpec {
                    variants: Some(vec![VariantSpec {
                        id: "a".into(),
                        template: None,
                        weight: Some(0),
                    }]),
                    ..spec()
                },
                "invalid_weights",
            ),
            (
                CampaignSpec {
                    variants: Some(vec![VariantSpec {
                        id: "a".into(),
                        template: Some("{{}}".into()),
                        weight: None,
                    }]),
                    ..spec()
                },
                "invalid_template",
            ),
        ];
        for (spec, code) in cases {
            let shown = format!("{spec:?}");
            assert_eq!(plan(spec).unwrap_err().code, code, "{shown}");
        }
        assert!(plan(CampaignSpec {
            flow: Some("appointment".into()),
            ..spec()
        })
        .is_ok());
    }

    #[test]
    fn variants_follow_their_weights_and_repeat_for_a_recipient() {
        let weights = [1, 3];
        let mut counts = [0usize; 2];
        for n in 0..4000 {
            let number = format!("+1555{n:07}");
            let v = choose_variant("cmp_1", &number, &weights);
            assert_eq!(
                v,
                choose_variant("cmp_1", &number, &weights),
                "reproducible"
            );
            counts[v] += 1;
        }
        // 1:3 of 4,000 is 1,000:3,000; a fair draw stays within 4 sigma (~110).
        assert!((890..=1110).contains(&counts[0]), "{counts:?}");
        // Another campaign draws independently.
        let moved = (0..200)
            .filter(|n| {
                let number = format!("+1555{n:07}");
                choose_variant("cmp_1", &number, &[1, 1])
                    != choose_variant("cmp_2", &number, &[1, 1])
            })
            .count();
        assert!((60..=140).contains(&moved), "{moved}");
        assert_eq!(choose_variant("c", "n", &[5]), 0);
    }

    struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    /// The tests' start time (a Monday morning): fixed, so nothing depends
    /// on when the test runs.
    fn t0() -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    fn task(store: &Store, clock: &Arc<ManualClock>) -> CampaignTask {
        CampaignTask {
            store: store.clone(),
            policy: Arc::new(Policy::from_config(&crate::config::Config::default())),
            sms: Arc::new(SmsPolicy::default()),
            wake: Arc::new(|| {}),
            clock: clock.clone(),
            fleet: None,
            unpublished: Default::default(),
        }
    }

    /// Every stored message of `campaign`, by recipient.
    fn stored(store: &Store, campaign: &str) -> HashMap<String, Vec<Message>> {
        let mut out: HashMap<String, Vec<Message>> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list(
                    &crate::store::MessageFilter::default(),
                    cursor.as_deref(),
                    500,
                )
                .unwrap();
            for m in page.items {
                if m.campaign.as_deref() == Some(campaign) {
                    out.entry(m.to.clone()).or_default().push(m);
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// A stored two-variant campaign to `n` numbers, created at `at`.
    async fn campaign(store: &Store, n: usize, at: DateTime<Utc>) -> (CampaignRecord, Vec<String>) {
        let numbers: Vec<String> = (0..n).map(|i| format!("+1555060{i:04}")).collect();
        campaign_to(store, numbers, at).await
    }

    /// A campaign to `numbers` (two variants), created at `at`.
    async fn campaign_to(
        store: &Store,
        numbers: Vec<String>,
        at: DateTime<Utc>,
    ) -> (CampaignRecord, Vec<String>) {
        let n = numbers.len();
        let plan = plan(CampaignSpec {
            variants: Some(vec![
                VariantSpec {
                    id: "a".into(),
                    template: None,
                    weight: Some(1),
                },
                VariantSpec {
                    id: "b".into(),
                    template: Some("B {{time}}".into()),
                    weight: Some(1),
                },
            ]),
            ..spec()
        })
        .unwrap();
        let id = store.new_campaign_id(at);
        let record = plan.record(id, n as u64, n as u64, at);
        store
            .create_campaign(&record, &numbers, &[], None)
            .await
            .unwrap();
        (record, numbers)
    }

    /// A daemon killed after a batch and started again eight days later,
    /// when every idempotency key of that time has been pruned: the resume
    /// starts at the first recipient without a message (the cursor moved
    /// with the batch's messages, in one transaction), so the recipients of
    /// the first batch keep their one message and the rest get theirs, on
    /// the day of the resume.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resume_days_later_sends_nobody_twice() {
        let mut temp = crate::store::test_support::TempStore::new();
        let start = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(start)));
        let (record, numbers) = campaign(&temp.store, BATCH + 20, start).await;
        let id = record.id.clone();
        // One batch, as the task stores it, then the kill.
        let batch = task(&temp.store, &clock)
            .prepare_batch(&record, 0, start)
            .unwrap();
        let (_, n, durability) = temp
            .store
            .accept_campaign_batch(&id, 0, &batch, start)
            .unwrap();
        durability.wait().await.unwrap();
        assert_eq!(n, BATCH);
        let first = stored(&temp.store, &id);
        assert_eq!(first.len(), BATCH);

        temp.restart();
        let later = start + chrono::Duration::days(8);
        temp.store.prune_indexes(later).await.unwrap();
        *clock.0.lock().unwrap() = later;
        let store = temp.store.clone();
        let resumed = store.campaign(&id).unwrap().unwrap();
        assert_eq!(
            (resumed.state, resumed.progress.processed),
            (CampaignState::Accepting, BATCH as u64)
        );
        let task = task(&store, &clock);
        while task.step().await.unwrap() {}

        let done = store.campaign(&id).unwrap().unwrap();
        let n = numbers.len() as u64;
        assert_eq!(done.state, CampaignState::Accepted);
        assert_eq!((done.progress.processed, done.progress.accepted), (n, n));
        assert_eq!(done.counts.iter().map(|c| c.accepted).sum::<u64>(), n);
        assert_eq!(done.messages().queued, n);
        let by_recipient = stored(&store, &id);
        assert_eq!(by_recipient.len(), numbers.len());
        for number in &numbers {
            let messages = &by_recipient[number];
            assert_eq!(
                messages.len(),
                1,
                "{number} has {} messages",
                messages.len()
            );
            let m = &messages[0];
            match first.get(number) {
                // The first batch's message is the one stored before the kill.
                Some(before) => {
                    assert_eq!(m.id, before[0].id);
                    assert_eq!(m.created_at, start);
                }
                None => assert_eq!(m.created_at, later),
            }
            let variant = choose_variant(&id, number, &[1, 1]);
            assert_eq!(m.variant.as_deref(), Some(["a", "b"][variant]));
        }
        assert!(store.active_campaigns().unwrap().is_empty());
    }

    /// A batch is stored only from the cursor it was composed at, and only
    /// while the campaign is accepting: a second run of the same batch (two
    /// tasks, or a retry) and a batch overtaken by a cancel store nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_stored_once_and_not_after_a_cancel() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let task = task(store, &clock);
        let (record, _) = campaign(store, BATCH * 2 + 3, now).await;
        let id = record.id.clone();

        let batch = task.prepare_batch(&record, 0, now).unwrap();
        assert_eq!(batch.messages.len(), BATCH);
        // Composing stored nothing.
        assert!(stored(store, &id).is_empty());
        let (after, n, durability) = store.accept_campaign_batch(&id, 0, &batch, now).unwrap();
        durability.wait().await.unwrap();
        assert_eq!(n, BATCH);
        assert_eq!(after.unwrap().progress.processed, BATCH as u64);
        // The same batch again: the cursor has moved, nothing is stored.
        let again = task.prepare_batch(&record, 0, now).unwrap();
        let (after, n, durability) = store.accept_campaign_batch(&id, 0, &again, now).unwrap();
        durability.wait().await.unwrap();
        assert_eq!(n, 0);
        assert_eq!(after.unwrap().progress.accepted, BATCH as u64);
        assert_eq!(stored(store, &id).len(), BATCH);

        // The next batch is composed, then the campaign is cancelled.
        let record = store.campaign(&id).unwrap().unwrap();
        let next = task.prepare_batch(&record, BATCH as u64, now).unwrap();
        store.request_campaign_cancel(&id).await.unwrap();
        let (after, n, durability) = store
            .accept_campaign_batch(&id, BATCH as u64, &next, now)
            .unwrap();
        durability.wait().await.unwrap();
        assert_eq!(n, 0);
        assert_eq!(after.unwrap().state, CampaignState::Cancelling);
        assert_eq!(stored(store, &id).len(), BATCH);

        // The cancel cancels every message stored, a page at a time.
        while task.step().await.unwrap() {}
        let done = store.campaign(&id).unwrap().unwrap();
        assert_eq!(done.state, CampaignState::Cancelled);
        assert_eq!(done.messages().cancelled, BATCH as u64);
        assert_eq!(done.messages().queued, 0);
        assert_eq!(done.progress.processed, BATCH as u64);
        let by_recipient = stored(store, &id);
        assert!(by_recipient
            .values()
            .all(|m| m.len() == 1 && m[0].status == MessageStatus::Cancelled));
        assert_eq!(store.outbox_len(), 0);
    }

    /// A cancel after the whole list was accepted goes through the
    /// campaign's messages a page at a time (three pages here) and cancels
    /// every one; its counters move with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_goes_page_by_page_over_every_message() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let task = task(store, &clock);
        let n = CANCEL_PAGE * 2 + 7;
        let (record, _) = campaign(store, n, now).await;
        let id = record.id.clone();
        while task.step().await.unwrap() {}
        let accepted = store.campaign(&id).unwrap().unwrap();
        assert_eq!(accepted.state, CampaignState::Accepted);
        assert_eq!(accepted.messages().queued, n as u64);
        assert_eq!(store.outbox_len(), n);

        let later = now + chrono::Duration::minutes(5);
        *clock.0.lock().unwrap() = later;
        store.request_campaign_cancel(&id).await.unwrap();
        while task.step().await.unwrap() {}
        let done = store.campaign(&id).unwrap().unwrap();
        assert_eq!(done.state, CampaignState::Cancelled);
        assert_eq!(done.messages().cancelled, n as u64);
        assert_eq!(done.messages().queued, 0);
        assert_eq!(
            done.counts
                .iter()
                .map(|c| c.messages.cancelled)
                .sum::<u64>(),
            n as u64
        );
        assert_eq!(store.outbox_len(), 0);
        let by_recipient = stored(store, &id);
        assert_eq!(by_recipient.len(), n);
        for messages in by_recipient.values() {
            assert_eq!(messages.len(), 1);
            let m = &messages[0];
            assert_eq!(m.status, MessageStatus::Cancelled);
            // Cancelled at the task's time, with the reason.
            let last = m.history.last().unwrap();
            assert_eq!(
                (last.at, last.note.as_deref()),
                (later, Some("campaign cancelled"))
            );
        }
    }

    /// A fleet's link for the tests: records each publication, fails the
    /// next `failing` of them, answers claims as scripted (default: this
    /// gateway's), and can be cut off.
    #[derive(Default)]
    struct FakeFleet {
        connected: std::sync::atomic::AtomicBool,
        failing: std::sync::atomic::AtomicUsize,
        /// Every publication asked for, by message id, failed ones too.
        tries: std::sync::Mutex<Vec<String>>,
        /// The publications the broker took.
        handed: std::sync::Mutex<Vec<String>>,
        /// Scripted answers by message id (None: the broker is away).
        answers: std::sync::Mutex<HashMap<String, Option<Claim>>>,
        claims: std::sync::Mutex<Vec<(String, ClaimFor)>>,
    }

    impl FakeFleet {
        fn connected(connected: bool) -> Arc<FakeFleet> {
            let fleet = FakeFleet::default();
            fleet
                .connected
                .store(connected, std::sync::atomic::Ordering::SeqCst);
            Arc::new(fleet)
        }

        fn handed(&self) -> Vec<String> {
            self.handed.lock().unwrap().clone()
        }
    }

    impl FleetLink for FakeFleet {
        fn site(&self) -> &str {
            "here"
        }

        fn connected(&self) -> bool {
            self.connected.load(std::sync::atomic::Ordering::SeqCst)
        }

        fn hand(&self, message: &Message) -> crate::fleet::Pending<'_, Result<(), String>> {
            let id = message.id.clone();
            Box::pin(async move {
                self.tries.lock().unwrap().push(id.clone());
                let fail = self
                    .failing
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok();
                if fail {
                    return Err("no responders".into());
                }
                self.handed.lock().unwrap().push(id);
                Ok(())
            })
        }

        fn claim(
            &self,
            id: &str,
            why: ClaimFor,
        ) -> crate::fleet::Pending<'_, Result<Claim, String>> {
            let id = id.to_string();
            Box::pin(async move {
                self.claims.lock().unwrap().push((id.clone(), why));
                match self.answers.lock().unwrap().get(&id) {
                    Some(Some(claim)) => Ok(claim.clone()),
                    Some(None) => Err("the broker is away".into()),
                    None => Ok(Claim::Mine),
                }
            })
        }
    }

    /// The task of [`task`] in a fleet, counting its wake-ups.
    fn fleet_task(
        store: &Store,
        clock: &Arc<ManualClock>,
        fleet: &Arc<FakeFleet>,
    ) -> (CampaignTask, Arc<std::sync::atomic::AtomicUsize>) {
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = wakes.clone();
        let task = CampaignTask {
            wake: Arc::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
            fleet: Some(fleet.clone()),
            ..task(store, clock)
        };
        (task, wakes)
    }

    /// In a connected fleet a campaign's messages go to the fleet's work
    /// queue as every API send does: stored handed (never in this
    /// gateway's outbox, no wake-up here) and each published once its batch
    /// is durable; publications the broker refused are published again
    /// (the clock of the backoff is tokio's, paused: it runs at once).
    #[tokio::test(start_paused = true)]
    async fn in_a_connected_fleet_every_message_is_handed_and_published() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let fleet = FakeFleet::connected(true);
        // The broker refuses the first three publications.
        fleet.failing.store(3, std::sync::atomic::Ordering::SeqCst);
        let (task, wakes) = fleet_task(store, &clock, &fleet);
        let n = BATCH + 20;
        let (record, numbers) = campaign(store, n, now).await;
        while task.step().await.unwrap() {}
        republished(&task, &fleet, n).await;

        let by_recipient = stored(store, &record.id);
        assert_eq!(by_recipient.len(), n);
        let ids: Vec<String> = numbers
            .iter()
            .map(|n| by_recipient[n][0].id.clone())
            .collect();
        assert!(by_recipient
            .values()
            .all(|m| m.len() == 1 && m[0].fleet == Some(FleetLeg::Handed)));
        assert_eq!(store.outbox_len(), 0);
        assert_eq!(wakes.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Each published: every one taken by the broker, once here (the
        // three refused were tried again).
        let mut handed = fleet.handed();
        handed.sort();
        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(handed, expected);
        assert_eq!(fleet.tries.lock().unwrap().len(), n + 3);
        let done = store.campaign(&record.id).unwrap().unwrap();
        assert_eq!(done.state, CampaignState::Accepted);
        assert_eq!(done.messages().queued, n as u64);
        // Nothing is claimed to accept.
        assert!(fleet.claims.lock().unwrap().is_empty());
    }

    /// [`CampaignTask::republish`] until the broker has taken `n`
    /// publications (tokio's clock, paused, runs through the backoff).
    async fn republished(task: &CampaignTask, fleet: &FakeFleet, n: usize) {
        let (_stop_tx, stop) = watch::channel(false);
        let taken = async {
            while fleet.handed().len() < n {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            _ = task.republish(stop) => panic!("republish ended without a stop"),
            _ = tokio::time::timeout(Duration::from_secs(600), taken) => {}
        }
        assert_eq!(fleet.handed().len(), n);
    }

    /// A broker that refuses every publication holds up neither the next
    /// campaign nor a cancel: the refused messages wait, still handed, for
    /// [`CampaignTask::republish`], which publishes what is still waiting
    /// once the broker takes them again (not the cancelled ones).
    #[tokio::test(start_paused = true)]
    async fn a_refusing_broker_holds_up_no_other_campaign_nor_a_cancel() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let fleet = FakeFleet::connected(true);
        fleet
            .failing
            .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        let (task, _) = fleet_task(store, &clock, &fleet);
        let n = BATCH + 20;
        let (first, _) = campaign(store, n, now).await;
        let others: Vec<String> = (0..30).map(|i| format!("+1555070{i:04}")).collect();
        let (second, _) = campaign_to(store, others, now).await;
        while task.step().await.unwrap() {}
        for id in [&first.id, &second.id] {
            let record = store.campaign(id).unwrap().unwrap();
            assert_eq!(record.state, CampaignState::Accepted);
        }
        assert_eq!(task.unpublished.len(), n + 30);
        assert!(fleet.handed().is_empty());

        store.request_campaign_cancel(&second.id).await.unwrap();
        while task.step().await.unwrap() {}
        let cancelled = store.campaign(&second.id).unwrap().unwrap();
        assert_eq!(cancelled.state, CampaignState::Cancelled);
        assert_eq!(cancelled.messages().cancelled, 30);

        // The broker takes publications again: the first campaign's
        // messages, each once, and none of the cancelled ones.
        fleet.failing.store(0, std::sync::atomic::Ordering::SeqCst);
        republished(&task, &fleet, n).await;
        let mut handed = fleet.handed();
        handed.sort();
        let mut expected: Vec<String> = stored(store, &first.id)
            .values()
            .map(|m| m[0].id.clone())
            .collect();
        expected.sort();
        assert_eq!(handed, expected);
        assert!(task.unpublished.is_empty());
    }

    /// A campaign due more than three weeks ahead (here 25 days: within
    /// the fence's 28 days, beyond what the fleet takes) stays with this
    /// gateway's modems, broker or not (a cancel's claim in the fleet's fence could
    /// expire before its time): queued here, nothing published, and its
    /// cancel asks no broker.
    #[tokio::test(start_paused = true)]
    async fn a_campaign_due_beyond_the_fence_stays_local() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let fleet = FakeFleet::connected(true);
        let (task, wakes) = fleet_task(store, &clock, &fleet);
        let numbers: Vec<String> = (0..30).map(|i| format!("+1555080{i:04}")).collect();
        let plan = plan(CampaignSpec {
            send_at: Some(now + chrono::Duration::days(25)),
            ..spec()
        })
        .unwrap();
        let record = plan.record(store.new_campaign_id(now), 30, 30, now);
        store
            .create_campaign(&record, &numbers, &[], None)
            .await
            .unwrap();
        while task.step().await.unwrap() {}
        let by_recipient = stored(store, &record.id);
        assert_eq!(by_recipient.len(), 30);
        assert!(by_recipient
            .values()
            .all(|m| m[0].fleet.is_none()
                && m[0].not_before == Some(now + chrono::Duration::days(25))));
        assert_eq!(store.outbox_len(), 30);
        assert_eq!(wakes.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(fleet.tries.lock().unwrap().is_empty());

        store.request_campaign_cancel(&record.id).await.unwrap();
        while task.step().await.unwrap() {}
        let done = store.campaign(&record.id).unwrap().unwrap();
        assert_eq!(done.state, CampaignState::Cancelled);
        assert_eq!(done.messages().cancelled, 30);
        assert!(fleet.claims.lock().unwrap().is_empty());
    }

    /// With the fleet's broker away, a campaign's messages stay with this
    /// gateway's modems (as an API send does): queued here, the dispatcher
    /// woken, nothing published; and their cancel asks no broker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_the_broker_a_campaign_stays_local() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let fleet = FakeFleet::connected(false);
        let (task, wakes) = fleet_task(store, &clock, &fleet);
        let n = BATCH + 20;
        let (record, _) = campaign(store, n, now).await;
        while task.step().await.unwrap() {}
        let by_recipient = stored(store, &record.id);
        assert_eq!(by_recipient.len(), n);
        assert!(by_recipient.values().all(|m| m[0].fleet.is_none()));
        assert_eq!(store.outbox_len(), n);
        assert_eq!(wakes.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(fleet.tries.lock().unwrap().is_empty());

        store.request_campaign_cancel(&record.id).await.unwrap();
        while task.step().await.unwrap() {}
        let done = store.campaign(&record.id).unwrap().unwrap();
        assert_eq!(done.state, CampaignState::Cancelled);
        assert_eq!(done.messages().cancelled, n as u64);
        assert!(fleet.claims.lock().unwrap().is_empty());
    }

    /// This gateway's own modem claimed a message to send and a failed
    /// attempt put it back (nothing sent): a cancel cancels it; once a part
    /// is on the air, or when another site holds it, it does not.
    #[tokio::test]
    async fn a_cancel_takes_back_this_gateways_own_unsent_claim() {
        let temp = crate::store::test_support::TempStore::new();
        let fleet = FakeFleet::connected(true);
        let mut m = temp
            .store
            .new_outbound("", "+15550000077", "hi", 1, "gsm7", false, None, t0());
        m.fleet = Some(FleetLeg::Taken);
        fleet
            .answers
            .lock()
            .unwrap()
            .insert(m.id.clone(), Some(Claim::Theirs("here".into())));
        assert_eq!(
            claim_for_cancel(fleet.as_ref(), &m).await,
            Ok(CancelClaim::Cancel)
        );
        let mut part_sent = m.clone();
        part_sent.part_status[0].mr = Some(3);
        assert_eq!(
            claim_for_cancel(fleet.as_ref(), &part_sent).await,
            Ok(CancelClaim::Theirs("here".into()))
        );
        fleet
            .answers
            .lock()
            .unwrap()
            .insert(m.id.clone(), Some(Claim::Theirs("north".into())));
        assert_eq!(
            claim_for_cancel(fleet.as_ref(), &m).await,
            Ok(CancelClaim::Theirs("north".into()))
        );
    }

    /// A campaign's cancel in a fleet claims each waiting message in the
    /// fence first, as the API's cancel does: claimed here or cancelled
    /// elsewhere already -> cancelled here; claimed by another gateway to
    /// send -> left to it, and counted when its record comes; the broker
    /// away -> what could be claimed is cancelled and the cancel is tried
    /// again, the campaign still cancelling.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_in_a_fleet_claims_first_and_leaves_what_another_gateway_sends() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let fleet = FakeFleet::connected(true);
        let (task, _) = fleet_task(store, &clock, &fleet);
        let (record, numbers) = campaign(store, 4, now).await;
        let id = record.id.clone();
        while task.step().await.unwrap() {}
        let by_recipient = stored(store, &id);
        let m: Vec<Message> = numbers.iter().map(|n| by_recipient[n][0].clone()).collect();
        {
            let mut answers = fleet.answers.lock().unwrap();
            answers.insert(m[1].id.clone(), Some(Claim::Theirs("north".into())));
            answers.insert(m[2].id.clone(), Some(Claim::Cancelled("south".into())));
            answers.insert(m[3].id.clone(), None);
        }
        store.request_campaign_cancel(&id).await.unwrap();
        let e = task.step().await.unwrap_err();
        assert!(matches!(e, TaskError::Fleet(_)), "{e}");
        let status = |m: &Message| store.get(&m.id).unwrap().unwrap().status;
        assert_eq!(
            [&m[0], &m[1], &m[2], &m[3]].map(status),
            [
                MessageStatus::Cancelled,
                MessageStatus::Queued,
                MessageStatus::Cancelled,
                MessageStatus::Queued
            ]
        );
        let cancelling = store.campaign(&id).unwrap().unwrap();
        assert_eq!(cancelling.state, CampaignState::Cancelling);
        let counted = cancelling.messages();
        assert_eq!((counted.cancelled, counted.queued), (2, 2));
        // The broker back: the rest is claimed and cancelled; the one
        // another gateway sends is left to it.
        fleet.answers.lock().unwrap().remove(&m[3].id);
        while task.step().await.unwrap() {}
        let done = store.campaign(&id).unwrap().unwrap();
        assert_eq!(done.state, CampaignState::Cancelled);
        assert_eq!((done.messages().cancelled, done.messages().queued), (3, 1));
        assert_eq!(status(&m[1]), MessageStatus::Queued);
        let claims = fleet.claims.lock().unwrap().clone();
        assert!(claims.iter().all(|(_, why)| *why == ClaimFor::Cancel));
        for message in &m {
            assert!(claims.iter().any(|(id, _)| *id == message.id));
        }
        // Its record from the gateway that sent it counts it here.
        let mut sent = m[1].clone();
        sent.transition(now, MessageStatus::Sending);
        sent.transition(now, MessageStatus::Sent);
        assert!(store.apply_remote_message(sent).unwrap());
        let counted = store.campaign(&id).unwrap().unwrap().messages();
        assert_eq!((counted.queued, counted.sent, counted.cancelled), (0, 1, 3));
    }

    /// A recipient erased after the campaign was made and before the
    /// task reached them: their place in the list holds the number's hash,
    /// they are skipped as `erased`, and nobody else is.
    #[tokio::test]
    async fn a_recipient_erased_before_the_task_reaches_them_is_skipped() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        let now = t0();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let (record, numbers) = campaign(store, 3, now).await;
        store.erase_contact(&numbers[1]).await.unwrap();
        let listed = store.campaign_recipients(&record.id, 0).unwrap();
        assert_eq!(listed[0], numbers[0]);
        assert!(
            listed[1].starts_with(crate::store::ERASED_PREFIX),
            "{listed:?}"
        );
        assert!(!listed[1].contains(numbers[1].trim_start_matches('+')));
        assert_eq!(listed[2], numbers[2]);
        let task = task(store, &clock);
        while task.step().await.unwrap() {}
        let done = store.campaign(&record.id).unwrap().unwrap();
        assert_eq!(done.progress.processed, 3);
        assert_eq!(done.progress.accepted, 2);
        assert_eq!(done.progress.skipped.get("erased"), Some(&1));
        let by_recipient = stored(store, &record.id);
        assert_eq!(by_recipient.len(), 2);
        assert!(!by_recipient.contains_key(&numbers[1]));
    }

    /// A batch composed before one of its recipients was erased and
    /// stored after: that recipient's message is not stored (skipped as
    /// `erased`), the others' are.
    #[tokio::test]
    async fn a_batch_composed_before_an_erasure_skips_the_erased() {
        let temp = crate::store::test_support::TempStore::new();
        let store = &temp.store;
        // The erasure is marked by the store's clock: the batch is composed
        // by the same one, before it.
        let now = Utc::now();
        let clock = Arc::new(ManualClock(std::sync::Mutex::new(now)));
        let (record, numbers) = campaign(store, 3, now).await;
        let batch = task(store, &clock).prepare_batch(&record, 0, now).unwrap();
        assert_eq!(batch.messages.len(), 3);
        store.erase_contact(&numbers[2]).await.unwrap();
        let (after, n, durability) = store
            .accept_campaign_batch(&record.id, 0, &batch, now)
            .unwrap();
        durability.wait().await.unwrap();
        assert_eq!(n, 2);
        let after = after.unwrap();
        assert_eq!(after.progress.accepted, 2);
        assert_eq!(after.progress.skipped.get("erased"), Some(&1));
        assert_eq!(after.progress.processed, 3);
        let by_recipient = stored(store, &record.id);
        assert_eq!(by_recipient.len(), 2);
        assert!(!by_recipient.contains_key(&numbers[2]));
    }

    #[test]
    fn context_values_fill_templates() {
        let context =
            json!({"time": "Tue", "n": 3, "ok": true, "a": {"b": "deep"}, "slots": ["1"]});
        let c = Some(&context);
        assert_eq!(context_value(c, "time").as_deref(), Some("Tue"));
        assert_eq!(context_value(c, "n").as_deref(), Some("3"));
        assert_eq!(context_value(c, "ok").as_deref(), Some("true"));
        assert_eq!(context_value(c, "a.b").as_deref(), Some("deep"));
        assert_eq!(context_value(c, "slots"), None);
        assert_eq!(context_value(c, "missing"), None);
        assert_eq!(context_value(None, "time"), None);
    }
}
