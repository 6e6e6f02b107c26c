//! `/v1/threads`: conversations by contact, most recent first; one contact's
//! messages oldest first with pages back in time; read marks.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;

use super::params;
use super::problem::ApiError;
use super::ApiState;
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
        if state.store.thread_summary(contact)?.is_some() {
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

/// `GET /v1/threads/{contact}`: the last `limit` messages, oldest first;
/// `next_cursor` pages towards older ones.
pub async fn messages(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<wire::Message>>, ApiError> {
    let contact = contact_of(path, &state)?;
    let paging = paging_of(query)?;
    Ok(Json(wire::page(state.store.thread(
        &contact,
        paging.cursor.as_deref(),
        paging.limit,
    )?)))
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
