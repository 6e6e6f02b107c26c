//! Campaigns: the campaign records, their recipient lists, per-recipient
//! errors, and which message each accepted recipient became (with the status
//! it was last counted under), so progress is read from small counters, not by
//! scanning 100,000 messages.
//!
//! What writes here, and why it survives a crash:
//! - the API stores a campaign and its whole recipient list in one durable
//!   transaction before answering 202 ([`Store::create_campaign`]);
//! - the campaign task composes and admits a batch of recipients, then
//!   stores the batch's messages (as `Store::accept` stores one: message,
//!   thread entry, outbox entry, contact summary), their counts and the
//!   resume cursor moved past them in ONE transaction made durable by one
//!   flush ([`Store::accept_campaign_batch`]). A crash leaves the batch
//!   either wholly stored and recorded or not at all, so a resume starts at
//!   the first recipient without a message, at any time later: it depends on
//!   no idempotency key (those expire after 7 days). One transaction per
//!   batch, not per recipient, is also what makes a 100,000-recipient
//!   campaign fast: every sled transaction writes the log out twice
//!   (`pin_log` rolls the I/O buffer), each write a `pwrite` and a
//!   `sync_file_range` that waits for the disk;
//! - the same task follows the event log (`message.sent`, `.delivered`, ...)
//!   and moves each campaign message between status counters
//!   ([`Store::apply_campaign_events`]), the event cursor in the same
//!   transaction, so a crash replays exactly the events not yet counted;
//! - in a fleet, another gateway's record of a campaign message (it sent
//!   it: no event here) moves the counter in the transaction that applies
//!   it (`Store::apply_remote_message`, [`count_message_tx`]). Both ways
//!   put the message in the counter of its status as the record here says
//!   now, so a late event never moves a count back behind a newer record;
//! - a cancel changes a page of waiting messages in one transaction
//!   ([`Store::cancel_waiting_many`]) and then moves their counters.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;
use sled::{Transactional, Tree};
use tokio::sync::watch;

use super::outbound::{queue_encoded, IdempotencyKey};
use super::query::touch_contact;
use super::records::{Category, Event, Message, MessageStatus};
use super::{
    from_json, from_json_tx, to_json, unwrap_tx, Durability, Page, Result, Store, StoreError,
    TxError,
};

/// Recipients per stored chunk of the list; the campaign task takes one chunk
/// per batch, so memory stays bounded whatever the campaign's size.
pub const RECIPIENT_CHUNK: usize = 500;

/// The trees of this file, opened with the store.
pub(crate) struct Trees {
    /// campaign id -> CampaignRecord.
    records: Tree,
    /// campaign id, 0x00, chunk number (u32 BE) -> JSON array of E.164 numbers.
    recipients: Tree,
    /// campaign id, 0x00, sequence (u64 BE) -> RecipientError.
    errors: Tree,
    /// campaign id, 0x00, message id -> Member (4 octets).
    members: Tree,
    /// campaign id -> (): campaigns with work left (accepting, cancelling).
    active: Tree,
    /// `events_cursor` -> the sequence of the last event counted (u64 BE).
    meta: Tree,
    /// In a fleet, the other gateways' campaigns as they announce them:
    /// campaign id -> CampaignRecord (with its `site`); written only by
    /// their announcements.
    replicas: Tree,
    /// Bumped after a campaign is created or asked to cancel: the campaign
    /// task waits on it.
    changes: watch::Sender<()>,
}

impl Trees {
    /// The campaign records and the member counters, for a transaction of
    /// another file of the store that changes a campaign message
    /// ([`count_message_tx`]).
    pub(super) fn counters(&self) -> (&Tree, &Tree) {
        (&self.records, &self.members)
    }

    pub(crate) fn open(db: &sled::Db) -> Result<Trees> {
        Ok(Trees {
            records: db.open_tree("campaigns")?,
            recipients: db.open_tree("campaign_recipients")?,
            errors: db.open_tree("campaign_errors")?,
            members: db.open_tree("campaign_members")?,
            active: db.open_tree("campaigns_active")?,
            meta: db.open_tree("campaigns_meta")?,
            replicas: db.open_tree("campaign_replicas")?,
            changes: watch::channel(()).0,
        })
    }
}

const EVENTS_CURSOR: &[u8] = b"events_cursor";

/// The event a gateway of a fleet writes when asked to cancel another
/// gateway's campaign (data: `id`, `site`): for the fleet's events stream
/// only (webhooks leave it out); the gateway that has the campaign cancels
/// it.
pub const FLEET_CAMPAIGN_CANCEL: &str = "campaign.cancel_requested";

/// `key:` and an `Idempotency-Key` of `POST /v1/campaigns` (in `meta`).
fn idempotency_meta_key(key: &str) -> Vec<u8> {
    [b"key:".as_slice(), key.as_bytes()].concat()
}

/// What an `Idempotency-Key` of `POST /v1/campaigns` made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    fingerprint: String,
    id: String,
}

/// What [`Store::create_campaign`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignCreated {
    /// Stored (and durable).
    New,
    /// The key was seen with the same request: the campaign it made.
    Replay(Box<CampaignRecord>),
    /// The key was seen with another request.
    KeyReused,
}

/// Where a campaign is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Recipients are being accepted, a batch at a time.
    Accepting,
    /// Every recipient was accepted, skipped or refused with an error.
    Accepted,
    /// Cancel asked: no more recipients; waiting messages are being cancelled.
    Cancelling,
    /// Cancelled: what had not reached a modem was cancelled.
    Cancelled,
}

impl CampaignState {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Accepting => "accepting",
            CampaignState::Accepted => "accepted",
            CampaignState::Cancelling => "cancelling",
            CampaignState::Cancelled => "cancelled",
        }
    }
}

/// One variant of a campaign's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantRecord {
    pub id: String,
    /// A checked template (`conversation::template`).
    pub template: String,
    /// Relative weight of the random choice (at least 1).
    pub weight: u32,
}

/// Where a campaign's messages are now, by status. `queued` is every message
/// still waiting for a modem or its time (queued, scheduled, deferred, and
/// sending: a message leaves it with its `message.sent` event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub queued: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub expired: u64,
    pub unknown: u64,
    pub cancelled: u64,
}

/// The counter a message status belongs to (None: not an outbound status).
fn bucket(status: MessageStatus) -> Option<u8> {
    use MessageStatus as S;
    Some(match status {
        S::Scheduled | S::Queued | S::Deferred | S::Sending => 0,
        S::Sent => 1,
        S::Delivered => 2,
        S::Failed => 3,
        S::Expired => 4,
        S::Unknown => 5,
        S::Cancelled => 6,
        S::Received => return None,
    })
}

impl StatusCounts {
    fn slot(&mut self, bucket: u8) -> Option<&mut u64> {
        Some(match bucket {
            0 => &mut self.queued,
            1 => &mut self.sent,
            2 => &mut self.delivered,
            3 => &mut self.failed,
            4 => &mut self.expired,
            5 => &mut self.unknown,
            6 => &mut self.cancelled,
            _ => return None,
        })
    }

    fn add(&mut self, bucket: u8) {
        if let Some(n) = self.slot(bucket) {
            *n += 1;
        }
    }

    fn remove(&mut self, bucket: u8) {
        if let Some(n) = self.slot(bucket) {
            *n = n.saturating_sub(1);
        }
    }

    /// Every counter of `other` added to these.
    pub fn merge(&mut self, other: &StatusCounts) {
        self.queued += other.queued;
        self.sent += other.sent;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.expired += other.expired;
        self.unknown += other.unknown;
        self.cancelled += other.cancelled;
    }
}

/// One variant's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantCounts {
    /// Recipients accepted with this variant.
    pub accepted: u64,
    pub messages: StatusCounts,
}

/// What became of the recipients so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Recipients in the request (every entry, duplicates and bad numbers too).
    pub total: u64,
    /// Distinct valid numbers, in the stored list the task works through.
    pub listed: u64,
    /// How many of the listed the task has finished with (its resume cursor).
    pub processed: u64,
    /// Messages accepted (queued, scheduled or deferred).
    pub accepted: u64,
    /// Of the accepted, how many were deferred at once (quiet hours, rate limits).
    pub deferred: u64,
    /// Recipients skipped, by reason: `opted_out`, `consent_required`,
    /// `not_conversational`, `duplicate`, `erased`.
    pub skipped: BTreeMap<String, u64>,
    /// Recipients refused with an error (listed one by one).
    pub errors: u64,
}

/// A campaign as stored: what was asked, where it is, and its counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignRecord {
    /// `cmp_` and hex digits that sort by creation time.
    pub id: String,
    pub name: String,
    pub category: Category,
    pub variants: Vec<VariantRecord>,
    /// The flow each message puts its thread in, with `context`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flow: Option<String>,
    /// Values for the templates and the flow (a JSON object).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<serde_json::Value>,
    /// Messages are scheduled for this time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state: CampaignState,
    pub progress: Progress,
    /// One per variant, in the order of `variants`.
    pub counts: Vec<VariantCounts>,
    /// In a fleet, the site of the gateway where it was created, for a
    /// campaign of another gateway (absent: this gateway's own).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub site: Option<String>,
}

impl CampaignRecord {
    /// The counts of every variant together.
    pub fn messages(&self) -> StatusCounts {
        let mut all = StatusCounts::default();
        for c in &self.counts {
            all.merge(&c.messages);
        }
        all
    }
}

/// A recipient that could not be sent to: which, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientError {
    /// The number as normalised, or as given when it is not a number.
    pub number: String,
    /// `missing_field`, `invalid_number`, `body_too_long`, ...
    pub code: String,
    pub detail: String,
}

/// A campaign message as counted: its variant and the status counter it is
/// in. `counted` is false while only an event has seen it (the event can
/// overtake the batch that records the message); the batch then counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Member {
    variant: u16,
    bucket: u8,
    counted: bool,
}

impl Member {
    fn encode(self) -> [u8; 4] {
        let [hi, lo] = self.variant.to_be_bytes();
        [hi, lo, self.bucket, u8::from(self.counted)]
    }

    fn decode(raw: &[u8]) -> Option<Member> {
        match raw {
            [hi, lo, bucket, counted] => Some(Member {
                variant: u16::from_be_bytes([*hi, *lo]),
                bucket: *bucket,
                counted: *counted != 0,
            }),
            _ => None,
        }
    }
}

/// One batch of the campaign task, composed and admitted, for
/// [`Store::accept_campaign_batch`] to store in one transaction.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Recipients of the list this batch finishes with.
    pub processed: u64,
    /// Each admitted recipient's message (queued, scheduled or deferred),
    /// with its variant (an index into the campaign's variants).
    pub messages: Vec<(Message, usize)>,
    /// The reason of each skipped recipient.
    pub skipped: Vec<&'static str>,
    pub errors: Vec<RecipientError>,
}

fn prefixed(campaign: &str, tail: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(campaign.len() + 1 + tail.len());
    key.extend_from_slice(campaign.as_bytes());
    key.push(0);
    key.extend_from_slice(tail);
    key
}

fn prefix(campaign: &str) -> Vec<u8> {
    prefixed(campaign, &[])
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}

fn abort(e: StoreError) -> TxError {
    sled::transaction::ConflictableTransactionError::Abort(e)
}

fn read_record_tx(
    records: &TransactionalTree,
    id: &str,
) -> std::result::Result<Option<CampaignRecord>, TxError> {
    match records.get(id.as_bytes())? {
        Some(raw) => Ok(Some(from_json_tx(id.as_bytes(), &raw)?)),
        None => Ok(None),
    }
}

/// Errors are keyed by a sequence per campaign: the count of errors so far.
fn error_key(campaign: &str, seq: u64) -> Vec<u8> {
    prefixed(campaign, &seq.to_be_bytes())
}

impl Store {
    fn campaign_trees(&self) -> &Trees {
        &self.inner.campaigns
    }

    /// Changes when a campaign is created or asked to cancel.
    pub fn campaign_changes(&self) -> watch::Receiver<()> {
        self.campaign_trees().changes.subscribe()
    }

    /// A new campaign id: `cmp_` then the same time-ordered, process-unique
    /// digits as a message id, so campaigns list newest first by id.
    pub fn new_campaign_id(&self, at: DateTime<Utc>) -> String {
        let id = self.new_id("campaign", at);
        format!("cmp_{}", id.trim_start_matches("msg_"))
    }

    /// Store a new campaign, its recipient list (already normalised and
    /// deduplicated) and the errors found in the request, in one transaction,
    /// and wait until it is durable. The campaign task takes it from there.
    ///
    /// With an `Idempotency-Key`: a key seen before with the same request
    /// answers the campaign it made (nothing new is stored); with another
    /// request, [`CampaignCreated::KeyReused`].
    pub async fn create_campaign(
        &self,
        record: &CampaignRecord,
        recipients: &[String],
        errors: &[RecipientError],
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<CampaignCreated> {
        let t = self.campaign_trees();
        let encoded = serde_json::to_vec(record)
            .map_err(|e| corrupt(record.id.as_bytes(), &e.to_string()))?;
        let mut chunks = Vec::with_capacity(recipients.len() / RECIPIENT_CHUNK + 1);
        for (n, chunk) in recipients.chunks(RECIPIENT_CHUNK).enumerate() {
            let n = u32::try_from(n)
                .map_err(|_| corrupt(record.id.as_bytes(), "too many recipients"))?;
            let value = serde_json::to_vec(chunk)
                .map_err(|e| corrupt(record.id.as_bytes(), &e.to_string()))?;
            chunks.push((prefixed(&record.id, &n.to_be_bytes()), value));
        }
        // The counters start with the events after the first campaign is
        // made (none of its messages' events can come before it), not with
        // the whole log.
        let last_event = self.inner.events.last()?.map(|(k, _)| k);
        let outcome = (&t.records, &t.recipients, &t.errors, &t.active, &t.meta)
            .transaction(|(records, lists, errs, active, meta)| {
                if let Some(k) = idempotency {
                    let key = idempotency_meta_key(&k.key);
                    if let Some(raw) = meta.get(&key)? {
                        let seen: KeyRecord = from_json_tx(&key, &raw)?;
                        if seen.fingerprint != k.fingerprint {
                            return Ok(CampaignCreated::KeyReused);
                        }
                        return match read_record_tx(records, &seen.id)? {
                            Some(original) => Ok(CampaignCreated::Replay(Box::new(original))),
                            None => Ok(CampaignCreated::KeyReused),
                        };
                    }
                    let seen = KeyRecord {
                        fingerprint: k.fingerprint.clone(),
                        id: record.id.clone(),
                    };
                    meta.insert(key, to_json(&seen)?)?;
                }
                if let (None, Some(seq)) = (meta.get(EVENTS_CURSOR)?, &last_event) {
                    meta.insert(EVENTS_CURSOR, seq)?;
                }
                records.insert(record.id.as_bytes(), encoded.as_slice())?;
                for (key, value) in &chunks {
                    lists.insert(key.as_slice(), value.as_slice())?;
                }
                for (seq, error) in errors.iter().enumerate() {
                    errs.insert(error_key(&record.id, seq as u64), to_json(error)?)?;
                }
                if matches!(
                    record.state,
                    CampaignState::Accepting | CampaignState::Cancelling
                ) {
                    active.insert(record.id.as_bytes(), &[])?;
                }
                Ok(CampaignCreated::New)
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        t.changes.send_replace(());
        Ok(outcome)
    }

    /// A campaign of this gateway's, or in a fleet another gateway's as it
    /// last announced it.
    pub fn campaign(&self, id: &str) -> Result<Option<CampaignRecord>> {
        let t = self.campaign_trees();
        for tree in [&t.records, &t.replicas] {
            if let Some(raw) = tree.get(id.as_bytes())? {
                return Ok(Some(from_json(id.as_bytes(), &raw)?));
            }
        }
        Ok(None)
    }

    /// Campaigns newest first (this gateway's and, in a fleet, the other
    /// gateways'), after the cursor (the last id of the previous page).
    pub fn campaigns(&self, before: Option<&str>, limit: usize) -> Result<Page<CampaignRecord>> {
        let t = self.campaign_trees();
        let newest_first = |tree: &Tree| {
            match before {
                Some(id) => tree.range(..id.as_bytes()),
                None => tree.range::<&[u8], _>(..),
            }
            .rev()
            .peekable()
        };
        let (mut own, mut others) = (newest_first(&t.records), newest_first(&t.replicas));
        let mut items = Vec::new();
        loop {
            // The newer (greater id) of the two heads.
            let take_own = match (own.peek(), others.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Ok((a, _))), Some(Ok((b, _)))) => a > b,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
            };
            let next = if take_own { own.next() } else { others.next() };
            let Some(entry) = next else { break };
            let (key, raw) = entry?;
            items.push(from_json::<CampaignRecord>(&key, &raw)?);
            if items.len() > limit {
                break;
            }
        }
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|c| c.id.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Campaigns with work left (accepting, or cancelling), oldest first.
    pub fn active_campaigns(&self) -> Result<Vec<String>> {
        self.campaign_trees()
            .active
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Put `erased` (the hash of an erased contact's number) in place of
    /// `contact` in every campaign's recipient list and refused recipients
    /// (part of an erasure): the lists keep their length, so the
    /// campaigns' cursors still point where they did, and a recipient not
    /// yet reached is skipped as `erased`. A scan of every list (an
    /// erasure is rare).
    /// Each number in this gateway's campaigns' recipient lists and
    /// refusals (a full scan; for an erasure known only by its hash).
    pub(crate) fn campaign_numbers(&self, look: &mut dyn FnMut(&str)) -> Result<()> {
        let t = self.campaign_trees();
        for entry in t.recipients.iter() {
            let (key, raw) = entry?;
            for number in from_json::<Vec<String>>(&key, &raw)? {
                look(&number);
            }
        }
        for entry in t.errors.iter() {
            let (key, raw) = entry?;
            look(&from_json::<RecipientError>(&key, &raw)?.number);
        }
        Ok(())
    }

    pub(crate) fn erase_campaign_recipient(&self, contact: &str, erased: &str) -> Result<usize> {
        let t = self.campaign_trees();
        let mut replaced = 0;
        for entry in t.recipients.iter() {
            let (key, raw) = entry?;
            if contact.is_empty() || !raw.windows(contact.len()).any(|w| w == contact.as_bytes()) {
                continue;
            }
            let mut numbers: Vec<String> = from_json(&key, &raw)?;
            let mut here = 0;
            for n in numbers.iter_mut().filter(|n| n.as_str() == contact) {
                *n = erased.to_string();
                here += 1;
            }
            if here > 0 {
                let value =
                    serde_json::to_vec(&numbers).map_err(|e| corrupt(&key, &e.to_string()))?;
                t.recipients.insert(key, value)?;
                replaced += here;
            }
        }
        for entry in t.errors.iter() {
            let (key, raw) = entry?;
            if !raw.windows(contact.len()).any(|w| w == contact.as_bytes()) {
                continue;
            }
            let mut refused: RecipientError = from_json(&key, &raw)?;
            if refused.number == contact {
                refused.number = erased.to_string();
                let value =
                    serde_json::to_vec(&refused).map_err(|e| corrupt(&key, &e.to_string()))?;
                t.errors.insert(key, value)?;
                replaced += 1;
            }
        }
        Ok(replaced)
    }

    /// Up to the rest of the chunk of the recipient list that holds
    /// recipient `from` (0-based), in list order.
    pub fn campaign_recipients(&self, id: &str, from: u64) -> Result<Vec<String>> {
        let chunk = u32::try_from(from / RECIPIENT_CHUNK as u64)
            .map_err(|_| corrupt(id.as_bytes(), "recipient cursor"))?;
        let key = prefixed(id, &chunk.to_be_bytes());
        let Some(raw) = self.campaign_trees().recipients.get(&key)? else {
            return Ok(Vec::new());
        };
        let numbers: Vec<String> = from_json(&key, &raw)?;
        let skip = (from % RECIPIENT_CHUNK as u64) as usize;
        Ok(numbers.into_iter().skip(skip).collect())
    }

    /// The recipients refused with an error, in the order found; the cursor
    /// is the number of errors already read.
    pub fn campaign_errors(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Page<RecipientError>> {
        let start = error_key(id, after);
        let end = prefixed(id, &[0xFF; 9]);
        let mut items = Vec::new();
        let mut next = None;
        for entry in self.campaign_trees().errors.range(start..end) {
            let (key, raw) = entry?;
            if items.len() == limit {
                next = Some((after + limit as u64).to_string());
                break;
            }
            items.push(from_json::<RecipientError>(&key, &raw)?);
        }
        Ok(Page {
            items,
            next_cursor: next,
        })
    }

    /// Store a batch of the campaign task that started at recipient `from`:
    /// each message as `Store::accept` stores one (the message, its thread
    /// and outbox entries, the contact's summary), counted under its
    /// variant, the skipped and refused recipients, and the cursor moved past
    /// them, all in one transaction; the campaign becomes `accepted` after
    /// its last recipient. Nothing is written when the stored cursor is not
    /// `from` (another run recorded this batch) or the campaign is no longer
    /// accepting (a cancel came while the batch was composed).
    ///
    /// Returns the campaign as it is now, how many messages were stored,
    /// and the [`Durability`] to wait for before anyone is told (the messages
    /// are visible at once; a later durable write anywhere flushes them too).
    pub fn accept_campaign_batch(
        &self,
        id: &str,
        from: u64,
        batch: &BatchOutcome,
        now: DateTime<Utc>,
    ) -> Result<(Option<CampaignRecord>, usize, Durability)> {
        let i = &self.inner;
        let t = self.campaign_trees();
        // Composed before its recipient was erased: skipped as `erased`.
        let mut erased = Vec::with_capacity(batch.messages.len());
        for (message, _) in &batch.messages {
            erased.push(self.erased_since(&message.contact, message.created_at)?);
        }
        // Encoded before the transaction, which holds sled's global lock.
        let mut encoded = Vec::with_capacity(batch.messages.len());
        for (message, variant) in &batch.messages {
            let raw = serde_json::to_vec(message)
                .map_err(|e| corrupt(message.id.as_bytes(), &e.to_string()))?;
            let member = Member {
                variant: u16::try_from(*variant)
                    .map_err(|_| corrupt(id.as_bytes(), "variant out of range"))?,
                bucket: bucket(message.status).unwrap_or(0),
                counted: true,
            };
            encoded.push((
                sled::IVec::from(raw),
                prefixed(id, message.id.as_bytes()),
                member,
            ));
        }
        let (record, applied) = (
            &i.messages,
            &i.threads,
            &i.outbox,
            &i.contacts,
            &i.recent,
            &t.records,
            &t.members,
            &t.errors,
            &t.active,
        )
            .transaction(
                |(messages, threads, outbox, contacts, recent, records, members, errs, active)| {
                    let Some(mut record) = read_record_tx(records, id)? else {
                        return Ok((None, None));
                    };
                    if record.state != CampaignState::Accepting || record.progress.processed != from
                    {
                        return Ok((Some(record), None));
                    }
                    let p = &mut record.progress;
                    let mut queued = 0;
                    for (((message, _), (raw, key, member)), erased) in
                        batch.messages.iter().zip(&encoded).zip(&erased)
                    {
                        if *erased {
                            *p.skipped.entry("erased".to_string()).or_insert(0) += 1;
                            continue;
                        }
                        queued += 1;
                        let Some(counts) = record.counts.get_mut(usize::from(member.variant))
                        else {
                            return Err(abort(corrupt(id.as_bytes(), "variant out of range")));
                        };
                        queue_encoded(messages, threads, outbox, message, raw.clone())?;
                        touch_contact(contacts, recent, message)?;
                        counts.accepted += 1;
                        counts.messages.add(member.bucket);
                        members.insert(key.as_slice(), &member.encode())?;
                        p.accepted += 1;
                        if message.status == MessageStatus::Deferred {
                            p.deferred += 1;
                        }
                    }
                    for reason in &batch.skipped {
                        *p.skipped.entry(reason.to_string()).or_insert(0) += 1;
                    }
                    for error in &batch.errors {
                        errs.insert(error_key(id, p.errors), to_json(error)?)?;
                        p.errors += 1;
                    }
                    p.processed += batch.processed;
                    if p.processed >= p.listed {
                        record.state = CampaignState::Accepted;
                        active.remove(id.as_bytes())?;
                    }
                    record.updated_at = now;
                    records.insert(id.as_bytes(), to_json(&record)?)?;
                    Ok((Some(record), Some(queued)))
                },
            )
            .map_err(unwrap_tx)?;
        let durability = Durability {
            store: self.clone(),
            ticket: applied.map(|_| i.commit.ticket()),
            events: Vec::new(),
        };
        Ok((record, applied.unwrap_or(0), durability))
    }

    /// Another gateway's campaign as it announced it (in a fleet): kept
    /// read only, with its `site`; one of this gateway's own is never
    /// replaced. Whether it changed.
    pub fn apply_remote_campaign(&self, mut record: CampaignRecord, site: &str) -> Result<bool> {
        let t = self.campaign_trees();
        if t.records.contains_key(record.id.as_bytes())? {
            return Ok(false);
        }
        record.site = Some(site.to_string());
        let raw = serde_json::to_vec(&record)
            .map_err(|e| corrupt(record.id.as_bytes(), &e.to_string()))?;
        let old = t.replicas.insert(record.id.as_bytes(), raw.as_slice())?;
        Ok(old.as_deref() != Some(raw.as_slice()))
    }

    /// This gateway's campaigns as stored, for announcing them to the
    /// fleet: (id, the record's stored bytes).
    pub fn own_campaigns_raw(&self) -> impl Iterator<Item = Result<(String, sled::IVec)>> {
        self.campaign_trees().records.iter().map(|entry| {
            let (key, raw) = entry?;
            Ok((String::from_utf8_lossy(&key).into_owned(), raw))
        })
    }

    /// Ask another gateway's campaign to stop (in a fleet): the request
    /// goes to the events stream ([`FLEET_CAMPAIGN_CANCEL`]) and the
    /// gateway that has the campaign cancels it. The copy is left as that
    /// gateway last announced it (its next announcement says `cancelling`
    /// or `cancelled`); the answer is the copy as the cancel makes it
    /// (None: no such copy). Asked again while the copy still reads
    /// accepting, the request goes again (the creating gateway's cancel
    /// changes nothing the second time).
    pub async fn request_remote_campaign_cancel(&self, id: &str) -> Result<Option<CampaignRecord>> {
        let t = self.campaign_trees();
        let Some(raw) = t.replicas.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut record: CampaignRecord = from_json(id.as_bytes(), &raw)?;
        if matches!(
            record.state,
            CampaignState::Accepting | CampaignState::Accepted
        ) {
            let data = serde_json::json!({"id": id, "site": record.site});
            self.emit(FLEET_CAMPAIGN_CANCEL, data).await?;
            record.state = CampaignState::Cancelling;
        }
        Ok(Some(record))
    }

    /// Ask a campaign to stop: no more recipients are accepted, and its
    /// waiting messages are cancelled by the campaign task. The campaign as
    /// it is now (None: no such campaign); asking again changes nothing.
    pub async fn request_campaign_cancel(&self, id: &str) -> Result<Option<CampaignRecord>> {
        let t = self.campaign_trees();
        let now = Utc::now();
        let record = (&t.records, &t.active)
            .transaction(|(records, active)| {
                let Some(mut record) = read_record_tx(records, id)? else {
                    return Ok(None);
                };
                if matches!(
                    record.state,
                    CampaignState::Accepting | CampaignState::Accepted
                ) {
                    record.state = CampaignState::Cancelling;
                    record.updated_at = now;
                    records.insert(id.as_bytes(), to_json(&record)?)?;
                    active.insert(id.as_bytes(), &[])?;
                }
                Ok(Some(record))
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        t.changes.send_replace(());
        Ok(record)
    }

    /// A page of the campaign's messages after message id `after` (id
    /// order): those counted as still waiting (`queued`: what a cancel has to
    /// look at), and where the next page starts (None: this was the last).
    pub fn campaign_waiting(
        &self,
        id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        let start = match after {
            Some(m) => {
                let mut k = prefixed(id, m.as_bytes());
                k.push(0);
                k
            }
            None => prefix(id),
        };
        let end = prefixed(id, &[0xFF]);
        let mut waiting = Vec::new();
        let mut last = None;
        for (n, entry) in self.campaign_trees().members.range(start..end).enumerate() {
            if n == limit {
                return Ok((waiting, last));
            }
            let (key, raw) = entry?;
            let member = Member::decode(&raw).ok_or_else(|| corrupt(&key, "member"))?;
            let message =
                String::from_utf8_lossy(key.get(id.len() + 1..).unwrap_or_default()).into_owned();
            if member.bucket == 0 {
                waiting.push(message.clone());
            }
            last = Some(message);
        }
        Ok((waiting, None))
    }

    /// Count campaign messages whose status changed without an event (a
    /// cancel): each (message id, status now) moves to its new counter.
    pub async fn record_campaign_statuses(
        &self,
        id: &str,
        statuses: &[(String, MessageStatus)],
    ) -> Result<()> {
        let t = self.campaign_trees();
        (&t.records, &t.members)
            .transaction(|(records, members)| {
                let Some(mut record) = read_record_tx(records, id)? else {
                    return Ok(());
                };
                let mut changed = false;
                for (message, status) in statuses {
                    let Some(new) = bucket(*status) else { continue };
                    changed |= move_member(&mut record, members, id, message, new)?;
                }
                if changed {
                    records.insert(id.as_bytes(), to_json(&record)?)?;
                }
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.sync().await
    }

    /// The cancel is done: the campaign is `cancelled` and leaves the work list.
    pub async fn finish_campaign_cancel(&self, id: &str) -> Result<Option<CampaignRecord>> {
        let t = self.campaign_trees();
        let now = Utc::now();
        let record = (&t.records, &t.active)
            .transaction(|(records, active)| {
                let Some(mut record) = read_record_tx(records, id)? else {
                    active.remove(id.as_bytes())?;
                    return Ok(None);
                };
                record.state = CampaignState::Cancelled;
                record.updated_at = now;
                records.insert(id.as_bytes(), to_json(&record)?)?;
                active.remove(id.as_bytes())?;
                Ok(Some(record))
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        Ok(record)
    }

    /// Take a finished campaign (accepted, cancelled) off the work list.
    pub fn retire_campaign(&self, id: &str) -> Result<()> {
        self.campaign_trees().active.remove(id.as_bytes())?;
        Ok(())
    }

    /// The last event the campaign counters have seen.
    pub fn campaign_events_cursor(&self) -> Result<Option<String>> {
        Ok(self
            .campaign_trees()
            .meta
            .get(EVENTS_CURSOR)?
            .and_then(|raw| <[u8; 8]>::try_from(raw.as_ref()).ok())
            .map(|seq| format!("evt_{:016x}", u64::from_be_bytes(seq))))
    }

    /// Move the campaign messages among `events` to the counter of their
    /// status, and the cursor past the last event, in one transaction. The
    /// status is the message's record's as it is now (the event's when the
    /// record is gone: archived, erased): in a fleet, another gateway's
    /// newer record may have been applied since the event was written, and
    /// counted then ([`count_message_tx`]); the event must not move it back.
    /// A campaign unknown here (a message of another gateway's campaign
    /// sent by this one's modems) is skipped. Not waited for: lost in a
    /// crash, the cursor is lost with it and the same events are counted
    /// again.
    pub fn apply_campaign_events(&self, events: &[Event]) -> Result<()> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let last_seq = super::deliveries::event_seq(&last.id)
            .ok_or_else(|| corrupt(last.id.as_bytes(), "event id"))?;
        // (campaign, message id, bucket), in event order.
        let moves: Vec<(String, String, u8)> = events
            .iter()
            .filter(|e| e.kind.starts_with("message."))
            .filter_map(|e| {
                let campaign = e.data.get("campaign")?.as_str()?;
                let message = e.data.get("id")?.as_str()?;
                let status = MessageStatus::parse(e.data.get("status")?.as_str()?)?;
                Some((campaign.to_string(), message.to_string(), bucket(status)?))
            })
            .collect();
        let t = self.campaign_trees();
        if moves.is_empty() {
            // No campaign's message among them (most events): the cursor
            // alone, one key, with no transaction (each writes the log out
            // twice, and this ran on every event the modems' sends made).
            t.meta.insert(EVENTS_CURSOR, &last_seq.to_be_bytes())?;
            return Ok(());
        }
        (&t.records, &t.members, &t.meta, &self.inner.messages)
            .transaction(|(records, members, meta, messages)| {
                let mut touched: HashMap<&str, CampaignRecord> = HashMap::new();
                for (campaign, message, said) in &moves {
                    let record = match touched.get_mut(campaign.as_str()) {
                        Some(r) => r,
                        None => {
                            let Some(r) = read_record_tx(records, campaign)? else {
                                continue;
                            };
                            touched.entry(campaign.as_str()).or_insert(r)
                        }
                    };
                    let now = match messages.get(message.as_bytes())? {
                        Some(raw) => {
                            let m: Message = from_json_tx(message.as_bytes(), &raw)?;
                            bucket(m.status).unwrap_or(*said)
                        }
                        None => *said,
                    };
                    move_member(record, members, campaign, message, now)?;
                }
                for (id, record) in &touched {
                    records.insert(id.as_bytes(), to_json(record)?)?;
                }
                meta.insert(EVENTS_CURSOR, &last_seq.to_be_bytes())?;
                Ok(())
            })
            .map_err(unwrap_tx)
    }
}

/// In a transaction of another file of the store that has just written
/// `message`'s record (another gateway's record applied here): move the
/// campaign message to the counter of its status, at the gateway that has
/// its campaign (`counters` are [`Trees::counters`]); a message of no
/// campaign, or of one unknown here, moves nothing. Whether a count moved.
pub(super) fn count_message_tx(
    (records, members): (&TransactionalTree, &TransactionalTree),
    message: &Message,
) -> std::result::Result<bool, TxError> {
    let (Some(campaign), Some(new)) = (message.campaign.as_deref(), bucket(message.status)) else {
        return Ok(false);
    };
    let Some(mut record) = read_record_tx(records, campaign)? else {
        return Ok(false);
    };
    let moved = move_member(&mut record, members, campaign, &message.id, new)?;
    if moved {
        records.insert(campaign.as_bytes(), to_json(&record)?)?;
    }
    Ok(moved)
}

/// Move one campaign message to the counter `new`; a message no batch has
/// recorded yet is noted (uncounted) with its status. Whether a count moved.
fn move_member(
    record: &mut CampaignRecord,
    members: &TransactionalTree,
    campaign: &str,
    message: &str,
    new: u8,
) -> std::result::Result<bool, TxError> {
    let key = prefixed(campaign, message.as_bytes());
    let Some(old) = members.get(&key)?.as_deref().and_then(Member::decode) else {
        let note = Member {
            variant: 0,
            bucket: new,
            counted: false,
        };
        members.insert(key, &note.encode())?;
        return Ok(false);
    };
    if old.bucket == new {
        return Ok(false);
    }
    if old.counted {
        if let Some(counts) = record.counts.get_mut(usize::from(old.variant)) {
            counts.messages.remove(old.bucket);
            counts.messages.add(new);
        }
    }
    members.insert(key, &Member { bucket: new, ..old }.encode())?;
    Ok(old.counted)
}
