//! `/v1/campaigns`: create (202: stored durably with its recipient list; the
//! daemon's campaign task accepts the recipients in batches), read progress,
//! list, list the recipients refused with an error, cancel.

use std::collections::HashSet;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::json::ApiJson;
use super::messages::{idempotency_key, parse_send_at};
use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::conversation::campaigns::{self as campaigns, CampaignSpec, VariantSpec};
use crate::store::{CampaignCreated, CampaignRecord, RecipientError};
use crate::wire;

/// The largest `POST /v1/campaigns` body: 100,000 numbers as JSON strings
/// take about 1.7 MB.
pub const CAMPAIGN_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// `POST /v1/campaigns`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRequest {
    #[serde(default)]
    #[schema(required = true, example = "Spring check-ups")]
    pub name: String,
    /// The text, with `{{placeholders}}` filled per recipient from the
    /// contact's fields and `context` (a recipient without a value is listed
    /// as an error, not sent a blank). Variants without a template use it.
    #[serde(default)]
    #[schema(nullable = false, example = "Hi, your check-up is due. Book: {{url}}")]
    pub template: Option<String>,
    #[serde(default)]
    #[schema(required = true)]
    pub recipients: Option<CampaignRecipientsRequest>,
    /// A/B texts, chosen per recipient at random by weight (the same
    /// recipient always gets the same one). Default: one variant `a` with
    /// `template`.
    #[serde(default)]
    #[schema(nullable = false)]
    pub variants: Option<Vec<CampaignVariantRequest>>,
    /// transactional, conversational or marketing (required).
    #[serde(default)]
    #[schema(schema_with = category_schema)]
    pub category: Option<String>,
    /// `appointment`, `payment`, `rating` or `lead`: the flow each message
    /// puts its thread in.
    #[serde(default)]
    #[schema(nullable = false)]
    pub flow: Option<String>,
    /// Values for the templates and the flow (slots, url, questions).
    #[serde(default)]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub context: Option<Value>,
    /// Schedule every message for this time (RFC 3339).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, nullable = false)]
    pub send_at: Option<Value>,
}

/// `category` (required; read by hand, for the `invalid_category` refusal).
fn category_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["transactional", "conversational", "marketing"]))
        .description(Some("Required. Marketing needs recorded opt-in evidence and waits out quiet hours; conversational reaches only contacts who wrote."))
        .build()
}

/// Who receives a campaign: `numbers` or `tag`, not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignRecipientsRequest {
    /// Up to 100,000 numbers, E.164 or national in the default country;
    /// repeats are skipped, bad ones listed as errors.
    #[serde(default)]
    #[schema(nullable = false)]
    pub numbers: Option<Vec<String>>,
    /// Every contact with this tag.
    #[serde(default)]
    #[schema(nullable = false)]
    pub tag: Option<String>,
}

/// One A/B variant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignVariantRequest {
    /// 1 to 32 letters, digits, `_` or `-`; recorded on each message.
    #[serde(default)]
    #[schema(required = true, example = "a")]
    pub id: String,
    /// Default: the campaign's template.
    #[serde(default)]
    #[schema(nullable = false)]
    pub template: Option<String>,
    /// Relative weight, 1 to 1,000,000 (default 1).
    #[serde(default)]
    #[schema(nullable = false, minimum = 1, maximum = 1_000_000)]
    pub weight: Option<u32>,
}

/// A request after validation: what the idempotency fingerprint is taken
/// over.
#[derive(Serialize)]
struct Fingerprinted<'a> {
    plan: &'a campaigns::Plan,
    recipients: &'a [String],
    errors: usize,
}

fn refused(e: campaigns::CampaignError) -> ApiError {
    ApiError::unprocessable(e.code, e.detail)
}

/// The wire campaign, with each variant's metrics.
fn view(state: &ApiState, record: &CampaignRecord) -> wire::Campaign {
    let today = Utc::now().date_naive();
    wire::Campaign::new(record, |variant| {
        match campaigns::variant_metrics(&state.store, record, variant, today) {
            Ok(summary) => serde_json::to_value(wire::MetricsSummary::new(
                summary,
                &state.conversation.currency,
            ))
            .ok(),
            Err(e) => {
                tracing::warn!(campaign = %record.id, error = %e, "campaign metrics unreadable");
                None
            }
        }
    })
}

fn campaign_response(state: &ApiState, record: &CampaignRecord) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(view(state, record))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/campaigns/{}", record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `POST /v1/campaigns`.
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<CampaignRequest>,
) -> Result<Response, ApiError> {
    let send_at = match &request.send_at {
        Some(v) => parse_send_at(v)?,
        None => None,
    };
    let plan = campaigns::plan(CampaignSpec {
        name: request.name,
        template: request.template,
        variants: request.variants.map(|vs| {
            vs.into_iter()
                .map(|v| VariantSpec {
                    id: v.id,
                    template: v.template,
                    weight: v.weight,
                })
                .collect()
        }),
        category: request.category,
        flow: request.flow,
        context: request.context,
        send_at,
    })
    .map_err(refused)?;
    let given: Vec<String> = match request.recipients {
        Some(CampaignRecipientsRequest {
            numbers: Some(numbers),
            tag: None,
        }) => numbers,
        Some(CampaignRecipientsRequest {
            numbers: None,
            tag: Some(tag),
        }) => {
            let mut all = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let (page, next) =
                    campaigns::recipients_with_tag(&state.store, &tag, cursor.as_deref(), 1000)?;
                all.extend(page);
                if all.len() > campaigns::MAX_RECIPIENTS {
                    break;
                }
                match next {
                    Some(n) => cursor = Some(n),
                    None => break,
                }
            }
            all
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_recipients",
                "recipients must be {\"numbers\": [...]} or {\"tag\": \"...\"}",
            ))
        }
    };
    if given.is_empty() || given.len() > campaigns::MAX_RECIPIENTS {
        return Err(ApiError::unprocessable(
            "invalid_recipients",
            format!(
                "a campaign has 1 to {} recipients; this one has {}",
                campaigns::MAX_RECIPIENTS,
                given.len()
            ),
        ));
    }
    // Normalised and deduplicated now: the stored list is what the task sends to.
    let mut seen: HashSet<String> = HashSet::with_capacity(given.len());
    let mut listed: Vec<String> = Vec::with_capacity(given.len());
    let mut errors: Vec<RecipientError> = Vec::new();
    let mut duplicates = 0u64;
    for raw in &given {
        match crate::phone::normalize(raw, &state.sms.default_country) {
            Ok(number) => {
                if seen.insert(number.clone()) {
                    listed.push(number);
                } else {
                    duplicates += 1;
                }
            }
            Err(e) => errors.push(RecipientError {
                number: raw.clone(),
                code: "invalid_number".into(),
                detail: e.to_string(),
            }),
        }
    }
    drop(seen);
    let now = Utc::now();
    let id = state.store.new_campaign_id(now);
    let mut record = plan.record(id, given.len() as u64, listed.len() as u64, now);
    if duplicates > 0 {
        record
            .progress
            .skipped
            .insert("duplicate".into(), duplicates);
    }
    record.progress.errors = errors.len() as u64;
    // As `POST /v1/messages` reads it, fingerprinted over the request as
    // validated (the same numbers written another way are the same request).
    let key = idempotency_key(
        headers.get("idempotency-key"),
        &Fingerprinted {
            plan: &plan,
            recipients: &listed,
            errors: errors.len(),
        },
    )?;
    match state
        .store
        .create_campaign(&record, &listed, &errors, key.as_ref())
        .await?
    {
        CampaignCreated::New => Ok(campaign_response(&state, &record)),
        CampaignCreated::Replay(original) => Ok(campaign_response(&state, &original)),
        CampaignCreated::KeyReused => Err(ApiError::unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )),
    }
}

fn campaign_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::not_found("no such campaign"))
}

fn no_such(id: &str) -> ApiError {
    ApiError::not_found(format!("no campaign {id:?}"))
}

/// `GET /v1/campaigns/{id}`.
pub async fn get_one(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<wire::Campaign>, ApiError> {
    let id = campaign_id(path)?;
    let record = state.store.campaign(&id)?.ok_or_else(|| no_such(&id))?;
    Ok(Json(view(&state, &record)))
}

/// `GET /v1/campaigns`: newest first.
pub async fn list(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<wire::Page<wire::Campaign>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let paging = params::paging(&pairs)?;
    let page = state
        .store
        .campaigns(paging.cursor.as_deref(), paging.limit)?;
    Ok(Json(wire::Page {
        items: page.items.iter().map(|r| view(&state, r)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// `GET /v1/campaigns/{id}/errors`: the recipients refused with an error.
pub async fn errors(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<wire::Page<wire::CampaignError>>, ApiError> {
    let id = campaign_id(path)?;
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let paging = params::paging(&pairs)?;
    let after = match paging.cursor.as_deref() {
        None => 0,
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_query("cursor: use next_cursor of the previous page"))?,
    };
    let record = state.store.campaign(&id)?.ok_or_else(|| no_such(&id))?;
    if let Some(site) = &record.site {
        return Err(ApiError::conflict(
            "campaign_elsewhere",
            format!("campaign {id:?} was created at site {site:?}: its errors are listed there"),
        ));
    }
    let page = state.store.campaign_errors(&id, after, paging.limit)?;
    Ok(Json(wire::page(page)))
}

/// `POST /v1/campaigns/{id}/cancel`: 202; no more recipients are accepted and
/// the campaign task cancels every message that has not reached a modem
/// (the campaign is `cancelled` when it is done).
pub async fn cancel(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = campaign_id(path)?;
    let record = match state.store.request_campaign_cancel(&id).await? {
        Some(record) => record,
        // Another gateway's (in a fleet): passed on to it.
        None => state
            .store
            .request_remote_campaign_cancel(&id)
            .await?
            .ok_or_else(|| no_such(&id))?,
    };
    Ok((StatusCode::ACCEPTED, Json(view(&state, &record))).into_response())
}
