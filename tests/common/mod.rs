//! Helpers shared by the integration tests that talk HTTP to a running gateway.
#![allow(dead_code)]

pub mod engine_rig;
#[cfg(feature = "fleet")]
pub mod nats;
pub mod rig;
pub mod web;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Open the store at `path`, again after a close: sled's I/O threads can
/// hold the old file's lock a moment after the last handle goes (more so on
/// a loaded machine), so the open is retried until then (bounded, 20 s).
pub fn open_store(path: &std::path::Path, cache_mb: u64) -> smsgate::store::Store {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match smsgate::store::Store::open(path, cache_mb) {
            Ok(store) => return store,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot open the store at {}: {e}", path.display()),
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, JSON body or Null).
/// `GET /v1/messages/{id}`'s body.
pub fn message(addr: &str, token: &str, id: &str) -> Value {
    http(
        "GET",
        addr,
        &format!("/v1/messages/{id}"),
        Some(token),
        None,
    )
    .1
}

pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    http_raw(
        method,
        addr,
        path,
        token,
        "application/json",
        body.as_bytes(),
    )
}

/// `http` with a body of any type (CSV, bytes that are not UTF-8).
pub fn http_raw(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, Value) {
    match exchange(method, addr, path, token, content_type, &[], body) {
        Ok(answer) => answer,
        Err(e) => panic!("{method} {path} at {addr}: {e}"),
    }
}

/// `http` for a server that may be gone (killed in the test): status 0
/// when it could not be asked or did not answer.
pub fn try_http(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    try_http_with(method, addr, path, token, &[], body)
}

/// [`try_http`] with more headers (an `Idempotency-Key`).
pub fn try_http_with(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    exchange(
        method,
        addr,
        path,
        token,
        "application/json",
        headers,
        body.as_bytes(),
    )
    .unwrap_or((0, Value::Null))
}

fn exchange(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Value)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no HTTP head"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no HTTP status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || n > tail.len() {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

/// Poll `f` every 20 ms until it returns `Some`, or panic after `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the daemon at `addr` answers and `/readyz` says ready.
pub fn wait_ready(addr: &str) {
    wait_until(Duration::from_secs(20), "the API and a ready modem", || {
        std::net::TcpStream::connect(addr).ok()?;
        (http("GET", addr, "/readyz", None, None).0 == 200).then_some(())
    });
}

/// A simulated SIM800 on a pty linked at `link`, with number `own`, quick
/// status reports (30 ms) and no line noise: the customer's side of most
/// daemon tests.
pub fn sim800(link: std::path::PathBuf, own: &str) -> smsgate::sim::SimHandle {
    let mut c = smsgate::sim::SimConfig::new(smsgate::sim::Personality::Sim800);
    c.link = Some(link);
    c.own_number = own.into();
    c.status_report_delay = Duration::from_millis(30);
    c.noise_interval = Some(Duration::ZERO);
    smsgate::sim::Simulator::start(c).unwrap()
}

/// The texts a simulator's network carried to `to`, in order.
pub fn texts_to(sim: &smsgate::sim::SimHandle, to: &str) -> Vec<String> {
    sim.received()
        .into_iter()
        .filter(|r| r.to == to)
        .map(|r| r.text)
        .collect()
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon running in this process (`smsgate::daemon::run`) on an ephemeral
/// port, with one admin token; `stop` shuts it down and waits for it.
pub struct InProcessDaemon {
    pub addr: String,
    /// The daemon's store (to record what a test needs beside the API).
    pub store: smsgate::store::Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), smsgate::daemon::DaemonError>>>,
}

impl InProcessDaemon {
    /// Start from TOML (its `[api] bind` should be `127.0.0.1:0`).
    pub async fn start(config_toml: &str, token: &str) -> InProcessDaemon {
        let config = smsgate::config::Config::from_toml(config_toml, std::iter::empty()).unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let tokens = vec![smsgate::api::ApiToken::from_secret(
            "test",
            token,
            vec![smsgate::api::Scope::Admin],
        )];
        let task = tokio::spawn(smsgate::daemon::run(
            config,
            tokens,
            async move {
                let _ = stop_rx.await;
            },
            move |s| {
                let _ = addr_tx.send((s.api.to_string(), s.store.clone()));
            },
        ));
        let (addr, store) = addr_rx.await.unwrap();
        InProcessDaemon {
            addr,
            store,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Wait (off the runtime's threads) until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let addr = self.addr.clone();
        tokio::task::spawn_blocking(move || {
            wait_until(Duration::from_secs(20), "ready", || {
                (http("GET", &addr, "/readyz", None, None).0 == 200).then_some(())
            })
        })
        .await
        .unwrap();
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// A `smsgate run` child process, killed (SIGKILL) and reaped on drop, so a
/// failing test leaves no daemon behind.
pub struct ChildDaemon(pub std::process::Child);

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
