//! `/v1/events`: the event log the webhooks deliver, for catching up by pull
//! (`after` an event id, in order) and live as Server-Sent Events, each SSE
//! `id:` the event id so a reconnecting client's `Last-Event-ID` resumes
//! exactly after the last event it saw.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use tokio::sync::watch;

use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::store::Store;
use crate::wire::{Event, Page};

/// Ends event streams when the server shuts down (graceful shutdown waits
/// for open responses, and a stream would never end by itself).
#[derive(Clone)]
pub struct StreamStop(pub watch::Receiver<bool>);

/// Events read from the store at a time.
const STREAM_BATCH: usize = 100;

/// When a stream serves an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pace {
    /// As soon as it is durable (`/v1/events/stream`).
    #[default]
    AsWritten,
    /// A `message.received` once the conversation engine has applied it
    /// too (at most [`ENGINE_WAIT`] later), so that a page refreshing on it
    /// finds the thread the engine opened: the web inbox's stream.
    AfterEngine,
}

/// The longest a [`Pace::AfterEngine`] stream holds an event for the engine.
const ENGINE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `after` (an event id), then `limit`.
fn events_query(
    pairs: Vec<(String, String)>,
    store: &Store,
) -> Result<(Option<String>, usize), ApiError> {
    let mut after = None;
    let mut rest = Vec::new();
    for (key, value) in pairs {
        if key == "after" {
            if after.is_some() {
                return Err(ApiError::invalid_query("after is given twice"));
            }
            after = Some(checked_id(&value, store)?);
        } else {
            rest.push((key, value));
        }
    }
    Ok((after, params::paging(&rest)?.limit))
}

/// An event id as a position, or `invalid_query`.
fn checked_id(id: &str, store: &Store) -> Result<String, ApiError> {
    store.events_after(Some(id), 0).map_err(|_| {
        ApiError::invalid_query("after must be an event id (evt_ and 16 hex digits)")
    })?;
    Ok(id.to_string())
}

/// `GET /v1/events?after=&limit=`: events after `after` (from the first
/// without it), oldest first. `next_cursor` is the last event's id when the
/// page is full; on the last page it is null, and a client polls again with
/// `after` set to the last id it has seen.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<Event>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let (after, limit) = events_query(pairs, &state.store)?;
    let items: Vec<Event> = state
        .store
        .events_after(after.as_deref(), limit)?
        .into_iter()
        .map(|e| Event::served(e, &state.store))
        .collect::<Result<_, _>>()?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|e| e.id.clone()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

/// `GET /v1/events/stream`: Server-Sent Events from after `Last-Event-ID`
/// (or `?after=`), else from now on. Each SSE has `id:` the event id,
/// `event:` its type, `data:` the event as webhooks send it.
pub async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    stop: Option<Extension<StreamStop>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    stream_paced(State(state), headers, query, stop, Pace::AsWritten).await
}

/// [`stream`], each event served at `pace`.
pub async fn stream_paced(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    stop: Option<Extension<StreamStop>>,
    pace: Pace,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let mut after = None;
    for (key, value) in pairs {
        match key.as_str() {
            "after" => after = Some(checked_id(&value, &state.store)?),
            other => {
                return Err(ApiError::invalid_query(format!(
                    "unknown query parameter {other:?} (after)"
                )))
            }
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let last = last
            .to_str()
            .map_err(|_| ApiError::invalid_query("Last-Event-ID must be an event id"))?;
        after = Some(checked_id(last.trim(), &state.store)?);
    }
    // Subscribe before the first read, so no event slips between them.
    let notifier = state.store.event_notifier();
    let after = match after {
        Some(a) => Some(a),
        None => state.store.last_event_id()?,
    };
    let reader = Reader {
        store: state.store.clone(),
        after,
        buffer: VecDeque::new(),
        notifier,
        stop: stop.map(|Extension(s)| s.0),
        pace,
    };
    let events = futures_util::stream::unfold(reader, |mut r| async move {
        let event = r.next().await?;
        let sse = SseEvent::default()
            .id(event.id.clone())
            .event(event.kind.clone())
            .data(serde_json::to_string(&event).unwrap_or_default());
        Some((Ok(sse), r))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The state of one event stream.
struct Reader {
    store: Store,
    after: Option<String>,
    buffer: VecDeque<crate::store::Event>,
    notifier: watch::Receiver<()>,
    stop: Option<watch::Receiver<bool>>,
    pace: Pace,
}

impl Reader {
    /// The next event, waiting for one; None ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = Some(event.id.clone());
                if self.pace == Pace::AfterEngine && event.kind == "message.received" {
                    // Late or not, the event is served: a page refreshes
                    // on it either way.
                    let _ = self.store.wait_for_engine(&event.id, ENGINE_WAIT).await;
                }
                match Event::served(event, &self.store) {
                    Ok(event) => return Some(event),
                    Err(e) => {
                        tracing::error!(error = %e, "event stream cannot read the store");
                        return None;
                    }
                }
            }
            match self.store.events_after(self.after.as_deref(), STREAM_BATCH) {
                Ok(events) if !events.is_empty() => {
                    self.buffer.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "event stream cannot read the store");
                    return None;
                }
            }
            let (notifier, stop) = (&mut self.notifier, &mut self.stop);
            let stopped = async {
                match stop {
                    Some(stop) => {
                        let _ = stop.wait_for(|s| *s).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                changed = notifier.changed() => changed.ok()?,
                _ = stopped => return None,
            }
        }
    }
}
