//! An app on 127.0.0.1 that records every request the gateway makes to it
//! (Twilio callbacks, Kannel DLRs and get-urls) and answers as the test
//! scripts it, plus a raw HTTP/1.1 helper that returns the answer's text
//! (Kannel answers text, not JSON).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::IntoResponse;

/// One request as it came.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Request {
    /// The form-encoded body's (or the query's, for a GET) pairs, decoded.
    pub fn params(&self) -> Vec<(String, String)> {
        let raw = if self.method == "GET" {
            self.uri.split_once('?').map(|(_, q)| q).unwrap_or("")
        } else {
            self.body.as_str()
        };
        smsgate::api::compat::kannel::pairs(raw)
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// (status, content type, body).
pub type Reply = (u16, &'static str, String);
type Script = Box<dyn FnMut(&Request) -> Reply + Send>;

pub struct App {
    pub log: Mutex<Vec<Request>>,
    script: Mutex<Script>,
}

impl App {
    /// Serve on an ephemeral port of 127.0.0.1; answers 200 with an empty
    /// body until scripted otherwise.
    pub async fn start() -> (Arc<App>, SocketAddr) {
        let app = Arc::new(App {
            log: Mutex::new(Vec::new()),
            script: Mutex::new(Box::new(|_| (200, "text/plain", String::new()))),
        });
        let router = axum::Router::new().fallback(handle).with_state(app.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (app, addr)
    }

    pub fn script(&self, f: impl FnMut(&Request) -> Reply + Send + 'static) {
        *self.script.lock().unwrap() = Box::new(f);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let request = Request {
        method: method.to_string(),
        uri: uri.to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, content_type, text) = (app.script.lock().unwrap())(&request);
    app.log.lock().unwrap().push(request);
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        [(axum::http::header::CONTENT_TYPE, content_type)],
        text,
    )
}

/// One HTTP/1.1 request with `Connection: close`: (status, content type, body text).
pub fn http_text(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}
