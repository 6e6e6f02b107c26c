//! `/v1/rules`: the routing rules in effect (admin scope). A stored list
//! replaces `[[conversation.rule]]` of the config file until it is removed;
//! it is checked as the file's rules are at load, kept in the store, and
//! applies from the next inbound text (`conversation::rulebook`).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::json::ApiJson;
use super::problem::{ApiError, TYPE_PREFIX};
use super::ApiState;
use crate::config::Problem;
use crate::conversation::rulebook::{InEffect, RulesError};

/// `PUT /v1/rules`: the whole ordered list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesRequest {
    /// Each as a `[[conversation.rule]]` is written: `name`, `when`, `then`.
    pub rules: Vec<Value>,
    /// What `GET` answers with; ignored, so a list read can be sent back.
    #[serde(default)]
    pub source: Option<Value>,
}

/// The answer of every `/v1/rules` route: the rules in effect and where
/// they come from (`config` or `store`).
pub fn answer(now: &InEffect) -> Value {
    json!({
        "source": now.source.as_str(),
        "rules": now.rules.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
    })
}

/// A refused list: 422 `invalid_rules` with every problem, by key
/// (`rule[N].when.regex`), as RFC 9457 extension member `errors`.
#[derive(Debug)]
pub enum Refused {
    Invalid(Vec<Problem>),
    Api(ApiError),
}

impl From<RulesError> for Refused {
    fn from(e: RulesError) -> Refused {
        match e {
            RulesError::Invalid(problems) => Refused::Invalid(problems),
            RulesError::Store(e) => Refused::Api(ApiError::from(e)),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let problems = match self {
            Refused::Api(e) => return e.into_response(),
            Refused::Invalid(problems) => problems,
        };
        let detail = problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect::<Vec<_>>()
            .join("; ");
        let body = json!({
            "type": format!("{TYPE_PREFIX}invalid_rules"),
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": detail,
            "code": "invalid_rules",
            "errors": problems
                .iter()
                .map(|p| json!({"key": p.key, "message": p.message}))
                .collect::<Vec<_>>(),
        });
        let mut response = (StatusCode::UNPROCESSABLE_ENTITY, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// `GET /v1/rules`.
pub async fn get(State(state): State<ApiState>) -> Json<Value> {
    Json(answer(&state.rules.in_effect()))
}

/// `PUT /v1/rules`: 200 with the rules now in effect.
pub async fn put(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<RulesRequest>,
) -> Result<Json<Value>, Refused> {
    let now = state.rules.set_json(request.rules).await?;
    Ok(Json(answer(&now)))
}

/// `DELETE /v1/rules`: 200 with the config file's rules, in effect again.
pub async fn delete(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let now = state.rules.revert().await?;
    Ok(Json(answer(&now)))
}

/// The OpenAPI operations of these routes.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    use super::openapi::{ok, problem, secured};
    let text = json!({"type": "string"});
    let rule = json!({
        "type": "object",
        "required": ["when", "then"],
        "additionalProperties": false,
        "description": "A rule as `[[conversation.rule]]` is written (config/smsgate.toml documents each key).",
        "properties": {
            "name": text,
            "when": {
                "type": "object", "additionalProperties": false,
                "description": "Every condition given must hold; at least one.",
                "properties": {
                    "keywords": {"type": "array", "items": text},
                    "regex": text,
                    "flow_state": text,
                    "thread_state": {"type": "string", "enum": ["open", "waiting_on_customer", "snoozed", "closed"]},
                    "contact_tag": text,
                    "business_hours": {"type": "boolean"}
                }
            },
            "then": {
                "type": "object", "additionalProperties": false,
                "description": "At least one action.",
                "properties": {
                    "reply": text, "route": text, "assign": text,
                    "priority": {"type": "string", "enum": ["normal", "urgent"]},
                    "outcome": text, "tag": text, "close": {"type": "boolean"}
                }
            }
        }
    });
    let in_effect = json!({
        "type": "object",
        "required": ["source", "rules"],
        "properties": {
            "source": {"type": "string", "enum": ["config", "store"], "description": "`store`: a list set through this API replaces the config file's."},
            "rules": {"type": "array", "items": rule}
        }
    });
    vec![(
        "/v1/rules",
        json!({
            "get": secured("admin", "The routing rules in effect", json!({
                "description": "The stored list if one was set, else the config file's `[[conversation.rule]]`.",
                "responses": { "200": ok("The rules, in order.", in_effect.clone()) }
            })),
            "put": secured("admin", "Replace the routing rules", json!({
                "description": "The whole ordered list, checked as the config file's rules are at load (patterns, templates, names, routes against `[[conversation.team]]`), stored, and applied from the next inbound text; it replaces the config file's rules until `DELETE`. A refused list changes nothing.",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["rules"],
                    "properties": {"rules": {"type": "array", "items": rule}, "source": {"description": "Ignored (what GET answers)."}}
                }}}},
                "responses": {
                    "200": ok("The rules now in effect.", in_effect.clone()),
                    "422": problem("`invalid_rules`, with `errors`: every problem as `{key, message}`, keyed `rule[N].when.regex`; or `invalid_request`.")
                }
            })),
            "delete": secured("admin", "Go back to the config file's rules", json!({
                "responses": { "200": ok("The config file's rules, in effect again.", in_effect) }
            }))
        }),
    )]
}
