//! `/v1/modems/{id}/settings` (admin scope): a modem's pool settings
//! changed while the daemon runs, over the config's `[[modem]]` values
//! (`modem::overrides`): stored, applied by the dispatcher and the modem's
//! actor at once, kept across restarts.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::json::ApiJson;
use super::problem::ApiError;
use super::ApiState;
use crate::modem::overrides::{check_limit, LIMITS};

/// What every route answers: the values in effect, the config's, and what
/// was changed.
pub fn answer(state: &ApiState, id: &str) -> Value {
    let defaults = state.dispatcher.defaults(id);
    let overrides = state.dispatcher.overrides(id);
    json!({
        "modem": id,
        "paused": overrides.paused,
        "daily_limit": overrides.daily_limit.or(defaults.daily_limit),
        "sends_per_minute": overrides.sends_per_minute.or(defaults.sends_per_minute),
        "rest_after_failures": overrides.rest_after_failures.or(defaults.rest_after_failures),
        "config": defaults,
        "overrides": overrides,
    })
}

fn known(state: &ApiState, id: &str) -> Result<(), ApiError> {
    if state.dispatcher.is_known(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no modem {id:?}")))
    }
}

fn modem_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such modem"))?;
    Ok(id)
}

/// Change `id`'s settings: each field given changes (`null`: back to the
/// config's value), the rest stay; the one way, for the API and the page.
pub async fn change(
    state: &ApiState,
    id: &str,
    changes: &Map<String, Value>,
) -> Result<Value, ApiError> {
    known(state, id)?;
    let mut next = state.dispatcher.overrides(id);
    for (field, value) in changes {
        if field == "paused" {
            next.paused = value.as_bool().ok_or_else(|| {
                ApiError::unprocessable("invalid_setting", "paused: must be true or false")
            })?;
            continue;
        }
        let Some(slot) = next.limit_mut(field) else {
            return Err(ApiError::unprocessable(
                "invalid_request",
                format!(
                    "{field}: unknown setting (known: paused, {})",
                    LIMITS.join(", ")
                ),
            ));
        };
        *slot = match value {
            Value::Null => None,
            v => {
                let n = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::unprocessable(
                            "invalid_setting",
                            format!("{field}: must be a whole number from 1, or null for the config's value"),
                        )
                    })?;
                check_limit(field, n).map_err(|e| {
                    ApiError::unprocessable("invalid_setting", format!("{field}: {e}"))
                })?;
                Some(n)
            }
        };
    }
    state.dispatcher.set_overrides(id, next.clone()).await?;
    tracing::info!(modem = %id, ?next, "modem settings changed");
    Ok(answer(state, id))
}

/// `GET /v1/modems/{id}/settings`.
pub async fn get(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = modem_of(path)?;
    known(&state, &id)?;
    Ok(Json(answer(&state, &id)))
}

/// `PUT /v1/modems/{id}/settings`: partial.
pub async fn put(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(changes): ApiJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let id = modem_of(path)?;
    Ok(Json(change(&state, &id, &changes).await?))
}

/// The OpenAPI operations of these routes.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    use super::openapi::{ok, problem, secured};
    let id = json!({
        "name": "id", "in": "path", "required": true,
        "description": "The modem's id (`[[modem]] id`).", "schema": {"type": "string"}
    });
    let limit = json!({"type": ["integer", "null"], "minimum": 1});
    let limits = json!({
        "type": "object",
        "properties": {"daily_limit": limit, "sends_per_minute": limit, "rest_after_failures": limit}
    });
    let settings = json!({
        "type": "object",
        "required": ["modem", "paused", "daily_limit", "sends_per_minute", "rest_after_failures", "config", "overrides"],
        "properties": {
            "modem": {"type": "string"},
            "paused": {"type": "boolean", "description": "No new sends; its queue goes to the other modems; it still receives."},
            "daily_limit": limit, "sends_per_minute": limit, "rest_after_failures": limit,
            "config": limits.clone(),
            "overrides": limits
        }
    });
    vec![(
        "/v1/modems/{id}/settings",
        json!({
            "get": secured("admin", "A modem's pool settings in effect", json!({
                "parameters": [id.clone()],
                "responses": {
                    "200": ok("In effect, the config's, and what was changed.", settings.clone()),
                    "404": problem("`not_found`.")
                }
            })),
            "put": secured("admin", "Change a modem's pool settings while it runs", json!({
                "description": "Only the fields given change; a limit `null` goes back to the config's value. Stored, applied at once, kept across restarts.",
                "parameters": [id],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": {"paused": {"type": "boolean"}, "daily_limit": limit, "sends_per_minute": limit, "rest_after_failures": limit}
                }}}},
                "responses": {
                    "200": ok("The settings now in effect.", settings),
                    "404": problem("`not_found`."),
                    "422": problem("`invalid_setting` (the field is named first in `detail`), `invalid_request` (an unknown field).")
                }
            }))
        }),
    )]
}
