//! `smsgate send`: send an SMS through the local API, as a LAN app would,
//! and with `--wait` follow it to a final state, one line per step.
//!
//! HTTP goes through hyper's client (the one the webhooks use): answers are
//! read whole as bytes and decoded once, so a body in any alphabet comes
//! back as it went, however the server chunks it.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use axum::body::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::Method;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};

use super::UsageError;
use crate::store::{Category, MessageStatus};

/// How long one request may take, from connecting to the answer's last byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);
/// How often `--wait` reads the message again.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The most of an answer that is read (a message with its history is small).
const ANSWER_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when accepted (with --wait: delivered, or sent when no \
status report was asked for); 1 with --wait when the message failed, expired, was cancelled \
or is unknown; 2 when the command or the API refused it."
)]
pub struct SendArgs {
    /// Recipient: +E.164, or a national number (the configured default country).
    #[arg(long)]
    to: String,
    /// The message text.
    #[arg(long)]
    text: String,
    /// The API's address (host:port, or http://host:port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: String,
    /// Bearer token (default: $SMSGATE_API_TOKEN).
    #[arg(long)]
    token: Option<String>,
    /// Send from this modem.
    #[arg(long)]
    modem: Option<String>,
    /// Send later: an RFC 3339 time (2026-01-31T09:00:00Z) or a delay from
    /// now (90s, 10m, 2h, 1d, 1w). A time in the past sends now.
    #[arg(long, value_name = "TIME|DELAY")]
    send_at: Option<String>,
    /// Why it is sent: transactional (the default), conversational or
    /// marketing (needs recorded opt-in, waits out quiet hours).
    #[arg(long)]
    category: Option<String>,
    /// Follow the message until it is delivered, failed or expired (or sent,
    /// when no status report was asked for), printing each step.
    #[arg(long)]
    wait: bool,
}

/// The body of `POST /v1/messages` for these arguments; `now` turns a
/// `--send-at` delay into a time.
fn request_body(args: &SendArgs, now: DateTime<Utc>) -> Result<Value, UsageError> {
    let mut body = json!({"to": args.to, "body": args.text});
    if let Some(modem) = &args.modem {
        body["modem"] = json!(modem);
    }
    if let Some(when) = &args.send_at {
        body["send_at"] = json!(send_at(when, now)?.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    if let Some(category) = &args.category {
        let category = Category::parse(category.trim()).ok_or_else(|| {
            UsageError(format!(
                "--category {category:?}: use transactional, conversational or marketing"
            ))
        })?;
        body["category"] = json!(category.as_str());
    }
    Ok(body)
}

/// `--send-at`: an RFC 3339 time, or a delay in the config's duration form.
fn send_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, UsageError> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    crate::duration::parse(text)
        .and_then(|delay| chrono::Duration::from_std(delay).ok())
        .and_then(|delay| now.checked_add_signed(delay))
        .ok_or_else(|| {
            UsageError(format!(
                "--send-at {text:?}: use an RFC 3339 time such as 2026-01-31T09:00:00Z or a delay such as 10m, 2h, 1d"
            ))
        })
}

/// The local API over plain HTTP/1.1 (`smsgate user` uses it too).
pub(super) struct Api {
    /// `http://host:port`, no trailing slash.
    base: String,
    authorization: HeaderValue,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub(super) fn new(address: &str, token: &str) -> Result<Api, UsageError> {
        let address = address.trim().trim_end_matches('/');
        if address.starts_with("https://") {
            return Err(UsageError(format!(
                "--api {address:?}: the API is plain HTTP on the LAN; give host:port or http://host:port"
            )));
        }
        let base = match address.strip_prefix("http://") {
            Some(rest) => format!("http://{rest}"),
            None => format!("http://{address}"),
        };
        if format!("{base}/").parse::<hyper::Uri>().is_err() || address.is_empty() {
            return Err(UsageError(format!(
                "--api {address:?}: not an address such as 127.0.0.1:8080"
            )));
        }
        let authorization = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            UsageError("the token has characters an HTTP header cannot carry".into())
        })?;
        Ok(Api {
            base,
            authorization,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        })
    }

    /// One request; the answer's status and its body as text.
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, String), UsageError> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(
                USER_AGENT,
                HeaderValue::from_static(concat!("smsgate/", env!("CARGO_PKG_VERSION"))),
            );
        if body.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| UsageError(format!("cannot make a request to {}: {e}", self.base)))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                UsageError(format!(
                    "cannot reach the API at {}: {}",
                    self.base,
                    chain(&e)
                ))
            })?;
            let status = response.status().as_u16();
            let bytes = Limited::new(response.into_body(), ANSWER_LIMIT)
                .collect()
                .await
                .map_err(|e| UsageError(format!("the API's answer broke off: {e}")))?
                .to_bytes();
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| UsageError("the API's answer is not UTF-8".into()))?;
            Ok((status, text))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                UsageError(format!(
                    "the API at {} did not answer within {}s",
                    self.base,
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?
    }
}

/// An error and its sources on one line (hyper-util's own text is terse).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text = format!("{text}: {e}");
        source = e.source();
    }
    text
}

/// A refusal as one line: the problem's detail and code when it has them.
pub(super) fn refused(what: &str, status: u16, answer: &str) -> UsageError {
    let detail = serde_json::from_str::<Value>(answer)
        .ok()
        .and_then(|v| {
            Some(format!(
                "{} ({})",
                v.get("detail")?.as_str()?,
                v.get("code")?.as_str()?
            ))
        })
        .unwrap_or_else(|| answer.split_whitespace().collect::<Vec<_>>().join(" "));
    UsageError(format!("{what}: HTTP {status}: {detail}"))
}

/// What `--wait` reads of a message.
#[derive(Debug, Deserialize)]
struct Progress {
    status: String,
    /// Absent: the gateway's default, which asks for reports.
    #[serde(default)]
    status_report: Option<bool>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    history: Vec<Step>,
}

#[derive(Debug, Deserialize)]
struct Step {
    status: String,
    #[serde(default)]
    modem: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    error: Option<StepError>,
}

#[derive(Debug, Deserialize)]
struct StepError {
    code: String,
    text: String,
}

/// One progress line: `msg_… sending via m1`.
fn step_line(id: &str, step: &Step, not_before: Option<&str>) -> String {
    let mut line = format!("{id} {}", step.status);
    if let Some(modem) = &step.modem {
        line.push_str(&format!(" via {modem}"));
    }
    if let (Some(at), "scheduled" | "deferred") = (not_before, step.status.as_str()) {
        line.push_str(&format!(" until {at}"));
    }
    if let Some(note) = &step.note {
        line.push_str(&format!(" ({note})"));
    }
    if let Some(error) = &step.error {
        line.push_str(&format!(": {}: {}", error.code, error.text));
    }
    line
}

/// Where following a message ends: `None` while it may still move on.
fn outcome(message: &Progress) -> Result<Option<ExitCode>, UsageError> {
    let status = MessageStatus::parse(&message.status).ok_or_else(|| {
        UsageError(format!(
            "the API answered a status this smsgate does not know: {:?}",
            message.status
        ))
    })?;
    Ok(match status {
        MessageStatus::Delivered => Some(ExitCode::SUCCESS),
        MessageStatus::Sent if message.status_report == Some(false) => Some(ExitCode::SUCCESS),
        MessageStatus::Failed
        | MessageStatus::Expired
        | MessageStatus::Cancelled
        | MessageStatus::Unknown
        | MessageStatus::Received => Some(ExitCode::from(1)),
        MessageStatus::Scheduled
        | MessageStatus::Queued
        | MessageStatus::Deferred
        | MessageStatus::Sending
        | MessageStatus::Sent => None,
    })
}

/// Print each step of message `id` as it happens, until it is final.
async fn follow(api: &Api, id: &str, out: &mut dyn Write) -> Result<ExitCode, UsageError> {
    let path = format!("/v1/messages/{id}");
    let mut shown = 0;
    let mut last_status = String::new();
    loop {
        let (status, answer) = api.call(Method::GET, &path, None).await?;
        if status != 200 {
            return Err(refused(
                &format!("cannot read message {id}"),
                status,
                &answer,
            ));
        }
        let message: Progress = serde_json::from_str(&answer).map_err(|e| {
            UsageError(format!(
                "the API's answer for message {id} is not a message: {e}"
            ))
        })?;
        for step in message.history.iter().skip(shown) {
            writeln!(
                out,
                "{}",
                step_line(id, step, message.not_before.as_deref())
            )?;
            last_status.clone_from(&step.status);
        }
        shown = shown.max(message.history.len());
        // Without a history, the status alone.
        if message.status != last_status {
            let step = Step {
                status: message.status.clone(),
                modem: None,
                note: None,
                error: None,
            };
            writeln!(
                out,
                "{}",
                step_line(id, &step, message.not_before.as_deref())
            )?;
            last_status.clone_from(&message.status);
        }
        out.flush()?;
        if let Some(code) = outcome(&message)? {
            return Ok(code);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn send(args: &SendArgs, api: &Api, out: &mut dyn Write) -> Result<ExitCode, UsageError> {
    let body = request_body(args, Utc::now())?;
    let (status, answer) = api
        .call(Method::POST, "/v1/messages", Some(body.to_string()))
        .await?;
    if status != 202 {
        return Err(refused("the API refused the message", status, &answer));
    }
    if !args.wait {
        writeln!(out, "{answer}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let id = serde_json::from_str::<Value>(&answer)
        .ok()
        .and_then(|v| Some(v.get("id")?.as_str()?.to_string()))
        .ok_or_else(|| UsageError(format!("the API's answer has no message id: {answer}")))?;
    follow(api, &id, out).await
}

/// `--token`, else `$SMSGATE_API_TOKEN`.
pub(super) fn token(given: Option<&str>) -> Result<String, UsageError> {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("SMSGATE_API_TOKEN").ok())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| UsageError("no token: give --token or set SMSGATE_API_TOKEN".into()))
}

pub fn run(args: SendArgs) -> Result<ExitCode, UsageError> {
    let token = token(args.token.as_deref())?;
    // Refuse bad arguments before anything is sent.
    request_body(&args, Utc::now())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async {
        let api = Api::new(&args.api, &token)?;
        send(&args, &api, &mut std::io::stdout().lock()).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn args(send_at: Option<&str>, category: Option<&str>) -> SendArgs {
        SendArgs {
            to: "+15550100001".into(),
            text: "hi".into(),
            api: "127.0.0.1:8080".into(),
            token: None,
            modem: None,
            send_at: send_at.map(str::to_string),
            category: category.map(str::to_string),
            wait: false,
        }
    }

    #[test]
    fn send_at_takes_a_time_or_a_delay() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 13, 0, 0).unwrap();
        let body = request_body(&args(Some("10m"), None), now).unwrap();
        assert_eq!(body["send_at"], "2026-12-03T13:10:00.000Z");
        let body = request_body(&args(Some("2027-01-31T09:00:00+01:00"), None), now).unwrap();
        assert_eq!(body["send_at"], "2027-01-31T08:00:00.000Z");
        assert!(body.get("category").is_none());
        for bad in ["tomorrow", "10", "-5m", "", "99999999999999w"] {
            let e = request_body(&args(Some(bad), None), now).unwrap_err();
            assert!(e.0.starts_with("--send-at"), "{bad}: {}", e.0);
        }
    }

    #[test]
    fn categories_are_the_apis() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 13, 0, 0).unwrap();
        for c in ["transactional", "conversational", "marketing"] {
            assert_eq!(
                request_body(&args(None, Some(c)), now).unwrap()["category"],
                c
            );
        }
        let e = request_body(&args(None, Some("promo")), now).unwrap_err();
        assert!(e.0.contains("transactional, conversational or marketing"));
    }

    #[test]
    fn api_addresses() {
        assert_eq!(
            Api::new("127.0.0.1:8080", "t").unwrap().base,
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            Api::new("http://gw.lan:80/", "t").unwrap().base,
            "http://gw.lan:80"
        );
        assert!(Api::new("https://gw.lan", "t").is_err());
        assert!(Api::new("", "t").is_err());
        assert!(Api::new("a b", "t").is_err());
        assert!(Api::new("127.0.0.1:8080", "bad\ntoken").is_err());
    }
}
