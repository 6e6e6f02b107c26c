//! Quiet hours in the contact's own time zone (from the contact record, else
//! inferred from the country code where the country has one zone, else the
//! configured default). The window may span midnight (21:00-08:00). DST is
//! handled by chrono-tz: "08:00 local" is found on the local calendar.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily window of local time when some messages wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// "HH:MM" both.
    pub fn parse(start: &str, end: &str) -> Option<QuietHours> {
        let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").ok();
        Some(QuietHours {
            start: t(start)?,
            end: t(end)?,
        })
    }

    fn contains_local(&self, t: NaiveTime) -> bool {
        if self.start == self.end {
            return false;
        }
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// If `now` falls in the window in `zone`, the instant it ends.
    pub fn ends_after(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&zone);
        if !self.contains_local(local.time()) {
            return None;
        }
        // The end is today or tomorrow on the local calendar.
        let mut date = local.date_naive();
        if local.time() >= self.end {
            date = date.succ_opt()?;
        }
        let naive = date.and_time(self.end);
        // A local time skipped by DST (spring forward) ends the window at the
        // first valid instant after it; an ambiguous one at its earlier instant.
        let end = zone.from_local_datetime(&naive).earliest().or_else(|| {
            zone.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })?;
        Some(end.with_timezone(&Utc))
    }
}

/// IANA zone for a country with a single time zone, from an E.164 number's
/// calling code (a few common ones; others fall back to the default).
pub fn zone_for_number(number: &str) -> Option<Tz> {
    let digits = number.strip_prefix('+')?;
    const SINGLE_ZONE: &[(&str, &str)] = &[
        ("44", "Europe/London"),
        ("49", "Europe/Berlin"),
        ("33", "Europe/Paris"),
        ("34", "Europe/Madrid"),
        ("39", "Europe/Rome"),
        ("31", "Europe/Amsterdam"),
        ("32", "Europe/Brussels"),
        ("41", "Europe/Zurich"),
        ("43", "Europe/Vienna"),
        ("45", "Europe/Copenhagen"),
        ("46", "Europe/Stockholm"),
        ("47", "Europe/Oslo"),
        ("48", "Europe/Warsaw"),
        ("353", "Europe/Dublin"),
        ("358", "Europe/Helsinki"),
        ("30", "Europe/Athens"),
        ("90", "Europe/Istanbul"),
        ("91", "Asia/Kolkata"),
        ("92", "Asia/Karachi"),
        ("94", "Asia/Colombo"),
        ("880", "Asia/Dhaka"),
        ("63", "Asia/Manila"),
        ("65", "Asia/Singapore"),
        ("66", "Asia/Bangkok"),
        ("84", "Asia/Ho_Chi_Minh"),
        ("81", "Asia/Tokyo"),
        ("82", "Asia/Seoul"),
        ("86", "Asia/Shanghai"),
        ("27", "Africa/Johannesburg"),
        ("234", "Africa/Lagos"),
        ("254", "Africa/Nairobi"),
        ("20", "Africa/Cairo"),
        ("972", "Asia/Jerusalem"),
        ("971", "Asia/Dubai"),
        ("966", "Asia/Riyadh"),
        ("64", "Pacific/Auckland"),
    ];
    SINGLE_ZONE
        .iter()
        .filter(|(code, _)| digits.starts_with(code))
        .max_by_key(|(code, _)| code.len())
        .and_then(|(_, zone)| zone.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_window_spans_midnight_in_the_contacts_zone() {
        let q = QuietHours::parse("21:00", "08:00").unwrap();
        let chicago: Tz = "America/Chicago".parse().unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        // 03:00 UTC in January is 21:00 in Chicago (CST, -6): quiet until 08:00 CST = 14:00 UTC.
        let now = utc("2026-01-15T03:00:00Z");
        assert_eq!(
            q.ends_after(now, chicago),
            Some(utc("2026-01-15T14:00:00Z"))
        );
        // ...and 12:00 in Tokyo: not quiet.
        assert_eq!(q.ends_after(now, tokyo), None);
        // 23:30 UTC is 08:30 in Tokyo: just after the window.
        assert_eq!(q.ends_after(utc("2026-01-14T23:30:00Z"), tokyo), None);
        // 22:00 UTC is 07:00 in Tokyo: quiet for one more hour.
        assert_eq!(
            q.ends_after(utc("2026-01-14T22:00:00Z"), tokyo),
            Some(utc("2026-01-14T23:00:00Z"))
        );
    }

    #[test]
    fn dst_changes_move_the_end_in_utc() {
        let q = QuietHours::parse("21:00", "08:00").unwrap();
        let ny: Tz = "America/New_York".parse().unwrap();
        // The night of the spring change (8 March 2026, 02:00 -> 03:00): at
        // 23:00 EST (04:00 UTC) the window ends at 08:00 EDT = 12:00 UTC, not 13:00.
        assert_eq!(
            q.ends_after(utc("2026-03-08T04:00:00Z"), ny),
            Some(utc("2026-03-08T12:00:00Z"))
        );
        // The autumn change (1 November 2026): 08:00 EST = 13:00 UTC.
        assert_eq!(
            q.ends_after(utc("2026-11-01T03:00:00Z"), ny),
            Some(utc("2026-11-01T13:00:00Z"))
        );
        // A window ending at 02:30, a time that does not exist on the spring night.
        let odd = QuietHours::parse("21:00", "02:30").unwrap();
        assert_eq!(
            odd.ends_after(utc("2026-03-08T04:00:00Z"), ny),
            Some(utc("2026-03-08T07:30:00Z"))
        );
    }

    #[test]
    fn single_zone_countries() {
        assert_eq!(
            zone_for_number("+4915112345678"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            zone_for_number("+353861234567"),
            Some(chrono_tz::Europe::Dublin)
        );
        assert_eq!(
            zone_for_number("+15551234567"),
            None,
            "the US has several zones"
        );
        assert_eq!(zone_for_number("12345"), None);
    }

    #[test]
    fn an_empty_window_is_never_quiet() {
        let q = QuietHours::parse("00:00", "00:00").unwrap();
        assert_eq!(
            q.ends_after(utc("2026-01-15T03:00:00Z"), chrono_tz::UTC),
            None
        );
        assert!(QuietHours::parse("25:00", "08:00").is_none());
    }
}
