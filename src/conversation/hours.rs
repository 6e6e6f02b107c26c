//! Business hours and SLA due times: `[[conversation.team]]`.
//!
//! A team's hours are written `Mon-Fri 08:00-18:00, Sat 09:00-12:00` (items
//! separated by commas or semicolons; a window whose end is not after its
//! start runs past midnight into the next day; `24:00` ends a day) or
//! `24/7`, in the team's IANA `time_zone`. Everything here is pure: the
//! clock is passed in.
//!
//! Local times become instants on the local calendar of each day, so a DST
//! change is counted as the wall clock has it: a window spanning the spring
//! change is an hour shorter that day. A window edge that does not exist
//! (skipped by spring forward) is the first instant after the gap; one that
//! exists twice (autumn) is its first occurrence.

use std::time::Duration;

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

/// One `[[conversation.team]]`: who answers, how fast, and when.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "TeamFile")]
pub struct TeamConfig {
    /// What rules route to and threads are assigned to (`route = "support"`).
    pub id: String,
    /// For people (the inbox); the id when not given.
    pub name: String,
    /// The SLA: the first response is due this much business time after the
    /// first unanswered inbound of a wait.
    pub response_standard: Duration,
    /// When the SLA clock runs, in the team's zone.
    pub business_hours: BusinessHours,
}

impl TeamConfig {
    /// When a wait that began at `waiting_since` breaches the team's
    /// response standard.
    pub fn sla_due(&self, waiting_since: DateTime<Utc>) -> DateTime<Utc> {
        self.business_hours
            .add(waiting_since, self.response_standard)
    }
}

/// `[[conversation.team]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamFile {
    /// Letters, digits, `-`, `_` (checked with the rest of the config).
    id: String,
    #[serde(default)]
    name: Option<String>,
    /// Default 10m.
    #[serde(
        default = "default_standard",
        deserialize_with = "crate::config::duration_value"
    )]
    response_standard: Duration,
    /// Default 24/7.
    #[serde(default)]
    business_hours: WeeklyHours,
    /// Default UTC.
    #[serde(
        default = "default_zone",
        deserialize_with = "crate::policy::settings::time_zone"
    )]
    time_zone: Tz,
}

fn default_standard() -> Duration {
    Duration::from_secs(600)
}

fn default_zone() -> Tz {
    chrono_tz::UTC
}

impl From<TeamFile> for TeamConfig {
    fn from(f: TeamFile) -> TeamConfig {
        TeamConfig {
            name: f.name.unwrap_or_else(|| f.id.clone()),
            id: f.id,
            response_standard: f.response_standard,
            business_hours: BusinessHours {
                week: f.business_hours,
                zone: f.time_zone,
            },
        }
    }
}

/// A bad `business_hours`: what was wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; expected `Days HH:MM-HH:MM` items separated by commas (e.g. \"Mon-Fri 08:00-18:00, Sat 09:00-12:00\") or 24/7")]
pub struct HoursError(String);

/// Open windows per weekday (Monday first), in minutes of the local day,
/// `[start, end)`, sorted and merged. None: 24/7.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyHours(Option<[Vec<(u32, u32)>; 7]>);

const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

const MINUTES_PER_DAY: u32 = 24 * 60;

impl WeeklyHours {
    /// Always open.
    pub const ALWAYS: WeeklyHours = WeeklyHours(None);

    pub fn parse(text: &str) -> Result<WeeklyHours, HoursError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(HoursError("no hours given".into()));
        }
        if text == "24/7" {
            return Ok(WeeklyHours(None));
        }
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        let mut items = 0;
        for item in text.split([',', ';']) {
            let item = item.trim();
            if item.is_empty() {
                return Err(HoursError(format!("{text:?} has an empty item")));
            }
            let (days, times) = item
                .split_once(char::is_whitespace)
                .ok_or_else(|| HoursError(format!("{item:?} has no time window")))?;
            let days = parse_days(days)?;
            let (start, end) = times
                .trim()
                .split_once('-')
                .ok_or_else(|| HoursError(format!("{item:?}: the window is not HH:MM-HH:MM")))?;
            let start = minute_of_day(start, false)
                .ok_or_else(|| HoursError(format!("{item:?}: {start:?} is not a time HH:MM")))?;
            let end = minute_of_day(end, true)
                .ok_or_else(|| HoursError(format!("{item:?}: {end:?} is not a time HH:MM")))?;
            if start == end {
                return Err(HoursError(format!("{item:?} is an empty window")));
            }
            for day in days {
                if start < end {
                    week[day].push((start, end));
                } else {
                    // Past midnight: the rest of this day and the start of the next.
                    week[day].push((start, MINUTES_PER_DAY));
                    if end > 0 {
                        week[(day + 1) % 7].push((0, end));
                    }
                }
            }
            items += 1;
        }
        if items == 0 {
            return Err(HoursError("no hours given".into()));
        }
        for windows in &mut week {
            windows.sort_unstable();
            let mut merged: Vec<(u32, u32)> = Vec::with_capacity(windows.len());
            for &(s, e) in windows.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *windows = merged;
        }
        Ok(WeeklyHours(Some(week)))
    }
}

impl<'de> Deserialize<'de> for WeeklyHours {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        WeeklyHours::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `Mon`, `Mon-Fri`, `Fri-Mon` (wrapping): weekday indexes, Monday 0.
fn parse_days(text: &str) -> Result<Vec<usize>, HoursError> {
    let day = |name: &str| {
        let lower = name.trim().to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|full| lower.len() >= 3 && full.starts_with(&lower))
            .ok_or_else(|| {
                HoursError(format!(
                    "{name:?} is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"
                ))
            })
    };
    match text.split_once('-') {
        None => Ok(vec![day(text)?]),
        Some((first, last)) => {
            let (first, last) = (day(first)?, day(last)?);
            let count = (last + 7 - first) % 7 + 1;
            Ok((0..count).map(|i| (first + i) % 7).collect())
        }
    }
}

/// `HH:MM` as minutes of the day; `24:00` only as an end.
fn minute_of_day(text: &str, end: bool) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end => Some(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// A team's weekly hours in its zone.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessHours {
    week: WeeklyHours,
    zone: Tz,
}

impl BusinessHours {
    pub fn new(week: WeeklyHours, zone: Tz) -> BusinessHours {
        BusinessHours { week, zone }
    }

    /// `text` as [`WeeklyHours::parse`] reads it, in `zone`.
    pub fn parse(text: &str, zone: Tz) -> Result<BusinessHours, HoursError> {
        Ok(BusinessHours::new(WeeklyHours::parse(text)?, zone))
    }

    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// Whether `at` is in business hours.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        if self.week.0.is_none() {
            return true;
        }
        let date = self.local_date(at);
        [date.pred_opt(), Some(date)]
            .into_iter()
            .flatten()
            .flat_map(|d| self.windows_on(d))
            .any(|(start, end)| start <= at && at < end)
    }

    /// The instant `duration` of business time after `from` (the SLA due
    /// time). From outside hours the clock starts at the next opening; a
    /// zero duration from outside hours is that opening.
    pub fn add(&self, from: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
        let left = chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        let Some(week) = &self.week.0 else {
            return from
                .checked_add_signed(left)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
        };
        if week.iter().all(Vec::is_empty) {
            return DateTime::<Utc>::MAX_UTC;
        }
        let mut left = left;
        // The day before: a window ending at a midnight skipped by DST
        // reaches into `from`'s local day.
        let mut date = self.local_date(from).pred_opt().unwrap_or(NaiveDate::MIN);
        loop {
            for (start, end) in self.windows_on(date) {
                let start = start.max(from);
                if end <= start {
                    continue;
                }
                let open = end - start;
                if left <= open {
                    return start + left;
                }
                left -= open;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => return DateTime::<Utc>::MAX_UTC,
            }
        }
    }

    /// Business time between `from` and `to` (zero when `to` is not after
    /// `from`).
    pub fn business_duration(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::ZERO;
        }
        if self.week.0.is_none() {
            return (to - from).to_std().unwrap_or(Duration::ZERO);
        }
        let mut total = chrono::Duration::zero();
        let last = self.local_date(to);
        let mut date = self.local_date(from).pred_opt().unwrap_or(NaiveDate::MIN);
        while date <= last {
            for (start, end) in self.windows_on(date) {
                let (start, end) = (start.max(from), end.min(to));
                if end > start {
                    total += end - start;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        total.to_std().unwrap_or(Duration::ZERO)
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.zone).date_naive()
    }

    /// The open windows of local day `date` as instants.
    fn windows_on(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let Some(week) = &self.week.0 else {
            return Vec::new();
        };
        let day = date.weekday().num_days_from_monday() as usize;
        week[day]
            .iter()
            .filter_map(|&(s, e)| {
                let start = self.instant(date, s)?;
                let end = match e {
                    MINUTES_PER_DAY => self.instant(date.succ_opt()?, 0)?,
                    e => self.instant(date, e)?,
                };
                (end > start).then_some((start, end))
            })
            .collect()
    }

    /// Local `minute` of `date` as an instant: a time skipped by DST is the
    /// first instant after the gap; a repeated one its first occurrence.
    fn instant(&self, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
        let naive = date.and_hms_opt(minute / 60, minute % 60, 0)?;
        // Gaps are an hour or two; a day's search bounds a broken zone.
        (0..=MINUTES_PER_DAY).find_map(|step| {
            let t = naive + chrono::Duration::minutes(i64::from(step));
            match self.zone.from_local_datetime(&t) {
                LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
                LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
                LocalResult::None => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn chicago(text: &str) -> BusinessHours {
        BusinessHours::parse(text, chrono_tz::America::Chicago).unwrap()
    }

    const TEN_MIN: Duration = Duration::from_secs(600);

    #[test]
    fn a_text_late_on_friday_is_due_on_monday_morning() {
        let hours = chicago("Mon-Fri 08:00-18:00");
        // Friday 16 January 2026, 17:55 CST (-6) = 23:55 UTC.
        let due = hours.add(utc("2026-01-16T23:55:00Z"), TEN_MIN);
        // Five minutes on Friday, five on Monday: 08:05 CST.
        assert_eq!(due, utc("2026-01-19T14:05:00Z"));
        assert_eq!(
            hours.business_duration(utc("2026-01-16T23:55:00Z"), due),
            TEN_MIN
        );
        // The weekend is not business time; the whole of it adds nothing.
        assert_eq!(
            hours.business_duration(utc("2026-01-17T00:00:00Z"), utc("2026-01-19T14:00:00Z")),
            Duration::ZERO
        );
        assert!(
            !hours.contains(utc("2026-01-17T18:00:00Z")),
            "Saturday noon"
        );
    }

    #[test]
    fn a_text_outside_hours_starts_the_clock_at_the_opening() {
        let hours = chicago("Mon-Fri 08:00-18:00, Sat 09:00-12:00");
        // Tuesday 20:00 CST: due Wednesday 08:10.
        assert_eq!(
            hours.add(utc("2026-01-21T02:00:00Z"), TEN_MIN),
            utc("2026-01-21T14:10:00Z")
        );
        // Friday 19:00 CST: Saturday has hours now, due 09:10.
        assert_eq!(
            hours.add(utc("2026-01-24T01:00:00Z"), TEN_MIN),
            utc("2026-01-24T15:10:00Z")
        );
        // Saturday 11:55: five minutes left, then Monday 08:05.
        assert_eq!(
            hours.add(utc("2026-01-24T17:55:00Z"), TEN_MIN),
            utc("2026-01-26T14:05:00Z")
        );
        // Zero from outside hours: the opening; from inside: now.
        assert_eq!(
            hours.add(utc("2026-01-21T02:00:00Z"), Duration::ZERO),
            utc("2026-01-21T14:00:00Z")
        );
        assert_eq!(
            hours.add(utc("2026-01-21T15:00:00Z"), Duration::ZERO),
            utc("2026-01-21T15:00:00Z")
        );
        // Ending exactly at the close is due at the close.
        assert_eq!(
            hours.add(utc("2026-01-21T23:50:00Z"), TEN_MIN),
            utc("2026-01-22T00:00:00Z")
        );
        assert!(hours.contains(utc("2026-01-21T14:00:00Z")), "08:00 opens");
        assert!(!hours.contains(utc("2026-01-22T00:00:00Z")), "18:00 closes");
        assert!(!hours.contains(utc("2026-01-21T13:59:59Z")));
    }

    #[test]
    fn dst_changes_move_the_opening_in_utc() {
        let hours = chicago("Mon-Fri 08:00-18:00");
        // Saturday 7 March 2026; the clocks go forward on Sunday the 8th.
        // Monday 08:10 is CDT (-5): 13:10 UTC, not 14:10.
        assert_eq!(
            hours.add(utc("2026-03-07T18:00:00Z"), TEN_MIN),
            utc("2026-03-09T13:10:00Z")
        );
        // Friday 17:00 CST to Monday 09:00 CDT: one hour each side.
        assert_eq!(
            hours.business_duration(utc("2026-03-06T23:00:00Z"), utc("2026-03-09T14:00:00Z")),
            Duration::from_secs(2 * 3600)
        );
        // Autumn: Monday 2 November 08:00 is CST again (14:00 UTC).
        assert_eq!(
            hours.add(utc("2026-10-31T12:00:00Z"), Duration::ZERO),
            utc("2026-11-02T14:00:00Z")
        );
        // A whole-day window is 23 hours on the spring Sunday, 25 in autumn.
        let sundays = chicago("Sun 00:00-24:00");
        assert_eq!(
            sundays.business_duration(utc("2026-03-01T00:00:00Z"), utc("2026-03-10T00:00:00Z")),
            Duration::from_secs((24 + 23) * 3600)
        );
        assert_eq!(
            sundays.business_duration(utc("2026-10-31T00:00:00Z"), utc("2026-11-03T00:00:00Z")),
            Duration::from_secs(25 * 3600)
        );
        // A window edge inside the spring gap (02:30 does not exist) is the
        // end of the gap, 03:00 CDT: the window is one hour long.
        let night = chicago("Sun 01:00-02:30");
        assert_eq!(
            night.business_duration(utc("2026-03-08T00:00:00Z"), utc("2026-03-09T00:00:00Z")),
            Duration::from_secs(3600)
        );
        assert!(night.contains(utc("2026-03-08T07:59:59Z")));
        assert!(!night.contains(utc("2026-03-08T08:00:00Z")));
    }

    #[test]
    fn around_the_clock() {
        let always = chicago("24/7");
        let from = utc("2026-03-07T18:00:00Z");
        assert!(always.contains(from));
        assert_eq!(always.add(from, TEN_MIN), utc("2026-03-07T18:10:00Z"));
        // Across the spring change: elapsed time, not wall-clock time.
        assert_eq!(
            always.business_duration(from, utc("2026-03-08T18:00:00Z")),
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(always.business_duration(from, from), Duration::ZERO);
        assert_eq!(
            always.business_duration(utc("2026-03-08T18:00:00Z"), from),
            Duration::ZERO
        );
    }

    #[test]
    fn windows_past_midnight_and_wrapping_day_ranges() {
        let night = BusinessHours::parse("Fri-Sun 22:00-02:00", chrono_tz::UTC).unwrap();
        // Friday 16 January 2026 22:00 to Monday 02:00: three 4-hour nights.
        assert!(
            night.contains(utc("2026-01-17T01:00:00Z")),
            "Saturday 01:00"
        );
        assert!(night.contains(utc("2026-01-19T01:59:00Z")), "Monday 01:59");
        assert!(!night.contains(utc("2026-01-19T02:00:00Z")));
        assert_eq!(
            night.business_duration(utc("2026-01-13T00:00:00Z"), utc("2026-01-19T12:00:00Z")),
            Duration::from_secs(12 * 3600)
        );
        let wrap =
            BusinessHours::parse("sat-mon 09:00-10:00; Wed 09:00-24:00", chrono_tz::UTC).unwrap();
        // Saturday, Sunday, Monday and Wednesday's 15 hours.
        assert_eq!(
            wrap.business_duration(utc("2026-01-17T00:00:00Z"), utc("2026-01-24T00:00:00Z")),
            Duration::from_secs(3 * 3600 + 15 * 3600)
        );
        // Overlapping items merge: not counted twice.
        let overlap =
            BusinessHours::parse("Mon 08:00-12:00, Monday 10:00-14:00", chrono_tz::UTC).unwrap();
        assert_eq!(
            overlap.business_duration(utc("2026-01-19T00:00:00Z"), utc("2026-01-20T00:00:00Z")),
            Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn bad_hours_say_what_is_expected() {
        for (text, says) in [
            ("Mon-Fry 08:00-18:00", "\"Fry\" is not a day"),
            ("Mon-Fri 8-18", "\"8\" is not a time HH:MM"),
            ("Mon-Fri 08:00-25:00", "\"25:00\" is not a time"),
            ("Mon-Fri 24:00-08:00", "\"24:00\" is not a time"),
            ("Mon-Fri", "has no time window"),
            ("Mon-Fri 08:00", "not HH:MM-HH:MM"),
            ("Mon 09:00-09:00", "empty window"),
            ("", "no hours given"),
            ("Mon-Fri 08:00-18:00,", "empty item"),
            ("Mo 08:00-18:00", "\"Mo\" is not a day"),
        ] {
            let e = WeeklyHours::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
            assert!(e.contains("expected `Days HH:MM-HH:MM`"), "{text:?}: {e}");
        }
    }

    #[test]
    fn teams_are_typed_when_the_config_is_read() {
        #[derive(Deserialize)]
        struct Section {
            team: Vec<TeamConfig>,
        }
        let section: Section = toml_like(
            r#"[{"id": "support", "name": "Support", "response_standard": "10m",
                 "business_hours": "Mon-Fri 08:00-18:00", "time_zone": "America/Chicago"},
                {"id": "sales"}]"#,
        )
        .unwrap();
        let support = &section.team[0];
        assert_eq!(support.response_standard, TEN_MIN);
        assert_eq!(support.business_hours.zone(), chrono_tz::America::Chicago);
        assert_eq!(
            support.sla_due(utc("2026-01-16T23:55:00Z")),
            utc("2026-01-19T14:05:00Z")
        );
        let sales = &section.team[1];
        assert_eq!(sales.name, "sales");
        assert_eq!(
            sales.business_hours,
            BusinessHours::new(WeeklyHours::ALWAYS, chrono_tz::UTC)
        );
        for bad in [
            r#"[{"id": "x", "business_hours": "weekdays"}]"#,
            r#"[{"id": "x", "time_zone": "Mars/Olympus"}]"#,
            r#"[{"id": "x", "response_standard": "soon"}]"#,
            r#"[{"id": "x", "hours": "24/7"}]"#,
        ] {
            assert!(toml_like(bad).is_err(), "{bad}");
        }

        fn toml_like(teams: &str) -> Result<Section, serde_json::Error> {
            serde_json::from_str(&format!(r#"{{"team": {teams}}}"#))
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn item() -> impl Strategy<Value = String> {
        let day = prop::sample::select(vec!["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]);
        (
            day.clone(),
            prop::option::of(day),
            0u32..24,
            0u32..60,
            0u32..25,
            0u32..60,
        )
            .prop_map(|(first, last, h1, m1, h2, m2)| {
                let days = match last {
                    Some(last) => format!("{first}-{last}"),
                    None => first.to_string(),
                };
                let end = if h2 == 24 {
                    "24:00".to_string()
                } else {
                    format!("{h2:02}:{m2:02}")
                };
                format!("{days} {h1:02}:{m1:02}-{end}")
            })
    }

    fn zone() -> impl Strategy<Value = Tz> {
        prop::sample::select(vec![
            chrono_tz::UTC,
            chrono_tz::America::Chicago,
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Lord_Howe, // 30-minute DST changes
            chrono_tz::America::Santiago,    // DST changes at midnight
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Anything a config can hold: hours or an error, never a panic.
        #[test]
        fn any_text_is_hours_or_an_error(text in "\\PC{0,40}") {
            let _ = WeeklyHours::parse(&text);
        }

        /// The due time is exactly the duration of business time away, and
        /// business hours contain the instant just before it.
        #[test]
        fn add_and_business_duration_agree(
            items in prop::collection::vec(item(), 1..4),
            zone in zone(),
            from_s in 1_767_225_600i64..1_830_297_600, // 2026-2027
            minutes in 0u64..6000,
        ) {
            let Ok(hours) = BusinessHours::parse(&items.join(", "), zone) else {
                return Ok(()); // an empty window: refused, fine
            };
            let from = DateTime::from_timestamp(from_s, 0).unwrap();
            let duration = Duration::from_secs(minutes * 60);
            let due = hours.add(from, duration);
            prop_assert!(due >= from);
            prop_assert_eq!(hours.business_duration(from, due), duration);
            if minutes > 0 {
                prop_assert!(hours.contains(due - chrono::Duration::seconds(1)));
            }
        }
    }
}
