//! Message history: messages that have settled (a final status, unchanged for
//! a while) move out of sled into the append-only history files
//! (`history_log.rs`), and sled keeps only packed indexes of (created time,
//! file location) entries (`packed.rs`): one per contact (threads) and one
//! of all messages (the message list).
//!
//! Why: sled 0.34 keeps some 200-300 bytes of memory per page (a leaf holds
//! at most 16 entries) and its LRU admits up to 256 x 64 pages beyond the
//! configured cache, so a million records in sled cost well over 100 MB of
//! RSS whatever `cache_mb` says. The index packs 128 entries of 16 bytes per
//! sled value; the records are read with `pread`, through the OS page cache.
//!
//! Moving a batch: the records are appended to the history files and
//! fsync'd first; then one sled transaction removes them from `messages` and
//! `threads` and adds their index entries, but only if none of them changed
//! in between (otherwise the frames just written are zeroed). A crash
//! between the two leaves unreferenced frames in the files and the messages
//! still live: nothing is lost or doubled.
//!
//! Readers merge sled's live messages with the history in one order (a
//! thread's, or the ids'); a key in both is returned once, and a read that
//! overlapped a move runs again (`Store::consistent`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sled::Transactional;

use super::history_log::{HistoryError, Location};
use super::keys;
use super::packed::{self, BlockWrite, Entry, PackedError, PackedSet};
use super::query::ThreadSummary;
use super::records::{Direction, Message, MessageStatus};
use super::{from_json, unwrap_tx, Result, Store, StoreError};

/// Largest history file; offsets are 32-bit.
pub(crate) const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Messages moved per transaction.
pub const ARCHIVE_BATCH: usize = 1000;

impl From<HistoryError> for StoreError {
    fn from(e: HistoryError) -> StoreError {
        match e {
            HistoryError::Io(e) => StoreError::Durability(format!("history files: {e}")),
            other => StoreError::Corrupt {
                key: "history".into(),
                reason: other.to_string(),
            },
        }
    }
}

impl From<PackedError> for StoreError {
    fn from(e: PackedError) -> StoreError {
        match e {
            PackedError::Sled(e) => StoreError::Sled(e),
            PackedError::Corrupt { key, reason } => StoreError::Corrupt { key, reason },
        }
    }
}

/// An index entry: created time (microseconds, big-endian: sorts as time),
/// then where the record is.
pub(super) fn entry(created_at: DateTime<Utc>, at: Location) -> Entry {
    let mut e = [0u8; 16];
    e[..8].copy_from_slice(&keys::time_key(created_at));
    e[8..].copy_from_slice(&at.to_bytes());
    e
}

pub(super) fn entry_micros(e: &Entry) -> u64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&e[..8]);
    u64::from_be_bytes(t)
}

pub(super) fn entry_location(e: &Entry) -> Location {
    let mut at = [0u8; 8];
    at.copy_from_slice(&e[8..]);
    Location::from_bytes(at)
}

/// The smallest entry at time `micros`: a bound for index ranges.
pub(super) fn time_bound(micros: u64) -> Entry {
    let mut e = [0u8; 16];
    e[..8].copy_from_slice(&micros.to_be_bytes());
    e
}

/// A message leaves sled once nothing will change it any more and it has
/// been quiet for `after`: a final status, or `sent` without status reports.
fn settled(m: &Message, cutoff: DateTime<Utc>) -> bool {
    let done = m.status.is_final() || (m.status == MessageStatus::Sent && !m.status_report);
    done && m.updated_at <= cutoff
}

/// `history_files` key of the time up to which retention has blanked
/// archived bodies (not four bytes long: never taken for a file number).
const BLANKED_THROUGH: &[u8] = b"blanked_through";

/// `history_files` key of where frames not yet referenced by the index
/// begin: set (durably) before an append, removed with the transaction that
/// references them. Found at open, everything from there on is zeroed: a
/// crash mid-move leaves no message text the index cannot reach.
pub(super) const PENDING: &[u8] = b"pending_frames";

/// `history_files` key of frames the index no longer references and that
/// are still to be zeroed (retention's old copies), set in the transaction
/// that drops them from the index.
const TO_ERASE: &[u8] = b"to_erase";

/// How far back each retention pass looks again before the last one's end.
const RETENTION_SLACK_MICROS: u64 = 7 * 24 * 3600 * 1_000_000;

/// Prefix of the global index of archived messages (all contacts, by
/// created time), next to the per-contact ones (a contact and 0x00): no
/// contact starts with 0xFF (numbers are ASCII, names UTF-8).
pub(super) const GLOBAL: &[u8] = b"\xff\x00";

impl Store {
    /// Move up to `max` settled messages, oldest first, whose last change is
    /// older than `after`, to the history; returns how many moved. Blocking
    /// (file I/O and an fsync); the sled side is durable with the next flush.
    pub fn archive_settled(
        &self,
        now: DateTime<Utc>,
        after: chrono::Duration,
        max: usize,
    ) -> Result<usize> {
        let i = &self.inner;
        let _guard = self.history_writer()?;
        let cutoff = now - after;
        let mut picked: Vec<(sled::IVec, sled::IVec, Message)> = Vec::new();
        for item in i.messages.iter() {
            let (id, raw) = item?;
            let message: Message = match from_json(&id, &raw) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "history: leaving an unreadable record in place");
                    continue;
                }
            };
            if settled(&message, cutoff) {
                picked.push((id, raw, message));
                if picked.len() == max {
                    break;
                }
            }
        }
        if picked.is_empty() {
            return Ok(0);
        }
        // Retention applies on the way in too: a message created before the
        // cutoff that settles only now (scheduled far ahead, resent late)
        // goes in without its body, where retention's own passes may not
        // look again.
        let retention = i.retention_days.load(std::sync::atomic::Ordering::Relaxed);
        let blank_before =
            (retention > 0).then(|| now - chrono::Duration::days(i64::from(retention)));
        let mut blanked: Vec<Option<Vec<u8>>> = Vec::with_capacity(picked.len());
        for (_, _, m) in &picked {
            blanked.push(match blank_before {
                Some(cutoff) if m.created_at < cutoff && !m.body.is_empty() => {
                    let mut copy = m.clone();
                    copy.body.clear();
                    Some(serde_json::to_vec(&copy).map_err(|e| StoreError::Corrupt {
                        key: m.id.clone(),
                        reason: e.to_string(),
                    })?)
                }
                _ => None,
            });
        }
        let records: Vec<&[u8]> = picked
            .iter()
            .zip(&blanked)
            .map(|((_, raw, _), blank)| blank.as_deref().unwrap_or(raw.as_ref()))
            .collect();
        self.mark_pending()?;
        let locations = i.history_log.append(&records)?;

        let mut by_contact: BTreeMap<&str, Vec<Entry>> = BTreeMap::new();
        let mut all: Vec<Entry> = Vec::with_capacity(picked.len());
        for ((_, _, m), at) in picked.iter().zip(&locations) {
            let e = entry(m.created_at, *at);
            by_contact.entry(m.contact.as_str()).or_default().push(e);
            all.push(e);
        }
        let global = self.history_set(GLOBAL);
        let mut writes: Vec<BlockWrite> = global.plan_insert(&all)?;
        for (contact, entries) in &by_contact {
            let prefix = keys::thread_prefix(contact);
            let set = self.history_set(&prefix);
            writes.extend(set.plan_insert(entries)?);
        }
        let hash_keys: Vec<Vec<u8>> = by_contact
            .keys()
            .map(|c| keys::contact_hash_key(keys::contact_hash(c), c))
            .collect();
        let moved = (
            &i.messages,
            &i.threads,
            &i.history,
            &i.history_files,
            &i.contacts,
        )
            .transaction(|(messages, threads, history, files, contacts)| {
                // Only if nothing changed since the records were read:
                // otherwise the frames just written stay unreferenced and the
                // next pass takes the new state.
                for (id, raw, _) in &picked {
                    if messages.get(id)?.as_ref() != Some(raw) {
                        return Ok(false);
                    }
                }
                for (id, _, m) in &picked {
                    messages.remove(id.clone())?;
                    threads.remove(keys::thread(&m.contact, m.created_at, &m.id))?;
                }
                packed::apply_tx(history, &writes)?;
                // Archived messages are found by id through their contact's
                // hash (`archived_message`): written with the first move.
                for key in &hash_keys {
                    if contacts.get(key)?.is_none() {
                        contacts.insert(key.as_slice(), &[])?;
                    }
                }
                files.remove(PENDING)?;
                Ok(true)
            })
            .map_err(unwrap_tx)?;
        if !moved {
            // Unreferenced copies: zero them now rather than leave message
            // text in the files (erasure would not find them).
            i.history_log.erase(&locations)?;
            i.history_files.remove(PENDING)?;
            return Ok(0);
        }
        i.history_moves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(picked.len())
    }

    /// Retention in days (0: keep bodies), applied to messages created
    /// before the cutoff as they move to the history.
    pub fn set_retention_days(&self, days: Option<u32>) {
        self.inner
            .retention_days
            .store(days.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }

    /// Changes whenever messages have moved into or within the history.
    pub(crate) fn history_generation(&self) -> u64 {
        self.inner
            .history_moves
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Move every settled message quiet for `after` (batch by batch), then
    /// wait until the moves are durable. Returns how many moved.
    pub async fn archive_all_settled(&self, after: chrono::Duration) -> Result<usize> {
        let mut total = 0;
        loop {
            let moved = self
                .blocking(move |store| store.archive_settled(Utc::now(), after, ARCHIVE_BATCH))
                .await?;
            total += moved;
            if moved < ARCHIVE_BATCH {
                break;
            }
        }
        if total > 0 {
            self.sync().await?;
        }
        Ok(total)
    }

    /// The one writer of the history index (plans read the tree).
    pub(crate) fn history_writer(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.inner
            .history_lock
            .lock()
            .map_err(|_| StoreError::Durability("history lock poisoned".into()))
    }

    /// The packed index under `prefix` (a contact's, or [`GLOBAL`]).
    pub(super) fn history_set<'a>(&'a self, prefix: &'a [u8]) -> PackedSet<'a> {
        PackedSet {
            tree: &self.inner.history,
            prefix,
        }
    }

    /// Note (durably) where the frames of the next append begin. A note left
    /// by a write that failed (an I/O error, a corrupt index block) is dealt
    /// with first, as at open: every append goes through here, so what lies
    /// past an old note is unreferenced.
    pub(super) fn mark_pending(&self) -> Result<()> {
        let i = &self.inner;
        self.recover_history()?;
        i.history_files
            .insert(PENDING, &i.history_log.end().to_bytes())?;
        i.db.flush()?;
        Ok(())
    }

    /// At open (and before an append after a failed one): zero frames an
    /// interrupted move, retention pass or compaction left unreferenced (see
    /// [`PENDING`], [`TO_ERASE`]), and remove a file a compaction replaced
    /// (`compact.rs`).
    pub(crate) fn recover_history(&self) -> Result<()> {
        let i = &self.inner;
        let location = |raw: &[u8]| <[u8; 8]>::try_from(raw).ok().map(Location::from_bytes);
        let pending = i.history_files.get(PENDING)?;
        let listed = i.history_files.get(TO_ERASE)?;
        // A compaction cut short after switching the index: its old file goes.
        self.remove_compacted()?;
        if pending.is_none() && listed.is_none() {
            return Ok(());
        }
        let mut zero = Vec::new();
        if let Some(from) = pending.and_then(|v| location(&v)) {
            for item in i.history_log.iter_rev_files(None, |_| true) {
                match item {
                    Ok((at, _)) if at >= from => zero.push(at),
                    Ok(_) => break,
                    // A damaged frame is reported on read; keep walking back.
                    Err(e) => tracing::warn!(error = %e, "history: reading frames after a crash"),
                }
            }
        }
        if let Some(raw) = listed {
            zero.extend(raw.chunks(8).filter_map(location));
        }
        if !zero.is_empty() {
            tracing::warn!(
                frames = zero.len(),
                "history: zeroing frames an interrupted write left unreferenced"
            );
            i.history_log.erase(&zero)?;
        }
        i.history_files.remove(PENDING)?;
        i.history_files.remove(TO_ERASE)?;
        i.db.flush()?;
        Ok(())
    }

    /// Read one archived record; None when it was erased or its file removed.
    fn archived_record(&self, at: Location, read_through: Option<u64>) -> Result<Option<Message>> {
        let raw = match self.inner.history_log.read(at) {
            Ok(raw) => raw,
            Err(HistoryError::Erased { .. } | HistoryError::MissingFile { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut m: Message = from_json(format!("history {at:?}").as_bytes(), &raw)?;
        mark_read(&mut m, read_through);
        Ok(Some(m))
    }

    fn read_through(&self, contact: &str) -> Result<Option<u64>> {
        Ok(self
            .thread_summary(contact)?
            .and_then(|s: ThreadSummary| s.read_through)
            .map(|t| u64::from_be_bytes(keys::time_key(t))))
    }

    /// An archived message by id (the id names its contact's hash and its
    /// creation millisecond).
    pub(crate) fn archived_message(&self, id: &str) -> Result<Option<Message>> {
        let Some((ms, hash)) = keys::parse_message_id(id) else {
            return Ok(None);
        };
        let prefix = keys::contact_hash_prefix(hash);
        for item in self.inner.contacts.scan_prefix(&prefix) {
            let (key, _) = item?;
            let contact = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let index = keys::thread_prefix(&contact);
            let set = self.history_set(&index);
            let from = time_bound(ms.saturating_mul(1000));
            let to = time_bound(ms.saturating_add(1).saturating_mul(1000));
            let read_through = self.read_through(&contact)?;
            for e in set.range(&from, &to) {
                if let Some(m) = self.archived_record(entry_location(&e?), read_through)? {
                    if m.id == id {
                        return Ok(Some(m));
                    }
                }
            }
        }
        Ok(None)
    }

    /// A contact's messages, newest first, strictly before the thread key
    /// `before`: live ones from sled merged with archived ones. Items are
    /// (thread key, message).
    pub(crate) fn thread_rev<'a>(
        &'a self,
        contact: &str,
        before: Option<Vec<u8>>,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, Message)>> + 'a> {
        let prefix = keys::thread_prefix(contact);
        let mut end = prefix.clone();
        end.push(0xFF);
        let end = before.clone().unwrap_or(end);
        let live_prefix = prefix.len();
        let live = self
            .inner
            .threads
            .range(prefix.clone()..end)
            .rev()
            .filter_map(move |item| {
                let (key, _) = match item {
                    Ok(kv) => kv,
                    Err(e) => return Some(Err(StoreError::from(e))),
                };
                let id = &key[live_prefix + 8..];
                match self.inner.messages.get(id) {
                    Ok(Some(raw)) => {
                        Some(from_json::<Message>(id, &raw).map(|m| (key.to_vec(), m)))
                    }
                    // Moved to the history since the thread key was read (or
                    // erased): look there, so a move is never a gap.
                    Ok(None) => match self.archived_message(&String::from_utf8_lossy(id)) {
                        Ok(Some(m)) => Some(Ok((key.to_vec(), m))),
                        Ok(None) => None,
                        Err(e) => Some(Err(e)),
                    },
                    Err(e) => Some(Err(e.into())),
                }
            });
        let read_through = self.read_through(contact)?;
        let bound = before
            .as_ref()
            .and_then(|k| k.get(live_prefix..live_prefix + 8))
            .and_then(|t| <[u8; 8]>::try_from(t).ok())
            .map(|t| time_bound(u64::from_be_bytes(t).saturating_add(1)));
        let archived = ArchivedRev {
            store: self,
            prefix: prefix.clone(),
            order: Order::Thread,
            bound,
            before,
            read_through: BTreeMap::from([(contact.to_string(), read_through)]),
            pending: Vec::new(),
            done: false,
        };
        Ok(merge_desc(live, archived))
    }

    /// Archived messages of every contact, newest first (by id: time, then
    /// the contact's hash and salt), strictly before the id `before`; items
    /// are (id, message).
    pub(crate) fn archived_by_id_rev(
        &self,
        before: Option<Vec<u8>>,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Message)>> + '_ {
        let bound = before
            .as_ref()
            .and_then(|id| keys::parse_message_id(&String::from_utf8_lossy(id)))
            .map(|(ms, _)| time_bound(ms.saturating_add(1).saturating_mul(1000)));
        ArchivedRev {
            store: self,
            prefix: GLOBAL.to_vec(),
            order: Order::Id,
            bound,
            before,
            read_through: BTreeMap::new(),
            pending: Vec::new(),
            done: false,
        }
    }

    /// Erase a contact's archived messages: their frames are zeroed on disk
    /// and their index goes. Returns how many there were.
    pub(crate) fn erase_history(&self, contact: &str) -> Result<usize> {
        let i = &self.inner;
        let _guard = self.history_writer()?;
        let prefix = keys::thread_prefix(contact);
        let set = self.history_set(&prefix);
        let entries: Vec<Entry> = set
            .rev_before(None)
            .collect::<std::result::Result<_, _>>()?;
        let locations: Vec<Location> = entries.iter().map(entry_location).collect();
        i.history_log.erase(&locations)?;
        let mut writes = self.history_set(GLOBAL).plan_remove(&entries)?;
        writes.extend(set.plan_clear()?);
        packed::apply(&i.history, &writes)?;
        i.history_moves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(locations.len())
    }

    /// Retention for archived messages: blank the bodies of those created
    /// before `before` (a new frame without the body replaces the old one,
    /// which is zeroed). Returns how many were blanked.
    pub(crate) fn blank_history_before(&self, before: DateTime<Utc>) -> Result<usize> {
        let i = &self.inner;
        let contacts: Vec<String> = i
            .recent
            .iter()
            .keys()
            .map(|k| k.map(|k| String::from_utf8_lossy(&k[8.min(k.len())..]).into_owned()))
            .collect::<std::result::Result<_, _>>()?;
        let until = time_bound(u64::from_be_bytes(keys::time_key(before)));
        // Each pass looks only at what the last one did not cover (less a
        // week, for messages that settled late and were archived with an old
        // creation time), not at the whole history every hour.
        let from = i
            .history_files
            .get(BLANKED_THROUGH)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .map_or(0, |t| t.saturating_sub(RETENTION_SLACK_MICROS));
        let from = time_bound(from);
        let mut blanked = 0;
        for contact in contacts {
            let _guard = self.history_writer()?;
            let prefix = keys::thread_prefix(&contact);
            let set = self.history_set(&prefix);
            let mut old = Vec::new();
            let mut blank = Vec::new();
            for e in set.range(&from, &until) {
                let e = e?;
                let Some(mut m) = self.archived_record(entry_location(&e), None)? else {
                    continue;
                };
                if m.body.is_empty() {
                    continue;
                }
                m.body.clear();
                old.push(e);
                blank.push(serde_json::to_vec(&m).map_err(|err| StoreError::Corrupt {
                    key: m.id.clone(),
                    reason: err.to_string(),
                })?);
            }
            if old.is_empty() {
                continue;
            }
            let records: Vec<&[u8]> = blank.iter().map(Vec::as_slice).collect();
            self.mark_pending()?;
            let locations = i.history_log.append(&records)?;
            // The contact's whole set with the new locations, written at once
            // with the list of old frames still to zero.
            let moved: BTreeMap<Entry, Entry> = old
                .iter()
                .zip(&locations)
                .map(|(e, at)| {
                    let mut n = *e;
                    n[8..].copy_from_slice(&at.to_bytes());
                    (*e, n)
                })
                .collect();
            let all: Vec<Entry> = set
                .range(&time_bound(0), &time_bound(u64::MAX))
                .map(|e| e.map(|e| moved.get(&e).copied().unwrap_or(e)))
                .collect::<std::result::Result<_, _>>()?;
            let mut writes = set.plan_rebuild(&all)?;
            let new_entries: Vec<Entry> = moved.values().copied().collect();
            writes.extend(self.history_set(GLOBAL).plan_replace(&old, &new_entries)?);
            let gone: Vec<Location> = old.iter().map(entry_location).collect();
            let gone_bytes: Vec<u8> = gone.iter().flat_map(|at| at.to_bytes()).collect();
            (&i.history, &i.history_files)
                .transaction(|(history, files)| {
                    packed::apply_tx(history, &writes)?;
                    files.insert(TO_ERASE, gone_bytes.as_slice())?;
                    files.remove(PENDING)?;
                    Ok(())
                })
                .map_err(unwrap_tx)?;
            i.history_moves
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // The index must point at the new copies on disk before the old
            // ones are zeroed: a crash in between would otherwise leave an
            // index pointing at zeroed frames and the copies erased at open.
            i.db.flush()?;
            i.history_log.erase(&gone)?;
            i.history_files.remove(TO_ERASE)?;
            blanked += old.len();
        }
        i.history_files.insert(BLANKED_THROUGH, &until[..8])?;
        Ok(blanked)
    }
}

/// Archived messages of one contact, newest first, read a block's worth at
/// a time from the packed index.
struct ArchivedRev<'a> {
    store: &'a Store,
    /// The packed set read: a contact's, or [`GLOBAL`].
    prefix: Vec<u8>,
    order: Order,
    /// Index entries below this (time only; `before` settles equal times).
    bound: Option<Entry>,
    /// Keys at or above this are excluded.
    before: Option<Vec<u8>>,
    /// Read marks by contact (the summary's `read_through`), as looked up.
    read_through: BTreeMap<String, Option<u64>>,
    /// Messages read, not yet returned, ascending by key (popped from the
    /// end).
    pending: Vec<(Vec<u8>, Message)>,
    done: bool,
}

/// What an [`ArchivedRev`] sorts by, like the live index it is merged with.
#[derive(Clone, Copy)]
enum Order {
    /// A thread's: (created microsecond, id).
    Thread,
    /// The message list's: the id (created millisecond, hash, salt).
    Id,
}

impl Order {
    fn key(self, m: &Message) -> Vec<u8> {
        match self {
            Order::Thread => keys::thread(&m.contact, m.created_at, &m.id),
            Order::Id => m.id.as_bytes().to_vec(),
        }
    }

    /// Entries whose order among themselves only their records can tell.
    fn same_run(self, a: &Entry, b: &Entry) -> bool {
        match self {
            Order::Thread => a[..8] == b[..8],
            Order::Id => entry_micros(a) / 1000 == entry_micros(b) / 1000,
        }
    }
}

/// Index entries read per refill (more when the last ones share a run).
const REFILL: usize = 64;

impl ArchivedRev<'_> {
    /// Read the next entries down and their records. The index sorts by
    /// (time, location), which is not quite the order of the keys (a STOP
    /// and its confirmation share their time), so a refill never stops
    /// inside a run of entries only the records can order, and sorts what it
    /// read by key.
    fn refill(&mut self) -> Result<()> {
        let set = self.store.history_set(&self.prefix);
        let mut got: Vec<Entry> = Vec::with_capacity(REFILL);
        let mut entries = set.rev_before(self.bound.as_ref()).peekable();
        while let Some(e) = entries.next() {
            let e = e?;
            got.push(e);
            if got.len() >= REFILL {
                let same =
                    matches!(entries.peek(), Some(Ok(next)) if self.order.same_run(next, &e));
                if !same {
                    break;
                }
            }
        }
        if entries.peek().is_none() {
            self.done = true;
        }
        if let Some(last) = got.last() {
            self.bound = Some(*last);
        }
        let mut read = Vec::with_capacity(got.len());
        for e in &got {
            let Some(mut m) = self.store.archived_record(entry_location(e), None)? else {
                continue;
            };
            let key = self.order.key(&m);
            if self.before.as_ref().is_some_and(|b| key >= *b) {
                continue;
            }
            if m.direction == Direction::Inbound {
                let through = match self.read_through.get(&m.contact) {
                    Some(t) => *t,
                    None => {
                        let t = self.store.read_through(&m.contact)?;
                        self.read_through.insert(m.contact.clone(), t);
                        t
                    }
                };
                mark_read(&mut m, through);
            }
            read.push((key, m));
        }
        read.sort_by(|x, y| x.0.cmp(&y.0));
        self.pending = read;
        Ok(())
    }
}

/// Read marks of archived messages live in the thread summary.
fn mark_read(m: &mut Message, read_through: Option<u64>) {
    if m.direction == Direction::Inbound
        && read_through.is_some_and(|t| keys::time_key(m.created_at) <= t.to_be_bytes())
    {
        m.read = true;
    }
}

impl Iterator for ArchivedRev<'_> {
    type Item = Result<(Vec<u8>, Message)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// Two descending streams of (key, message) merged into one; a key in both
/// (a message moved while being read) comes out once.
pub(crate) fn merge_desc<A, B>(a: A, b: B) -> impl Iterator<Item = Result<(Vec<u8>, Message)>>
where
    A: Iterator<Item = Result<(Vec<u8>, Message)>>,
    B: Iterator<Item = Result<(Vec<u8>, Message)>>,
{
    Merge {
        a: a.peekable(),
        b: b.peekable(),
    }
}

/// See [`merge_desc`].
struct Merge<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = Result<(Vec<u8>, Message)>>,
    B: Iterator<Item = Result<(Vec<u8>, Message)>>,
{
    type Item = Result<(Vec<u8>, Message)>;

    fn next(&mut self) -> Option<Self::Item> {
        enum Take {
            A,
            B,
            Both,
        }
        let take = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(_), None) => Take::A,
            (None, Some(_)) | (_, Some(Err(_))) => Take::B,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => match ka.cmp(kb) {
                std::cmp::Ordering::Equal => Take::Both,
                std::cmp::Ordering::Greater => Take::A,
                std::cmp::Ordering::Less => Take::B,
            },
        };
        match take {
            Take::A => self.a.next(),
            Take::B => self.b.next(),
            Take::Both => {
                self.b.next();
                self.a.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::super::test_support::TempStore;
    use super::super::*;
    use super::{PENDING, TO_ERASE};

    const CONTACT: &str = "+15551234000";

    /// `n` messages to CONTACT: even ones delivered (settled), odd ones
    /// left queued; every third inbound instead, received.
    async fn thread_of(store: &Store, n: usize) -> Vec<Message> {
        let start = Utc::now() - Duration::hours(2);
        let mut out = Vec::new();
        for k in 0..n {
            let at = start + Duration::seconds(k as i64);
            let mut m = store.new_outbound(
                "",
                CONTACT,
                &format!("body {k}"),
                1,
                "gsm7",
                false,
                None,
                at,
            );
            if k % 3 == 2 {
                m.direction = Direction::Inbound;
                m.from = CONTACT.into();
                m.history.clear();
                m.part_status.clear();
                m.transition(at, MessageStatus::Received);
            } else if k % 2 == 0 {
                m.transition(at, MessageStatus::Sending);
                m.transition(at, MessageStatus::Sent);
                m.transition(at, MessageStatus::Delivered);
            }
            m.updated_at = at;
            assert!(matches!(
                store.accept(m.clone(), None).await.unwrap(),
                Accepted::New(_)
            ));
            out.push(m);
        }
        out
    }

    fn live(store: &Store, id: &str) -> bool {
        store.inner.messages.get(id.as_bytes()).unwrap().is_some()
    }

    /// Every page of the thread, oldest first overall, by following cursors.
    fn whole_thread(store: &Store, page: usize) -> Vec<Message> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = store.thread(CONTACT, cursor.as_deref(), page).unwrap();
            pages.push(p.items);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        pages.into_iter().rev().flatten().collect()
    }

    #[tokio::test]
    async fn settled_messages_move_and_read_back_the_same() {
        let mut t = TempStore::new();
        let sent = thread_of(&t.store, 40).await;
        let before: Vec<Message> = whole_thread(&t.store, 7);
        assert_eq!(before.len(), 40);

        // Not quiet long enough: nothing moves.
        assert_eq!(
            t.store
                .archive_settled(Utc::now(), Duration::hours(3), 1000)
                .unwrap(),
            0
        );
        // Batches of 5 until done.
        let mut moved = 0;
        loop {
            let n = t
                .store
                .archive_settled(Utc::now(), Duration::minutes(10), 5)
                .unwrap();
            moved += n;
            if n == 0 {
                break;
            }
        }
        let settled: Vec<&Message> = sent.iter().filter(|m| m.status.is_final()).collect();
        assert_eq!(moved, settled.len());
        assert!(moved > 20 && moved < 40);
        for m in &sent {
            assert_eq!(live(&t.store, &m.id), !m.status.is_final(), "{}", m.id);
            assert_eq!(t.store.get(&m.id).unwrap().as_ref(), Some(m));
        }
        // The same thread, whatever the page size, live and archived merged.
        for page in [1, 7, 50] {
            assert_eq!(whole_thread(&t.store, page), before, "page size {page}");
        }
        // The list by contact and the global list see every message once.
        let filter = MessageFilter {
            contact: Some(CONTACT.into()),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = t.store.list(&filter, cursor.as_deref(), 6).unwrap();
            seen.extend(p.items.into_iter().map(|m| m.id));
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut expected: Vec<String> = sent.iter().rev().map(|m| m.id.clone()).collect();
        assert_eq!(seen, expected);
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = t
                .store
                .list(&MessageFilter::default(), cursor.as_deref(), 6)
                .unwrap();
            all.extend(p.items.into_iter().map(|m| m.id));
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // Newest first by id, live and archived merged, exactly.
        expected.sort();
        expected.reverse();
        assert_eq!(all, expected);
        let delivered = MessageFilter {
            status: Some(MessageStatus::Delivered),
            ..Default::default()
        };
        let page = t.store.list(&delivered, None, 100).unwrap();
        assert_eq!(
            page.items.len(),
            sent.iter()
                .filter(|m| m.status == MessageStatus::Delivered)
                .count()
        );

        // `since` holds across live and archived messages.
        let since = sent[30].created_at;
        let filter = MessageFilter {
            since: Some(since),
            ..Default::default()
        };
        let mut recent: Vec<String> = t
            .store
            .list(&filter, None, 100)
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.id)
            .collect();
        recent.sort();
        let mut want: Vec<String> = sent[30..].iter().map(|m| m.id.clone()).collect();
        want.sort();
        assert_eq!(recent, want);
        let future = MessageFilter {
            since: Some(Utc::now() + Duration::hours(1)),
            ..Default::default()
        };
        assert!(t.store.list(&future, None, 100).unwrap().items.is_empty());

        // Settled means settled: an update of an archived message returns it
        // unchanged without running the change (the API answers 409, not 404).
        let archived = settled[0];
        let ran = std::sync::atomic::AtomicBool::new(false);
        let (got, events) = t
            .store
            .update(&archived.id, |m| {
                ran.store(true, std::sync::atomic::Ordering::Relaxed);
                m.body = "changed".into();
                true
            })
            .await
            .unwrap()
            .unwrap();
        assert!(!ran.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!((&got, events.len()), (archived, 0));

        // After a restart, the same.
        t.restart();
        assert_eq!(whole_thread(&t.store, 7), before);
        for m in &sent {
            assert_eq!(t.store.get(&m.id).unwrap().as_ref(), Some(m));
        }
        // A second pass moves nothing more.
        assert_eq!(
            t.store
                .archive_settled(Utc::now(), Duration::minutes(10), 1000)
                .unwrap(),
            0
        );
    }

    #[tokio::test]
    async fn a_message_moved_while_its_thread_is_read_is_neither_lost_nor_doubled() {
        let t = TempStore::new();
        let sent = thread_of(&t.store, 6).await;
        let before = whole_thread(&t.store, 50);
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        // The state a reader can meet mid-move: the thread key read, the
        // record already gone from `messages` and in the history.
        let moved = sent.iter().find(|m| m.status.is_final()).unwrap();
        t.store
            .inner
            .threads
            .insert(keys::thread(CONTACT, moved.created_at, &moved.id), &[])
            .unwrap();
        assert!(!live(&t.store, &moved.id));
        assert_eq!(whole_thread(&t.store, 50), before);
        assert_eq!(whole_thread(&t.store, 2), before);
    }

    /// What a crash between writing frames and referencing them leaves
    /// (an archive batch or a retention pass cut short) is zeroed at open.
    #[tokio::test]
    async fn frames_a_crash_left_unreferenced_are_zeroed_at_open() {
        let mut t = TempStore::new();
        let sent = thread_of(&t.store, 6).await;
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        let before = whole_thread(&t.store, 50);
        // A retention pass cut short after its transaction: old copies listed.
        let stale = t
            .store
            .inner
            .history_log
            .append(&[b"{\"body\": \"orphan-secret-2\"}"])
            .unwrap();
        let listed: Vec<u8> = stale.iter().flat_map(|at| at.to_bytes()).collect();
        t.store
            .inner
            .history_files
            .insert(TO_ERASE, listed)
            .unwrap();
        // An archive batch cut short after its fsync: marked, written, never
        // referenced.
        t.store.mark_pending().unwrap();
        let orphan = t
            .store
            .inner
            .history_log
            .append(&[b"{\"body\": \"orphan-secret-1\"}"])
            .unwrap();
        t.store.flush_blocking().unwrap();
        assert_eq!(orphan.len() + stale.len(), 2);

        t.restart();
        for f in std::fs::read_dir(t.dir.join("history")).unwrap() {
            let text =
                String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned();
            assert!(
                !text.contains("orphan-secret"),
                "an unreferenced frame kept its text"
            );
        }
        assert!(t.store.inner.history_files.get(PENDING).unwrap().is_none());
        assert!(t.store.inner.history_files.get(TO_ERASE).unwrap().is_none());
        // What the index references is untouched.
        assert_eq!(whole_thread(&t.store, 50), before);
        for m in &sent {
            assert_eq!(t.store.get(&m.id).unwrap().as_ref(), Some(m));
        }
    }

    fn delivered(store: &Store, at: chrono::DateTime<Utc>, body: &str) -> Message {
        let mut m = store.new_outbound("", CONTACT, body, 1, "gsm7", false, None, at);
        m.transition(at, MessageStatus::Sending);
        m.transition(at, MessageStatus::Sent);
        m.transition(at, MessageStatus::Delivered);
        m.updated_at = at;
        m
    }

    #[tokio::test]
    async fn an_idempotent_replay_finds_the_archived_original() {
        let t = TempStore::new();
        let m = delivered(&t.store, Utc::now() - Duration::hours(1), "hi");
        let key = IdempotencyKey {
            key: "k-1".into(),
            fingerprint: "f".into(),
        };
        t.store.accept(m.clone(), Some(key.clone())).await.unwrap();
        assert_eq!(
            t.store
                .archive_all_settled(Duration::minutes(10))
                .await
                .unwrap(),
            1
        );
        let again = delivered(&t.store, Utc::now(), "hi");
        assert_eq!(
            t.store
                .accept(again.clone(), Some(key.clone()))
                .await
                .unwrap(),
            Accepted::Replay(m.clone())
        );
        // Erased with its contact: a replay sends nothing and says so.
        t.store.erase_contact(CONTACT).await.unwrap();
        assert_eq!(
            t.store.accept(again, Some(key)).await.unwrap(),
            Accepted::ReplayErased(m.id)
        );
    }

    /// A STOP and its confirmation share their creation time; archived in
    /// two passes their index order (time, location) differs from the
    /// thread's (time, id). Pages of one still list each once, in order.
    #[tokio::test]
    async fn messages_with_the_same_time_page_in_thread_order() {
        let t = TempStore::new();
        let at = Utc::now() - Duration::hours(2);
        t.store
            .accept(
                delivered(&t.store, at - Duration::seconds(5), "older"),
                None,
            )
            .await
            .unwrap();
        let mut inbound = delivered(&t.store, at, "STOP");
        inbound.id = keys::message_id(at, CONTACT, 0xF000_0000);
        inbound.direction = Direction::Inbound;
        inbound.history.clear();
        inbound.part_status.clear();
        inbound.transition(at, MessageStatus::Received);
        inbound.updated_at = at;
        let mut reply = delivered(&t.store, at, "You are unsubscribed.");
        reply.id = keys::message_id(at, CONTACT, 0x1000_0000);
        reply.updated_at = Utc::now();
        t.store.accept(inbound, None).await.unwrap();
        t.store.accept(reply, None).await.unwrap();
        let before = whole_thread(&t.store, 1);
        assert_eq!(before.len(), 3);
        assert_eq!(
            t.store
                .archive_settled(Utc::now(), Duration::minutes(10), 1000)
                .unwrap(),
            2
        );
        let later = Utc::now() + Duration::hours(1);
        assert_eq!(
            t.store
                .archive_settled(later, Duration::minutes(10), 1000)
                .unwrap(),
            1
        );
        for page in [1, 2, 50] {
            assert_eq!(whole_thread(&t.store, page), before, "page size {page}");
        }
    }

    /// A write that failed after its frames were appended (an I/O error, a
    /// corrupt index block) leaves them unreferenced; the next append zeroes
    /// them first.
    #[tokio::test]
    async fn frames_of_a_failed_write_are_zeroed_by_the_next_one() {
        let t = TempStore::new();
        t.store.mark_pending().unwrap();
        t.store
            .inner
            .history_log
            .append(&[b"{\"body\": \"failed-write-secret\"}"])
            .unwrap();
        thread_of(&t.store, 4).await;
        assert!(
            t.store
                .archive_all_settled(Duration::minutes(10))
                .await
                .unwrap()
                > 0
        );
        for f in std::fs::read_dir(t.dir.join("history")).unwrap() {
            let text =
                String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned();
            assert!(!text.contains("failed-write-secret"));
        }
    }

    #[tokio::test]
    async fn retention_applies_to_messages_as_they_move() {
        let t = TempStore::new();
        t.store.set_retention_days(Some(1));
        let old = delivered(
            &t.store,
            Utc::now() - Duration::days(3),
            "old enough to forget",
        );
        let new = delivered(&t.store, Utc::now() - Duration::hours(1), "keep me");
        t.store.accept(old.clone(), None).await.unwrap();
        t.store.accept(new.clone(), None).await.unwrap();
        assert_eq!(
            t.store
                .archive_all_settled(Duration::minutes(10))
                .await
                .unwrap(),
            2
        );
        let got = t.store.get(&old.id).unwrap().unwrap();
        assert_eq!((got.body.as_str(), got.status), ("", old.status));
        assert_eq!(t.store.get(&new.id).unwrap().unwrap().body, "keep me");
        for f in std::fs::read_dir(t.dir.join("history")).unwrap() {
            let text =
                String::from_utf8_lossy(&std::fs::read(f.unwrap().path()).unwrap()).into_owned();
            assert!(!text.contains("old enough to forget"));
        }
    }

    /// Messages that move while a client pages through the message list
    /// are listed once each, in order.
    #[tokio::test]
    async fn the_message_list_pages_exactly_across_moves() {
        let t = TempStore::new();
        let base = Utc::now() - Duration::hours(2);
        let mut ids = Vec::new();
        for k in 0..9 {
            let m = delivered(&t.store, base + Duration::seconds(k), "m");
            ids.push(m.id.clone());
            t.store.accept(m, None).await.unwrap();
        }
        ids.reverse();
        let all = MessageFilter::default();
        let first = t.store.list(&all, None, 3).unwrap();
        let mut seen: Vec<String> = first.items.iter().map(|m| m.id.clone()).collect();
        // Everything moves between the first page and the rest.
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        let mut cursor = first.next_cursor;
        while let Some(c) = cursor {
            let page = t.store.list(&all, Some(&c), 3).unwrap();
            seen.extend(page.items.iter().map(|m| m.id.clone()));
            cursor = page.next_cursor;
        }
        assert_eq!(seen, ids);
        // With since: only what is new enough, newest first.
        let since = MessageFilter {
            since: Some(base + Duration::seconds(6)),
            ..Default::default()
        };
        let page = t.store.list(&since, None, 50).unwrap();
        let got: Vec<String> = page.items.into_iter().map(|m| m.id).collect();
        assert_eq!(got, ids[..3].to_vec());
    }

    /// A filter that matches little answers short pages with cursors rather
    /// than reading the whole history in one request.
    #[tokio::test]
    async fn a_list_request_looks_at_a_bounded_number_of_messages() {
        let t = TempStore::new();
        let n = crate::store::query::LIST_SCAN_BUDGET + 50;
        let base = Utc::now() - Duration::hours(3);
        // One failed message, oldest of all, under many delivered ones.
        let mut failed = delivered(&t.store, base, "failed");
        failed.status = MessageStatus::Failed;
        t.store.accept(failed.clone(), None).await.unwrap();
        let many: Vec<Message> = (1..n)
            .map(|k| delivered(&t.store, base + Duration::milliseconds(k as i64), "ok"))
            .collect();
        for chunk in many.chunks(500) {
            // Concurrently: one flush covers a chunk (group commit).
            let accepts = chunk.iter().map(|m| t.store.accept(m.clone(), None));
            for outcome in futures_util::future::join_all(accepts).await {
                outcome.unwrap();
            }
        }
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        for filter in [
            MessageFilter {
                status: Some(MessageStatus::Failed),
                ..Default::default()
            },
            MessageFilter {
                status: Some(MessageStatus::Failed),
                contact: Some(CONTACT.into()),
                ..Default::default()
            },
        ] {
            let first = t.store.list(&filter, None, 10).unwrap();
            assert!(first.items.is_empty());
            let cursor = first.next_cursor.expect("a cursor to go on with");
            let second = t.store.list(&filter, Some(&cursor), 10).unwrap();
            let ids: Vec<&str> = second.items.iter().map(|m| m.id.as_str()).collect();
            assert_eq!(ids, [failed.id.as_str()]);
            assert_eq!(second.next_cursor, None);
        }
    }

    #[tokio::test]
    async fn unknown_ids_are_not_found() {
        let t = TempStore::new();
        thread_of(&t.store, 6).await;
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        let ghost = keys::message_id(Utc::now() - Duration::hours(2), CONTACT, 7);
        for id in ["msg_nope", ghost.as_str(), ""] {
            assert_eq!(t.store.get(id).unwrap(), None, "{id}");
        }
    }

    #[tokio::test]
    async fn read_marks_cover_archived_messages() {
        let t = TempStore::new();
        let sent = thread_of(&t.store, 12).await;
        let inbound: Vec<&Message> = sent
            .iter()
            .filter(|m| m.direction == Direction::Inbound)
            .collect();
        assert_eq!(
            t.store.thread_summary(CONTACT).unwrap().unwrap().unread,
            inbound.len() as u64
        );
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        assert!(inbound.iter().all(|m| !live(&t.store, &m.id)));
        t.store.mark_thread_read(CONTACT).await.unwrap();
        assert_eq!(t.store.thread_summary(CONTACT).unwrap().unwrap().unread, 0);
        for m in &inbound {
            assert!(t.store.get(&m.id).unwrap().unwrap().read, "{}", m.id);
        }
        assert!(whole_thread(&t.store, 5)
            .iter()
            .filter(|m| m.direction == Direction::Inbound)
            .all(|m| m.read));
    }

    #[tokio::test]
    async fn erasure_and_retention_reach_the_history_files() {
        let t = TempStore::new();
        let sent = thread_of(&t.store, 9).await;
        let other = t.store.new_outbound(
            "",
            "+15559990000",
            "keep me",
            1,
            "gsm7",
            false,
            None,
            Utc::now() - Duration::hours(2),
        );
        let mut other = other;
        other.transition(other.created_at, MessageStatus::Cancelled);
        other.updated_at = other.created_at;
        t.store.accept(other.clone(), None).await.unwrap();
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        assert!(!live(&t.store, &other.id));

        // Retention blanks archived bodies older than the cutoff, not newer ones.
        let blanked = t
            .store
            .purge_bodies_before(Utc::now() - Duration::minutes(30))
            .await
            .unwrap();
        assert!(blanked >= sent.iter().filter(|m| m.status.is_final()).count());
        for m in sent.iter().filter(|m| m.status.is_final()) {
            let got = t.store.get(&m.id).unwrap().unwrap();
            assert_eq!(got.body, "", "{}", m.id);
            assert_eq!(got.status, m.status);
        }
        assert_eq!(t.store.get(&other.id).unwrap().unwrap().body, "");

        // Erasure: nothing of the contact is left, on disk either.
        let erased = t.store.erase_contact(CONTACT).await.unwrap();
        assert_eq!(erased, sent.len());
        for m in &sent {
            assert_eq!(t.store.get(&m.id).unwrap(), None);
        }
        assert!(t.store.thread(CONTACT, None, 50).unwrap().items.is_empty());
        let files = std::fs::read_dir(t.dir.join("history")).unwrap();
        for f in files {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(CONTACT),
                "the erased number is still in a history file"
            );
        }
        // The other contact is untouched (bar retention).
        assert_eq!(t.store.get(&other.id).unwrap().unwrap().id, other.id);
    }
}
