//! `/v1/modems`: what each modem actor last published about itself.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;

use super::problem::ApiError;
use super::ApiState;
use crate::wire::{ModemStatus, Page};

/// `GET /v1/modems`: every configured modem, by id (one page: a gateway has
/// a handful).
pub async fn list(State(state): State<ApiState>) -> Json<Page<ModemStatus>> {
    Json(Page {
        items: state
            .dispatcher
            .statuses()
            .iter()
            .map(ModemStatus::from)
            .collect(),
        next_cursor: None,
    })
}

/// `GET /v1/modems/{id}`.
pub async fn get_one(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModemStatus>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such modem"))?;
    state
        .dispatcher
        .statuses()
        .into_iter()
        .find(|s| s.id == id)
        .map(|s| Json(ModemStatus::from(&s)))
        .ok_or_else(|| ApiError::not_found(format!("no modem {id:?}")))
}
