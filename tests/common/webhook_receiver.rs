//! A webhook receiver for tests: verifies every request's Standard Webhooks
//! signature with its own HMAC code (not smsgate's) and the timestamp
//! tolerance, records what came, and answers as the test scripts it. Served
//! over real HTTP on 127.0.0.1, or called in memory as a `Transport` for
//! tests on a paused clock.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use smsgate::webhook::{Answer, Clock, Outgoing, Transport, TransportError};

/// The spec's default tolerance for `webhook-timestamp`.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
    pub event: Value,
    /// The receiver's clock when it came (Unix seconds).
    pub at: i64,
    /// The status it was answered with.
    pub answered: u16,
}

/// An answer: status, body, extra headers.
pub type Reply = (u16, String, Vec<(&'static str, String)>);

type Script = Box<dyn FnMut(&Received, usize) -> Reply + Send>;

pub struct Receiver {
    /// Raw `whsec_...` secrets this receiver knows; any one verifying is enough.
    secrets: Vec<String>,
    clock: Arc<dyn Clock>,
    pub log: Mutex<Vec<Received>>,
    /// Requests whose signature or timestamp did not verify.
    pub rejected: Mutex<Vec<String>>,
    script: Mutex<Script>,
}

impl Receiver {
    /// Answers 200 `{}` until scripted otherwise.
    pub fn new(secrets: &[&str], clock: Arc<dyn Clock>) -> Arc<Receiver> {
        Arc::new(Receiver {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            clock,
            log: Mutex::new(Vec::new()),
            rejected: Mutex::new(Vec::new()),
            script: Mutex::new(Box::new(|_, _| (200, "{}".into(), Vec::new()))),
        })
    }

    /// `f(request, index of this request)` decides each answer.
    pub fn script(&self, f: impl FnMut(&Received, usize) -> Reply + Send + 'static) {
        *self.script.lock().unwrap() = Box::new(f);
    }

    /// Verify and answer one request.
    pub fn handle(&self, header: impl Fn(&str) -> Option<String>, body: &[u8]) -> Reply {
        match self.verify(&header, body) {
            Ok(mut received) => {
                // One request at a time through the script, so indexes are
                // the order requests came in.
                let mut log = self.log.lock().unwrap();
                let reply = (self.script.lock().unwrap())(&received, log.len());
                received.answered = reply.0;
                log.push(received);
                reply
            }
            Err(why) => {
                self.rejected.lock().unwrap().push(why);
                (401, String::new(), Vec::new())
            }
        }
    }

    fn verify(
        &self,
        header: &impl Fn(&str) -> Option<String>,
        body: &[u8],
    ) -> Result<Received, String> {
        let id = header("webhook-id").ok_or("no webhook-id")?;
        let timestamp: i64 = header("webhook-timestamp")
            .ok_or("no webhook-timestamp")?
            .parse()
            .map_err(|_| "webhook-timestamp is not a number")?;
        let signature = header("webhook-signature").ok_or("no webhook-signature")?;
        let now = self.clock.now().timestamp();
        if (now - timestamp).abs() > TOLERANCE_SECONDS {
            return Err(format!(
                "timestamp {timestamp} is {}s from now",
                now - timestamp
            ));
        }
        let signed = [
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ]
        .concat();
        let engine = base64::engine::general_purpose::STANDARD;
        let valid = self.secrets.iter().any(|secret| {
            let key = engine.decode(secret.trim_start_matches("whsec_")).unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(&signed);
            let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
            signature.split(' ').any(|s| s == expected)
        });
        if !valid {
            return Err(format!("no valid signature for {id}: {signature}"));
        }
        let event: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if event["id"] != id.as_str() {
            return Err(format!(
                "webhook-id {id} is not the body's id {}",
                event["id"]
            ));
        }
        Ok(Received {
            id,
            timestamp,
            signature,
            body: String::from_utf8_lossy(body).into_owned(),
            event,
            at: now,
            answered: 0,
        })
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// What an idempotent receiver processed: requests it answered 2xx,
    /// each event id once (the first time).
    pub fn unique(&self) -> Vec<Received> {
        let mut seen = HashSet::new();
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered) && seen.insert(r.id.clone()))
            .collect()
    }

    /// Serve over HTTP on 127.0.0.1 (`port` 0: any).
    pub async fn serve(self: &Arc<Self>, port: u16) -> SocketAddr {
        let me = self.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let me = me.clone();
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                };
                let (status, body, extra) = me.handle(header, &body);
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (name, value) in extra {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }
}

/// The receiver called in memory: no sockets, so a paused clock is safe.
pub struct InMemory(pub Arc<Receiver>);

impl Transport for InMemory {
    async fn post(&self, request: Outgoing) -> Result<Answer, TransportError> {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let (status, body, extra) = self.0.handle(header, &request.body);
        if status == 0 {
            return Err(TransportError::Connect(
                "connection refused (scripted)".into(),
            ));
        }
        Ok(Answer {
            status,
            retry_after: extra
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
                .map(|(_, v)| v.clone()),
            body: body.into_bytes(),
        })
    }
}
