//! `/v1/messages`: send (with scheduling, validity and idempotency keys), read
//! one, list with filters, cancel, and resend out of `unknown`.
//!
//! A request is validated in full before anything is stored, so a refused
//! request leaves no trace; an accepted one is durable before the 202.

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::auth::Caller;
use super::json::ApiJson;
use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::compose::{self, Draft};
use crate::conversation::campaigns::{claim_for_cancel, CancelClaim};
use crate::conversation::engine;
use crate::pdu::{self, ValidityPeriod};
use crate::policy::Refusal;
use crate::store::{
    Accepted, Category, FleetLeg, IdempotencyKey, Message, MessageStatus, Part, PartStatus,
};
use crate::wire;

/// `POST /v1/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// E.164, or national in the default country. Missing and empty are
    /// refused alike (`invalid_number`).
    #[serde(default)]
    #[schema(required = true, example = "+15551234567")]
    pub to: String,
    /// The text; split into as many SMS parts as it needs (up to the
    /// configured limit: `body_too_long`).
    #[serde(default)]
    #[schema(required = true, example = "Your appointment is at 10:00.")]
    pub body: String,
    /// A configured modem id (default: any ready modem).
    #[serde(default)]
    #[schema(nullable = false)]
    pub modem: Option<String>,
    /// Ask for a status report (default: the config's).
    #[serde(default)]
    #[schema(nullable = false)]
    pub status_report: Option<bool>,
    /// Seconds or a duration string; read by hand for a precise refusal.
    #[serde(default)]
    #[schema(schema_with = validity_schema)]
    pub validity: Option<Value>,
    /// Not before this time: answered as `scheduled`, with the time as the
    /// message's `not_before`; a time already past sends now.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, nullable = false)]
    pub send_at: Option<Value>,
    /// transactional (default), conversational or marketing.
    #[serde(default)]
    #[schema(schema_with = category_schema)]
    pub category: Option<String>,
    /// Put the contact's thread in this automation flow: `appointment`,
    /// `payment`, `rating` or `lead`; the reply is read in its state.
    #[serde(default)]
    #[schema(nullable = false, example = "appointment")]
    pub flow: Option<String>,
    /// The flow's context (slots, the payment link, questions; `expires`,
    /// default 3d): an object, only with `flow`.
    #[serde(default)]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub context: Option<Value>,
}

/// `validity`: seconds, or a duration such as `5m`, `24h`, `7d`, `2w`
/// (rounded up to what TP-VP can say: 5 minutes to 63 weeks).
fn validity_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(pdu::relative_seconds(255) as f64)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .examples(["5m", "24h", "7d"]),
        )
        .description(Some(
            "Seconds, or a duration such as 5m, 24h, 7d (default: the config's).",
        ))
        .build();
    Schema::OneOf(one_of)
}

/// `category` (read by hand, for the `invalid_category` refusal).
fn category_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["transactional", "conversational", "marketing"]))
        .description(Some("Default transactional. Marketing needs recorded opt-in evidence and waits out quiet hours; conversational must answer a thread the contact started or answered."))
        .build()
}

/// A send request after validation: what is stored, and what the
/// idempotency fingerprint is taken over (so `"+1 555…"` and `"+1555…"` are
/// the same request).
#[derive(Debug, Serialize)]
struct Normalized {
    to: String,
    body: String,
    modem: Option<String>,
    status_report: bool,
    validity: Option<u32>,
    send_at: Option<DateTime<Utc>>,
    category: Category,
    flow: Option<String>,
    context: Option<Value>,
}

/// Seconds from a number or a duration string (`90s`, `5m`, `24h`, `7d`,
/// `2w`), within what TP-VP's relative format can say (23.040 §9.2.3.12.1:
/// 5 minutes to 63 weeks); stored as the period the network will be given.
pub fn parse_validity(value: &Value) -> Result<Option<u32>, ApiError> {
    let bad = || {
        ApiError::unprocessable(
            "invalid_validity",
            "validity must be seconds (an integer) or a duration such as 5m, 24h, 7d",
        )
    };
    let seconds = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_u64().ok_or_else(bad)?,
        Value::String(text) => {
            let text = text.trim();
            // A bare number is seconds; otherwise the config's duration form.
            match text.parse::<u64>() {
                Ok(seconds) => seconds,
                Err(_) => crate::duration::parse(text).ok_or_else(bad)?.as_secs(),
            }
        }
        _ => return Err(bad()),
    };
    let max = pdu::relative_seconds(255);
    if seconds == 0 || seconds > max {
        return Err(ApiError::unprocessable(
            "invalid_validity",
            format!("validity must be from 1 second to {max} seconds (63 weeks)"),
        ));
    }
    let effective = ValidityPeriod::relative_at_least(seconds)
        .seconds()
        .unwrap_or(seconds);
    u32::try_from(effective).map(Some).map_err(|_| bad())
}

/// `send_at`: an RFC 3339 time (campaigns read it the same way).
pub(crate) fn parse_send_at(value: &Value) -> Result<Option<DateTime<Utc>>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => params::time(text).map(Some).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_send_at",
                "send_at must be an RFC 3339 time such as 2025-01-31T09:00:00Z",
            )
        }),
        _ => Err(ApiError::unprocessable(
            "invalid_send_at",
            "send_at must be an RFC 3339 time string",
        )),
    }
}

/// Validate a send request against the gateway's policy.
fn normalize(request: SendRequest, state: &ApiState) -> Result<Normalized, ApiError> {
    let to = crate::phone::normalize(&request.to, &state.sms.default_country)
        .map_err(|e| ApiError::unprocessable("invalid_number", format!("to: {e}")))?;
    if let Some(modem) = &request.modem {
        if !state.dispatcher.is_known(modem) {
            return Err(ApiError::unprocessable(
                "unknown_modem",
                format!("no modem {modem:?} is configured"),
            ));
        }
    }
    let validity = match &request.validity {
        Some(v) => parse_validity(v)?,
        None => None,
    };
    let send_at = match &request.send_at {
        Some(v) => parse_send_at(v)?,
        None => None,
    };
    let category = match request.category.as_deref() {
        None => Category::Transactional,
        Some(c) => Category::parse(c).ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_category",
                format!("category {c:?}: use transactional, conversational or marketing"),
            )
        })?,
    };
    match (&request.context, &request.flow) {
        (None | Some(Value::Null), _) => {}
        (Some(Value::Object(_)), Some(_)) => {}
        (Some(Value::Object(_)), None) => {
            return Err(ApiError::unprocessable(
                "invalid_context",
                "context is the context of a flow: give flow too",
            ))
        }
        (Some(_), _) => {
            return Err(ApiError::unprocessable(
                "invalid_context",
                "context must be a JSON object",
            ))
        }
    }
    if let Some(flow) = &request.flow {
        // The flow's own check of its context (slots, url, questions), as
        // the thread will start it at accept.
        let empty = Value::Object(Default::default());
        let context = request
            .context
            .as_ref()
            .filter(|c| !c.is_null())
            .unwrap_or(&empty);
        if let Err(e) = crate::conversation::flows::start(flow, context, None, Utc::now()) {
            let code = match e {
                crate::conversation::flows::FlowError::UnknownFlow(_) => "invalid_flow",
                _ => "invalid_flow_context",
            };
            return Err(ApiError::unprocessable(code, e.to_string()));
        }
    }
    Ok(Normalized {
        to,
        body: request.body,
        modem: request.modem,
        status_report: request.status_report.unwrap_or(state.sms.status_reports),
        validity: validity.or(state.sms.validity),
        send_at,
        category,
        flow: request.flow,
        context: request.context.filter(|c| !c.is_null()),
    })
}

/// An `Idempotency-Key` header (or a compat API's own header for the same
/// thing): printable ASCII, at most 255 characters (the IETF httpapi
/// idempotency-key draft leaves the format to the server); the fingerprint
/// is the request's canonical JSON.
pub(crate) fn idempotency_key(
    header: Option<&HeaderValue>,
    request: &impl Serialize,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = header else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
        })?;
    let canonical = serde_json::to_vec(request).map_err(ApiError::internal)?;
    let fingerprint = crate::pdu::hex::encode(&Sha256::digest(&canonical));
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        fingerprint,
    }))
}

fn accepted_response(message: &Message) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(wire::Accepted::from(message))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/messages/{}", message.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST /v1/messages`: signed `api:<token name>` (a conversational one
/// answers the contact's thread as that app).
pub async fn send(
    State(state): State<ApiState>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<SendRequest>,
) -> Result<Response, ApiError> {
    let author = caller.map(|Extension(Caller(name))| engine::api_author(&name));
    let message = submit_as(
        &state,
        request,
        headers.get("idempotency-key"),
        author,
        |_| Ok(()),
    )
    .await?;
    // A flow starts at accept (a replay finds it started already).
    super::threads::enter_flow(&state.store, &message, Utc::now()).await?;
    Ok(accepted_response(&message))
}

/// The one send path of every API (`/v1` and the compat adapters): validate,
/// compose, then [`admit_and_accept`]. `before_accept` gets the composed
/// message (its id fixed) before it is stored, for what an adapter keeps
/// with it (a callback); a replay returns the original message.
pub(crate) async fn submit(
    state: &ApiState,
    request: SendRequest,
    idempotency: Option<&HeaderValue>,
    before_accept: impl FnOnce(&mut Message) -> Result<(), ApiError>,
) -> Result<Message, ApiError> {
    submit_as(state, request, idempotency, None, before_accept).await
}

/// [`submit`], the message signed by `author` (who wrote it).
pub(crate) async fn submit_as(
    state: &ApiState,
    request: SendRequest,
    idempotency: Option<&HeaderValue>,
    author: Option<String>,
    before_accept: impl FnOnce(&mut Message) -> Result<(), ApiError>,
) -> Result<Message, ApiError> {
    let request = normalize(request, state)?;
    let key = idempotency_key(idempotency, &request)?;
    let now = Utc::now();
    let from = request
        .modem
        .as_deref()
        .and_then(|id| state.dispatcher.statuses().into_iter().find(|s| s.id == id))
        .and_then(|s| s.own_number)
        .unwrap_or_default();
    let mut message = compose::outbound(
        &state.store,
        Draft {
            from: &from,
            to: &request.to,
            body: &request.body,
            status_report: request.status_report,
            send_at: request.send_at,
            max_parts: state.sms.max_parts,
        },
        now,
    )
    .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    message.requested_modem = request.modem.clone();
    message.validity = request.validity;
    message.category = request.category;
    message.idempotency_key = key.as_ref().map(|k| k.key.clone());
    message.flow = request.flow.clone();
    message.context = request.context.clone();
    message.author = author;
    let (message, _new) = admit_and_accept(state, message, &from, key, now, before_accept).await?;
    Ok(message)
}

/// Admit a composed outbound message and accept it, as every API send
/// does (`POST /v1/messages`, the compat APIs, a thread reply): consent
/// first, nobody who opted out is texted, marketing needs evidence (the same
/// check runs again right before AT+CMGS); quiet hours and rate limits
/// defer, never drop. The message as stored, and whether it is new (not a
/// replay).
pub(crate) async fn admit_and_accept(
    state: &ApiState,
    mut message: Message,
    from: &str,
    key: Option<IdempotencyKey>,
    now: DateTime<Utc>,
    before_accept: impl FnOnce(&mut Message) -> Result<(), ApiError>,
) -> Result<(Message, bool), ApiError> {
    let number = (!from.is_empty()).then_some(from);
    state
        .policy
        .admit(&state.store, &mut message, number, now)
        .map_err(|refusal| match refusal {
            Refusal::NotConversational => ApiError::unprocessable(refusal.code(), refusal.text()),
            _ => ApiError::conflict(refusal.code(), refusal.text()),
        })?;
    before_accept(&mut message)?;
    match &state.fleet {
        // Due further ahead than the fence remembers a cancel: this
        // gateway's modems send it.
        Some(_) if crate::fleet::beyond_the_fence(message.not_before, now) => {
            tracing::info!(message_id = %message.id, "fleet: due more than 21 days ahead; kept for this gateway's modems");
        }
        // Sent by whichever gateway takes it from the fleet's work queue.
        Some(fleet) if fleet.connected() => message.fleet = Some(FleetLeg::Handed),
        // Without the broker, this gateway's modems send it (the consent
        // replica's staleness applies as to every send).
        Some(_) => {
            tracing::warn!(message_id = %message.id, "fleet: the broker is away; kept for this gateway's modems");
        }
        None => {}
    }
    match state.store.accept(message, key).await? {
        Accepted::New(message) => {
            hand_to_fleet(state, &message).await?;
            if message.fleet.is_none() {
                state.dispatcher.notify();
            }
            Ok((message, true))
        }
        Accepted::Replay(message) => {
            // A replay of a message whose publication was not acknowledged
            // (the broker was away) publishes it again: the work queue
            // drops a copy within its duplicate window, the fence any later.
            hand_to_fleet(state, &message).await?;
            Ok((message, false))
        }
        Accepted::KeyReused => Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )),
        Accepted::ReplayErased(id) => Err(ApiError::conflict(
            "message_erased",
            format!("this Idempotency-Key made message {id}, since erased with its contact; nothing was sent again"),
        )),
    }
}

/// Publish a message accepted here as handed to the fleet (and still
/// waiting) to the work queue; the caller answers only after this.
async fn hand_to_fleet(state: &ApiState, message: &Message) -> Result<(), ApiError> {
    let (Some(fleet), Some(FleetLeg::Handed)) = (&state.fleet, message.fleet) else {
        return Ok(());
    };
    if !message.status.is_waiting() {
        return Ok(());
    }
    fleet.hand(message).await.map_err(|e| {
        tracing::warn!(message_id = %message.id, error = %e, "fleet: a message could not be handed to the work queue");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "fleet_unavailable",
            format!(
                "message {} is stored but the fleet's broker did not acknowledge it ({e}); retry with the same Idempotency-Key",
                message.id
            ),
        )
    })
}

fn message_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::not_found("no such message"))
}

fn no_such(id: &str) -> ApiError {
    ApiError::not_found(format!("no message {id:?}"))
}

/// `GET /v1/messages/{id}`.
pub async fn get_one(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<wire::Message>, ApiError> {
    let id = message_id(path)?;
    state
        .store
        .get(&id)?
        .map(|m| Json(wire::Message::from(m)))
        .ok_or_else(|| no_such(&id))
}

/// `GET /v1/messages`.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let (filter, paging) = params::message_query(&pairs, &state.sms.default_country)?;
    let page = state
        .store
        .list(&filter, paging.cursor.as_deref(), paging.limit)?;
    Ok(Json(wire::page::<_, wire::Message>(page)).into_response())
}

/// `DELETE /v1/messages/{id}`: only while no part has reached a modem.
pub async fn cancel(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<wire::Message>, ApiError> {
    let id = message_id(path)?;
    Ok(Json(wire::Message::from(
        cancel_message(&state, &id).await?,
    )))
}

/// Cancel `id` if no part has reached a modem (`not_cancellable` otherwise);
/// the one cancel of every API (the rule itself is `Store::cancel_waiting`).
pub(crate) async fn cancel_message(state: &ApiState, id: &str) -> Result<Message, ApiError> {
    fence_cancel(state, id).await?;
    let Some((message, cancelled)) = state
        .store
        .cancel_waiting(id, Utc::now(), "cancelled by API")
        .await?
    else {
        return Err(no_such(id));
    };
    if !cancelled {
        return Err(ApiError::conflict(
            "not_cancellable",
            format!(
                "message is {}: only a message no part of which has reached a modem can be cancelled",
                message.status.as_str()
            ),
        ));
    }
    Ok(message)
}

/// In a fleet, a waiting message may be in another gateway's outbox: the
/// cancel claims it in the fleet's fence first, so that no gateway sends it
/// after; one that another gateway has claimed is past cancelling (the
/// decision is [`claim_for_cancel`], a campaign's cancel's too).
async fn fence_cancel(state: &ApiState, id: &str) -> Result<(), ApiError> {
    let Some(fleet) = &state.fleet else {
        return Ok(());
    };
    let Some(message) = state.store.get(id)? else {
        return Ok(());
    };
    match claim_for_cancel(fleet.as_ref(), &message).await {
        Ok(CancelClaim::Cancel) => Ok(()),
        Ok(CancelClaim::Theirs(site)) => Err(ApiError::conflict(
            "not_cancellable",
            format!("message {id} is being sent by the fleet's site {site:?}: it cannot be cancelled"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "fleet_unavailable",
            format!("the fleet's broker could not be asked whether message {id} is still waiting ({e}); try again"),
        )),
    }
}

/// `POST /v1/messages/{id}/resend`: the only way out of `unknown`, where the
/// gateway cannot tell whether the network took the message; resending is
/// the caller's decision because the recipient may get it twice.
pub async fn resend(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<wire::Message>, ApiError> {
    let id = message_id(path)?;
    if let Some(m) = state.store.get(&id)? {
        if m.fleet == Some(FleetLeg::Handed) {
            return Err(ApiError::conflict(
                "not_resendable_here",
                format!(
                    "message {id} was sent by another gateway of the fleet (modem {}): resend it there",
                    m.modem.as_deref().unwrap_or("unknown")
                ),
            ));
        }
    }
    let now = Utc::now();
    let resent = AtomicBool::new(false);
    let outcome = state
        .store
        .update(&id, |m| {
            let ok = m.status == MessageStatus::Unknown;
            resent.store(ok, Ordering::Relaxed);
            if ok {
                for part in &mut m.part_status {
                    if !matches!(part.status, PartStatus::Sent | PartStatus::Delivered) {
                        *part = Part {
                            seq: part.seq,
                            status: PartStatus::Pending,
                            mr: None,
                            report_status: None,
                        };
                    }
                }
                m.error = None;
                m.transition(now, MessageStatus::Queued).note = Some("resent by API".into());
            }
            ok
        })
        .await?;
    let Some((message, _)) = outcome else {
        return Err(no_such(&id));
    };
    if !resent.load(Ordering::Relaxed) {
        return Err(ApiError::conflict(
            "not_resendable",
            format!(
                "message is {}: only a message in unknown can be resent",
                message.status.as_str()
            ),
        ));
    }
    state.dispatcher.notify();
    Ok(Json(wire::Message::from(message)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validity_forms() {
        assert_eq!(parse_validity(&json!(300)).unwrap(), Some(300));
        assert_eq!(parse_validity(&json!("5m")).unwrap(), Some(300));
        assert_eq!(parse_validity(&json!("24h")).unwrap(), Some(86_400));
        assert_eq!(parse_validity(&json!("7d")).unwrap(), Some(7 * 86_400));
        assert_eq!(parse_validity(&json!("2w")).unwrap(), Some(14 * 86_400));
        // Rounded up to what TP-VP can say.
        assert_eq!(parse_validity(&json!(60)).unwrap(), Some(300));
        assert_eq!(parse_validity(&json!(null)).unwrap(), None);
        for bad in [
            json!(0),
            json!(-5),
            json!(1.5),
            json!("5 minutes"),
            json!("m"),
            json!(""),
            json!("64w"),
            json!(true),
            json!(u64::MAX),
        ] {
            let e = parse_validity(&bad).unwrap_err();
            assert_eq!(e.code, "invalid_validity", "{bad}");
        }
    }

    #[test]
    fn send_at_forms() {
        let t = parse_send_at(&json!("2030-01-31T09:00:00+01:00"))
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2030-01-31T08:00:00+00:00");
        for bad in [json!("tomorrow"), json!(1_700_000_000), json!("2030-01-31")] {
            assert_eq!(parse_send_at(&bad).unwrap_err().code, "invalid_send_at");
        }
    }
}
