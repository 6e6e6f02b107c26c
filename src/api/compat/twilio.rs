//! Twilio's Programmable Messaging REST API (`2010-04-01`), the part apps
//! use to text: create, fetch, list, cancel. Every request is checked with
//! HTTP Basic auth (`AccountSid:AuthToken`, the token compared by SHA-256 in
//! constant time), then goes through the gateway's one send path
//! (`messages::submit`) or the store's queries. Refusals are Twilio's error
//! JSON with Twilio's codes where one exists.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Callback, TwilioAccount};
use crate::api::messages::{self, SendRequest};
use crate::api::{ApiError, ApiState, Scope};
use crate::store::{Direction, Message, MessageFilter, MessageStatus};

/// The API version in every path and resource.
pub const API_VERSION: &str = "2010-04-01";

/// Twilio's `PageSize` default and maximum.
const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// An error as Twilio answers it: `{code, message, more_info, status}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioError {
    pub status: StatusCode,
    /// Twilio's error code (<https://www.twilio.com/docs/api/errors>).
    pub code: u32,
    pub message: String,
}

impl TwilioError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(code: u32, message: impl Into<String>) -> TwilioError {
        TwilioError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn unauthorized() -> TwilioError {
        TwilioError::new(StatusCode::UNAUTHORIZED, 20003, "Authenticate")
    }

    fn not_found(what: &str) -> TwilioError {
        TwilioError::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {what} was not found"),
        )
    }

    /// The gateway's own refusal, in Twilio's words where Twilio has a code
    /// for the same thing (`code` 0 otherwise: apps branch on the status).
    fn from_api(e: ApiError, to: &str, from: Option<&str>) -> TwilioError {
        let bad = |code, message: String| TwilioError::bad(code, message);
        match e.code {
            "invalid_number" => bad(
                21211,
                format!("The 'To' number {to} is not a valid phone number."),
            ),
            "body_empty" => bad(21602, "Message body is required.".into()),
            "body_too_long" => bad(
                21617,
                format!("The concatenated message body exceeds the limit: {}", e.detail),
            ),
            "recipient_opted_out" => bad(
                21610,
                "Attempt to send to unsubscribed recipient".into(),
            ),
            "unknown_modem" => bad(
                21606,
                format!(
                    "The From phone number {} is not a valid, SMS-capable inbound phone number or short code for your account.",
                    from.unwrap_or("")
                ),
            ),
            "invalid_validity" => bad(21624, format!("Invalid validity period value: {}", e.detail)),
            "invalid_send_at" => bad(35115, format!("SendAt: {}", e.detail)),
            "not_cancellable" => bad(30409, format!("This message cannot be canceled: {}", e.detail)),
            "not_found" => TwilioError::not_found(&e.detail),
            "internal" | "timeout" => TwilioError::new(e.status, 20500, e.detail),
            // Quiet-hour and consent refusals Twilio has no code for: our
            // code in the words, the status as the gateway gives it.
            _ => TwilioError::new(
                if e.status.is_server_error() {
                    e.status
                } else {
                    StatusCode::BAD_REQUEST
                },
                0,
                format!("{}: {}", e.code, e.detail),
            ),
        }
    }
}

impl From<crate::store::StoreError> for TwilioError {
    fn from(e: crate::store::StoreError) -> TwilioError {
        TwilioError::from_api(ApiError::from(e), "", None)
    }
}

impl IntoResponse for TwilioError {
    fn into_response(self) -> Response {
        let more_info = if self.code == 0 {
            Value::Null
        } else {
            Value::String(format!("https://www.twilio.com/docs/errors/{}", self.code))
        };
        let body = serde_json::json!({
            "code": if self.code == 0 { Value::Null } else { Value::from(self.code) },
            "message": self.message,
            "more_info": more_info,
            "status": self.status.as_u16(),
        });
        (self.status, Json(body)).into_response()
    }
}

/// `SM` + 32 hex digits for our id `msg_` + 28: the id's hex, then four of
/// its SHA-256 (so a made-up sid is rarely an id). Reversible: [`id_of`].
pub fn sid_of(id: &str) -> String {
    let hex = id.strip_prefix("msg_").unwrap_or(id);
    let check = crate::pdu::hex::encode(&Sha256::digest(hex.as_bytes())).to_ascii_lowercase();
    format!("SM{}{}", hex.to_ascii_lowercase(), &check[..4])
}

/// Our message id of a Twilio sid (None: not one of ours).
pub fn id_of(sid: &str) -> Option<String> {
    if !super::is_sid("SM", sid) {
        return None;
    }
    let hex = sid[2..30].to_ascii_lowercase();
    let id = format!("msg_{hex}");
    (sid_of(&id).eq_ignore_ascii_case(sid)).then_some(id)
}

/// Twilio's status of a message (the table).
pub fn status(message: &Message) -> &'static str {
    match message.status {
        MessageStatus::Queued => "queued",
        MessageStatus::Scheduled | MessageStatus::Deferred => "scheduled",
        // Unknown: handed to a modem, outcome not known; a resend or a
        // report settles it.
        MessageStatus::Sending | MessageStatus::Unknown => "sending",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Failed if has_network_report(message) => "undelivered",
        // No final report within validity + 1 h: not known to have arrived.
        MessageStatus::Expired => "undelivered",
        MessageStatus::Failed => "failed",
        MessageStatus::Cancelled => "canceled",
        MessageStatus::Received => "received",
    }
}

/// The network reported on a part (a status report came): a failure is then
/// the network's (`undelivered`), not the gateway's or the modem's.
fn has_network_report(message: &Message) -> bool {
    message
        .part_status
        .iter()
        .any(|p| p.report_status.is_some())
}

/// Twilio's `error_code` and `error_message` of a failed message.
pub fn error(message: &Message) -> (Option<u32>, Option<String>) {
    let Some(e) = &message.error else {
        return (None, None);
    };
    if !matches!(
        message.status,
        MessageStatus::Failed | MessageStatus::Expired
    ) {
        return (None, None);
    }
    let code = match e.code.as_str() {
        "recipient_opted_out" => 21610,
        _ if message.status == MessageStatus::Expired => 30036,
        // 30008: Twilio's "Unknown error"; the words say what it was.
        _ => 30008,
    };
    (Some(code), Some(format!("{}: {}", e.code, e.text)))
}

/// When the network took the message (its first `sent`).
fn date_sent(message: &Message) -> Option<DateTime<Utc>> {
    match message.direction {
        Direction::Inbound => Some(message.network_time.unwrap_or(message.created_at)),
        Direction::Outbound => message
            .history
            .iter()
            .find(|t| t.status == MessageStatus::Sent)
            .map(|t| t.at),
    }
}

/// Twilio's date format: RFC 2822 with `+0000`.
fn date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// Twilio's Message resource.
#[derive(Debug, Serialize)]
pub struct Resource {
    pub account_sid: String,
    pub api_version: &'static str,
    pub body: String,
    pub date_created: String,
    pub date_sent: Option<String>,
    pub date_updated: String,
    pub direction: &'static str,
    pub error_code: Option<u32>,
    pub error_message: Option<String>,
    pub from: String,
    pub messaging_service_sid: Option<String>,
    pub num_media: &'static str,
    pub num_segments: String,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub sid: String,
    pub status: &'static str,
    pub subresource_uris: Value,
    pub to: String,
    pub uri: String,
}

impl Resource {
    pub fn new(message: &Message, account_sid: &str, config: &super::CompatConfig) -> Resource {
        let sid = sid_of(&message.id);
        let base = format!("/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}");
        let (error_code, error_message) = error(message);
        let sent = !matches!(
            message.status,
            MessageStatus::Queued
                | MessageStatus::Scheduled
                | MessageStatus::Deferred
                | MessageStatus::Cancelled
        );
        let price = match (message.direction, &message.modem, sent) {
            (Direction::Outbound, Some(modem), true) => {
                config.price.iter().find(|p| &p.modem == modem)
            }
            _ => None,
        };
        Resource {
            account_sid: account_sid.to_string(),
            api_version: API_VERSION,
            body: message.body.clone(),
            date_created: date(message.created_at),
            date_sent: date_sent(message).map(date),
            date_updated: date(message.updated_at),
            direction: match message.direction {
                Direction::Outbound => "outbound-api",
                Direction::Inbound => "inbound",
            },
            error_code,
            error_message,
            from: message.from.clone(),
            messaging_service_sid: None,
            num_media: "0",
            num_segments: message.parts.to_string(),
            price: price.map(|p| p.per_part.charge(u64::from(message.parts))),
            price_unit: price.map(|p| p.unit.clone()),
            sid,
            status: status(message),
            subresource_uris: serde_json::json!({ "media": format!("{base}/Media.json") }),
            to: message.to.clone(),
            uri: format!("{base}.json"),
        }
    }
}

/// The account a request's Basic auth names, if its token is right, it is
/// the account of the path, and its scope allows `scope` ("send" reads too).
fn authenticate<'a>(
    state: &'a ApiState,
    headers: &HeaderMap,
    account: &str,
    scope: Scope,
) -> Result<&'a TwilioAccount, TwilioError> {
    let (user, password) = basic(headers).ok_or_else(TwilioError::unauthorized)?;
    let presented = crate::api::auth::digest(&password);
    // Every account compared, found or not: the time says nothing.
    let mut found = None;
    for a in &state.compat.twilio {
        let token = crate::api::auth::constant_time_eq(&a.auth_token_sha256, &presented);
        if token && a.account_sid == user && found.is_none() {
            found = Some(a);
        }
    }
    let a = found.ok_or_else(TwilioError::unauthorized)?;
    if a.account_sid != account {
        return Err(TwilioError::unauthorized());
    }
    if scope == Scope::Send && a.scope == Scope::Read {
        return Err(TwilioError::new(
            StatusCode::FORBIDDEN,
            20003,
            "this account may only read messages (scope = \"read\")",
        ));
    }
    Ok(a)
}

/// `Authorization: Basic base64(user:password)` (RFC 7617).
pub fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn form_error(e: FormRejection) -> TwilioError {
    TwilioError::bad(
        0,
        format!("the request must be form-encoded (application/x-www-form-urlencoded): {e}"),
    )
}

/// One form value (the last, if repeated).
fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The modem whose own number is `from` (None: no modem has it).
fn modem_of(state: &ApiState, from: &str) -> Option<String> {
    let number = crate::phone::normalize(from, &state.sms.default_country).ok()?;
    state
        .dispatcher
        .statuses()
        .into_iter()
        .find(|s| s.own_number.as_deref() == Some(number.as_str()))
        .map(|s| s.id)
}

/// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub async fn create(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, TwilioError> {
    let a = authenticate(&state, &headers, &account, Scope::Send)?;
    let Form(pairs) = form.map_err(form_error)?;
    let to = field(&pairs, "To").unwrap_or("").trim().to_string();
    if to.is_empty() {
        return Err(TwilioError::bad(21604, "A 'To' phone number is required."));
    }
    let body = field(&pairs, "Body").unwrap_or("");
    if body.is_empty() {
        return Err(TwilioError::bad(21602, "Message body is required."));
    }
    let from = field(&pairs, "From")
        .map(str::trim)
        .filter(|f| !f.is_empty());
    let modem = match from {
        None => None,
        Some(f) => Some(modem_of(&state, f).ok_or_else(|| {
            TwilioError::from_api(ApiError::unprocessable("unknown_modem", ""), &to, Some(f))
        })?),
    };
    let send_at = field(&pairs, "SendAt");
    if send_at.is_some() && field(&pairs, "ScheduleType") != Some("fixed") {
        return Err(TwilioError::bad(35115, "SendAt needs ScheduleType=fixed"));
    }
    let callback = match field(&pairs, "StatusCallback").filter(|u| !u.is_empty()) {
        None => None,
        Some(url) => {
            if !url.starts_with("http://") || url.len() <= "http://".len() {
                return Err(TwilioError::bad(
                    21609,
                    format!("The StatusCallback URL {url} is not a valid URL: the gateway calls http:// URLs (put a TLS proxy in front for https)"),
                ));
            }
            if a.signing_token.is_none() {
                return Err(TwilioError::bad(
                    21609,
                    "StatusCallback needs the account's signing_token in [[compat.twilio]] (callbacks are signed with it)",
                ));
            }
            Some(Callback::Twilio {
                account_sid: a.account_sid.clone(),
                url: url.to_string(),
            })
        }
    };
    let request = SendRequest {
        to: to.clone(),
        body: body.to_string(),
        modem,
        status_report: None,
        validity: field(&pairs, "ValidityPeriod").map(|v| Value::String(v.to_string())),
        send_at: send_at.map(|v| Value::String(v.to_string())),
        category: None,
        flow: None,
        context: None,
    };
    // Twilio's clients retry with the same I-Twilio-Idempotency-Token: our
    // Idempotency-Key.
    let key = headers
        .get("i-twilio-idempotency-token")
        .or_else(|| headers.get("idempotency-key"));
    let message = messages::submit(&state, request, key, |m| match &callback {
        Some(c) => c.attach(m).map_err(ApiError::from),
        None => Ok(()),
    })
    .await
    .map_err(|e| TwilioError::from_api(e, &to, from))?;
    let resource = Resource::new(&message, &a.account_sid, &state.compat);
    let mut response = (StatusCode::CREATED, Json(&resource)).into_response();
    if let Ok(location) = HeaderValue::from_str(&resource.uri) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The message of a `{Sid}.json` path segment.
fn message_of(state: &ApiState, segment: &str) -> Result<Message, TwilioError> {
    let sid = segment.strip_suffix(".json").unwrap_or(segment);
    let not_found = || TwilioError::not_found(&format!("/Messages/{sid}.json"));
    let id = id_of(sid).ok_or_else(not_found)?;
    state.store.get(&id)?.ok_or_else(not_found)
}

/// `GET .../Messages/{Sid}.json`.
pub async fn fetch(
    State(state): State<ApiState>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Resource>, TwilioError> {
    let a = authenticate(&state, &headers, &account, Scope::Read)?;
    let message = message_of(&state, &sid)?;
    Ok(Json(Resource::new(&message, &a.account_sid, &state.compat)))
}

/// `POST .../Messages/{Sid}.json` with `Status=canceled` (the one update
/// supported: cancelling a message that has not reached a modem).
pub async fn update(
    State(state): State<ApiState>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Json<Resource>, TwilioError> {
    let a = authenticate(&state, &headers, &account, Scope::Send)?;
    let Form(pairs) = form.map_err(form_error)?;
    let message = message_of(&state, &sid)?;
    match field(&pairs, "Status") {
        Some("canceled") => {}
        _ => {
            return Err(TwilioError::bad(
                0,
                "only Status=canceled is supported (redacting Body is not)",
            ))
        }
    }
    let cancelled = messages::cancel_message(&state, &message.id)
        .await
        .map_err(|e| TwilioError::from_api(e, &message.to, None))?;
    Ok(Json(Resource::new(
        &cancelled,
        &a.account_sid,
        &state.compat,
    )))
}

/// `DELETE .../Messages/{Sid}.json`: 204 once cancelled. The record is kept
/// (consent and audit need it); a message that has reached a modem is
/// refused with 30409.
pub async fn delete(
    State(state): State<ApiState>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, TwilioError> {
    authenticate(&state, &headers, &account, Scope::Send)?;
    let message = message_of(&state, &sid)?;
    if message.status == MessageStatus::Cancelled {
        return Ok(StatusCode::NO_CONTENT);
    }
    messages::cancel_message(&state, &message.id)
        .await
        .map_err(|e| TwilioError::from_api(e, &message.to, None))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A `DateSent` filter value: a date (`2024-05-01`) or an ISO 8601 time.
fn date_filter(value: &str) -> Option<DateTime<Utc>> {
    if let Some(t) = crate::api::params::time(value) {
        return Some(t);
    }
    let day = chrono::NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

/// `GET .../Messages.json` with `To`, `From`, `DateSent`, `DateSent>`,
/// `DateSent<`, `PageSize`, and Twilio's paging (`Page`, `PageToken`: the
/// store's cursor).
pub async fn list(
    State(state): State<ApiState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, TwilioError> {
    let a = authenticate(&state, &headers, &account, Scope::Read)?;
    let Query(pairs) = query.map_err(|e| TwilioError::bad(0, e.body_text()))?;
    let country = &state.sms.default_country;
    let number = |name: &str, code: u32| -> Result<Option<String>, TwilioError> {
        match field(&pairs, name).map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => crate::phone::normalize(v, country)
                .map(Some)
                .map_err(|e| TwilioError::bad(code, format!("{name}: {e}"))),
        }
    };
    let to = number("To", 21211)?;
    let from = number("From", 21212)?;
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, TwilioError> {
        match field(&pairs, name) {
            None => Ok(None),
            Some(v) => date_filter(v).map(Some).ok_or_else(|| {
                TwilioError::bad(
                    0,
                    format!("{name} must be a date (2024-05-01) or an ISO 8601 time"),
                )
            }),
        }
    };
    let on = time("DateSent")?;
    let after = time("DateSent>")?.or(on);
    let before = time("DateSent<")?.or(on.map(|d| d + chrono::Duration::days(1)));
    let page_size = match field(&pairs, "PageSize") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| TwilioError::bad(0, format!("PageSize must be 1 to {MAX_PAGE_SIZE}")))?,
    };
    let page: u64 = field(&pairs, "Page")
        .map(|v| {
            v.parse()
                .map_err(|_| TwilioError::bad(0, "Page must be a number"))
        })
        .transpose()?
        .unwrap_or(0);
    let token = field(&pairs, "PageToken").filter(|t| !t.is_empty());
    // The thread of the other party when one is named (the store's index);
    // the rest is filtered on the page.
    let ours = |n: &str| {
        state
            .dispatcher
            .statuses()
            .iter()
            .any(|s| s.own_number.as_deref() == Some(n))
    };
    let contact = match (&to, &from) {
        (Some(t), _) if !ours(t) => Some(t.clone()),
        (_, Some(f)) if !ours(f) => Some(f.clone()),
        _ => None,
    };
    let filter = MessageFilter {
        contact,
        since: after,
        ..MessageFilter::default()
    };
    let found = state
        .store
        .list(&filter, token, page_size)
        .map_err(|e| match e {
            crate::store::StoreError::InvalidCursor => {
                TwilioError::bad(0, "PageToken is not valid")
            }
            e => TwilioError::from(e),
        })?;
    let items: Vec<Resource> = found
        .items
        .iter()
        .filter(|m| to.as_ref().is_none_or(|t| &m.to == t))
        .filter(|m| from.as_ref().is_none_or(|f| &m.from == f))
        .filter(|m| before.is_none_or(|b| m.created_at < b))
        .map(|m| Resource::new(m, &a.account_sid, &state.compat))
        .collect();
    // The query as given, without the paging, for the page URIs.
    let kept: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "Page" | "PageSize" | "PageToken"))
        .cloned()
        .collect();
    let uri = |page: u64, token: Option<&str>| {
        let mut q = kept.clone();
        q.push(("PageSize".into(), page_size.to_string()));
        q.push(("Page".into(), page.to_string()));
        if let Some(t) = token {
            q.push(("PageToken".into(), t.to_string()));
        }
        let q: Vec<String> = q
            .iter()
            .map(|(k, v)| format!("{}={}", super::url_encode(k), super::url_encode(v)))
            .collect();
        format!(
            "/{API_VERSION}/Accounts/{}/Messages.json?{}",
            a.account_sid,
            q.join("&")
        )
    };
    let start = page.saturating_mul(page_size as u64);
    Ok(Json(serde_json::json!({
        "end": start + (items.len() as u64).saturating_sub(1),
        "first_page_uri": uri(0, None),
        "next_page_uri": found.next_cursor.as_deref().map(|c| uri(page + 1, Some(c))),
        "page": page,
        "page_size": page_size,
        "previous_page_uri": Value::Null,
        "start": start,
        "uri": uri(page, token),
        "messages": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_map_ids_both_ways() {
        let id = "msg_018f2a7c3b1d9e37a1c40000beef";
        let sid = sid_of(id);
        assert!(super::super::is_sid("SM", &sid), "{sid}");
        assert_eq!(id_of(&sid).as_deref(), Some(id));
        assert_eq!(id_of(&sid.to_ascii_uppercase()).as_deref(), Some(id));
        // A made-up sid of the right form is not an id.
        let mut other = sid.clone().into_bytes();
        other[33] = if other[33] == b'0' { b'1' } else { b'0' };
        assert_eq!(id_of(&String::from_utf8(other).unwrap()), None);
        assert_eq!(id_of("SM12"), None);
        assert_eq!(id_of(&format!("MM{}", &sid[2..])), None);
    }

    #[test]
    fn dates_are_rfc_2822_as_twilio_writes_them() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T09:03:04Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(date(at), "Wed, 01 May 2024 09:03:04 +0000");
        assert_eq!(
            date_filter("2024-05-01"),
            Some(at - chrono::Duration::seconds(9 * 3600 + 184))
        );
    }

    #[test]
    fn basic_auth_header() {
        let mut h = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("ACx:tok:en");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {encoded}").parse().unwrap(),
        );
        assert_eq!(basic(&h), Some(("ACx".into(), "tok:en".into())));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic(&h), None);
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic(&h), None);
    }
}
