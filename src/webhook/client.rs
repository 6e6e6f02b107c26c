//! Posting a signed event: a [`Transport`] (the worker is generic over it so
//! tests can answer in memory on a paused clock) and [`HttpClient`], hyper 1
//! over plain HTTP/1.1 with pooled keep-alive connections. Redirects are not
//! followed (a 3xx is an answer like any other), and the whole exchange, from
//! connecting to reading the answer's body, is bounded by the endpoint's
//! timeout.

use std::future::Future;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The most of an answer's body that is read (a `{"reply": ...}` is small).
pub const ANSWER_LIMIT: usize = 64 * 1024;

/// One attempt to post.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// POST, or GET for callbacks that carry everything in the URL (Kannel's).
    pub method: hyper::Method,
    pub url: String,
    /// The body's type (a user agent is added).
    pub content_type: &'static str,
    /// The Standard Webhooks headers, or another API's signature.
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub timeout: Duration,
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// Empty when it was longer than [`ANSWER_LIMIT`] or unreadable.
    pub body: Vec<u8>,
}

/// Why there is no answer: all of these are worth retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("invalid webhook URL: {0}")]
    Url(String),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Something that can post an event and bring back the answer.
pub trait Transport: Send + Sync + 'static {
    fn post(
        &self,
        request: Outgoing,
    ) -> impl Future<Output = Result<Answer, TransportError>> + Send;
}

/// hyper's pooled HTTP/1.1 client, no TLS (the config refuses https).
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

impl HttpClient {
    pub fn new() -> HttpClient {
        let mut connector = HttpConnector::new();
        // Events are small single writes: Nagle would hold each for an ACK.
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { client }
    }

    async fn exchange(&self, request: Outgoing) -> Result<Answer, TransportError> {
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(request.url.as_str())
            .header(CONTENT_TYPE, HeaderValue::from_static(request.content_type))
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("smsgate/", env!("CARGO_PKG_VERSION"))),
            );
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        let http_request = builder
            .body(Full::new(request.body))
            .map_err(|e| TransportError::Url(e.to_string()))?;
        let response = self.client.request(http_request).await.map_err(|e| {
            // hyper-util's error text is terse; its source says what failed.
            let mut text = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                text = format!("{text}: {source}");
            }
            TransportError::Connect(text)
        })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // A body that breaks off or is too long still leaves the status.
        let body = Limited::new(response.into_body(), ANSWER_LIMIT)
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .unwrap_or_default();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

impl Transport for HttpClient {
    async fn post(&self, request: Outgoing) -> Result<Answer, TransportError> {
        let limit = request.timeout;
        tokio::time::timeout(limit, self.exchange(request))
            .await
            .map_err(|_| TransportError::Timeout(limit))?
    }
}
