//! Kannel's `sendsms` (placeholder).

use axum::response::IntoResponse;

pub async fn sendsms() -> impl IntoResponse {
    (axum::http::StatusCode::NOT_IMPLEMENTED, "not yet")
}
