//! `/healthz` and `/readyz` for systemd, load balancers and monitoring: no
//! token, no store access, so they answer even when the store is struggling.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::ApiState;
use crate::modem::status::ModemState;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: at least one modem can send.
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let statuses = state.dispatcher.statuses();
    let modems: Vec<_> = statuses
        .iter()
        .map(|s| json!({ "id": s.id, "state": s.state, "reason": s.reason }))
        .collect();
    if statuses.iter().any(|s| s.state == ModemState::Ready) {
        Json(json!({ "status": "ready", "modems": modems })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "modems": modems })),
        )
            .into_response()
    }
}
