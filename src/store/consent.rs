//! Consent: each contact's current state, the append-only ledger of how it got
//! there, contact profiles (their indexes are in `contacts.rs`), and erasure
//! that keeps only a hashed opt-out tombstone.
//!
//! An inbound STOP changes consent in the same transaction that stores the
//! message (see `inbound.rs`), together with its ledger entry, its
//! `consent.changed` event and the one confirmation SMS: a crash cannot
//! separate them, and the check right before `AT+CMGS` sees the opt-out at once.

use std::collections::BTreeMap;
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
    /// The fleet site where the change was made, for an entry that came from
    /// another gateway of the fleet (`[cluster]`); absent: made here.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub site: Option<String>,
}

/// What a contact record keeps besides consent: the CRM's view of the
/// person (name, its own id, tags, owning team, free fields for templates)
/// and the time zone quiet hours are counted in. Indexed by tag and external
/// id (`contacts.rs`); written only whole, through [`Store::set_profile`] or
/// an import, after [`ContactProfile::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactProfile {
    /// IANA zone ("America/Chicago") for quiet hours.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub time_zone: Option<String>,
    /// How a person calls the contact (`{{name}}` in templates).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    /// The CRM's id of the contact: unique among contacts, so a CRM finds
    /// its record from a text and the gateway's contact from its record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub external_id: Option<String>,
    /// Labels for campaigns (`recipients: {tag}`) and rules (`contact_tag`),
    /// in the order given, each once; exact strings (case matters).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub tags: Vec<String>,
    /// The team that owns the contact (a `[[conversation.team]]` id by
    /// convention; not checked, so a CRM may name a team before it exists).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub owner_team: Option<String>,
    /// Anything else the CRM keeps, for templates (`{{plan}}`): keys are
    /// placeholder names, values plain text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub fields: BTreeMap<String, String>,
}

/// The most tags a contact has, and the longest tag (characters).
pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 64;
/// The most fields a contact has, the longest key and value (characters).
pub const MAX_FIELDS: usize = 100;
pub const MAX_FIELD_KEY_CHARS: usize = 64;
pub const MAX_FIELD_VALUE_CHARS: usize = 1_000;
/// The longest name, external id and owner team (characters).
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EXTERNAL_ID_CHARS: usize = 200;
pub const MAX_TEAM_CHARS: usize = 64;

/// The profile's own names, which `fields` cannot take (a CSV column of
/// that name is the profile's, and `{{name}}` must mean one thing).
pub const PROFILE_COLUMNS: [&str; 6] = [
    "number",
    "name",
    "external_id",
    "tags",
    "time_zone",
    "owner_team",
];

/// Why a profile was not written: a stable code (the API's problem code)
/// and words naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ProfileRefused {
    /// `invalid_name`, `invalid_external_id`, `invalid_tags`,
    /// `invalid_owner_team`, `invalid_fields`, `invalid_time_zone`,
    /// `external_id_taken`.
    pub code: &'static str,
    pub detail: String,
}

impl ProfileRefused {
    fn new(code: &'static str, detail: String) -> ProfileRefused {
        ProfileRefused { code, detail }
    }
}

/// What writing a profile did.
#[must_use = "a refused profile was not written"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileWrite {
    /// The contact had no profile.
    Created,
    /// It had one, now replaced.
    Updated,
    /// Nothing was written.
    Refused(ProfileRefused),
}

/// A one-line text: no control characters (they would break index keys,
/// CSV rows and SMS templates).
fn is_line(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

fn check_line(
    what: &str,
    code: &'static str,
    value: &str,
    max: usize,
) -> std::result::Result<(), ProfileRefused> {
    if value.trim().is_empty() {
        return Err(ProfileRefused::new(
            code,
            format!("{what} is blank (leave it out or null to clear it)"),
        ));
    }
    if !is_line(value) {
        return Err(ProfileRefused::new(
            code,
            format!("{what} {value:?} has a control character"),
        ));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(ProfileRefused::new(
            code,
            format!("{what} is {chars} characters, at most {max}"),
        ));
    }
    Ok(())
}

/// A field key as a template placeholder reads it (`{{key}}`): the
/// renderer's own rule, so every key can be used in a template.
fn is_field_key(key: &str) -> bool {
    key.chars().count() <= MAX_FIELD_KEY_CHARS
        && crate::conversation::template::placeholders(&format!("{{{{{key}}}}}"))
            .is_ok_and(|names| names.len() == 1 && names[0] == key)
}

impl ContactProfile {
    /// Whether the profile may be stored: the limits above, a known time
    /// zone, tags without `;` (the import's separator) or control
    /// characters, field keys usable as `{{placeholders}}`.
    pub fn check(&self) -> std::result::Result<(), ProfileRefused> {
        if let Some(zone) = &self.time_zone {
            if zone.parse::<chrono_tz::Tz>().is_err() {
                return Err(ProfileRefused::new(
                    "invalid_time_zone",
                    format!("{zone:?} is not an IANA time zone (e.g. America/Chicago)"),
                ));
            }
        }
        if let Some(name) = &self.name {
            check_line("name", "invalid_name", name, MAX_NAME_CHARS)?;
        }
        if let Some(id) = &self.external_id {
            check_line(
                "external_id",
                "invalid_external_id",
                id,
                MAX_EXTERNAL_ID_CHARS,
            )?;
        }
        if let Some(team) = &self.owner_team {
            check_line("owner_team", "invalid_owner_team", team, MAX_TEAM_CHARS)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(ProfileRefused::new(
                "invalid_tags",
                format!("{} tags, at most {MAX_TAGS}", self.tags.len()),
            ));
        }
        for tag in &self.tags {
            check_line("a tag", "invalid_tags", tag, MAX_TAG_CHARS)?;
            if tag.contains(';') {
                return Err(ProfileRefused::new(
                    "invalid_tags",
                    format!("tag {tag:?} has a `;` (the import's tag separator)"),
                ));
            }
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(ProfileRefused::new(
                "invalid_fields",
                format!("{} fields, at most {MAX_FIELDS}", self.fields.len()),
            ));
        }
        for (key, value) in &self.fields {
            if !is_field_key(key) {
                return Err(ProfileRefused::new(
                    "invalid_fields",
                    format!(
                        "field {key:?}: a key is 1 to {MAX_FIELD_KEY_CHARS} letters, digits, `_`, `-` or `.`"
                    ),
                ));
            }
            if PROFILE_COLUMNS.contains(&key.as_str()) {
                return Err(ProfileRefused::new(
                    "invalid_fields",
                    format!("field {key:?} is the profile's own; set it at the top level"),
                ));
            }
            let chars = value.chars().count();
            if chars > MAX_FIELD_VALUE_CHARS {
                return Err(ProfileRefused::new(
                    "invalid_fields",
                    format!("field {key:?} is {chars} characters, at most {MAX_FIELD_VALUE_CHARS}"),
                ));
            }
            if value.contains('\0') {
                return Err(ProfileRefused::new(
                    "invalid_fields",
                    format!("field {key:?} has a NUL character"),
                ));
            }
        }
        Ok(())
    }

    /// Surrounding spaces trimmed from the one-line values, blank ones
    /// cleared, repeated tags dropped: what both the API and the import
    /// store.
    pub fn normalized(mut self) -> ContactProfile {
        let line = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        self.time_zone = line(self.time_zone);
        self.name = line(self.name);
        self.external_id = line(self.external_id);
        self.owner_team = line(self.owner_team);
        let mut tags: Vec<String> = Vec::with_capacity(self.tags.len());
        for tag in self.tags {
            let tag = tag.trim();
            if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
                tags.push(tag.to_string());
            }
        }
        self.tags = tags;
        self
    }

    /// The value of `key` for a template (`template::render`'s lookup):
    /// the profile's own names first (`number` is `contact`), then `fields`.
    pub fn value(&self, contact: &str, key: &str) -> Option<String> {
        match key {
            "number" => Some(contact.to_string()),
            "name" => self.name.clone(),
            "external_id" => self.external_id.clone(),
            "owner_team" => self.owner_team.clone(),
            "time_zone" => self.time_zone.clone(),
            "tags" => (!self.tags.is_empty()).then(|| self.tags.join(", ")),
            other => self.fields.get(other).cloned(),
        }
    }
}

/// The columns of one import row for one contact: a column the file has
/// replaces that value (an empty cell clears it); one it lacks is kept, and
/// so are field keys it lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// None: the file has no such column.
    pub time_zone: Option<Option<String>>,
    pub name: Option<Option<String>>,
    pub external_id: Option<Option<String>>,
    pub owner_team: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
    /// Set (Some) or remove (None, an empty cell) these keys.
    pub fields: BTreeMap<String, Option<String>>,
}

impl ProfileUpdate {
    /// `old` with this row's columns applied.
    pub fn apply(&self, mut old: ContactProfile) -> ContactProfile {
        if let Some(v) = &self.time_zone {
            old.time_zone = v.clone();
        }
        if let Some(v) = &self.name {
            old.name = v.clone();
        }
        if let Some(v) = &self.external_id {
            old.external_id = v.clone();
        }
        if let Some(v) = &self.owner_team {
            old.owner_team = v.clone();
        }
        if let Some(v) = &self.tags {
            old.tags = v.clone();
        }
        for (key, value) in &self.fields {
            match value {
                Some(v) => old.fields.insert(key.clone(), v.clone()),
                None => old.fields.remove(key),
            };
        }
        old
    }
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

/// What stands for an erased contact's number where a record is kept
/// (its ledger entries, a campaign's recipient list): `sha256:` and the
/// hash's hex digits.
pub(crate) fn erased_name(contact: &str) -> String {
    format!("{ERASED_PREFIX}{}", super::fleet::erased_key(contact))
}

/// The start of [`erased_name`]'s names (never that of a number).
pub const ERASED_PREFIX: &str = "sha256:";

/// The tombstone key of an erased contact: SHA-256 of the number.
pub(super) fn tombstone_key(contact: &str) -> Vec<u8> {
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
        // The contact's tombstone stands for an opt-out of every number (it
        // is read for a number without a record of its own): a per-number
        // change leaves it alone (an erasure keeps one for it instead).
        if number.is_none() {
            if entry.status == ConsentStatus::OptedOut {
                self.tombstones.insert(tombstone_key(&entry.contact), &[])?;
            } else {
                self.tombstones.remove(tombstone_key(&entry.contact))?;
            }
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
                    site: None,
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

    /// Apply a consent change made at another gateway of the fleet (`entry`
    /// with its `site`; `number`: its per-number scope): written with its
    /// ledger entry and `consent.changed` event like a change made here,
    /// unless this store already holds a change as recent or more (the
    /// same entry delivered again, or a later change here); then messages
    /// waiting for a contact who opted out are cancelled
    /// (`recipient_opted_out`). Returns the new record, or None when
    /// nothing changed.
    pub async fn apply_remote_consent(
        &self,
        entry: LedgerEntry,
        number: Option<&str>,
    ) -> Result<Option<ConsentRecord>> {
        let i = &self.inner;
        // A change from before the contact was erased here (the bucket's
        // history comes again at each start of its watch): not stored
        // again under the number; an opt-out only makes sure of the
        // tombstone.
        if self
            .erased_at(&entry.contact)?
            .is_some_and(|erased| entry.at <= erased)
        {
            if entry.status == ConsentStatus::OptedOut {
                i.tombstones.insert(tombstone_key(&entry.contact), &[])?;
                self.sync().await?;
            }
            return Ok(None);
        }
        let out = (&i.consent, &i.ledger, &i.tombstones, &i.events)
            .transaction(|(consent, ledger, tombstones, events)| {
                let previous = read_record(consent, tombstones, &entry.contact, number)?;
                if previous.updated_at.is_some_and(|at| at >= entry.at) {
                    return Ok(None);
                }
                let trees = ConsentTrees {
                    consent,
                    ledger,
                    tombstones,
                    events,
                };
                let (record, _, event) =
                    trees.change(&previous, entry.clone(), entry.evidence.clone(), number)?;
                Ok(Some((record, event)))
            })
            .map_err(unwrap_tx)?;
        let Some((record, event)) = out else {
            return Ok(None);
        };
        self.sync().await?;
        if let Some(event) = event {
            self.events_committed(&[event]);
        }
        if record.status == ConsentStatus::OptedOut {
            self.fail_waiting_to(
                &record.contact,
                "recipient_opted_out",
                "the recipient opted out (STOP) at another gateway of the fleet",
            )
            .await?;
        }
        Ok(Some(record))
    }

    /// Fail every waiting (queued, scheduled, deferred) outbound message to
    /// `contact` with `code`; returns their ids. A copy another gateway
    /// accepted and this one took from the fleet's work queue goes back to
    /// the fleet instead (never sent here, no event): the accepting gateway
    /// fails its own record and reports it, so the fleet reports it once.
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
            // Another gateway's message: a copy taken here goes back (that
            // gateway fails it and reports it), any other copy is left for
            // that gateway's record to settle.
            if self.get(&id)?.is_some_and(|m| m.fleet_copy) {
                self.give_back_opted_out(&id).await?;
                continue;
            }
            let changed = self
                .update(&id, |m| {
                    if !m.status.is_waiting() || m.exempt.is_some() || m.fleet_copy {
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

    /// Erase a contact: messages, thread summary, profile and consent record
    /// go; an opt-out survives as a hashed tombstone, and the contact's ledger
    /// entries are kept under the hash with the number and message links
    /// removed; the conversation (thread record, notes, timeline) goes too.
    /// In a fleet the erasure is announced ([`super::FLEET_CONTACT_ERASED`])
    /// and every other gateway erases the contact as well. Returns how many
    /// messages were erased.
    pub async fn erase_contact(&self, contact: &str) -> Result<usize> {
        self.erase(contact, Utc::now(), true).await
    }

    /// Another gateway's erasure of `contact` (made there `at`): the same
    /// here, not announced again.
    pub async fn erase_remote_contact(&self, contact: &str, at: DateTime<Utc>) -> Result<usize> {
        self.erase(contact, at, false).await
    }

    async fn erase(&self, contact: &str, at: DateTime<Utc>, announce: bool) -> Result<usize> {
        // No contact (another gateway's malformed erasure): nothing to do.
        if contact.is_empty() {
            return Ok(0);
        }
        let _one = self.inner.erasing.lock().await;
        // Another gateway's erasure heard again (its event and the fleet's
        // list of erasures both tell of it): done once, or it would erase
        // what came after it.
        if !announce && self.erasure_applied(&tombstone_key(contact), at)? {
            return Ok(0);
        }
        // First: what is still on its way about the contact from before
        // the erasure (another gateway's record, a campaign batch composed
        // before it) is refused from now on.
        self.mark_erased(contact, at)?;
        let prefix = keys::thread_prefix(contact);
        // Another gateway's erasure, applied late here: what was made here
        // after it is a new conversation's, kept (its messages, timeline
        // items, consent and ledger entries, and then its summary). One made
        // here erases all.
        let kept_after = (!announce).then_some(at);
        let after = |made: Option<DateTime<Utc>>| made.zip(kept_after).is_some_and(|(m, a)| m > a);
        let mut message_keys = Vec::new();
        let mut kept_messages = 0;
        for entry in self.inner.threads.scan_prefix(&prefix) {
            let (key, _) = entry?;
            if after(keys::time_of(&key[prefix.len()..])) {
                kept_messages += 1;
                continue;
            }
            message_keys.push(key.to_vec());
        }
        let hashed = erased_name(contact);
        let mut ledger_keys: Vec<(Vec<u8>, LedgerEntry)> = self
            .inner
            .ledger
            .scan_prefix(&prefix)
            .map(|e| {
                let (k, v) = e?;
                Ok((k.to_vec(), from_json(&k, &v)?))
            })
            .collect::<Result<_>>()?;
        ledger_keys.retain(|(_, entry)| !after(Some(entry.at)));
        // Opted out of every number, or (per-number scope) of one.
        let mut opted_out = self.consent(contact, None)?.status == ConsentStatus::OptedOut;
        // The consent records that go (one made after the erasure stays),
        // and the gateway numbers with a consent of their own (`scope =
        // "number"`): a fleet's bucket has a key for each.
        let mut consent_keys = Vec::new();
        let key = consent_key(contact, None);
        if let Some(raw) = self.inner.consent.get(&key)? {
            if !after(from_json::<ConsentRecord>(&key, &raw)?.updated_at) {
                consent_keys.push(key);
            }
        }
        let mut numbers = Vec::new();
        for entry in self.inner.consent.scan_prefix(&prefix) {
            let (key, raw) = entry?;
            let record = from_json::<ConsentRecord>(&key, &raw)?;
            opted_out |= record.status == ConsentStatus::OptedOut;
            numbers.push(
                String::from_utf8_lossy(key.get(prefix.len()..).unwrap_or_default()).into_owned(),
            );
            if !after(record.updated_at) {
                consent_keys.push(key.to_vec());
            }
        }
        // In a fleet the other gateways hear of it even if this erasure
        // stops half-way.
        if self.fleet_threads() && announce {
            let data = serde_json::json!({
                "contact": contact,
                "erased_at": at,
                "opt_out_kept": opted_out,
                "numbers": numbers,
            });
            self.emit(super::FLEET_CONTACT_ERASED, data).await?;
        }
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
        // The summary stays with messages made after the erasure (it is
        // theirs: the inbox lists their thread).
        if kept_messages == 0 {
            i.contacts
                .remove(keys::contact_hash_key(keys::contact_hash(contact), contact))?;
            if let Some(raw) = i.contacts.remove(contact.as_bytes())? {
                if let Ok(summary) = from_json::<super::ThreadSummary>(contact.as_bytes(), &raw) {
                    i.recent.remove(keys::recent(summary.last_at, contact))?;
                }
            }
        }
        for entry in i.sends.scan_prefix(&prefix) {
            let (key, _) = entry?;
            i.sends.remove(key)?;
        }
        self.remove_profile(contact)?;
        self.erase_conversation(contact, kept_after)?;
        let (who, name) = (contact.to_string(), hashed.clone());
        self.blocking(move |store| {
            store.erase_campaign_recipient(&who, &name)?;
            // The events first: one not yet counted would count the
            // contact again.
            store.erase_events_of(&who)?;
            store.erase_metric_contact(&who)
        })
        .await?;
        i.sticky.remove(contact.as_bytes())?;
        // The replica of the fleet's sticky bucket (empty without a fleet).
        self.aux_tree(Store::FLEET_STICKY)?
            .remove(crate::fleet::consent_key(contact, None))?;
        // The tombstone before the records go: a crash in between keeps
        // the opt-out.
        if opted_out {
            i.tombstones.insert(tombstone_key(contact), &[])?;
        }
        for key in consent_keys {
            i.consent.remove(key)?;
        }
        self.erasure_done(contact, at)?;
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
