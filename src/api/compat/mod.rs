//! Drop-in APIs that apps already speak: Twilio's Programmable Messaging REST
//! API and Kannel's `sendsms`, as thin adapters over the one send path
//! (`messages::submit`: compose, consent and the rest of the policy,
//! idempotency, durable accept), the store's queries and its events.
//!
//! # Layout
//!
//! - [`CompatConfig`]: `[compat]`, typed when the file is read; [`check`]
//!   adds the problems a type cannot see, each with its key.
//! - [`twilio`]: the `/2010-04-01/Accounts/{AccountSid}/Messages...` routes, Basic
//!   auth, Twilio's Message resource, paging and error JSON.
//! - [`kannel`]: the `/cgi-bin/sendsms` route, Kannel's answer lines and codes.
//! - [`callbacks`]: what goes back out (Twilio status callbacks and incoming
//!   messages, Kannel DLRs and sms-service get-urls) as webhook endpoints of
//!   their own ([`crate::webhook::Foreign`]): durable, retried, replies
//!   through the reply-by-response path.
//! - [`signature`]: the `X-Twilio-Signature` header.
//! - [`twiml`]: the one TwiML answer read: `<Response><Message>`.

pub mod callbacks;
pub mod kannel;
pub mod signature;
pub mod twilio;
pub mod twiml;

use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::{ApiState, Scope};
use crate::store::{Message, Store, StoreError};

/// `[compat]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatConfig {
    /// `[[compat.twilio]]`: accounts of the Twilio-compatible API.
    pub twilio: Vec<TwilioAccount>,
    /// `[[compat.kannel]]`: users of the Kannel-compatible `sendsms`.
    pub kannel: Vec<KannelUser>,
    /// What a part costs on each modem (Twilio's `price`): not a section of
    /// its own but `[[modem]] cost_per_part` in `[conversation] currency`,
    /// the numbers the cost-per-outcome metric uses (`Config::compat_settings`).
    #[serde(skip)]
    pub price: Vec<Price>,
}

/// `[[compat.twilio]]`: one account.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioAccount {
    /// `AC` and 32 hex digits: the user name of Basic auth and the
    /// `{AccountSid}` of every path.
    pub account_sid: String,
    /// SHA-256 of the auth token (`printf %s TOKEN | sha256sum`).
    #[serde(deserialize_with = "super::auth::sha256_hex")]
    pub auth_token_sha256: [u8; 32],
    /// "send" (create, cancel, and read) or "read" (fetch and list only).
    #[serde(default = "default_scope")]
    pub scope: Scope,
    /// The auth token itself, only for signing what goes out
    /// (`X-Twilio-Signature` is an HMAC keyed with it, so a digest cannot
    /// sign): needed for `StatusCallback` and `[[compat.twilio.number]]`.
    #[serde(default)]
    pub signing_token: Option<Redacted>,
    /// `[[compat.twilio.number]]`: inbound SMS to these numbers go to `sms_url`.
    #[serde(default)]
    pub number: Vec<TwilioNumber>,
}

impl std::fmt::Debug for TwilioAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioAccount")
            .field("account_sid", &self.account_sid)
            .field("scope", &self.scope)
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

/// `[[compat.twilio.number]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioNumber {
    /// One of our numbers, E.164.
    pub number: String,
    /// Where its inbound SMS are POSTed, Twilio's way (`http://` only).
    #[serde(deserialize_with = "crate::config::http_url")]
    pub sms_url: String,
}

/// `[[compat.kannel]]`: one `sendsms` user.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KannelUser {
    pub username: String,
    /// SHA-256 of the password.
    #[serde(deserialize_with = "super::auth::sha256_hex")]
    pub password_sha256: [u8; 32],
    /// "send" to use `sendsms` ("read" users are refused).
    #[serde(default = "default_scope")]
    pub scope: Scope,
    /// `[[compat.kannel.service]]`: Kannel's sms-service with a get-url.
    #[serde(default)]
    pub service: Vec<KannelService>,
}

impl std::fmt::Debug for KannelUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KannelUser")
            .field("username", &self.username)
            .field("scope", &self.scope)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// `[[compat.kannel.service]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KannelService {
    /// Fetched for each inbound SMS with Kannel's escapes (`%p`, `%P`, `%a`,
    /// `%b`, `%t`, `%T`, `%I`) substituted; a `text/plain` answer is the reply.
    #[serde(deserialize_with = "crate::config::http_url")]
    pub get_url: String,
    /// Only inbound SMS to this number of ours (default: all).
    #[serde(default)]
    pub number: Option<String>,
}

/// Twilio's `price` of a message sent by `modem`.
#[derive(Debug, Clone)]
pub struct Price {
    pub modem: String,
    /// Per part, a decimal such as 0.0075.
    pub per_part: Decimal,
    /// ISO 4217, e.g. "USD" (`price_unit`).
    pub unit: String,
}

/// A non-negative decimal as written: digits and their scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub units: u64,
    pub scale: u32,
}

impl Decimal {
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
            return None;
        }
        let units = format!("{whole}{fraction}").parse::<u64>().ok()?;
        Some(Decimal {
            units,
            scale: fraction.len() as u32,
        })
    }

    /// `self * n`, negated as Twilio writes a charge ("-0.0150").
    pub fn charge(self, n: u64) -> String {
        let total = self.units.saturating_mul(n);
        let scale = self.scale as usize;
        if scale == 0 {
            return format!("-{total}");
        }
        let digits = format!("{total:0>width$}", width = scale + 1);
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        format!("-{whole}.{fraction}")
    }
}

fn default_scope() -> Scope {
    Scope::Send
}

/// A secret from the config: shown as `..` in logs and debug output.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redacted(..)")
    }
}

/// `AC` or `SM` and 32 hex digits: Twilio's sid form.
pub fn is_sid(prefix: &str, text: &str) -> bool {
    text.len() == 34 && text.starts_with(prefix) && text[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every `[compat]` problem a type cannot see, with its key.
pub fn check(config: &CompatConfig, report: &mut dyn FnMut(String, String)) {
    let mut sids = std::collections::HashSet::new();
    let mut numbers = std::collections::HashSet::new();
    for (i, a) in config.twilio.iter().enumerate() {
        let key = format!("compat.twilio[{i}]");
        if !is_sid("AC", &a.account_sid) {
            report(
                format!("{key}.account_sid"),
                format!("{:?}: AC followed by 32 hex digits", a.account_sid),
            );
        } else if !sids.insert(a.account_sid.to_ascii_lowercase()) {
            report(
                format!("{key}.account_sid"),
                format!("{} is used twice", a.account_sid),
            );
        }
        if let Some(token) = &a.signing_token {
            let digest = super::auth::digest(&token.0);
            if !super::auth::constant_time_eq(&digest, &a.auth_token_sha256) {
                report(
                    format!("{key}.signing_token"),
                    "its SHA-256 is not auth_token_sha256: it must be the same auth token".into(),
                );
            }
        }
        if a.scope == Scope::Admin {
            report(format!("{key}.scope"), "\"send\" or \"read\"".into());
        }
        for (j, n) in a.number.iter().enumerate() {
            let key = format!("{key}.number[{j}]");
            match crate::pdu::Address::parse_number(&n.number) {
                Err(e) => report(format!("{key}.number"), e.to_string()),
                Ok(_) if !n.number.starts_with('+') => report(
                    format!("{key}.number"),
                    "write it in E.164, e.g. +15551230000".into(),
                ),
                Ok(_) if !numbers.insert(n.number.clone()) => report(
                    format!("{key}.number"),
                    format!("{} is configured twice", n.number),
                ),
                Ok(_) => {}
            }
            if a.signing_token.is_none() {
                report(
                    format!("compat.twilio[{i}].signing_token"),
                    "needed to sign what [[compat.twilio.number]] posts (X-Twilio-Signature)"
                        .into(),
                );
            }
        }
    }
    let mut users = std::collections::HashSet::new();
    for (i, u) in config.kannel.iter().enumerate() {
        let key = format!("compat.kannel[{i}]");
        if u.username.trim().is_empty() {
            report(format!("{key}.username"), "must not be empty".into());
        } else if !users.insert(u.username.as_str()) {
            report(
                format!("{key}.username"),
                format!("{:?} is used twice", u.username),
            );
        }
        if u.scope != Scope::Send {
            report(
                format!("{key}.scope"),
                "\"send\" (sendsms only sends)".into(),
            );
        }
        for (j, s) in u.service.iter().enumerate() {
            if let Some(n) = &s.number {
                if !n.starts_with('+') || crate::pdu::Address::parse_number(n).is_err() {
                    report(
                        format!("{key}.service[{j}].number"),
                        format!("{n:?}: E.164, e.g. +15551230000"),
                    );
                }
            }
        }
    }
}

/// The compat routes (each checks its own credentials: Basic auth or
/// Kannel's username and password, not bearer tokens).
pub fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/2010-04-01/Accounts/{account}/Messages.json",
            get(twilio::list).post(twilio::create),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Messages/{sid}",
            get(twilio::fetch)
                .post(twilio::update)
                .delete(twilio::delete),
        )
        .route(
            "/cgi-bin/sendsms",
            get(kannel::sendsms).post(kannel::sendsms),
        )
}

/// What a compat request asked to hear back about its message, kept in the
/// message record ([`crate::store::Callback`]'s `target`): it lives and goes
/// with the message (into the history files, out with an erasure), and each
/// event of the message carries the callback it was written with, so a
/// delivery, even a retried dead letter, reads it from its own event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "api", rename_all = "snake_case")]
pub enum Callback {
    /// Twilio's `StatusCallback`, signed with the account's token.
    Twilio { account_sid: String, url: String },
    /// Kannel's `dlr-url` with its `dlr-mask`.
    Kannel { url: String, mask: u8 },
}

impl Callback {
    /// Whether the store must record every status change of the message as
    /// an event: Twilio reports each; Kannel only what its `dlr-mask` asks,
    /// and only "buffered" (4) is not a step every message announces.
    pub fn every_status(&self) -> bool {
        match self {
            Callback::Twilio { .. } => true,
            Callback::Kannel { mask, .. } => mask & callbacks::DLR_BUFFERED != 0,
        }
    }

    /// Keep this callback with `message` (stored by the accept that follows).
    pub fn attach(&self, message: &mut Message) -> Result<(), StoreError> {
        let target = serde_json::to_value(self).map_err(|e| StoreError::Corrupt {
            key: message.id.clone(),
            reason: e.to_string(),
        })?;
        message.callback = Some(crate::store::Callback {
            every_status: self.every_status(),
            target,
        });
        Ok(())
    }

    /// The callback kept with a message (an event's `data`: the record as
    /// stored); None when it has none or one of another API.
    pub fn of(data: &serde_json::Value) -> Option<Callback> {
        let target = data.get("callback")?.get("target")?;
        match serde_json::from_value(target.clone()) {
            Ok(callback) => Some(callback),
            Err(e) => {
                tracing::error!(error = %e, "a message's callback cannot be read: not called");
                None
            }
        }
    }
}

/// Where an earlier build kept callbacks: beside the message, in the store's
/// `aux_compat_callbacks` tree, never pruned. No new record is written
/// there; what the tree still holds is read for the events of those
/// messages, and drained at start ([`legacy_callbacks`]).
const LEGACY_CALLBACKS: &str = "compat_callbacks";

/// How long a legacy record stays after its message settled: the webhooks'
/// retries of its last callback run for a day.
const LEGACY_KEEP: chrono::Duration = chrono::Duration::days(2);

/// The legacy callbacks tree after removing the records no longer needed
/// (the message erased or never stored, or settled for [`LEGACY_KEEP`]);
/// None once it is empty, so nothing looks there any more. A store error is
/// logged: the records it could not look at are kept and still read.
pub fn legacy_callbacks(store: &Store, now: chrono::DateTime<chrono::Utc>) -> Option<sled::Tree> {
    let tree = match store.aux_tree(LEGACY_CALLBACKS) {
        Ok(tree) => tree,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the callbacks an earlier build kept");
            return None;
        }
    };
    let mut removed = 0usize;
    let mut prune = || -> Result<(), StoreError> {
        for entry in tree.iter() {
            let (key, _) = entry?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let done = match store.get(&id)? {
                None => true,
                Some(m) => m.status.is_final() && m.updated_at < now - LEGACY_KEEP,
            };
            if done {
                tree.remove(&key)?;
                removed += 1;
            }
        }
        Ok(())
    };
    if let Err(e) = prune() {
        tracing::error!(error = %e, "cannot prune the callbacks an earlier build kept");
    }
    if removed > 0 {
        tracing::info!(
            removed,
            left = tree.len(),
            "callbacks kept by an earlier build pruned"
        );
    }
    (!tree.is_empty()).then_some(tree)
}

/// A legacy record of message `id` (see [`LEGACY_CALLBACKS`]).
fn legacy_callback(tree: &sled::Tree, id: &str) -> Result<Option<Callback>, StoreError> {
    let Some(raw) = tree.get(id.as_bytes())? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            key: format!("aux_{LEGACY_CALLBACKS}/{id}"),
            reason: e.to_string(),
        })
}

/// The callback of the message an event carries: kept with it, else (a
/// message accepted by an earlier build) in the legacy tree.
pub(crate) fn callback_of(
    event: &crate::store::Event,
    legacy: Option<&sled::Tree>,
) -> Option<Callback> {
    if let Some(callback) = Callback::of(&event.data) {
        return Some(callback);
    }
    let (tree, id) = (legacy?, event.data.get("id")?.as_str()?);
    match legacy_callback(tree, id) {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(message_id = %id, error = %e, "cannot read a message's callback");
            None
        }
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters (Kannel
/// escapes, URLs built from message fields).
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_and_charges() {
        let d = Decimal::parse("0.0075").unwrap();
        assert_eq!(d.charge(1), "-0.0075");
        assert_eq!(d.charge(2), "-0.0150");
        assert_eq!(Decimal::parse("1").unwrap().charge(3), "-3");
        assert_eq!(Decimal::parse("12.5").unwrap().charge(3), "-37.5");
        for bad in ["", ".5", "-1", "1.2.3", "abc", "0.1234567890"] {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn url_encoding_keeps_unreserved_only() {
        assert_eq!(url_encode("+1 555/ä~"), "%2B1%20555%2F%C3%A4~");
    }

    /// Callbacks an earlier build kept beside their messages are still read
    /// for those messages' events, and pruned at start once not needed: the
    /// message gone (or never stored), or settled for two days.
    #[tokio::test]
    async fn legacy_callbacks_are_read_then_pruned() {
        use crate::store::{Event, MessageStatus};
        let t = crate::store::test_support::TempStore::new();
        let store = &t.store;
        let now = chrono::Utc::now();
        let days = chrono::Duration::days;
        let dlr = Callback::Kannel {
            url: "http://app.lan/dlr?type=%d".into(),
            mask: 3,
        };
        let message = |to: &str, at| store.new_outbound("", to, "hi", 1, "gsm7", true, None, at);
        let open = message("+15551230001", now);
        let settled = message("+15551230002", now - days(3));
        for m in [&open, &settled] {
            store.accept(m.clone(), None).await.unwrap();
        }
        store
            .update(&settled.id, |m| {
                m.transition(now - days(3), MessageStatus::Delivered);
                true
            })
            .await
            .unwrap();
        let never_stored = store.new_id("+15551230003", now);
        let tree = store.aux_tree(LEGACY_CALLBACKS).unwrap();
        for id in [&open.id, &settled.id, &never_stored] {
            tree.insert(id.as_bytes(), serde_json::to_vec(&dlr).unwrap())
                .unwrap();
        }
        let legacy = legacy_callbacks(store, now).unwrap();
        let left: Vec<String> = legacy
            .iter()
            .keys()
            .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(left, vec![open.id.clone()]);
        let event = |m: &Message| Event {
            id: "evt_0000000000000001".into(),
            kind: "message.sent".into(),
            created_at: now,
            data: serde_json::to_value(m).unwrap(),
        };
        assert_eq!(callback_of(&event(&open), Some(&legacy)), Some(dlr.clone()));
        assert_eq!(callback_of(&event(&open), None), None);
        // A callback kept in the message is read from the event itself.
        let mut attached = message("+15551230004", now);
        let twilio = Callback::Twilio {
            account_sid: format!("AC{}", "0".repeat(32)),
            url: "http://app.lan/status".into(),
        };
        twilio.attach(&mut attached).unwrap();
        assert!(attached.callback.as_ref().is_some_and(|c| c.every_status));
        assert_eq!(callback_of(&event(&attached), None), Some(twilio));
        // Settled two days later, the last legacy record goes, and nothing
        // is looked up there any more.
        store
            .update(&open.id, |m| {
                m.transition(now, MessageStatus::Delivered);
                true
            })
            .await
            .unwrap();
        assert!(legacy_callbacks(store, now + days(1)).is_some());
        assert!(legacy_callbacks(store, now + days(3)).is_none());
    }

    #[test]
    fn sids() {
        assert!(is_sid("AC", &format!("AC{}", "a1".repeat(16))));
        assert!(!is_sid("AC", &format!("SM{}", "a1".repeat(16))));
        assert!(!is_sid("AC", "AC12"));
        assert!(!is_sid("AC", &format!("AC{}", "zz".repeat(16))));
    }
}
