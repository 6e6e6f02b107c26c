//! A JSON body extractor whose refusals are problem+json like every other
//! error (axum's own `Json` answers plain text): 415 without a JSON content
//! type, 413 past the body limit, 400 for malformed JSON, 422 when the JSON is
//! well-formed but not the expected shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// The largest request body the API reads (the 64 KiB: a 10-part SMS
/// is under 2 KiB even as escaped UCS-2 JSON).
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parse `bytes` as a JSON object into `T`, mapping serde's error classes to
/// problems. Only objects: serde would otherwise fill a struct from an array
/// by position (`["+1555…", "hi"]`), which no client means.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::unprocessable("invalid_request", e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            ),
        }
    })?;
    let is_object = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{');
    if !is_object {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "request body must be a JSON object",
        ));
    }
    Ok(value)
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json(content_type) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the request body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body is over {} KiB", BODY_LIMIT / 1024),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "request body could not be read",
                )
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        to: String,
    }

    proptest::proptest! {
        /// Request bodies come from outside: a value or a problem, never a panic.
        #[test]
        fn any_body_parses_or_is_refused(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Err(e) = parse::<crate::api::messages::SendRequest>(&bytes) {
                proptest::prop_assert!(matches!(e.status.as_u16(), 400 | 422));
            }
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json(""));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn syntax_is_400_and_shape_is_422() {
        let e = parse::<Shape>(b"{\"to\":").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
        let e = parse::<Shape>(b"not json").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_json"));
        let e = parse::<Shape>(b"{\"to\":5}").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid_request"));
        assert!(parse::<Shape>(b" {\"to\":\"x\"}").is_ok());
        let e = parse::<Shape>(b"[\"x\"]").unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "invalid_request"));
    }
}
