//! Contacts and consent: opt-in evidence, manual opt-outs, the ledger and its
//! CSV export, time zones, and erasure.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::json::ApiJson;
use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::store::{ConsentChange, ConsentStatus, ContactProfile, Evidence};
use crate::wire::{ConsentView, ContactView, Erased};

fn contact_of(
    path: Result<Path<String>, PathRejection>,
    state: &ApiState,
) -> Result<String, ApiError> {
    let Path(raw) = path.map_err(|_| ApiError::not_found("no such contact"))?;
    params::contact(&raw, &state.sms.default_country).map_err(|e| {
        ApiError::unprocessable(
            "invalid_number",
            format!("contact: {e} (percent-encode the +, as %2B)"),
        )
    })
}

/// `PUT /v1/contacts/{number}/consent`: an opt-in needs `source` and
/// `evidence`; an opt-out cancels what waits for the contact.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// `opted_in` or `opted_out`.
    #[schema(schema_with = consent_choice)]
    pub status: String,
    /// Opt-in: where the consent was given (web_form, paper, ...).
    #[serde(default)]
    #[schema(nullable = false, example = "web_form")]
    pub source: Option<String>,
    /// Opt-in: the proof (a form id, a URL, the signed text).
    #[serde(default)]
    #[schema(nullable = false, example = "signup form #4411")]
    pub evidence: Option<String>,
    /// Opt-in: when it was given (RFC 3339; default now; not in the future).
    #[serde(default)]
    #[schema(nullable = false, format = DateTime)]
    pub captured_at: Option<String>,
    /// Kept in the ledger.
    #[serde(default)]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// The schema of `ConsentRequest::status` (read by hand, for the
/// `invalid_status` refusal).
fn consent_choice() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["opted_in", "opted_out"]))
        .build()
}

fn view(state: &ApiState, contact: &str) -> Result<ConsentView, ApiError> {
    Ok(ConsentView::new(
        state.store.consent(contact, None)?,
        state.store.ledger(contact)?,
    ))
}

/// Opt the contact out and cancel what waits for them.
async fn opt_out(
    state: &ApiState,
    contact: &str,
    action: &str,
    reason: Option<String>,
) -> Result<(), ApiError> {
    state
        .store
        .change_consent(ConsentChange {
            contact: contact.to_string(),
            status: ConsentStatus::OptedOut,
            action: action.into(),
            reason,
            evidence: None,
            number: None,
        })
        .await?;
    state
        .store
        .fail_waiting_to(
            contact,
            "recipient_opted_out",
            "cancelled: the recipient was opted out",
        )
        .await?;
    Ok(())
}

/// `PUT /v1/contacts/{number}/consent`: opting in needs evidence.
pub async fn put_consent(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<ConsentRequest>,
) -> Result<Json<ConsentView>, ApiError> {
    let contact = contact_of(path, &state)?;
    match request.status.as_str() {
        "opted_out" => opt_out(&state, &contact, "manual_opt_out", request.reason).await?,
        "opted_in" => {
            let source = request.source.filter(|s| !s.trim().is_empty());
            let evidence = request.evidence.filter(|s| !s.trim().is_empty());
            let (Some(source), Some(evidence)) = (source, evidence) else {
                return Err(ApiError::unprocessable(
                    "evidence_required",
                    "opting in needs `source` and `evidence` (how and where consent was given)",
                ));
            };
            let captured_at = match &request.captured_at {
                Some(t) => params::time(t).ok_or_else(|| {
                    ApiError::unprocessable(
                        "invalid_captured_at",
                        "captured_at must be an RFC 3339 time",
                    )
                })?,
                None => Utc::now(),
            };
            if captured_at > Utc::now() + chrono::Duration::minutes(5) {
                return Err(ApiError::unprocessable(
                    "invalid_captured_at",
                    "captured_at is in the future",
                ));
            }
            state
                .store
                .change_consent(ConsentChange {
                    contact: contact.clone(),
                    status: ConsentStatus::OptedIn,
                    action: "opt_in".into(),
                    reason: request.reason,
                    evidence: Some(Evidence {
                        source,
                        evidence,
                        captured_at,
                    }),
                    number: None,
                })
                .await?;
        }
        other => {
            return Err(ApiError::unprocessable(
                "invalid_status",
                format!("status {other:?}: use opted_in or opted_out"),
            ))
        }
    }
    Ok(Json(view(&state, &contact)?))
}

/// `GET /v1/contacts/{number}/consent`.
pub async fn get_consent(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ConsentView>, ApiError> {
    let contact = contact_of(path, &state)?;
    Ok(Json(view(&state, &contact)?))
}

/// `POST /v1/optouts`: opt a number out by hand (a call, an email).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutRequest {
    /// E.164, or national in the default country.
    #[serde(default)]
    #[schema(required = true, example = "+15551234567")]
    pub number: String,
    /// Kept in the ledger.
    #[serde(default)]
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

pub async fn post_optout(
    State(state): State<ApiState>,
    ApiJson(request): ApiJson<OptOutRequest>,
) -> Result<Json<ConsentView>, ApiError> {
    let contact = crate::phone::normalize(&request.number, &state.sms.default_country)
        .map_err(|e| ApiError::unprocessable("invalid_number", format!("number: {e}")))?;
    opt_out(&state, &contact, "manual_opt_out", request.reason).await?;
    Ok(Json(view(&state, &contact)?))
}

/// `PUT /v1/contacts/{number}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    /// IANA time zone for quiet hours; absent or null clears it.
    #[serde(default)]
    #[schema(example = "America/Chicago")]
    pub time_zone: Option<String>,
}

pub async fn put_contact(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    ApiJson(request): ApiJson<ContactRequest>,
) -> Result<Json<ContactView>, ApiError> {
    let contact = contact_of(path, &state)?;
    if let Some(zone) = &request.time_zone {
        if zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::unprocessable(
                "invalid_time_zone",
                format!("{zone:?} is not an IANA time zone (e.g. America/Chicago)"),
            ));
        }
    }
    let profile = ContactProfile {
        time_zone: request.time_zone,
    };
    state.store.set_profile(&contact, &profile).await?;
    Ok(Json(ContactView {
        consent: state.store.consent(&contact, None)?.status.into(),
        contact,
        time_zone: profile.time_zone,
    }))
}

pub async fn get_contact(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ContactView>, ApiError> {
    let contact = contact_of(path, &state)?;
    Ok(Json(ContactView {
        time_zone: state.store.profile(&contact)?.time_zone,
        consent: state.store.consent(&contact, None)?.status.into(),
        contact,
    }))
}

/// `DELETE /v1/contacts/{number}`: erase messages and details.
pub async fn delete_contact(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Erased>, ApiError> {
    let contact = contact_of(path, &state)?;
    let erased_messages = state.store.erase_contact(&contact).await?;
    let opt_out_kept = state.store.consent(&contact, None)?.status == ConsentStatus::OptedOut;
    Ok(Json(Erased {
        contact,
        erased_messages: u64::try_from(erased_messages).unwrap_or(u64::MAX),
        opt_out_kept,
    }))
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// `GET /v1/consent/export`: the whole ledger as CSV.
pub async fn export(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut out = String::from(
        "id,at,contact,action,status,source,inbound_message_id,matched,gateway_number,reason,evidence_source,evidence,captured_at\n",
    );
    for entry in state.store.ledger_all() {
        let e = entry?;
        let evidence = e.evidence.as_ref();
        let row = [
            e.id.clone(),
            e.at.to_rfc3339(),
            e.contact.clone(),
            e.action.clone(),
            e.status.as_str().to_string(),
            e.source.clone(),
            e.inbound_message_id.clone().unwrap_or_default(),
            e.matched.clone().unwrap_or_default(),
            e.gateway_number.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            evidence.map(|v| v.source.clone()).unwrap_or_default(),
            evidence.map(|v| v.evidence.clone()).unwrap_or_default(),
            evidence
                .map(|v| v.captured_at.to_rfc3339())
                .unwrap_or_default(),
        ];
        out.push_str(
            &row.iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"consent-ledger.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"STOP\""), "\"say \"\"STOP\"\"\"");
    }
}
