//! Compaction of the history files. Erasure and retention zero frames in
//! place (`history_log.rs`), so the files never shrink by themselves: a file
//! whose live share has fallen under a threshold is rewritten here.
//!
//! A compaction of file F, holding the history writers' lock throughout:
//!
//! 1. note (durably) where the copies will start (`PENDING`, as a move does);
//! 2. append a copy of every live frame of F that the index references to
//!    the current write file, and fsync;
//! 3. in one sled transaction, point the index entries (the contact's and the
//!    global one) at the copies, note F as to be removed ([`TO_REMOVE`]) and
//!    drop the `PENDING` note; flush;
//! 4. remove F, then the note.
//!
//! A crash before 3 is durable leaves the index on F and the copies past the
//! `PENDING` note: they are zeroed at open. A crash after it leaves the note:
//! F is removed at open. Either way nothing is lost, and no text stays on
//! disk that the index cannot reach (erasure would not find it). Zeroed
//! frames are never copied, and a live frame the index does not reference
//! (there should be none) goes with F rather than being brought back.

use std::collections::BTreeMap;

use super::history::{entry, entry_micros, time_bound, GLOBAL, PENDING};
use super::history_log::{FrameInfo, HistoryError};
use super::keys;
use super::packed::{self, BlockWrite, Entry};
use super::records::Message;
use super::{from_json, unwrap_tx, Result, Store};
use sled::Transactional;

/// A history file is compacted once less than this share of its bytes is
/// live (not zeroed by erasure or retention).
pub const COMPACT_BELOW_LIVE_SHARE: f64 = 0.5;

/// ... and once it would give back at least this many bytes: fewer are not
/// worth ending the current write file for.
pub const COMPACT_MIN_BYTES: u64 = 1 << 20;

/// `history_files` key of a file whose records the index no longer
/// references (a compaction switched them to copies): removed at open when
/// a crash came before the removal.
pub(super) const TO_REMOVE: &[u8] = b"to_remove";

/// Copies gathered before one append: memory stays bounded whatever the
/// file holds.
const COPY_CHUNK_BYTES: usize = 4 << 20;

/// What a compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Files rewritten and removed.
    pub files: usize,
    /// Their bytes on disk.
    pub bytes_before: u64,
    /// Bytes their live records take in the copies.
    pub bytes_after: u64,
}

impl Compacted {
    /// Bytes given back to the file system.
    pub fn reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

/// The step after which a compaction stops, as a crash there would (tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(test), allow(dead_code))]
pub(super) enum Step {
    /// `PENDING` noted, nothing copied.
    Marked,
    /// Copies appended and fsync'd, the index unchanged.
    Copied,
    /// The index switched to the copies (durable), the old file still there.
    Switched,
    /// The old file removed, its `TO_REMOVE` note still there.
    Removed,
}

impl Store {
    /// Compact every history file (the current write file included: it is
    /// ended first) whose live share is under `below` and which would give
    /// back at least `min_bytes`. Blocking: file I/O and fsyncs.
    pub fn compact_history(&self, below: f64, min_bytes: u64) -> Result<Compacted> {
        self.compact_history_until(below, min_bytes, None)
    }

    /// [`Store::compact_history`] with the thresholds of housekeeping, off
    /// the async workers; durable when it returns.
    pub async fn compact_history_now(&self) -> Result<Compacted> {
        let done = self
            .blocking(|store| store.compact_history(COMPACT_BELOW_LIVE_SHARE, COMPACT_MIN_BYTES))
            .await?;
        if done.files > 0 {
            self.sync().await?;
        }
        Ok(done)
    }

    pub(super) fn compact_history_until(
        &self,
        below: f64,
        min_bytes: u64,
        crash: Option<Step>,
    ) -> Result<Compacted> {
        let log = &self.inner.history_log;
        let _guard = self.history_writer()?;
        self.recover_history()?;
        let mut done = Compacted::default();
        for (number, _) in log.files()? {
            let frames = match log.frames(number) {
                Ok(frames) => frames,
                // Removed meanwhile.
                Err(HistoryError::MissingFile { .. }) => continue,
                Err(e) => {
                    // A damaged frame or an unreadable file: left as it is
                    // (reads report it), the other files still compacted.
                    tracing::warn!(file = number, error = %e, "history: not compacting a file");
                    continue;
                }
            };
            let size: u64 = frames.iter().map(|f| f.bytes).sum();
            let live: u64 = frames.iter().filter(|f| !f.erased).map(|f| f.bytes).sum();
            if size == 0 || (live as f64) >= below * size as f64 || size - live < min_bytes {
                continue;
            }
            // Copies go to the current write file: end it first if it is
            // the one to compact.
            if number == log.end().file && log.rotate()?.is_none() {
                continue;
            }
            let copied = self.compact_file(number, &frames, crash)?;
            done.files += 1;
            done.bytes_before += size;
            done.bytes_after += copied;
            if crash.is_some() {
                break;
            }
        }
        if done.files > 0 {
            tracing::info!(
                files = done.files,
                reclaimed = done.reclaimed(),
                "history: compacted files with little left live"
            );
        }
        Ok(done)
    }

    /// Steps 1 to 4 of the module's comment for one file; the bytes of the
    /// copies written.
    fn compact_file(&self, number: u32, frames: &[FrameInfo], crash: Option<Step>) -> Result<u64> {
        let i = &self.inner;
        self.mark_pending()?;
        if crash == Some(Step::Marked) {
            return Ok(0);
        }
        // contact -> (old entries, new entries).
        let mut moved: BTreeMap<String, (Vec<Entry>, Vec<Entry>)> = BTreeMap::new();
        let mut copied = 0u64;
        let mut chunk: Vec<(String, Entry, Vec<u8>)> = Vec::new();
        let mut chunk_bytes = 0;
        let mut copy = |chunk: &mut Vec<(String, Entry, Vec<u8>)>| -> Result<()> {
            let records: Vec<&[u8]> = chunk.iter().map(|(_, _, raw)| raw.as_slice()).collect();
            let locations = i.history_log.append(&records)?;
            for ((contact, old, raw), at) in chunk.drain(..).zip(locations) {
                let mut new = old;
                new[8..].copy_from_slice(&at.to_bytes());
                let (olds, news) = moved.entry(contact).or_default();
                olds.push(old);
                news.push(new);
                copied += 16 + raw.len() as u64;
            }
            Ok(())
        };
        for frame in frames.iter().filter(|f| !f.erased) {
            let raw = match i.history_log.read(frame.at) {
                Ok(raw) => raw,
                Err(HistoryError::Erased { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let m: Message = from_json(format!("history {:?}", frame.at).as_bytes(), &raw)?;
            let old = entry(m.created_at, frame.at);
            if !self.indexed(&m.contact, &old)? {
                tracing::warn!(at = ?frame.at, "history: a live frame no index references goes with its file");
                continue;
            }
            chunk_bytes += raw.len();
            chunk.push((m.contact, old, raw));
            if chunk_bytes >= COPY_CHUNK_BYTES {
                copy(&mut chunk)?;
                chunk_bytes = 0;
            }
        }
        copy(&mut chunk)?;
        if crash == Some(Step::Copied) {
            return Ok(copied);
        }

        let (all_old, all_new): (Vec<Entry>, Vec<Entry>) = moved
            .values()
            .flat_map(|(o, n)| o.iter().copied().zip(n.iter().copied()))
            .unzip();
        let mut writes: Vec<BlockWrite> =
            self.history_set(GLOBAL).plan_replace(&all_old, &all_new)?;
        for (contact, (olds, news)) in &moved {
            let prefix = keys::thread_prefix(contact);
            writes.extend(self.history_set(&prefix).plan_replace(olds, news)?);
        }
        (&i.history, &i.history_files)
            .transaction(|(history, files)| {
                packed::apply_tx(history, &writes)?;
                files.insert(TO_REMOVE, &number.to_be_bytes())?;
                files.remove(PENDING)?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        // Readers that looked the old locations up read again.
        i.history_moves
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The index must point at the copies on disk before the file goes.
        i.db.flush()?;
        if crash == Some(Step::Switched) {
            return Ok(copied);
        }
        self.remove_file_noted(number)?;
        if crash == Some(Step::Removed) {
            return Ok(copied);
        }
        i.history_files.remove(TO_REMOVE)?;
        Ok(copied)
    }

    /// At open (from `recover_history`): finish a compaction that switched
    /// the index but did not remove its old file.
    pub(super) fn remove_compacted(&self) -> Result<()> {
        let i = &self.inner;
        let Some(raw) = i.history_files.get(TO_REMOVE)? else {
            return Ok(());
        };
        if let Ok(number) = <[u8; 4]>::try_from(raw.as_ref()).map(u32::from_be_bytes) {
            tracing::warn!(
                file = number,
                "history: removing a file an interrupted compaction replaced"
            );
            if let Err(e) = self.remove_file_noted(number) {
                // Kept noted: tried again before the next write to the history.
                tracing::error!(file = number, error = %e, "history: cannot remove a compacted file");
                return Ok(());
            }
        }
        i.history_files.remove(TO_REMOVE)?;
        i.db.flush()?;
        Ok(())
    }

    fn remove_file_noted(&self, number: u32) -> Result<()> {
        match self.inner.history_log.remove_file(number) {
            Ok(()) | Err(HistoryError::MissingFile { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the contact's index holds `e`.
    fn indexed(&self, contact: &str, e: &Entry) -> Result<bool> {
        let prefix = keys::thread_prefix(contact);
        let set = self.history_set(&prefix);
        let next = time_bound(entry_micros(e).saturating_add(1));
        for found in set.range(e, &next) {
            if found? == *e {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};

    use super::super::test_support::TempStore;
    use super::super::*;
    use super::{Step, TO_REMOVE};
    use crate::store::history::PENDING;

    const ERASED: &str = "+15550001111";
    const KEPT: &str = "+15550002222";
    const OLD: &str = "+15550003333";

    fn delivered(store: &Store, contact: &str, at: chrono::DateTime<Utc>, body: &str) -> Message {
        let mut m = store.new_outbound("", contact, body, 1, "gsm7", false, None, at);
        m.transition(at, MessageStatus::Sending);
        m.transition(at, MessageStatus::Sent);
        m.transition(at, MessageStatus::Delivered);
        m.updated_at = at;
        m
    }

    /// Three contacts' archived messages: one to be erased (most of the
    /// bytes), one kept, one old enough for retention. Returns the kept and
    /// the old contacts' messages.
    async fn filled(t: &TempStore) -> Vec<Message> {
        let start = Utc::now() - Duration::days(3);
        let pad = "x".repeat(400);
        let mut kept = Vec::new();
        for k in 0..60i64 {
            let at = start + Duration::seconds(k);
            let m = match k % 6 {
                0 => delivered(
                    &t.store,
                    KEPT,
                    at + Duration::hours(50),
                    &format!("keep-{k}-{pad}"),
                ),
                1 => delivered(&t.store, OLD, at, &format!("forget-{k}-{pad}")),
                _ => delivered(
                    &t.store,
                    ERASED,
                    at + Duration::hours(50),
                    &format!("secret-{k}-{pad}"),
                ),
            };
            t.store.accept(m.clone(), None).await.unwrap();
            if m.contact != ERASED {
                kept.push(m);
            }
        }
        assert_eq!(
            t.store
                .archive_all_settled(Duration::minutes(10))
                .await
                .unwrap(),
            60
        );
        kept
    }

    /// Erase one contact, blank the old one's bodies (retention).
    async fn erase_and_blank(t: &TempStore) {
        assert_eq!(t.store.erase_contact(ERASED).await.unwrap(), 40);
        assert_eq!(
            t.store
                .purge_bodies_before(Utc::now() - Duration::days(1))
                .await
                .unwrap(),
            10
        );
    }

    fn whole_thread(store: &Store, contact: &str) -> Vec<Message> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = store.thread(contact, cursor.as_deref(), 7).unwrap();
            pages.push(p.items);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        pages.into_iter().rev().flatten().collect()
    }

    fn whole_list(store: &Store) -> Vec<Message> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let p = store
                .list(&MessageFilter::default(), cursor.as_deref(), 9)
                .unwrap();
            all.extend(p.items);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        all
    }

    /// Everything a client can read, to compare before and after.
    fn snapshot(store: &Store, kept: &[Message]) -> (Vec<Message>, Vec<Message>, Vec<Message>) {
        for m in kept {
            assert!(store.get(&m.id).unwrap().is_some(), "{}", m.id);
        }
        (
            whole_thread(store, KEPT),
            whole_thread(store, OLD),
            whole_list(store),
        )
    }

    fn history_bytes(t: &TempStore) -> u64 {
        t.store
            .inner
            .history_log
            .files()
            .unwrap()
            .iter()
            .map(|f| f.1)
            .sum()
    }

    /// No erased or blanked text anywhere in the history files.
    fn assert_nothing_forgotten_on_disk(t: &TempStore) {
        for f in std::fs::read_dir(t.dir.join("history")).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            for gone in ["secret-", ERASED, "forget-"] {
                assert!(!text.contains(gone), "{gone} is still on disk");
            }
        }
    }

    #[tokio::test]
    async fn compaction_gives_back_what_erasure_and_retention_zeroed() {
        let mut t = TempStore::new();
        let kept = filled(&t).await;
        erase_and_blank(&t).await;
        let before = snapshot(&t.store, &kept);
        assert_eq!(before.0.len() + before.1.len(), 20);
        assert!(before.1.iter().all(|m| m.body.is_empty()));
        let size = history_bytes(&t);

        // Above the threshold nothing happens; a minimum of bytes holds too.
        assert_eq!(t.store.compact_history(0.01, 0).unwrap().files, 0);
        assert_eq!(t.store.compact_history(0.5, u64::MAX).unwrap().files, 0);
        let done = t.store.compact_history(0.5, 0).unwrap();
        assert_eq!(done.files, 1, "{done:?}");
        assert!(done.reclaimed() > size / 2, "{done:?} of {size}");
        let after = history_bytes(&t);
        assert!(after < size / 2, "{after} of {size}");
        assert_eq!(snapshot(&t.store, &kept), before);
        for m in &kept {
            let got = t.store.get(&m.id).unwrap().unwrap();
            assert_eq!((got.id.as_str(), got.status), (m.id.as_str(), m.status));
        }
        assert_nothing_forgotten_on_disk(&t);
        // Once compact, a second pass finds nothing to do.
        assert_eq!(t.store.compact_history(0.5, 0).unwrap().files, 0);

        t.restart();
        assert_eq!(snapshot(&t.store, &kept), before);
        assert_eq!(history_bytes(&t), after);
        // New moves go on after the compacted copies.
        let late = delivered(&t.store, KEPT, Utc::now() - Duration::hours(1), "late");
        t.store.accept(late.clone(), None).await.unwrap();
        t.store
            .archive_all_settled(Duration::minutes(10))
            .await
            .unwrap();
        assert_eq!(t.store.get(&late.id).unwrap(), Some(late));
        assert_eq!(whole_thread(&t.store, KEPT).len(), before.0.len() + 1);
    }

    /// A crash after each step of a compaction (the store closed there and
    /// opened again) loses nothing, leaves no erased text on disk, and the
    /// next pass finishes the work.
    #[tokio::test]
    async fn a_crash_at_any_step_of_a_compaction_loses_nothing() {
        for step in [Step::Marked, Step::Copied, Step::Switched, Step::Removed] {
            let mut t = TempStore::new();
            let kept = filled(&t).await;
            erase_and_blank(&t).await;
            let before = snapshot(&t.store, &kept);
            let size = history_bytes(&t);
            let files_before = t.store.inner.history_log.files().unwrap().len();

            let cut = t.store.compact_history_until(0.5, 0, Some(step)).unwrap();
            assert_eq!(cut.files, 1, "{step:?}");
            t.restart();
            assert_eq!(snapshot(&t.store, &kept), before, "{step:?}");
            assert_nothing_forgotten_on_disk(&t);
            let history_files = &t.store.inner.history_files;
            assert!(history_files.get(PENDING).unwrap().is_none(), "{step:?}");
            assert!(history_files.get(TO_REMOVE).unwrap().is_none(), "{step:?}");
            let files = t.store.inner.history_log.files().unwrap();
            if matches!(step, Step::Switched | Step::Removed) {
                // The old file is gone; its copies are in the new one.
                assert_eq!(files.len(), files_before, "{step:?}: {files:?}");
                assert!(history_bytes(&t) < size / 2, "{step:?}");
            }

            // The next pass completes (or finds it done), the same as ever.
            t.store.compact_history(0.5, 0).unwrap();
            assert_eq!(snapshot(&t.store, &kept), before, "{step:?}");
            assert!(history_bytes(&t) < size / 2, "{step:?}");
            assert_nothing_forgotten_on_disk(&t);
            t.restart();
            assert_eq!(snapshot(&t.store, &kept), before, "{step:?}");
            // No stray copy escapes a later erasure either.
            t.store.erase_contact(KEPT).await.unwrap();
            for f in std::fs::read_dir(t.dir.join("history")).unwrap() {
                let bytes = std::fs::read(f.unwrap().path()).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains("keep-"),
                    "{step:?}: a copy outlived its erasure"
                );
            }
        }
    }
}
