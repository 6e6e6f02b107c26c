//! Conversations: threads as a team inbox, routing rules and automation
//! flows, SLA timers, outcomes, the metric counters and campaigns, on top of
//! the store, the policy and the events (ARCHITECTURE.md, "Conversations").
//!
//! The shared vocabulary lives here: a thread's state and priority, a flow's
//! state, and the actions a rule or a flow decides on. Who decides and who
//! applies is split by file:
//! - [`rules`], [`flows`], [`template`]: pure decisions on an inbound text
//!   (no I/O): the configured rules in order, the shipped flows, templates;
//! - [`rulebook`]: the rules in effect, the file's or a stored list that
//!   replaces them while the daemon runs;
//! - [`hours`]: business hours and SLA due times (pure, clock passed in);
//! - [`metrics`]: the five metrics from the store's incremental counters;
//! - [`campaigns`]: one text or A/B variants to many recipients, accepted
//!   in batches through the one admission, resumed after a restart;
//! - [`engine`]: applies decisions to the store (threads, timeline, events,
//!   replies through the one admission path).

pub mod campaigns;
pub mod engine;
pub mod flows;
pub mod hours;
pub mod metrics;
pub mod rulebook;
pub mod rules;
pub mod settings;
pub mod template;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a thread is, from the team's side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadState {
    /// Waiting on us: the contact wrote and nobody has answered yet.
    #[default]
    Open,
    /// We answered; the next move is the contact's.
    WaitingOnCustomer,
    /// Put aside until a time (then open again), or until the contact writes.
    Snoozed,
    Closed,
}

impl ThreadState {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadState::Open => "open",
            ThreadState::WaitingOnCustomer => "waiting_on_customer",
            ThreadState::Snoozed => "snoozed",
            ThreadState::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<ThreadState> {
        [
            ThreadState::Open,
            ThreadState::WaitingOnCustomer,
            ThreadState::Snoozed,
            ThreadState::Closed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Normal,
    Urgent,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
        }
    }

    pub fn parse(text: &str) -> Option<Priority> {
        match text {
            "normal" => Some(Priority::Normal),
            "urgent" => Some(Priority::Urgent),
            _ => None,
        }
    }
}

/// The outcomes the shipped flows record; any other name is a custom outcome.
pub const OUTCOMES: [&str; 7] = [
    "appointment_confirmed",
    "appointment_booked",
    "lead_qualified",
    "ticket_opened",
    "payment_link_sent",
    "payment_completed",
    "rating_received",
];

/// The outcomes that count as a conversion unless `[conversation]
/// conversions` says otherwise.
pub const DEFAULT_CONVERSIONS: [&str; 4] = [
    "appointment_booked",
    "appointment_confirmed",
    "lead_qualified",
    "payment_completed",
];

/// A thread's place in a flow: which flow, which step, what it was started
/// with and what the contact has answered so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    /// `appointment`, `payment`, `rating`, `lead`.
    pub name: String,
    /// The flow's own step name (e.g. `awaiting_confirmation`, `offered_slots`).
    pub step: String,
    /// The `context` of the message that started it (slots, url, questions).
    #[serde(default)]
    pub context: serde_json::Value,
    /// The message that started the flow (outcomes link to its campaign).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub started_by: Option<String>,
    pub started_at: DateTime<Utc>,
    /// After this the thread leaves the flow (`context.expires`, default 3 days).
    pub expires_at: DateTime<Utc>,
    /// Answers kept so far (the lead flow's questions, a rating's comment).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub answers: BTreeMap<String, String>,
}

/// One thing a rule or a flow decided to do with an inbound message. The
/// engine applies them in order, in the store, with their events.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this text (already rendered) as a `conversational` reply,
    /// authored by automation, through the normal admission.
    Reply(String),
    /// Hand the thread to a team (by its id).
    Route(String),
    /// Assign the thread to a person.
    Assign(String),
    SetPriority(Priority),
    /// Record an outcome, with an optional value (a slot, a rating).
    Outcome {
        name: String,
        value: Option<String>,
    },
    /// Tag the thread.
    Tag(String),
    /// Close the thread.
    Close,
    /// Enter, move within, or (None) leave a flow.
    Flow(Option<FlowState>),
    /// Keep an answer the contact gave on the thread (a lead's answers under
    /// `q1` and `q2`, a rating's `comment`): it outlives the flow, whose own
    /// `answers` go when the thread leaves it.
    Answer {
        key: String,
        value: String,
    },
}
