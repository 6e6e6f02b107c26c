//! `/v1/threads`: conversations by contact, most recent first; one contact's
//! thread as a team inbox sees it (its state, team, assignee, flow, wait and
//! SLA) with its timeline (messages, notes, activities) oldest first and
//! pages back in time; notes, replies, assignment, state and outcomes; read
//! marks.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::json::ApiJson;
use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::compose::{self, Draft};
use crate::conversation::{engine, ThreadState};
use crate::store::{Category, Message, Store, ThreadChange};
use crate::wire::{self, Page, ReadMark};

/// The contact in a path: a number (normalised to E.164), or a sender as
/// the store keeps it (an alphanumeric sender such as `InfoSMS`, a short
/// code): the first of these with a thread. Neither form with a thread is a
/// 404; a value that can be neither is `invalid_number`.
fn contact_of(
    path: Result<Path<String>, PathRejection>,
    state: &ApiState,
) -> Result<String, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::not_found("no such thread"))?;
    let number = params::contact(&raw, &state.sms.default_country);
    let sender = params::sender(&raw).map(str::to_string);
    let candidates: Vec<String> = number.clone().ok().into_iter().chain(sender).collect();
    for contact in &candidates {
        if state.store.thread_summary(contact)?.is_some()
            || state.store.thread_record(contact)?.is_some()
        {
            return Ok(contact.clone());
        }
    }
    match (candidates.first(), number) {
        (Some(contact), _) => Err(ApiError::not_found(format!("no thread with {contact}"))),
        (None, Err(e)) => Err(ApiError::unprocessable(
            "invalid_number",
            format!(
                "contact: {e} (percent-encode the +, as %2B), or a sender name of 1 to 11 GSM characters"
            ),
        )),
        (None, Ok(_)) => Err(ApiError::not_found("no such thread")),
    }
}

fn paging_of(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<params::Paging, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    params::paging(&pairs)
}

/// `GET /v1/threads`.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<wire::ThreadSummary>>, ApiError> {
    let paging = paging_of(query)?;
    Ok(Json(wire::page(
        state
            .store
            .threads(paging.cursor.as_deref(), paging.limit)?,
    )))
}

/// `GET /v1/threads/{contact}`: the thread (a default one for a contact
/// with messages and no thread record yet) and the last `limit` entries of
/// its timeline, oldest first; `next_cursor` pages towards older ones.
pub async fn timeline(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<wire::ThreadView>, ApiError> {
    let contact = contact_of(path, &state)?;
    let paging = paging_of(query)?;
    let thread = state
        .store
        .thread_or_default(&contact)?
        .ok_or_else(|| ApiError::not_found(format!("no thread with {contact}")))?;
    let page = state
        .store
        .timeline(&contact, paging.cursor.as_deref(), paging.limit)?;
    Ok(Json(wire::ThreadView {
        thread: wire::Thread::from(&thread),
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The longest note, author or outcome value (a note is not an SMS; this
/// keeps a timeline page bounded).
const NOTE_MAX_CHARS: usize = 4_000;
const NAME_MAX_CHARS: usize = 100;

/// An author, team or person: 1 to 100 characters, no control characters
/// (a NUL would split the inbox index keys).
fn name(field: &'static str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty()
        || value.chars().count() > NAME_MAX_CHARS
        || value.chars().any(char::is_control)
    {
        return Err(ApiError::unprocessable(
            "invalid_request",
            format!("{field} must be 1 to {NAME_MAX_CHARS} characters, no control characters"),
        ));
    }
    Ok(value.to_string())
}

fn optional_name(field: &'static str, value: Option<&str>) -> Result<Option<String>, ApiError> {
    value.map(|v| name(field, v)).transpose()
}

/// Apply changes made through the API, signed by `author`; the thread as
/// it is afterwards.
async fn change(
    store: &Store,
    contact: &str,
    changes: &[ThreadChange],
    author: Option<&str>,
    now: DateTime<Utc>,
) -> Result<crate::store::ThreadChanged, ApiError> {
    let initial = match store.thread_or_default(contact)? {
        Some(t) => t.state,
        None => ThreadState::WaitingOnCustomer,
    };
    let changed = store
        .change_thread(contact, initial, changes, author, now)
        .await?;
    engine::on_applied(store, &changed);
    Ok(changed)
}

/// `POST /v1/threads/{contact}/notes`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Who wrote it (the web inbox fills in the signed-in person).
    #[schema(example = "ana")]
    pub author: String,
    /// Never sent to the contact.
    #[schema(example = "Called back, will confirm tomorrow.")]
    pub text: String,
}

/// `POST /v1/threads/{contact}/notes`: 201 with the note; never sent.
pub async fn add_note(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<NoteRequest>,
) -> Result<Response, ApiError> {
    let contact = contact_of(path, &state)?;
    let author = name("author", &request.author)?;
    let text = request.text.trim();
    if text.is_empty() || text.chars().count() > NOTE_MAX_CHARS {
        return Err(ApiError::unprocessable(
            "invalid_request",
            format!("text must be 1 to {NOTE_MAX_CHARS} characters"),
        ));
    }
    let changed = change(
        &state.store,
        &contact,
        &[ThreadChange::Note(text.to_string())],
        Some(&author),
        Utc::now(),
    )
    .await?;
    let item = changed
        .items
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::internal("a note made no timeline item"))?;
    let item = wire::TimelineItem::from(crate::store::TimelineEntry::Item(item));
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

/// `POST /v1/threads/{contact}/reply`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The text, sent as a `conversational` message.
    #[schema(example = "We can do Thursday at 3pm.")]
    pub body: String,
    /// Who wrote it (stored on the message).
    #[schema(example = "ana")]
    pub author: String,
}

/// `POST /v1/threads/{contact}/reply`: a `conversational` message through
/// `POST /v1/messages`' admission (409 `recipient_opted_out`, quiet hours
/// and limits defer), signed by the person; it stops the wait and the SLA
/// clock (the engine applies it from the message's `message.accepted`). An
/// `Idempotency-Key` header works as there.
pub async fn reply(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<ReplyRequest>,
) -> Result<Response, ApiError> {
    let contact = contact_of(path, &state)?;
    let author = name("author", &request.author)?;
    let key =
        super::messages::idempotency_key(headers.get("idempotency-key"), &(&contact, &request))?;
    let now = Utc::now();
    let mut message = compose::outbound(
        &state.store,
        Draft {
            from: "",
            to: &contact,
            body: &request.body,
            status_report: state.sms.status_reports,
            send_at: None,
            max_parts: state.sms.max_parts,
        },
        now,
    )
    .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    message.validity = state.sms.validity;
    message.category = Category::Conversational;
    message.author = Some(author.clone());
    message.idempotency_key = key.as_ref().map(|k| k.key.clone());
    // Accepted, it is announced (`message.accepted`): the conversation
    // engine ends the wait, in order after the inbound it answers.
    let (message, _) =
        super::messages::admit_and_accept(&state, message, "", key, now, |_| Ok(())).await?;
    Ok((StatusCode::ACCEPTED, Json(wire::Message::from(&message))).into_response())
}

/// `PUT /v1/threads/{contact}/assignment`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRequest {
    /// A team id; null (or absent) unassigns the team.
    #[serde(default)]
    #[schema(example = "support")]
    pub team: Option<String>,
    /// A person; null (or absent) unassigns the person.
    #[serde(default)]
    #[schema(example = "ana")]
    pub assignee: Option<String>,
    /// Who made the change (default: the API).
    #[serde(default)]
    #[schema(nullable = false)]
    pub author: Option<String>,
}

/// `PUT /v1/threads/{contact}/assignment`: the thread.
pub async fn assign(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<AssignmentRequest>,
) -> Result<Json<wire::Thread>, ApiError> {
    let contact = contact_of(path, &state)?;
    let change_to = ThreadChange::Assign {
        team: optional_name("team", request.team.as_deref())?,
        assignee: optional_name("assignee", request.assignee.as_deref())?,
    };
    let author = optional_name("author", request.author.as_deref())?;
    let changed = change(
        &state.store,
        &contact,
        &[change_to],
        author.as_deref(),
        Utc::now(),
    )
    .await?;
    Ok(Json(wire::Thread::from(&changed.thread)))
}

/// `PUT /v1/threads/{contact}/state`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateRequest {
    /// `open`, `waiting_on_customer`, `snoozed` (needs `until`) or `closed`.
    #[schema(example = "snoozed")]
    pub state: String,
    /// Snoozed: when it opens again (RFC 3339, in the future).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, nullable = false)]
    pub until: Option<String>,
    /// Who made the change (default: the API).
    #[serde(default)]
    #[schema(nullable = false)]
    pub author: Option<String>,
}

/// `PUT /v1/threads/{contact}/state`: the thread.
pub async fn set_state(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<StateRequest>,
) -> Result<Json<wire::Thread>, ApiError> {
    let contact = contact_of(path, &state)?;
    let now = Utc::now();
    let wanted = ThreadState::parse(&request.state).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_state",
            "state must be open, waiting_on_customer, snoozed or closed",
        )
    })?;
    let until = match (&request.until, wanted) {
        (None, ThreadState::Snoozed) => {
            return Err(ApiError::unprocessable(
                "invalid_until",
                "snoozed needs until, a time in the future",
            ))
        }
        (None, _) => None,
        (Some(_), s) if s != ThreadState::Snoozed => {
            return Err(ApiError::unprocessable(
                "invalid_until",
                "until is only for snoozed",
            ))
        }
        (Some(text), _) => {
            let at = params::time(text).ok_or_else(|| {
                ApiError::unprocessable("invalid_until", "until must be an RFC 3339 time")
            })?;
            if at <= now {
                return Err(ApiError::unprocessable(
                    "invalid_until",
                    "until must be in the future",
                ));
            }
            Some(at)
        }
    };
    let author = optional_name("author", request.author.as_deref())?;
    let changed = change(
        &state.store,
        &contact,
        &[ThreadChange::State {
            state: wanted,
            until,
        }],
        author.as_deref(),
        now,
    )
    .await?;
    Ok(Json(wire::Thread::from(&changed.thread)))
}

/// `POST /v1/threads/{contact}/outcomes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    /// A shipped outcome (`appointment_confirmed`, `appointment_booked`,
    /// `lead_qualified`, `ticket_opened`, `payment_link_sent`,
    /// `payment_completed`, `rating_received`) or a custom name of letters,
    /// digits and `_`.
    #[schema(example = "payment_completed")]
    pub outcome: String,
    /// A value (a slot, a rating, an amount): a string or a number.
    #[serde(default)]
    #[schema(value_type = Option<String>, nullable = false)]
    pub value: Option<Value>,
    /// A note kept with it.
    #[serde(default)]
    #[schema(nullable = false)]
    pub note: Option<String>,
    /// Who recorded it (default: the API, e.g. the billing system).
    #[serde(default)]
    #[schema(nullable = false)]
    pub author: Option<String>,
}

/// `POST /v1/threads/{contact}/outcomes`: 201 with the thread. Linked to
/// the message that started the thread's flow, if any (and through it to a
/// campaign and variant); a `payment_completed` closes a payment flow.
pub async fn add_outcome(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<OutcomeRequest>,
) -> Result<Response, ApiError> {
    let contact = contact_of(path, &state)?;
    let outcome = request.outcome.trim();
    let custom = !outcome.is_empty()
        && outcome.len() <= NAME_MAX_CHARS
        && outcome
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !custom {
        return Err(ApiError::unprocessable(
            "invalid_outcome",
            "outcome must be a shipped outcome or a name of letters, digits and _",
        ));
    }
    let value = match request.value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "value must be a string or a number",
            ))
        }
    };
    let author = optional_name("author", request.author.as_deref())?;
    let thread = state.store.thread_or_default(&contact)?;
    let started_by = thread
        .as_ref()
        .and_then(|t| t.flow.as_ref())
        .and_then(|f| f.started_by.clone());
    let (campaign, variant) = match &started_by {
        Some(id) => state
            .store
            .get(id)?
            .map_or((None, None), |m| (m.campaign, m.variant)),
        None => (None, None),
    };
    let mut changes = vec![ThreadChange::Outcome {
        name: outcome.to_string(),
        value,
        note: request.note.filter(|n| !n.trim().is_empty()),
        message_id: started_by,
        campaign,
        variant,
    }];
    if let Some(thread) = &thread {
        changes.extend(engine::on_outcome(thread, outcome));
    }
    let changed = change(
        &state.store,
        &contact,
        &changes,
        author.as_deref(),
        Utc::now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(wire::Thread::from(&changed.thread)),
    )
        .into_response())
}

/// Put `message`'s contact's thread in the flow it was sent with (`POST
/// /v1/messages {flow, context}`), unless this message started it already
/// (a replay of the request).
pub(crate) async fn enter_flow(
    store: &Store,
    message: &Message,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(name) = &message.flow else {
        return Ok(());
    };
    let thread = store.thread_record(&message.contact)?;
    let started = thread
        .as_ref()
        .and_then(|t| t.flow.as_ref())
        .is_some_and(|f| f.started_by.as_deref() == Some(message.id.as_str()));
    if started {
        return Ok(());
    }
    let context = message.context.clone().unwrap_or(Value::Null);
    let Some(flow) = engine::start_flow(name, &context, Some(&message.id), now) else {
        return Ok(());
    };
    let initial = thread.map_or(ThreadState::WaitingOnCustomer, |t| t.state);
    let changed = store
        .change_thread(
            &message.contact,
            initial,
            &[ThreadChange::Flow(Some(flow))],
            Some(engine::AUTOMATION),
            now,
        )
        .await?;
    engine::on_applied(store, &changed);
    Ok(())
}

/// `POST /v1/threads/{contact}/read`.
pub async fn mark_read(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ReadMark>, ApiError> {
    let contact = contact_of(path, &state)?;
    let marked = state.store.mark_thread_read(&contact).await?;
    let unread = state
        .store
        .thread_summary(&contact)?
        .map_or(0, |summary| summary.unread);
    Ok(Json(ReadMark {
        contact,
        marked,
        unread,
    }))
}
