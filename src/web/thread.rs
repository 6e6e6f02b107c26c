//! A thread's page: its timeline (messages with their delivery state, notes
//! in their own style, outcomes and other activity), the contact (profile,
//! consent and its ledger), and what a person does: reply, add a note,
//! assign, snooze, close or reopen, record an outcome.
//!
//! Reading and every action call the `/v1` handlers themselves
//! (`threads::timeline`, `threads::reply`, `threads::add_note`, ...) with the
//! signed-in person as the author: a reply takes the one send path (consent,
//! quiet hours, rate limits, idempotency) exactly as `POST
//! /v1/threads/{contact}/reply` does. Each reply form carries a fresh
//! Idempotency-Key, so a form sent twice (a double click, a reload) sends
//! one text. A refusal is shown on the page in plain words with what was
//! typed kept.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::inbox::sla_words;
use super::pages::{self, Nav, Refused, Shell};
use super::session::Person;
use super::{escape, thread_url, WebState};
use crate::api::json::ApiJson;
use crate::api::threads::{
    self, AssignmentRequest, NoteRequest, OutcomeRequest, ReplyRequest, StateRequest,
};
use crate::api::{contacts, ApiError};
use crate::wire::{self, ConsentStatus, ConsentView, ContactView, ThreadView, TimelineItem};

/// Timeline entries a page shows (older ones a link away).
const TIMELINE_PAGE: usize = 100;

/// Snooze choices: (value for the project's duration parser, label).
const SNOOZES: [(&str, &str); 4] = [
    ("1h", "1 hour"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("1w", "1 week"),
];

/// Which form an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Reply,
    Note,
    Actions,
}

/// What a re-rendered page keeps: what was typed, and the error.
#[derive(Debug, Default)]
struct Draft {
    reply: String,
    note: String,
    error: Option<(Section, String)>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ThreadQuery {
    /// A timeline cursor: entries before it.
    #[serde(default)]
    before: Option<String>,
    /// A `[[web.template]]` to put in the reply box.
    #[serde(default)]
    template: Option<usize>,
}

fn raw_contact(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(c)| c)
        .map_err(|_| ApiError::not_found("no such thread"))
}

/// The templates for `contact`, filled from its profile: (name, text or
/// the placeholders it lacks).
fn templates(state: &WebState, contact: &str) -> Vec<(String, Result<String, String>)> {
    let profile = state.api.store.profile(contact).unwrap_or_default();
    state
        .settings
        .template
        .iter()
        .map(|t| {
            let filled =
                crate::conversation::template::render(&t.text, |key| profile.value(contact, key))
                    .map_err(|e| e.to_string());
            (t.name.clone(), filled)
        })
        .collect()
}

pub(super) fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M UTC"))
        }
    }
}

pub(super) fn words(snake: &str) -> String {
    snake.replace('_', " ")
}

fn state_name(state: &str) -> &str {
    match state {
        "open" => "Open",
        "waiting_on_customer" => "Waiting on customer",
        "snoozed" => "Snoozed",
        "closed" => "Closed",
        other => other,
    }
}

/// An activity in words: "assigned it to ana (team support)".
fn activity_words(activity: &str, detail: &Value) -> String {
    let text = |k: &str| detail.get(k).and_then(Value::as_str);
    match activity {
        "state_changed" => format!(
            "moved it from {} to {}",
            state_name(text("from").unwrap_or("?")),
            state_name(text("to").unwrap_or("?"))
        ),
        "assigned" => match (text("assignee"), text("team")) {
            (Some(who), Some(team)) => format!("assigned it to {who} (team {team})"),
            (Some(who), None) => format!("assigned it to {who}"),
            (None, Some(team)) => format!("assigned it to team {team}"),
            (None, None) => "unassigned it".into(),
        },
        "priority_changed" => match text("to") {
            Some(p) => format!("set the priority to {p}"),
            None => "changed the priority".into(),
        },
        "tagged" => format!("tagged it {}", text("tag").unwrap_or("")),
        "answered" => format!(
            "kept the answer {}: {}",
            text("key").unwrap_or("?"),
            text("value").unwrap_or("")
        ),
        "outcome" => {
            let name = text("outcome").or_else(|| text("name")).unwrap_or("?");
            match detail.get("value").filter(|v| !v.is_null()) {
                Some(Value::String(v)) => format!("recorded the outcome {} ({v})", words(name)),
                Some(v) => format!("recorded the outcome {} ({v})", words(name)),
                None => format!("recorded the outcome {}", words(name)),
            }
        }
        "sla_breached" => "the response time standard (SLA) was missed".into(),
        "flow_started" => format!(
            "started the {} flow ({})",
            text("flow").unwrap_or("?"),
            words(text("step").unwrap_or("?"))
        ),
        "flow_changed" => format!(
            "moved the {} flow to {}",
            text("flow").unwrap_or("?"),
            words(text("step").unwrap_or("?"))
        ),
        "flow_left" => match text("reason") {
            Some("expired") => {
                format!("ended the {} flow: it expired", text("flow").unwrap_or("?"))
            }
            _ => format!("ended the {} flow", text("flow").unwrap_or("?")),
        },
        other => {
            let mut out = words(other);
            if let Some(fields) = detail.as_object() {
                let shown: Vec<String> = fields
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{}: {v}", words(k))))
                    .collect();
                if !shown.is_empty() {
                    out.push_str(&format!(" ({})", shown.join(", ")));
                }
            }
            out
        }
    }
}

fn who(author: Option<&str>, fallback: &str) -> String {
    match author {
        Some("automation") => "Automation".into(),
        Some(a) => a.to_string(),
        None => fallback.to_string(),
    }
}

fn status_words(status: wire::MessageStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(words))
        .unwrap_or_default()
}

fn timeline(view: &ThreadView, contact_name: &str) -> Markup {
    html! {
        @if view.items.is_empty() {
            p.empty { "No messages yet." }
        }
        ol.timeline {
            @for item in &view.items {
                @match item {
                    TimelineItem::Message { message, at, author } => {
                        @let inbound = message.direction == wire::Direction::Inbound;
                        li.message.inbound[inbound].outbound[!inbound] {
                            p.meta {
                                @if inbound { span.from { (contact_name) } }
                                @else { span.from { (who(author.as_deref(), "The gateway or an app")) } }
                                " · " (time(*at))
                                @if !inbound {
                                    " · " span.status { (status_words(message.status)) }
                                    @if message.parts > 1 { " · " (message.parts) " parts" }
                                }
                                @if message.incomplete == Some(true) { " · incomplete: parts never arrived" }
                            }
                            p.body { (message.body) }
                            @if let Some(e) = &message.error {
                                p.error { (e.text) }
                            }
                        }
                    }
                    TimelineItem::Note { at, author, text, .. } => {
                        li.note {
                            p.meta { "Note by " (who(author.as_deref(), "someone")) " · " (time(*at)) }
                            p.body { (text) }
                        }
                    }
                    TimelineItem::Activity { at, author, activity, detail, .. } => {
                        li.activity {
                            p {
                                (who(author.as_deref(), "The gateway")) " " (activity_words(activity, detail))
                                " · " (time(*at))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn contact_panel(
    contact: &str,
    profile: Option<&ContactView>,
    consent: Option<&ConsentView>,
) -> Markup {
    html! {
        aside.contact aria-labelledby="contact-heading" {
            h2 #contact-heading { "Contact" }
            dl {
                dt { "Number" } dd { (contact) }
                @if let Some(p) = profile {
                    dt { "Name" } dd { (p.name.as_deref().unwrap_or("—")) }
                    dt { "External id" } dd { (p.external_id.as_deref().unwrap_or("—")) }
                    dt { "Tags" } dd { @if p.tags.is_empty() { "—" } @else { (p.tags.join(", ")) } }
                    dt { "Time zone" } dd { (p.time_zone.as_deref().unwrap_or("the gateway's")) }
                } @else {
                    dt { "Profile" } dd { "None (not a phone number)" }
                }
                @if let Some(c) = consent {
                    dt { "Consent" }
                    dd.consent { (consent_words(c.status)) }
                }
            }
            @if let Some(c) = consent {
                (consent_ledger(c))
            }
        }
    }
}

/// A contact's consent ledger, read only (the thread's panel and the
/// contact's page).
pub(super) fn consent_ledger(c: &ConsentView) -> Markup {
    html! {
        h3 { "Consent ledger" }
        @if c.ledger.is_empty() {
            p { "Nothing recorded." }
        } @else {
            ol.ledger {
                @for e in &c.ledger {
                    li {
                        (time(e.at)) " · " (words(&e.action)) " by " (e.source)
                        @if let Some(m) = &e.matched { " (“" (m) "”)" }
                        @if let Some(r) = &e.reason { " — " (r) }
                    }
                }
            }
        }
    }
}

pub(super) fn consent_words(status: ConsentStatus) -> &'static str {
    match status {
        ConsentStatus::Unknown => "Not recorded",
        ConsentStatus::OptedIn => "Opted in",
        ConsentStatus::OptedOut => "Opted out",
    }
}

fn form_error(draft: &Draft, section: Section) -> Markup {
    html! {
        @if let Some((s, text)) = &draft.error {
            @if *s == section {
                p.error role="alert" { (text) }
            }
        }
    }
}

/// The page, or the thread's error as a page.
async fn view(
    state: &WebState,
    person: &Person,
    raw: String,
    before: Option<&str>,
    draft: Draft,
    status: StatusCode,
) -> Response {
    // Before the read: what is written after it comes by the stream.
    let stream = super::inbox::stream_url(state);
    let mut pairs = vec![("limit".to_string(), TIMELINE_PAGE.to_string())];
    if let Some(cursor) = before {
        pairs.push(("cursor".into(), cursor.to_string()));
    }
    let view =
        match threads::timeline(State(state.api.clone()), Ok(Path(raw)), Ok(Query(pairs))).await {
            Ok(Json(view)) => view,
            Err(e) => return pages::api_error_page(person, &e),
        };
    let contact = view.thread.contact.clone();
    // An alphanumeric sender has no profile or consent: the API says 422.
    let profile = contacts::get_contact(State(state.api.clone()), Ok(Path(contact.clone())))
        .await
        .ok()
        .map(|Json(p)| p);
    let consent = contacts::get_consent(State(state.api.clone()), Ok(Path(contact.clone())))
        .await
        .ok()
        .map(|Json(c)| c);
    let opted_out = consent
        .as_ref()
        .is_some_and(|c| c.status == ConsentStatus::OptedOut);
    let name = profile
        .as_ref()
        .and_then(|p| p.name.clone())
        .unwrap_or_else(|| contact.clone());
    let title = if name == contact {
        contact.clone()
    } else {
        format!("{name} ({contact})")
    };
    let now = state.clock.now();
    let t = &view.thread;
    let base = thread_url(&contact);
    let csrf = person.csrf();
    let mut teams: Vec<(String, String)> = state
        .api
        .conversation
        .team
        .iter()
        .map(|team| (team.id.clone(), team.name.clone()))
        .collect();
    for extra in [t.team.as_ref(), person.team.as_ref()]
        .into_iter()
        .flatten()
    {
        if !teams.iter().any(|(id, _)| id == extra) {
            teams.push((extra.clone(), extra.clone()));
        }
    }
    let opt_out_entry = consent.as_ref().and_then(|c| {
        c.ledger
            .iter()
            .rev()
            .find(|e| e.status == ConsentStatus::OptedOut)
    });
    let body = html! {
        p.thread-state #thread-state {
            @if t.priority == wire::Priority::Urgent { span.badge.urgent { "Urgent" } " " }
            (state_name(&serde_json::to_value(t.state).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()))
            @if let Some(until) = t.snoozed_until { " until " (time(until)) }
            @if let Some(team) = &t.team { " · Team " (team) }
            @match &t.assignee { Some(a) => { " · Assigned to " (a) } None => { " · Not assigned" } }
            @if let Some(since) = t.waiting_since { " · Waiting " (pages::span((now - since).num_seconds())) }
            @if let Some((sla, late)) = sla_words(t.sla_due, t.sla_breached, now) {
                " · " span.sla.late[late] { (sla) }
            }
            @if let Some(flow) = &t.flow { " · Flow " (flow.name) " (" (words(&flow.step)) ")" }
        }
        @if opted_out {
            p.optout role="alert" {
                strong { (name) " has opted out." }
                @if let Some(e) = opt_out_entry {
                    " Since " (time(e.at))
                    @if let Some(m) = &e.matched { " (they texted “" (m) "”)" }
                    "."
                }
                " Texts to them are refused, so the reply box is off."
            }
        }
        div.thread-layout {
            div.conversation {
                section aria-labelledby="timeline-heading" {
                    h2 #timeline-heading { "Timeline" }
                    @if let Some(cursor) = &view.next_cursor {
                        p { a href={ (base) "?before=" (escape(cursor)) } { "Older entries" } }
                    }
                    div #timeline data-contact=(contact) data-stream=(stream) {
                        (timeline(&view, &name))
                    }
                }
                section.reply aria-labelledby="reply-heading" {
                    h2 #reply-heading .visually-hidden { "Reply" }
                    form method="post" action={ (base) "/reply" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="key" value=(crate::store::users::random_hex(16));
                        (form_error(&draft, Section::Reply))
                        label for="reply" { "Reply" }
                        textarea #reply name="body" rows="4" disabled[opted_out]
                            data-counter="counter" data-max-parts=(state.api.sms.max_parts)
                            aria-describedby="counter" { (draft.reply) }
                        output #counter for="reply" aria-live="polite" {}
                        @let filled = templates(state, &contact);
                        @if !filled.is_empty() && !opted_out {
                            details.templates {
                                summary { "Templates" }
                                ul {
                                    @for (i, (template_name, text)) in filled.iter().enumerate() {
                                        li {
                                            @match text {
                                                Ok(text) => {
                                                    a href={ (base) "?template=" (i) } data-insert=(text) { "Insert “" (template_name) "”" }
                                                }
                                                Err(missing) => {
                                                    span.unavailable { (template_name) ": " (missing) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        button type="submit" disabled[opted_out] { "Send" }
                    }
                }
                section.note-form aria-labelledby="note-heading" {
                    h2 #note-heading .visually-hidden { "Note" }
                    form method="post" action={ (base) "/note" } {
                        input type="hidden" name="csrf" value=(csrf);
                        (form_error(&draft, Section::Note))
                        label for="note" { "Note" }
                        textarea #note name="text" rows="2" aria-describedby="note-hint" { (draft.note) }
                        p #note-hint .hint { "Only people here see notes; they are never sent." }
                        button type="submit" { "Add note" }
                    }
                }
                section.actions aria-labelledby="actions-heading" {
                    h2 #actions-heading { "Actions" }
                    (form_error(&draft, Section::Actions))
                    div.action-row {
                        form method="post" action={ (base) "/assign" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="to" value="me";
                            button type="submit" { "Assign to me" }
                        }
                        @if t.state == wire::ThreadState::Closed {
                            form method="post" action={ (base) "/state" } {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="state" value="open";
                                button type="submit" { "Reopen" }
                            }
                        } @else {
                            form method="post" action={ (base) "/state" } {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="state" value="closed";
                                button type="submit" { "Close" }
                            }
                        }
                    }
                    // No teams configured and none on the thread: nothing
                    // to choose from, so no control that cannot work.
                    @if !teams.is_empty() {
                        form.action-row method="post" action={ (base) "/assign" } {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="to" value="team";
                            label for="team" { "Team" }
                            select #team name="team" {
                                @for (id, team_name) in &teams {
                                    option value=(id) selected[t.team.as_deref() == Some(id.as_str())] { (team_name) }
                                }
                            }
                            button type="submit" { "Assign to team" }
                        }
                    }
                    form.action-row method="post" action={ (base) "/state" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="state" value="snoozed";
                        label for="snooze" { "Snooze for" }
                        select #snooze name="for" {
                            @for (value, label) in SNOOZES { option value=(value) { (label) } }
                        }
                        button type="submit" { "Snooze" }
                    }
                    form.action-row method="post" action={ (base) "/outcome" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="outcome" { "Outcome" }
                        input #outcome type="text" name="outcome" list="outcomes" required;
                        datalist #outcomes {
                            @for o in crate::conversation::OUTCOMES { option value=(o) {} }
                        }
                        label for="outcome-value" { "Value" }
                        input #outcome-value type="text" name="value" aria-describedby="value-hint";
                        span #value-hint .hint { "optional: a slot, a rating, an amount" }
                        button type="submit" { "Set outcome" }
                    }
                }
            }
            (contact_panel(&contact, profile.as_ref(), consent.as_ref()))
        }
    };
    (
        status,
        Shell::signed_in(&title, person, Some(Nav::Inbox)).render(body),
    )
        .into_response()
}

/// `GET /threads/{contact}`.
pub async fn page(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ThreadQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let raw = match raw_contact(path) {
        Ok(raw) => raw,
        Err(e) => return pages::api_error_page(&person, &e),
    };
    let mut draft = Draft::default();
    if let Some(i) = query.template {
        if let Some((_, Ok(text))) = templates(&state, &raw).into_iter().nth(i) {
            draft.reply = text;
        }
    }
    view(
        &state,
        &person,
        raw,
        query.before.as_deref(),
        draft,
        StatusCode::OK,
    )
    .await
}

/// After an action: back to the thread (303), or the page again with the
/// refusal in plain words and what was typed.
async fn done(
    state: &WebState,
    person: &Person,
    raw: String,
    result: Result<(), ApiError>,
    mut draft: Draft,
    section: Section,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&thread_url(&raw)).into_response(),
        Err(e) if e.status == StatusCode::NOT_FOUND => pages::api_error_page(person, &e),
        Err(e) => {
            draft.error = Some((section, pages::plain(&e)));
            view(state, person, raw, None, draft, e.status).await
        }
    }
}

/// The common start of every action: the contact, the form, the CSRF token.
fn start<T>(
    person: &Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<T>, FormRejection>,
    csrf: impl Fn(&T) -> &str,
) -> Result<(String, T), Refused> {
    let raw = raw_contact(path).map_err(|e| Refused::from(pages::api_error_page(person, &e)))?;
    Ok((raw, pages::read_form(person, form, csrf)?))
}

#[derive(Debug, Deserialize)]
pub struct ReplyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    body: String,
}

/// `POST /threads/{contact}/reply`: `POST /v1/threads/{contact}/reply`
/// as the signed-in person, under the form's Idempotency-Key.
pub async fn reply(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<ReplyForm>, FormRejection>,
) -> Response {
    let (raw, form) = match start(&person, path, form, |f| &f.csrf) {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    let mut headers = HeaderMap::new();
    if let Ok(key) = HeaderValue::from_str(&format!("web:{}", form.key.trim())) {
        if !form.key.trim().is_empty() {
            headers.insert("idempotency-key", key);
        }
    }
    let request = ReplyRequest {
        body: form.body.clone(),
        author: person.name.clone(),
    };
    let result = threads::reply(
        State(state.api.clone()),
        headers,
        Ok(Path(raw.clone())),
        ApiJson(request),
    )
    .await
    .map(|_| ());
    let draft = Draft {
        reply: form.body,
        ..Draft::default()
    };
    done(&state, &person, raw, result, draft, Section::Reply).await
}

#[derive(Debug, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

/// `POST /threads/{contact}/note`.
pub async fn note(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<NoteForm>, FormRejection>,
) -> Response {
    let (raw, form) = match start(&person, path, form, |f| &f.csrf) {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    let request = NoteRequest {
        author: person.name.clone(),
        text: form.text.clone(),
    };
    let result = threads::add_note(
        State(state.api.clone()),
        Ok(Path(raw.clone())),
        ApiJson(request),
    )
    .await
    .map(|_| ());
    let draft = Draft {
        note: form.text,
        ..Draft::default()
    };
    done(&state, &person, raw, result, draft, Section::Note).await
}

#[derive(Debug, Deserialize)]
pub struct AssignForm {
    #[serde(default)]
    csrf: String,
    /// `me` or `team`.
    #[serde(default)]
    to: String,
    #[serde(default)]
    team: Option<String>,
}

/// `POST /threads/{contact}/assign`: to me (keeping the thread's team), or
/// to a team (no one in it yet).
pub async fn assign(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<AssignForm>, FormRejection>,
) -> Response {
    let (raw, form) = match start(&person, path, form, |f| &f.csrf) {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    let request = if form.to == "team" {
        Ok(AssignmentRequest {
            team: form.team.filter(|t| !t.trim().is_empty()),
            assignee: None,
            author: Some(person.name.clone()),
        })
    } else {
        let pairs = vec![("limit".to_string(), "1".to_string())];
        threads::timeline(
            State(state.api.clone()),
            Ok(Path(raw.clone())),
            Ok(Query(pairs)),
        )
        .await
        .map(|Json(view)| AssignmentRequest {
            team: view.thread.team,
            assignee: Some(person.name.clone()),
            author: Some(person.name.clone()),
        })
    };
    let result = match request {
        Ok(request) => threads::assign(
            State(state.api.clone()),
            Ok(Path(raw.clone())),
            ApiJson(request),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    done(
        &state,
        &person,
        raw,
        result,
        Draft::default(),
        Section::Actions,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct StateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    state: String,
    /// Snoozed: for how long (`1h`, `1d`: the project's duration form).
    #[serde(default, rename = "for")]
    snooze_for: Option<String>,
}

/// `POST /threads/{contact}/state`: close, reopen, or snooze for a while.
pub async fn state(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<StateForm>, FormRejection>,
) -> Response {
    let (raw, form) = match start(&person, path, form, |f| &f.csrf) {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    let until = match (form.state.as_str(), form.snooze_for.as_deref()) {
        ("snoozed", Some(text)) => {
            let span = crate::duration::parse(text)
                .filter(|d| d.as_secs() >= 60 && d.as_secs() <= 90 * 86_400)
                .and_then(|d| chrono::Duration::from_std(d).ok());
            match span {
                Some(span) => {
                    Some((state.clock.now() + span).to_rfc3339_opts(SecondsFormat::Secs, true))
                }
                None => {
                    let e = ApiError::unprocessable(
                        "invalid_until",
                        "snooze for 1 minute to 90 days, e.g. 4h or 1d",
                    );
                    return done(
                        &state,
                        &person,
                        raw,
                        Err(e),
                        Draft::default(),
                        Section::Actions,
                    )
                    .await;
                }
            }
        }
        _ => None,
    };
    let request = StateRequest {
        state: form.state,
        until,
        author: Some(person.name.clone()),
    };
    let result = threads::set_state(
        State(state.api.clone()),
        Ok(Path(raw.clone())),
        ApiJson(request),
    )
    .await
    .map(|_| ());
    done(
        &state,
        &person,
        raw,
        result,
        Draft::default(),
        Section::Actions,
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct OutcomeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    value: String,
}

/// `POST /threads/{contact}/outcome`.
pub async fn outcome(
    State(state): State<WebState>,
    person: Person,
    path: Result<Path<String>, PathRejection>,
    form: Result<Form<OutcomeForm>, FormRejection>,
) -> Response {
    let (raw, form) = match start(&person, path, form, |f| &f.csrf) {
        Ok(started) => started,
        Err(refused) => return refused.into_response(),
    };
    let value = form.value.trim();
    let request = OutcomeRequest {
        outcome: form.outcome.trim().to_string(),
        value: (!value.is_empty()).then(|| Value::String(value.to_string())),
        note: None,
        author: Some(person.name.clone()),
    };
    let result = threads::add_outcome(
        State(state.api.clone()),
        Ok(Path(raw.clone())),
        ApiJson(request),
    )
    .await
    .map(|_| ());
    done(
        &state,
        &person,
        raw,
        result,
        Draft::default(),
        Section::Actions,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn activities_in_words() {
        assert_eq!(
            activity_words(
                "state_changed",
                &json!({"from": "open", "to": "waiting_on_customer"})
            ),
            "moved it from Open to Waiting on customer"
        );
        assert_eq!(
            activity_words("assigned", &json!({"team": "support", "assignee": "ana"})),
            "assigned it to ana (team support)"
        );
        assert_eq!(activity_words("assigned", &json!({})), "unassigned it");
        assert_eq!(
            activity_words(
                "flow_started",
                &json!({"flow": "appointment", "step": "awaiting_confirmation", "started_by": "msg_1"})
            ),
            "started the appointment flow (awaiting confirmation)"
        );
        assert_eq!(
            activity_words(
                "flow_left",
                &json!({"flow": "payment", "reason": "expired"})
            ),
            "ended the payment flow: it expired"
        );
        assert_eq!(
            activity_words("custom_thing", &json!({"what": "x", "n": 1})),
            "custom thing (what: x)"
        );
    }
}
