//! The metric counters: kept as facts are recorded (per UTC day, campaign,
//! variant and team), so a summary reads a few counters per day of its
//! period and never scans messages or contacts.
//!
//! # Counting a contact once over any period
//!
//! Rates count contacts, each once, over an arbitrary run of days. For each
//! counted thing (sent, replied, opted out, converted) and each dimension
//! key, a contact's counted days are known (from its record, below); when
//! the contact is counted on day `d` whose previous counted day is `p` (or
//! never), cell `(d, p)` gains one. A contact has a counted day in
//! `[from, to]` iff
//! exactly one of its days there has its previous day before `from` (the
//! first in the period), so the contacts of a period are the sum of cells
//! `(d, p)` with `from <= d <= to` and `p < from`. A day counted out of
//! order (before a later one already counted) moves its successor's cell,
//! so the sum stays exact. To read few cells per day, each cell is kept
//! twice: by `p`'s 16-day block and by `p` itself; `p < from` is the blocks
//! before `from`'s block plus the days of `from`'s block before `from`.
//! Both are keyed by `d` first: a batch's facts fall on a day or two, so
//! its cells are a few runs of neighbouring keys (few pages rewritten),
//! and a summary reads the blocks in one scan of its days and the exact
//! cells in one short scan per day. (Exact cells were keyed by `p` first
//! before: a store with those has them re-keyed when it opens, once.)
//!
//! Dimension keys: every fact counts under each combination of its
//! campaign, variant (with its campaign) and team and "all" (up to 6
//! keys), so a summary with any filters reads one key.
//!
//! Trees: `metric_facts` (bookkeeping: the metrics cursor and a record per
//! contact) and `metric_counters` (what a summary reads).
//!
//! # A record per contact
//!
//! Everything counting a contact's next facts needs is one key, read and
//! written once per batch that has a fact of the contact
//! ([`ContactRecord`], a compact binary encoding): the dimensions of its
//! facts (each once, referred to by index), its outbounds within the reply
//! window and its latest one, its sent messages (by a
//! 64-bit digest of the id, with day and dimensions: what an outcome naming
//! one is counted under) and its counted days per kind and dimensions. The
//! days counted under a dimension key are those of every entry whose
//! dimensions are within the key's pattern, so one entry per dimensions
//! serves the up to 6 keys it counts under. (Before, each was a key of its
//! own: a set per kind, key and contact, a key per sent message, the state
//! as JSON: 4.2 million keys for 1M messages, against 100,000 records.
//! Such a store's sets fold into records when it opens; its sent-message
//! keys stay, read only, for outcomes that name those messages.)
//!
//! # Opening a store of an older layout
//!
//! [`Trees::open`] brings every older layout to this one before anything
//! is counted, each step idempotent so a stop in the middle is resumed on
//! the next open: counted-day sets fold into records, exact cells are
//! re-keyed (then `V` marks the layout), fact ids left by an interrupted
//! removal go; the engine's catch-up sets the metrics cursor from the fact
//! ids of a store that had no cursor. The tests build each older layout
//! from a counted store and check that its summaries stay and that
//! counting goes on exactly.
//!
//! # The write path: a batch at a time, behind a cursor
//!
//! The engine counts the facts of a batch of events (up to 256) with one
//! [`Store::record_metrics`] call: the facts apply in order to an overlay
//! of the keys they touch (each read from the trees once, then from the
//! overlay), and every changed key is written once, with the metrics cursor
//! (the first event not counted), in one transaction over both trees. Hot
//! keys (a day's sums and cells of the "all" key) are written once per
//! batch instead of once per fact. Exactly once without an id per fact:
//! facts of events before the cursor are skipped, and the cursor moves in
//! the same atomic write as the counts; event pruning keeps the events from
//! the cursor on (`prune_events_batch`), so a batch lost in a crash is read
//! again. A store counted with a fact id per event (`f` keys, before the
//! cursor) gets its cursor from them and loses them
//! ([`Store::init_metrics_cursor`]).

use std::collections::hash_map::{Entry, HashMap};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::{Transactional, Tree};

use super::{from_json, unwrap_tx, Result, Store, StoreError, TxError};
use crate::conversation::metrics::{
    CostPerOutcome, Counting, Fact, Histogram, Rate, ResponseTimes, Summary, SummaryQuery,
};

/// The trees of this file, opened with the store.
pub(crate) struct Trees {
    /// `C` -> the metrics cursor; `c` contact -> [`ContactRecord`] (and,
    /// in a store from before it, `m` message id -> [`SentRef`], read
    /// only).
    facts: Tree,
    /// `d` kind, dimension key, 0, day, block -> count and `d` kind,
    /// dimension key, 2, day, previous day -> count (the cells above);
    /// `S` dimension key, day -> [`Sums`]; `h` histogram, dimension key,
    /// day -> sparse histogram; `V` -> the layout ([`LAYOUT`]).
    counters: Tree,
    /// One batch counted at a time: a batch reads its keys before the
    /// transaction that writes them, so two at once would lose counts.
    writer: Mutex<()>,
}

/// Counted-day keys of an older store folded per atomic write: a contact's
/// keys are spread over every kind and dimension key, so the bigger the
/// chunk, the fewer times its record is rewritten (a 1M-message store took
/// 294 s with chunks of 4,096, at a load of 10 on 2 cores).
const FOLD_CHUNK: usize = 65_536;

/// The counters' layout (in `counters`; no other key starts with `V`):
/// [`EXACT`] once exact cells are keyed by day first.
const LAYOUT: &[u8] = b"V";

/// The metrics cursor's key in `facts` (no other key starts with `C`).
const CURSOR: &[u8] = b"C";
/// Another gateway's event counted here: `r`, the gateway's site, 0, the
/// event's sequence in that gateway's log -> the day it was counted here
/// (no other key starts with `r`).
const REMOTE_MARK: u8 = b'r';

fn remote_mark(site: &str, seq: u64) -> Vec<u8> {
    let mut key = prefixed(REMOTE_MARK, site.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Trees> {
        let trees = Trees {
            facts: db.open_tree("metric_facts")?,
            counters: db.open_tree("metric_counters")?,
            writer: Mutex::new(()),
        };
        trees.fold_counted_day_keys()?;
        trees.rekey_exact_cells()?;
        // Fact ids left by a removal that a stop interrupted (the cursor
        // that replaced them is set first).
        if trees.cursor()?.is_some() {
            trees.remove_fact_ids()?;
        }
        Ok(trees)
    }

    /// Fold the counted-day sets of a store from before [`ContactRecord`]
    /// (`s` kind, dimension key, contact -> days: one key per set) into the
    /// contacts' records, [`FOLD_CHUNK`] keys per atomic write. A key's
    /// pattern becomes an entry of its own: its days are counted under
    /// every key whose pattern it is within, and each such key's old set
    /// holds them too (a fact counted under a key was counted under all
    /// the wider ones), so every key's days stay what they were.
    fn fold_counted_day_keys(&self) -> Result<()> {
        let mut folded = 0usize;
        loop {
            let mut contacts = Touched::<ContactRecord>::new(&self.facts);
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for entry in self.facts.scan_prefix(b"s").take(FOLD_CHUNK) {
                let (key, raw) = entry?;
                let days = days_of(&key, &raw)?;
                let kind = *key
                    .get(1)
                    .ok_or_else(|| corrupt(&key, "a counted-day key"))?;
                let (pattern, len) = key
                    .get(2..)
                    .and_then(Dims::parse_key)
                    .ok_or_else(|| corrupt(&key, "a counted-day key"))?;
                let contact = key.get(2 + len..).unwrap_or_default();
                let record = contacts.change(prefixed(b'c', contact))?;
                let dims = record.intern(&pattern)?;
                for day in days {
                    record.add_counted(kind, dims, day);
                }
                batch.remove(key);
                n += 1;
            }
            if n == 0 {
                if folded > 0 {
                    tracing::info!(
                        folded,
                        "metrics: counted-day keys folded into contact records"
                    );
                }
                return Ok(());
            }
            contacts.write_into(&mut batch)?;
            self.facts.apply_batch(batch)?;
            folded += n;
            if folded == n {
                tracing::info!("metrics: folding counted-day keys into contact records (once)");
            }
        }
    }

    /// Re-key the exact cells of a store from before they were keyed by
    /// day first ([`EXACT_PREVIOUS_FIRST`] -> [`EXACT`]), [`FOLD_CHUNK`]
    /// cells per atomic write, once: [`LAYOUT`] says it is done.
    fn rekey_exact_cells(&self) -> Result<()> {
        if self.counters.get(LAYOUT)?.is_some() {
            return Ok(());
        }
        let mut from = b"d".to_vec();
        loop {
            let mut batch = sled::Batch::default();
            let mut last = None;
            let mut n = 0;
            for entry in self.counters.range(from.as_slice()..) {
                let (key, raw) = entry?;
                if key.first() != Some(&b'd') {
                    break;
                }
                let at = key
                    .get(2..)
                    .and_then(Dims::parse_key)
                    .map(|(_, len)| 2 + len)
                    .ok_or_else(|| corrupt(&key, "a metric cell key"))?;
                if key.get(at) == Some(&EXACT_PREVIOUS_FIRST) {
                    let days = key
                        .get(at + 1..at + 9)
                        .ok_or_else(|| corrupt(&key, "a metric cell key is cut short"))?;
                    let mut rekeyed = key[..at].to_vec();
                    rekeyed.push(EXACT);
                    rekeyed.extend_from_slice(&days[4..8]);
                    rekeyed.extend_from_slice(&days[0..4]);
                    batch.insert(rekeyed, raw);
                    batch.remove(key.clone());
                    n += 1;
                }
                last = Some(key);
                if n == FOLD_CHUNK {
                    break;
                }
            }
            let Some(last) = last else { break };
            if n > 0 {
                self.counters.apply_batch(batch)?;
            }
            if n < FOLD_CHUNK {
                break;
            }
            from = last.to_vec();
            from.push(0);
        }
        self.counters.insert(LAYOUT, &[EXACT])?;
        Ok(())
    }

    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cursor(&self) -> Result<Option<u64>> {
        match self.facts.get(CURSOR)? {
            Some(raw) => u64_of(CURSOR, &raw).map(Some),
            None => Ok(None),
        }
    }

    /// Remove the fact ids (`f` keys) a store counted before the cursor
    /// kept one per event forever; a few batches, each atomic.
    fn remove_fact_ids(&self) -> Result<()> {
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for key in self.facts.scan_prefix(b"f").keys().take(10_000) {
                batch.remove(key?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.facts.apply_batch(batch)?;
        }
    }
}

/// Counted-day sets: contacts sent, replied, opted out, converted.
const SENT: u8 = 0;
const REPLIED: u8 = 1;
const OPTED_OUT: u8 = 2;
const CONVERTED: u8 = 3;

/// Response-time histograms.
const OVERALL: u8 = 0;
const OVERALL_BUSINESS: u8 = 1;
const PERSON: u8 = 2;
const PERSON_BUSINESS: u8 = 3;

/// Days are numbered from 1970-01-01 = 1; 0 is "never" (no previous day).
const NEVER: u32 = 0;
/// Days per block of previous days (see the module's documentation).
const BLOCK: u32 = 16;
/// A cell's key after its dimension key: by block, or exact with the day
/// first. (1 was an exact cell with the previous day first: a store with
/// those has them re-keyed when it opens, [`Trees::rekey_exact_cells`].)
const BY_BLOCK: u8 = 0;
const EXACT: u8 = 2;
const EXACT_PREVIOUS_FIRST: u8 = 1;
/// Recent outbounds kept per contact, at most (within the reply window).
const RECENT_MAX: usize = 256;

fn day_number(date: NaiveDate) -> u32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN);
    (date - epoch)
        .num_days()
        .saturating_add(1)
        .clamp(1, i64::from(u32::MAX)) as u32
}

fn day_of(at: DateTime<Utc>) -> u32 {
    day_number(at.date_naive())
}

/// A fact's campaign, variant and team; as a pattern (what a dimension key
/// stands for), None is "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Dims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<String>,
}

impl Dims {
    /// The dimension key of one combination: each dimension "all" (0) or
    /// its value (1, length, bytes): prefix-free, so a key and a day after
    /// it never read as another key.
    fn key(campaign: Option<&str>, variant: Option<&str>, team: Option<&str>) -> Vec<u8> {
        let mut key = Vec::new();
        for part in [campaign, variant, team] {
            match part {
                None => key.push(0),
                Some(value) => {
                    let bytes = &value.as_bytes()[..value.len().min(usize::from(u16::MAX))];
                    key.push(1);
                    key.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
                    key.extend_from_slice(bytes);
                }
            }
        }
        key
    }

    fn own_key(&self) -> Vec<u8> {
        Dims::key(
            self.campaign.as_deref(),
            self.variant.as_deref(),
            self.team.as_deref(),
        )
    }

    /// The dimensions a key at the start of `raw` stands for, and the key's
    /// length (None: not a whole key).
    fn parse_key(raw: &[u8]) -> Option<(Dims, usize)> {
        let mut at = 0;
        let mut part = || -> Option<Option<String>> {
            let tag = *raw.get(at)?;
            at += 1;
            match tag {
                0 => Some(None),
                1 => {
                    let len = u16::from_be_bytes([*raw.get(at)?, *raw.get(at + 1)?]);
                    let bytes = raw.get(at + 2..at + 2 + usize::from(len))?;
                    at += 2 + usize::from(len);
                    Some(Some(String::from_utf8_lossy(bytes).into_owned()))
                }
                _ => None,
            }
        };
        let dims = Dims {
            campaign: part()?,
            variant: part()?,
            team: part()?,
        };
        Some((dims, at))
    }

    /// Every key a fact of these dimensions counts under, with the pattern
    /// it stands for: each dimension as itself or "all" (a variant only
    /// with its campaign: variants are a campaign's).
    fn keys(&self) -> Vec<(Dims, Vec<u8>)> {
        fn choices(v: &Option<String>) -> Vec<Option<String>> {
            match v {
                Some(v) => vec![None, Some(v.clone())],
                None => vec![None],
            }
        }
        let mut keys = Vec::new();
        for campaign in choices(&self.campaign) {
            let variants = if campaign.is_some() {
                choices(&self.variant)
            } else {
                vec![None]
            };
            for variant in variants {
                for team in choices(&self.team) {
                    let pattern = Dims {
                        campaign: campaign.clone(),
                        variant: variant.clone(),
                        team,
                    };
                    let key = pattern.own_key();
                    keys.push((pattern, key));
                }
            }
        }
        keys
    }

    /// Whether a fact of these dimensions counts under `pattern`.
    fn within(&self, pattern: &Dims) -> bool {
        fn one(value: &Option<String>, pattern: &Option<String>) -> bool {
            pattern.is_none() || value == pattern
        }
        one(&self.campaign, &pattern.campaign)
            && one(&self.variant, &pattern.variant)
            && one(&self.team, &pattern.team)
    }
}

/// An outbound as a later reply or outcome is attributed to it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Outbound {
    /// Milliseconds since the epoch.
    at: i64,
    day: u32,
    /// Its dimensions: an index into [`ContactRecord::dims`].
    dims: u32,
}

/// A message sent to the contact, for the outcome it may lead to.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sent {
    /// The first 8 octets of the SHA-256 of its id (one contact's messages
    /// do not collide in 64 bits).
    id: [u8; 8],
    day: u32,
    /// An index into [`ContactRecord::dims`].
    dims: u32,
}

fn message_digest(id: &str) -> [u8; 8] {
    let digest = Sha256::digest(id.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Per contact, in one key (`c` contact), everything counting its next
/// facts needs: the outbounds a reply or outcome is attributed to, the
/// days it was counted on, its sent messages. One read and one write per
/// contact and batch.
#[derive(Debug, Clone, Default, PartialEq)]
struct ContactRecord {
    /// The dimensions of its facts, each once (the rest of the record
    /// refers to them by index).
    dims: Vec<Dims>,
    /// Outbounds within the reply window of the newest fact, one per (day,
    /// dimensions) with its latest time.
    recent: Vec<Outbound>,
    /// The latest outbound (an outcome whose message is unknown is
    /// attributed to it).
    last: Option<Outbound>,
    /// The newest fact's time (ms).
    newest: i64,
    /// (kind, dimensions) -> the days it was counted on, ascending. Under
    /// a dimension key it was counted on the days of every entry whose
    /// dimensions are within the key's pattern (see [`Batch::count`]).
    counted: BTreeMap<(u8, u32), Vec<u32>>,
    /// Its sent messages, by id digest.
    sent: Vec<Sent>,
}

/// The record's encoding (a first octet `{` is the JSON state of a store
/// from before it: [`LegacyState`]).
const RECORD_VERSION: u8 = 2;
/// The encoding before first responses were counted from the waits an
/// answer ended: a wait (flags, then its start if set) after `newest`,
/// read past.
const RECORD_VERSION_WITH_WAIT: u8 = 1;

impl ContactRecord {
    /// The index of `dims`, added if new.
    fn intern(&mut self, dims: &Dims) -> Result<u32> {
        let at = match self.dims.iter().position(|d| d == dims) {
            Some(at) => at,
            None => {
                self.dims.push(dims.clone());
                self.dims.len() - 1
            }
        };
        u32::try_from(at).map_err(|_| corrupt(b"(metric contact)", "too many dimensions"))
    }

    fn dims_of(&self, index: u32) -> Result<&Dims> {
        self.dims
            .get(index as usize)
            .ok_or_else(|| corrupt(b"(metric contact)", "a dimension index out of range"))
    }

    fn note_time(&mut self, at: i64, window: Duration) {
        self.newest = self.newest.max(at);
        let oldest = self
            .newest
            .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        self.recent.retain(|o| o.at >= oldest);
    }

    fn note_outbound(&mut self, outbound: Outbound, window: Duration) {
        if self.last.is_none_or(|l| l.at <= outbound.at) {
            self.last = Some(outbound);
        }
        match self
            .recent
            .iter_mut()
            .find(|o| o.day == outbound.day && o.dims == outbound.dims)
        {
            Some(o) => o.at = o.at.max(outbound.at),
            None => self.recent.push(outbound),
        }
        if self.recent.len() > RECENT_MAX {
            self.recent.sort_by_key(|o| o.at);
            let excess = self.recent.len() - RECENT_MAX;
            self.recent.drain(..excess);
        }
        self.note_time(outbound.at, window);
    }

    /// The outbounds an inbound at `at` follows within `window`.
    fn answered_by(&self, at: i64, window: Duration) -> Vec<Outbound> {
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.recent
            .iter()
            .filter(|o| o.at <= at && at.saturating_sub(o.at) <= window)
            .copied()
            .collect()
    }

    fn note_sent(&mut self, sent: Sent) {
        match self.sent.binary_search_by(|s| s.id.cmp(&sent.id)) {
            Ok(at) => self.sent[at] = sent,
            Err(at) => self.sent.insert(at, sent),
        }
    }

    fn sent(&self, id: &str) -> Option<Sent> {
        let id = message_digest(id);
        self.sent
            .binary_search_by(|s| s.id.cmp(&id))
            .ok()
            .map(|at| self.sent[at])
    }

    /// Counted under `kind` and a key of `pattern` on `day`: None when it
    /// was, else its counted day before `day` ([`NEVER`] if none) and the
    /// one after it (if any).
    fn neighbours(&self, kind: u8, pattern: &Dims, day: u32) -> Option<(u32, Option<u32>)> {
        let (mut previous, mut next) = (NEVER, None::<u32>);
        for ((_, dims), days) in self.counted.range((kind, 0)..=(kind, u32::MAX)) {
            if !self
                .dims
                .get(*dims as usize)
                .is_some_and(|d| d.within(pattern))
            {
                continue;
            }
            match days.binary_search(&day) {
                Ok(_) => return None,
                Err(at) => {
                    if at > 0 {
                        previous = previous.max(days[at - 1]);
                    }
                    if let Some(&after) = days.get(at) {
                        next = Some(next.map_or(after, |n| n.min(after)));
                    }
                }
            }
        }
        Some((previous, next))
    }

    fn add_counted(&mut self, kind: u8, dims: u32, day: u32) {
        let days = self.counted.entry((kind, dims)).or_default();
        if let Err(at) = days.binary_search(&day) {
            days.insert(at, day);
        }
    }

    fn encode(&self) -> Vec<u8> {
        fn n(out: &mut Vec<u8>, len: usize) {
            out.extend_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
        }
        fn outbound(out: &mut Vec<u8>, o: &Outbound) {
            out.extend_from_slice(&o.at.to_be_bytes());
            out.extend_from_slice(&o.day.to_be_bytes());
            out.extend_from_slice(&o.dims.to_be_bytes());
        }
        let mut out = vec![RECORD_VERSION];
        out.extend_from_slice(&self.newest.to_be_bytes());
        n(&mut out, self.dims.len());
        for d in &self.dims {
            out.extend_from_slice(&d.own_key());
        }
        match &self.last {
            None => out.push(0),
            Some(o) => {
                out.push(1);
                outbound(&mut out, o);
            }
        }
        n(&mut out, self.recent.len());
        for o in &self.recent {
            outbound(&mut out, o);
        }
        n(&mut out, self.counted.len());
        for ((kind, dims), days) in &self.counted {
            out.push(*kind);
            out.extend_from_slice(&dims.to_be_bytes());
            n(&mut out, days.len());
            for d in days {
                out.extend_from_slice(&d.to_be_bytes());
            }
        }
        n(&mut out, self.sent.len());
        for s in &self.sent {
            out.extend_from_slice(&s.id);
            out.extend_from_slice(&s.day.to_be_bytes());
            out.extend_from_slice(&s.dims.to_be_bytes());
        }
        out
    }

    fn decode(key: &[u8], raw: &[u8]) -> Result<ContactRecord> {
        if raw.first() == Some(&b'{') {
            return from_json::<LegacyState>(key, raw)?.into_record();
        }
        let bad = || corrupt(key, "a metric contact record is cut short or malformed");
        let mut r = Reader { raw, at: 0 };
        let version = r.u8().ok_or_else(bad)?;
        if version != RECORD_VERSION && version != RECORD_VERSION_WITH_WAIT {
            return Err(corrupt(
                key,
                "a metric contact record of an unknown version",
            ));
        }
        let decoded = (|| -> Option<ContactRecord> {
            let mut record = ContactRecord {
                newest: r.i64()?,
                ..ContactRecord::default()
            };
            if version == RECORD_VERSION_WITH_WAIT && r.u8()? & 1 == 1 {
                // The wait's start (first responses are counted from the
                // waits each answer ended: no state is needed).
                r.skip(8)?;
            }
            for _ in 0..r.u32()? {
                let (dims, len) = Dims::parse_key(r.rest())?;
                r.skip(len)?;
                record.dims.push(dims);
            }
            let outbound = |r: &mut Reader| -> Option<Outbound> {
                Some(Outbound {
                    at: r.i64()?,
                    day: r.u32()?,
                    dims: r.u32()?,
                })
            };
            if r.u8()? == 1 {
                record.last = Some(outbound(&mut r)?);
            }
            for _ in 0..r.u32()? {
                record.recent.push(outbound(&mut r)?);
            }
            for _ in 0..r.u32()? {
                let (kind, dims, n) = (r.u8()?, r.u32()?, r.u32()?);
                let mut days = Vec::new();
                for _ in 0..n {
                    days.push(r.u32()?);
                }
                record.counted.insert((kind, dims), days);
            }
            for _ in 0..r.u32()? {
                let id = <[u8; 8]>::try_from(r.take(8)?).ok()?;
                record.sent.push(Sent {
                    id,
                    day: r.u32()?,
                    dims: r.u32()?,
                });
            }
            Some(record)
        })()
        .ok_or_else(bad)?;
        let dims = decoded.dims.len();
        let in_range = |i: u32| (i as usize) < dims;
        let valid = decoded
            .recent
            .iter()
            .chain(&decoded.last)
            .all(|o| in_range(o.dims))
            && decoded.counted.keys().all(|(_, i)| in_range(*i))
            && decoded.sent.iter().all(|s| in_range(s.dims))
            && decoded
                .counted
                .values()
                .all(|d| d.windows(2).all(|w| w[0] < w[1]))
            && decoded.sent.windows(2).all(|w| w[0].id < w[1].id);
        if !valid {
            return Err(corrupt(key, "a metric contact record refers out of range"));
        }
        Ok(decoded)
    }
}

/// Reads a record's fields in order (None: cut short).
struct Reader<'a> {
    raw: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.raw.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn rest(&self) -> &'a [u8] {
        self.raw.get(self.at..).unwrap_or_default()
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
    }

    fn i64(&mut self) -> Option<i64> {
        self.take(8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(i64::from_be_bytes)
    }
}

/// A contact's state as a store from before [`ContactRecord`] kept it
/// (JSON; its counted days were `s` keys, folded in on open, and its sent
/// messages `m` keys, read when an outcome names one: [`SentRef`]).
#[derive(Debug, Default, Deserialize)]
struct LegacyState {
    #[serde(default)]
    recent: Vec<LegacyOutbound>,
    #[serde(default)]
    last: Option<LegacyOutbound>,
    #[serde(default)]
    newest: i64,
}

#[derive(Debug, Deserialize)]
struct LegacyOutbound {
    at: i64,
    day: u32,
    #[serde(flatten)]
    dims: Dims,
}

impl LegacyState {
    fn into_record(self) -> Result<ContactRecord> {
        let mut record = ContactRecord {
            newest: self.newest,
            ..ContactRecord::default()
        };
        for o in self.recent {
            let dims = record.intern(&o.dims)?;
            record.recent.push(Outbound {
                at: o.at,
                day: o.day,
                dims,
            });
        }
        if let Some(o) = self.last {
            let dims = record.intern(&o.dims)?;
            record.last = Some(Outbound {
                at: o.at,
                day: o.day,
                dims,
            });
        }
        Ok(record)
    }
}

/// A sent message's day and dimensions as a store from before
/// [`ContactRecord`] kept them (`m` message id, JSON).
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SentRef {
    day: u32,
    #[serde(flatten)]
    dims: Dims,
}

/// Plain sums per dimension key and day.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    messages: u64,
    parts: u64,
    cost: f64,
    /// Conversion outcomes, on the day of the outbound that led to them.
    conversions: u64,
}

impl Sums {
    const SIZE: usize = 32;

    fn encode(&self) -> [u8; Sums::SIZE] {
        let mut out = [0u8; Sums::SIZE];
        out[0..8].copy_from_slice(&self.messages.to_be_bytes());
        out[8..16].copy_from_slice(&self.parts.to_be_bytes());
        out[16..24].copy_from_slice(&self.cost.to_bits().to_be_bytes());
        out[24..32].copy_from_slice(&self.conversions.to_be_bytes());
        out
    }

    fn decode(key: &[u8], raw: &[u8]) -> Result<Sums> {
        let field = |i: usize| -> Result<u64> {
            raw.get(i * 8..i * 8 + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| corrupt(key, "metric sums are not 32 octets"))
        };
        Ok(Sums {
            messages: field(0)?,
            parts: field(1)?,
            cost: f64::from_bits(field(2)?),
            conversions: field(3)?,
        })
    }

    fn add(&mut self, other: &Sums) {
        self.messages += other.messages;
        self.parts += other.parts;
        self.cost += other.cost;
        self.conversions += other.conversions;
    }
}

fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

fn u64_of(key: &[u8], raw: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(raw)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(key, "a metric counter is not 8 octets"))
}

fn days_of(key: &[u8], raw: &[u8]) -> Result<Vec<u32>> {
    if raw.len() % 4 != 0 {
        return Err(corrupt(key, "a counted-day set is not whole days"));
    }
    Ok(raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// A day's histogram: (bucket u16, count u32) pairs, 6 octets each (a
/// day's waits in one bucket stay far below 2^32; counts saturate).
fn histogram_of(key: &[u8], raw: &[u8]) -> Result<Histogram> {
    let mut h = Histogram::default();
    for_each_bucket(key, raw, |bucket, count| {
        *h.0.entry(bucket).or_default() += count;
    })?;
    Ok(h)
}

fn for_each_bucket(key: &[u8], raw: &[u8], mut f: impl FnMut(u16, u64)) -> Result<()> {
    if raw.len() % 6 != 0 {
        return Err(corrupt(key, "a histogram is not whole buckets"));
    }
    for c in raw.chunks_exact(6) {
        let bucket = u16::from_be_bytes([c[0], c[1]]);
        f(
            bucket,
            u64::from(u32::from_be_bytes([c[2], c[3], c[4], c[5]])),
        );
    }
    Ok(())
}

fn histogram_bytes(h: &Histogram) -> Vec<u8> {
    let mut out = Vec::with_capacity(h.0.len() * 6);
    for (bucket, count) in &h.0 {
        out.extend_from_slice(&bucket.to_be_bytes());
        let count = u32::try_from(*count).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// A cell by block (`exact` false: day, then the previous day's block) or
/// exactly (day, then the previous day): a summary reads the first kind in
/// one scan over its days, the second in one short scan per day (the
/// previous days of `from`'s block before it). Both are keyed by day
/// first, so a batch (its facts' days are a day or two) writes a few runs
/// of neighbouring keys, not cells all over the tree.
fn cell_key(kind: u8, dims: &[u8], day: u32, exact: bool, previous: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(dims.len() + 11);
    key.push(b'd');
    key.push(kind);
    key.extend_from_slice(dims);
    key.push(if exact { EXACT } else { BY_BLOCK });
    key.extend_from_slice(&day.to_be_bytes());
    key.extend_from_slice(&previous.to_be_bytes());
    key
}

fn sums_key(dims: &[u8], day: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(dims.len() + 5);
    key.push(b'S');
    key.extend_from_slice(dims);
    key.extend_from_slice(&day.to_be_bytes());
    key
}

fn histogram_key(kind: u8, dims: &[u8], day: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(dims.len() + 6);
    key.push(b'h');
    key.push(kind);
    key.extend_from_slice(dims);
    key.extend_from_slice(&day.to_be_bytes());
    key
}

fn prefixed(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(rest.len() + 1);
    key.push(tag);
    key.extend_from_slice(rest);
    key
}

/// A value as a batch of facts reads and changes it: decoded once, written
/// once when the batch commits.
trait Stored: Default {
    fn decode(key: &[u8], raw: &[u8]) -> Result<Self>;
    /// The value's bytes; None removes the key (the value is its default).
    fn encode(&self) -> Result<Option<Vec<u8>>>;
}

/// A cell's count (absent: 0).
#[derive(Debug, Default)]
struct Cell(u64);

impl Stored for Cell {
    fn decode(key: &[u8], raw: &[u8]) -> Result<Cell> {
        u64_of(key, raw).map(Cell)
    }

    fn encode(&self) -> Result<Option<Vec<u8>>> {
        Ok((self.0 > 0).then(|| self.0.to_be_bytes().to_vec()))
    }
}

impl Stored for Sums {
    fn decode(key: &[u8], raw: &[u8]) -> Result<Sums> {
        Sums::decode(key, raw)
    }

    fn encode(&self) -> Result<Option<Vec<u8>>> {
        Ok(Some(Sums::encode(self).to_vec()))
    }
}

impl Stored for Histogram {
    fn decode(key: &[u8], raw: &[u8]) -> Result<Histogram> {
        histogram_of(key, raw)
    }

    fn encode(&self) -> Result<Option<Vec<u8>>> {
        Ok(Some(histogram_bytes(self)))
    }
}

impl Stored for ContactRecord {
    fn decode(key: &[u8], raw: &[u8]) -> Result<ContactRecord> {
        ContactRecord::decode(key, raw)
    }

    fn encode(&self) -> Result<Option<Vec<u8>>> {
        Ok(Some(ContactRecord::encode(self)))
    }
}

impl Stored for Option<SentRef> {
    fn decode(key: &[u8], raw: &[u8]) -> Result<Option<SentRef>> {
        from_json(key, raw).map(Some)
    }

    fn encode(&self) -> Result<Option<Vec<u8>>> {
        // Read only: nothing writes `m` keys any more.
        Err(corrupt(b"(legacy sent message)", "not written"))
    }
}

/// The keys of one tree a batch touched: each read from the tree the first
/// time, then from here; the changed ones written once at the end.
struct Touched<'a, T> {
    tree: &'a Tree,
    /// Key -> (value, changed).
    slots: HashMap<Vec<u8>, (T, bool)>,
}

impl<'a, T: Stored> Touched<'a, T> {
    fn new(tree: &'a Tree) -> Self {
        Touched {
            tree,
            slots: HashMap::new(),
        }
    }

    fn slot(&mut self, key: Vec<u8>) -> Result<&mut (T, bool)> {
        Ok(match self.slots.entry(key) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(slot) => {
                let value = match self.tree.get(slot.key())? {
                    Some(raw) => T::decode(slot.key(), &raw)?,
                    None => T::default(),
                };
                slot.insert((value, false))
            }
        })
    }

    /// The value (its default when absent), to read.
    fn read(&mut self, key: Vec<u8>) -> Result<&T> {
        Ok(&self.slot(key)?.0)
    }

    /// The value, to change: written when the batch commits.
    fn change(&mut self, key: Vec<u8>) -> Result<&mut T> {
        let slot = self.slot(key)?;
        slot.1 = true;
        Ok(&mut slot.0)
    }

    fn write_into(self, batch: &mut sled::Batch) -> Result<()> {
        for (key, (value, changed)) in self.slots {
            if changed {
                match value.encode()? {
                    Some(raw) => batch.insert(key, raw),
                    None => batch.remove(key),
                }
            }
        }
        Ok(())
    }
}

/// A batch of facts being counted: every key it touches is read once and
/// written once, by [`Batch::commit`], with the metrics cursor, in one
/// transaction. Facts apply to it in order exactly as they would one by
/// one (a later fact reads what an earlier one changed).
struct Batch<'a> {
    cells: Touched<'a, Cell>,
    sums: Touched<'a, Sums>,
    histograms: Touched<'a, Histogram>,
    contacts: Touched<'a, ContactRecord>,
    /// Sent messages of a store from before [`ContactRecord`] (read only).
    legacy_sent: Touched<'a, Option<SentRef>>,
}

impl<'a> Batch<'a> {
    fn new(trees: &'a Trees) -> Batch<'a> {
        Batch {
            cells: Touched::new(&trees.counters),
            sums: Touched::new(&trees.counters),
            histograms: Touched::new(&trees.counters),
            contacts: Touched::new(&trees.facts),
            legacy_sent: Touched::new(&trees.facts),
        }
    }

    /// Add `delta` (+1 or -1) to cell `(day, previous)`, by block and exactly.
    fn bump(&mut self, kind: u8, dims: &[u8], day: u32, previous: u32, delta: i64) -> Result<()> {
        for (exact, p) in [(false, previous / BLOCK), (true, previous)] {
            let cell = self.cells.change(cell_key(kind, dims, day, exact, p))?;
            cell.0 = cell.0.saturating_add_signed(delta);
        }
        Ok(())
    }

    /// Count the contact of `record` on `day` under `kind` for a fact of
    /// the dimensions `dims` (an index into the record): under each key of
    /// those dimensions, unless counted on that day under it already. The
    /// days counted under a key are those of every entry whose dimensions
    /// are within the key's pattern, so one entry per dimensions serves all
    /// the keys (up to 6) that a set per key would.
    fn count(&mut self, record: &mut ContactRecord, kind: u8, dims: u32, day: u32) -> Result<()> {
        if record
            .counted
            .get(&(kind, dims))
            .is_some_and(|days| days.binary_search(&day).is_ok())
        {
            return Ok(());
        }
        for (pattern, key) in record.dims_of(dims)?.keys() {
            let Some((previous, next)) = record.neighbours(kind, &pattern, day) else {
                continue;
            };
            self.bump(kind, &key, day, previous, 1)?;
            if let Some(next) = next {
                // Counted out of order: the next day's previous day is now `day`.
                self.bump(kind, &key, next, previous, -1)?;
                self.bump(kind, &key, next, day, 1)?;
            }
        }
        record.add_counted(kind, dims, day);
        Ok(())
    }

    fn add_sums(&mut self, record: &ContactRecord, dims: u32, day: u32, add: &Sums) -> Result<()> {
        for (_, key) in record.dims_of(dims)?.keys() {
            self.sums.change(sums_key(&key, day))?.add(add);
        }
        Ok(())
    }

    fn add_wait(&mut self, kind: u8, dims: &[u8], day: u32, seconds: u64) -> Result<()> {
        self.histograms
            .change(histogram_key(kind, dims, day))?
            .add(seconds);
        Ok(())
    }

    fn record(&mut self, fact: &Fact, counting: &Counting) -> Result<()> {
        let key = prefixed(b'c', fact.contact().as_bytes());
        let mut record = std::mem::take(self.contacts.change(key.clone())?);
        let result = self.apply(&mut record, fact, counting);
        *self.contacts.change(key)? = record;
        result
    }

    fn apply(
        &mut self,
        record: &mut ContactRecord,
        fact: &Fact,
        counting: &Counting,
    ) -> Result<()> {
        let window = counting.reply_window;
        match fact {
            Fact::Sent {
                at,
                message_id,
                campaign,
                variant,
                team,
                parts,
                cost,
                ..
            } => {
                let day = day_of(*at);
                let dims = record.intern(&Dims {
                    campaign: campaign.clone(),
                    variant: variant.clone(),
                    team: team.clone(),
                })?;
                let sums = Sums {
                    messages: 1,
                    parts: u64::from(*parts),
                    cost: cost.filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0),
                    conversions: 0,
                };
                self.count(record, SENT, dims, day)?;
                self.add_sums(record, dims, day, &sums)?;
                record.note_sent(Sent {
                    id: message_digest(message_id),
                    day,
                    dims,
                });
                let at = at.timestamp_millis();
                record.note_outbound(Outbound { at, day, dims }, window);
            }
            Fact::Inbound { at, opt_out, .. } => {
                let at = at.timestamp_millis();
                let kind = if *opt_out { OPTED_OUT } else { REPLIED };
                for outbound in record.answered_by(at, window) {
                    self.count(record, kind, outbound.dims, outbound.day)?;
                }
                record.note_time(at, window);
            }
            Fact::FirstResponse {
                at,
                team,
                waited_from,
                business_seconds,
                person_waited_from,
                person_business_seconds,
                ..
            } => {
                // Each wait an answer ended is in one event (the thread
                // takes it as it is answered) and the cursor counts an
                // event once: a present wait is its first response.
                let seconds = |from: &DateTime<Utc>| (*at - *from).num_seconds().max(0) as u64;
                let day = day_of(*at);
                let dims = Dims {
                    team: team.clone(),
                    ..Dims::default()
                };
                for (_, key) in dims.keys() {
                    if let Some(from) = waited_from {
                        self.add_wait(OVERALL, &key, day, seconds(from))?;
                        self.add_wait(OVERALL_BUSINESS, &key, day, *business_seconds)?;
                    }
                    if let Some(from) = person_waited_from {
                        self.add_wait(PERSON, &key, day, seconds(from))?;
                        self.add_wait(PERSON_BUSINESS, &key, day, *person_business_seconds)?;
                    }
                }
                record.note_time(at.timestamp_millis(), window);
            }
            Fact::Outcome {
                at,
                name,
                message_id,
                ..
            } => {
                if counting.is_conversion(name) {
                    // The message that led to it, else the contact's last
                    // outbound before it; with neither it has no period.
                    let led_by = match message_id {
                        Some(id) => match record.sent(id) {
                            Some(sent) => Some((sent.day, sent.dims)),
                            None => match self.legacy_sent.read(prefixed(b'm', id.as_bytes()))? {
                                Some(old) => Some((old.day, record.intern(&old.dims.clone())?)),
                                None => None,
                            },
                        },
                        None => None,
                    };
                    let led_by = led_by.or_else(|| {
                        record
                            .last
                            .filter(|o| o.at <= at.timestamp_millis())
                            .map(|o| (o.day, o.dims))
                    });
                    if let Some((day, dims)) = led_by {
                        let one = Sums {
                            conversions: 1,
                            ..Sums::default()
                        };
                        self.count(record, CONVERTED, dims, day)?;
                        self.add_sums(record, dims, day, &one)?;
                    }
                }
                record.note_time(at.timestamp_millis(), window);
            }
        }
        Ok(())
    }

    /// Write every changed key and the cursor (`next`: the first event not
    /// counted) in one transaction over both trees.
    fn commit(self, trees: &Trees, next: u64) -> Result<()> {
        self.commit_with(trees, CURSOR, &next.to_be_bytes())
    }

    /// [`Batch::commit`] with `key` set to `value` in `facts` (the local
    /// log's cursor, or the mark of another gateway's event).
    fn commit_with(self, trees: &Trees, key: &[u8], value: &[u8]) -> Result<()> {
        let (mut facts, mut counters) = (sled::Batch::default(), sled::Batch::default());
        self.cells.write_into(&mut counters)?;
        self.sums.write_into(&mut counters)?;
        self.histograms.write_into(&mut counters)?;
        self.contacts.write_into(&mut facts)?;
        facts.insert(key, value);
        (&trees.facts, &trees.counters)
            .transaction(|(f, c)| {
                f.apply_batch(&facts)?;
                c.apply_batch(&counters)?;
                Ok::<(), TxError>(())
            })
            .map_err(unwrap_tx)
    }
}

/// Facts an event was counted under before the metrics cursor: `f` and
/// the engine's id for it (`<event id>:metric`).
fn legacy_fact_id(event_id: &str) -> Vec<u8> {
    prefixed(b'f', format!("{event_id}:metric").as_bytes())
}

/// How far past the engine's cursor a store counted with fact ids can have
/// counted (the engine counted each event of a batch before applying it,
/// and read 256 at a time): generously more.
const LEGACY_SCAN: usize = 4 * 256;

impl Store {
    /// Forget `contact`'s record (part of an erasure): the counters keep
    /// what was counted; a later fact of the number counts it as a new
    /// contact.
    pub(crate) fn erase_metric_contact(&self, contact: &str) -> Result<()> {
        let trees = &self.inner.metric_counters;
        let _writer = trees.writer();
        trees.facts.remove(prefixed(b'c', contact.as_bytes()))?;
        Ok(())
    }

    /// Count a batch of facts, each with the sequence of the event it came
    /// from, in event order, and move the metrics cursor past `read_through`
    /// (the last event read, whether it made a fact or not): one
    /// transaction. Facts of events before the cursor were counted by an
    /// earlier batch and are skipped, so reading events again after a crash
    /// counts each once. How many facts were counted.
    ///
    /// Not flushed on its own: a batch lost in a crash is a prefix of the
    /// log lost (sled recovers one), so the cursor is lost with it and its
    /// events, kept by the prune bound, are counted again.
    pub fn record_metrics(
        &self,
        facts: &[(u64, Fact)],
        read_through: u64,
        counting: &Counting,
    ) -> Result<usize> {
        let trees = &self.inner.metric_counters;
        let _writer = trees.writer();
        let from = trees.cursor()?.unwrap_or(0);
        let next = from.max(read_through.saturating_add(1));
        let mut batch = Batch::new(trees);
        let mut counted = 0;
        for (_, fact) in facts.iter().filter(|(seq, _)| *seq >= from) {
            batch.record(fact, counting)?;
            counted += 1;
        }
        if counted > 0 || next != from {
            batch.commit(trees, next)?;
        }
        Ok(counted)
    }

    /// Count the facts of another gateway's event in one transaction with
    /// a mark of that event (`origin`: its site and its sequence in that
    /// gateway's log; `now`: the day the mark is kept from): an event
    /// delivered again (a crash before its acknowledgement, a retry after an
    /// error, a republication by its gateway) is counted once, in whatever
    /// order the events come. How many facts were counted.
    pub fn record_remote_metrics(
        &self,
        facts: &[Fact],
        origin: (&str, u64),
        now: DateTime<Utc>,
        counting: &Counting,
    ) -> Result<usize> {
        let trees = &self.inner.metric_counters;
        let _writer = trees.writer();
        let mark = remote_mark(origin.0, origin.1);
        if facts.is_empty() || trees.facts.contains_key(&mark)? {
            return Ok(0);
        }
        let mut batch = Batch::new(trees);
        for fact in facts {
            batch.record(fact, counting)?;
        }
        batch.commit_with(trees, &mark, &day_of(now).to_be_bytes())?;
        Ok(facts.len())
    }

    /// Remove the marks of other gateways' events counted before `before`:
    /// an event is redelivered or republished only while the events stream
    /// and its gateway's log keep it ([`super::prune::EVENTS_KEEP`] from
    /// its publication), and it was counted once it was published. How many
    /// went (a scan of the marks).
    pub(crate) fn prune_remote_marks(&self, before: DateTime<Utc>) -> Result<usize> {
        let facts = &self.inner.metric_counters.facts;
        let before = day_of(before);
        let mut removed = 0;
        for entry in facts.scan_prefix([REMOTE_MARK]) {
            let (key, raw) = entry?;
            let counted = <[u8; 4]>::try_from(raw.as_ref()).map(u32::from_be_bytes);
            if counted.is_ok_and(|day| day < before) {
                facts.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The metrics cursor: the sequence of the first event not counted
    /// (None: metrics were never counted in this store). Event pruning
    /// keeps the events from it on.
    pub(crate) fn metrics_cursor_if_set(&self) -> Result<Option<u64>> {
        self.inner.metric_counters.cursor()
    }

    /// The metrics cursor, set first if it is not: where the engine's is
    /// (what it has read was counted), or, in a store counted with a fact
    /// id per event, just past the newest event with one (the ids are
    /// removed then).
    pub fn init_metrics_cursor(&self) -> Result<u64> {
        let trees = &self.inner.metric_counters;
        let _writer = trees.writer();
        if let Some(at) = trees.cursor()? {
            return Ok(at);
        }
        let engine = self.engine_cursor()?;
        let mut next = engine;
        for (seq, event) in self.events_from(engine, LEGACY_SCAN)? {
            if trees.facts.contains_key(legacy_fact_id(&event.id))? {
                next = seq.saturating_add(1);
            }
        }
        trees.facts.insert(CURSOR, &next.to_be_bytes())?;
        trees.remove_fact_ids()?;
        Ok(next)
    }

    /// The five metrics over `query`'s days and dimensions, from the
    /// counters (a few reads per day of the period).
    pub fn metrics_summary(&self, query: &SummaryQuery) -> Result<Summary> {
        let counters = &self.inner.metric_counters.counters;
        let dims = Dims::key(
            query.campaign.as_deref(),
            query.variant.as_deref(),
            query.team.as_deref(),
        );
        let (from, to) = (day_number(query.from), day_number(query.to));
        let contacts = |kind: u8| self.distinct(kind, &dims, from, to);
        let sent = contacts(SENT)?;
        let mut sums = Sums::default();
        for entry in counters.range(sums_key(&dims, from)..=sums_key(&dims, to)) {
            let (key, raw) = entry?;
            sums.add(&Sums::decode(&key, &raw)?);
        }
        let waits = |kind: u8| self.waits(kind, &dims, from, to);
        Ok(Summary {
            query: query.clone(),
            reply_rate: Rate::new(contacts(REPLIED)?, sent),
            time_to_first_response: ResponseTimes {
                overall: waits(OVERALL)?.distribution(),
                business_hours: waits(OVERALL_BUSINESS)?.distribution(),
                person: waits(PERSON)?.distribution(),
                person_business_hours: waits(PERSON_BUSINESS)?.distribution(),
            },
            conversion_rate: Rate::new(contacts(CONVERTED)?, sent),
            opt_out_rate: Rate::new(contacts(OPTED_OUT)?, sent),
            cost_per_outcome: CostPerOutcome {
                value: (sums.conversions > 0).then(|| sums.cost / sums.conversions as f64),
                numerator: sums.cost,
                denominator: sums.conversions,
                parts: sums.parts,
            },
            messages_sent: sums.messages,
        })
    }

    /// The distribution of the first responses' waits in business hours
    /// over `query`'s days and team (what a response standard is held
    /// against: the SLA counts business hours), bucket by bucket: the
    /// dashboard's histogram. Kept by team only: a campaign or variant
    /// filter gives an empty one.
    pub fn business_response_waits(&self, query: &SummaryQuery) -> Result<Histogram> {
        let dims = Dims::key(
            query.campaign.as_deref(),
            query.variant.as_deref(),
            query.team.as_deref(),
        );
        self.waits(
            OVERALL_BUSINESS,
            &dims,
            day_number(query.from),
            day_number(query.to),
        )
    }

    /// The histogram of waits of `kind` under `dims` over days `[from, to]`.
    /// Response times are kept by team only: campaign and variant filters
    /// leave them empty.
    fn waits(&self, kind: u8, dims: &[u8], from: u32, to: u32) -> Result<Histogram> {
        let counters = &self.inner.metric_counters.counters;
        // Merged in a flat array: a year can be 100,000s of buckets.
        let mut all = vec![0u64; usize::from(u16::MAX) + 1];
        for entry in counters.range(histogram_key(kind, dims, from)..=histogram_key(kind, dims, to))
        {
            let (key, raw) = entry?;
            for_each_bucket(&key, &raw, |bucket, n| all[usize::from(bucket)] += n)?;
        }
        Ok(Histogram(
            all.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(bucket, n)| (bucket as u16, *n))
                .collect(),
        ))
    }

    /// Contacts counted under `kind` and `dims` on a day in `[from, to]`,
    /// each once: the cells `(d, p)` with `from <= d <= to`, `p < from`.
    fn distinct(&self, kind: u8, dims: &[u8], from: u32, to: u32) -> Result<u64> {
        let counters = &self.inner.metric_counters.counters;
        let block = from / BLOCK;
        let mut total = 0u64;
        // Previous days in the blocks before `from`'s: one scan of the
        // period's days, keeping those blocks.
        let start = cell_key(kind, dims, from, false, 0);
        let end = cell_key(kind, dims, to, false, u32::MAX);
        let prefix = start.len() - 8;
        for entry in counters.range(start..=end) {
            let (key, raw) = entry?;
            let previous_block = key
                .get(prefix + 4..prefix + 8)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| corrupt(&key, "a metric cell key is cut short"))?;
            if previous_block < block {
                total += u64_of(&key, &raw)?;
            }
        }
        // The days of `from`'s block before it: one short scan per day.
        if block * BLOCK < from {
            for day in from..=to {
                let first = cell_key(kind, dims, day, true, block * BLOCK);
                let end = cell_key(kind, dims, day, true, from);
                for entry in counters.range(first..end) {
                    let (key, raw) = entry?;
                    total += u64_of(&key, &raw)?;
                }
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::test_support::TempStore;
    use super::*;

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        // Day 1 is Monday 2 March 2026.
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0).unwrap() + chrono::Duration::days(i64::from(day))
    }

    fn date(day: u32) -> NaiveDate {
        at(day, 0, 0).date_naive()
    }

    fn sent(
        contact: &str,
        when: DateTime<Utc>,
        id: &str,
        dims: (&str, &str, &str),
        parts: u32,
    ) -> Fact {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Fact::Sent {
            contact: contact.into(),
            at: when,
            message_id: id.into(),
            campaign: some(dims.0),
            variant: some(dims.1),
            team: some(dims.2),
            parts,
            cost: Some(f64::from(parts) * 0.05),
        }
    }

    fn inbound(contact: &str, when: DateTime<Utc>, opt_out: bool) -> Fact {
        Fact::Inbound {
            contact: contact.into(),
            at: when,
            opt_out,
        }
    }

    fn outcome(contact: &str, when: DateTime<Utc>, name: &str, message: &str) -> Fact {
        Fact::Outcome {
            contact: contact.into(),
            at: when,
            name: name.into(),
            campaign: None,
            variant: None,
            team: None,
            message_id: Some(message.into()),
        }
    }

    /// The waits an answer ends: the contact's (automation's answer), the
    /// person's only (a person's after automation's), both (a person's).
    #[derive(Debug, Clone, Copy)]
    enum Ends {
        Wait,
        PersonWait,
        Both,
    }

    fn response(
        contact: &str,
        team: &str,
        from: DateTime<Utc>,
        seconds: i64,
        ends: Ends,
        business: u64,
    ) -> Fact {
        let (wait, person) = match ends {
            Ends::Wait => (Some(from), None),
            Ends::PersonWait => (None, Some(from)),
            Ends::Both => (Some(from), Some(from)),
        };
        Fact::FirstResponse {
            contact: contact.into(),
            at: from + chrono::Duration::seconds(seconds),
            team: Some(team.into()),
            waited_from: wait,
            business_seconds: wait.map_or(0, |_| business),
            person_waited_from: person,
            person_business_seconds: person.map_or(0, |_| business),
        }
    }

    fn query(from: u32, to: u32, dims: (&str, &str, &str)) -> SummaryQuery {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        SummaryQuery {
            from: date(from),
            to: date(to),
            campaign: some(dims.0),
            variant: some(dims.1),
            team: some(dims.2),
        }
    }

    /// The contacts of the hand count below.
    const A: &str = "+15550000001";
    const B: &str = "+15550000002";
    const C: &str = "+15550000003";
    const D: &str = "+15550000004";
    const E: &str = "+15550000005";
    const F: &str = "+15550000006";

    /// Facts with the sequences of their events, in the order the engine
    /// would see them.
    fn scenario() -> Vec<(u64, Fact)> {
        let facts = vec![
            // A (spring/a, sales) replies twice within the day.
            sent(A, at(1, 10, 0), "mA", ("spring", "a", "sales"), 1),
            inbound(A, at(1, 10, 5), false),
            response(A, "sales", at(1, 10, 5), 120, Ends::Wait, 120),
            response(A, "sales", at(1, 10, 5), 900, Ends::PersonWait, 900),
            inbound(A, at(1, 11, 0), false),
            // B (spring/b, sales) replies 26 hours later: after the window.
            sent(B, at(1, 10, 0), "mB", ("spring", "b", "sales"), 2),
            // C (spring/a, support) opts out; STOP is not a reply.
            sent(C, at(1, 10, 0), "mC", ("spring", "a", "support"), 1),
            inbound(C, at(1, 10, 30), true),
            // D (spring/b, support) confirms (a conversion) and rates (not one).
            sent(D, at(1, 10, 0), "mD", ("spring", "b", "support"), 1),
            inbound(D, at(1, 11, 0), false),
            response(D, "support", at(1, 11, 0), 30, Ends::Both, 30),
            outcome(D, at(1, 11, 0), "appointment_confirmed", "mD"),
            outcome(D, at(1, 11, 1), "rating_received", "mD"),
            // E (no campaign, support) is sent something on both days.
            sent(E, at(1, 9, 0), "mE1", ("", "", "support"), 1),
            sent(E, at(2, 9, 0), "mE2", ("", "", "support"), 1),
            inbound(B, at(2, 12, 0), false),
            // F was never sent anything: its text counts nowhere.
            inbound(F, at(2, 12, 0), false),
        ];
        facts
            .into_iter()
            .enumerate()
            .map(|(i, f)| (i as u64, f))
            .collect()
    }

    /// Count `facts` one batch each, as an engine reading one event at a
    /// time would; how many were counted.
    fn one_by_one(store: &Store, facts: &[(u64, Fact)], counting: &Counting) -> usize {
        facts
            .iter()
            .map(|fact| {
                store
                    .record_metrics(std::slice::from_ref(fact), fact.0, counting)
                    .unwrap()
            })
            .sum()
    }

    #[test]
    fn another_gateways_facts_count_once_and_beside_the_local_ones() {
        let t = TempStore::new();
        let counting = Counting::default();
        let here = sent("+15550000001", at(1, 9, 0), "msg_here", ("", "", ""), 1);
        let there = sent("+15550000002", at(1, 9, 5), "msg_there", ("", "", ""), 1);
        let later = sent("+15550000004", at(1, 9, 6), "msg_later", ("", "", ""), 1);
        let remote = |fact: &Fact, origin: (&str, u64)| {
            t.store
                .record_remote_metrics(std::slice::from_ref(fact), origin, fact.at(), &counting)
                .unwrap()
        };
        t.store.record_metrics(&[(0, here)], 0, &counting).unwrap();
        // Site north's event 7 is retried after an error, by which time its
        // event 9 was counted: both count, once.
        assert_eq!(remote(&later, ("north", 9)), 1);
        assert_eq!(remote(&there, ("north", 7)), 1);
        // Delivered again, or published again by its gateway: not counted.
        assert_eq!(remote(&there, ("north", 7)), 0);
        assert_eq!(remote(&later, ("north", 9)), 0);
        // The same sequence at another site is another event.
        let south = sent("+15550000005", at(1, 9, 7), "msg_south", ("", "", ""), 1);
        assert_eq!(remote(&south, ("south", 7)), 1);
        let all = t.store.metrics_summary(&query(1, 1, ("", "", ""))).unwrap();
        assert_eq!(all.messages_sent, 4);
        assert_eq!(all.reply_rate.denominator, 4);
        // The local cursor is its own: the local log's next event counts.
        let next = sent("+15550000003", at(1, 9, 9), "msg_next", ("", "", ""), 1);
        assert_eq!(
            t.store.record_metrics(&[(1, next)], 1, &counting).unwrap(),
            1
        );
        // The marks go with their day; the counts stay.
        assert_eq!(t.store.prune_remote_marks(at(2, 0, 0)).unwrap(), 3);
        assert_eq!(t.store.prune_remote_marks(at(2, 0, 0)).unwrap(), 0);
        let all = t.store.metrics_summary(&query(1, 1, ("", "", ""))).unwrap();
        assert_eq!(all.messages_sent, 5);
    }

    #[test]
    fn metrics_match_a_hand_count() {
        let t = TempStore::new();
        let counting = Counting::default();
        assert_eq!(one_by_one(&t.store, &scenario(), &counting), 17);
        let all = t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap();
        // Sent: A B C D E = 5 contacts (E once over both days), 6 messages.
        // Replied within 24 h: A (twice, counted once) and D; B replied
        // after the window; C's STOP is an opt-out, not a reply.
        assert_eq!(all.reply_rate, Rate::new(2, 5), "A and D");
        assert_eq!(all.opt_out_rate, Rate::new(1, 5), "C");
        assert_eq!(all.conversion_rate, Rate::new(1, 5), "D confirmed");
        assert_eq!(all.messages_sent, 6);
        // Parts 1+2+1+1+1+1 = 7 at 0.05: 0.35 for one conversion.
        assert_eq!(all.cost_per_outcome.parts, 7);
        assert_eq!(all.cost_per_outcome.denominator, 1);
        assert!((all.cost_per_outcome.numerator - 0.35).abs() < 1e-9);
        assert!((all.cost_per_outcome.value.unwrap() - 0.35).abs() < 1e-9);
        // First responses: A's automation (120 s; the person's later 900 s
        // is not the first), D's person (30 s). Nearest rank of two.
        let ttfr = all.time_to_first_response;
        assert_eq!(
            (
                ttfr.overall.count,
                ttfr.overall.median_s,
                ttfr.overall.p90_s
            ),
            (2, Some(30), Some(120))
        );
        assert_eq!(ttfr.business_hours, ttfr.overall);
        // By a person: D's 30 s and A's 900 s (above two minutes a wait is
        // its bucket's middle: 896-903 s, 900).
        assert_eq!(
            (ttfr.person.count, ttfr.person.median_s, ttfr.person.p90_s),
            (2, Some(30), Some(900))
        );

        // One dimension: the spring campaign is A B C D.
        let spring = t
            .store
            .metrics_summary(&query(1, 2, ("spring", "", "")))
            .unwrap();
        assert_eq!(spring.reply_rate, Rate::new(2, 4));
        assert_eq!(spring.opt_out_rate, Rate::new(1, 4));
        assert_eq!(spring.conversion_rate, Rate::new(1, 4));
        assert_eq!(spring.cost_per_outcome.parts, 5);
        assert_eq!(
            spring.time_to_first_response.overall.count, 0,
            "by team only"
        );
        // Two: spring variant a is A and C.
        let a = t
            .store
            .metrics_summary(&query(1, 2, ("spring", "a", "")))
            .unwrap();
        assert_eq!(
            (a.reply_rate, a.opt_out_rate, a.conversion_rate),
            (Rate::new(1, 2), Rate::new(1, 2), Rate::new(0, 2))
        );
        assert_eq!(a.cost_per_outcome.value, None, "no conversion");
        // Team support: C D E; with the campaign: C D.
        let support = t
            .store
            .metrics_summary(&query(1, 2, ("", "", "support")))
            .unwrap();
        assert_eq!(
            (
                support.reply_rate,
                support.opt_out_rate,
                support.conversion_rate
            ),
            (Rate::new(1, 3), Rate::new(1, 3), Rate::new(1, 3))
        );
        assert_eq!(support.time_to_first_response.overall.count, 1);
        assert_eq!(support.time_to_first_response.overall.median_s, Some(30));
        let both = t
            .store
            .metrics_summary(&query(1, 2, ("spring", "", "support")))
            .unwrap();
        assert_eq!(
            (both.reply_rate.denominator, both.conversion_rate.numerator),
            (2, 1)
        );
        // Variants add up to the campaign (distinct contacts: disjoint here).
        let b = t
            .store
            .metrics_summary(&query(1, 2, ("spring", "b", "")))
            .unwrap();
        assert_eq!(
            a.reply_rate.denominator + b.reply_rate.denominator,
            spring.reply_rate.denominator
        );
        assert_eq!(
            a.reply_rate.numerator + b.reply_rate.numerator,
            spring.reply_rate.numerator
        );

        // Period boundaries: E counts once over both days, once in each.
        let day1 = t.store.metrics_summary(&query(1, 1, ("", "", ""))).unwrap();
        let day2 = t.store.metrics_summary(&query(2, 2, ("", "", ""))).unwrap();
        assert_eq!(
            (day1.reply_rate.denominator, day2.reply_rate.denominator),
            (5, 1)
        );
        assert_eq!((day1.messages_sent, day2.messages_sent), (5, 1));
        // A reply counts on the day of the outbound it answers; day 2's
        // only outbound (E's) got none.
        assert_eq!(day2.reply_rate.numerator, 0);
        let none = t
            .store
            .metrics_summary(&query(3, 30, ("", "", "")))
            .unwrap();
        assert_eq!((none.reply_rate, none.messages_sent), (Rate::new(0, 0), 0));
        assert_eq!(none.reply_rate.value, None);

        // Every fact again, from the same events: nothing changes.
        assert_eq!(one_by_one(&t.store, &scenario(), &counting), 0);
        assert_eq!(
            t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap(),
            all
        );
    }

    #[test]
    fn counters_survive_a_restart() {
        let mut t = TempStore::new();
        let counting = Counting::default();
        one_by_one(&t.store, &scenario(), &counting);
        let before = t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap();
        t.restart();
        assert_eq!(
            t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap(),
            before
        );
        // Counting continues where it was: the cursor is still known.
        assert_eq!(t.store.metrics_cursor_if_set().unwrap(), Some(17));
        assert_eq!(one_by_one(&t.store, &scenario()[..1], &counting), 0);
    }

    /// Records in the encoding that kept a wait (version 1, written before
    /// first responses were counted from the waits an answer ended) read
    /// as they were and count on exactly; an unknown version is an error.
    #[test]
    fn records_that_kept_a_wait_count_on_exactly() {
        let counting = Counting::default();
        let facts = scenario();
        let reference = TempStore::new();
        one_by_one(&reference.store, &facts, &counting);

        let mut t = TempStore::new();
        one_by_one(&t.store, &facts[..9], &counting);
        let counted = summaries(&t.store);
        let trees = &t.store.inner.metric_counters;
        let mut rewritten = 0;
        for (i, entry) in trees.facts.scan_prefix(b"c").enumerate() {
            let (key, raw) = entry.unwrap();
            assert_eq!(raw[0], RECORD_VERSION);
            // With a wait on every other record, none on the rest.
            let wait: &[u8] = if i % 2 == 0 {
                &[1 | 2, 0, 0, 1, 0x8f, 0, 0, 0, 0]
            } else {
                &[0]
            };
            let old = [&[RECORD_VERSION_WITH_WAIT][..], &raw[1..9], wait, &raw[9..]].concat();
            let decoded = ContactRecord::decode(&key, &old).unwrap();
            assert_eq!(decoded, ContactRecord::decode(&key, &raw).unwrap());
            trees.facts.insert(&key, old).unwrap();
            rewritten += 1;
        }
        assert_eq!(rewritten, 4, "A B C D");
        t.restart();
        assert_eq!(summaries(&t.store), counted);
        one_by_one(&t.store, &facts, &counting);
        assert_eq!(summaries(&t.store), summaries(&reference.store));

        let unknown = [&[9u8][..], &[0; 8]].concat();
        assert!(ContactRecord::decode(b"cX", &unknown).is_err());
        assert!(ContactRecord::decode(b"cX", &[RECORD_VERSION_WITH_WAIT, 0, 0]).is_err());
    }

    #[test]
    fn a_longer_window_and_other_conversions_count_from_the_settings() {
        let t = TempStore::new();
        let counting = Counting {
            reply_window: Duration::from_secs(48 * 3600),
            conversions: vec!["rating_received".into()],
        };
        one_by_one(&t.store, &scenario(), &counting);
        let all = t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap();
        // B's reply after 26 hours is within 48: A, B and D replied.
        assert_eq!(all.reply_rate, Rate::new(3, 5));
        // D's rating is the conversion now, the confirmation is not.
        assert_eq!(all.conversion_rate, Rate::new(1, 5));
        assert_eq!(all.cost_per_outcome.denominator, 1);
    }

    /// Counting a contact once per period, against a model: contacts sent
    /// on random days under random dimensions (several per contact, some
    /// without a campaign, variant or team), recorded in random order (out
    /// of time order too), across block boundaries; every period of the
    /// span checked for all, and a sixth of them for each filter.
    #[test]
    fn distinct_contacts_match_a_model_for_every_period() {
        let t = TempStore::new();
        let counting = Counting::default();
        let tuples = [
            ("", "", ""),
            ("", "", "t1"),
            ("c1", "", "t1"),
            ("c1", "v1", "t1"),
            ("c1", "v2", ""),
            ("c2", "v1", "t2"),
        ];
        let patterns = [
            ("", "", ""),
            ("c1", "", ""),
            ("c1", "v1", ""),
            ("", "", "t1"),
            ("c1", "", "t1"),
            ("c1", "v1", "t1"),
            ("c2", "v1", "t2"),
            ("", "", "t2"),
        ];
        let within = |tuple: (&str, &str, &str), pattern: (&str, &str, &str)| {
            let one = |v: &str, p: &str| p.is_empty() || v == p;
            one(tuple.0, pattern.0) && one(tuple.1, pattern.1) && one(tuple.2, pattern.2)
        };
        // Per contact: the (day, tuple) of each send.
        let mut model: Vec<Vec<(u32, usize)>> = vec![Vec::new(); 12];
        let mut seed: u64 = 0x5eed;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for i in 0..200 {
            let contact = next(12) as usize;
            let day = 10 + next(40) as u32;
            let tuple = next(tuples.len() as u64) as usize;
            let fact = sent(
                &format!("+1555100{contact:04}"),
                at(day, 12, 0),
                &format!("m{i}"),
                tuples[tuple],
                1,
            );
            t.store.record_metrics(&[(i, fact)], i, &counting).unwrap();
            model[contact].push((day, tuple));
        }
        for (n, pattern) in patterns.into_iter().enumerate() {
            for from in 8..52 {
                if n > 0 && from % 6 != n as u32 % 6 {
                    continue;
                }
                for to in from..52 {
                    let want = model
                        .iter()
                        .filter(|sends| {
                            sends.iter().any(|(day, tuple)| {
                                (from..=to).contains(day) && within(tuples[*tuple], pattern)
                            })
                        })
                        .count() as u64;
                    let got = t.store.metrics_summary(&query(from, to, pattern)).unwrap();
                    assert_eq!(
                        got.reply_rate.denominator, want,
                        "{pattern:?} days {from}..={to}"
                    );
                }
            }
        }
    }

    /// The five metrics over a few periods and dimensions, to compare two
    /// stores.
    fn summaries(store: &Store) -> Vec<Summary> {
        let periods = [(1, 2), (1, 1), (2, 2), (1, 40), (10, 17), (16, 40)];
        let dims = [
            ("", "", ""),
            ("spring", "", ""),
            ("spring", "a", ""),
            ("", "", "support"),
            ("spring", "b", "sales"),
            ("c1", "", ""),
            ("c1", "v1", "t1"),
            ("", "", "t2"),
        ];
        let mut out = Vec::new();
        for (from, to) in periods {
            for d in dims {
                out.push(store.metrics_summary(&query(from, to, d)).unwrap());
            }
        }
        out
    }

    /// A crash between batches: what a batch wrote is there after the
    /// restart (the cursor with it), and when the engine reads those
    /// events again with the next ones, they are not counted twice.
    #[test]
    fn a_batch_is_counted_once_across_a_restart() {
        let counting = Counting::default();
        let facts = scenario();
        let reference = TempStore::new();
        one_by_one(&reference.store, &facts, &counting);

        let mut t = TempStore::new();
        // The first batch: events 0..=9 read, 0..=7 with facts (8 and 9
        // made none: their facts are left out of the batch).
        let first: Vec<(u64, Fact)> = facts[..8].to_vec();
        assert_eq!(t.store.record_metrics(&first, 9, &counting).unwrap(), 8);
        let before = summaries(&t.store);
        t.restart();
        assert_eq!(t.store.metrics_cursor_if_set().unwrap(), Some(10));
        assert_eq!(summaries(&t.store), before, "the batch is not lost");
        // Events 0..=16 read again (the engine's cursor was behind): only
        // 10..=16 count.
        let counted = t.store.record_metrics(&facts, 16, &counting).unwrap();
        assert_eq!(counted, 7);
        assert_eq!(t.store.metrics_cursor_if_set().unwrap(), Some(17));
        // Facts 8 and 9 were never counted, so this store differs from the
        // reference by them alone: count them where they were lost.
        let partial = TempStore::new();
        let without: Vec<(u64, Fact)> = facts
            .iter()
            .filter(|(seq, _)| !(8..=9).contains(seq))
            .cloned()
            .collect();
        one_by_one(&partial.store, &without, &counting);
        assert_eq!(summaries(&t.store), summaries(&partial.store));

        // The whole scenario in two batches around a restart: the same
        // counts as one fact at a time.
        let mut u = TempStore::new();
        assert_eq!(
            u.store.record_metrics(&facts[..10], 9, &counting).unwrap(),
            10
        );
        u.restart();
        assert_eq!(u.store.record_metrics(&facts, 16, &counting).unwrap(), 7);
        assert_eq!(summaries(&u.store), summaries(&reference.store));
        assert_eq!(u.store.record_metrics(&facts, 16, &counting).unwrap(), 0);
        assert_eq!(summaries(&u.store), summaries(&reference.store));
    }

    /// A store counted with a fact id per event (before the cursor): the
    /// cursor starts just past the newest counted event, the ids go.
    #[tokio::test]
    async fn fact_ids_of_an_older_store_become_the_cursor() {
        let mut t = TempStore::new();
        let mut events = Vec::new();
        for i in 0..5 {
            let data = serde_json::json!({ "contact": format!("+1555000000{i}") });
            events.push(t.store.emit("message.received", data).await.unwrap());
        }
        let seq = |i: usize| super::super::deliveries::event_seq(&events[i].id).unwrap();
        // The engine applied events 0 and 1 and counted 0..=3 (3 made a
        // fact; 2 made none, so it has no id).
        t.store.advance_engine_cursor(seq(1)).unwrap();
        let facts = &t.store.inner.metric_counters.facts;
        for i in [0, 1, 3] {
            facts.insert(legacy_fact_id(&events[i].id), &[]).unwrap();
        }
        assert_eq!(t.store.init_metrics_cursor().unwrap(), seq(3) + 1);
        let facts = &t.store.inner.metric_counters.facts;
        assert_eq!(facts.scan_prefix(b"f").count(), 0);
        // Ids left by an interrupted removal go when the store opens.
        facts.insert(legacy_fact_id("evt_x"), &[]).unwrap();
        t.restart();
        let facts = &t.store.inner.metric_counters.facts;
        assert_eq!(facts.scan_prefix(b"f").count(), 0);
        assert_eq!(t.store.init_metrics_cursor().unwrap(), seq(3) + 1);
    }

    /// Rewrite every contact record of `store` as a store from before
    /// [`ContactRecord`] kept it: a counted-day set per kind, dimension key
    /// and contact (`s`), the state as JSON (`c`), and an `m` key per sent
    /// message of `sent` (id, day, dimensions); and its exact cells keyed
    /// by the previous day first, with no layout mark.
    fn to_legacy_layout(store: &Store, sent: &[(String, u32, Dims)]) {
        let counters = &store.inner.metric_counters.counters;
        let mut exact = 0;
        for entry in counters.scan_prefix(b"d") {
            let (key, raw) = entry.unwrap();
            let (_, len) = Dims::parse_key(&key[2..]).unwrap();
            let at = 2 + len;
            if key[at] == EXACT {
                let (day, previous) = (&key[at + 1..at + 5], &key[at + 5..at + 9]);
                let old = [&key[..at], &[EXACT_PREVIOUS_FIRST], previous, day].concat();
                counters.insert(old, raw).unwrap();
                counters.remove(&key).unwrap();
                exact += 1;
            }
        }
        assert!(exact > 0, "the scenario has exact cells to re-key");
        counters.remove(LAYOUT).unwrap();
        let facts = &store.inner.metric_counters.facts;
        let json_of = |record: &ContactRecord, o: &Outbound| {
            let d = &record.dims[o.dims as usize];
            serde_json::json!({"at": o.at, "day": o.day, "campaign": d.campaign,
                "variant": d.variant, "team": d.team})
        };
        for entry in facts.scan_prefix(b"c") {
            let (key, raw) = entry.unwrap();
            let record = ContactRecord::decode(&key, &raw).unwrap();
            let contact = &key[1..];
            let mut sets: BTreeMap<Vec<u8>, Vec<u32>> = BTreeMap::new();
            for ((kind, dims), days) in &record.counted {
                for (pattern, dims_key) in record.dims[*dims as usize].keys() {
                    let mut union = std::collections::BTreeSet::new();
                    for ((k, i), other) in &record.counted {
                        if k == kind && record.dims[*i as usize].within(&pattern) {
                            union.extend(other.iter().copied());
                        }
                    }
                    let set_key = [&[b's', *kind][..], &dims_key, contact].concat();
                    sets.insert(set_key, union.into_iter().collect());
                    let _ = days;
                }
            }
            for (set_key, days) in sets {
                let raw: Vec<u8> = days.iter().flat_map(|d| d.to_be_bytes()).collect();
                facts.insert(set_key, raw).unwrap();
            }
            let state = serde_json::json!({
                "recent": record.recent.iter().map(|o| json_of(&record, o)).collect::<Vec<_>>(),
                "last": record.last.as_ref().map(|o| json_of(&record, o)),
                "newest": record.newest,
                "wait": {"from": 1, "overall": true, "person": false},
            });
            facts
                .insert(&key, serde_json::to_vec(&state).unwrap())
                .unwrap();
        }
        for (id, day, dims) in sent {
            let value = serde_json::json!({"day": day, "campaign": dims.campaign,
                "variant": dims.variant, "team": dims.team});
            facts
                .insert(
                    prefixed(b'm', id.as_bytes()),
                    serde_json::to_vec(&value).unwrap(),
                )
                .unwrap();
        }
    }

    /// A store counted in the layout from before [`ContactRecord`] (a key
    /// per counted-day set, JSON state, a key per sent message, exact cells
    /// keyed by the previous day first): opened, its sets fold into
    /// records and its cells are re-keyed, its summaries are what they
    /// were, and counting goes on exactly as if it had always been in this
    /// layout; an outcome naming a message sent before the change finds it.
    #[test]
    fn a_store_counted_in_the_older_layout_counts_on_exactly() {
        let counting = Counting::default();
        let mut facts = scenario();
        // D is sent another message (another campaign, day 2), then an
        // outcome names the first: counted on day 1 under spring/b.
        facts.push((17, sent(D, at(2, 9, 0), "mD2", ("autumn", "a", "sales"), 1)));
        facts.push((18, outcome(D, at(2, 10, 0), "appointment_booked", "mD")));
        let reference = TempStore::new();
        one_by_one(&reference.store, &facts, &counting);

        let mut t = TempStore::new();
        // Through the sends to A B C D (and A's answers), before D's outcome.
        let before: Vec<(u64, Fact)> = facts[..9].to_vec();
        one_by_one(&t.store, &before, &counting);
        let sent: Vec<(String, u32, Dims)> = before
            .iter()
            .filter_map(|(_, f)| match f {
                Fact::Sent {
                    at,
                    message_id,
                    campaign,
                    variant,
                    team,
                    ..
                } => Some((
                    message_id.clone(),
                    day_of(*at),
                    Dims {
                        campaign: campaign.clone(),
                        variant: variant.clone(),
                        team: team.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        let counted = summaries(&t.store);
        to_legacy_layout(&t.store, &sent);
        t.restart();
        assert_eq!(summaries(&t.store), counted, "the same counts");
        let trees = &t.store.inner.metric_counters;
        assert_eq!(trees.facts.scan_prefix(b"s").count(), 0, "folded");
        let previous_first = trees
            .counters
            .scan_prefix(b"d")
            .filter(|entry| {
                let (key, _) = entry.as_ref().unwrap();
                let (_, len) = Dims::parse_key(&key[2..]).unwrap();
                key[2 + len] == EXACT_PREVIOUS_FIRST
            })
            .count();
        assert_eq!(previous_first, 0, "exact cells re-keyed by day");
        assert!(trees.counters.get(LAYOUT).unwrap().is_some());
        assert!(trees.facts.scan_prefix(b"m").count() == 4, "read only");
        one_by_one(&t.store, &facts, &counting);
        assert_eq!(summaries(&t.store), summaries(&reference.store));
        let day1 = t
            .store
            .metrics_summary(&query(1, 1, ("spring", "b", "")))
            .unwrap();
        assert_eq!(day1.conversion_rate, Rate::new(1, 2), "D, by mD");
    }

    /// One random fact: (kind, contact, day, minute, campaign, variant,
    /// team, flag, parts, which earlier message or which waits an answer
    /// ends).
    type Op = (u8, u8, u32, u32, u8, u8, u8, bool, u32, usize);

    fn facts_of(ops: &[Op]) -> Vec<(u64, Fact)> {
        let mut sent_ids: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for (seq, &(kind, contact, day, minute, c, v, team, flag, parts, which)) in
            ops.iter().enumerate()
        {
            let contact = format!("+1555200000{contact}");
            let when = at(day, 0, 0) + chrono::Duration::minutes(i64::from(minute));
            let campaign = ["", "spring", "c1"][usize::from(c)];
            let variant = if campaign.is_empty() {
                ""
            } else {
                ["a", "b", "v1"][usize::from(v)]
            };
            let team = ["sales", "support", "t1", "t2"][usize::from(team)];
            let fact = match kind {
                0 => {
                    let id = format!("m{seq}");
                    sent_ids.push(id.clone());
                    sent(&contact, when, &id, (campaign, variant, team), parts)
                }
                1 => inbound(&contact, when, flag),
                2 => {
                    let ends = [Ends::Wait, Ends::PersonWait, Ends::Both][which % 3];
                    response(&contact, team, when, i64::from(parts) * 97, ends, 60)
                }
                _ => {
                    let name = if flag {
                        "appointment_confirmed"
                    } else {
                        "rating_received"
                    };
                    // An earlier message, or one never recorded.
                    let message = sent_ids
                        .get(which % (sent_ids.len() + 1))
                        .cloned()
                        .unwrap_or_else(|| "unknown".into());
                    outcome(&contact, when, name, &message)
                }
            };
            out.push((seq as u64, fact));
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

        /// Batching changes nothing: random facts (out of time order too)
        /// counted in batches of random sizes give the same summaries as
        /// counted one at a time.
        #[test]
        fn batches_count_as_one_fact_at_a_time(
            ops in proptest::collection::vec(
                (0u8..4, 0u8..5, 1u32..40, 0u32..1440, 0u8..3, 0u8..3, 0u8..4,
                 proptest::bool::ANY, 1u32..4, 0usize..50),
                1..120,
            ),
            sizes in proptest::collection::vec(1usize..40, 1..10),
        ) {
            let counting = Counting::default();
            let facts = facts_of(&ops);
            let single = TempStore::new();
            proptest::prop_assert_eq!(one_by_one(&single.store, &facts, &counting), facts.len());
            let batched = TempStore::new();
            let mut rest = facts.as_slice();
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (batch, after) = rest.split_at((*size).min(rest.len()));
                let last = batch[batch.len() - 1].0;
                proptest::prop_assert_eq!(
                    batched.store.record_metrics(batch, last, &counting).unwrap(),
                    batch.len()
                );
                rest = after;
            }
            proptest::prop_assert_eq!(summaries(&batched.store), summaries(&single.store));
        }
    }
}
