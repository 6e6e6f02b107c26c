//! Consent and compliance: what inbound STOP/START/HELP texts do, who may be
//! texted, quiet hours and per-contact rate limits. One [`Policy`] is built
//! from the config; the store calls its reactor inside the inbound
//! transaction, the API asks it at accept time and the modem actors right
//! before `AT+CMGS` (the check cannot be bypassed by any API).

pub mod keywords;
pub mod quiet_hours;
pub mod settings;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;

use crate::modem::{Gate, SendGate};
use crate::store::{
    Category, ConsentRecord, ConsentStatus, Direction, ErrorInfo, Message, MessageFilter,
    MessageStatus, Reaction, Reactor, Store,
};
use keywords::{Intent, Keywords};
use quiet_hours::{zone_for_number, QuietHours};
use settings::{ConsentConfig, ConsentScope, QuietHoursConfig, RateLimitConfig};

/// An opt-out confirmation not sent within this long is dropped
/// (47 CFR 64.1200(a)(12): confirm within 5 minutes, once).
pub const CONFIRMATION_WITHIN_MINUTES: i64 = 5;

/// One HELP answer per contact in this many minutes (12 HELPs in 13 s once
/// got 12 replies).
pub const HELP_REPLY_WINDOW_MINUTES: i64 = 10;

/// The `exempt` reason of a HELP answer.
const HELP: &str = "help";

/// What an inbound text asks of consent, before any reply is composed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// A new state and the ledger action ("opt_out", "opt_in", "repeat_opt_out").
    pub consent: Option<(ConsentStatus, String)>,
    /// What matched, for the ledger.
    pub matched: Option<String>,
    pub reply: Option<ExemptReply>,
}

/// A reply exempt from the consent check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptReply {
    pub text: String,
    /// "opt_out_confirmation", "opt_in_confirmation" or "help".
    pub why: &'static str,
    /// Dropped if not sent within this long.
    pub within: Option<Duration>,
}

/// Why a message may not be sent at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    OptedOut,
    ConsentRequired,
    NotConversational,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OptedOut => "recipient_opted_out",
            Refusal::ConsentRequired => "consent_required",
            Refusal::NotConversational => "not_conversational",
        }
    }

    pub fn text(&self) -> &'static str {
        match self {
            Refusal::OptedOut => {
                "the recipient opted out (STOP); only START or recorded opt-in evidence resumes"
            }
            Refusal::ConsentRequired => {
                "this category needs recorded opt-in evidence for the recipient"
            }
            Refusal::NotConversational => {
                "conversational messages are replies in a thread the contact started or answered"
            }
        }
    }

    pub fn error(&self) -> ErrorInfo {
        ErrorInfo {
            code: self.code().into(),
            text: self.text().into(),
        }
    }
}

/// A reason to wait, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub until: DateTime<Utc>,
    pub reason: String,
}

pub struct Policy {
    keywords: Keywords,
    program: String,
    help_text: String,
    opt_out_text: String,
    opt_in_text: String,
    per_number: bool,
    allow_without_opt_in: HashSet<Category>,
    quiet: QuietHours,
    default_zone: Tz,
    infer_zone: bool,
    quiet_categories: HashSet<Category>,
    marketing_per_day: u32,
    per_hour: u32,
    /// In a fleet: how current the replica of the fleet's consent is.
    freshness: Option<Arc<crate::fleet::Freshness>>,
}

impl Policy {
    /// From the config's typed sections (`Policy::from_config` in the
    /// config module composes them from a whole file).
    pub fn new(c: &ConsentConfig, quiet: &QuietHoursConfig, rates: &RateLimitConfig) -> Policy {
        let list = |custom: &Option<Vec<String>>, default: &[&str]| -> Vec<String> {
            custom
                .clone()
                .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect())
        };
        let keywords = Keywords::new(
            &list(&c.opt_out_keywords, keywords::DEFAULT_OPT_OUT),
            &list(&c.opt_in_keywords, keywords::DEFAULT_OPT_IN),
            &list(&c.help_keywords, keywords::DEFAULT_HELP),
        );
        let fill = |t: &str| t.replace("{program}", &c.program_name);
        let contact = if c.help_contact.trim().is_empty() {
            String::new()
        } else {
            format!(" Help: {}.", c.help_contact.trim())
        };
        let help_text = format!(
            "{}:{contact} {}. Msg&data rates may apply. Reply STOP to opt out.",
            c.program_name,
            c.frequency.trim_end_matches('.')
        );
        let mut quiet_categories: HashSet<Category> = quiet.defer.iter().copied().collect();
        quiet_categories.insert(Category::Marketing);
        Policy {
            keywords,
            program: c.program_name.clone(),
            help_text,
            opt_out_text: fill(&c.opt_out_confirmation),
            opt_in_text: fill(&c.opt_in_confirmation),
            per_number: c.scope == ConsentScope::Number,
            allow_without_opt_in: c.allow_without_opt_in.iter().copied().collect(),
            quiet: QuietHours {
                start: quiet.start,
                end: quiet.end,
            },
            default_zone: quiet.default_time_zone,
            infer_zone: quiet.infer_from_country,
            quiet_categories,
            marketing_per_day: rates.marketing_per_day,
            per_hour: rates.per_contact_per_hour,
            freshness: None,
        }
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    pub fn help_text(&self) -> &str {
        &self.help_text
    }

    /// In a fleet (`[cluster]`): sends wait for contacts whose consent was
    /// not seen within the staleness (the broker lost for longer).
    pub fn with_freshness(mut self, freshness: Arc<crate::fleet::Freshness>) -> Policy {
        self.freshness = Some(freshness);
        self
    }

    /// The fleet's consent replica, when in a fleet.
    pub fn freshness(&self) -> Option<&Arc<crate::fleet::Freshness>> {
        self.freshness.as_ref()
    }

    pub fn per_number(&self) -> bool {
        self.per_number
    }

    /// What an inbound text does (a pure function of text and record).
    pub fn react(&self, message: &Message, record: &ConsentRecord) -> Decision {
        let c = self.keywords.classify(&message.body);
        let opted_out = record.status == ConsentStatus::OptedOut;
        let mut r = Decision {
            matched: Some(c.matched.clone()),
            ..Decision::default()
        };
        let reply = |text: &str, why: &'static str, within: Option<Duration>| {
            Some(ExemptReply {
                text: text.to_string(),
                why,
                within,
            })
        };
        match c.intent {
            Intent::OptOut if opted_out => {
                // Recorded, but no second confirmation.
                r.consent = Some((ConsentStatus::OptedOut, "repeat_opt_out".into()));
            }
            Intent::OptOut => {
                r.consent = Some((ConsentStatus::OptedOut, "opt_out".into()));
                r.reply = reply(
                    &self.opt_out_text,
                    "opt_out_confirmation",
                    Some(Duration::minutes(CONFIRMATION_WITHIN_MINUTES)),
                );
            }
            Intent::OptIn | Intent::Yes
                if record.status != ConsentStatus::OptedIn
                    && (opted_out || c.intent == Intent::OptIn) =>
            {
                r.consent = Some((ConsentStatus::OptedIn, "opt_in".into()));
                r.reply = reply(&self.opt_in_text, "opt_in_confirmation", None);
            }
            Intent::Help => {
                let window = Duration::minutes(HELP_REPLY_WINDOW_MINUTES);
                match record.help_answered_at {
                    Some(at) if message.created_at - at < window => {}
                    _ => r.reply = reply(&self.help_text, HELP, None),
                }
            }
            _ => return Decision::default(),
        }
        r
    }

    /// The decision for `message` with its reply composed: none to a sender
    /// that cannot be texted (an alphanumeric sender id).
    pub fn reaction(&self, store: &Store, message: &Message, record: &ConsentRecord) -> Reaction {
        let decision = self.react(message, record);
        let now = message.created_at;
        let reply = decision.reply.and_then(|reply| {
            if crate::pdu::Address::parse_number(&message.contact).is_err() {
                tracing::info!(
                    message_id = %message.id,
                    why = reply.why,
                    "no {} reply: the sender is not a number that can be texted",
                    reply.why
                );
                return None;
            }
            self.exempt_reply(store, message, &reply, now)
        });
        Reaction {
            consent: decision.consent,
            matched: decision.matched,
            answers_help: reply.as_ref().and_then(|r| r.exempt.as_deref()) == Some(HELP),
            reply,
        }
    }

    /// The reply as a message, composed as every outbound text is.
    fn exempt_reply(
        &self,
        store: &Store,
        inbound: &Message,
        reply: &ExemptReply,
        now: DateTime<Utc>,
    ) -> Option<Message> {
        let draft = crate::compose::Draft {
            from: &inbound.to,
            to: &inbound.contact,
            body: &reply.text,
            status_report: false,
            send_at: None,
            max_parts: crate::compose::PART_LIMIT,
        };
        match crate::compose::outbound(store, draft, now) {
            Ok(mut m) => {
                m.requested_modem = inbound.modem.clone();
                m.category = Category::Transactional;
                m.exempt = Some(reply.why.to_string());
                m.send_by = reply.within.map(|d| now + d);
                Some(m)
            }
            Err(e) => {
                tracing::error!(message_id = %inbound.id, "{} reply not sent: {e}", reply.why);
                None
            }
        }
    }

    /// The reactor the store runs inside its inbound transaction.
    pub fn reactor(self: &Arc<Self>) -> Reactor {
        let policy = self.clone();
        Arc::new(move |store, message, record| policy.reaction(store, message, record))
    }

    /// The zone quiet hours are counted in when nothing says a contact's
    /// (`[quiet_hours] default_time_zone`).
    pub fn default_zone(&self) -> Tz {
        self.default_zone
    }

    /// The zone quiet hours are counted in for `contact`.
    pub fn zone_for(&self, store: &Store, contact: &str) -> Tz {
        if let Some(zone) = store
            .profile(contact)
            .ok()
            .and_then(|p| p.time_zone)
            .and_then(|z| z.parse().ok())
        {
            return zone;
        }
        if self.infer_zone {
            if let Some(zone) = zone_for_number(contact) {
                return zone;
            }
        }
        self.default_zone
    }

    /// May `message` go to its contact at all?
    pub fn consent_check(
        &self,
        store: &Store,
        message: &Message,
        number: Option<&str>,
    ) -> Result<(), Refusal> {
        if message.exempt.is_some() {
            return Ok(());
        }
        let number = if self.per_number { number } else { None };
        let record = store.consent(&message.contact, number).unwrap_or_default();
        match record.status {
            ConsentStatus::OptedOut => return Err(Refusal::OptedOut),
            ConsentStatus::OptedIn if record.evidence.is_some() => return Ok(()),
            _ => {}
        }
        if message.category == Category::Marketing
            || !self.allow_without_opt_in.contains(&message.category)
        {
            return Err(Refusal::ConsentRequired);
        }
        Ok(())
    }

    /// A conversational message must answer a thread the contact started or answered.
    pub fn conversational_check(&self, store: &Store, message: &Message) -> Result<(), Refusal> {
        if message.category != Category::Conversational {
            return Ok(());
        }
        let filter = MessageFilter {
            contact: Some(message.contact.clone()),
            direction: Some(Direction::Inbound),
            ..MessageFilter::default()
        };
        match store.list(&filter, None, 1) {
            Ok(page) if !page.items.is_empty() => Ok(()),
            _ => Err(Refusal::NotConversational),
        }
    }

    /// Admit a new outbound message (the API's and reply-by-response's path):
    /// refused for whoever opted out or lacks the needed consent; quiet hours
    /// and rate limits make it `deferred` with its `not_before`, never drop it.
    pub fn admit(
        &self,
        store: &Store,
        message: &mut Message,
        number: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        self.consent_check(store, message, number)?;
        self.conversational_check(store, message)?;
        if message.status == MessageStatus::Queued {
            if let Some(hold) = self.hold(store, message, now) {
                message.status = MessageStatus::Deferred;
                message.not_before = Some(hold.until);
                if let Some(step) = message.history.first_mut() {
                    step.status = MessageStatus::Deferred;
                    step.note = Some(hold.reason);
                }
            }
        }
        Ok(())
    }

    /// Quiet hours and per-contact rate limits: when to wait, if at all.
    pub fn hold(&self, store: &Store, message: &Message, now: DateTime<Utc>) -> Option<Hold> {
        if message.exempt.is_some() {
            return None;
        }
        if let Some(freshness) = &self.freshness {
            // A change recorded for the contact (here, or applied from the
            // replica) is consent seen at that time at the latest.
            let changed = store
                .consent(&message.contact, None)
                .ok()
                .and_then(|r| r.updated_at);
            if let Some((until, reason)) = freshness.hold(changed, now) {
                return Some(Hold { until, reason });
            }
        }
        if self.quiet_categories.contains(&message.category) {
            let zone = self.zone_for(store, &message.contact);
            if let Some(until) = self.quiet.ends_after(now, zone) {
                return Some(Hold {
                    until,
                    reason: format!("quiet hours in {zone}"),
                });
            }
        }
        self.rate_hold(store, message, now)
    }

    /// Sent (or sending) outbound messages to the contact within the last 24 h:
    /// (when each went, its category), newest first.
    fn recent_sends(
        &self,
        store: &Store,
        message: &Message,
        now: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, Category)> {
        // The send log holds first sends only, so the message being checked
        // (not sent yet, or resuming its later parts) is never counted.
        store
            .sends_since(&message.contact, now - Duration::hours(24))
            .unwrap_or_default()
            .into_iter()
            .filter(|(at, _)| *at <= now)
            .collect()
    }

    fn rate_hold(&self, store: &Store, message: &Message, now: DateTime<Utc>) -> Option<Hold> {
        if self.per_hour == 0 && self.marketing_per_day == 0 {
            return None;
        }
        let sends = self.recent_sends(store, message, now);
        let mut hold: Option<Hold> = None;
        let mut consider =
            |window: Duration, limit: u32, matching: &dyn Fn(Category) -> bool, what: &str| {
                if limit == 0 {
                    return;
                }
                let mut times: Vec<DateTime<Utc>> = sends
                    .iter()
                    .filter(|(at, c)| now - *at < window && matching(*c))
                    .map(|(at, _)| *at)
                    .collect();
                if times.len() < limit as usize {
                    return;
                }
                times.sort();
                // Free again when enough of the window's sends have aged out.
                let until = times[times.len() - limit as usize] + window;
                if hold.as_ref().is_none_or(|h| until > h.until) {
                    hold = Some(Hold {
                        until,
                        reason: format!("rate limit: {limit} {what}"),
                    });
                }
            };
        consider(
            Duration::hours(1),
            self.per_hour,
            &|_| true,
            "messages per contact per hour",
        );
        if message.category == Category::Marketing {
            consider(
                Duration::hours(24),
                self.marketing_per_day,
                &|c| c == Category::Marketing,
                "marketing messages per contact per day",
            );
        }
        hold
    }
}

impl SendGate for Policy {
    fn check(
        &self,
        store: &Store,
        message: &Message,
        modem_number: Option<&str>,
        now: DateTime<Utc>,
    ) -> Gate {
        if let Some(by) = message.send_by {
            if now > by {
                tracing::warn!(message_id = %message.id, why = message.exempt.as_deref().unwrap_or(""), "reply dropped: it could not go out in time");
                return Gate::Refuse(ErrorInfo {
                    code: "too_late".into(),
                    text: "could not be sent within its time limit (an opt-out confirmation goes within 5 minutes or not at all)"
                        .into(),
                });
            }
        }
        if let Err(refusal) = self.consent_check(store, message, modem_number) {
            return Gate::Refuse(refusal.error());
        }
        match self.hold(store, message, now) {
            Some(hold) => Gate::Defer {
                until: hold.until,
                reason: hold.reason,
            },
            None => Gate::Send,
        }
    }
}
