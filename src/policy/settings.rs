//! The policy's settings, as the config file writes them (`[consent]`,
//! `[quiet_hours]`, `[rate_limits]`): typed when the file is read, so the
//! policy never parses a string. The config module composes these sections;
//! the policy does not know about files.

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use crate::store::Category;

/// Who an opt-out covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// Every gateway number.
    #[default]
    All,
    /// Only the number it was sent to.
    Number,
}

/// `[consent]`: keywords, replies and who may be texted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// The business name in HELP and confirmation replies.
    pub program_name: String,
    /// How to reach a person, for HELP replies (a phone number, an address).
    pub help_contact: String,
    /// Message frequency, for HELP replies.
    pub frequency: String,
    /// The one reply to an opt-out ({program} is replaced). No marketing.
    pub opt_out_confirmation: String,
    /// The reply to START/UNSTOP/YES.
    pub opt_in_confirmation: String,
    /// Opt-out keywords; default STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL,
    /// END, QUIT, REVOKE, OPTOUT, OPT OUT, OPT-OUT, ARRET, ALTO, PARAR, ...
    #[serde(deserialize_with = "keyword_list")]
    pub opt_out_keywords: Option<Vec<String>>,
    /// Opt-in keywords; default START, UNSTOP, SUBSCRIBE (YES while opted out).
    #[serde(deserialize_with = "keyword_list")]
    pub opt_in_keywords: Option<Vec<String>>,
    /// Help keywords; default HELP, INFO, AIDE, AYUDA.
    #[serde(deserialize_with = "keyword_list")]
    pub help_keywords: Option<Vec<String>>,
    /// "all": an opt-out covers every gateway number (default); "number":
    /// only the number it was sent to.
    pub scope: ConsentScope,
    /// Categories that may go to contacts who never opted in or out.
    pub allow_without_opt_in: Vec<Category>,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            program_name: "smsgate".into(),
            help_contact: String::new(),
            frequency: "Message frequency varies".into(),
            opt_out_confirmation:
                "{program}: you are unsubscribed and will get no more messages. Reply START to resubscribe.".into(),
            opt_in_confirmation: "{program}: you are subscribed again. Reply HELP for help, STOP to opt out.".into(),
            opt_out_keywords: None,
            opt_in_keywords: None,
            help_keywords: None,
            scope: ConsentScope::All,
            allow_without_opt_in: vec![Category::Transactional, Category::Conversational],
        }
    }
}

/// A custom keyword list; an empty one would ignore every request.
fn keyword_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    if list.iter().all(|k| k.trim().is_empty()) {
        return Err(serde::de::Error::custom(
            "an empty list would ignore every request; omit the key for the defaults",
        ));
    }
    Ok(Some(list))
}

/// `[quiet_hours]`: local night-time, per contact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuietHoursConfig {
    /// Local start, "HH:MM".
    #[serde(deserialize_with = "hh_mm")]
    pub start: NaiveTime,
    /// Local end, "HH:MM" (may be past midnight).
    #[serde(deserialize_with = "hh_mm")]
    pub end: NaiveTime,
    /// IANA zone for contacts without one.
    #[serde(deserialize_with = "time_zone")]
    pub default_time_zone: Tz,
    /// Use the country's zone for numbers of single-zone countries.
    pub infer_from_country: bool,
    /// Categories held back during quiet hours (marketing always is).
    pub defer: Vec<Category>,
}

impl Default for QuietHoursConfig {
    fn default() -> Self {
        QuietHoursConfig {
            start: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            default_time_zone: chrono_tz::America::New_York,
            infer_from_country: true,
            defer: vec![Category::Marketing],
        }
    }
}

fn hh_mm<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let text = String::deserialize(d)?;
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("{text:?}: a local time HH:MM, e.g. 21:00")))
}

/// An IANA zone name (`America/Chicago`), for every section that takes one.
pub(crate) fn time_zone<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let text = String::deserialize(d)?;
    text.parse::<Tz>().map_err(|_| {
        serde::de::Error::custom(format!(
            "{text:?} is not an IANA zone (e.g. America/Chicago)"
        ))
    })
}

/// `[rate_limits]`: per contact (carriers filter bursts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Marketing messages per contact per 24 hours.
    pub marketing_per_day: u32,
    /// Messages of any kind per contact per hour.
    pub per_contact_per_hour: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            marketing_per_day: 3,
            per_contact_per_hour: 10,
        }
    }
}
