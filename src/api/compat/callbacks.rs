//! What the compat APIs send back out, each as a webhook endpoint of its own
//! ([`Foreign`]), so the store's durable deliveries, per-message ordering,
//! retries for a day, dead letters and the operator's retry API all apply,
//! and answers become replies through the reply-by-response path (consent
//! checked, once per event):
//!
//! - `compat-twilio-status`: a message's `StatusCallback`, form-encoded and
//!   signed with `X-Twilio-Signature`, on each status change.
//! - `compat-twilio-sms`: inbound SMS to a `[[compat.twilio.number]]`,
//!   POSTed to its `sms_url` as Twilio does; a TwiML `<Message>` answer is
//!   the reply.
//! - `compat-kannel-dlr`: Kannel delivery reports, a GET of the message's
//!   `dlr-url` with Kannel's escapes, for the states its `dlr-mask` asks.
//! - `compat-kannel-sms`: inbound SMS to a `[[compat.kannel.service]]`'s
//!   `get_url`; a plain-text answer is the reply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, Utc};

use super::twilio::{self, sid_of};
use super::{url_encode, Callback, CompatConfig};
use crate::store::{Event, Message, MessageStatus, Store};
use crate::webhook::{Answer, Endpoint, Foreign, Outgoing};

/// Kannel's `dlr-mask` bits (user guide, "Delivery reports").
pub const DLR_DELIVERED: u8 = 1;
pub const DLR_FAILED: u8 = 2;
pub const DLR_BUFFERED: u8 = 4;
pub const DLR_SUBMITTED: u8 = 8;
pub const DLR_REJECTED: u8 = 16;

/// How long each callback may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The events of an outbound message's status changes Twilio reports
/// (`message.unknown` is still `sending` to Twilio: no change to report;
/// the first five only for a message whose callback asks for every status).
const TWILIO_EVENTS: [&str; 9] = [
    "message.scheduled",
    "message.queued",
    "message.deferred",
    "message.sending",
    "message.cancelled",
    "message.sent",
    "message.delivered",
    "message.failed",
    "message.expired",
];

/// The message an event carries (events hold the record as stored).
fn message(event: &Event) -> Option<Message> {
    serde_json::from_value(event.data.clone()).ok()
}

fn form_body(params: &[(String, String)]) -> Bytes {
    let text: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect();
    Bytes::from(text.join("&"))
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A signed, form-encoded POST as Twilio makes to apps.
fn twilio_post(url: &str, token: &str, params: Vec<(String, String)>) -> Outgoing {
    let signature = super::signature::sign(token, url, &params);
    Outgoing {
        method: hyper::Method::POST,
        url: url.to_string(),
        content_type: "application/x-www-form-urlencoded",
        headers: vec![(super::signature::HEADER, signature)],
        body: form_body(&params),
        timeout: TIMEOUT,
    }
}

fn get(url: String) -> Outgoing {
    Outgoing {
        method: hyper::Method::GET,
        url,
        content_type: "text/plain",
        headers: Vec::new(),
        body: Bytes::new(),
        timeout: TIMEOUT,
    }
}

/// Twilio status callbacks.
pub struct TwilioStatus {
    /// Account sid -> its auth token (signing key).
    tokens: HashMap<String, String>,
    /// Callbacks an earlier build kept beside the messages.
    legacy: Option<sled::Tree>,
}

impl TwilioStatus {
    /// (account sid, StatusCallback) of the message a status event is about.
    fn callback(&self, event: &Event) -> Option<(String, String)> {
        if !TWILIO_EVENTS.contains(&event.kind.as_str()) {
            return None;
        }
        match super::callback_of(event, self.legacy.as_ref())? {
            Callback::Twilio { account_sid, url } => Some((account_sid, url)),
            Callback::Kannel { .. } => None,
        }
    }

    /// The parameters Twilio posts to a StatusCallback.
    pub fn params(message: &Message, account_sid: &str) -> Vec<(String, String)> {
        let sid = sid_of(&message.id);
        let status = twilio::status(message).to_string();
        let mut list = vec![
            ("AccountSid", account_sid.to_string()),
            ("ApiVersion", twilio::API_VERSION.to_string()),
            ("From", message.from.clone()),
            ("MessageSid", sid.clone()),
            ("MessageStatus", status.clone()),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("To", message.to.clone()),
        ];
        if let (Some(code), _) = twilio::error(message) {
            list.push(("ErrorCode", code.to_string()));
        }
        pairs(&list)
    }
}

impl Foreign for TwilioStatus {
    fn partition(&self, event: &Event) -> Option<String> {
        self.callback(event)?;
        event.data.get("id")?.as_str().map(str::to_string)
    }

    fn request(&self, event: &Event, timeout: Duration) -> Option<Outgoing> {
        let (account, url) = self.callback(event)?;
        let message = message(event)?;
        let Some(token) = self.tokens.get(&account) else {
            tracing::warn!(account = %account, "StatusCallback of an account no longer configured with a signing_token: not sent");
            return None;
        };
        let mut out = twilio_post(&url, token, Self::params(&message, &account));
        out.timeout = timeout;
        Some(out)
    }

    fn reply(&self, _: &Event, _: &Answer) -> Option<String> {
        None
    }
}

/// Inbound SMS to Twilio numbers.
pub struct TwilioIncoming {
    /// Our number -> (sms_url, account sid, auth token).
    numbers: HashMap<String, (String, String, String)>,
    default_country: String,
}

impl TwilioIncoming {
    /// The parameters Twilio posts to an app's SMS URL.
    pub fn params(message: &Message, account_sid: &str, country: &str) -> Vec<(String, String)> {
        let sid = sid_of(&message.id);
        let country_of = |n: &str| {
            crate::phone::country_of(n, country)
                .unwrap_or("")
                .to_string()
        };
        pairs(&[
            ("AccountSid", account_sid.to_string()),
            ("ApiVersion", twilio::API_VERSION.to_string()),
            ("Body", message.body.clone()),
            ("From", message.from.clone()),
            ("FromCountry", country_of(&message.from)),
            ("MessageSid", sid.clone()),
            ("NumMedia", "0".into()),
            ("NumSegments", message.parts.to_string()),
            ("SmsMessageSid", sid.clone()),
            ("SmsSid", sid),
            ("SmsStatus", "received".into()),
            ("To", message.to.clone()),
            ("ToCountry", country_of(&message.to)),
        ])
    }
}

impl Foreign for TwilioIncoming {
    fn partition(&self, event: &Event) -> Option<String> {
        if event.kind != "message.received" {
            return None;
        }
        let to = event.data.get("to")?.as_str()?;
        self.numbers
            .contains_key(to)
            .then(|| event.data.get("id")?.as_str().map(str::to_string))?
    }

    fn request(&self, event: &Event, timeout: Duration) -> Option<Outgoing> {
        let message = message(event)?;
        let (url, account, token) = self.numbers.get(&message.to)?;
        let mut out = twilio_post(
            url,
            token,
            Self::params(&message, account, &self.default_country),
        );
        out.timeout = timeout;
        Some(out)
    }

    fn reply(&self, event: &Event, answer: &Answer) -> Option<String> {
        let body = String::from_utf8_lossy(&answer.body);
        match super::twiml::parse(&body) {
            Ok(super::twiml::Twiml::Reply(text)) => Some(text),
            Ok(super::twiml::Twiml::Nothing) => None,
            Err(e) => {
                tracing::warn!(event = %event.id, error = %e, "the app's answer to an incoming SMS is not TwiML: nothing sent");
                None
            }
        }
    }
}

/// Kannel's `%d` of an event about a message, if it reports one.
pub fn dlr_type(event: &Event, message: &Message) -> Option<u8> {
    // The service centre keeps it and is still trying: Kannel's AT driver
    // reports a status report of that class (TP-ST 0x20-0x3F) as buffered.
    if event.kind == "message.buffered" {
        return Some(DLR_BUFFERED);
    }
    let step = matches!(
        event.kind.as_str(),
        "message.sent" | "message.delivered" | "message.failed" | "message.expired"
    );
    if !step {
        return None;
    }
    Some(match message.status {
        MessageStatus::Delivered => DLR_DELIVERED,
        MessageStatus::Sent => DLR_SUBMITTED,
        // A network's failure report is a delivery failure; a failure before
        // the network took it is the SMSC's rejection.
        MessageStatus::Failed
            if message
                .part_status
                .iter()
                .any(|p| p.report_status.is_some()) =>
        {
            DLR_FAILED
        }
        MessageStatus::Failed => DLR_REJECTED,
        MessageStatus::Expired => DLR_FAILED,
        _ => return None,
    })
}

/// Kannel's time escapes: `%t` as `YYYY-MM-DD HH:MM:SS` (UTC), `%T` Unix.
fn kannel_time(at: DateTime<Utc>) -> (String, String) {
    (
        at.format("%Y-%m-%d %H:%M:%S").to_string(),
        at.timestamp().to_string(),
    )
}

/// `template` with Kannel's `%x` escapes replaced by `values` (URL-encoded);
/// `%%` is a `%`, unknown escapes are left as written.
pub fn substitute(template: &str, values: &[(char, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(e) => match values.iter().find(|(k, _)| *k == e) {
                Some((_, v)) => out.push_str(&url_encode(v)),
                None => {
                    out.push('%');
                    out.push(e);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

/// Kannel delivery reports.
pub struct KannelDlr {
    /// Callbacks an earlier build kept beside the messages.
    legacy: Option<sled::Tree>,
}

impl KannelDlr {
    /// The message, its `dlr-url` and the report's `%d`, when the event is
    /// one its `dlr-mask` asks for.
    fn report(&self, event: &Event) -> Option<(Message, String, u8)> {
        let Callback::Kannel { url, mask } = super::callback_of(event, self.legacy.as_ref())?
        else {
            return None;
        };
        let message = message(event)?;
        let kind = dlr_type(event, &message)?;
        (mask & kind != 0).then_some((message, url, kind))
    }

    /// The `dlr-url` with this message's values.
    pub fn url(template: &str, message: &Message, kind: u8) -> String {
        let (t, unix) = kannel_time(message.updated_at);
        let answer = match kind {
            DLR_DELIVERED => "ACK/".to_string(),
            DLR_SUBMITTED => "ACK/".to_string(),
            // As Kannel's AT driver words an interim report.
            DLR_BUFFERED => "Buffered".to_string(),
            _ => match &message.error {
                Some(e) => format!("NACK/{}/{}", e.code, e.text),
                None => "NACK/".to_string(),
            },
        };
        substitute(
            template,
            &[
                ('d', kind.to_string()),
                // The handset the report is about, and our number.
                ('p', message.to.clone()),
                ('P', message.from.clone()),
                ('t', t),
                ('T', unix),
                ('A', answer),
                ('I', message.id.clone()),
                ('a', message.body.clone()),
                ('b', message.body.clone()),
            ],
        )
    }
}

impl Foreign for KannelDlr {
    fn partition(&self, event: &Event) -> Option<String> {
        self.report(event).map(|(message, _, _)| message.id)
    }

    fn request(&self, event: &Event, timeout: Duration) -> Option<Outgoing> {
        let (message, url, kind) = self.report(event)?;
        let mut out = get(Self::url(&url, &message, kind));
        out.timeout = timeout;
        Some(out)
    }

    fn reply(&self, _: &Event, _: &Answer) -> Option<String> {
        None
    }
}

/// Kannel sms-services with a `get-url`.
pub struct KannelService {
    /// (get_url, only to this number of ours).
    services: Vec<(String, Option<String>)>,
}

impl KannelService {
    fn service(&self, to: &str) -> Option<&str> {
        self.services
            .iter()
            .find(|(_, n)| n.as_deref().is_none_or(|n| n == to))
            .map(|(url, _)| url.as_str())
    }

    /// The `get_url` with an inbound message's values.
    pub fn url(template: &str, message: &Message) -> String {
        let (t, unix) = kannel_time(message.network_time.unwrap_or(message.created_at));
        substitute(
            template,
            &[
                ('p', message.from.clone()),
                ('P', message.to.clone()),
                // All the words, as Kannel's %a; %b the message as received.
                (
                    'a',
                    message
                        .body
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                ('b', message.body.clone()),
                ('t', t),
                ('T', unix),
                ('I', message.id.clone()),
            ],
        )
    }
}

impl Foreign for KannelService {
    fn partition(&self, event: &Event) -> Option<String> {
        if event.kind != "message.received" {
            return None;
        }
        let to = event.data.get("to")?.as_str()?;
        self.service(to)?;
        event.data.get("id")?.as_str().map(str::to_string)
    }

    fn request(&self, event: &Event, timeout: Duration) -> Option<Outgoing> {
        let message = message(event)?;
        let url = self.service(&message.to)?;
        let mut out = get(Self::url(url, &message));
        out.timeout = timeout;
        Some(out)
    }

    fn reply(&self, _: &Event, answer: &Answer) -> Option<String> {
        // Kannel's sms-service: the answer's body is the reply; empty: none.
        let text = String::from_utf8_lossy(&answer.body);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }
}

fn endpoint(id: &str, what: &str, foreign: Arc<dyn Foreign>) -> Endpoint {
    Endpoint {
        id: id.to_string(),
        // Shown by GET /v1/webhooks: where these go.
        url: what.to_string(),
        secrets: Vec::new(),
        events: Vec::new(),
        timeout: TIMEOUT,
        foreign: Some(foreign),
    }
}

/// The ids the compat endpoints take among the webhooks.
pub const ENDPOINT_IDS: [&str; 4] = [
    "compat-twilio-status",
    "compat-twilio-sms",
    "compat-kannel-dlr",
    "compat-kannel-sms",
];

/// The webhook endpoints `[compat]` needs (none for what is not configured).
pub fn endpoints(config: &CompatConfig, store: &Store, default_country: &str) -> Vec<Endpoint> {
    let mut out = Vec::new();
    let legacy = super::legacy_callbacks(store, chrono::Utc::now());
    let tokens: HashMap<String, String> = config
        .twilio
        .iter()
        .filter_map(|a| Some((a.account_sid.clone(), a.signing_token.as_ref()?.0.clone())))
        .collect();
    if !tokens.is_empty() {
        out.push(endpoint(
            ENDPOINT_IDS[0],
            "(each message's StatusCallback)",
            Arc::new(TwilioStatus {
                tokens: tokens.clone(),
                legacy: legacy.clone(),
            }),
        ));
    }
    let numbers: HashMap<String, (String, String, String)> = config
        .twilio
        .iter()
        .flat_map(|a| {
            let token = a.signing_token.as_ref().map(|t| t.0.clone());
            a.number.iter().filter_map(move |n| {
                Some((
                    n.number.clone(),
                    (n.sms_url.clone(), a.account_sid.clone(), token.clone()?),
                ))
            })
        })
        .collect();
    if !numbers.is_empty() {
        out.push(endpoint(
            ENDPOINT_IDS[1],
            "([[compat.twilio.number]] sms_url)",
            Arc::new(TwilioIncoming {
                numbers,
                default_country: default_country.to_string(),
            }),
        ));
    }
    if !config.kannel.is_empty() {
        out.push(endpoint(
            ENDPOINT_IDS[2],
            "(each message's dlr-url)",
            Arc::new(KannelDlr { legacy }),
        ));
    }
    let services: Vec<(String, Option<String>)> = config
        .kannel
        .iter()
        .flat_map(|u| {
            u.service
                .iter()
                .map(|s| (s.get_url.clone(), s.number.clone()))
        })
        .collect();
    if !services.is_empty() {
        out.push(endpoint(
            ENDPOINT_IDS[3],
            "([[compat.kannel.service]] get_url)",
            Arc::new(KannelService { services }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kannel_escapes() {
        let url = substitute(
            "http://app.lan/dlr?type=%d&to=%p&x=%q&pct=100%%&end=%",
            &[('d', "8".into()), ('p', "+1 555".into())],
        );
        assert_eq!(
            url,
            "http://app.lan/dlr?type=8&to=%2B1%20555&x=%q&pct=100%&end=%"
        );
    }
}
