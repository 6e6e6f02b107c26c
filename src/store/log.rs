//! One `info` line per step in a message's life: sent, delivered, failed,
//! expired, unknown, received, opt-out and opt-in. The lines are written from
//! the store's events once they are durable ([`Store::events_committed`]):
//! every such step becomes an event in exactly one place (a message's status
//! change in `outbound.rs`, an arrival in `inbound.rs`, a consent change in
//! `consent.rs`), so the logs tell what the event log and the webhooks tell,
//! never a step that was rolled back, and each step once.
//!
//! Contacts are masked ([`crate::phone::masked`]): the full number is in the
//! store and the API, not in the logs.
//!
//! [`Store::events_committed`]: super::Store

use serde_json::Value;

use super::Event;
use crate::phone::masked;

/// Log the message and consent events of one durable write, in order.
pub(crate) fn committed(events: &[Event]) {
    for event in events {
        let text = |key: &str| event.data.get(key).and_then(Value::as_str);
        match event.kind.as_str() {
            "message.sent" | "message.delivered" | "message.failed" | "message.expired"
            | "message.unknown" | "message.received" => {
                let step = event.kind.trim_start_matches("message.");
                let id = text("id").unwrap_or("-");
                let modem = text("modem").unwrap_or("-");
                let contact = masked(text("contact").unwrap_or_default());
                let parts = event.data.get("parts").and_then(Value::as_u64).unwrap_or(0);
                match event.data.get("error").filter(|e| !e.is_null()) {
                    Some(error) => {
                        let code = error.get("code").and_then(Value::as_str).unwrap_or("-");
                        let detail = error.get("text").and_then(Value::as_str).unwrap_or("");
                        tracing::info!(message_id = %id, modem = %modem, contact = %contact, parts, error = %code, detail = ?detail, "message {step}");
                    }
                    None => {
                        tracing::info!(message_id = %id, modem = %modem, contact = %contact, parts, "message {step}");
                    }
                }
            }
            "consent.changed" => {
                let entry = event.data.get("ledger_entry");
                let field = |key: &str| entry.and_then(|e| e.get(key)).and_then(Value::as_str);
                let step = match text("status") {
                    Some("opted_out") => "opt-out",
                    Some("opted_in") => "opt-in",
                    _ => "consent reset",
                };
                // An opt-out by SMS comes in the same write as the message
                // that asked for it: its modem is the one that received it.
                let by = field("inbound_message_id");
                let modem = by
                    .and_then(|id| {
                        events.iter().find(|e| {
                            e.kind == "message.received"
                                && e.data.get("id").and_then(Value::as_str) == Some(id)
                        })
                    })
                    .and_then(|e| e.data.get("modem"))
                    .and_then(Value::as_str);
                tracing::info!(
                    message_id = %by.unwrap_or("-"),
                    modem = %modem.unwrap_or("-"),
                    contact = %masked(text("contact").unwrap_or_default()),
                    source = %field("source").unwrap_or("-"),
                    keyword = %field("matched").unwrap_or("-"),
                    "{step}"
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::phone::masked;

    #[test]
    fn contacts_keep_their_last_four_characters() {
        assert_eq!(masked("+15551234567"), "***4567");
        assert_eq!(masked("Pharmacy"), "***macy");
        assert_eq!(masked("ÄÖÜßäöü"), "***ßäöü", "characters, not bytes");
        assert_eq!(masked("ACME"), "***");
        assert_eq!(masked(""), "***");
    }
}
