//! What a modem pool needs beyond one modem: each SIM's daily budget (the
//! carrier's `daily_limit`, counted per local day and kept in the store so a
//! restart does not reset it) and the rest a modem takes after failing
//! several sends in a row (growing, capped), during which its queue goes to
//! the other modems. Pure state here; the actor applies it, the dispatcher
//! reads it ([`super::Dispatcher::hold`]).

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use tokio::time::Instant;

use crate::store::{Store, StoreError};

/// The aux tree of the store holding the per-modem daily counts of parts
/// sent.
const DAILY_TREE: &str = "modem_daily";
/// The same for messages received.
const RECEIVED_TREE: &str = "modem_daily_received";

/// The local day `at` falls in, in `zone`.
pub fn local_day(at: DateTime<Utc>, zone: Tz) -> NaiveDate {
    at.with_timezone(&zone).date_naive()
}

/// When the local day after `day` starts, in UTC (a day that starts in a DST
/// gap starts at the first instant that exists).
pub fn next_day_start(day: NaiveDate, zone: Tz) -> DateTime<Utc> {
    let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    // A zone whose clocks jump over midnight: try each following minute.
    (0..=180)
        .find_map(|m| {
            zone.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

/// Parts sent per modem per local day, in the store (`aux_modem_daily`:
/// `<modem>\0<YYYY-MM-DD>` -> u32 big-endian). Written before the part's
/// "sending" mark, whose flush makes it durable: a part that went out is
/// never missing from the count after a crash. The same shape counts the
/// messages each modem received (`aux_modem_daily_received`, written after
/// the message is stored), for the modems page's "today".
#[derive(Clone)]
pub struct DailyCounts {
    tree: sled::Tree,
}

fn daily_key(modem: &str, day: NaiveDate) -> Vec<u8> {
    let mut key = modem.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(day.format("%Y-%m-%d").to_string().as_bytes());
    key
}

fn decode(raw: Option<&[u8]>) -> u32 {
    raw.and_then(|r| <[u8; 4]>::try_from(r).ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0)
}

impl DailyCounts {
    /// Parts sent.
    pub fn open(store: &Store) -> Result<DailyCounts, StoreError> {
        Ok(DailyCounts {
            tree: store.aux_tree(DAILY_TREE)?,
        })
    }

    /// Messages received.
    pub fn open_received(store: &Store) -> Result<DailyCounts, StoreError> {
        Ok(DailyCounts {
            tree: store.aux_tree(RECEIVED_TREE)?,
        })
    }

    /// What `modem` counted on `day`.
    pub fn get(&self, modem: &str, day: NaiveDate) -> Result<u32, StoreError> {
        let raw = self
            .tree
            .get(daily_key(modem, day))
            .map_err(StoreError::from)?;
        Ok(decode(raw.as_deref()))
    }

    /// Add `delta` (negative: a part counted and then refused by the modem)
    /// and return the new count.
    pub fn add(&self, modem: &str, day: NaiveDate, delta: i64) -> Result<u32, StoreError> {
        let updated = self
            .tree
            .update_and_fetch(daily_key(modem, day), |old| {
                let n = i64::from(decode(old)) + delta;
                Some(
                    u32::try_from(n.max(0))
                        .unwrap_or(u32::MAX)
                        .to_be_bytes()
                        .to_vec(),
                )
            })
            .map_err(StoreError::from)?;
        Ok(decode(updated.as_deref()))
    }

    /// Forget the counts of days before `day` (they are never read again).
    pub fn prune_before(&self, modem: &str, day: NaiveDate) -> Result<(), StoreError> {
        let mut start = modem.as_bytes().to_vec();
        start.push(0);
        for entry in self.tree.range(start.clone()..daily_key(modem, day)) {
            let (key, _) = entry.map_err(StoreError::from)?;
            self.tree.remove(key).map_err(StoreError::from)?;
        }
        Ok(())
    }
}

/// How a run of failed sends takes a modem out of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestPolicy {
    /// Failed sends in a row that start a rest (at least 1).
    pub failures: u32,
    /// The first rest; each following one (with no success between) doubles.
    pub base: Duration,
    /// The longest rest.
    pub max: Duration,
}

impl Default for RestPolicy {
    fn default() -> Self {
        RestPolicy {
            failures: 3,
            base: Duration::from_secs(60),
            max: Duration::from_secs(30 * 60),
        }
    }
}

/// A modem's record of failed sends: how many in a row, how many rests
/// since its last success, and until when it rests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureRun {
    pub in_a_row: u32,
    pub rests: u32,
    pub resting_until: Option<Instant>,
}

impl FailureRun {
    /// A part went out: the run is over.
    pub fn succeeded(&mut self) {
        *self = FailureRun::default();
    }

    /// A send failed at `now`; `Some(rest)` when this failure starts a rest.
    pub fn failed(&mut self, now: Instant, policy: &RestPolicy) -> Option<Duration> {
        self.in_a_row += 1;
        if self.in_a_row < policy.failures.max(1) {
            return None;
        }
        let factor = 1u32 << self.rests.min(16);
        let rest = policy.base.saturating_mul(factor).min(policy.max);
        self.in_a_row = 0;
        self.rests += 1;
        self.resting_until = Some(now + rest);
        Some(rest)
    }

    /// Resting at `now`?
    pub fn resting(&self, now: Instant) -> bool {
        self.resting_until.is_some_and(|until| until > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_local_day_follows_the_zone() {
        // 03:30 UTC is still the evening before in New York.
        let at = Utc.with_ymd_and_hms(2026, 3, 10, 3, 30, 0).unwrap();
        assert_eq!(local_day(at, chrono_tz::America::New_York), day(2026, 3, 9));
        assert_eq!(local_day(at, chrono_tz::Europe::Berlin), day(2026, 3, 10));
        assert_eq!(
            next_day_start(day(2026, 3, 9), chrono_tz::America::New_York),
            Utc.with_ymd_and_hms(2026, 3, 10, 4, 0, 0).unwrap()
        );
    }

    #[test]
    fn a_day_starting_in_a_dst_gap_starts_at_the_first_existing_minute() {
        // Chile's clocks jumped from 24:00 to 01:00 on 2022-09-11.
        let start = next_day_start(day(2022, 9, 10), chrono_tz::America::Santiago);
        let local = start.with_timezone(&chrono_tz::America::Santiago);
        assert_eq!(local.date_naive(), day(2022, 9, 11));
        assert_eq!(local.format("%H:%M").to_string(), "01:00");
    }

    #[tokio::test]
    async fn daily_counts_add_per_modem_and_day_and_survive_a_reopen() {
        let mut t = crate::store::test_support::TempStore::new();
        let d = day(2026, 12, 4);
        {
            let counts = DailyCounts::open(&t.store).unwrap();
            assert_eq!(counts.add("m1", d, 1).unwrap(), 1);
            assert_eq!(counts.add("m1", d, 2).unwrap(), 3);
            assert_eq!(counts.add("m1", d, -1).unwrap(), 2);
            assert_eq!(counts.add("m10", d, 5).unwrap(), 5);
            assert_eq!(counts.add("m1", day(2026, 12, 3), 7).unwrap(), 7);
            // Never below zero.
            assert_eq!(counts.add("m2", d, -1).unwrap(), 0);
            t.store.sync().await.unwrap();
        }
        // The project's reopen (it waits out sled's I/O threads, which can
        // hold the old file's lock a moment after the last handle goes).
        t.restart();
        let counts = DailyCounts::open(&t.store).unwrap();
        assert_eq!(counts.get("m1", d).unwrap(), 2);
        assert_eq!(counts.get("m10", d).unwrap(), 5);
        assert_eq!(counts.get("m1", day(2026, 12, 3)).unwrap(), 7);
        counts.prune_before("m1", d).unwrap();
        assert_eq!(counts.get("m1", day(2026, 12, 3)).unwrap(), 0);
        assert_eq!(counts.get("m1", d).unwrap(), 2);
        assert_eq!(counts.get("m10", d).unwrap(), 5);
    }

    #[test]
    fn rests_start_after_n_failures_in_a_row_grow_and_are_capped() {
        let policy = RestPolicy {
            failures: 3,
            base: Duration::from_secs(60),
            max: Duration::from_secs(300),
        };
        let now = Instant::now();
        let mut run = FailureRun::default();
        assert_eq!(run.failed(now, &policy), None);
        assert_eq!(run.failed(now, &policy), None);
        // A success between failures ends the run.
        run.succeeded();
        assert_eq!(run.failed(now, &policy), None);
        assert_eq!(run.failed(now, &policy), None);
        assert_eq!(run.failed(now, &policy), Some(Duration::from_secs(60)));
        assert!(run.resting(now + Duration::from_secs(59)));
        assert!(!run.resting(now + Duration::from_secs(60)));
        let rests: Vec<_> = (0..4)
            .map(|_| {
                (0..3)
                    .filter_map(|_| run.failed(now, &policy))
                    .next()
                    .unwrap()
            })
            .collect();
        let secs: Vec<u64> = rests.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![120, 240, 300, 300]);
        run.succeeded();
        assert_eq!(run, FailureRun::default());
    }
}
