//! Reply by response: a receiver that answers `message.received` with 2xx and
//! `{"reply": "text"}` has that text sent into the thread, validated as
//! `POST /v1/messages` validates a body and checked by the same consent
//! policy (a conversational message: the contact just wrote). The idempotency key is derived from
//! the endpoint and the event id, so a delivery retried after a crash (the
//! receiver answering again) never sends the reply twice.

use std::sync::Arc;

use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::compose::{self, ComposeError, Draft, SmsPolicy};
use crate::modem::Dispatcher;
use crate::policy::{Policy, Refusal};
use crate::store::{Accepted, Category, Event, IdempotencyKey, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the event has no contact to reply to")]
    NoContact,
    #[error("reply: {0}")]
    Body(#[from] ComposeError),
    #[error("a different reply was already sent for this event")]
    Conflict,
    #[error("{}: {}", .0.code(), .0.text())]
    Refused(Refusal),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What replying needs from the daemon.
#[derive(Clone)]
pub struct Replies {
    pub store: Store,
    pub dispatcher: Arc<Dispatcher>,
    pub sms: Arc<SmsPolicy>,
    /// Consent, quiet hours and rate limits, as for the API.
    pub policy: Arc<Policy>,
}

/// The reply text in an answer's body, if it carries one.
pub fn reply_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = value.get("reply")?.as_str()?;
    (!text.trim().is_empty()).then(|| text.to_string())
}

impl Replies {
    /// Send `text` to the contact of a `message.received` event; returns the
    /// new (or, for a repeated answer, the original) message id.
    pub async fn send(
        &self,
        endpoint: &str,
        event: &Event,
        text: &str,
    ) -> Result<String, ReplyError> {
        let contact = event.data["contact"]
            .as_str()
            .ok_or(ReplyError::NoContact)?;
        // Our number as the contact saw it; the sticky sender routes the
        // reply through the modem that received the message.
        let from = event.data["to"].as_str().unwrap_or_default();
        let now = Utc::now();
        let mut message = compose::outbound(
            &self.store,
            Draft {
                from,
                to: contact,
                body: text,
                status_report: self.sms.status_reports,
                send_at: None,
                max_parts: self.sms.max_parts,
            },
            now,
        )?;
        message.validity = self.sms.validity;
        message.category = Category::Conversational;
        // An answer by a program (automation's clock, not a person's): it
        // ends the thread's wait once the engine reads its acceptance.
        message.author = Some(crate::conversation::engine::WEBHOOK.into());
        let key = IdempotencyKey {
            key: format!("webhook:{endpoint}:{}", event.id),
            fingerprint: crate::pdu::hex::encode(&Sha256::digest(text.as_bytes())),
        };
        message.idempotency_key = Some(key.key.clone());
        // As POST /v1/messages: refused for whoever opted out; quiet hours
        // and rate limits defer, never drop.
        let number = (!from.is_empty()).then_some(from);
        self.policy
            .admit(&self.store, &mut message, number, now)
            .map_err(ReplyError::Refused)?;
        match self.store.accept(message, Some(key)).await? {
            Accepted::New(m) => {
                self.dispatcher.notify();
                Ok(m.id)
            }
            Accepted::Replay(m) => Ok(m.id),
            // Made once already (the contact has since been erased).
            Accepted::ReplayErased(id) => Ok(id),
            Accepted::KeyReused => Err(ReplyError::Conflict),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reply_member_only() {
        assert_eq!(
            reply_text(br#"{"reply": "Thanks!"}"#).as_deref(),
            Some("Thanks!")
        );
        assert_eq!(reply_text(br#"{"reply": "  "}"#), None);
        assert_eq!(reply_text(br#"{"reply": 5}"#), None);
        assert_eq!(reply_text(b"ok"), None);
        assert_eq!(reply_text(b""), None);
    }
}
