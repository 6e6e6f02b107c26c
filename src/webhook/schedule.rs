//! What an answer means and when to try again: 2xx delivered; 408, 429, 5xx
//! and transport failures retried on a fixed exponential schedule with jitter
//! over a day (honouring `Retry-After`); 410 disables the endpoint; any other
//! status (3xx included: redirects are not followed) is a dead letter.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Waits after the 1st, 2nd, ... failed attempt (the schedule).
pub const BACKOFF: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(8 * 3600),
];

/// The last attempt comes this long after the first.
pub const LAST_ATTEMPT_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Attempts in all: the first, one after each backoff step, the last.
pub const MAX_ATTEMPTS: u32 = BACKOFF.len() as u32 + 2;

/// The longest `Retry-After` honoured: beyond a day the schedule is over anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one attempt's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth trying again later.
    Transient,
    /// 410 Gone: the receiver asks us to stop; the endpoint is disabled.
    Gone,
    /// Will not get better by retrying: a dead letter.
    Permanent,
}

/// The verdict on an HTTP status.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Transient,
        410 => Verdict::Gone,
        _ => Verdict::Permanent,
    }
}

/// When to try again after `attempts` attempts (this failure included), the
/// first of which was at `first`; None when the schedule is exhausted.
/// `jitter` in [0, 1) spreads retries of many deliveries (±10 %).
pub fn next_attempt(
    attempts: u32,
    first: DateTime<Utc>,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<DateTime<Utc>> {
    let scheduled = if let Some(step) = BACKOFF.get(attempts.saturating_sub(1) as usize) {
        let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        now + to_chrono(step.mul_f64(factor))
    } else if attempts < MAX_ATTEMPTS {
        (first + to_chrono(LAST_ATTEMPT_AFTER)).max(now)
    } else {
        return None;
    };
    // Retry-After says "not before"; our schedule may well be later.
    let asked = retry_after.map(|d| now + to_chrono(d.min(MAX_RETRY_AFTER)));
    Some(asked.map_or(scheduled, |a| a.max(scheduled)))
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822 syntax.
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A number in [0, 1) that differs between deliveries and attempts, for
/// jitter (no RNG dependency: a randomly keyed hash is enough here).
pub fn jitter(key: &str, attempts: u32) -> f64 {
    use std::hash::BuildHasher;
    let h = std::collections::hash_map::RandomState::new().hash_one((key, attempts));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn statuses() {
        assert_eq!(verdict(200), Verdict::Delivered);
        assert_eq!(verdict(204), Verdict::Delivered);
        for s in [408, 429, 500, 502, 503, 599] {
            assert_eq!(verdict(s), Verdict::Transient, "{s}");
        }
        assert_eq!(verdict(410), Verdict::Gone);
        for s in [301, 302, 307, 400, 401, 403, 404, 422] {
            assert_eq!(verdict(s), Verdict::Permanent, "{s}");
        }
    }

    #[test]
    fn the_schedule_spans_a_day_then_ends() {
        let first = t("2025-01-01T00:00:00Z");
        let mut now = first;
        let mut waits = Vec::new();
        for attempts in 1.. {
            match next_attempt(attempts, first, now, None, 0.5) {
                Some(next) => {
                    waits.push((next - now).num_seconds());
                    now = next;
                }
                None => break,
            }
        }
        assert_eq!(
            &waits[..9],
            [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800]
        );
        assert_eq!(now, first + chrono::Duration::hours(24));
        assert_eq!(waits.len() as u32 + 1, MAX_ATTEMPTS);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let now = t("2025-01-01T00:00:00Z");
        let lo = next_attempt(2, now, now, None, 0.0).unwrap();
        let hi = next_attempt(2, now, now, None, 0.999).unwrap();
        assert_eq!((lo - now).num_seconds(), 27);
        assert!((hi - now).num_milliseconds() <= 33_000);
        let j = jitter("dly_1", 1);
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = t("2015-10-21T07:28:00Z");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        // Honoured when later than the schedule, capped at a day.
        let next = next_attempt(1, now, now, Some(Duration::from_secs(600)), 0.5).unwrap();
        assert_eq!((next - now).num_seconds(), 600);
        let next = next_attempt(1, now, now, Some(Duration::from_secs(1)), 0.5).unwrap();
        assert_eq!((next - now).num_seconds(), 5);
        let next = next_attempt(1, now, now, Some(Duration::from_secs(9e9 as u64)), 0.5).unwrap();
        assert_eq!((next - now).num_hours(), 24);
    }
}
