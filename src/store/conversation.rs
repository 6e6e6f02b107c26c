//! Threads as a team inbox: one [`Thread`] record per contact (state, team,
//! assignee, priority, flow, the current wait and its SLA, outcomes, tags),
//! its timeline items (notes and activities, merged with the contact's
//! messages in causal order), the inbox index and the conversation engine's
//! cursor over the event log.
//!
//! Every change is one sled transaction over these trees and the events
//! tree, with its `thread.*` event, and the async operations return once the
//! group commit has made it durable.
//!
//! Key layouts (numbers big-endian, so byte order is time order):
//! - `conv_threads`: contact -> Thread.
//! - `conv_items`: contact, SEP, time (µs), item id -> TimelineItem: the
//!   same layout as the message thread index, so the two merge by key.
//! - `conv_index`, by its first byte:
//!   - `I` state, priority, wait (µs), contact: the inbox;
//!   - `T` team, SEP, then as `I`: the inbox of a team;
//!   - `A` assignee, SEP, then as `I`: the inbox of a person;
//!   - `D` SLA due (µs), contact: waits whose SLA runs (not yet breached);
//!   - `S` snoozed until (µs), contact: snoozed threads;
//!   - `F` flow expires (µs), contact: threads in a flow;
//!   - `C`: the engine's cursor (the next event sequence to read).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::TransactionalTree;
use sled::{Transactional, Tree};

use super::keys;
use super::records::{Event, Message};
use super::{
    from_json, from_json_tx, push_event, to_json, unwrap_tx, Page, Result, Store, StoreError,
    TxError,
};
use crate::conversation::{FlowState, Priority, ThreadState};

/// The trees of this file, opened with the store.
pub(crate) struct Trees {
    /// contact -> Thread.
    threads: Tree,
    /// contact, SEP, time, id -> TimelineItem.
    items: Tree,
    /// The inbox orders, SLA and snooze timers, the engine's cursor.
    index: Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Trees> {
        Ok(Trees {
            threads: db.open_tree("conv_threads")?,
            items: db.open_tree("conv_items")?,
            index: db.open_tree("conv_index")?,
        })
    }
}

const INBOX: u8 = b'I';
const TEAM: u8 = b'T';
const ASSIGNEE: u8 = b'A';
const SLA_DUE: u8 = b'D';
const SNOOZE: u8 = b'S';
const FLOW_EXPIRY: u8 = b'F';
const CURSOR: &[u8] = b"C";

/// The event of a thread change that has none of its own, written only in
/// a fleet (for the events stream; webhooks are not sent it).
pub const FLEET_THREAD_EVENT: &str = "thread.synced";

/// An outcome recorded on a thread, linked to the message that led to it
/// and that message's campaign and variant (the metrics count by them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
    pub at: DateTime<Utc>,
    /// The message that led to it (the inbound answer, or the flow's start).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub campaign: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

/// A contact's thread, from the team's side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// The contact's number (E.164) or sender name: the thread's key.
    pub contact: String,
    pub state: ThreadState,
    /// Snoozed: when it opens again by itself.
    #[serde(default)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The team it is routed to (a `[[conversation.team]]` id).
    #[serde(default)]
    pub team: Option<String>,
    /// The person it is assigned to.
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    /// The automation flow it is in, if any.
    #[serde(default)]
    pub flow: Option<FlowState>,
    /// The first unanswered inbound of the current wait: any answer (a
    /// person's, an app's, automation's) ends it.
    #[serde(default)]
    pub waiting_since: Option<DateTime<Utc>>,
    /// The first inbound no person has answered yet: automation's answers
    /// do not end it (time to first response by a person), a person's
    /// does; the next inbound after that starts it again.
    #[serde(default)]
    pub person_waiting_since: Option<DateTime<Utc>>,
    /// When the current wait breaches its team's response standard.
    #[serde(default)]
    pub sla_due: Option<DateTime<Utc>>,
    /// The current wait went past `sla_due` (reported once per wait).
    #[serde(default)]
    pub sla_breached: bool,
    #[serde(default)]
    pub outcomes: Vec<OutcomeRecord>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// What the contact answered a flow's questions (a lead's `q1`, `q2`, a
    /// rating's `comment`): kept after the flow ends.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub answers: std::collections::BTreeMap<String, String>,
    pub updated_at: DateTime<Utc>,
    /// When the record was first made (absent in one made before this was
    /// kept): in a fleet, a thread begun before its contact's erasure is
    /// not taken from another gateway, however late it changed there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
}

impl Thread {
    /// A thread with nothing recorded yet.
    pub fn new(contact: &str, state: ThreadState, at: DateTime<Utc>) -> Thread {
        Thread {
            contact: contact.to_string(),
            state,
            snoozed_until: None,
            team: None,
            assignee: None,
            priority: Priority::Normal,
            flow: None,
            waiting_since: None,
            person_waiting_since: None,
            sla_due: None,
            sla_breached: false,
            outcomes: Vec::new(),
            tags: Vec::new(),
            answers: Default::default(),
            updated_at: at,
            started_at: Some(at),
        }
    }

    /// The time the inbox orders it by: the start of its wait, else its
    /// last change.
    pub fn wait_key(&self) -> DateTime<Utc> {
        self.waiting_since.unwrap_or(self.updated_at)
    }
}

/// What a timeline item (other than a message) is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ItemKind {
    /// A note by a person: never sent.
    Note { text: String },
    /// Something that happened to the thread: `assigned`, `state_changed`,
    /// `priority_changed`, `tagged`, `outcome`, `flow_started`,
    /// `flow_changed`, `flow_left`, `sla_breached`; `detail` says what.
    Activity {
        activity: String,
        detail: serde_json::Value,
    },
}

/// A note or an activity in a thread's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineItem {
    /// From [`Store::new_id`] (with `itm_` for `msg_`): it sorts with the
    /// contact's message ids in creation order.
    pub id: String,
    pub at: DateTime<Utc>,
    /// A person, `automation`, or none (the contact, the system).
    #[serde(default)]
    pub author: Option<String>,
    #[serde(flatten)]
    pub kind: ItemKind,
}

/// One entry of a thread's timeline: a message or an item, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Message(Box<Message>),
    Item(TimelineItem),
}

impl Entry {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Entry::Message(m) => m.created_at,
            Entry::Item(i) => i.at,
        }
    }
}

/// A change to a thread. [`Store::change_thread`] applies a list of them
/// in one transaction, each with its timeline item and event.
#[derive(Debug, Clone, PartialEq)]
pub enum ThreadChange {
    /// The contact wrote: a closed or snoozed thread opens; a new wait starts
    /// (with this SLA due time) unless one is running. `reopen: false` (a
    /// consent keyword, handled by the policy) only records the time.
    Inbound {
        message_id: String,
        reopen: bool,
        sla_due: Option<DateTime<Utc>>,
    },
    /// We answered (a person, an app or automation): an open thread waits
    /// on the customer; the wait and its SLA clock stop. `by_person`: the
    /// answer also ends the person's wait ([`Thread::person_waiting_since`]);
    /// automation's does not.
    Replied {
        message_id: String,
        by_person: bool,
    },
    /// Team and assignee (None: unassigned), as `PUT .../assignment` sets them.
    Assign {
        team: Option<String>,
        assignee: Option<String>,
    },
    /// Only the team (a rule's `route`).
    Route(String),
    /// Only the assignee (a rule's `assign`).
    AssignTo(String),
    /// `snoozed` needs `until`.
    State {
        state: ThreadState,
        until: Option<DateTime<Utc>>,
    },
    Priority(Priority),
    Tag(String),
    /// Keep an answer the contact gave (a flow's `Action::Answer`).
    Answer {
        key: String,
        value: String,
    },
    Note(String),
    Outcome {
        name: String,
        value: Option<String>,
        note: Option<String>,
        message_id: Option<String>,
        campaign: Option<String>,
        variant: Option<String>,
    },
    /// Enter, move within (Some) or leave (None) a flow.
    Flow(Option<FlowState>),
    /// The SLA timer found the wait past due.
    SlaBreached,
    /// The snooze timer found the snooze over: the thread waits on us
    /// again, from now, with this SLA due time (unless a wait is running).
    Wake {
        sla_due: Option<DateTime<Utc>>,
    },
    /// The flow timer found the flow past its `expires_at`: the thread
    /// leaves it.
    FlowExpired,
}

/// What [`Store::change_thread`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadChanged {
    pub thread: Thread,
    /// The timeline items it added.
    pub items: Vec<TimelineItem>,
    pub events: Vec<Event>,
}

/// An inbox query: `GET /v1/inbox`'s filters.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub team: Option<String>,
    pub assignee: Option<String>,
    /// None: open threads and snoozed ones whose time has come.
    pub state: Option<ThreadState>,
    pub priority: Option<Priority>,
}

fn state_byte(state: ThreadState) -> u8 {
    match state {
        ThreadState::Open => 0,
        ThreadState::WaitingOnCustomer => 1,
        ThreadState::Snoozed => 2,
        ThreadState::Closed => 3,
    }
}

fn priority_byte(priority: Priority) -> u8 {
    // Urgent first.
    match priority {
        Priority::Urgent => 0,
        Priority::Normal => 1,
    }
}

/// The inbox order of a thread within its state: priority, wait, contact.
fn sort_key(thread: &Thread) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + thread.contact.len());
    key.push(priority_byte(thread.priority));
    key.extend_from_slice(&keys::time_key(thread.wait_key()));
    key.extend_from_slice(thread.contact.as_bytes());
    key
}

fn inbox_prefix(scope: Option<(u8, &str)>, state: ThreadState) -> Vec<u8> {
    let mut key = Vec::new();
    match scope {
        None => key.push(INBOX),
        Some((kind, name)) => {
            key.push(kind);
            key.extend_from_slice(name.as_bytes());
            key.push(keys::SEP);
        }
    }
    key.push(state_byte(state));
    key
}

/// Every index key of `thread`.
fn index_keys(thread: &Thread) -> Vec<Vec<u8>> {
    let sort = sort_key(thread);
    let with = |mut prefix: Vec<u8>| {
        prefix.extend_from_slice(&sort);
        prefix
    };
    let mut out = vec![with(inbox_prefix(None, thread.state))];
    if let Some(team) = &thread.team {
        out.push(with(inbox_prefix(Some((TEAM, team)), thread.state)));
    }
    if let Some(person) = &thread.assignee {
        out.push(with(inbox_prefix(Some((ASSIGNEE, person)), thread.state)));
    }
    if let (Some(due), false) = (thread.sla_due, thread.sla_breached) {
        if thread.waiting_since.is_some() {
            out.push(timer_key(SLA_DUE, due, &thread.contact));
        }
    }
    if let (ThreadState::Snoozed, Some(until)) = (thread.state, thread.snoozed_until) {
        out.push(timer_key(SNOOZE, until, &thread.contact));
    }
    if let Some(flow) = &thread.flow {
        out.push(timer_key(FLOW_EXPIRY, flow.expires_at, &thread.contact));
    }
    out
}

fn timer_key(kind: u8, at: DateTime<Utc>, contact: &str) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(&keys::time_key(at));
    key.extend_from_slice(contact.as_bytes());
    key
}

/// The item id for `at`: a message id's layout with `itm_`.
fn item_id(store: &Store, contact: &str, at: DateTime<Utc>) -> String {
    let id = store.new_id(contact, at);
    format!("itm_{}", id.trim_start_matches("msg_"))
}

/// The key of an item in `conv_items`: the message thread index's layout,
/// with the id spelled as a message id (`msg_` for `itm_`), so items and
/// messages compare alike, by time, then by creation within a millisecond,
/// and one cursor bounds both trees.
fn item_key(contact: &str, item: &TimelineItem) -> Vec<u8> {
    let digits = item.id.trim_start_matches("itm_");
    keys::thread(contact, item.at, &format!("msg_{digits}"))
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

fn abort(e: StoreError) -> TxError {
    sled::transaction::ConflictableTransactionError::Abort(e)
}

fn json_of<T: Serialize>(value: &T) -> std::result::Result<serde_json::Value, TxError> {
    serde_json::to_value(value).map_err(|e| abort(corrupt("(thread)", &e.to_string())))
}

/// The thread waits on us from `at`: a wait starts (with this SLA due
/// time) unless one is running, and so does a person's.
fn start_waits(thread: &mut Thread, at: DateTime<Utc>, sla_due: Option<DateTime<Utc>>) {
    if thread.waiting_since.is_none() {
        thread.waiting_since = Some(at);
        thread.sla_due = sla_due;
        thread.sla_breached = false;
    }
    if thread.person_waiting_since.is_none() {
        thread.person_waiting_since = Some(at);
    }
}

/// Apply `change` to `thread` as of `at`: the activity it records (None:
/// nothing changed), and the event kind with what changed.
fn apply(
    thread: &mut Thread,
    change: &ThreadChange,
    at: DateTime<Utc>,
) -> Option<(ItemKind, &'static str, serde_json::Value)> {
    use serde_json::json;
    let activity = |name: &str, detail: serde_json::Value| ItemKind::Activity {
        activity: name.to_string(),
        detail,
    };
    let set_state = |thread: &mut Thread, state: ThreadState, until: Option<DateTime<Utc>>| {
        let before = thread.state;
        if before == state && thread.snoozed_until == until {
            return None;
        }
        thread.state = state;
        thread.snoozed_until = if state == ThreadState::Snoozed {
            until
        } else {
            None
        };
        if state != ThreadState::Open {
            // Nobody waits on us any more: the waits and the SLA clock stop
            // (with no response to count).
            thread.waiting_since = None;
            thread.person_waiting_since = None;
            thread.sla_due = None;
            thread.sla_breached = false;
        }
        let mut detail = json!({"from": before.as_str(), "to": state.as_str()});
        if let Some(until) = thread.snoozed_until {
            detail["until"] = json!(until);
        }
        Some((
            activity("state_changed", detail.clone()),
            "thread.state_changed",
            detail,
        ))
    };
    match change {
        ThreadChange::Inbound {
            message_id,
            reopen,
            sla_due,
        } => {
            if !reopen {
                return None;
            }
            let before = thread.state;
            thread.state = ThreadState::Open;
            thread.snoozed_until = None;
            start_waits(thread, at, *sla_due);
            (before != ThreadState::Open).then(|| {
                let detail =
                    json!({"from": before.as_str(), "to": "open", "message_id": message_id});
                (
                    activity("state_changed", detail.clone()),
                    "thread.state_changed",
                    detail,
                )
            })
        }
        ThreadChange::Replied {
            message_id,
            by_person,
        } => {
            let before = thread.state;
            // The waits this answer ends (time to first response): the
            // current one, and for a person's answer the person's.
            let waited_from = thread.waiting_since.take();
            let person_waited_from = if *by_person {
                thread.person_waiting_since.take()
            } else {
                None
            };
            thread.sla_due = None;
            thread.sla_breached = false;
            let mut detail = json!({"message_id": message_id, "by_person": by_person,
                "waited_from": waited_from});
            if let Some(from) = person_waited_from {
                detail["person_waited_from"] = json!(from);
            }
            if before == ThreadState::Open {
                thread.state = ThreadState::WaitingOnCustomer;
                detail["from"] = json!("open");
                detail["to"] = json!("waiting_on_customer");
                return Some((
                    activity("state_changed", detail.clone()),
                    "thread.state_changed",
                    detail,
                ));
            }
            // Automation answered first: the state stays, but a person's
            // first response is told (the metrics count it).
            person_waited_from.map(|_| {
                (
                    activity("responded", detail.clone()),
                    "thread.responded",
                    detail,
                )
            })
        }
        ThreadChange::Assign { team, assignee } => {
            if thread.team == *team && thread.assignee == *assignee {
                return None;
            }
            let detail = json!({
                "team": team, "assignee": assignee,
                "previous_team": thread.team, "previous_assignee": thread.assignee,
            });
            thread.team = team.clone();
            thread.assignee = assignee.clone();
            Some((
                activity("assigned", detail.clone()),
                "thread.assigned",
                detail,
            ))
        }
        ThreadChange::Route(team) => apply(
            thread,
            &ThreadChange::Assign {
                team: Some(team.clone()),
                assignee: thread.assignee.clone(),
            },
            at,
        ),
        ThreadChange::AssignTo(person) => apply(
            thread,
            &ThreadChange::Assign {
                team: thread.team.clone(),
                assignee: Some(person.clone()),
            },
            at,
        ),
        ThreadChange::State { state, until } => set_state(thread, *state, *until),
        ThreadChange::Wake { sla_due } => {
            if thread.state != ThreadState::Snoozed {
                return None;
            }
            let out = set_state(thread, ThreadState::Open, None);
            // Back in the inbox: it waits on us from the wake, as after an
            // inbound, with the team's SLA.
            start_waits(thread, at, *sla_due);
            out
        }
        ThreadChange::Priority(priority) => {
            if thread.priority == *priority {
                return None;
            }
            let detail = json!({"from": thread.priority.as_str(), "to": priority.as_str()});
            thread.priority = *priority;
            // No event of its own: the list has none; the activity
            // shows it and the next thread event carries it.
            Some((activity("priority_changed", detail), "", json!(null)))
        }
        ThreadChange::Tag(tag) => {
            if thread.tags.contains(tag) {
                return None;
            }
            thread.tags.push(tag.clone());
            Some((activity("tagged", json!({"tag": tag})), "", json!(null)))
        }
        ThreadChange::Answer { key, value } => {
            if thread.answers.get(key) == Some(value) {
                return None;
            }
            thread.answers.insert(key.clone(), value.clone());
            Some((
                activity("answered", json!({"key": key, "value": value})),
                "",
                json!(null),
            ))
        }
        ThreadChange::Note(text) => {
            let detail = json!({"text": text});
            Some((
                ItemKind::Note { text: text.clone() },
                "thread.note_added",
                detail,
            ))
        }
        ThreadChange::Outcome {
            name,
            value,
            note,
            message_id,
            campaign,
            variant,
        } => {
            let record = OutcomeRecord {
                name: name.clone(),
                value: value.clone(),
                at,
                message_id: message_id.clone(),
                campaign: campaign.clone(),
                variant: variant.clone(),
            };
            thread.outcomes.push(record.clone());
            let mut detail = json!(record);
            if let Some(note) = note {
                detail["note"] = json!(note);
            }
            Some((
                activity("outcome", detail.clone()),
                "thread.outcome",
                detail,
            ))
        }
        ThreadChange::Flow(flow) => {
            if thread.flow == *flow {
                return None;
            }
            let (name, detail) = match (&thread.flow, flow) {
                (None, Some(f)) => (
                    "flow_started",
                    json!({"flow": f.name, "step": f.step, "started_by": f.started_by}),
                ),
                (Some(_), Some(f)) => ("flow_changed", json!({"flow": f.name, "step": f.step})),
                (Some(old), None) => ("flow_left", json!({"flow": old.name, "step": old.step})),
                (None, None) => return None,
            };
            thread.flow = flow.clone();
            Some((activity(name, detail), "", json!(null)))
        }
        ThreadChange::FlowExpired => {
            let old = thread.flow.take_if(|f| f.expires_at <= at)?;
            Some((
                activity(
                    "flow_left",
                    json!({"flow": old.name, "step": old.step, "reason": "expired"}),
                ),
                "",
                json!(null),
            ))
        }
        ThreadChange::SlaBreached => {
            let running = thread.state == ThreadState::Open
                && thread.waiting_since.is_some()
                && !thread.sla_breached
                && thread.sla_due.is_some_and(|due| due <= at);
            if !running {
                return None;
            }
            thread.sla_breached = true;
            let detail = json!({"sla_due": thread.sla_due, "waiting_since": thread.waiting_since});
            Some((
                activity("sla_breached", detail.clone()),
                "thread.sla_breached",
                detail,
            ))
        }
    }
}

/// The trees one thread change writes.
struct Tx<'a> {
    threads: &'a TransactionalTree,
    items: &'a TransactionalTree,
    index: &'a TransactionalTree,
    events: &'a TransactionalTree,
}

impl Tx<'_> {
    fn read(&self, contact: &str) -> std::result::Result<Option<Thread>, TxError> {
        match self.threads.get(contact.as_bytes())? {
            Some(raw) => Ok(Some(from_json_tx(contact.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// Apply `changes` to the contact's thread (made if missing, in
    /// `initial` state), with items and events, in this transaction.
    #[allow(clippy::too_many_arguments)]
    fn change(
        &self,
        store: &Store,
        contact: &str,
        initial: ThreadState,
        changes: &[ThreadChange],
        author: Option<&str>,
        at: DateTime<Utc>,
        ids: &[String],
    ) -> std::result::Result<ThreadChanged, TxError> {
        let existing = self.read(contact)?;
        let created = existing.is_none();
        let mut thread = existing.unwrap_or_else(|| Thread::new(contact, initial, at));
        let old_keys = if created {
            Vec::new()
        } else {
            index_keys(&thread)
        };
        let mut items = Vec::new();
        let mut pending = Vec::new();
        for (n, change) in changes.iter().enumerate() {
            let Some((kind, event, detail)) = apply(&mut thread, change, at) else {
                continue;
            };
            let id = ids
                .get(n)
                .cloned()
                .unwrap_or_else(|| item_id(store, contact, at));
            let item = TimelineItem {
                id,
                at,
                author: author.map(str::to_string),
                kind,
            };
            self.items
                .insert(item_key(contact, &item), to_json(&item)?)?;
            items.push(item);
            if !event.is_empty() {
                pending.push((event, detail));
            }
        }
        if items.is_empty() && !created {
            return Ok(ThreadChanged {
                thread,
                items,
                events: Vec::new(),
            });
        }
        thread.updated_at = at;
        let new_keys = index_keys(&thread);
        for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
            self.index.remove(k.as_slice())?;
        }
        for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
            self.index.insert(k.as_slice(), contact.as_bytes())?;
        }
        self.threads.insert(contact.as_bytes(), to_json(&thread)?)?;
        let mut events = Vec::new();
        if store.fleet_threads() {
            // Every other gateway's inbox and timeline learn of it: the
            // record and the items this change made (not a webhook kind;
            // the fleet shares this one, not the thread.* kinds).
            let mut data = json_of(&thread)?;
            if !items.is_empty() {
                data["items"] = json_of(&items)?;
            }
            events.push(push_event(self.events, FLEET_THREAD_EVENT, at, data)?);
        }
        if !pending.is_empty() {
            let base = json_of(&thread)?;
            for (kind, detail) in pending {
                let mut data = base.clone();
                data["change"] = detail;
                if let Some(author) = author {
                    data["author"] = serde_json::json!(author);
                }
                events.push(push_event(self.events, kind, at, data)?);
            }
        }
        Ok(ThreadChanged {
            thread,
            items,
            events,
        })
    }
}

fn cursor_of(key: &[u8]) -> String {
    crate::pdu::hex::encode(key)
}

fn key_of(cursor: &str) -> Result<Vec<u8>> {
    crate::pdu::hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)
}

/// An event of the log with its sequence number.
pub type Sequenced = (u64, Event);

impl Store {
    fn conv(&self) -> &Trees {
        &self.inner.conversations
    }

    /// Erase `contact`'s conversation (part of [`Store::erase_contact`]):
    /// the thread record, its places in the inbox orders and timers, and
    /// its timeline items (notes, assignments, outcomes), but those made
    /// after `kept_after` (another gateway's erasure applied late here: a
    /// new conversation's). How many items went.
    /// Each contact with a thread record or timeline items here (a full
    /// scan of their keys; for an erasure known only by its hash).
    pub(crate) fn conversation_contacts(&self, look: &mut dyn FnMut(&[u8])) -> Result<()> {
        let t = self.conv();
        for key in t.threads.iter().keys() {
            look(&key?);
        }
        for key in t.items.iter().keys() {
            let key = key?;
            look(key.split(|b| *b == keys::SEP).next().unwrap_or_default());
        }
        Ok(())
    }

    pub(crate) fn erase_conversation(
        &self,
        contact: &str,
        kept_after: Option<DateTime<Utc>>,
    ) -> Result<usize> {
        let t = self.conv();
        let prefix = keys::thread_prefix(contact);
        let mut item_keys = Vec::new();
        for key in t.items.scan_prefix(&prefix).keys() {
            let key = key?;
            let made = keys::time_of(&key[prefix.len()..]);
            if made
                .zip(kept_after)
                .is_none_or(|(made, after)| made <= after)
            {
                item_keys.push(key);
            }
        }
        (&t.threads, &t.index, &t.items)
            .transaction(|(threads, index, items)| {
                // An unreadable record goes all the same (its index
                // entries, unknown, point at nothing and are skipped).
                if let Some(raw) = threads.remove(contact.as_bytes())? {
                    let thread = serde_json::from_slice::<Thread>(&raw);
                    for key in thread.iter().flat_map(index_keys) {
                        index.remove(key)?;
                    }
                }
                for key in &item_keys {
                    items.remove(key)?;
                }
                Ok(item_keys.len())
            })
            .map_err(unwrap_tx)
    }

    /// A contact's thread record, if one was made.
    pub fn thread_record(&self, contact: &str) -> Result<Option<Thread>> {
        match self.conv().threads.get(contact.as_bytes())? {
            Some(raw) => Ok(Some(from_json(contact.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// A contact's thread: its record, or for a contact with messages and no
    /// record yet a default one (open if the last message came from them,
    /// else waiting on them). None: no such contact.
    pub fn thread_or_default(&self, contact: &str) -> Result<Option<Thread>> {
        if let Some(thread) = self.thread_record(contact)? {
            return Ok(Some(thread));
        }
        Ok(self.thread_summary(contact)?.map(|s| {
            let state = match s.last_direction {
                super::Direction::Inbound => ThreadState::Open,
                super::Direction::Outbound => ThreadState::WaitingOnCustomer,
            };
            Thread::new(contact, state, s.last_at)
        }))
    }

    /// Apply `changes` to `contact`'s thread in one transaction with their
    /// timeline items and `thread.*` events; durable when it returns. A
    /// thread made by it starts in `initial`. `author` signs the items.
    pub async fn change_thread(
        &self,
        contact: &str,
        initial: ThreadState,
        changes: &[ThreadChange],
        author: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<ThreadChanged> {
        self.change_thread_then(contact, initial, changes, author, at, None)
            .await
    }

    /// [`Store::change_thread`], moving the engine's cursor past event
    /// sequence `processed` in the same transaction (so a change and the
    /// event that caused it are done together or not at all).
    pub async fn change_thread_then(
        &self,
        contact: &str,
        initial: ThreadState,
        changes: &[ThreadChange],
        author: Option<&str>,
        at: DateTime<Utc>,
        processed: Option<u64>,
    ) -> Result<ThreadChanged> {
        let t = self.conv();
        // Item ids are made before the transaction, which may run more than
        // once: a retry must not skip ids (their order is the timeline's).
        let ids: Vec<String> = changes.iter().map(|_| item_id(self, contact, at)).collect();
        let changed = (&t.threads, &t.items, &t.index, &self.inner.events)
            .transaction(|(threads, items, index, events)| {
                let tx = Tx {
                    threads,
                    items,
                    index,
                    events,
                };
                let changed = tx.change(self, contact, initial, changes, author, at, &ids)?;
                if let Some(seq) = processed {
                    index.insert(CURSOR, &seq.saturating_add(1).to_be_bytes())?;
                }
                Ok(changed)
            })
            .map_err(unwrap_tx)?;
        let ticket = self.inner.commit.ticket();
        super::Durability {
            store: self.clone(),
            ticket: Some(ticket),
            events: changed.events.clone(),
        }
        .wait()
        .await?;
        if processed.is_some() {
            self.inner.engine_moved.send_replace(());
        }
        Ok(changed)
    }

    /// Apply another gateway's record of a thread (the fleet's events
    /// stream) when it is newer than this gateway's: the record and its
    /// places in the inboxes, without events or timers (the SLA, snooze
    /// and flow timers run where the thread's conversation happens, so a
    /// breach is reported once for the fleet); and the timeline `items`
    /// that change made (notes, activities: kept whatever the record's
    /// age, each once). Whether anything changed.
    pub fn apply_remote_thread(&self, remote: &Thread, items: &[TimelineItem]) -> Result<bool> {
        let t = self.conv();
        let contact = remote.contact.clone();
        // Of a contact erased since: a thread begun before the erasure is
        // not brought back, even one changed after it at a gateway that had
        // not heard of it yet (a record of before `started_at` was kept
        // counts as begun before).
        if let Some(erased) = self.erased_at(&contact)? {
            if remote.started_at.is_none_or(|started| started <= erased) {
                return Ok(false);
            }
        }
        let record = serde_json::to_vec(remote).map_err(|e| StoreError::Corrupt {
            key: contact.clone(),
            reason: e.to_string(),
        })?;
        let listed = |thread: &Thread| -> Vec<Vec<u8>> {
            index_keys(thread)
                .into_iter()
                .filter(|k| matches!(k.first(), Some(&INBOX | &TEAM | &ASSIGNEE)))
                .collect()
        };
        let items: Vec<(Vec<u8>, Vec<u8>)> = items
            .iter()
            .map(|item| {
                let raw = serde_json::to_vec(item).map_err(|e| StoreError::Corrupt {
                    key: item.id.clone(),
                    reason: e.to_string(),
                })?;
                Ok((item_key(&contact, item), raw))
            })
            .collect::<Result<_>>()?;
        (&t.threads, &t.index, &t.items)
            .transaction(|(threads, index, timeline)| {
                let mut added = false;
                for (key, raw) in &items {
                    if timeline.get(key.as_slice())?.is_none() {
                        timeline.insert(key.as_slice(), raw.as_slice())?;
                        added = true;
                    }
                }
                let old = match threads.get(contact.as_bytes())? {
                    Some(raw) => Some(from_json_tx::<Thread>(contact.as_bytes(), &raw)?),
                    None => None,
                };
                if old
                    .as_ref()
                    .is_some_and(|o| o.updated_at >= remote.updated_at)
                {
                    return Ok(added);
                }
                let old_keys = old.as_ref().map(index_keys).unwrap_or_default();
                let new_keys = listed(remote);
                for k in old_keys.iter().filter(|k| !new_keys.contains(k)) {
                    index.remove(k.as_slice())?;
                }
                for k in new_keys.iter().filter(|k| !old_keys.contains(k)) {
                    index.insert(k.as_slice(), contact.as_bytes())?;
                }
                threads.insert(contact.as_bytes(), record.as_slice())?;
                Ok(true)
            })
            .map_err(unwrap_tx)
    }

    /// The engine's cursor: the sequence of the next event to read.
    pub fn engine_cursor(&self) -> Result<u64> {
        match self.conv().index.get(CURSOR)? {
            Some(raw) => <[u8; 8]>::try_from(raw.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt("conv_index/C", "not 8 octets")),
            None => Ok(0),
        }
    }

    /// Start the engine's cursor at the end of the event log if it has none
    /// (a store from before the engine: its history is not acted on again);
    /// the cursor.
    pub fn init_engine_cursor(&self) -> Result<u64> {
        if self.conv().index.get(CURSOR)?.is_none() {
            let end = match self.inner.events.last()? {
                Some((key, _)) => <[u8; 8]>::try_from(key.as_ref())
                    .map(|k| u64::from_be_bytes(k).saturating_add(1))
                    .map_err(|_| corrupt("events", "key is not 8 octets"))?,
                None => 0,
            };
            self.conv().index.insert(CURSOR, &end.to_be_bytes())?;
        }
        self.engine_cursor()
    }

    /// The engine's cursor if it has one (None: no engine has run on this
    /// store): event pruning keeps what the engine has not read.
    pub(crate) fn engine_cursor_if_set(&self) -> Result<Option<u64>> {
        match self.conv().index.get(CURSOR)? {
            Some(_) => self.engine_cursor().map(Some),
            None => Ok(None),
        }
    }

    /// Move the engine's cursor past `processed` (events that needed
    /// nothing). Not flushed on its own: reading such events again after a
    /// crash changes nothing, and a flush per batch would cost a disk sync
    /// for every batch of the engine's own `thread.*` events.
    pub fn advance_engine_cursor(&self, processed: u64) -> Result<()> {
        self.conv()
            .index
            .insert(CURSOR, &processed.saturating_add(1).to_be_bytes())?;
        self.inner.engine_moved.send_replace(());
        Ok(())
    }

    /// Wait, at most `limit`, until the conversation engine has read past
    /// the event `event_id` (its thread changes for it are written); true
    /// once it has, or when no engine has ever run on this store (or the id
    /// is not an event's). What a page that refreshes on `message.received`
    /// waits for, so that it shows the thread the engine opens for it.
    pub async fn wait_for_engine(&self, event_id: &str, limit: std::time::Duration) -> bool {
        let Some(seq) = super::deliveries::event_seq(event_id) else {
            return true;
        };
        // Subscribe before the first look, so no move slips between them.
        let mut moved = self.inner.engine_moved.subscribe();
        let past = || match self.engine_cursor_if_set() {
            Ok(Some(cursor)) => cursor > seq,
            // No engine (or the store cannot say): nothing to wait for.
            Ok(None) | Err(_) => true,
        };
        if past() {
            return true;
        }
        tokio::time::timeout(limit, async {
            loop {
                if moved.changed().await.is_err() || past() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && past()
    }

    /// Up to `limit` events from sequence `from` on, oldest first.
    pub fn events_from(&self, from: u64, limit: usize) -> Result<Vec<Sequenced>> {
        self.inner
            .events
            .range(from.to_be_bytes()..)
            .take(limit)
            .map(|entry| {
                let (key, raw) = entry?;
                let seq = <[u8; 8]>::try_from(key.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| corrupt("events", "key is not 8 octets"))?;
                Ok((seq, from_json(&key, &raw)?))
            })
            .collect()
    }

    /// Threads whose SLA is due at or before `now` and not yet breached.
    pub fn sla_due_by(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>> {
        self.timers_by(SLA_DUE, now, limit)
    }

    /// Snoozed threads whose time has come by `now`.
    pub fn snoozes_due_by(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>> {
        self.timers_by(SNOOZE, now, limit)
    }

    /// Threads whose flow has expired by `now`.
    pub fn flows_expired_by(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>> {
        self.timers_by(FLOW_EXPIRY, now, limit)
    }

    fn timers_by(&self, kind: u8, now: DateTime<Utc>, limit: usize) -> Result<Vec<String>> {
        let end = timer_key(kind, now + chrono::Duration::microseconds(1), "");
        self.conv()
            .index
            .range(vec![kind]..end)
            .take(limit)
            .map(|entry| {
                let (_, contact) = entry?;
                Ok(String::from_utf8_lossy(&contact).into_owned())
            })
            .collect()
    }

    /// A thread's timeline, newest `limit` entries returned oldest first:
    /// its messages (live and archived), notes and activities, in causal
    /// order; `before` (a `next_cursor`) pages towards older ones.
    pub fn timeline(
        &self,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Entry>> {
        self.consistent(|| self.timeline_page(contact, before, limit))
    }

    fn timeline_page(
        &self,
        contact: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<Entry>> {
        let prefix = keys::thread_prefix(contact);
        let before = match before {
            Some(c) => {
                let key = key_of(c)?;
                if !key.starts_with(&prefix) || key.len() < prefix.len() + 8 {
                    return Err(StoreError::InvalidCursor);
                }
                Some(key)
            }
            None => None,
        };
        let mut end = prefix.clone();
        end.push(0xFF);
        let item_end = before.clone().unwrap_or(end);
        let mut items = self
            .conv()
            .items
            .range(prefix.clone()..item_end)
            .rev()
            .map(|entry| -> Result<(Vec<u8>, Entry)> {
                let (key, raw) = entry?;
                Ok((key.to_vec(), Entry::Item(from_json(&key, &raw)?)))
            })
            .peekable();
        let mut messages = self
            .thread_rev(contact, before)?
            .map(|entry| entry.map(|(k, m)| (k, Entry::Message(Box::new(m)))))
            .peekable();
        let mut out: Vec<(Vec<u8>, Entry)> = Vec::with_capacity(limit);
        let mut more = false;
        loop {
            // Newest first: take whichever head sorts later.
            let take_item = match (items.peek(), messages.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
                (Some(Ok((ik, _))), Some(Ok((mk, _)))) => ik > mk,
            };
            if out.len() == limit {
                more = true;
                break;
            }
            let next = if take_item {
                items.next()
            } else {
                messages.next()
            };
            if let Some(entry) = next {
                out.push(entry?);
            }
        }
        let next_cursor = if more {
            out.last().map(|(k, _)| cursor_of(k))
        } else {
            None
        };
        Ok(Page {
            items: out.into_iter().rev().map(|(_, e)| e).collect(),
            next_cursor,
        })
    }

    /// The inbox: threads in `filter.state` (default: open, and snoozed ones
    /// whose time has come by `now`), urgent first, then oldest wait.
    /// `cursor` is a `next_cursor`.
    pub fn inbox(
        &self,
        filter: &InboxFilter,
        now: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Thread>> {
        let after = match cursor {
            Some(c) => Some(key_of(c)?),
            None => None,
        };
        let state = filter.state.unwrap_or(ThreadState::Open);
        let scope = match (&filter.assignee, &filter.team) {
            (Some(person), _) => Some((ASSIGNEE, person.as_str())),
            (None, Some(team)) => Some((TEAM, team.as_str())),
            (None, None) => None,
        };
        let prefix = inbox_prefix(scope, state);
        let mut start = prefix.clone();
        let mut end = prefix.clone();
        match filter.priority {
            Some(p) => {
                start.push(priority_byte(p));
                end.push(priority_byte(p) + 1);
            }
            None => end.push(0xFF),
        }
        if let Some(after) = &after {
            let mut from = prefix.clone();
            from.extend_from_slice(after);
            from.push(0);
            start = start.max(from);
        }
        let fits = |t: &Thread| {
            filter
                .team
                .as_ref()
                .is_none_or(|team| t.team.as_ref() == Some(team))
                && filter
                    .assignee
                    .as_ref()
                    .is_none_or(|p| t.assignee.as_ref() == Some(p))
                && filter.priority.is_none_or(|p| t.priority == p)
        };
        // Snoozed threads whose time has come (the timer wakes them within
        // a tick; until then they are listed as if open).
        let mut woken: Vec<(Vec<u8>, Thread)> = Vec::new();
        if filter.state.is_none() {
            for contact in self.snoozes_due_by(now, 1_000)? {
                if let Some(t) = self.thread_record(&contact)? {
                    let key = sort_key(&t);
                    if fits(&t) && after.as_ref().is_none_or(|a| key > *a) {
                        woken.push((key, t));
                    }
                }
            }
            woken.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut woken = woken.into_iter().peekable();
        let mut out: Vec<(Vec<u8>, Thread)> = Vec::with_capacity(limit);
        let mut more = false;
        let mut scanned = 0usize;
        let mut listed = self.conv().index.range(start..end).peekable();
        loop {
            if out.len() == limit {
                more = listed.peek().is_some() || woken.peek().is_some();
                break;
            }
            let next_listed = match listed.peek() {
                Some(Ok((k, _))) => Some(k.get(prefix.len()..).unwrap_or(&[]).to_vec()),
                Some(Err(_)) => Some(Vec::new()),
                None => None,
            };
            let take_woken = match (&next_listed, woken.peek()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(l), Some((w, _))) => w < l,
            };
            if take_woken {
                if let Some(entry) = woken.next() {
                    out.push(entry);
                }
                continue;
            }
            let Some(entry) = listed.next() else {
                break;
            };
            let (key, contact) = entry?;
            scanned += 1;
            let sort = key.get(prefix.len()..).unwrap_or(&[]).to_vec();
            let contact = String::from_utf8_lossy(&contact).into_owned();
            if let Some(t) = self.thread_record(&contact)? {
                if fits(&t) {
                    out.push((sort, t));
                }
            }
            if scanned >= super::query::LIST_SCAN_BUDGET && out.len() < limit {
                // A filter that matches little: a short page and a cursor.
                return Ok(Page {
                    next_cursor: Some(cursor_of(&sort_key_of(&key, prefix.len()))),
                    items: out.into_iter().map(|(_, t)| t).collect(),
                });
            }
        }
        let next_cursor = if more {
            out.last().map(|(k, _)| cursor_of(k))
        } else {
            None
        };
        Ok(Page {
            items: out.into_iter().map(|(_, t)| t).collect(),
            next_cursor,
        })
    }
}

fn sort_key_of(key: &[u8], prefix: usize) -> Vec<u8> {
    key.get(prefix..).unwrap_or(&[]).to_vec()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::TempStore;
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
    }

    fn inbound(id: &str, due: Option<DateTime<Utc>>) -> ThreadChange {
        ThreadChange::Inbound {
            message_id: id.into(),
            reopen: true,
            sla_due: due,
        }
    }

    #[tokio::test]
    async fn inbound_opens_reply_waits_and_the_inbox_follows() {
        let s = TempStore::new();
        let store = &s.store;
        let c = "+15550001001";
        let at = t0();
        let changed = store
            .change_thread(c, ThreadState::Open, &[inbound("m1", None)], None, at)
            .await
            .unwrap();
        assert_eq!(changed.thread.state, ThreadState::Open);
        assert_eq!(changed.thread.waiting_since, Some(at));
        let page = store.inbox(&InboxFilter::default(), at, None, 10).unwrap();
        assert_eq!(page.items.len(), 1);
        let later = at + chrono::Duration::minutes(1);
        let changed = store
            .change_thread(
                c,
                ThreadState::Open,
                &[ThreadChange::Replied {
                    message_id: "m2".into(),
                    by_person: true,
                }],
                Some("ana"),
                later,
            )
            .await
            .unwrap();
        assert_eq!(changed.thread.state, ThreadState::WaitingOnCustomer);
        assert_eq!(changed.thread.waiting_since, None);
        assert_eq!(changed.events.len(), 1);
        assert_eq!(changed.events[0].kind, "thread.state_changed");
        assert_eq!(changed.events[0].data["contact"], c);
        assert_eq!(
            changed.events[0].data["change"]["to"],
            "waiting_on_customer"
        );
        assert!(store
            .inbox(&InboxFilter::default(), later, None, 10)
            .unwrap()
            .items
            .is_empty());
        let waiting = InboxFilter {
            state: Some(ThreadState::WaitingOnCustomer),
            ..InboxFilter::default()
        };
        assert_eq!(
            store.inbox(&waiting, later, None, 10).unwrap().items.len(),
            1
        );
    }

    /// An erased contact's conversation goes with it: the record, its
    /// places in the inbox orders (the team's, the assignee's, the SLA
    /// timer's) and its notes; another contact's stays.
    #[tokio::test]
    async fn erasing_a_contact_erases_its_conversation() {
        let s = TempStore::new();
        let store = &s.store;
        let at = t0();
        let (erased, kept) = ("+15550001091", "+15550001092");
        for c in [erased, kept] {
            let due = Some(at + chrono::Duration::minutes(5));
            let changes = [
                inbound("m1", due),
                ThreadChange::Assign {
                    team: Some("billing".into()),
                    assignee: Some("ana".into()),
                },
                ThreadChange::Note(format!("{c} asked about the invoice")),
            ];
            store
                .change_thread(c, ThreadState::Open, &changes, Some("ana"), at)
                .await
                .unwrap();
        }
        let listed = |filter: &InboxFilter| -> Vec<String> {
            let page = store.inbox(filter, at, None, 10).unwrap();
            page.items.into_iter().map(|t| t.contact).collect()
        };
        let by_team = InboxFilter {
            team: Some("billing".into()),
            ..InboxFilter::default()
        };
        let by_person = InboxFilter {
            assignee: Some("ana".into()),
            ..InboxFilter::default()
        };
        assert_eq!(listed(&by_team).len(), 2);
        let sla_due = at + chrono::Duration::minutes(6);
        assert_eq!(store.sla_due_by(sla_due, 10).unwrap().len(), 2);
        let timeline = |c: &str| store.timeline(c, None, 10).unwrap().items;
        assert!(!timeline(erased).is_empty());
        let kept_timeline = timeline(kept).len();

        store.erase_contact(erased).await.unwrap();
        assert!(store.thread_record(erased).unwrap().is_none());
        assert!(store.thread_or_default(erased).unwrap().is_none());
        for filter in [&InboxFilter::default(), &by_team, &by_person] {
            assert_eq!(listed(filter), vec![kept.to_string()]);
        }
        assert_eq!(
            store.sla_due_by(sla_due, 10).unwrap(),
            vec![kept.to_string()]
        );
        assert!(timeline(erased).is_empty());
        assert_eq!(timeline(kept).len(), kept_timeline);
    }

    #[tokio::test]
    async fn automation_does_not_stop_a_persons_clock_and_a_persons_answer_does() {
        let s = TempStore::new();
        let store = &s.store;
        let c = "+15550001002";
        let at = |secs: i64| t0() + chrono::Duration::seconds(secs);
        let answer = |id: &str, by_person: bool| ThreadChange::Replied {
            message_id: id.into(),
            by_person,
        };
        let change = |changes: Vec<ThreadChange>, author: &'static str, when: i64| async move {
            store
                .change_thread(c, ThreadState::Open, &changes, Some(author), at(when))
                .await
                .unwrap()
        };
        let first = change(vec![inbound("m1", None)], "automation", 0).await;
        assert_eq!(first.thread.person_waiting_since, Some(at(0)));
        // Automation answers: the wait ends, the person's goes on.
        let auto = change(vec![answer("r1", false)], "automation", 1).await;
        assert_eq!(auto.thread.state, ThreadState::WaitingOnCustomer);
        assert_eq!(auto.thread.waiting_since, None);
        assert_eq!(auto.thread.person_waiting_since, Some(at(0)));
        assert_eq!(auto.events.len(), 1);
        let detail = &auto.events[0].data["change"];
        assert_eq!(detail["waited_from"], serde_json::json!(at(0)));
        assert_eq!(detail["by_person"], false);
        assert!(detail.get("person_waited_from").is_none(), "{detail}");
        // The contact writes again: a new wait, the person's still from t0.
        let again = change(vec![inbound("m2", None)], "automation", 60).await;
        assert_eq!(again.thread.waiting_since, Some(at(60)));
        assert_eq!(again.thread.person_waiting_since, Some(at(0)));
        change(vec![answer("r2", false)], "automation", 61).await;
        // A person answers a thread automation already answered: the state
        // stays, the person's first response is told once.
        let person = change(vec![answer("r3", true)], "ana", 600).await;
        assert_eq!(person.thread.state, ThreadState::WaitingOnCustomer);
        assert_eq!(person.thread.person_waiting_since, None);
        assert_eq!(person.events.len(), 1);
        assert_eq!(person.events[0].kind, "thread.responded");
        let detail = &person.events[0].data["change"];
        assert_eq!(detail["person_waited_from"], serde_json::json!(at(0)));
        assert_eq!(detail["waited_from"], serde_json::Value::Null);
        assert_eq!(person.events[0].data["author"], "ana");
        let twice = change(vec![answer("r4", true)], "ana", 601).await;
        assert!(twice.events.is_empty() && twice.items.is_empty());
        // After a person's answer, the next inbound starts both clocks; a
        // person's answer then ends both in one state change.
        change(vec![inbound("m3", None)], "automation", 700).await;
        let both = change(vec![answer("r5", true)], "bo", 760).await;
        assert_eq!(both.events[0].kind, "thread.state_changed");
        let detail = &both.events[0].data["change"];
        assert_eq!(detail["waited_from"], serde_json::json!(at(700)));
        assert_eq!(detail["person_waited_from"], serde_json::json!(at(700)));
        // Closing ends the person's wait unanswered.
        change(vec![inbound("m4", None)], "automation", 800).await;
        let closed = change(
            vec![ThreadChange::State {
                state: ThreadState::Closed,
                until: None,
            }],
            "ana",
            801,
        )
        .await;
        assert_eq!(closed.thread.person_waiting_since, None);
        assert_eq!(closed.thread.waiting_since, None);
    }

    #[tokio::test]
    async fn inbox_orders_urgent_first_then_oldest_wait_and_filters_by_index() {
        let s = TempStore::new();
        let store = &s.store;
        let at = t0();
        // Five threads: waits a minute apart; the youngest is urgent.
        for n in 0..5 {
            let c = format!("+1555000200{n}");
            let when = at + chrono::Duration::minutes(n);
            let mut changes = vec![inbound("m", None)];
            if n == 4 {
                changes.push(ThreadChange::Priority(Priority::Urgent));
            }
            if n % 2 == 0 {
                changes.push(ThreadChange::Route("billing".into()));
            }
            if n == 2 {
                changes.push(ThreadChange::AssignTo("ana".into()));
            }
            store
                .change_thread(&c, ThreadState::Open, &changes, None, when)
                .await
                .unwrap();
        }
        let now = at + chrono::Duration::hours(1);
        let order = |f: &InboxFilter| -> Vec<String> {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.inbox(f, now, cursor.as_deref(), 2).unwrap();
                out.extend(page.items.into_iter().map(|t| t.contact));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return out,
                }
            }
        };
        assert_eq!(
            order(&InboxFilter::default()),
            [
                "+15550002004",
                "+15550002000",
                "+15550002001",
                "+15550002002",
                "+15550002003"
            ]
        );
        let billing = InboxFilter {
            team: Some("billing".into()),
            ..InboxFilter::default()
        };
        assert_eq!(
            order(&billing),
            ["+15550002004", "+15550002000", "+15550002002"]
        );
        let ana = InboxFilter {
            assignee: Some("ana".into()),
            team: Some("billing".into()),
            ..InboxFilter::default()
        };
        assert_eq!(order(&ana), ["+15550002002"]);
        let urgent = InboxFilter {
            priority: Some(Priority::Urgent),
            ..InboxFilter::default()
        };
        assert_eq!(order(&urgent), ["+15550002004"]);
        let normal_billing = InboxFilter {
            priority: Some(Priority::Normal),
            team: Some("billing".into()),
            ..InboxFilter::default()
        };
        assert_eq!(order(&normal_billing), ["+15550002000", "+15550002002"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_waits_for_the_engine_only_when_one_runs_and_only_until_it_has_read() {
        let s = TempStore::new();
        let store = s.store.clone();
        let limit = std::time::Duration::from_secs(2);
        // No engine has ever run on this store: nothing to wait for.
        assert!(store.wait_for_engine("evt_0000000000000005", limit).await);
        // Not an event id: served, not held.
        assert!(store.wait_for_engine("nonsense", limit).await);
        store.init_engine_cursor().unwrap();
        store.advance_engine_cursor(3).unwrap();
        // Read past 3 (the cursor is 4): not held.
        assert!(store.wait_for_engine("evt_0000000000000003", limit).await);
        // Event 5 is not read yet: held until the limit (the paused clock
        // runs to it), then served late.
        assert!(!store.wait_for_engine("evt_0000000000000005", limit).await);
        // Held until the engine has read it.
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { store.wait_for_engine("evt_0000000000000005", limit).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        store.advance_engine_cursor(4).unwrap();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "4 is not 5");
        store.advance_engine_cursor(5).unwrap();
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn sla_breach_is_reported_once_per_wait_and_the_engine_cursor_moves_with_it() {
        let s = TempStore::new();
        let store = &s.store;
        let c = "+15550003001";
        let at = t0();
        let due = at + chrono::Duration::minutes(10);
        store
            .change_thread(c, ThreadState::Open, &[inbound("m1", Some(due))], None, at)
            .await
            .unwrap();
        assert!(store
            .sla_due_by(due - chrono::Duration::seconds(1), 10)
            .unwrap()
            .is_empty());
        assert_eq!(store.sla_due_by(due, 10).unwrap(), [c]);
        let changed = store
            .change_thread_then(
                c,
                ThreadState::Open,
                &[ThreadChange::SlaBreached],
                Some("automation"),
                due,
                Some(41),
            )
            .await
            .unwrap();
        assert_eq!(changed.events.len(), 1);
        assert_eq!(changed.events[0].kind, "thread.sla_breached");
        assert!(changed.thread.sla_breached);
        assert_eq!(store.engine_cursor().unwrap(), 42);
        assert!(store.sla_due_by(due, 10).unwrap().is_empty());
        let again = store
            .change_thread(
                c,
                ThreadState::Open,
                &[ThreadChange::SlaBreached],
                None,
                due,
            )
            .await
            .unwrap();
        assert!(again.events.is_empty(), "once per wait");
        // A second inbound in the same wait does not restart it.
        let later = due + chrono::Duration::minutes(1);
        let changed = store
            .change_thread(
                c,
                ThreadState::Open,
                &[inbound("m2", Some(later))],
                None,
                later,
            )
            .await
            .unwrap();
        assert_eq!(changed.thread.waiting_since, Some(at));
        assert!(changed.thread.sla_breached);
    }

    #[tokio::test]
    async fn timeline_merges_items_with_messages_in_causal_order_and_pages_back() {
        let s = TempStore::new();
        let store = &s.store;
        let c = "+15550004001";
        let at = t0();
        let draft = |body: &'static str| crate::compose::Draft {
            from: "",
            to: c,
            body,
            status_report: false,
            send_at: None,
            max_parts: 10,
        };
        let m1 = crate::compose::outbound(store, draft("first"), at).unwrap();
        store.accept(m1, None).await.unwrap();
        store
            .change_thread(
                c,
                ThreadState::Open,
                &[ThreadChange::Note("a note".into())],
                Some("ana"),
                at,
            )
            .await
            .unwrap();
        let m2 = crate::compose::outbound(store, draft("second"), at).unwrap();
        store.accept(m2, None).await.unwrap();
        store
            .change_thread(
                c,
                ThreadState::Open,
                &[ThreadChange::State {
                    state: ThreadState::Closed,
                    until: None,
                }],
                Some("ana"),
                at,
            )
            .await
            .unwrap();
        let page = store.timeline(c, None, 10).unwrap();
        let kinds: Vec<String> = page
            .items
            .iter()
            .map(|e| match e {
                Entry::Message(m) => m.body.clone(),
                Entry::Item(i) => match &i.kind {
                    ItemKind::Note { text } => text.clone(),
                    ItemKind::Activity { activity, .. } => activity.clone(),
                },
            })
            .collect();
        assert_eq!(kinds, ["first", "a note", "second", "state_changed"]);
        let first = store.timeline(c, None, 3).unwrap();
        assert_eq!(first.items.len(), 3);
        let rest = store.timeline(c, first.next_cursor.as_deref(), 3).unwrap();
        assert_eq!(rest.items.len(), 1);
        assert!(matches!(&rest.items[0], Entry::Message(m) if m.body == "first"));
        assert_eq!(rest.next_cursor, None);
        assert!(matches!(
            store.timeline("+15550004002", first.next_cursor.as_deref(), 3),
            Err(StoreError::InvalidCursor)
        ));
    }

    #[tokio::test]
    async fn snoozed_threads_come_back_when_due() {
        let s = TempStore::new();
        let store = &s.store;
        let c = "+15550005001";
        let at = t0();
        let until = at + chrono::Duration::hours(2);
        store
            .change_thread(
                c,
                ThreadState::Open,
                &[
                    inbound("m1", None),
                    ThreadChange::State {
                        state: ThreadState::Snoozed,
                        until: Some(until),
                    },
                ],
                Some("ana"),
                at,
            )
            .await
            .unwrap();
        assert!(store
            .inbox(&InboxFilter::default(), at, None, 10)
            .unwrap()
            .items
            .is_empty());
        // Its time has come: listed before the timer wakes it.
        let listed = store
            .inbox(&InboxFilter::default(), until, None, 10)
            .unwrap();
        assert_eq!(listed.items.len(), 1);
        assert_eq!(store.snoozes_due_by(until, 10).unwrap(), [c]);
        let woken = store
            .change_thread(
                c,
                ThreadState::Open,
                &[ThreadChange::Wake { sla_due: None }],
                None,
                until,
            )
            .await
            .unwrap();
        assert_eq!(woken.thread.state, ThreadState::Open);
        assert_eq!(woken.thread.snoozed_until, None);
        assert!(store.snoozes_due_by(until, 10).unwrap().is_empty());
        assert_eq!(
            store
                .inbox(&InboxFilter::default(), until, None, 10)
                .unwrap()
                .items
                .len(),
            1
        );
    }
}
