//! What the API, the event log and the webhooks serve: the wire types, apart
//! from the records the store keeps (`store::records`, the storage format).
//! Events are stored as written (a `message.*` event's data is the stored
//! record) and mapped here when served ([`Event::served`], which also says
//! who the contact is): by the API, and by the webhook worker before it
//! signs a body. Each wire type is
//! built from its record by a `From`, field by field, so a field added to a
//! record is not served until it is added here, documented; and the OpenAPI
//! document's schemas are derived from these types (`ToSchema`), so the
//! document cannot drift from what is served.
//!
//! Public and internal fields of a stored message:
//!
//! | field | on the wire | why |
//! |---|---|---|
//! | `category` | outbound | the caller chose it (consent, quiet hours) |
//! | `network_time` | inbound | when the sender's network took it (TP-SCTS) |
//! | `incomplete` | inbound | the body misses parts: a caller must know |
//! | `read` | inbound | thread read marks |
//! | `idempotency_key` | outbound, when given | the caller's own key, to match its records |
//! | `reference` | no | the concatenation reference the modem encodes with |
//! | `attempts` | no | the outbox's backoff counter; `history` tells the retries |
//! | `report_deadline` | no | the expiry check's clock; `expired` is announced |
//! | `exempt` | no | which consent exemption a gateway reply used |
//! | `send_by` | no | the opt-out confirmation's deadline |
//!
//! A thread summary's `read_through` (the read mark of archived messages)
//! is internal too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::modem::identity::Identity as StoredIdentity;
use crate::modem::probe::ProbeResult as StoredProbe;
use crate::modem::status::{self as modem_status, ModemState as StoredModemState};
use crate::store::{self, ConsentStatus as StoredConsentStatus};

/// One page of a list: `{items, next_cursor}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A page of stored records as a page of their wire types.
pub fn page<T, W: From<T>>(page: store::Page<T>) -> Page<W> {
    Page {
        items: page.items.into_iter().map(W::from).collect(),
        next_cursor: page.next_cursor,
    }
}

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl From<store::Direction> for Direction {
    fn from(d: store::Direction) -> Self {
        match d {
            store::Direction::Inbound => Direction::Inbound,
            store::Direction::Outbound => Direction::Outbound,
        }
    }
}

/// Where a message is in its life. Outbound: scheduled (waits for
/// `not_before`), queued, deferred (quiet hours, rate limits: until
/// `not_before`), sending, sent, delivered; failed, expired (no final status
/// report by validity + 1 hour), cancelled, unknown (the daemon stopped while
/// a part was with the modem: only a resend leaves it). Inbound: received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Scheduled,
    Queued,
    Deferred,
    Sending,
    Sent,
    Delivered,
    Failed,
    Expired,
    Cancelled,
    Unknown,
    Received,
}

impl From<store::MessageStatus> for MessageStatus {
    fn from(s: store::MessageStatus) -> Self {
        use store::MessageStatus as S;
        match s {
            S::Scheduled => MessageStatus::Scheduled,
            S::Queued => MessageStatus::Queued,
            S::Deferred => MessageStatus::Deferred,
            S::Sending => MessageStatus::Sending,
            S::Sent => MessageStatus::Sent,
            S::Delivered => MessageStatus::Delivered,
            S::Failed => MessageStatus::Failed,
            S::Expired => MessageStatus::Expired,
            S::Cancelled => MessageStatus::Cancelled,
            S::Unknown => MessageStatus::Unknown,
            S::Received => MessageStatus::Received,
        }
    }
}

/// Why an outbound message is sent. Marketing needs recorded opt-in
/// evidence and waits out quiet hours; conversational must answer a thread
/// the contact started or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Transactional,
    Conversational,
    Marketing,
}

impl From<store::Category> for Category {
    fn from(c: store::Category) -> Self {
        match c {
            store::Category::Transactional => Category::Transactional,
            store::Category::Conversational => Category::Conversational,
            store::Category::Marketing => Category::Marketing,
        }
    }
}

/// Where one outbound part is (sending: handed to the modem, not yet
/// accepted by the network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartStatus {
    Pending,
    Sending,
    Sent,
    Delivered,
    Failed,
}

impl From<store::PartStatus> for PartStatus {
    fn from(s: store::PartStatus) -> Self {
        match s {
            store::PartStatus::Pending => PartStatus::Pending,
            store::PartStatus::Sending => PartStatus::Sending,
            store::PartStatus::Sent => PartStatus::Sent,
            store::PartStatus::Delivered => PartStatus::Delivered,
            store::PartStatus::Failed => PartStatus::Failed,
        }
    }
}

/// One outbound part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Part {
    /// 1-based.
    pub seq: u8,
    pub status: PartStatus,
    /// The network's message reference (TP-MR from `+CMGS`), once sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub mr: Option<u8>,
    /// TP-ST of the last status report for this part (23.040 §9.2.3.15).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub report_status: Option<u8>,
}

impl From<&store::Part> for Part {
    fn from(p: &store::Part) -> Self {
        Part {
            seq: p.seq,
            status: p.status.into(),
            mr: p.mr,
            report_status: p.report_status,
        }
    }
}

/// A failure: a stable `code` (e.g. `cms_500`, `recipient_opted_out`) and words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorInfo {
    pub code: String,
    pub text: String,
}

impl From<&store::ErrorInfo> for ErrorInfo {
    fn from(e: &store::ErrorInfo) -> Self {
        ErrorInfo {
            code: e.code.clone(),
            text: e.text.clone(),
        }
    }
}

/// One step of a message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transition {
    pub at: DateTime<Utc>,
    pub status: MessageStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub modem: Option<String>,
    /// The parts this step concerns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<ErrorInfo>,
    /// A short reason ("quiet hours", "cancelled by API", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub note: Option<String>,
}

impl From<&store::Transition> for Transition {
    fn from(t: &store::Transition) -> Self {
        Transition {
            at: t.at,
            status: t.status.into(),
            modem: t.modem.clone(),
            parts: t.parts.iter().map(Part::from).collect(),
            error: t.error.as_ref().map(ErrorInfo::from),
            note: t.note.clone(),
        }
    }
}

/// A message, inbound or outbound: the one representation of the API and
/// the event log (`data` of `message.*` events). Fields marked outbound or
/// inbound appear only on messages of that direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Message {
    #[schema(example = "msg_018f2a7c3b1d9e37a1c4")]
    pub id: String,
    pub direction: Direction,
    /// The other party: E.164, or an alphanumeric sender as the network gave it.
    pub contact: String,
    /// Inbound: the sender (the contact). Outbound: the sending modem's
    /// number (empty while no modem with a known number is chosen).
    pub from: String,
    /// Outbound: the recipient (the contact). Inbound: the receiving
    /// modem's number.
    pub to: String,
    /// The modem that sent or received it (null until one is chosen).
    #[schema(required = true)]
    pub modem: Option<String>,
    pub body: String,
    /// How many SMS parts the body takes.
    pub parts: u8,
    /// `gsm7`, `ucs2` or `8bit`.
    #[schema(example = "gsm7")]
    pub alphabet: String,
    pub status: MessageStatus,
    /// Why it failed or expired (null otherwise).
    #[schema(required = true)]
    pub error: Option<ErrorInfo>,
    /// Outbound: a status report was asked for.
    pub status_report: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every status it went through, oldest first.
    pub history: Vec<Transition>,
    /// Outbound: each part's state and network reference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub part_status: Vec<Part>,
    /// Outbound: the modem the caller asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub requested_modem: Option<String>,
    /// Outbound: validity period in seconds (absent: the network's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub validity: Option<u32>,
    /// Outbound: not sent before this time (the request's `send_at`, or the
    /// end of quiet hours or a rate-limit window when deferred).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub not_before: Option<DateTime<Utc>>,
    /// Outbound: why it is sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub category: Option<Category>,
    /// Outbound: the Idempotency-Key it was accepted under.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub idempotency_key: Option<String>,
    /// Inbound: the service centre's time stamp (TP-SCTS).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub network_time: Option<DateTime<Utc>>,
    /// Inbound: reassembly gave up waiting for some parts; the body has gaps.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub incomplete: Option<bool>,
    /// Inbound: marked read (`POST /v1/threads/{contact}/read`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub read: Option<bool>,
}

impl From<&store::Message> for Message {
    fn from(m: &store::Message) -> Self {
        let outbound = m.direction == store::Direction::Outbound;
        let inbound = !outbound;
        Message {
            id: m.id.clone(),
            direction: m.direction.into(),
            contact: m.contact.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            modem: m.modem.clone(),
            body: m.body.clone(),
            parts: m.parts,
            alphabet: m.alphabet.clone(),
            status: m.status.into(),
            error: m.error.as_ref().map(ErrorInfo::from),
            status_report: m.status_report,
            created_at: m.created_at,
            updated_at: m.updated_at,
            history: m.history.iter().map(Transition::from).collect(),
            part_status: m.part_status.iter().map(Part::from).collect(),
            requested_modem: m.requested_modem.clone(),
            validity: m.validity,
            not_before: m.not_before,
            category: outbound.then(|| m.category.into()),
            idempotency_key: m.idempotency_key.clone(),
            network_time: m.network_time,
            incomplete: inbound.then_some(m.incomplete),
            read: inbound.then_some(m.read),
        }
    }
}

impl From<store::Message> for Message {
    fn from(m: store::Message) -> Self {
        Message::from(&m)
    }
}

/// The answer to `POST /v1/messages` (202), and to its replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Accepted {
    pub id: String,
    /// What it was accepted as: `queued`, `scheduled` or `deferred`.
    pub status: MessageStatus,
    /// E.164.
    pub to: String,
    pub parts: u8,
    /// `gsm7` or `ucs2`.
    pub alphabet: String,
    pub created_at: DateTime<Utc>,
}

impl From<&store::Message> for Accepted {
    fn from(m: &store::Message) -> Self {
        // The status it was accepted with, so a replay answers byte for
        // byte what the first request got even after the message moved on.
        let status = m.history.first().map_or(m.status, |step| step.status);
        Accepted {
            id: m.id.clone(),
            status: status.into(),
            to: m.to.clone(),
            parts: m.parts,
            alphabet: m.alphabet.clone(),
            created_at: m.created_at,
        }
    }
}

/// A thread in the thread list, most recent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ThreadSummary {
    /// E.164, or an alphanumeric sender (open it with the same text).
    pub contact: String,
    pub last_message_id: String,
    /// The start of the last message's body.
    pub last_preview: String,
    pub last_direction: Direction,
    pub last_at: DateTime<Utc>,
    /// Inbound messages not marked read.
    pub unread: u64,
    pub total: u64,
}

impl From<store::ThreadSummary> for ThreadSummary {
    fn from(t: store::ThreadSummary) -> Self {
        ThreadSummary {
            contact: t.contact,
            last_message_id: t.last_message_id,
            last_preview: t.last_preview,
            last_direction: t.last_direction.into(),
            last_at: t.last_at,
            unread: t.unread,
            total: t.total,
        }
    }
}

/// The answer to a read mark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReadMark {
    pub contact: String,
    /// Inbound messages that were unread until now.
    pub marked: u64,
    /// Inbound messages still unread (0 unless some arrived meanwhile).
    pub unread: u64,
}

/// The life of a modem connection: initializing (init sequence running),
/// ready (taking work), degraded (answering but not registered, or
/// recovering: sends wait), offline (port gone; reopening with backoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModemState {
    Initializing,
    Ready,
    Degraded,
    Offline,
}

impl From<StoredModemState> for ModemState {
    fn from(s: StoredModemState) -> Self {
        match s {
            StoredModemState::Initializing => ModemState::Initializing,
            StoredModemState::Ready => ModemState::Ready,
            StoredModemState::Degraded => ModemState::Degraded,
            StoredModemState::Offline => ModemState::Offline,
        }
    }
}

/// Who a modem is (null: the modem did not say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Identity {
    #[schema(required = true)]
    pub manufacturer: Option<String>,
    #[schema(required = true)]
    pub model: Option<String>,
    #[schema(required = true)]
    pub firmware: Option<String>,
    #[schema(required = true)]
    pub imei: Option<String>,
    #[schema(required = true)]
    pub imsi: Option<String>,
    #[schema(required = true)]
    pub iccid: Option<String>,
    /// From `AT+CNUM`, when the SIM stores it.
    #[schema(required = true)]
    pub own_number: Option<String>,
}

impl From<&StoredIdentity> for Identity {
    fn from(i: &StoredIdentity) -> Self {
        Identity {
            manufacturer: i.manufacturer.clone(),
            model: i.model.clone(),
            firmware: i.firmware.clone(),
            imei: i.imei.clone(),
            imsi: i.imsi.clone(),
            iccid: i.iccid.clone(),
            own_number: i.own_number.clone(),
        }
    }
}

/// Round trips of AT commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LatencyHistogram {
    /// Upper bounds in milliseconds.
    pub bounds_ms: Vec<u64>,
    /// Observations per bucket (not cumulative); one more for +Inf.
    pub counts: Vec<u64>,
    pub sum_ms: u64,
    pub count: u64,
}

/// Counters since the daemon started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Counters {
    pub sent_parts: u64,
    pub received: u64,
    pub failed: u64,
    pub status_reports: u64,
    pub timeouts: u64,
    pub reconnects: u64,
    pub at_latency: LatencyHistogram,
}

impl From<&modem_status::Counters> for Counters {
    fn from(c: &modem_status::Counters) -> Self {
        Counters {
            sent_parts: c.sent_parts,
            received: c.received,
            failed: c.failed,
            status_reports: c.status_reports,
            timeouts: c.timeouts,
            reconnects: c.reconnects,
            at_latency: LatencyHistogram {
                bounds_ms: c.at_latency.bounds_ms.clone(),
                counts: c.at_latency.counts.clone(),
                sum_ms: c.at_latency.sum_ms,
                count: c.at_latency.count,
            },
        }
    }
}

/// What a modem last published about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModemStatus {
    /// From the config.
    pub id: String,
    pub port: String,
    pub state: ModemState,
    /// Why the state is what it is ("port gone", "not registered", ...).
    #[schema(required = true)]
    pub reason: Option<String>,
    pub identity: Identity,
    /// The number it sends from (config, else the SIM's).
    #[schema(required = true)]
    pub own_number: Option<String>,
    #[schema(required = true)]
    pub operator: Option<String>,
    #[schema(required = true)]
    pub registration: Option<String>,
    /// `AT+CSQ` RSSI, 0-31 (27.007 §8.5).
    #[schema(required = true)]
    pub signal_csq: Option<u8>,
    #[schema(required = true)]
    pub signal_dbm: Option<i16>,
    /// Messages this modem is sending now (0 or 1).
    pub queue_depth: u64,
    pub counters: Counters,
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl From<&modem_status::ModemStatus> for ModemStatus {
    fn from(s: &modem_status::ModemStatus) -> Self {
        ModemStatus {
            id: s.id.clone(),
            port: s.port.clone(),
            state: s.state.into(),
            reason: s.reason.clone(),
            identity: Identity::from(&s.identity),
            own_number: s.own_number.clone(),
            operator: s.operator.clone(),
            registration: s.registration.clone(),
            signal_csq: s.signal_csq,
            signal_dbm: s.signal_dbm,
            queue_depth: u64::try_from(s.queue_depth).unwrap_or(u64::MAX),
            counters: Counters::from(&s.counters),
            last_error: s.last_error.clone(),
            updated_at: s.updated_at,
        }
    }
}

/// The technician's probe, run by the daemon over a modem's own connection
/// (`POST /v1/modems/{id}/probe`), or the last one (`GET`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModemProbe {
    pub modem: String,
    pub probed_at: DateTime<Utc>,
    /// No check failed with a hint: ready to send and receive SMS (the
    /// CLI's exit status 0).
    pub ok: bool,
    /// The port as the modem's actor holds it.
    pub port: String,
    pub baud: u32,
    /// The modem answered `AT`.
    pub responding: bool,
    pub identity: Identity,
    /// "ready", "SIM PIN", "SIM PUK", "not inserted", ...
    #[schema(required = true)]
    pub sim: Option<String>,
    #[schema(required = true)]
    pub operator: Option<String>,
    /// "home", "roaming", "searching", "denied", "not registered", ...
    #[schema(required = true)]
    pub registration: Option<String>,
    /// `AT+CSQ` RSSI, 0-31, 99 unknown (27.007 §8.5).
    #[schema(required = true)]
    pub signal_csq: Option<u8>,
    #[schema(required = true)]
    pub signal_dbm: Option<i16>,
    #[schema(required = true)]
    pub smsc: Option<String>,
    pub storage: Vec<ProbeStorage>,
    /// `AT+CMGF=0` accepted.
    pub pdu_mode: bool,
    /// The `AT+CNMI` setting accepted ("2,1,0,1,0"), null if none.
    #[schema(required = true)]
    pub cnmi: Option<String>,
    /// What is wrong, most important first, as `smsgate modem probe`
    /// prints it; empty when all is well.
    pub diagnosis: Vec<String>,
    /// Each check, in the order run.
    pub checks: Vec<ProbeCheck>,
}

/// One SMS storage as `AT+CPMS?` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProbeStorage {
    /// "SM", "ME", "MT", ...
    pub storage: String,
    pub used: u32,
    pub total: u32,
}

/// One check of a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProbeCheck {
    /// "AT", "SIM", "identity", "signal", "registration", "operator",
    /// "SMSC", "SMS storage", "PDU mode", "CNMI" ("port" for the CLI).
    pub name: String,
    pub ok: bool,
    /// What the modem said, in a few words.
    pub detail: String,
    /// What to do about a failure, as the CLI's diagnosis says it.
    pub hints: Vec<String>,
}

impl From<&StoredProbe> for ModemProbe {
    fn from(p: &StoredProbe) -> Self {
        let r = &p.report;
        ModemProbe {
            modem: p.modem.clone(),
            probed_at: p.probed_at,
            ok: r.diagnosis.is_empty(),
            port: r.port.clone(),
            baud: r.baud,
            responding: r.responding,
            identity: Identity::from(&r.identity),
            sim: r.sim.clone(),
            operator: r.operator.clone(),
            registration: r.registration.clone(),
            signal_csq: r.signal_csq,
            signal_dbm: r.signal_dbm,
            smsc: r.smsc.clone(),
            storage: r
                .storage
                .iter()
                .map(|s| ProbeStorage {
                    storage: s.storage.clone(),
                    used: s.used,
                    total: s.total,
                })
                .collect(),
            pdu_mode: r.pdu_mode,
            cnmi: r.cnmi.clone(),
            diagnosis: r.diagnosis.clone(),
            checks: p
                .checks
                .iter()
                .map(|c| ProbeCheck {
                    name: c.name.clone(),
                    ok: c.ok,
                    detail: c.detail.clone(),
                    hints: c.hints.clone(),
                })
                .collect(),
        }
    }
}

/// `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: String,
}

impl Health {
    pub fn ok() -> Health {
        Health {
            status: "ok".into(),
        }
    }
}

/// Ready: at least one modem can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    Ready,
    NotReady,
}

/// `/readyz`. `modems` only for a request with a `read` token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Readiness {
    pub status: ReadinessStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub modems: Option<Vec<ModemReadiness>>,
    /// In a fleet (`[cluster]`): the broker link and the consent replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fleet: Option<FleetReadiness>,
}

/// A fleet gateway's link: while `consent_current` is false (the broker
/// lost for longer than `consent_staleness`), sends wait unless the
/// contact's consent changed here within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FleetReadiness {
    /// Connected to a NATS server now.
    pub connected: bool,
    /// The replica of the fleet's consent is within `consent_staleness`.
    pub consent_current: bool,
    /// When the replica was last current (null: never).
    #[schema(required = true)]
    pub consent_synced_at: Option<DateTime<Utc>>,
}

/// One modem's readiness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ModemReadiness {
    pub id: String,
    pub state: ModemState,
    #[schema(required = true)]
    pub reason: Option<String>,
}

/// A webhook endpoint and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: String,
    /// The receiver. User-info and query (where secrets live) show as `***`
    /// unless the token has the `admin` scope.
    pub url: String,
    /// The event types it gets (empty: all).
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (a 410 from the receiver).
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    #[schema(required = true)]
    pub disabled_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_success_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_failure_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_failure: Option<String>,
    /// Deliveries waiting (pending or failed).
    pub pending: u64,
    /// Dead letters.
    pub dead: u64,
}

impl WebhookEndpoint {
    /// The endpoint as a token sees it: the URL's secrets only for `admin`.
    pub fn new(e: store::WebhookEndpoint, show_secrets: bool) -> WebhookEndpoint {
        WebhookEndpoint {
            url: if show_secrets {
                e.url
            } else {
                redact_url(&e.url)
            },
            id: e.id,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            disabled_at: e.disabled_at,
            last_success_at: e.last_success_at,
            last_failure_at: e.last_failure_at,
            last_failure: e.last_failure,
            pending: e.pending,
            dead: e.dead,
        }
    }
}

/// A URL with its user-info, query and fragment replaced by `***`
/// (`http://user:pw@host/p?token=x` -> `http://***@host/p?***`): where
/// receivers' secrets live (RFC 3986 §3.2.1, §3.4). The path stays.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, _)) => (b, true),
        None => (rest, false),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, _)) => (b, true),
        None => (before_fragment, false),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&host);
    out.push_str(path);
    if query {
        out.push_str("?***");
    }
    if fragment {
        out.push_str("#***");
    }
    out
}

/// Where a delivery is: pending (not tried yet), failed (tried, another
/// attempt scheduled), delivered, dead (refused for good or out of retries:
/// waits for an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Failed,
    Delivered,
    Dead,
}

impl From<store::DeliveryStatus> for DeliveryStatus {
    fn from(s: store::DeliveryStatus) -> Self {
        match s {
            store::DeliveryStatus::Pending => DeliveryStatus::Pending,
            store::DeliveryStatus::Failed => DeliveryStatus::Failed,
            store::DeliveryStatus::Delivered => DeliveryStatus::Delivered,
            store::DeliveryStatus::Dead => DeliveryStatus::Dead,
        }
    }
}

/// One event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Delivery {
    #[schema(example = "dly_0000000000000001_crm")]
    pub id: String,
    pub endpoint: String,
    pub event_id: String,
    pub event_type: String,
    /// Deliveries of one partition (a message id, a modem) go in order, one
    /// at a time.
    pub partition: String,
    pub attempts: u32,
    pub status: DeliveryStatus,
    /// When the next attempt is due (open deliveries only).
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub first_attempt_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's last HTTP status.
    #[schema(required = true)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[schema(required = true)]
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<store::Delivery> for Delivery {
    fn from(d: store::Delivery) -> Self {
        Delivery {
            id: d.id,
            endpoint: d.endpoint,
            event_id: d.event_id,
            event_type: d.event_type,
            partition: d.partition,
            attempts: d.attempts,
            status: d.status.into(),
            next_attempt_at: d.next_attempt_at,
            first_attempt_at: d.first_attempt_at,
            last_attempt_at: d.last_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// An event: what webhooks deliver (their body), `GET /v1/events` lists and
/// the stream sends. `data` is the Message for `message.*` events; for
/// `modem.status`: modem, state, reason, own_number, operator, signal_dbm;
/// for `consent.changed`: contact, status, previous_status, ledger_entry.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Event {
    /// `evt_` and 16 hex digits; ordered; the `webhook-id` header.
    #[schema(example = "evt_0000000000000001", pattern = "^evt_[0-9a-f]{16}$")]
    pub id: String,
    /// message.received, message.accepted (a conversational message),
    /// message.sent, message.delivered, message.failed, message.unknown,
    /// message.expired, modem.status, consent.changed, thread.assigned,
    /// thread.state_changed, thread.responded, thread.note_added,
    /// thread.outcome, thread.sla_breached; for a message with a Twilio or
    /// Kannel callback that hears every status also message.scheduled,
    /// .queued, .deferred, .sending, .cancelled and .buffered (not sent to
    /// webhooks); in a fleet (`[cluster]`) those for every fleet message.
    /// (A fleet's own kinds, thread.synced, message.given_back,
    /// contact.erased and campaign.cancel_requested, are neither served nor
    /// sent to webhooks.)
    #[serde(rename = "type")]
    pub kind: String,
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Events about a contact (messages, threads, consent: `data.contact`):
    /// who, as the contact's profile says when the event is served, so a
    /// CRM matches it to its record. Absent on other events.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub contact: Option<EventContact>,
}

impl Event {
    /// A stored event as served: a `message.*` event's data becomes the
    /// wire Message (the store keeps the record as written, so the internal
    /// fields are dropped here), and an event with `data.contact` gets
    /// `contact` from the store's profile (one point read).
    pub fn served(e: store::Event, store: &store::Store) -> store::Result<Event> {
        let data = if e.kind.starts_with("message.") {
            message_data(e.data)
        } else if e.kind.starts_with("thread.") {
            thread_data(e.data)
        } else {
            e.data
        };
        let contact = match data.get("contact").and_then(Value::as_str) {
            Some(number) => Some(EventContact::new(number, store.profile(number)?)),
            None => None,
        };
        Ok(Event {
            id: e.id,
            kind: e.kind,
            created_at: e.created_at,
            data,
            contact,
        })
    }
}

/// A stored message record as the wire Message; data that is not a whole
/// record (test events, a record from a newer version) is passed as it is.
fn message_data(data: Value) -> Value {
    match serde_json::from_value::<store::Message>(data.clone()) {
        Ok(record) => serde_json::to_value(Message::from(&record)).unwrap_or(data),
        Err(_) => data,
    }
}

/// A contact's consent: unknown (never said either way), opted_in, opted_out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Unknown,
    OptedIn,
    OptedOut,
}

impl From<StoredConsentStatus> for ConsentStatus {
    fn from(s: StoredConsentStatus) -> Self {
        match s {
            StoredConsentStatus::Unknown => ConsentStatus::Unknown,
            StoredConsentStatus::OptedIn => ConsentStatus::OptedIn,
            StoredConsentStatus::OptedOut => ConsentStatus::OptedOut,
        }
    }
}

/// How an opt-in was obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Evidence {
    /// Where: web_form, paper, sms, pos, ...
    pub source: String,
    /// What: a form id, a URL, the text of the keyword message, ...
    pub evidence: String,
    pub captured_at: DateTime<Utc>,
}

impl From<&store::Evidence> for Evidence {
    fn from(e: &store::Evidence) -> Self {
        Evidence {
            source: e.source.clone(),
            evidence: e.evidence.clone(),
            captured_at: e.captured_at,
        }
    }
}

/// One consent ledger entry: what happened, when, and the proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    pub contact: String,
    /// opt_out, opt_in, manual_opt_out, repeat_opt_out, erased, ...
    pub action: String,
    /// The status after this entry.
    pub status: ConsentStatus,
    /// sms, api.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub inbound_message_id: Option<String>,
    /// The keyword or phrase that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub matched: Option<String>,
    /// The gateway number the text came to.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub gateway_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub evidence: Option<Evidence>,
    /// The fleet site where the change was made, when another gateway of
    /// the fleet made it (`[cluster]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub site: Option<String>,
}

impl From<store::LedgerEntry> for LedgerEntry {
    fn from(e: store::LedgerEntry) -> Self {
        LedgerEntry {
            evidence: e.evidence.as_ref().map(Evidence::from),
            id: e.id,
            at: e.at,
            contact: e.contact,
            action: e.action,
            status: e.status.into(),
            source: e.source,
            inbound_message_id: e.inbound_message_id,
            matched: e.matched,
            gateway_number: e.gateway_number,
            reason: e.reason,
            site: e.site,
        }
    }
}

/// A contact's consent now, with its full ledger, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConsentView {
    pub contact: String,
    pub status: ConsentStatus,
    /// Null until consent was first recorded.
    #[schema(required = true)]
    pub updated_at: Option<DateTime<Utc>>,
    /// The opt-in evidence in force (marketing needs it).
    #[schema(required = true)]
    pub evidence: Option<Evidence>,
    pub ledger: Vec<LedgerEntry>,
}

impl ConsentView {
    pub fn new(record: store::ConsentRecord, ledger: Vec<store::LedgerEntry>) -> ConsentView {
        ConsentView {
            contact: record.contact,
            status: record.status.into(),
            updated_at: record.updated_at,
            evidence: record.evidence.as_ref().map(Evidence::from),
            ledger: ledger.into_iter().map(LedgerEntry::from).collect(),
        }
    }
}

// Contacts (the CRM link): a contact's profile, and who an event is about.

/// A contact: its profile and consent status. `time_zone` is absent when
/// unset; the other profile fields are null, `[]` or `{}` when unset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactView {
    /// E.164.
    pub contact: String,
    /// IANA zone for quiet hours (absent: the config's).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "America/Chicago")]
    pub time_zone: Option<String>,
    #[schema(required = true, example = "Ana Ruiz")]
    pub name: Option<String>,
    /// The CRM's id of the contact; unique among contacts.
    #[schema(required = true, example = "crm-10442")]
    pub external_id: Option<String>,
    /// Exact strings, in the order given.
    pub tags: Vec<String>,
    #[schema(required = true, example = "support")]
    pub owner_team: Option<String>,
    /// For templates (`{{plan}}`).
    pub fields: BTreeMap<String, String>,
    pub consent: ConsentStatus,
}

impl ContactView {
    pub fn new(
        contact: String,
        profile: store::ContactProfile,
        consent: StoredConsentStatus,
    ) -> ContactView {
        ContactView {
            contact,
            time_zone: profile.time_zone,
            name: profile.name,
            external_id: profile.external_id,
            tags: profile.tags,
            owner_team: profile.owner_team,
            fields: profile.fields,
            consent: consent.into(),
        }
    }
}

/// Who an event is about, as the CRM knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventContact {
    /// E.164, or an alphanumeric sender as the network gave it.
    pub number: String,
    /// Null when the profile has none.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Null when the profile has none.
    #[schema(required = true)]
    pub external_id: Option<String>,
}

impl EventContact {
    pub fn new(number: &str, profile: store::ContactProfile) -> EventContact {
        EventContact {
            number: number.to_string(),
            name: profile.name,
            external_id: profile.external_id,
        }
    }
}

/// The answer to a contact import: rows that created a profile, rows that
/// replaced columns of one, and each refused row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportReport {
    pub imported: u64,
    pub updated: u64,
    /// In line order.
    pub errors: Vec<ImportError>,
}

/// A refused import row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportError {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    /// `invalid_number`, `invalid_time_zone`, `invalid_name`,
    /// `invalid_external_id`, `invalid_tags`, `invalid_owner_team`,
    /// `invalid_fields`, `external_id_taken`, `wrong_column_count`,
    /// `invalid_utf8`, `invalid_quoting`.
    #[schema(example = "invalid_number")]
    pub code: String,
    pub detail: String,
}

/// The answer to erasing a contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Erased {
    pub contact: String,
    pub erased_messages: u64,
    /// An opt-out survives erasure as a hashed tombstone.
    pub opt_out_kept: bool,
}

// --- Campaigns (`/v1/campaigns`) ---

/// Where a campaign is: accepting (recipients are being accepted, a batch at
/// a time), accepted (every recipient accepted, skipped or refused),
/// cancelling (no more recipients; waiting messages being cancelled),
/// cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    Accepting,
    Accepted,
    Cancelling,
    Cancelled,
}

impl From<store::CampaignState> for CampaignState {
    fn from(s: store::CampaignState) -> Self {
        match s {
            store::CampaignState::Accepting => CampaignState::Accepting,
            store::CampaignState::Accepted => CampaignState::Accepted,
            store::CampaignState::Cancelling => CampaignState::Cancelling,
            store::CampaignState::Cancelled => CampaignState::Cancelled,
        }
    }
}

/// What became of a campaign's recipients so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CampaignRecipients {
    /// Entries in the request (duplicates and bad numbers included).
    pub total: u64,
    /// Recipients finished with (accepted, skipped or refused); the rest wait.
    pub processed: u64,
    /// Messages accepted (queued, scheduled or deferred).
    pub accepted: u64,
    /// Of the accepted, deferred at once by quiet hours or rate limits.
    pub deferred: u64,
    /// Skipped: the contact opted out (STOP).
    pub skipped_opted_out: u64,
    /// Skipped: the category needs opt-in evidence the contact has not given.
    pub skipped_consent_required: u64,
    /// Skipped: conversational, but the contact never wrote.
    pub skipped_not_conversational: u64,
    /// Skipped: the number was already listed.
    pub skipped_duplicate: u64,
    /// Skipped: the contact was erased after the campaign was made and
    /// before it reached them.
    pub skipped_erased: u64,
    /// Refused with an error, each listed by `GET /v1/campaigns/{id}/errors`
    /// (`missing_field`, `invalid_number`, `body_too_long`, ...).
    pub errors: u64,
}

impl From<&store::Progress> for CampaignRecipients {
    fn from(p: &store::Progress) -> Self {
        let skipped = |reason: &str| p.skipped.get(reason).copied().unwrap_or(0);
        CampaignRecipients {
            total: p.total,
            // Duplicates and bad numbers were finished with at the request.
            processed: p.processed + (p.total - p.listed.min(p.total)),
            accepted: p.accepted,
            deferred: p.deferred,
            skipped_opted_out: skipped("opted_out"),
            skipped_consent_required: skipped("consent_required"),
            skipped_not_conversational: skipped("not_conversational"),
            skipped_duplicate: skipped("duplicate"),
            skipped_erased: skipped("erased"),
            errors: p.errors,
        }
    }
}

/// A campaign's messages by where they are now. `queued` counts every
/// message still waiting for a modem or its time (queued, scheduled,
/// deferred or being handed to a modem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct CampaignMessages {
    pub queued: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub expired: u64,
    pub unknown: u64,
    pub cancelled: u64,
}

impl From<store::StatusCounts> for CampaignMessages {
    fn from(c: store::StatusCounts) -> Self {
        CampaignMessages {
            queued: c.queued,
            sent: c.sent,
            delivered: c.delivered,
            failed: c.failed,
            expired: c.expired,
            unknown: c.unknown,
            cancelled: c.cancelled,
        }
    }
}

/// One variant: its text, weight and counts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CampaignVariant {
    pub id: String,
    pub template: String,
    pub weight: u32,
    /// Recipients accepted with this variant.
    pub accepted: u64,
    pub messages: CampaignMessages,
    /// The variant's reply, conversion and opt-out metrics (as `GET
    /// /v1/metrics/summary?campaign=&variant=` answers them); null where the
    /// gateway keeps no metrics.
    #[schema(value_type = Option<Object>, required = true)]
    pub metrics: Option<Value>,
}

/// A campaign and its progress. The variants' counts add up to the totals.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Campaign {
    #[schema(example = "cmp_018f2a7c3b1d9e37a1c4")]
    pub id: String,
    pub name: String,
    pub state: CampaignState,
    pub category: Category,
    /// The flow each message puts its thread in.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub flow: Option<String>,
    /// The values templates and the flow read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub context: Option<Value>,
    /// Messages are scheduled for this time.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub send_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub recipients: CampaignRecipients,
    /// All the campaign's messages by status.
    pub messages: CampaignMessages,
    pub variants: Vec<CampaignVariant>,
    /// In a fleet, the site of the gateway where the campaign was created,
    /// for another gateway's campaign (absent: this gateway's own). Such a
    /// campaign reads as that gateway last announced it (every few
    /// seconds); its errors are listed there, and a cancel is passed on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "north")]
    pub site: Option<String>,
}

impl Campaign {
    /// The wire campaign; `metrics(variant id)` gives a variant's metrics.
    pub fn new(c: &store::CampaignRecord, metrics: impl Fn(&str) -> Option<Value>) -> Campaign {
        Campaign {
            id: c.id.clone(),
            name: c.name.clone(),
            state: c.state.into(),
            category: c.category.into(),
            flow: c.flow.clone(),
            context: c.context.clone(),
            send_at: c.send_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
            recipients: (&c.progress).into(),
            messages: c.messages().into(),
            variants: c
                .variants
                .iter()
                .zip(
                    c.counts
                        .iter()
                        .chain(std::iter::repeat(&store::VariantCounts::default())),
                )
                .map(|(v, counts)| CampaignVariant {
                    id: v.id.clone(),
                    template: v.template.clone(),
                    weight: v.weight,
                    accepted: counts.accepted,
                    messages: counts.messages.into(),
                    metrics: metrics(&v.id),
                })
                .collect(),
            site: c.site.clone(),
        }
    }
}

/// A recipient refused with an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CampaignError {
    /// E.164, or the entry as given when it is not a number.
    pub number: String,
    /// `missing_field`, `invalid_number`, `body_too_long`, `body_unencodable`, ...
    pub code: String,
    pub detail: String,
}

impl From<store::RecipientError> for CampaignError {
    fn from(e: store::RecipientError) -> Self {
        CampaignError {
            number: e.number,
            code: e.code,
            detail: e.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_the_store_names_them() {
        for s in store::records::ALL_STATUSES {
            assert_eq!(
                serde_json::to_value(MessageStatus::from(s)).unwrap(),
                s.as_str()
            );
        }
        for c in [
            store::Category::Transactional,
            store::Category::Conversational,
            store::Category::Marketing,
        ] {
            assert_eq!(serde_json::to_value(Category::from(c)).unwrap(), c.as_str());
        }
        for s in [
            StoredModemState::Initializing,
            StoredModemState::Ready,
            StoredModemState::Degraded,
            StoredModemState::Offline,
        ] {
            assert_eq!(
                serde_json::to_value(ModemState::from(s)).unwrap(),
                s.as_str()
            );
        }
        for s in [
            StoredConsentStatus::Unknown,
            StoredConsentStatus::OptedIn,
            StoredConsentStatus::OptedOut,
        ] {
            assert_eq!(
                serde_json::to_value(ConsentStatus::from(s)).unwrap(),
                s.as_str()
            );
        }
    }

    #[test]
    fn urls_lose_user_info_query_and_fragment() {
        for (url, shown) in [
            ("http://crm.lan/hooks/sms", "http://crm.lan/hooks/sms"),
            (
                "http://user:pa55@crm.lan:8080/hooks?token=abc&x=1",
                "http://***@crm.lan:8080/hooks?***",
            ),
            ("http://k@10.0.0.5", "http://***@10.0.0.5"),
            ("http://crm.lan?key=s", "http://crm.lan?***"),
            ("http://crm.lan/p#frag", "http://crm.lan/p#***"),
            // An @ in the path is not user-info.
            ("http://crm.lan/a@b", "http://crm.lan/a@b"),
            ("http://u:p@[::1]:9/x?y", "http://***@[::1]:9/x?***"),
            ("not a url?secret", "not a url?***"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}

// The metrics summary (`GET /v1/metrics/summary`; README.md, "Metrics").

/// A share of the contacts sent an outbound in the period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Rate {
    /// numerator / denominator, a fraction (0.25 is 25%); null when no
    /// contact was sent anything.
    #[schema(required = true)]
    pub value: Option<f64>,
    /// Contacts, each once.
    pub numerator: u64,
    /// Contacts sent an outbound in the period, each once.
    pub denominator: u64,
}

impl From<crate::conversation::metrics::Rate> for Rate {
    fn from(r: crate::conversation::metrics::Rate) -> Rate {
        Rate {
            value: r.value,
            numerator: r.numerator,
            denominator: r.denominator,
        }
    }
}

/// Waits in seconds (exact below 128 s, within 0.8% above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Distribution {
    /// Null when there is no wait in the period.
    #[schema(required = true)]
    pub median_s: Option<u64>,
    #[schema(required = true)]
    pub p90_s: Option<u64>,
    /// Waits answered in the period.
    pub count: u64,
}

impl From<crate::conversation::metrics::Distribution> for Distribution {
    fn from(d: crate::conversation::metrics::Distribution) -> Distribution {
        Distribution {
            median_s: d.median_s,
            p90_s: d.p90_s,
            count: d.count,
        }
    }
}

/// Wall-clock time and business hours (the team's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Waits {
    pub overall: Distribution,
    pub business_hours: Distribution,
}

/// From the first inbound of a wait to the first outbound of the thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct ResponseTimes {
    /// Whoever answered first (automation or a person).
    pub overall: Distribution,
    pub business_hours: Distribution,
    /// The first reply by a person (automation does not stop this clock).
    pub person: Waits,
}

/// Cost of the period's outbound parts per conversion outcome.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CostPerOutcome {
    /// numerator / denominator; null without a conversion.
    #[schema(required = true)]
    pub value: Option<f64>,
    /// Parts sent in the period times their modem's cost_per_part.
    pub numerator: f64,
    /// Conversion outcomes linked to the period's outbound.
    pub denominator: u64,
    /// Parts sent in the period.
    pub parts: u64,
}

/// The five metrics over whole UTC days.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MetricsSummary {
    /// First day (UTC), included.
    pub from: chrono::NaiveDate,
    /// Last day (UTC), included.
    pub to: chrono::NaiveDate,
    /// The filters; null: all.
    #[schema(required = true)]
    pub campaign: Option<String>,
    #[schema(required = true)]
    pub variant: Option<String>,
    #[schema(required = true)]
    pub team: Option<String>,
    /// Of the costs (`[conversation] currency`).
    #[schema(example = "USD")]
    pub currency: String,
    /// Outbound messages sent in the period.
    pub messages_sent: u64,
    pub reply_rate: Rate,
    /// By team only: null with a campaign or variant filter.
    pub time_to_first_response: ResponseTimes,
    pub conversion_rate: Rate,
    pub opt_out_rate: Rate,
    pub cost_per_outcome: CostPerOutcome,
}

impl MetricsSummary {
    pub fn new(s: crate::conversation::metrics::Summary, currency: &str) -> MetricsSummary {
        let t = s.time_to_first_response;
        MetricsSummary {
            from: s.query.from,
            to: s.query.to,
            campaign: s.query.campaign,
            variant: s.query.variant,
            team: s.query.team,
            currency: currency.to_string(),
            messages_sent: s.messages_sent,
            reply_rate: s.reply_rate.into(),
            time_to_first_response: ResponseTimes {
                overall: t.overall.into(),
                business_hours: t.business_hours.into(),
                person: Waits {
                    overall: t.person.into(),
                    business_hours: t.person_business_hours.into(),
                },
            },
            conversion_rate: s.conversion_rate.into(),
            opt_out_rate: s.opt_out_rate.into(),
            cost_per_outcome: CostPerOutcome {
                value: s.cost_per_outcome.value,
                numerator: s.cost_per_outcome.numerator,
                denominator: s.cost_per_outcome.denominator,
                parts: s.cost_per_outcome.parts,
            },
        }
    }
}

// --- Threads and the inbox (conversations) ---------------------------------

/// Where a thread is, from the team's side: `open` (waiting on us),
/// `waiting_on_customer`, `snoozed` (until a time), `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThreadState {
    Open,
    WaitingOnCustomer,
    Snoozed,
    Closed,
}

impl From<crate::conversation::ThreadState> for ThreadState {
    fn from(s: crate::conversation::ThreadState) -> Self {
        use crate::conversation::ThreadState as S;
        match s {
            S::Open => ThreadState::Open,
            S::WaitingOnCustomer => ThreadState::WaitingOnCustomer,
            S::Snoozed => ThreadState::Snoozed,
            S::Closed => ThreadState::Closed,
        }
    }
}

/// `normal` or `urgent` (urgent threads lead the inbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    Urgent,
}

impl From<crate::conversation::Priority> for Priority {
    fn from(p: crate::conversation::Priority) -> Self {
        match p {
            crate::conversation::Priority::Normal => Priority::Normal,
            crate::conversation::Priority::Urgent => Priority::Urgent,
        }
    }
}

/// A thread's place in an automation flow.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Flow {
    /// `appointment`, `payment`, `rating` or `lead`.
    pub name: String,
    /// The flow's own step.
    pub step: String,
    /// The `context` of the message that started it.
    #[schema(value_type = Object)]
    pub context: Value,
    /// The message that started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub started_by: Option<String>,
    pub started_at: DateTime<Utc>,
    /// Then the thread leaves the flow.
    pub expires_at: DateTime<Utc>,
    /// What the contact answered so far.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub answers: std::collections::BTreeMap<String, String>,
}

impl From<&crate::conversation::FlowState> for Flow {
    fn from(f: &crate::conversation::FlowState) -> Self {
        Flow {
            name: f.name.clone(),
            step: f.step.clone(),
            context: f.context.clone(),
            started_by: f.started_by.clone(),
            started_at: f.started_at,
            expires_at: f.expires_at,
            answers: f.answers.clone(),
        }
    }
}

/// An outcome recorded on a thread, linked to the message that led to it
/// and that message's campaign and variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Outcome {
    #[schema(example = "appointment_confirmed")]
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value: Option<String>,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub variant: Option<String>,
}

impl From<&store::OutcomeRecord> for Outcome {
    fn from(o: &store::OutcomeRecord) -> Self {
        Outcome {
            name: o.name.clone(),
            value: o.value.clone(),
            at: o.at,
            message_id: o.message_id.clone(),
            campaign: o.campaign.clone(),
            variant: o.variant.clone(),
        }
    }
}

/// A contact's thread as a team inbox sees it; also the `data` of the
/// `thread.*` events (with `change`: what changed, and `author`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Thread {
    /// The contact's number (E.164) or sender name.
    pub contact: String,
    pub state: ThreadState,
    /// Snoozed: when it opens again by itself.
    #[schema(required = true)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The team it is routed to.
    #[schema(required = true)]
    pub team: Option<String>,
    /// The person it is assigned to.
    #[schema(required = true)]
    pub assignee: Option<String>,
    pub priority: Priority,
    /// The automation flow it is in.
    #[schema(required = true)]
    pub flow: Option<Flow>,
    /// The first unanswered inbound of the current wait (null: nobody waits on us).
    #[schema(required = true)]
    pub waiting_since: Option<DateTime<Utc>>,
    /// The first inbound no person has answered yet (automation's answers
    /// do not end a person's wait; null: none).
    #[schema(required = true)]
    pub person_waiting_since: Option<DateTime<Utc>>,
    /// When the current wait breaches its team's response standard.
    #[schema(required = true)]
    pub sla_due: Option<DateTime<Utc>>,
    /// The current wait went past `sla_due`.
    pub sla_breached: bool,
    pub outcomes: Vec<Outcome>,
    pub tags: Vec<String>,
    /// What the contact answered a flow's questions (`q1`, `q2`,
    /// `comment`), kept after the flow ends.
    pub answers: BTreeMap<String, String>,
    pub updated_at: DateTime<Utc>,
}

impl From<&store::Thread> for Thread {
    fn from(t: &store::Thread) -> Self {
        Thread {
            contact: t.contact.clone(),
            state: t.state.into(),
            snoozed_until: t.snoozed_until,
            team: t.team.clone(),
            assignee: t.assignee.clone(),
            priority: t.priority.into(),
            flow: t.flow.as_ref().map(Flow::from),
            waiting_since: t.waiting_since,
            person_waiting_since: t.person_waiting_since,
            sla_due: t.sla_due,
            sla_breached: t.sla_breached,
            outcomes: t.outcomes.iter().map(Outcome::from).collect(),
            tags: t.tags.clone(),
            answers: t.answers.clone(),
            updated_at: t.updated_at,
        }
    }
}

/// One entry of a thread's timeline (`kind`: `message`, `note` or
/// `activity`), each with its time and author. A message is the wire
/// Message with `kind`, `at` and `author` added. The OpenAPI schema
/// (`TimelineItem`) is written in `api::openapi` from the Message schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimelineItem {
    Message {
        #[serde(flatten)]
        message: Box<Message>,
        at: DateTime<Utc>,
        /// A person, `automation`, `webhook` (a receiver's reply by
        /// response), `api:<token name>` (`POST /v1/messages`), or null
        /// (the contact, the compat APIs).
        author: Option<String>,
    },
    /// A note by a person: never sent.
    Note {
        id: String,
        at: DateTime<Utc>,
        author: Option<String>,
        text: String,
    },
    /// A change to the thread: `assigned`, `state_changed`,
    /// `priority_changed`, `tagged`, `answered`, `outcome`, `flow_started`,
    /// `flow_changed`, `flow_left`, `sla_breached`; `detail` says what.
    Activity {
        id: String,
        at: DateTime<Utc>,
        author: Option<String>,
        activity: String,
        detail: Value,
    },
}

impl From<store::TimelineEntry> for TimelineItem {
    fn from(e: store::TimelineEntry) -> Self {
        match e {
            store::TimelineEntry::Message(m) => TimelineItem::Message {
                at: m.created_at,
                author: m.author.clone(),
                message: Box::new(Message::from(&*m)),
            },
            store::TimelineEntry::Item(item) => match item.kind {
                store::ItemKind::Note { text } => TimelineItem::Note {
                    id: item.id,
                    at: item.at,
                    author: item.author,
                    text,
                },
                store::ItemKind::Activity { activity, detail } => TimelineItem::Activity {
                    id: item.id,
                    at: item.at,
                    author: item.author,
                    activity,
                    detail,
                },
            },
        }
    }
}

/// `GET /v1/threads/{contact}`: the thread and a page of its timeline,
/// oldest first; `next_cursor` pages back in time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadView {
    pub thread: Thread,
    pub items: Vec<TimelineItem>,
    pub next_cursor: Option<String>,
}

/// A thread in the inbox.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct InboxItem {
    pub contact: String,
    pub state: ThreadState,
    pub priority: Priority,
    #[schema(required = true)]
    pub team: Option<String>,
    #[schema(required = true)]
    pub assignee: Option<String>,
    /// The first unanswered inbound of the current wait.
    #[schema(required = true)]
    pub waiting_since: Option<DateTime<Utc>>,
    /// Seconds since `waiting_since` (null: nobody waits on us).
    #[schema(required = true)]
    pub wait_seconds: Option<i64>,
    #[schema(required = true)]
    pub sla_due: Option<DateTime<Utc>>,
    pub sla_breached: bool,
    #[schema(required = true)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The flow it is in, by name.
    #[schema(required = true)]
    pub flow: Option<String>,
    pub tags: Vec<String>,
    pub updated_at: DateTime<Utc>,
}

impl InboxItem {
    /// `thread` as the inbox lists it at `now`.
    pub fn at(t: &store::Thread, now: DateTime<Utc>) -> InboxItem {
        InboxItem {
            contact: t.contact.clone(),
            state: t.state.into(),
            priority: t.priority.into(),
            team: t.team.clone(),
            assignee: t.assignee.clone(),
            waiting_since: t.waiting_since,
            wait_seconds: t.waiting_since.map(|w| (now - w).num_seconds().max(0)),
            sla_due: t.sla_due,
            sla_breached: t.sla_breached,
            snoozed_until: t.snoozed_until,
            flow: t.flow.as_ref().map(|f| f.name.clone()),
            tags: t.tags.clone(),
            updated_at: t.updated_at,
        }
    }
}

/// A `thread.*` event's data as served: the wire thread, with `change`
/// and `author` kept (the stored data is the thread record).
fn thread_data(data: Value) -> Value {
    let Ok(record) = serde_json::from_value::<store::Thread>(data.clone()) else {
        return data;
    };
    let Ok(mut out) = serde_json::to_value(Thread::from(&record)) else {
        return data;
    };
    for key in ["change", "author"] {
        if let Some(v) = data.get(key) {
            out[key] = v.clone();
        }
    }
    out
}
