//! The metric counters: kept as facts are recorded (per UTC day, campaign,
//! variant and team), so a summary reads a few counters per day of its
//! period and never scans messages or contacts.
//!
//! # Counting a contact once over any period
//!
//! Rates count contacts, each once, over an arbitrary run of days. For each
//! counted thing (sent, replied, opted out, converted) and each dimension
//! key, a contact's counted days are kept (`sets`); when the contact is
//! counted on day `d` whose previous counted day is `p` (or never), cell
//! `(d, p)` gains one. A contact has a counted day in `[from, to]` iff
//! exactly one of its days there has its previous day before `from` (the
//! first in the period), so the contacts of a period are the sum of cells
//! `(d, p)` with `from <= d <= to` and `p < from`. A day counted out of
//! order (before a later one already counted) moves its successor's cell,
//! so the sum stays exact. To read few cells per day, each cell is kept
//! twice: by `p`'s 16-day block and by `p` itself; `p < from` is the blocks
//! before `from`'s block plus the days of `from`'s block before `from`.
//!
//! Dimension keys: every fact counts under each combination of its
//! campaign, variant (with its campaign) and team and "all" (up to 6
//! keys), so a summary with any filters reads one key.
//!
//! Trees: `metric_facts` (bookkeeping: fact ids seen, each sent message's
//! day and dimensions, each contact's recent outbounds and current wait,
//! the counted-day sets) and `metric_counters` (what a summary reads).
//! Recording a fact is one transaction over both, fact id included.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::{Transactional, Tree};

use super::{from_json_tx, to_json, unwrap_tx, Result, Store, StoreError, TxError};
use crate::conversation::metrics::{
    CostPerOutcome, Counting, Fact, Histogram, Rate, ResponseTimes, Summary, SummaryQuery,
};

/// The trees of this file, opened with the store.
pub(crate) struct Trees {
    /// `f` fact id -> (); `m` message id -> [`SentRef`]; `c` contact ->
    /// [`ContactState`]; `s` kind, dimension key, contact -> counted days.
    facts: Tree,
    /// `d` kind, dimension key, 0, day, block -> count and `d` kind,
    /// dimension key, 1, previous day, day -> count (the cells above);
    /// `S` dimension key, day -> [`Sums`]; `h` histogram, dimension key,
    /// day -> sparse histogram.
    counters: Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Trees> {
        Ok(Trees {
            facts: db.open_tree("metric_facts")?,
            counters: db.open_tree("metric_counters")?,
        })
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

/// A fact's campaign, variant and team.
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

    /// Every key this fact counts under: each dimension as itself or "all"
    /// (a variant only with its campaign: variants are a campaign's).
    fn keys(&self) -> Vec<Vec<u8>> {
        fn choices(v: &Option<String>) -> Vec<Option<&str>> {
            match v {
                Some(v) => vec![None, Some(v.as_str())],
                None => vec![None],
            }
        }
        let mut keys = Vec::new();
        for c in choices(&self.campaign) {
            let variants = if c.is_some() {
                choices(&self.variant)
            } else {
                vec![None]
            };
            for v in variants {
                for t in choices(&self.team) {
                    keys.push(Dims::key(c, v, t));
                }
            }
        }
        keys
    }
}

/// What an outcome needs of the message that led to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SentRef {
    day: u32,
    #[serde(flatten)]
    dims: Dims,
}

/// An outbound as a later reply or outcome is attributed to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Outbound {
    /// Milliseconds since the epoch.
    at: i64,
    day: u32,
    #[serde(flatten)]
    dims: Dims,
}

/// A wait's first responses counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Wait {
    from: i64,
    overall: bool,
    person: bool,
}

/// Per contact: what attributing its next facts needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ContactState {
    /// Outbounds within the reply window of the newest fact, one per (day,
    /// dimensions) with its latest time.
    #[serde(default)]
    recent: Vec<Outbound>,
    /// The latest outbound (an outcome whose message is unknown is
    /// attributed to it).
    #[serde(default)]
    last: Option<Outbound>,
    /// The newest fact's time (ms).
    #[serde(default)]
    newest: i64,
    #[serde(default)]
    wait: Option<Wait>,
}

impl ContactState {
    fn note_time(&mut self, at: i64, window: Duration) {
        self.newest = self.newest.max(at);
        let oldest = self
            .newest
            .saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        self.recent.retain(|o| o.at >= oldest);
    }

    fn note_outbound(&mut self, outbound: Outbound, window: Duration) {
        if self.last.as_ref().is_none_or(|l| l.at <= outbound.at) {
            self.last = Some(outbound.clone());
        }
        let at = outbound.at;
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
        self.note_time(at, window);
    }

    /// The outbounds an inbound at `at` follows within `window`.
    fn answered_by(&self, at: i64, window: Duration) -> Vec<Outbound> {
        let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        self.recent
            .iter()
            .filter(|o| o.at <= at && at.saturating_sub(o.at) <= window)
            .cloned()
            .collect()
    }
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

fn abort(e: StoreError) -> TxError {
    ConflictableTransactionError::Abort(e)
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
/// exactly (previous day, then day): a summary reads the first kind in one
/// scan over its days, the second for at most [`BLOCK`] previous days.
fn cell_key(kind: u8, dims: &[u8], day: u32, exact: bool, previous: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(dims.len() + 11);
    key.push(b'd');
    key.push(kind);
    key.extend_from_slice(dims);
    key.push(u8::from(exact));
    let (first, second) = if exact {
        (previous, day)
    } else {
        (day, previous)
    };
    key.extend_from_slice(&first.to_be_bytes());
    key.extend_from_slice(&second.to_be_bytes());
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

/// One fact's changes, inside the transaction.
struct Recorder<'a> {
    facts: &'a TransactionalTree,
    counters: &'a TransactionalTree,
}

impl Recorder<'_> {
    /// Add `delta` (+1 or -1) to cell `(day, previous)`, by block and exactly.
    fn bump(
        &self,
        kind: u8,
        dims: &[u8],
        day: u32,
        previous: u32,
        delta: i64,
    ) -> std::result::Result<(), TxError> {
        for (exact, p) in [(false, previous / BLOCK), (true, previous)] {
            let key = cell_key(kind, dims, day, exact, p);
            let now = match self.counters.get(&key)? {
                Some(raw) => u64_of(&key, &raw).map_err(abort)?,
                None => 0,
            };
            let next = now.saturating_add_signed(delta);
            if next == 0 {
                self.counters.remove(key)?;
            } else {
                self.counters.insert(key, &next.to_be_bytes())?;
            }
        }
        Ok(())
    }

    /// Count `contact` on `day` under `kind` and `dims` (once per day).
    fn count(
        &self,
        kind: u8,
        dims: &[u8],
        contact: &str,
        day: u32,
    ) -> std::result::Result<(), TxError> {
        let mut key = vec![b's', kind];
        key.extend_from_slice(dims);
        key.extend_from_slice(contact.as_bytes());
        let mut days = match self.facts.get(&key)? {
            Some(raw) => days_of(&key, &raw).map_err(abort)?,
            None => Vec::new(),
        };
        let Err(at) = days.binary_search(&day) else {
            return Ok(());
        };
        let previous = if at > 0 { days[at - 1] } else { NEVER };
        self.bump(kind, dims, day, previous, 1)?;
        if let Some(&next) = days.get(at) {
            // Counted out of order: the next day's previous day is now `day`.
            self.bump(kind, dims, next, previous, -1)?;
            self.bump(kind, dims, next, day, 1)?;
        }
        days.insert(at, day);
        let raw: Vec<u8> = days.iter().flat_map(|d| d.to_be_bytes()).collect();
        self.facts.insert(key, raw)?;
        Ok(())
    }

    fn add_sums(&self, dims: &[u8], day: u32, add: &Sums) -> std::result::Result<(), TxError> {
        let key = sums_key(dims, day);
        let mut sums = match self.counters.get(&key)? {
            Some(raw) => Sums::decode(&key, &raw).map_err(abort)?,
            None => Sums::default(),
        };
        sums.add(add);
        self.counters.insert(key, &sums.encode())?;
        Ok(())
    }

    fn add_wait(
        &self,
        kind: u8,
        dims: &[u8],
        day: u32,
        seconds: u64,
    ) -> std::result::Result<(), TxError> {
        let key = histogram_key(kind, dims, day);
        let mut h = match self.counters.get(&key)? {
            Some(raw) => histogram_of(&key, &raw).map_err(abort)?,
            None => Histogram::default(),
        };
        h.add(seconds);
        self.counters.insert(key, histogram_bytes(&h))?;
        Ok(())
    }

    fn state(&self, contact: &str) -> std::result::Result<ContactState, TxError> {
        let key = prefixed(b'c', contact.as_bytes());
        match self.facts.get(&key)? {
            Some(raw) => from_json_tx(&key, &raw),
            None => Ok(ContactState::default()),
        }
    }

    fn save_state(&self, contact: &str, state: &ContactState) -> std::result::Result<(), TxError> {
        self.facts
            .insert(prefixed(b'c', contact.as_bytes()), to_json(state)?)?;
        Ok(())
    }

    fn record(&self, fact: &Fact, counting: &Counting) -> std::result::Result<(), TxError> {
        let window = counting.reply_window;
        let contact = fact.contact();
        let mut state = self.state(contact)?;
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
                let dims = Dims {
                    campaign: campaign.clone(),
                    variant: variant.clone(),
                    team: team.clone(),
                };
                let sums = Sums {
                    messages: 1,
                    parts: u64::from(*parts),
                    cost: cost.filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0),
                    conversions: 0,
                };
                for key in dims.keys() {
                    self.count(SENT, &key, contact, day)?;
                    self.add_sums(&key, day, &sums)?;
                }
                let sent = SentRef {
                    day,
                    dims: dims.clone(),
                };
                self.facts
                    .insert(prefixed(b'm', message_id.as_bytes()), to_json(&sent)?)?;
                state.note_outbound(
                    Outbound {
                        at: at.timestamp_millis(),
                        day,
                        dims,
                    },
                    window,
                );
            }
            Fact::Inbound { at, opt_out, .. } => {
                let at = at.timestamp_millis();
                let kind = if *opt_out { OPTED_OUT } else { REPLIED };
                for outbound in state.answered_by(at, window) {
                    for key in outbound.dims.keys() {
                        self.count(kind, &key, contact, outbound.day)?;
                    }
                }
                state.note_time(at, window);
            }
            Fact::FirstResponse {
                at,
                team,
                waited_from,
                by_person,
                business_seconds,
                ..
            } => {
                let from = waited_from.timestamp_millis();
                let mut wait = match state.wait {
                    Some(w) if w.from == from => w,
                    _ => Wait {
                        from,
                        overall: false,
                        person: false,
                    },
                };
                // The first response of a wait counts overall, whoever gave
                // it; a person's first reply counts for people once.
                let overall = !wait.overall;
                let person = *by_person && !wait.person;
                wait.overall = true;
                wait.person |= *by_person;
                state.wait = Some(wait);
                let seconds = (*at - *waited_from).num_seconds().max(0) as u64;
                let day = day_of(*at);
                let dims = Dims {
                    team: team.clone(),
                    ..Dims::default()
                };
                for key in dims.keys() {
                    if overall {
                        self.add_wait(OVERALL, &key, day, seconds)?;
                        self.add_wait(OVERALL_BUSINESS, &key, day, *business_seconds)?;
                    }
                    if person {
                        self.add_wait(PERSON, &key, day, seconds)?;
                        self.add_wait(PERSON_BUSINESS, &key, day, *business_seconds)?;
                    }
                }
                state.note_time(at.timestamp_millis(), window);
            }
            Fact::Outcome {
                at,
                name,
                message_id,
                ..
            } => {
                if counting.is_conversion(name) {
                    let known = match message_id {
                        Some(id) => {
                            let key = prefixed(b'm', id.as_bytes());
                            match self.facts.get(&key)? {
                                Some(raw) => Some(from_json_tx::<SentRef>(&key, &raw)?),
                                None => None,
                            }
                        }
                        None => None,
                    };
                    // The message that led to it, else the contact's last
                    // outbound before it; with neither it has no period.
                    let led_by = known.or_else(|| {
                        state
                            .last
                            .as_ref()
                            .filter(|o| o.at <= at.timestamp_millis())
                            .map(|o| SentRef {
                                day: o.day,
                                dims: o.dims.clone(),
                            })
                    });
                    if let Some(sent) = led_by {
                        let one = Sums {
                            conversions: 1,
                            ..Sums::default()
                        };
                        for key in sent.dims.keys() {
                            self.count(CONVERTED, &key, contact, sent.day)?;
                            self.add_sums(&key, sent.day, &one)?;
                        }
                    }
                }
                state.note_time(at.timestamp_millis(), window);
            }
        }
        self.save_state(contact, &state)
    }
}

impl Store {
    /// Count `fact` once: a `fact_id` recorded before changes nothing (false).
    /// One transaction with the fact id; durable when it returns.
    pub async fn record_metric(
        &self,
        fact_id: &str,
        fact: &Fact,
        counting: &Counting,
    ) -> Result<bool> {
        let counted = self.record_metric_blocking(fact_id, fact, counting)?;
        if counted {
            let ticket = self.inner.commit.ticket();
            self.durable(ticket).await?;
        }
        Ok(counted)
    }

    /// [`Store::record_metric`] without waiting for the disk (a later
    /// durable write or [`Store::sync`] covers it).
    pub fn record_metric_blocking(
        &self,
        fact_id: &str,
        fact: &Fact,
        counting: &Counting,
    ) -> Result<bool> {
        let trees = &self.inner.metric_counters;
        let seen = prefixed(b'f', fact_id.as_bytes());
        (&trees.facts, &trees.counters)
            .transaction(|(facts, counters)| {
                if facts.get(&seen)?.is_some() {
                    return Ok(false);
                }
                facts.insert(seen.as_slice(), &[])?;
                Recorder { facts, counters }.record(fact, counting)?;
                Ok(true)
            })
            .map_err(unwrap_tx)
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
        // Response times are kept by team only: campaign and variant
        // filters leave them empty.
        let waits = |kind: u8| -> Result<Histogram> {
            // Merged in a flat array: a year can be 100,000s of buckets.
            let mut all = vec![0u64; usize::from(u16::MAX) + 1];
            for entry in
                counters.range(histogram_key(kind, &dims, from)..=histogram_key(kind, &dims, to))
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
        };
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
        // The days of `from`'s block before it, each one scan of the period.
        for previous in block * BLOCK..from {
            let first = cell_key(kind, dims, from, true, previous);
            let last = cell_key(kind, dims, to, true, previous);
            for entry in counters.range(first..=last) {
                let (key, raw) = entry?;
                total += u64_of(&key, &raw)?;
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

    fn response(
        contact: &str,
        team: &str,
        from: DateTime<Utc>,
        seconds: i64,
        by_person: bool,
        business: u64,
    ) -> Fact {
        Fact::FirstResponse {
            contact: contact.into(),
            at: from + chrono::Duration::seconds(seconds),
            team: Some(team.into()),
            waited_from: from,
            by_person,
            business_seconds: business,
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

    /// Facts with their ids, in the order the engine would see them.
    fn scenario() -> Vec<(String, Fact)> {
        let facts = vec![
            // A (spring/a, sales) replies twice within the day.
            sent(A, at(1, 10, 0), "mA", ("spring", "a", "sales"), 1),
            inbound(A, at(1, 10, 5), false),
            response(A, "sales", at(1, 10, 5), 120, false, 120),
            response(A, "sales", at(1, 10, 5), 900, true, 900),
            inbound(A, at(1, 11, 0), false),
            // B (spring/b, sales) replies 26 hours later: after the window.
            sent(B, at(1, 10, 0), "mB", ("spring", "b", "sales"), 2),
            // C (spring/a, support) opts out; STOP is not a reply.
            sent(C, at(1, 10, 0), "mC", ("spring", "a", "support"), 1),
            inbound(C, at(1, 10, 30), true),
            // D (spring/b, support) confirms (a conversion) and rates (not one).
            sent(D, at(1, 10, 0), "mD", ("spring", "b", "support"), 1),
            inbound(D, at(1, 11, 0), false),
            response(D, "support", at(1, 11, 0), 30, true, 30),
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
            .map(|(i, f)| (format!("evt_{i:016x}:fact"), f))
            .collect()
    }

    #[tokio::test]
    async fn metrics_match_a_hand_count() {
        let t = TempStore::new();
        let counting = Counting::default();
        for (id, fact) in scenario() {
            assert!(t.store.record_metric(&id, &fact, &counting).await.unwrap());
        }
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

        // Every fact again, same ids: nothing changes.
        for (id, fact) in scenario() {
            assert!(
                !t.store.record_metric(&id, &fact, &counting).await.unwrap(),
                "{id}"
            );
        }
        assert_eq!(
            t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap(),
            all
        );
    }

    #[tokio::test]
    async fn counters_survive_a_restart() {
        let mut t = TempStore::new();
        let counting = Counting::default();
        for (id, fact) in scenario() {
            t.store.record_metric(&id, &fact, &counting).await.unwrap();
        }
        let before = t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap();
        t.restart();
        assert_eq!(
            t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap(),
            before
        );
        // Recording continues where it was: fact ids are still known.
        let (id, fact) = &scenario()[0];
        assert!(!t.store.record_metric(id, fact, &counting).await.unwrap());
    }

    #[test]
    fn a_longer_window_and_other_conversions_count_from_the_settings() {
        let t = TempStore::new();
        let counting = Counting {
            reply_window: Duration::from_secs(48 * 3600),
            conversions: vec!["rating_received".into()],
        };
        for (id, fact) in scenario() {
            t.store
                .record_metric_blocking(&id, &fact, &counting)
                .unwrap();
        }
        let all = t.store.metrics_summary(&query(1, 2, ("", "", ""))).unwrap();
        // B's reply after 26 hours is within 48: A, B and D replied.
        assert_eq!(all.reply_rate, Rate::new(3, 5));
        // D's rating is the conversion now, the confirmation is not.
        assert_eq!(all.conversion_rate, Rate::new(1, 5));
        assert_eq!(all.cost_per_outcome.denominator, 1);
    }

    /// Counting a contact once per period, against a model: contacts sent
    /// on random days, recorded in random order (out of time order too),
    /// across block boundaries; every period of the span checked.
    #[test]
    fn distinct_contacts_match_a_model_for_every_period() {
        let t = TempStore::new();
        let counting = Counting::default();
        let mut model: Vec<std::collections::BTreeSet<u32>> = vec![Default::default(); 12];
        let mut seed: u64 = 0x5eed;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for i in 0..150 {
            let contact = next(12) as usize;
            let day = 10 + next(40) as u32;
            let fact = sent(
                &format!("+1555100{contact:04}"),
                at(day, 12, 0),
                &format!("m{i}"),
                ("", "", ""),
                1,
            );
            t.store
                .record_metric_blocking(&format!("f{i}"), &fact, &counting)
                .unwrap();
            model[contact].insert(day);
        }
        for from in 8..52 {
            for to in from..52 {
                let want = model
                    .iter()
                    .filter(|days| days.range(from..=to).next().is_some())
                    .count() as u64;
                let got = t
                    .store
                    .metrics_summary(&query(from, to, ("", "", "")))
                    .unwrap();
                assert_eq!(got.reply_rate.denominator, want, "days {from}..={to}");
            }
        }
    }
}
