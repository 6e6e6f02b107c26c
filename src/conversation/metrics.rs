//! The five metrics (issue 12, "Outcomes and the five metrics"): what the
//! engine tells the store ([`Fact`]), what a summary is asked
//! ([`SummaryQuery`]) and answers ([`Summary`]), and the resolution of the
//! response-time histograms ([`Histogram`]).
//!
//! The counting itself is in the store (`store/metrics.rs`): counters kept
//! per UTC day, campaign, variant and team as facts are recorded, never a
//! scan of messages. How each metric is defined is written in README.md
//! ("Metrics").
//!
//! Wiring (the engine's `catch_up`): the facts of a batch of events are
//! counted together, each with the sequence of the event it came from, by
//! one `Store::record_metrics` call that also moves the metrics cursor past
//! the batch (facts of events before the cursor are skipped, so events read
//! again after a crash count once), with the counting settings of the config:
//!
//! ```ignore
//! let counting = Counting::from_config(&config.conversation);
//! let costs = config.cost_per_part(); // modem id -> price of a part
//! // message.sent: an outbound reached `sent`.
//! let cost = message.modem.as_ref().and_then(|m| costs.get(m)).map(|p| p * f64::from(parts));
//! facts.push((seq, Fact::Sent { .. , cost }));
//! // An answer ending the wait and/or the person's wait (the thread's
//! // `waited_from` / `person_waited_from`): business time from the team's hours.
//! let business_seconds = team.business_hours.business_duration(waited_from, at).as_secs();
//! facts.push((seq, Fact::FirstResponse { .. }));
//! store.record_metrics(&facts, last_seq_read, &counting)?;
//! ```
//!
//! Facts are expected roughly in time order (the event log's); a reply is
//! attributed to the outbounds recorded before it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::settings::ConversationConfig;

/// Something that happened, as the metrics count it. Every fact names its
/// contact (E.164) and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// An outbound message reached `sent`.
    Sent {
        contact: String,
        at: DateTime<Utc>,
        message_id: String,
        campaign: Option<String>,
        variant: Option<String>,
        /// The thread's team when it was sent.
        team: Option<String>,
        parts: u32,
        /// Parts times the sending modem's `cost_per_part` (None: the modem
        /// has no price; counted as 0).
        cost: Option<f64>,
    },
    /// Any inbound message; `opt_out` when it opted the contact out.
    Inbound {
        contact: String,
        at: DateTime<Utc>,
        opt_out: bool,
    },
    /// An answer that ended a wait: the contact's wait (any answer ends
    /// it; `waited_from`: its first unanswered inbound) and, for a
    /// person's answer, the person's wait (`person_waited_from`: the first
    /// inbound no person answered, which automation's answers do not end).
    /// Each present wait is counted once, in its own time to first
    /// response; a person answering after automation ended the wait ends
    /// the person's wait only (`waited_from` None).
    FirstResponse {
        contact: String,
        at: DateTime<Utc>,
        team: Option<String>,
        waited_from: Option<DateTime<Utc>>,
        /// The wait in the team's business hours ([`super::hours`]).
        business_seconds: u64,
        person_waited_from: Option<DateTime<Utc>>,
        /// The person's wait in the team's business hours.
        person_business_seconds: u64,
    },
    /// An outcome (`appointment_booked`, a custom name, ...), linked to the
    /// outbound that led to it.
    Outcome {
        contact: String,
        at: DateTime<Utc>,
        name: String,
        campaign: Option<String>,
        variant: Option<String>,
        team: Option<String>,
        message_id: Option<String>,
    },
}

impl Fact {
    pub fn contact(&self) -> &str {
        match self {
            Fact::Sent { contact, .. }
            | Fact::Inbound { contact, .. }
            | Fact::FirstResponse { contact, .. }
            | Fact::Outcome { contact, .. } => contact,
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Fact::Sent { at, .. }
            | Fact::Inbound { at, .. }
            | Fact::FirstResponse { at, .. }
            | Fact::Outcome { at, .. } => *at,
        }
    }
}

/// What counting needs from `[conversation]`. Facts are counted with the
/// settings in force when they are recorded (a changed `conversions` list
/// or `reply_window` applies from then on).
#[derive(Debug, Clone, PartialEq)]
pub struct Counting {
    /// A reply or an opt-out counts towards the outbounds it followed
    /// within this long.
    pub reply_window: Duration,
    /// The outcomes that are conversions.
    pub conversions: Vec<String>,
}

impl Counting {
    pub fn from_config(config: &ConversationConfig) -> Counting {
        Counting {
            reply_window: config.reply_window,
            conversions: config.conversions.clone(),
        }
    }

    pub fn is_conversion(&self, outcome: &str) -> bool {
        self.conversions.iter().any(|c| c == outcome)
    }
}

impl Default for Counting {
    fn default() -> Self {
        Counting::from_config(&ConversationConfig::default())
    }
}

/// A summary's period (whole UTC days, both included) and dimensions
/// (None: all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub campaign: Option<String>,
    pub variant: Option<String>,
    pub team: Option<String>,
}

/// A share: `numerator / denominator` (None when nothing was sent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub value: Option<f64>,
    pub numerator: u64,
    pub denominator: u64,
}

impl Rate {
    pub fn new(numerator: u64, denominator: u64) -> Rate {
        Rate {
            value: (denominator > 0).then(|| numerator as f64 / denominator as f64),
            numerator,
            denominator,
        }
    }
}

/// Cost of the period's outbound parts per conversion outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostPerOutcome {
    pub value: Option<f64>,
    /// The cost of the parts sent.
    pub numerator: f64,
    /// Conversion outcomes linked to the period's outbound.
    pub denominator: u64,
    /// Parts sent (the cost's basis).
    pub parts: u64,
}

/// A distribution of waits, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Distribution {
    pub median_s: Option<u64>,
    pub p90_s: Option<u64>,
    pub count: u64,
}

/// Time to first response: overall (whoever answered first) and the first
/// reply by a person, each in wall-clock time and in business hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResponseTimes {
    pub overall: Distribution,
    pub business_hours: Distribution,
    pub person: Distribution,
    pub person_business_hours: Distribution,
}

/// The five metrics over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub query: SummaryQuery,
    pub reply_rate: Rate,
    pub time_to_first_response: ResponseTimes,
    pub conversion_rate: Rate,
    pub opt_out_rate: Rate,
    pub cost_per_outcome: CostPerOutcome,
    /// Outbound messages sent in the period.
    pub messages_sent: u64,
}

/// Waits below this many seconds are kept exactly (the first two minutes).
pub const EXACT_BELOW_S: u64 = 128;
const EXACT_BITS: u64 = 7;
/// Above [`EXACT_BELOW_S`], each doubling is split into this many buckets:
/// a bucket is at most 1/64 of its lower bound wide, and its middle is
/// reported, so a percentile is within 0.8% of the true wait.
const SUB_BITS: u64 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BITS;

/// A histogram of waits in seconds: exact below two minutes, then 64
/// buckets per doubling; merged over days for a period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram(pub BTreeMap<u16, u64>);

impl Histogram {
    /// The bucket of a wait of `seconds`.
    pub fn bucket(seconds: u64) -> u16 {
        if seconds < EXACT_BELOW_S {
            return seconds as u16;
        }
        let exponent = 63 - u64::from(seconds.leading_zeros()); // >= EXACT_BITS
        let sub = (seconds >> (exponent - SUB_BITS)) & (SUB_BUCKETS - 1);
        (EXACT_BELOW_S + (exponent - EXACT_BITS) * SUB_BUCKETS + sub) as u16
    }

    /// The seconds a bucket stands for: its value below two minutes, else
    /// the middle of its range.
    pub fn value(bucket: u16) -> u64 {
        let b = u64::from(bucket);
        if b < EXACT_BELOW_S {
            return b;
        }
        let exponent = EXACT_BITS + (b - EXACT_BELOW_S) / SUB_BUCKETS;
        let sub = (b - EXACT_BELOW_S) % SUB_BUCKETS;
        let width = 1u64 << (exponent - SUB_BITS);
        let low = (SUB_BUCKETS + sub).saturating_mul(width);
        low.saturating_add(width / 2)
    }

    pub fn add(&mut self, seconds: u64) {
        *self.0.entry(Histogram::bucket(seconds)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in &other.0 {
            *self.0.entry(*bucket).or_default() += count;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The `q` quantile (0 < q <= 1), nearest rank.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (bucket, n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some(Histogram::value(*bucket));
            }
        }
        None
    }

    pub fn distribution(&self) -> Distribution {
        Distribution {
            median_s: self.quantile(0.5),
            p90_s: self.quantile(0.9),
            count: self.count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_two_minutes_and_within_one_percent_above() {
        for s in 0..EXACT_BELOW_S {
            assert_eq!(Histogram::value(Histogram::bucket(s)), s);
        }
        let mut previous = 0;
        for s in (EXACT_BELOW_S..5_000_000).step_by(7).chain([u64::MAX / 2]) {
            let b = Histogram::bucket(s);
            assert!(b >= previous, "buckets grow with the wait");
            previous = b;
            let v = Histogram::value(b) as f64;
            assert!((v - s as f64).abs() / s as f64 <= 0.008, "{s}: {v}");
        }
        assert!(Histogram::bucket(u64::MAX) > Histogram::bucket(u64::MAX / 2));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut h = Histogram::default();
        assert_eq!(h.distribution(), Distribution::default());
        for s in [5, 1, 3, 2, 4, 10, 9, 8, 7, 6] {
            h.add(s);
        }
        assert_eq!(
            h.distribution(),
            Distribution {
                median_s: Some(5),
                p90_s: Some(9),
                count: 10
            }
        );
        let mut other = Histogram::default();
        other.add(600);
        h.merge(&other);
        assert_eq!(
            h.quantile(1.0),
            Some(Histogram::value(Histogram::bucket(600)))
        );
        assert_eq!(h.count(), 11);
    }

    #[test]
    fn rates_have_no_value_without_a_denominator() {
        assert_eq!(Rate::new(0, 0).value, None);
        assert_eq!(Rate::new(1, 4).value, Some(0.25));
    }
}
