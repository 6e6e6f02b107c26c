//! The simulator's control API: JSON over HTTP on loopback, for demos, scripts
//! and tests in other languages (the table is in the [`super`] module docs and
//! `docs/simulator.md`).

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use super::faults::{Fault, FaultRequest};
use super::network::HandsetScript;
use super::{SimError, SimHandle};

/// An error answer: status and a one-line message.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // One line, whatever the underlying error printed.
        let message = self.1.replace(['\r', '\n'], " ");
        (self.0, Json(json!({ "error": message }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        let status = match e {
            SimError::Pdu(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Inject {
    from: String,
    text: String,
}

/// The routes, over one simulator.
pub fn router(sim: SimHandle) -> Router {
    Router::new()
        .route("/inject", post(inject))
        .route("/received", get(received))
        .route("/handsets", post(handsets))
        .route("/faults", post(faults))
        .with_state(sim)
}

async fn inject(
    State(sim): State<SimHandle>,
    body: Result<Json<Inject>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body?;
    let parts = sim.inject(&body.from, &body.text)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "parts": parts }))))
}

async fn received(State(sim): State<SimHandle>) -> impl IntoResponse {
    Json(sim.received())
}

async fn handsets(
    State(sim): State<SimHandle>,
    body: Result<Json<HandsetScript>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(script) = body?;
    if script.number.trim().is_empty() {
        return Err(ApiError(StatusCode::BAD_REQUEST, "number is empty".into()));
    }
    sim.set_handset(script);
    Ok(StatusCode::NO_CONTENT)
}

async fn faults(
    State(sim): State<SimHandle>,
    body: Result<Json<FaultRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(request) = body?;
    let fault = Fault::try_from(request).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    sim.fault(fault)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Bind the control API on a loopback address (anything else is refused: the
/// API has no authentication) and serve it on a task. Returns the bound address.
pub async fn serve(sim: SimHandle, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("control address {addr} is not loopback"),
        ));
    }
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(sim);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(bound)
}
