//! `/v1/threads`: conversations by contact, most recent first; one contact's
//! messages oldest first with pages back in time; read marks.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;

use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::store::{Message, Page, ThreadSummary};

/// The contact in a path, E.164.
fn contact_of(
    path: Result<Path<String>, PathRejection>,
    state: &ApiState,
) -> Result<String, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::not_found("no such thread"))?;
    params::contact(&raw, &state.sms.default_country).map_err(|e| {
        ApiError::unprocessable(
            "invalid_number",
            format!("contact: {e} (percent-encode the +, as %2B)"),
        )
    })
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
) -> Result<Json<Page<ThreadSummary>>, ApiError> {
    let paging = paging_of(query)?;
    Ok(Json(
        state
            .store
            .threads(paging.cursor.as_deref(), paging.limit)?,
    ))
}

/// `GET /v1/threads/{contact}`: the last `limit` messages, oldest first;
/// `next_cursor` pages towards older ones.
pub async fn messages(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<Message>>, ApiError> {
    let contact = contact_of(path, &state)?;
    let paging = paging_of(query)?;
    if state.store.thread_summary(&contact)?.is_none() {
        return Err(ApiError::not_found(format!("no thread with {contact}")));
    }
    Ok(Json(state.store.thread(
        &contact,
        paging.cursor.as_deref(),
        paging.limit,
    )?))
}

/// The answer to a read mark.
#[derive(Debug, Serialize)]
pub struct ReadMark {
    pub contact: String,
    /// Inbound messages that were unread until now.
    pub marked: u64,
    pub unread: u64,
}

/// `POST /v1/threads/{contact}/read`.
pub async fn mark_read(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ReadMark>, ApiError> {
    let contact = contact_of(path, &state)?;
    if state.store.thread_summary(&contact)?.is_none() {
        return Err(ApiError::not_found(format!("no thread with {contact}")));
    }
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
