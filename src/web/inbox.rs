//! The inbox page: the threads waiting on us, urgent first then oldest wait
//! (`GET /v1/inbox`'s handler, called as is), with filters, a search, and a
//! list the script refreshes when the event stream says something changed.
//!
//! Filters: Open (the API's default: open threads, and snoozed ones whose
//! time has come), Mine (assigned to the signed-in person), My team (their
//! team's, when they have one), Urgent, Waiting on customer, Snoozed,
//! Closed; All is every thread, most recent first (`GET /v1/threads`).
//!
//! Search finds threads by the contact's name, number or CRM id (the
//! contacts index, `GET /v1/contacts?q=`, plus the number itself), and by
//! text in the last message of the 1,000 most recently active threads
//! (older messages are not searched).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{self, Nav, Shell};
use super::session::Person;
use super::{escape, thread_url, WebState};
use crate::api::events::StreamStop;
use crate::api::ApiError;
use crate::wire::{self, InboxItem};

/// Threads a page lists.
const PAGE: usize = 50;
/// Recent threads whose last message a search reads (the search box's hint
/// says 1,000).
const TEXT_SEARCH_THREADS: usize = 1_000;
/// Threads a search lists at most.
const SEARCH_RESULTS: usize = 100;

/// The filters, in the order of their links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    Mine,
    Team,
    Urgent,
    Open,
    Waiting,
    Snoozed,
    Closed,
    All,
}

impl Filter {
    const LINKS: [Filter; 8] = [
        Filter::Mine,
        Filter::Team,
        Filter::Urgent,
        Filter::Open,
        Filter::Waiting,
        Filter::Snoozed,
        Filter::Closed,
        Filter::All,
    ];

    fn slug(self) -> &'static str {
        match self {
            Filter::Mine => "mine",
            Filter::Team => "team",
            Filter::Urgent => "urgent",
            Filter::Open => "open",
            Filter::Waiting => "waiting",
            Filter::Snoozed => "snoozed",
            Filter::Closed => "closed",
            Filter::All => "all",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Filter::Mine => "Mine",
            Filter::Team => "My team",
            Filter::Urgent => "Urgent",
            Filter::Open => "Open",
            Filter::Waiting => "Waiting on customer",
            Filter::Snoozed => "Snoozed",
            Filter::Closed => "Closed",
            Filter::All => "All",
        }
    }

    fn parse(slug: Option<&str>) -> Filter {
        Filter::LINKS
            .into_iter()
            .find(|f| Some(f.slug()) == slug)
            .unwrap_or(Filter::Open)
    }

    /// `GET /v1/inbox`'s query for this filter (None: All, another list).
    fn inbox_query(self, person: &Person) -> Option<Vec<(String, String)>> {
        let pair = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        Some(match self {
            Filter::Mine => pair("assignee", &person.name),
            // A person without a team has no team inbox (`rows` lists none).
            Filter::Team => pair("team", person.team.as_deref()?),
            Filter::Urgent => pair("priority", "urgent"),
            Filter::Open => Vec::new(),
            Filter::Waiting => pair("state", "waiting_on_customer"),
            Filter::Snoozed => pair("state", "snoozed"),
            Filter::Closed => pair("state", "closed"),
            Filter::All => return None,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

impl InboxQuery {
    fn filter(&self) -> Filter {
        Filter::parse(self.filter.as_deref())
    }

    fn search(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }

    /// This view's query string, with another cursor.
    fn link(&self, cursor: Option<&str>) -> String {
        let mut out = format!("filter={}", self.filter().slug());
        if let Some(q) = self.search() {
            out.push_str(&format!("&q={}", escape(q)));
        }
        if let Some(c) = cursor {
            out.push_str(&format!("&cursor={}", escape(c)));
        }
        out
    }
}

/// One row: the thread as the inbox lists it, with who and what was said last.
struct Row {
    item: InboxItem,
    name: Option<String>,
    /// The last message's start, and whether the contact wrote it.
    last: Option<(String, bool)>,
}

/// The rows of a view and the next page's cursor.
async fn rows(
    state: &WebState,
    person: &Person,
    query: &InboxQuery,
    now: DateTime<Utc>,
) -> Result<(Vec<Row>, Option<String>), ApiError> {
    let store = &state.api.store;
    let mut items: Vec<InboxItem> = Vec::new();
    let mut next = None;
    if let Some(q) = query.search() {
        for contact in search(state, q).await? {
            if let Some(thread) = store.thread_or_default(&contact)? {
                items.push(InboxItem::at(&thread, now));
            }
        }
    } else if query.filter() == Filter::Team && person.team.is_none() {
        // No team, no team inbox.
    } else {
        let mut pairs = vec![("limit".to_string(), PAGE.to_string())];
        if let Some(c) = &query.cursor {
            pairs.push(("cursor".into(), c.clone()));
        }
        match query.filter().inbox_query(person) {
            Some(filter) => {
                pairs.extend(filter);
                let Json(page) =
                    crate::api::inbox::list(State(state.api.clone()), Ok(Query(pairs))).await?;
                items = page.items;
                next = page.next_cursor;
            }
            None => {
                let Json(page) =
                    crate::api::threads::list(State(state.api.clone()), Ok(Query(pairs))).await?;
                for summary in page.items {
                    if let Some(thread) = store.thread_or_default(&summary.contact)? {
                        items.push(InboxItem::at(&thread, now));
                    }
                }
                next = page.next_cursor;
            }
        }
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = store.profile(&item.contact)?.name;
        let last = store.thread_summary(&item.contact)?.map(|s| {
            (
                s.last_preview,
                s.last_direction == crate::store::Direction::Inbound,
            )
        });
        out.push(Row { item, name, last });
    }
    Ok((out, next))
}

/// The contacts a search finds, best first: the number itself, then the
/// contacts index, then the last messages of recent threads.
async fn search(state: &WebState, q: &str) -> Result<Vec<String>, ApiError> {
    let store = &state.api.store;
    let mut found: Vec<String> = Vec::new();
    let add = |contact: String, found: &mut Vec<String>| {
        if !found.contains(&contact) && found.len() < SEARCH_RESULTS {
            found.push(contact);
        }
    };
    if let Ok(number) = crate::phone::normalize(q, &state.api.sms.default_country) {
        if store.thread_summary(&number)?.is_some() {
            add(number, &mut found);
        }
    }
    if store.thread_summary(q)?.is_some() {
        add(q.to_string(), &mut found);
    }
    let pairs = vec![
        ("q".to_string(), q.to_string()),
        ("limit".to_string(), SEARCH_RESULTS.to_string()),
    ];
    let Json(contacts) =
        crate::api::contacts::list(State(state.api.clone()), Ok(Query(pairs))).await?;
    for c in contacts.items {
        add(c.contact, &mut found);
    }
    let needle = q.to_lowercase();
    let mut cursor: Option<String> = None;
    let mut read = 0;
    while read < TEXT_SEARCH_THREADS {
        let page = store.threads(cursor.as_deref(), 500)?;
        read += page.items.len();
        for summary in page.items {
            if summary.last_preview.to_lowercase().contains(&needle) {
                add(summary.contact, &mut found);
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(found)
}

fn state_words(item: &InboxItem) -> String {
    match item.state {
        wire::ThreadState::Open => "Open".into(),
        wire::ThreadState::WaitingOnCustomer => "Waiting on customer".into(),
        wire::ThreadState::Snoozed => match item.snoozed_until {
            Some(until) => format!("Snoozed until {}", until.format("%Y-%m-%d %H:%M UTC")),
            None => "Snoozed".into(),
        },
        wire::ThreadState::Closed => "Closed".into(),
    }
}

/// The SLA in words, and whether it is breached.
pub(super) fn sla_words(
    due: Option<DateTime<Utc>>,
    breached: bool,
    now: DateTime<Utc>,
) -> Option<(String, bool)> {
    if breached {
        return Some(("SLA breached".into(), true));
    }
    let due = due?;
    Some(if due > now {
        (
            format!("SLA due in {}", pages::span((due - now).num_seconds())),
            false,
        )
    } else {
        ("SLA due now".into(), true)
    })
}

/// The list (the part the script refreshes).
fn list_markup(rows: &[Row], query: &InboxQuery, next: Option<&str>, now: DateTime<Utc>) -> Markup {
    html! {
        @if rows.is_empty() {
            p.empty {
                @if query.search().is_some() { "No thread matches." }
                @else { "Nothing here. New texts appear as they arrive." }
            }
        } @else {
            ul.threads {
                @for row in rows {
                    @let urgent = row.item.priority == wire::Priority::Urgent;
                    li.thread.urgent[urgent] {
                        a.who href=(thread_url(&row.item.contact)) {
                            @match &row.name {
                                Some(name) => { strong { (name) } " " span.number { (row.item.contact) } }
                                None => { strong { (row.item.contact) } }
                            }
                        }
                        @if let Some((text, inbound)) = &row.last {
                            p.last {
                                span.visually-hidden { @if *inbound { "They wrote: " } @else { "We wrote: " } }
                                (text)
                            }
                        }
                        p.meta {
                            @if urgent { span.badge.urgent { "Urgent" } " " }
                            span.state { (state_words(&row.item)) }
                            @if let Some(wait) = row.item.wait_seconds {
                                " · " span.wait { "Waiting " (pages::span(wait)) }
                            }
                            @if let Some((sla, late)) = sla_words(row.item.sla_due, row.item.sla_breached, now) {
                                " · " span.sla.late[late] { (sla) }
                            }
                            @if let Some(team) = &row.item.team { " · Team " (team) }
                            @if let Some(who) = &row.item.assignee { " · Assigned to " (who) }
                        }
                    }
                }
            }
            @if let Some(cursor) = next {
                p { a rel="next" href={ "/inbox?" (query.link(Some(cursor))) } { "More threads" } }
            }
        }
    }
}

/// `GET /inbox`.
pub async fn page(
    State(state): State<WebState>,
    person: Person,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let now = state.clock.now();
    // Before the read: what is written after it comes by the stream.
    let stream = stream_url(&state);
    let (rows, next) = match rows(&state, &person, &query, now).await {
        Ok(found) => found,
        Err(e) => return pages::api_error_page(&person, &e),
    };
    let current = query.filter();
    let body = html! {
        nav.filters aria-label="Filters" {
            ul {
                @for f in Filter::LINKS {
                    @if f != Filter::Team || person.team.is_some() {
                        li {
                            a href={ "/inbox?filter=" (f.slug()) }
                                aria-current=[(f == current && query.search().is_none()).then_some("page")] { (f.label()) }
                        }
                    }
                }
            }
        }
        form.search role="search" method="get" action="/inbox" {
            label for="q" { "Search" }
            input #q type="search" name="q" value=[query.search()] aria-describedby="search-hint";
            input type="hidden" name="filter" value=(current.slug());
            button type="submit" { "Search" }
            p #search-hint .hint {
                "Names, numbers and CRM ids of contacts, and the last message of the 1,000 \
                 most recent threads."
            }
        }
        p #live .status role="status" {}
        div #inbox-list data-refresh={ "/inbox/list?" (query.link(query.cursor.as_deref())) } data-stream=(stream) {
            (list_markup(&rows, &query, next.as_deref(), now))
        }
    };
    let title = match query.search() {
        Some(_) => "Inbox: search".to_string(),
        None if current == Filter::Open => "Inbox".to_string(),
        None => format!("Inbox: {}", current.label()),
    };
    Shell::signed_in(&title, &person, Some(Nav::Inbox))
        .render(body)
        .into_response()
}

/// `GET /inbox/list`: the list alone, for the script's refresh.
pub async fn list(
    State(state): State<WebState>,
    person: Person,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let now = state.clock.now();
    match rows(&state, &person, &query, now).await {
        Ok((rows, next)) => list_markup(&rows, &query, next.as_deref(), now).into_response(),
        Err(e) => pages::api_error_page(&person, &e),
    }
}

/// The live stream's address for a page rendered now: from the last event
/// written (from the start when there is none, or the store cannot say).
pub(crate) fn stream_url(state: &WebState) -> String {
    match state.api.store.last_event_id() {
        Ok(Some(id)) => format!("/inbox/events?after={id}"),
        _ => "/inbox/events".to_string(),
    }
}

/// `GET /inbox/events?after=`: `GET /v1/events/stream` for a signed-in
/// person (the API's stream needs a bearer token, which a page does not
/// have). A page asks from the last event it was rendered with, so nothing
/// between its render and the stream's start is missed; a
/// `message.received` comes once the engine has opened its thread.
pub async fn events(
    State(state): State<WebState>,
    _person: Person,
    headers: HeaderMap,
    stop: Option<Extension<StreamStop>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    match crate::api::events::stream_paced(
        State(state.api.clone()),
        headers,
        query,
        stop,
        crate::api::events::Pace::AfterEngine,
    )
    .await
    {
        Ok(stream) => stream.into_response(),
        Err(e) => e.into_response(),
    }
}
