//! `/healthz` and `/readyz` for systemd, load balancers and monitoring: no
//! token needed, no store access, so they answer even when the store is
//! struggling. Without a token `/readyz` says only ready or not (the status
//! code and `status`): port paths and error texts are for token holders.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::{self, Scope};
use super::ApiState;
use crate::modem::status::ModemState;
use crate::wire::{FleetReadiness, Health, ModemReadiness, Readiness, ReadinessStatus};

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Response {
    Json(Health::ok()).into_response()
}

/// `GET /readyz`: at least one modem can send. In a fleet it also says
/// whether the broker is connected and the consent replica current. A token with the `read`
/// scope also gets each modem's state and reason; a missing or wrong token
/// is not refused (probes carry none), it only gets the short answer.
pub async fn readyz(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let statuses = state.dispatcher.statuses();
    let ready = statuses.iter().any(|s| s.state == ModemState::Ready);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let detailed = auth::authorize(&state.tokens, authorization, Scope::Read).is_ok();
    let modems = detailed.then(|| {
        statuses
            .iter()
            .map(|s| ModemReadiness {
                id: s.id.clone(),
                state: s.state.into(),
                reason: s.reason.clone(),
            })
            .collect()
    });
    let (code, status) = if ready {
        (StatusCode::OK, ReadinessStatus::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadinessStatus::NotReady)
    };
    let fleet = state.policy.freshness().map(|f| FleetReadiness {
        connected: f.connected(),
        consent_current: f.fresh(chrono::Utc::now()),
        consent_synced_at: f.last_sync(),
    });
    (
        code,
        Json(Readiness {
            status,
            modems,
            fleet,
        }),
    )
        .into_response()
}
