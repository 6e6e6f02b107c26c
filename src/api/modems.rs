//! `/v1/modems`: what each modem actor last published about itself, and the
//! technician's probe run by the actor over its own connection.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use tokio::sync::{mpsc, oneshot};

use super::problem::ApiError;
use super::ApiState;
use crate::modem::probe::{ProbeRequest, ProbeResults};
use crate::modem::ModemState;
use crate::wire::{ModemProbe, ModemStatus, Page};

/// How long a probe may take before the request gives up on it (below the
/// API's request timeout; the actor still runs it and stores the result).
/// A probe of a healthy modem takes well under a second; one whose modem
/// stopped answering ends after three command timeouts.
pub const PROBE_WAIT: Duration = Duration::from_secs(25);

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

/// `POST /v1/modems/{id}/probe`: the actor holding the modem runs the
/// technician's probe over its connection, between its commands (sends
/// queued meanwhile go after it), stores it as the modem's last, and it is
/// answered. 409 `modem_not_connected` when no connection is open,
/// `probe_busy` when probes are already waiting.
pub async fn probe(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModemProbe>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such modem"))?;
    let status = state
        .dispatcher
        .statuses()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no modem {id:?}")))?;
    let not_connected = |why: String| {
        ApiError::conflict(
            "modem_not_connected",
            format!("modem {id} is not connected ({why}); the probe runs over its connection, so try again once it is back"),
        )
    };
    if matches!(status.state, ModemState::Offline | ModemState::Initializing) {
        let why = match &status.reason {
            Some(reason) => format!("{}: {reason}", status.state.as_str()),
            None => status.state.as_str().to_string(),
        };
        return Err(not_connected(why));
    }
    let Some(mailbox) = state.dispatcher.probe_mailbox(&id) else {
        return Err(not_connected("no connection runs it".into()));
    };
    let (reply, answer) = oneshot::channel();
    match mailbox.try_send(ProbeRequest { reply }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return Err(ApiError::conflict(
                "probe_busy",
                format!("modem {id} has probes waiting already; try again in a moment"),
            ))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return Err(not_connected("its actor has stopped".into()))
        }
    }
    match tokio::time::timeout(PROBE_WAIT, answer).await {
        Ok(Ok(Ok(result))) => Ok(Json(ModemProbe::from(&result))),
        Ok(Ok(Err(refused))) => Err(not_connected(refused.0)),
        Ok(Err(_)) => Err(not_connected("its actor has stopped".into())),
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "probe_timeout",
            format!(
                "modem {id} did not finish the probe within {} s; its result will be kept when it does",
                PROBE_WAIT.as_secs()
            ),
        )),
    }
}

/// `GET /v1/modems/{id}/probe`: the last probe the daemon ran, with its
/// time (kept in the store across restarts). 404 for an unknown modem or
/// one never probed.
pub async fn last_probe(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ModemProbe>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such modem"))?;
    if !state.dispatcher.is_known(&id) {
        return Err(ApiError::not_found(format!("no modem {id:?}")));
    }
    ProbeResults::open(&state.store)?
        .get(&id)?
        .map(|r| Json(ModemProbe::from(&r)))
        .ok_or_else(|| ApiError::not_found(format!("modem {id} has not been probed yet")))
}
