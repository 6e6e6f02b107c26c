//! The API's one error type, answered as RFC 9457 problem details
//! (`application/problem+json`) with a stable `code` clients can branch on.
//! Internal errors are logged here and answered without their text, so nothing
//! about paths, sled or the machine leaks to a LAN client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// An error answer. Built only through the constructors, so every code is one
/// of the documented ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, snake_case: the part of the answer clients match on.
    pub code: &'static str,
    /// What went wrong with this request, for a human.
    pub detail: String,
}

/// An error: RFC 9457 problem details (`application/problem+json`) with a
/// stable `code` to match on.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// `urn:smsgate:problem:` and the code.
    #[serde(rename = "type")]
    #[schema(format = "uri", example = "urn:smsgate:problem:invalid_number")]
    kind: String,
    title: &'a str,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request, for a human.
    detail: &'a str,
    /// Stable, snake_case: match on this.
    #[schema(example = "invalid_number")]
    code: &'a str,
}

/// Where a problem type is described; a URN because the gateway has no
/// public host to document it on, and RFC 9457 §3.1.1 only asks for a URI.
pub const TYPE_PREFIX: &str = "urn:smsgate:problem:";

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 422: the request is well-formed but its content is refused.
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn invalid_query(detail: impl Into<String>) -> ApiError {
        ApiError::unprocessable("invalid_query", detail)
    }

    /// 500: logs `error` and answers without it.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "internal error answering an API request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the gateway failed to answer; the error is in its log",
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::InvalidCursor => {
                ApiError::invalid_query("cursor is not one this gateway handed out")
            }
            StoreError::Sled(_) | StoreError::Durability(_) => {
                tracing::error!(error = %e, "store failed answering an API request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the message store is unavailable; try again later",
                )
            }
            StoreError::Corrupt { .. }
            | StoreError::Schema { .. }
            | StoreError::SchemaTooOld { .. } => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let problem = Problem {
            kind: format!("{TYPE_PREFIX}{}", self.code),
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let body = match serde_json::to_vec(&problem) {
            Ok(body) => body,
            // Serialising plain strings cannot fail; keep a body anyway.
            Err(_) => br#"{"code":"internal"}"#.to_vec(),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        use http_body_util::BodyExt;
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn answers_problem_json_with_code() {
        let response = ApiError::unprocessable("body_empty", "body is empty").into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_of(response).await;
        assert_eq!(
            body,
            serde_json::json!({
                "type": "urn:smsgate:problem:body_empty",
                "title": "Unprocessable Entity",
                "status": 422,
                "detail": "body is empty",
                "code": "body_empty",
            })
        );
    }

    #[tokio::test]
    async fn unauthorized_challenges_for_bearer() {
        let response = ApiError::unauthorized("no token").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    #[tokio::test]
    async fn store_errors_do_not_leak() {
        let corrupt = StoreError::Corrupt {
            key: "/var/lib/smsgate/secret-path".into(),
            reason: "bad".into(),
        };
        let e = ApiError::from(corrupt);
        assert_eq!((e.status.as_u16(), e.code), (500, "internal"));
        let body = body_of(e.into_response()).await;
        assert!(!body.to_string().contains("secret-path"));

        let down = ApiError::from(StoreError::Durability("fsync: EIO on /dev/sda".into()));
        assert_eq!(
            (down.status.as_u16(), down.code),
            (503, "store_unavailable")
        );
        assert!(!down.detail.contains("sda"));

        let cursor = ApiError::from(StoreError::InvalidCursor);
        assert_eq!(
            (cursor.status.as_u16(), cursor.code),
            (422, "invalid_query")
        );
    }
}
