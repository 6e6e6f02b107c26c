//! Consent: each contact's current state, the append-only ledger of how it got
//! there, contact profiles (time zone), and erasure that keeps only a hashed
//! opt-out tombstone.
//!
//! An inbound STOP changes consent in the same transaction that stores the
//! message (see `inbound.rs`), together with its ledger entry, its
//! `consent.changed` event and the one confirmation SMS: a crash cannot
//! separate them, and the check right before `AT+CMGS` sees the opt-out at once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::TransactionalTree;
use sled::Transactional;

use super::keys;
use super::outbound::queue_message;
use super::query::touch_contact;
use super::records::{Event, Message, MessageStatus};
use super::{from_json, from_json_tx, push_event, to_json, unwrap_tx, Result, Store, TxError};

/// Where a contact stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    /// Never said either way: transactional and conversational texts follow
    /// the config; marketing needs an opt-in.
    #[default]
    Unknown,
    OptedIn,
    OptedOut,
}

impl ConsentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Unknown => "unknown",
            ConsentStatus::OptedIn => "opted_in",
            ConsentStatus::OptedOut => "opted_out",
        }
    }
}

/// How an opt-in was obtained (TCPA: the business must be able to prove it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Where: "web_form", "paper", "sms", "pos", ...
    pub source: String,
    /// What: a form id, a URL, the text of the keyword message, ...
    pub evidence: String,
    pub captured_at: DateTime<Utc>,
}

/// A contact's current consent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub contact: String,
    pub status: ConsentStatus,
    pub updated_at: Option<DateTime<Utc>>,
    /// The opt-in evidence in force (marketing needs it).
    pub evidence: Option<Evidence>,
    /// When a HELP was last answered: one answer per window (the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help_answered_at: Option<DateTime<Utc>>,
}

/// One ledger entry: what happened, when, and the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub contact: String,
    /// "opt_out", "opt_in", "manual_opt_out", "repeat_opt_out", "erased".
    pub action: String,
    /// The status after this entry.
    pub status: ConsentStatus,
    /// "sms", "api".
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub inbound_message_id: Option<String>,
    /// The keyword or phrase that matched.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub matched: Option<String>,
    /// The gateway number the text came to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub evidence: Option<Evidence>,
}

/// What a contact record keeps besides consent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactProfile {
    /// IANA zone ("America/Chicago") for quiet hours.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_zone: Option<String>,
}

/// What an inbound message does to consent, decided by the policy (a pure
/// function of the text and the current record) inside the store's
/// transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaction {
    /// A new state and the ledger action ("opt_out", "opt_in", "repeat_opt_out").
    pub consent: Option<(ConsentStatus, String)>,
    /// What matched, for the ledger.
    pub matched: Option<String>,
    /// A reply exempt from the consent check (confirmation, HELP), composed
    /// by the policy and queued in the same transaction.
    pub reply: Option<Message>,
    /// The reply answers HELP: the record keeps the time.
    pub answers_help: bool,
}

/// The policy's decision function, installed once by the daemon; the store
/// is passed for message ids and recent history.
pub type Reactor = Arc<dyn Fn(&Store, &Message, &ConsentRecord) -> Reaction + Send + Sync>;

/// The key a contact's consent is kept under: the contact alone (an opt-out
/// covers every gateway number, the default), or contact and number.
pub(crate) fn consent_key(contact: &str, number: Option<&str>) -> Vec<u8> {
    let mut key = contact.as_bytes().to_vec();
    if let Some(n) = number {
        key.push(keys::SEP);
        key.extend_from_slice(n.as_bytes());
    }
    key
}

/// The tombstone key of an erased contact: SHA-256 of the number.
fn tombstone_key(contact: &str) -> Vec<u8> {
    Sha256::digest(contact.as_bytes()).to_vec()
}

pub(crate) fn read_record(
    consent: &TransactionalTree,
    tombstones: &TransactionalTree,
    contact: &str,
    number: Option<&str>,
) -> std::result::Result<ConsentRecord, TxError> {
    let key = consent_key(contact, number);
    if let Some(raw) = consent.get(&key)? {
        return from_json_tx(&key, &raw);
    }
    let mut record = ConsentRecord {
        contact: contact.to_string(),
        ..ConsentRecord::default()
    };
    if tombstones.get(tombstone_key(contact))?.is_some() {
        record.status = ConsentStatus::OptedOut;
    }
    Ok(record)
}

/// The trees a consent change writes, inside one transaction.
pub(crate) struct ConsentTrees<'a> {
    pub consent: &'a TransactionalTree,
    pub ledger: &'a TransactionalTree,
    pub tombstones: &'a TransactionalTree,
    pub events: &'a TransactionalTree,
}

impl ConsentTrees<'_> {
    /// Write a new state with its ledger entry and, when the status changed,
    /// a `consent.changed` event.
    pub(crate) fn change(
        &self,
        previous: &ConsentRecord,
        mut entry: LedgerEntry,
        evidence: Option<Evidence>,
        number: Option<&str>,
    ) -> std::result::Result<(ConsentRecord, LedgerEntry, Option<Event>), TxError> {
        let seq = self.ledger.generate_id()?;
        entry.id = format!("led_{seq:016x}");
        let mut key = keys::thread_prefix(&entry.contact);
        key.extend_from_slice(&seq.to_be_bytes());
        self.ledger.insert(key, to_json(&entry)?)?;
        let record = ConsentRecord {
            contact: entry.contact.clone(),
            status: entry.status,
            updated_at: Some(entry.at),
            evidence: match entry.status {
                ConsentStatus::OptedIn => evidence.or_else(|| previous.evidence.clone()),
                _ => None,
            },
            help_answered_at: previous.help_answered_at,
        };
        self.consent
            .insert(consent_key(&entry.contact, number), to_json(&record)?)?;
        if entry.status == ConsentStatus::OptedOut {
            self.tombstones.insert(tombstone_key(&entry.contact), &[])?;
        } else {
            self.tombstones.remove(tombstone_key(&entry.contact))?;
        }
        let event = if previous.status != record.status {
            let data = serde_json::json!({
                "contact": record.contact,
                "status": record.status.as_str(),
                "previous_status": previous.status.as_str(),
                "ledger_entry": entry,
            });
            Some(push_event(self.events, "consent.changed", entry.at, data)?)
        } else {
            None
        };
        Ok((record, entry, event))
    }
}

/// A consent change asked for through the API.
#[derive(Debug, Clone)]
pub struct ConsentChange {
    pub contact: String,
    pub status: ConsentStatus,
    pub action: String,
    pub reason: Option<String>,
    pub evidence: Option<Evidence>,
    /// Per-number scope: the gateway number this applies to.
    pub number: Option<String>,
}

impl Store {
    /// The current consent of `contact` (for `number` when consent is kept per
    /// number). An erased contact who opted out still reads as opted out.
    pub fn consent(&self, contact: &str, number: Option<&str>) -> Result<ConsentRecord> {
        let key = consent_key(contact, number);
        if let Some(raw) = self.inner.consent.get(&key)? {
            return from_json(&key, &raw);
        }
        let tombstoned = self.inner.tombstones.get(tombstone_key(contact))?.is_some();
        Ok(ConsentRecord {
            contact: contact.to_string(),
            status: if tombstoned {
                ConsentStatus::OptedOut
            } else {
                ConsentStatus::Unknown
            },
            ..ConsentRecord::default()
        })
    }

    /// The ledger of one contact, oldest first.
    pub fn ledger(&self, contact: &str) -> Result<Vec<LedgerEntry>> {
        self.inner
            .ledger
            .scan_prefix(keys::thread_prefix(contact))
            .map(|e| {
                let (k, v) = e?;
                from_json(&k, &v)
            })
            .collect()
    }

    /// Every ledger entry, for the CSV export.
    pub fn ledger_all(&self) -> impl Iterator<Item = Result<LedgerEntry>> + '_ {
        self.inner.ledger.iter().map(|e| {
            let (k, v) = e?;
            from_json(&k, &v)
        })
    }

    /// Record a consent change from the API (manual opt-out, opt-in with
    /// evidence), durably, with its ledger entry and event.
    pub async fn change_consent(
        &self,
        change: ConsentChange,
    ) -> Result<(ConsentRecord, LedgerEntry)> {
        let i = &self.inner;
        let now = Utc::now();
        let out = (&i.consent, &i.ledger, &i.tombstones, &i.events)
            .transaction(|(consent, ledger, tombstones, events)| {
                let previous = read_record(
                    consent,
                    tombstones,
                    &change.contact,
                    change.number.as_deref(),
                )?;
                let entry = LedgerEntry {
                    id: String::new(),
                    at: now,
                    contact: change.contact.clone(),
                    action: change.action.clone(),
                    status: change.status,
                    source: "api".into(),
                    inbound_message_id: None,
                    matched: None,
                    gateway_number: change.number.clone(),
                    reason: change.reason.clone(),
                    evidence: change.evidence.clone(),
                };
                let trees = ConsentTrees {
                    consent,
                    ledger,
                    tombstones,
                    events,
                };
                let (record, entry, event) = trees.change(
                    &previous,
                    entry,
                    change.evidence.clone(),
                    change.number.as_deref(),
                )?;
                Ok((record, entry, event))
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        let (record, entry, event) = out;
        if let Some(event) = event {
            self.events_committed(&[event]);
        }
        Ok((record, entry))
    }

    /// Fail every waiting (queued, scheduled, deferred) outbound message to
    /// `contact` with `code`; returns their ids.
    pub async fn fail_waiting_to(
        &self,
        contact: &str,
        code: &str,
        text: &str,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let prefix = keys::thread_prefix(contact);
        for entry in self.inner.threads.scan_prefix(&prefix) {
            let (key, _) = entry?;
            ids.push(String::from_utf8_lossy(&key[prefix.len() + 8..]).into_owned());
        }
        let now = Utc::now();
        let mut failed = Vec::new();
        for id in ids {
            let changed = self
                .update(&id, |m| {
                    if !m.status.is_waiting() || m.exempt.is_some() {
                        return false;
                    }
                    m.settle_with_error(now, MessageStatus::Failed, code, text);
                    true
                })
                .await?;
            if let Some((m, _)) = changed {
                if m.status == MessageStatus::Failed
                    && m.error.as_ref().is_some_and(|e| e.code == code)
                {
                    failed.push(m.id);
                }
            }
        }
        Ok(failed)
    }

    pub fn profile(&self, contact: &str) -> Result<ContactProfile> {
        match self.inner.profiles.get(contact.as_bytes())? {
            Some(raw) => from_json(contact.as_bytes(), &raw),
            None => Ok(ContactProfile::default()),
        }
    }

    pub async fn set_profile(&self, contact: &str, profile: &ContactProfile) -> Result<()> {
        let raw = serde_json::to_vec(profile).map_err(|e| super::StoreError::Corrupt {
            key: contact.to_string(),
            reason: e.to_string(),
        })?;
        self.inner.profiles.insert(contact.as_bytes(), raw)?;
        self.sync().await
    }

    /// Erase a contact: messages, thread summary, profile and consent record
    /// go; an opt-out survives as a hashed tombstone, and the contact's ledger
    /// entries are kept under the hash with the number and message links
    /// removed. Returns how many messages were erased.
    pub async fn erase_contact(&self, contact: &str) -> Result<usize> {
        let prefix = keys::thread_prefix(contact);
        let mut message_keys = Vec::new();
        for entry in self.inner.threads.scan_prefix(&prefix) {
            let (key, _) = entry?;
            message_keys.push(key.to_vec());
        }
        let hashed = format!(
            "sha256:{}",
            crate::pdu::hex::encode(&tombstone_key(contact))
        );
        let ledger_keys: Vec<(Vec<u8>, LedgerEntry)> = self
            .inner
            .ledger
            .scan_prefix(&prefix)
            .map(|e| {
                let (k, v) = e?;
                Ok((k.to_vec(), from_json(&k, &v)?))
            })
            .collect::<Result<_>>()?;
        let opted_out = self.consent(contact, None)?.status == ConsentStatus::OptedOut;
        let i = &self.inner;
        for key in &message_keys {
            let id = &key[prefix.len() + 8..];
            i.messages.remove(id)?;
            i.threads.remove(key.as_slice())?;
            i.active.remove(id)?;
        }
        for (key, mut entry) in ledger_keys {
            i.ledger.remove(key.as_slice())?;
            entry.contact = hashed.clone();
            entry.inbound_message_id = None;
            entry.gateway_number = None;
            let mut new_key = keys::thread_prefix(&hashed);
            new_key.extend_from_slice(&key[prefix.len()..]);
            let raw = serde_json::to_vec(&entry).map_err(|e| super::StoreError::Corrupt {
                key: hashed.clone(),
                reason: e.to_string(),
            })?;
            i.ledger.insert(new_key, raw)?;
        }
        let who = contact.to_string();
        let archived = self
            .blocking(move |store| store.erase_history(&who))
            .await?;
        i.contacts
            .remove(keys::contact_hash_key(keys::contact_hash(contact), contact))?;
        if let Some(raw) = i.contacts.remove(contact.as_bytes())? {
            if let Ok(summary) = from_json::<super::ThreadSummary>(contact.as_bytes(), &raw) {
                i.recent.remove(keys::recent(summary.last_at, contact))?;
            }
        }
        for entry in i.sends.scan_prefix(&prefix) {
            let (key, _) = entry?;
            i.sends.remove(key)?;
        }
        i.profiles.remove(contact.as_bytes())?;
        i.sticky.remove(contact.as_bytes())?;
        i.consent.remove(consent_key(contact, None))?;
        for entry in i.consent.scan_prefix(&prefix) {
            let (key, _) = entry?;
            i.consent.remove(key)?;
        }
        if opted_out {
            i.tombstones.insert(tombstone_key(contact), &[])?;
        }
        // Outbox entries of erased messages point nowhere; `due` skips them.
        self.sync().await?;
        Ok(message_keys.len() + archived)
    }

    /// Retention: blank the bodies of messages created before `before` (the
    /// records, ledger and counts stay). Returns how many were purged.
    pub async fn purge_bodies_before(&self, before: DateTime<Utc>) -> Result<usize> {
        let mut purged = 0;
        let cutoff = keys::id_floor(before);
        let ids: Vec<String> = self
            .inner
            .messages
            .range(..cutoff.as_bytes())
            .keys()
            .map(|k| k.map(|k| String::from_utf8_lossy(&k).into_owned()))
            .collect::<std::result::Result<_, _>>()?;
        for id in ids {
            let changed = self
                .update(&id, |m| {
                    if m.body.is_empty()
                        || !(m.status.is_final() || m.status == MessageStatus::Unknown)
                    {
                        return false;
                    }
                    m.body.clear();
                    true
                })
                .await?;
            purged += usize::from(matches!(changed, Some((m, _)) if m.body.is_empty()));
        }
        purged += self
            .blocking(move |store| store.blank_history_before(before))
            .await?;
        self.sync().await?;
        Ok(purged)
    }
}

/// Queue an exempt reply (opt-out confirmation, HELP), composed by the
/// policy, inside the inbound transaction.
pub(crate) fn queue_reply(
    trees: (
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
    ),
    reply: &Message,
) -> std::result::Result<(), TxError> {
    let (messages, threads, outbox, contacts, recent) = trees;
    queue_message(messages, threads, outbox, reply)?;
    touch_contact(contacts, recent, reply)?;
    Ok(())
}
