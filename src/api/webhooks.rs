//! `/v1/webhooks`: the endpoints and their state (disabled by a 410, pending
//! and dead counts, last success and failure), the deliveries by status (the
//! dead letters among them), retrying a delivery now, re-enabling an endpoint.
//! The worker hears of retries and enables through the store.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;

use super::auth::{self, Scope};
use super::params;
use super::problem::ApiError;
use super::ApiState;
use crate::store::{DeliveryFilter, DeliveryStatus};
use crate::wire::{self, Delivery, Page, WebhookEndpoint};

/// `GET /v1/webhooks`: every configured endpoint (one page). Receiver URLs
/// carry secrets in their user-info or query: only an `admin` token sees
/// them whole (the route itself needs `read`).
pub async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<Page<WebhookEndpoint>>, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let admin = auth::authorize(&state.tokens, authorization, Scope::Admin).is_ok();
    Ok(Json(Page {
        items: state
            .store
            .webhooks()?
            .into_iter()
            .map(|e| WebhookEndpoint::new(e, admin))
            .collect(),
        next_cursor: None,
    }))
}

/// `status`, `endpoint`, then `limit` and `cursor`.
fn delivery_query(
    pairs: Vec<(String, String)>,
) -> Result<(DeliveryFilter, params::Paging), ApiError> {
    let mut filter = DeliveryFilter::default();
    let mut rest = Vec::new();
    let mut seen = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "status" | "endpoint" if seen.contains(&key) => {
                return Err(ApiError::invalid_query(format!("{key} is given twice")));
            }
            "status" => {
                filter.status = Some(DeliveryStatus::parse(&value).ok_or_else(|| {
                    ApiError::invalid_query("status must be pending, failed, delivered or dead")
                })?);
                seen.push(key);
            }
            "endpoint" => {
                filter.endpoint = Some(value);
                seen.push(key);
            }
            _ => rest.push((key, value)),
        }
    }
    Ok((filter, params::paging(&rest)?))
}

/// `GET /v1/webhooks/deliveries?status=&endpoint=&limit=&cursor=`.
pub async fn deliveries(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::invalid_query(e.body_text()))?;
    let (filter, paging) = delivery_query(pairs)?;
    Ok(Json(wire::page(state.store.list_deliveries(
        &filter,
        paging.cursor.as_deref(),
        paging.limit,
    )?)))
}

/// `POST /v1/webhooks/deliveries/{id}/retry`: due now, with a fresh
/// schedule, signed afresh when it goes.
pub async fn retry(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such delivery"))?;
    let current = state
        .store
        .delivery(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id:?}")))?;
    if current.status == DeliveryStatus::Delivered {
        return Err(ApiError::conflict(
            "already_delivered",
            "this delivery was already delivered; GET /v1/events replays events",
        ));
    }
    let delivery = state
        .store
        .retry_delivery(&id, Utc::now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no delivery {id:?}")))?;
    Ok((StatusCode::ACCEPTED, Json(Delivery::from(delivery))))
}

/// `POST /v1/webhooks/{id}/enable`: resume an endpoint a 410 disabled.
pub async fn enable(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    let Path(id) = path.map_err(|_| ApiError::not_found("no such webhook"))?;
    state
        .store
        .enable_webhook(&id)
        .await?
        // Only an admin token reaches this route.
        .map(|e| Json(WebhookEndpoint::new(e, true)))
        .ok_or_else(|| ApiError::not_found(format!("no webhook {id:?} is configured")))
}
