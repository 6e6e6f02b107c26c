//! Outbound messages: accept (with idempotency keys), state changes with their
//! derived indexes and events, the outbox, restart recovery and expiry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use super::keys;
use super::query::touch_contact;
use super::records::{Category, Direction, Event, FleetLeg, Message, MessageStatus, PartStatus};
use super::{
    from_json, from_json_tx, push_event, to_json, unwrap_tx, Durability, Result, Store, StoreError,
    TxError,
};

/// An `Idempotency-Key` and a fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    /// Same key with another request body is an error, not a replay.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotencyRecord {
    fingerprint: String,
    id: String,
}

/// Inside an accept's transaction: what a key seen before gives (the
/// original message, a reuse with another request, or `Err(id)` for an
/// original no longer in the live tree: looked up after the transaction,
/// as sled reads must not run inside one); None: the key is new, and is now
/// recorded for `id`.
fn claim_key(
    idem: &TransactionalTree,
    messages: &TransactionalTree,
    k: &IdempotencyKey,
    id: &str,
) -> std::result::Result<Option<std::result::Result<Accepted, String>>, TxError> {
    if let Some(raw) = idem.get(k.key.as_bytes())? {
        let record: IdempotencyRecord = from_json_tx(k.key.as_bytes(), &raw)?;
        if record.fingerprint != k.fingerprint {
            return Ok(Some(Ok(Accepted::KeyReused)));
        }
        return Ok(Some(match messages.get(record.id.as_bytes())? {
            Some(raw) => Ok(Accepted::Replay(from_json_tx(record.id.as_bytes(), &raw)?)),
            None => Err(record.id),
        }));
    }
    let record = IdempotencyRecord {
        fingerprint: k.fingerprint.clone(),
        id: id.to_string(),
    };
    idem.insert(k.key.as_bytes(), to_json(&record)?)?;
    Ok(None)
}

/// Whether accepting `message` answers the contact's thread (and is
/// announced as `message.accepted`): an outbound conversational message
/// that is not part of a campaign (a campaign writes to many, answering
/// none of them).
fn answers_a_thread(message: &Message) -> bool {
    message.direction == Direction::Outbound
        && message.category == Category::Conversational
        && message.campaign.is_none()
}

/// What `accept` did.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Stored (and durable).
    New(Message),
    /// The key was seen with the same request: the original message.
    Replay(Message),
    /// The key was seen with a different request.
    KeyReused,
    /// The key was seen with the same request, but its message (this id)
    /// has since been erased (the contact's right to erasure): nothing is
    /// sent again.
    ReplayErased(String),
}

/// A message after an update, and the events the update recorded.
pub type Updated = (Message, Vec<Event>);

/// Write a new outbound message with its thread and outbox entries.
pub(crate) fn queue_message(
    messages: &TransactionalTree,
    threads: &TransactionalTree,
    outbox: &TransactionalTree,
    message: &Message,
) -> std::result::Result<(), TxError> {
    queue_encoded(messages, threads, outbox, message, to_json(message)?)
}

/// [`queue_message`] with the record already encoded: sled runs one
/// transaction at a time (a global lock), so the hot path encodes first.
/// (Also a campaign's batch, many messages in one transaction.)
pub(crate) fn queue_encoded(
    messages: &TransactionalTree,
    threads: &TransactionalTree,
    outbox: &TransactionalTree,
    message: &Message,
    record: impl Into<sled::IVec>,
) -> std::result::Result<(), TxError> {
    messages.insert(message.id.as_bytes(), record)?;
    threads.insert(
        keys::thread(&message.contact, message.created_at, &message.id),
        &[],
    )?;
    if let Some(k) = outbox_key(message) {
        outbox.insert(k, &[])?;
    }
    Ok(())
}

/// Cancel `m` if no part of it has reached a modem: it must still be
/// waiting (queued, scheduled, deferred) with every part pending. Whether it
/// was cancelled.
fn cancel_if_waiting(m: &mut Message, now: DateTime<Utc>, note: &str) -> bool {
    let untouched = m
        .part_status
        .iter()
        .all(|p| p.status == PartStatus::Pending);
    let ok = m.status.is_waiting() && untouched;
    if ok {
        m.transition(now, MessageStatus::Cancelled).note = Some(note.into());
    }
    ok
}

/// The outbox key of a message, when it waits there.
pub(super) fn outbox_key(message: &Message) -> Option<Vec<u8>> {
    // A message handed to the fleet waits in the fleet's work queue, not here.
    let here = message.fleet != Some(FleetLeg::Handed);
    (here && message.status.is_waiting()).then(|| {
        keys::outbox(
            message.not_before.unwrap_or(message.created_at),
            &message.id,
        )
    })
}

fn deadline_key(message: &Message) -> Option<Vec<u8>> {
    match (message.status, message.report_deadline) {
        (MessageStatus::Sent, Some(at)) => Some(keys::outbox(at, &message.id)),
        _ => None,
    }
}

/// The event a status change of `message` announces (issue: webhooks,
/// "Events"); the other steps only for a message whose callback asks for
/// every status ([`super::CALLBACK_EVENTS`]).
fn event_kind(message: &Message) -> Option<&'static str> {
    // A fleet's message: every step, for the other gateways (the fleet's
    // events stream carries them; webhooks leave these kinds out).
    let every =
        message.callback.as_ref().is_some_and(|c| c.every_status) || message.fleet.is_some();
    Some(match message.status {
        MessageStatus::Sent => "message.sent",
        MessageStatus::Delivered => "message.delivered",
        MessageStatus::Failed => "message.failed",
        MessageStatus::Unknown => "message.unknown",
        MessageStatus::Expired => "message.expired",
        MessageStatus::Received => "message.received",
        MessageStatus::Scheduled if every => "message.scheduled",
        MessageStatus::Queued if every => "message.queued",
        MessageStatus::Deferred if every => "message.deferred",
        MessageStatus::Sending if every => "message.sending",
        MessageStatus::Cancelled if every => "message.cancelled",
        _ => return None,
    })
}

/// Whether `new` got an interim status report that `old` did not have (a
/// part's TP-ST of the "still trying" class, 23.040 §9.2.3.15) while its
/// status stayed: `message.buffered`, for a callback that asks for every
/// status.
fn buffered(old: &Message, new: &Message) -> bool {
    use crate::pdu::{Status, StatusClass};
    if old.status != new.status
        || new.status.is_final()
        || !new.callback.as_ref().is_some_and(|c| c.every_status)
    {
        return false;
    }
    new.part_status.iter().any(|p| {
        let before = old.part_status.iter().find(|o| o.seq == p.seq);
        p.report_status
            .is_some_and(|st| Status(st).class() == StatusClass::Pending)
            && before.and_then(|o| o.report_status) != p.report_status
    })
}

fn message_json(message: &Message) -> std::result::Result<serde_json::Value, TxError> {
    serde_json::to_value(message).map_err(|e| {
        ConflictableTransactionError::Abort(StoreError::Corrupt {
            key: message.id.clone(),
            reason: e.to_string(),
        })
    })
}

/// The trees a state change touches.
struct Changed<'a> {
    messages: &'a TransactionalTree,
    sends: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    active: &'a TransactionalTree,
    deadlines: &'a TransactionalTree,
    mrs: &'a TransactionalTree,
    sticky: &'a TransactionalTree,
    events: &'a TransactionalTree,
}

impl Changed<'_> {
    /// Write `new` over `old` and keep every index and event in step with it:
    /// the outbox, the active set, report deadlines, message references, the
    /// sticky sender, and one event per status change.
    fn apply(
        &self,
        old: &Message,
        new: &Message,
        at: DateTime<Utc>,
    ) -> std::result::Result<Vec<Event>, TxError> {
        self.messages.insert(new.id.as_bytes(), to_json(new)?)?;
        if outbox_key(old) != outbox_key(new) {
            if let Some(k) = outbox_key(old) {
                self.outbox.remove(k)?;
            }
            if let Some(k) = outbox_key(new) {
                self.outbox.insert(k, &[])?;
            }
        }
        // The per-contact send log (rate limits): a message's first move to
        // `sending` is one send; retries and later parts are not.
        let started = |m: &Message| {
            m.history
                .iter()
                .find(|t| t.status == MessageStatus::Sending)
                .map(|t| t.at)
        };
        if let (Some(went), None, None) = (started(new), started(old), &new.exempt) {
            self.sends.insert(
                keys::send(&new.contact, went, &new.id),
                &[new.category as u8],
            )?;
        }
        let in_flight = |m: &Message| m.status == MessageStatus::Sending;
        if in_flight(new) && !in_flight(old) {
            self.active.insert(new.id.as_bytes(), &[])?;
        } else if in_flight(old) && !in_flight(new) {
            self.active.remove(new.id.as_bytes())?;
        }
        if deadline_key(old) != deadline_key(new) {
            if let Some(k) = deadline_key(old) {
                self.deadlines.remove(k)?;
            }
            if let Some(k) = deadline_key(new) {
                self.deadlines.insert(k, &[])?;
            }
        }
        if let Some(modem) = &new.modem {
            for part in &new.part_status {
                let before = old
                    .part_status
                    .iter()
                    .find(|p| p.seq == part.seq)
                    .and_then(|p| p.mr);
                if let (Some(mr), true) = (part.mr, part.mr != before) {
                    let key = keys::message_reference(modem, mr);
                    let mut value = new.id.as_bytes().to_vec();
                    value.push(part.seq);
                    self.mrs.insert(key, value)?;
                }
            }
            if new.status == MessageStatus::Sent && old.status != MessageStatus::Sent {
                self.sticky
                    .insert(new.contact.as_bytes(), modem.as_bytes())?;
            }
        }
        let mut events = Vec::new();
        if old.status != new.status {
            if let Some(kind) = event_kind(new) {
                events.push(push_event(self.events, kind, at, message_json(new)?)?);
            }
        } else if buffered(old, new) {
            events.push(push_event(
                self.events,
                "message.buffered",
                at,
                message_json(new)?,
            )?);
        }
        Ok(events)
    }
}

impl Changed<'_> {
    /// Change message `id` (see [`Store::update`]) and everything that
    /// follows from it; None: no such message in the live tree.
    fn change(
        &self,
        id: &str,
        change: &dyn Fn(&mut Message) -> bool,
        now: DateTime<Utc>,
    ) -> std::result::Result<Option<Updated>, TxError> {
        let Some(raw) = self.messages.get(id.as_bytes())? else {
            return Ok(None);
        };
        let old: Message = from_json_tx(id.as_bytes(), &raw)?;
        let mut new = old.clone();
        if !change(&mut new) {
            return Ok(Some((old, Vec::new())));
        }
        let events = self.apply(&old, &new, now)?;
        Ok(Some((new, events)))
    }
}

/// The trees a message's state change touches ([`Changed`]), as handles
/// that can leave the store's side: the grouped writer's thread holds a
/// copy (`grouped.rs`).
#[derive(Clone)]
pub(super) struct UpdateTrees {
    pub(super) messages: sled::Tree,
    pub(super) outbox: sled::Tree,
    pub(super) active: sled::Tree,
    pub(super) deadlines: sled::Tree,
    pub(super) mrs: sled::Tree,
    pub(super) sticky: sled::Tree,
    pub(super) events: sled::Tree,
    pub(super) sends: sled::Tree,
}

/// A change to one message, as [`Store::update`] takes it.
pub(super) type Change<'a> = (&'a str, &'a dyn Fn(&mut Message) -> bool);

impl UpdateTrees {
    /// Apply `changes` in order, in one transaction, at `now`: each one's
    /// outcome (None: no such message in the live tree). A later change of
    /// the same message sees the earlier one.
    pub(super) fn apply(
        &self,
        changes: &[Change<'_>],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<Updated>>> {
        (
            &self.messages,
            &self.outbox,
            &self.active,
            &self.deadlines,
            &self.mrs,
            &self.sticky,
            &self.events,
            &self.sends,
        )
            .transaction(
                |(messages, outbox, active, deadlines, mrs, sticky, events, sends)| {
                    let trees = Changed {
                        messages,
                        sends,
                        outbox,
                        active,
                        deadlines,
                        mrs,
                        sticky,
                        events,
                    };
                    changes
                        .iter()
                        .map(|(id, change)| trees.change(id, *change, now))
                        .collect()
                },
            )
            .map_err(unwrap_tx)
    }
}

/// A new outbound message on its way into the store ([`Store::accept`]).
struct NewMessage<'a> {
    message: &'a Message,
    /// The message encoded (before the transaction: sled runs one at a time).
    record: &'a sled::IVec,
    idempotency: Option<&'a IdempotencyKey>,
    /// The events its acceptance writes, and when: `message.accepted` for
    /// an answer in a thread, its first status for a callback that hears
    /// every status.
    announce: Vec<(&'static str, DateTime<Utc>)>,
}

/// What a new message's transaction did.
enum Written {
    /// Stored, with the events it wrote.
    New(Vec<Event>),
    /// Not stored: a replay or a reused key (boxed: rare, and big).
    Known(Box<Accepted>),
    /// Not stored: a replay of a message since moved to the history (or
    /// erased), looked up after the transaction (sled reads must not run
    /// inside one).
    Moved(String),
}

impl NewMessage<'_> {
    /// Inside the transaction over `trees` (messages, threads, outbox,
    /// contacts, recent), the idempotency tree when there is a key and the
    /// events tree when the message announces its first status.
    fn write(
        &self,
        trees: &[&TransactionalTree; 5],
        idem: Option<&TransactionalTree>,
        events: Option<&TransactionalTree>,
    ) -> std::result::Result<Written, TxError> {
        let [messages, threads, outbox, contacts, recent] = *trees;
        let message = self.message;
        if let (Some(idem), Some(k)) = (idem, self.idempotency) {
            match claim_key(idem, messages, k, &message.id)? {
                Some(Ok(seen)) => return Ok(Written::Known(Box::new(seen))),
                Some(Err(id)) => return Ok(Written::Moved(id)),
                None => {}
            }
        }
        queue_encoded(messages, threads, outbox, message, self.record.clone())?;
        touch_contact(contacts, recent, message)?;
        let mut written = Vec::new();
        if let Some(events) = events {
            for &(kind, at) in &self.announce {
                written.push(push_event(events, kind, at, message_json(message)?)?);
            }
        }
        Ok(Written::New(written))
    }
}

impl Store {
    /// Store a new outbound message (status queued, scheduled or deferred) and
    /// wait until it is durable.
    pub async fn accept(
        &self,
        message: Message,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<Accepted> {
        let (outcome, durability) = self.accept_deferred(message, idempotency)?;
        durability.wait().await?;
        Ok(outcome)
    }

    /// [`Store::accept`] without the wait: the message is stored (readers see
    /// it) and becomes durable with the next flush; the returned
    /// [`Durability`] waits for it. For a caller that stores many and makes
    /// them durable together before it answers for any (a campaign's batch:
    /// one flush instead of one wait per recipient).
    pub fn accept_deferred(
        &self,
        message: Message,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<(Accepted, Durability)> {
        let i = &self.inner;
        let record =
            sled::IVec::from(
                serde_json::to_vec(&message).map_err(|e| StoreError::Corrupt {
                    key: message.id.clone(),
                    reason: e.to_string(),
                })?,
            );
        // Its first status is an event only when its callback asks for
        // every status (`message.queued`, ...).
        // An answer in a thread is announced as `message.accepted`, so the
        // conversation engine, reading the event log in order, ends the wait
        // it answers after the inbound that opened it, whoever sent it (the
        // API, a webhook's reply, a person in the inbox).
        let mut announce = Vec::new();
        if answers_a_thread(&message) {
            announce.push(("message.accepted", message.created_at));
        }
        // A message handed to the fleet is announced by the gateway that
        // takes it (each step from there on).
        // (A callback that hears every status still hears "queued" here.)
        let callback_every = message.callback.as_ref().is_some_and(|c| c.every_status);
        if let Some(kind) = event_kind(&message)
            .filter(|_| message.fleet != Some(FleetLeg::Handed) || callback_every)
        {
            announce.push((kind, Utc::now()));
        }
        let new = NewMessage {
            message: &message,
            record: &record,
            idempotency: idempotency.as_ref(),
            announce,
        };
        let announces = !new.announce.is_empty();
        // The idempotency and events trees join the transaction only when
        // needed: each tree in a sled transaction costs (this is the API's
        // hot path).
        let outcome = match (&idempotency, announces) {
            (None, false) => (&i.messages, &i.threads, &i.outbox, &i.contacts, &i.recent)
                .transaction(|(messages, threads, outbox, contacts, recent)| {
                    new.write(&[messages, threads, outbox, contacts, recent], None, None)
                }),
            (Some(_), false) => (
                &i.messages,
                &i.threads,
                &i.outbox,
                &i.contacts,
                &i.recent,
                &i.idempotency,
            )
                .transaction(|(messages, threads, outbox, contacts, recent, idem)| {
                    new.write(
                        &[messages, threads, outbox, contacts, recent],
                        Some(idem),
                        None,
                    )
                }),
            (None, true) => (
                &i.messages,
                &i.threads,
                &i.outbox,
                &i.contacts,
                &i.recent,
                &i.events,
            )
                .transaction(
                    |(messages, threads, outbox, contacts, recent, events)| {
                        new.write(
                            &[messages, threads, outbox, contacts, recent],
                            None,
                            Some(events),
                        )
                    },
                ),
            (Some(_), true) => (
                &i.messages,
                &i.threads,
                &i.outbox,
                &i.contacts,
                &i.recent,
                &i.idempotency,
                &i.events,
            )
                .transaction(
                    |(messages, threads, outbox, contacts, recent, idem, events)| {
                        new.write(
                            &[messages, threads, outbox, contacts, recent],
                            Some(idem),
                            Some(events),
                        )
                    },
                ),
        }
        .map_err(unwrap_tx)?;
        let (outcome, events) = match outcome {
            Written::New(events) => (Accepted::New(message), events),
            Written::Known(outcome) => (*outcome, Vec::new()),
            Written::Moved(id) => match self.get(&id)? {
                Some(original) => (Accepted::Replay(original), Vec::new()),
                None => (Accepted::ReplayErased(id), Vec::new()),
            },
        };
        Ok((
            outcome,
            Durability {
                store: self.clone(),
                ticket: Some(self.inner.commit.ticket()),
                events,
            },
        ))
    }

    pub fn get(&self, id: &str) -> Result<Option<Message>> {
        // A move or compaction that overlaps the look-up is read again.
        self.consistent(|| self.get_once(id))
    }

    fn get_once(&self, id: &str) -> Result<Option<Message>> {
        match self.inner.messages.get(id.as_bytes())? {
            Some(raw) => Ok(Some(from_json(id.as_bytes(), &raw)?)),
            None => match self.archived_message(id)? {
                Some(m) => Ok(Some(m)),
                // Moved to the history between the two looks.
                None => match self.inner.messages.get(id.as_bytes())? {
                    Some(raw) => Ok(Some(from_json(id.as_bytes(), &raw)?)),
                    None => Ok(None),
                },
            },
        }
    }

    /// Change a message: `change` edits a copy and returns whether it changed
    /// anything (it may run more than once, so it must not have side effects).
    /// Indexes and events follow from the difference; the change is durable
    /// when this returns. `None` when there is no such message; a message
    /// already moved to the history comes back unchanged (`change` is not run).
    pub async fn update<F>(&self, id: &str, change: F) -> Result<Option<Updated>>
    where
        F: Fn(&mut Message) -> bool,
    {
        let (outcome, durability) = self.update_deferred(id, change)?;
        durability.wait().await?;
        Ok(outcome)
    }

    /// Cancel a message no part of which has reached a modem (`DELETE
    /// /v1/messages/{id}`, a campaign's cancel): it must still be waiting
    /// (queued, scheduled, deferred) with every part pending. The message
    /// after the attempt and whether it was cancelled; None: no such message.
    pub async fn cancel_waiting(
        &self,
        id: &str,
        now: DateTime<Utc>,
        note: &str,
    ) -> Result<Option<(Message, bool)>> {
        // The closure may run again on a transaction conflict; the last
        // run's verdict is the one that was committed.
        let cancelled = std::sync::atomic::AtomicBool::new(false);
        let outcome = self
            .update(id, |m| {
                let ok = cancel_if_waiting(m, now, note);
                cancelled.store(ok, std::sync::atomic::Ordering::Relaxed);
                ok
            })
            .await?;
        let cancelled = cancelled.load(std::sync::atomic::Ordering::Relaxed);
        Ok(outcome.map(|(m, _)| (m, cancelled)))
    }

    /// [`Store::cancel_waiting`] for many messages in one transaction and
    /// one flush (a campaign's cancel, a page at a time: per message, every
    /// sled transaction writes the log out twice). Each stored message after
    /// the attempt and whether it was cancelled; ids without a live message
    /// are left out (a waiting message is never in the history). Durable
    /// when it returns.
    pub async fn cancel_waiting_many(
        &self,
        ids: &[String],
        now: DateTime<Utc>,
        note: &str,
    ) -> Result<Vec<(Message, bool)>> {
        let i = &self.inner;
        let (outcome, events) = (
            &i.messages,
            &i.outbox,
            &i.active,
            &i.deadlines,
            &i.mrs,
            &i.sticky,
            &i.events,
            &i.sends,
        )
            .transaction(
                |(messages, outbox, active, deadlines, mrs, sticky, events, sends)| {
                    let trees = Changed {
                        messages,
                        sends,
                        outbox,
                        active,
                        deadlines,
                        mrs,
                        sticky,
                        events,
                    };
                    let mut outcome = Vec::with_capacity(ids.len());
                    let mut announced = Vec::new();
                    for id in ids {
                        let Some(raw) = messages.get(id.as_bytes())? else {
                            continue;
                        };
                        let old: Message = from_json_tx(id.as_bytes(), &raw)?;
                        let mut new = old.clone();
                        if cancel_if_waiting(&mut new, now, note) {
                            announced.extend(trees.apply(&old, &new, now)?);
                            outcome.push((new, true));
                        } else {
                            outcome.push((old, false));
                        }
                    }
                    Ok((outcome, announced))
                },
            )
            .map_err(unwrap_tx)?;
        let changed = outcome.iter().any(|(_, cancelled)| *cancelled);
        Durability {
            store: self.clone(),
            ticket: changed.then(|| i.commit.ticket()),
            events,
        }
        .wait()
        .await?;
        Ok(outcome)
    }

    /// [`Store::update`] without the wait: the change is applied (readers see
    /// it at once) and becomes durable with the next flush, which the next
    /// durable write anywhere in the store brings about; the returned
    /// [`Durability`] waits for it. A crash before then loses the change, so
    /// only changes whose loss is safe may go this way (the modem engine's
    /// "part sent" mark: lost, the part is still `sending` on disk and turns
    /// `unknown` at restart, never into a resend).
    pub fn update_deferred<F>(&self, id: &str, change: F) -> Result<(Option<Updated>, Durability)>
    where
        F: Fn(&mut Message) -> bool,
    {
        let outcome = self
            .inner
            .updates
            .apply(&[(id, &change)], Utc::now())?
            .pop()
            .flatten();
        self.updated(id, outcome)
    }

    /// [`Store::update_deferred`] in one transaction with other callers'
    /// changes waiting at the same time (the modem actors' "sending" and
    /// "sent" marks: every sled transaction writes the log out twice, so 64
    /// modems paid two log writes a send). The change is applied when this
    /// returns, and durable once the returned [`Durability`] is waited for.
    pub async fn update_grouped<F>(
        &self,
        id: &str,
        change: F,
    ) -> Result<(Option<Updated>, Durability)>
    where
        F: Fn(&mut Message) -> bool + Send + 'static,
    {
        self.submit_grouped(id, change).applied().await
    }

    /// [`Store::update_grouped`] in two steps: the change is queued when
    /// this returns (after every change queued before it, before every one
    /// queued after: a modem's "sent" mark queued now is applied before the
    /// "sending" mark of its next part), and applied once
    /// [`GroupedChange::applied`] returns.
    pub fn submit_grouped<F>(&self, id: &str, change: F) -> GroupedChange
    where
        F: Fn(&mut Message) -> bool + Send + 'static,
    {
        let submitted = match self.grouped() {
            // The writer is gone (the store is closing): on its own.
            Some(grouped) => grouped
                .submit(id, Box::new(change))
                .map_err(|change| self.update_deferred(id, change)),
            None => Err(self.update_deferred(id, change)),
        };
        GroupedChange {
            store: self.clone(),
            id: id.to_string(),
            submitted,
        }
    }

    /// After a change of `id` was applied (`outcome`; None: not in the live
    /// tree): the message, and its durability to wait for.
    fn updated(&self, id: &str, outcome: Option<Updated>) -> Result<(Option<Updated>, Durability)> {
        let wrote = outcome.is_some();
        // A message in the history is settled: nothing changes it any more
        // (read marks and retention have their own ways), so it is returned
        // as it is, unchanged, without running `change`.
        let outcome = match outcome {
            None => self.archived_message(id)?.map(|m| (m, Vec::new())),
            some => some,
        };
        let ticket = wrote.then(|| self.inner.commit.ticket());
        let events = outcome
            .as_ref()
            .map(|(_, events)| events.clone())
            .unwrap_or_default();
        Ok((
            outcome,
            Durability {
                store: self.clone(),
                ticket,
                events,
            },
        ))
    }

    /// Outbound messages due at `now` (queued, or scheduled/deferred whose time
    /// has come), oldest first.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>> {
        let end = keys::time_key(now);
        let mut out = Vec::new();
        for entry in self.inner.outbox.iter() {
            let (key, _) = entry?;
            if key.len() < 8 || key[..8] > end[..] {
                break;
            }
            let id = String::from_utf8_lossy(&key[8..]).into_owned();
            if let Some(message) = self.get(&id)? {
                out.push(message);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Visit the ids of waiting messages due by `now`, oldest first, until
    /// `visit` breaks: keys only, so the dispatcher skips messages already
    /// claimed by a modem without reading their records (64 modems look at
    /// the same outbox head) and stops at the first it can take.
    pub fn visit_due(
        &self,
        now: DateTime<Utc>,
        mut visit: impl FnMut(&str) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        let end = keys::time_key(now);
        for entry in self.inner.outbox.iter().keys() {
            let key = entry?;
            if key.len() < 8 || key[..8] > end[..] {
                break;
            }
            if visit(&String::from_utf8_lossy(&key[8..])).is_break() {
                break;
            }
        }
        Ok(())
    }

    /// When the first message that is not due yet at `now` becomes due
    /// (None: every waiting message is due already, or none waits).
    pub fn next_due_after(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let after = now + chrono::Duration::microseconds(1);
        Ok(self
            .inner
            .outbox
            .range(keys::time_key(after).to_vec()..)
            .next()
            .transpose()?
            .and_then(|(key, _)| keys::time_of(&key)))
    }

    /// When the next waiting message becomes due (None: the outbox is empty).
    pub fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .inner
            .outbox
            .first()?
            .and_then(|(key, _)| keys::time_of(&key)))
    }

    /// When messages to `contact` started going out since `since`, and their
    /// categories (read by the per-contact rate limits: small keys, no records).
    pub fn sends_since(
        &self,
        contact: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Category)>> {
        let prefix = keys::thread_prefix(contact);
        let mut start = prefix.clone();
        start.extend_from_slice(&keys::time_key(since));
        let mut end = prefix.clone();
        end.push(0xFF);
        let mut out = Vec::new();
        for entry in self.inner.sends.range(start..end) {
            let (key, value) = entry?;
            let Some(at) = key.get(prefix.len()..).and_then(keys::time_of) else {
                continue;
            };
            let category = match value.first() {
                Some(1) => Category::Conversational,
                Some(2) => Category::Marketing,
                _ => Category::Transactional,
            };
            out.push((at, category));
        }
        Ok(out)
    }

    /// Outbound messages waiting in the outbox (queue depth): a full scan
    /// (sled counts by walking the tree), for checks and for
    /// [`Store::count_outbox`]; request paths read [`Store::outbox_gauge`].
    pub fn outbox_len(&self) -> usize {
        self.inner.outbox.len()
    }

    /// Count the outbox (a full scan, blocking: run it off the async
    /// workers) and keep the count for [`Store::outbox_gauge`].
    pub fn count_outbox(&self) -> usize {
        let n = self.outbox_len();
        self.inner
            .outbox_gauge
            .store(n as u64, std::sync::atomic::Ordering::Relaxed);
        n
    }

    /// The outbox's depth as last counted (the daemon counts it every
    /// second, [`OUTBOX_GAUGE_PERIOD`]): what `/metrics`, the Modems page and
    /// the service status show, at no cost to the request that reads it.
    /// Counted now if never counted yet.
    pub fn outbox_gauge(&self) -> usize {
        match self
            .inner
            .outbox_gauge
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            u64::MAX => self.count_outbox(),
            n => n as usize,
        }
    }

    /// Messages kept live in sled (not yet moved to the history files); a
    /// full scan, for benchmarks and checks, not for request paths.
    pub fn live_messages(&self) -> usize {
        self.inner.messages.len()
    }

    /// Messages whose status-report deadline has passed by `now`.
    pub fn past_deadline(&self, now: DateTime<Utc>) -> Result<Vec<String>> {
        let end = keys::time_key(now);
        let mut ids = Vec::new();
        for entry in self.inner.deadlines.iter() {
            let (key, _) = entry?;
            if key.len() < 8 || key[..8] > end[..] {
                break;
            }
            ids.push(String::from_utf8_lossy(&key[8..]).into_owned());
        }
        Ok(ids)
    }

    /// A record that cannot be read, named by the report-deadline index as
    /// sent and due at `deadline` (what a damaged store gives housekeeping).
    #[cfg(test)]
    pub(crate) fn corrupt_for_test(&self, id: &str, deadline: DateTime<Utc>) {
        self.inner
            .messages
            .insert(id.as_bytes(), b"{not a message".as_slice())
            .unwrap();
        self.inner
            .deadlines
            .insert(keys::outbox(deadline, id), b"".as_slice())
            .unwrap();
    }

    /// The message and part a status report is about: the last part sent
    /// through `modem` with TP-MR `mr`, if its recipient matches `recipient`
    /// (compared on the last 7 digits, as networks quote numbers in national
    /// or international form).
    pub fn find_by_reference(
        &self,
        modem: &str,
        mr: u8,
        recipient: &str,
    ) -> Result<Option<(Message, u8)>> {
        let key = keys::message_reference(modem, mr);
        let Some(value) = self.inner.mrs.get(key)? else {
            return Ok(None);
        };
        let Some((seq, id)) = value.split_last() else {
            return Ok(None);
        };
        let Some(message) = self.get(&String::from_utf8_lossy(id))? else {
            return Ok(None);
        };
        let tail = |n: &str| -> String {
            let digits: Vec<char> = n.chars().filter(char::is_ascii_digit).collect();
            digits[digits.len().saturating_sub(7)..].iter().collect()
        };
        Ok((tail(&message.to) == tail(recipient)).then_some((message, *seq)))
    }

    /// After a restart: a part whose `AT+CMGS` was in flight may or may not have
    /// gone out, so its message becomes `unknown` (never resent silently); a
    /// message between parts with none in flight goes back to the queue for the
    /// rest. Returns the ids that became unknown.
    pub async fn recover_in_flight(&self) -> Result<Vec<String>> {
        let ids: Vec<String> = self
            .inner
            .active
            .iter()
            .keys()
            .map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect::<std::result::Result<_, _>>()?;
        let mut unknown = Vec::new();
        for id in ids {
            let now = Utc::now();
            let updated = self
                .update(&id, |m| {
                    if m.status != MessageStatus::Sending {
                        return false;
                    }
                    let in_flight = m
                        .part_status
                        .iter()
                        .any(|p| p.status == PartStatus::Sending);
                    if in_flight {
                        m.transition(now, MessageStatus::Unknown).note =
                            Some("daemon stopped while AT+CMGS was in flight".into());
                    } else {
                        m.transition(now, MessageStatus::Queued).note =
                            Some("resumed after restart".into());
                    }
                    true
                })
                .await?;
            if let Some((m, _)) = updated {
                if m.status == MessageStatus::Unknown {
                    unknown.push(m.id);
                }
            }
        }
        Ok(unknown)
    }

    /// A new outbound message record, not yet stored.
    #[allow(clippy::too_many_arguments)]
    pub fn new_outbound(
        &self,
        from: &str,
        to: &str,
        body: &str,
        parts: u8,
        alphabet: &str,
        status_report: bool,
        send_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Message {
        let id = self.new_id(to, now);
        // The concatenation reference: any value the recipient has not seen
        // recently from us; derived from the id so it is stable and spread out.
        let reference = id
            .bytes()
            .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b)));
        let status = match send_at {
            Some(at) if at > now => MessageStatus::Scheduled,
            _ => MessageStatus::Queued,
        };
        let mut message = Message {
            id,
            direction: Direction::Outbound,
            contact: to.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            modem: None,
            body: body.to_string(),
            parts,
            alphabet: alphabet.to_string(),
            status,
            error: None,
            status_report,
            created_at: now,
            updated_at: now,
            history: Vec::new(),
            part_status: Vec::new(),
            requested_modem: None,
            validity: None,
            not_before: send_at.filter(|at| *at > now),
            reference,
            attempts: 0,
            report_deadline: None,
            network_time: None,
            incomplete: false,
            read: false,
            idempotency_key: None,
            category: Default::default(),
            exempt: None,
            send_by: None,
            author: None,
            campaign: None,
            variant: None,
            flow: None,
            context: None,
            callback: None,
            fleet: None,
            fleet_copy: false,
        };
        message.set_parts(parts, alphabet);
        message.transition(now, status);
        message
    }
}

/// A change queued by [`Store::submit_grouped`] (or applied already, on its
/// own, when the store has no grouped writer).
pub struct GroupedChange {
    store: Store,
    id: String,
    submitted: std::result::Result<Queued, Result<(Option<Updated>, Durability)>>,
}

/// Where the grouped writer answers a queued change.
type Queued = tokio::sync::oneshot::Receiver<Result<Option<Updated>>>;

impl GroupedChange {
    /// Wait until the change is applied: the message, and the durability
    /// to wait for (as [`Store::update_grouped`] returns them).
    pub async fn applied(self) -> Result<(Option<Updated>, Durability)> {
        match self.submitted {
            Ok(reply) => {
                let outcome = reply.await.map_err(|_| {
                    StoreError::Durability("the store's grouped writer stopped".into())
                })??;
                self.store.updated(&self.id, outcome)
            }
            Err(done) => done,
        }
    }
}
