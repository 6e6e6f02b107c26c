//! The records the store keeps, in the one representation the API and webhooks
//! share (ARCHITECTURE.md, "Contracts").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Where a message is in its life (ARCHITECTURE.md, "Message states").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Outbound, waiting for its `send_at`.
    Scheduled,
    /// Outbound, waiting for a modem.
    Queued,
    /// Outbound, held back (quiet hours, rate limits) until `not_before`.
    Deferred,
    /// Outbound, at least one part handed to a modem and not all sent yet.
    Sending,
    /// Every part accepted by the network (`+CMGS`).
    Sent,
    /// Every part reported delivered.
    Delivered,
    Failed,
    /// No final status report by validity + 1 hour.
    Expired,
    /// Deleted before any part reached a modem.
    Cancelled,
    /// The daemon died between handing a part to the modem and reading
    /// `+CMGS`: it may or may not have gone out. Only an explicit resend leaves.
    Unknown,
    /// Inbound, complete (or incomplete after the reassembly timeout).
    Received,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Scheduled => "scheduled",
            MessageStatus::Queued => "queued",
            MessageStatus::Deferred => "deferred",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Expired => "expired",
            MessageStatus::Cancelled => "cancelled",
            MessageStatus::Unknown => "unknown",
            MessageStatus::Received => "received",
        }
    }

    /// States nothing moves a message out of (except an explicit resend).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MessageStatus::Delivered
                | MessageStatus::Failed
                | MessageStatus::Expired
                | MessageStatus::Cancelled
                | MessageStatus::Received
        )
    }

    /// Waiting in the outbox: no part has reached a modem.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            MessageStatus::Scheduled | MessageStatus::Queued | MessageStatus::Deferred
        )
    }

    pub fn parse(text: &str) -> Option<MessageStatus> {
        ALL_STATUSES.iter().copied().find(|s| s.as_str() == text)
    }
}

pub const ALL_STATUSES: [MessageStatus; 11] = [
    MessageStatus::Scheduled,
    MessageStatus::Queued,
    MessageStatus::Deferred,
    MessageStatus::Sending,
    MessageStatus::Sent,
    MessageStatus::Delivered,
    MessageStatus::Failed,
    MessageStatus::Expired,
    MessageStatus::Cancelled,
    MessageStatus::Unknown,
    MessageStatus::Received,
];

/// Why an outbound message is sent (issue: consent, "message categories").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Category {
    /// Appointment reminders, service updates, receipts: the default.
    #[default]
    Transactional = 0,
    /// A reply in a thread the contact started or answered.
    Conversational = 1,
    /// Promotions: needs recorded opt-in evidence, waits out quiet hours.
    Marketing = 2,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Transactional => "transactional",
            Category::Conversational => "conversational",
            Category::Marketing => "marketing",
        }
    }

    pub fn parse(text: &str) -> Option<Category> {
        match text {
            "transactional" => Some(Category::Transactional),
            "conversational" => Some(Category::Conversational),
            "marketing" => Some(Category::Marketing),
            _ => None,
        }
    }
}

/// Where one outbound part is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    Pending,
    /// Handed to the modem (`AT+CMGS` written), `+CMGS` not read yet.
    Sending,
    Sent,
    Delivered,
    Failed,
}

/// One outbound part: its network message reference once sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// 1-based.
    pub seq: u8,
    pub status: PartStatus,
    /// TP-MR from `+CMGS`, which the status report quotes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mr: Option<u8>,
    /// TP-ST of the last status report for this part.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub report_status: Option<u8>,
}

/// A failure with a stable code (e.g. `cms_500`, `recipient_opted_out`) and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    pub text: String,
}

/// One step of a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub modem: Option<String>,
    /// The parts this step concerns, with their message references.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub parts: Vec<Part>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorInfo>,
    /// A short reason (e.g. "quiet hours", "modem offline").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// A message, inbound or outbound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub direction: Direction,
    /// The other party, E.164 (or an alphanumeric sender as text).
    pub contact: String,
    pub from: String,
    pub to: String,
    /// The modem that sent or received it (chosen at send time for outbound).
    pub modem: Option<String>,
    pub body: String,
    /// Number of parts (SMS) the body takes.
    pub parts: u8,
    /// "gsm7", "ucs2" or "8bit".
    pub alphabet: String,
    pub status: MessageStatus,
    pub error: Option<ErrorInfo>,
    /// Outbound: a status report was asked for.
    pub status_report: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub history: Vec<Transition>,
    /// Outbound: per-part state and message references.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub part_status: Vec<Part>,
    /// Outbound: the modem the caller asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub requested_modem: Option<String>,
    /// Outbound: validity period in seconds (None: the network's default).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub validity: Option<u32>,
    /// Outbound: when it may go out (scheduled, deferred).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub not_before: Option<DateTime<Utc>>,
    /// Outbound: concatenation reference shared by the parts, fixed at accept
    /// time so a retried part matches its siblings.
    #[serde(default)]
    pub reference: u16,
    /// Outbound: how many transient failures it has had (backoff).
    #[serde(default)]
    pub attempts: u32,
    /// Outbound, sent with a status report asked for: when it becomes `expired`
    /// if no final report has come (validity + 1 hour).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub report_deadline: Option<DateTime<Utc>>,
    /// Inbound: the service centre's time stamp (TP-SCTS).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub network_time: Option<DateTime<Utc>>,
    /// Inbound: reassembly gave up waiting for some parts.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub incomplete: bool,
    /// Inbound: seen by someone (a thread read marks it).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub read: bool,
    /// Outbound: why it is sent (consent rules, quiet hours, rate limits).
    #[serde(default)]
    pub category: Category,
    /// Outbound: the only sends exempt from the consent check (the opt-out
    /// confirmation and HELP replies), and why.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exempt: Option<String>,
    /// Outbound: not sent after this (an opt-out confirmation must go within
    /// 5 minutes of the STOP or not at all).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub send_by: Option<DateTime<Utc>>,
    /// Outbound: the Idempotency-Key it was accepted under.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub idempotency_key: Option<String>,
    /// Outbound: who wrote it: a person (a thread reply), `automation` (a
    /// conversation rule or flow), `webhook` (a receiver's reply by
    /// response), `api:<token name>` (`POST /v1/messages`), or none (the
    /// compat APIs, campaigns, the policy's own replies).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub author: Option<String>,
    /// Outbound: the campaign it belongs to and the variant chosen for it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
    /// Outbound: the flow it puts the contact's thread in (`appointment`,
    /// `payment`, `rating`, `lead`) and the flow's context (slots, link, ...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub context: Option<serde_json::Value>,
    /// Outbound: what an API adapter asked to hear back about it (Twilio's
    /// `StatusCallback`, Kannel's `dlr-url`), kept in the record so that it
    /// lives and goes with the message and every event carries it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback: Option<Callback>,
    /// Outbound, in a fleet (`[cluster]`): this record's part in the
    /// fleet's work queue (None: a message of this gateway alone).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fleet: Option<FleetLeg>,
    /// A copy taken here from the fleet's work queue of a message another
    /// gateway accepted: an opt-out makes it go back to the fleet quietly
    /// (the accepting gateway fails its record and reports that, once).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub fleet_copy: bool,
}

/// Where a fleet's outbound message is sent from, as one gateway's record
/// says (`[cluster]`, feature `fleet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetLeg {
    /// Accepted here (or seen on the events stream) and sent by whichever
    /// gateway takes it from the work queue: never in this gateway's
    /// outbox; its state follows what the sending gateway publishes.
    Handed,
    /// Taken from the work queue here: this gateway's modems send it once
    /// the fleet's fence says no other gateway has.
    Taken,
}

/// A per-message callback of an API adapter (`api::compat`). The store reads
/// only `every_status`; `target` is the adapter's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    /// Every status change is an event, and so is an interim status report
    /// (the [`CALLBACK_EVENTS`]), not only the steps every message announces:
    /// the adapter reports each. Only messages that ask pay for the extra
    /// events.
    #[serde(default)]
    pub every_status: bool,
    /// Where to call and how, as the adapter wrote it.
    pub target: serde_json::Value,
}

/// The events written only for a message whose [`Callback`] asks for
/// `every_status`: for its callbacks, not part of the webhooks' contract (so
/// `[[webhook]]` endpoints are not sent them; `/v1/events` lists them).
/// `message.buffered`: a status report said the service centre is still
/// trying (TP-ST 0x20-0x3F, 23.040 §9.2.3.15); the message stays `sent`.
pub const CALLBACK_EVENTS: [&str; 6] = [
    "message.scheduled",
    "message.queued",
    "message.deferred",
    "message.sending",
    "message.cancelled",
    "message.buffered",
];

impl Message {
    /// Outbound: the body takes `parts` parts in `alphabet`; each part starts
    /// pending.
    pub fn set_parts(&mut self, parts: u8, alphabet: &str) {
        self.parts = parts;
        self.alphabet = alphabet.to_string();
        self.part_status = (1..=parts)
            .map(|seq| Part {
                seq,
                status: PartStatus::Pending,
                mr: None,
                report_status: None,
            })
            .collect();
    }

    /// Settle in a final state with an error (failed, expired), recording it
    /// on the message and in its history.
    pub fn settle_with_error(
        &mut self,
        at: DateTime<Utc>,
        status: MessageStatus,
        code: &str,
        text: &str,
    ) {
        let error = ErrorInfo {
            code: code.to_string(),
            text: text.to_string(),
        };
        self.error = Some(error.clone());
        self.transition(at, status).error = Some(error);
    }

    /// Move to `status`, recording the step.
    pub fn transition(&mut self, at: DateTime<Utc>, status: MessageStatus) -> &mut Transition {
        self.status = status;
        self.updated_at = at;
        self.history.push(Transition {
            at,
            status,
            modem: self.modem.clone(),
            parts: Vec::new(),
            error: None,
            note: None,
        });
        let last = self.history.len() - 1;
        &mut self.history[last]
    }
}

/// An event for webhooks and the event stream, written in the same transaction
/// as the change that caused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_` and a sequence number: ordered, unique, stable across retries.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub data: serde_json::Value,
}
