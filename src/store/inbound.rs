//! Inbound SMS: dedupe (an SMS read twice is stored once), multipart
//! reassembly by (modem, sender, reference, total) with out-of-order and
//! duplicate parts, and the timeout that delivers an incomplete set.
//!
//! A duplicate is the same storage slot read again before its `AT+CMGD`: a
//! `+CMTI` and the sweep reading one index, or a re-read after a crash
//! between storing and deleting. The dedupe key is therefore the slot and
//! the PDU read from it ([`ReadFrom::Slot`]), released once the slot is
//! deleted ([`Store::slot_deleted`]). Identical PDUs in different deliveries
//! (STOP, STOP within one second: same bytes, same network timestamp) are
//! different messages; a PDU shown directly (`+CMT`) is never read twice and
//! has no key at all.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;
use sled::Transactional;

use super::consent::{
    consent_key, queue_reply, read_record, ConsentStatus, ConsentTrees, Evidence, LedgerEntry,
    Reactor,
};
use super::keys;
use super::query::touch_contact;
use super::records::{Direction, ErrorInfo, Event, Message, MessageStatus};
use super::{from_json, from_json_tx, push_event, to_json, unwrap_tx, Result, Store, TxError};
use crate::pdu::Concat;

/// One received SMS (a whole message or one part), as the modem engine hands it
/// over after decoding and before `AT+CMGD`.
#[derive(Debug, Clone)]
pub struct InboundPart<'a> {
    pub modem: &'a str,
    /// The modem's own number (the message's `to`), when known.
    pub own_number: &'a str,
    /// The PDU as read: with the slot it was read from, the dedupe key, so a
    /// re-read after a crash is a no-op (see [`ReadFrom`]).
    pub raw_pdu: &'a [u8],
    pub sender: &'a str,
    pub text: &'a str,
    pub alphabet: &'a str,
    pub network_time: DateTime<Utc>,
    pub concat: Option<Concat>,
    /// Set when the body could not be read as text (kept as hex, not dropped).
    pub error: Option<ErrorInfo>,
}

/// Where a received PDU was read: what makes a second read of it a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom<'a> {
    /// A storage slot (`+CMTI`, `AT+CMGR`, `AT+CMGL`): the same PDU read from
    /// the same slot again is the same message, until [`Store::slot_deleted`]
    /// says the slot was emptied (`AT+CMGD`).
    Slot { storage: &'a str, index: u32 },
    /// Shown directly (`+CMT`, `AT+CNMI=2,2`): never read twice, so every
    /// delivery is a message of its own.
    Direct,
}

/// What `receive` did.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiveOutcome {
    /// Seen before: nothing stored.
    Duplicate,
    /// A part stored; the message is not complete yet.
    Partial { have: u8, total: u8 },
    /// A complete message stored (its `message.received` event with it).
    Complete(Box<Message>, Vec<Event>),
}

/// The parts of one concatenated message received so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartialSet {
    modem: String,
    own_number: String,
    sender: String,
    alphabet: String,
    total: u8,
    first_at: DateTime<Utc>,
    network_time: DateTime<Utc>,
    parts: BTreeMap<u8, String>,
}

struct InboundTrees<'a> {
    store: &'a Store,
    reactor: Option<&'a (Reactor, bool)>,
    messages: &'a TransactionalTree,
    threads: &'a TransactionalTree,
    contacts: &'a TransactionalTree,
    recent: &'a TransactionalTree,
    sticky: &'a TransactionalTree,
    events: &'a TransactionalTree,
    outbox: &'a TransactionalTree,
    consent: &'a TransactionalTree,
    ledger: &'a TransactionalTree,
    tombstones: &'a TransactionalTree,
}

impl InboundTrees<'_> {
    fn store_message(
        &self,
        message: &Message,
        at: DateTime<Utc>,
    ) -> std::result::Result<Vec<Event>, TxError> {
        self.messages
            .insert(message.id.as_bytes(), to_json(message)?)?;
        self.threads.insert(
            keys::thread(&message.contact, message.created_at, &message.id),
            &[],
        )?;
        touch_contact(self.contacts, self.recent, message)?;
        if let Some(modem) = &message.modem {
            self.sticky
                .insert(message.contact.as_bytes(), modem.as_bytes())?;
        }
        let data = serde_json::to_value(message).unwrap_or(serde_json::Value::Null);
        let mut events = vec![push_event(self.events, "message.received", at, data)?];
        if let Some((reactor, per_number)) = self.reactor {
            events.extend(self.react(reactor, *per_number, message, at)?);
        }
        Ok(events)
    }

    /// Consent keywords act in the same transaction as the message: the new
    /// state, its ledger entry, `consent.changed`, and an exempt reply.
    fn react(
        &self,
        reactor: &Reactor,
        per_number: bool,
        message: &Message,
        at: DateTime<Utc>,
    ) -> std::result::Result<Vec<Event>, TxError> {
        let number = (per_number && !message.to.is_empty()).then_some(message.to.as_str());
        let record = read_record(self.consent, self.tombstones, &message.contact, number)?;
        let reaction = reactor(self.store, message, &record);
        let mut events = Vec::new();
        if let Some((status, action)) = reaction.consent {
            let evidence = (status == ConsentStatus::OptedIn).then(|| Evidence {
                source: "sms".into(),
                evidence: format!("inbound message {}: {:?}", message.id, message.body),
                captured_at: at,
            });
            let entry = LedgerEntry {
                id: String::new(),
                at,
                contact: message.contact.clone(),
                action,
                status,
                source: "sms".into(),
                inbound_message_id: Some(message.id.clone()),
                matched: reaction.matched.clone(),
                gateway_number: (!message.to.is_empty()).then(|| message.to.clone()),
                reason: None,
                evidence: evidence.clone(),
                site: None,
            };
            let trees = ConsentTrees {
                consent: self.consent,
                ledger: self.ledger,
                tombstones: self.tombstones,
                events: self.events,
            };
            let (_, _, event) = trees.change(&record, entry, evidence, number)?;
            events.extend(event);
        }
        if let Some(reply) = &reaction.reply {
            queue_reply(
                (
                    self.messages,
                    self.threads,
                    self.outbox,
                    self.contacts,
                    self.recent,
                ),
                reply,
            )?;
        }
        if reaction.answers_help {
            let mut record = read_record(self.consent, self.tombstones, &message.contact, number)?;
            record.help_answered_at = Some(at);
            self.consent
                .insert(consent_key(&message.contact, number), to_json(&record)?)?;
        }
        Ok(events)
    }
}

impl Store {
    fn inbound_message(
        &self,
        set: &PartialSet,
        body: String,
        incomplete: bool,
        error: Option<ErrorInfo>,
        now: DateTime<Utc>,
    ) -> Message {
        let mut message = Message {
            id: self.new_id(&set.sender, now),
            direction: Direction::Inbound,
            contact: set.sender.clone(),
            from: set.sender.clone(),
            to: set.own_number.clone(),
            modem: Some(set.modem.clone()),
            body,
            parts: set.total,
            alphabet: set.alphabet.clone(),
            status: MessageStatus::Received,
            error,
            status_report: false,
            created_at: now,
            updated_at: now,
            history: Vec::new(),
            part_status: Vec::new(),
            requested_modem: None,
            validity: None,
            not_before: None,
            reference: 0,
            attempts: 0,
            report_deadline: None,
            network_time: Some(set.network_time),
            incomplete,
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
        let step = message.transition(now, MessageStatus::Received);
        if incomplete {
            let missing: Vec<String> = (1..=set.total)
                .filter(|seq| !set.parts.contains_key(seq))
                .map(|seq| seq.to_string())
                .collect();
            step.note = Some(format!(
                "incomplete: part(s) {} never arrived",
                missing.join(", ")
            ));
        }
        message
    }

    /// One transaction over every tree an inbound message touches: dedupe keys,
    /// multipart sets, and the message with its indexes, events and consent
    /// reaction (`InboundTrees`).
    fn inbound_transaction<T>(
        &self,
        reactor: Option<&(Reactor, bool)>,
        f: impl Fn(
            &TransactionalTree,
            &TransactionalTree,
            &InboundTrees<'_>,
        ) -> std::result::Result<T, TxError>,
    ) -> Result<T> {
        let i = &self.inner;
        (
            &i.dedupe,
            &i.parts,
            &i.messages,
            &i.threads,
            &i.contacts,
            &i.recent,
            &i.sticky,
            &i.events,
            &i.outbox,
            &i.consent,
            &i.ledger,
            &i.tombstones,
        )
            .transaction(
                |(
                    dedupe,
                    parts,
                    messages,
                    threads,
                    contacts,
                    recent,
                    sticky,
                    events,
                    outbox,
                    consent,
                    ledger,
                    tombstones,
                )| {
                    let trees = InboundTrees {
                        store: self,
                        reactor,
                        messages,
                        threads,
                        contacts,
                        recent,
                        sticky,
                        events,
                        outbox,
                        consent,
                        ledger,
                        tombstones,
                    };
                    f(dedupe, parts, &trees)
                },
            )
            .map_err(unwrap_tx)
    }

    /// Store a received SMS whose slot is not known (tests, imports): a PDU
    /// already stored from the same modem is a duplicate. The modem engine
    /// says where it read each PDU ([`Store::receive_read`]).
    pub async fn receive(&self, part: InboundPart<'_>) -> Result<ReceiveOutcome> {
        let mut key = part.modem.as_bytes().to_vec();
        key.push(keys::SEP);
        key.extend_from_slice(part.raw_pdu);
        self.receive_keyed(part, Some(key)).await
    }

    /// Store a received SMS durably, read from `from`. Returns only after the
    /// flush, so the caller may delete it from the modem.
    pub async fn receive_read(
        &self,
        part: InboundPart<'_>,
        from: ReadFrom<'_>,
    ) -> Result<ReceiveOutcome> {
        let key = match from {
            ReadFrom::Slot { storage, index } => {
                let mut key = slot_prefix(part.modem, storage, index);
                key.extend_from_slice(part.raw_pdu);
                Some(key)
            }
            ReadFrom::Direct => None,
        };
        self.receive_keyed(part, key).await
    }

    /// The slot `index` of `storage` on `modem` was deleted (`AT+CMGD`
    /// answered OK): the next PDU read there is a new delivery, even with the
    /// same bytes. Not waited for: the next durable write carries it to disk,
    /// and a key lost in a crash is dropped by [`Store::slots_listed`] at the
    /// next sweep, since the slot is empty then.
    pub fn slot_deleted(&self, modem: &str, storage: &str, index: u32) -> Result<()> {
        let prefix = slot_prefix(modem, storage, index);
        for entry in self.inner.dedupe.scan_prefix(&prefix).keys() {
            self.inner.dedupe.remove(entry?)?;
        }
        Ok(())
    }

    /// `AT+CMGL` listed `indexes` in `storage` of `modem` and nothing else:
    /// the dedupe keys of every other slot there are released (their
    /// `AT+CMGD` went through, but the release was lost, e.g. in a crash).
    pub fn slots_listed(&self, modem: &str, storage: &str, indexes: &[u32]) -> Result<()> {
        let prefix = storage_prefix(modem, storage);
        for key in self.inner.dedupe.scan_prefix(&prefix).keys() {
            let key = key?;
            let index = key
                .get(prefix.len()..prefix.len() + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes);
            if index.is_some_and(|i| !indexes.contains(&i)) {
                self.inner.dedupe.remove(key)?;
            }
        }
        Ok(())
    }

    async fn receive_keyed(
        &self,
        part: InboundPart<'_>,
        dedupe_key: Option<Vec<u8>>,
    ) -> Result<ReceiveOutcome> {
        let i = &self.inner;
        let now = Utc::now();
        let reactor = self.reactor();
        let outcome = self.inbound_transaction(reactor.as_ref(), |dedupe, parts, trees| {
            if let Some(key) = &dedupe_key {
                if dedupe.get(key)?.is_some() {
                    return Ok(ReceiveOutcome::Duplicate);
                }
            }
            let single = PartialSet {
                modem: part.modem.to_string(),
                own_number: part.own_number.to_string(),
                sender: part.sender.to_string(),
                alphabet: part.alphabet.to_string(),
                total: 1,
                first_at: now,
                network_time: part.network_time,
                parts: BTreeMap::new(),
            };
            let Some(concat) = part.concat.filter(|c| c.total > 1) else {
                let message = self.inbound_message(
                    &single,
                    part.text.to_string(),
                    false,
                    part.error.clone(),
                    now,
                );
                let events = trees.store_message(&message, now)?;
                if let Some(key) = &dedupe_key {
                    dedupe.insert(key.as_slice(), message.id.as_bytes())?;
                }
                return Ok(ReceiveOutcome::Complete(Box::new(message), events));
            };
            let set_key =
                keys::concat_prefix(part.modem, part.sender, concat.reference, concat.total);
            let mut set = match parts.get(&set_key)? {
                Some(raw) => from_json_tx(&set_key, &raw)?,
                None => PartialSet {
                    total: concat.total,
                    ..single
                },
            };
            // A duplicate part (same sequence, different PDU bytes, e.g. a
            // resend by the centre) keeps the first copy.
            set.parts
                .entry(concat.sequence)
                .or_insert_with(|| part.text.to_string());
            if let Some(key) = &dedupe_key {
                dedupe.insert(key.as_slice(), keys::dedupe_part(now))?;
            }
            if set.parts.len() < usize::from(set.total) {
                parts.insert(set_key, to_json(&set)?)?;
                return Ok(ReceiveOutcome::Partial {
                    have: set.parts.len() as u8,
                    total: set.total,
                });
            }
            parts.remove(set_key)?;
            let body: String = set.parts.values().map(String::as_str).collect();
            let message = self.inbound_message(&set, body, false, None, now);
            let events = trees.store_message(&message, now)?;
            Ok(ReceiveOutcome::Complete(Box::new(message), events))
        })?;
        let ticket = i.commit.ticket();
        self.durable(ticket).await?;
        if let ReceiveOutcome::Complete(_, events) = &outcome {
            self.events_committed(events);
        }
        Ok(outcome)
    }

    /// Deliver every multipart set older than `timeout` as an incomplete
    /// message (the missing parts named in its history).
    pub async fn expire_partials(&self, timeout: Duration) -> Result<Vec<Message>> {
        let now = Utc::now();
        let mut stale = Vec::new();
        for entry in self.inner.parts.iter() {
            let (key, raw) = entry?;
            let set: PartialSet = from_json(&key, &raw)?;
            if now - set.first_at >= timeout {
                stale.push(key.to_vec());
            }
        }
        let i = &self.inner;
        let mut delivered = Vec::new();
        let mut events = Vec::new();
        for key in stale {
            // An incomplete text is never read as a keyword: no reactor.
            let outcome = self.inbound_transaction(None, |_, parts, trees| {
                let Some(raw) = parts.get(&key)? else {
                    return Ok(None);
                };
                let set: PartialSet = from_json_tx(&key, &raw)?;
                parts.remove(key.as_slice())?;
                let body = (1..=set.total)
                    .map(|seq| set.parts.get(&seq).map_or("[…]", String::as_str))
                    .collect::<String>();
                let message = self.inbound_message(&set, body, true, None, now);
                let events = trees.store_message(&message, now)?;
                Ok(Some((message, events)))
            })?;
            if let Some((message, new)) = outcome {
                delivered.push(message);
                events.extend(new);
            }
        }
        if !delivered.is_empty() {
            let ticket = i.commit.ticket();
            self.durable(ticket).await?;
            self.events_committed(&events);
        }
        Ok(delivered)
    }
}

/// `dedupe` keys of slots: modem, a 0xFF marker (never the first octet of a
/// PDU, the SMSC length, so never a key of [`Store::receive`]), the storage.
fn storage_prefix(modem: &str, storage: &str) -> Vec<u8> {
    let mut key = modem.as_bytes().to_vec();
    key.push(keys::SEP);
    key.push(0xFF);
    key.extend_from_slice(storage.to_ascii_uppercase().as_bytes());
    key.push(keys::SEP);
    key
}

/// The `dedupe` key prefix of one slot; the PDU read there follows.
fn slot_prefix(modem: &str, storage: &str, index: u32) -> Vec<u8> {
    let mut key = storage_prefix(modem, storage);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

#[cfg(test)]
mod slot_tests {
    use super::super::test_support::TempStore;
    use super::*;

    fn stop<'a>(pdu: &'a [u8]) -> InboundPart<'a> {
        InboundPart {
            modem: "m1",
            own_number: "+15550000000",
            raw_pdu: pdu,
            sender: "+15557770001",
            text: "STOP",
            alphabet: "gsm7",
            network_time: Utc::now(),
            concat: None,
            error: None,
        }
    }

    const SM3: ReadFrom<'static> = ReadFrom::Slot {
        storage: "SM",
        index: 3,
    };

    #[tokio::test]
    async fn a_slot_read_again_before_its_delete_is_a_duplicate_and_a_new_delivery_is_not() {
        let t = TempStore::new();
        let pdu = b"\x00identical";
        let stored = |o: &ReceiveOutcome| matches!(o, ReceiveOutcome::Complete(..));
        assert!(stored(&t.store.receive_read(stop(pdu), SM3).await.unwrap()));
        // The sweep reads slot 3 again before AT+CMGD (or after a crash).
        assert_eq!(
            t.store.receive_read(stop(pdu), SM3).await.unwrap(),
            ReceiveOutcome::Duplicate
        );
        // The same bytes in another slot: another delivery.
        let sm4 = ReadFrom::Slot {
            storage: "SM",
            index: 4,
        };
        assert!(stored(&t.store.receive_read(stop(pdu), sm4).await.unwrap()));
        // Slot 3 deleted: the same bytes there again are a new message.
        t.store.slot_deleted("m1", "SM", 3).unwrap();
        assert!(stored(&t.store.receive_read(stop(pdu), SM3).await.unwrap()));
        // Shown directly (+CMT): every delivery counts.
        for _ in 0..2 {
            let outcome = t.store.receive_read(stop(pdu), ReadFrom::Direct).await;
            assert!(stored(&outcome.unwrap()));
        }
        let thread = t.store.thread("+15557770001", None, 50).unwrap();
        assert_eq!(thread.items.len(), 5);
    }

    #[tokio::test]
    async fn a_listing_releases_the_keys_of_slots_that_are_empty() {
        let t = TempStore::new();
        let pdu = b"\x00same";
        t.store.receive_read(stop(pdu), SM3).await.unwrap();
        // AT+CMGD went through but its release was lost: the listing still
        // showing slot 3 keeps the key; one without it releases it.
        t.store.slots_listed("m1", "SM", &[3, 7]).unwrap();
        assert_eq!(
            t.store.receive_read(stop(pdu), SM3).await.unwrap(),
            ReceiveOutcome::Duplicate
        );
        // Another modem's and another storage's keys are not touched.
        t.store.slots_listed("m2", "SM", &[]).unwrap();
        t.store.slots_listed("m1", "ME", &[]).unwrap();
        assert_eq!(
            t.store.receive_read(stop(pdu), SM3).await.unwrap(),
            ReceiveOutcome::Duplicate
        );
        t.store.slots_listed("m1", "SM", &[7]).unwrap();
        assert!(matches!(
            t.store.receive_read(stop(pdu), SM3).await.unwrap(),
            ReceiveOutcome::Complete(..)
        ));
    }
}
