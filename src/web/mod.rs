//! The web inbox: pages for the people who answer texts, served by the
//! daemon beside the API (same address), rendered on the server with maud,
//! with a small script for live updates and the reply box's part counter.
//! Assets are embedded in the binary: nothing to build, no CDN.
//!
//! # Layout
//!
//! - [`WebConfig`]: `[web]` (session idle time, the Secure cookie flag,
//!   reply templates), typed when the file is read; [`check`] adds what a
//!   type cannot see.
//! - [`router`]: every page route over a [`WebState`] (the API's state, the
//!   settings, an injected clock, the sign-in failures). Pages call the same
//!   functions the `/v1` handlers are (the inbox is `GET /v1/inbox`'s
//!   handler, a reply is `POST /v1/threads/{c}/reply`'s), so the web cannot
//!   disagree with the API.
//! - `session`: sign-in, the session cookie, CSRF tokens, the same-origin
//!   check on every post, sign-in backoff, the signed-in [`Person`].
//! - `pages`: the shell every page shares (navigation, sign-out), error
//!   pages, plain words for the API's problems.
//! - `inbox`, `thread`, `users`, `contacts`, `campaigns`, `modems`: the
//!   pages; `rules` and `modem_settings` (admins): the routing rules in
//!   effect and the modems' pool settings, changed while the daemon runs; `counter`: the GSM 7-bit table
//!   and part sizes the reply box's counter reads, taken from `pdu`.
//! - `dashboard`: the five metrics and their charts (`chart`: bar charts
//!   as SVG written on the server).
//! - `assets/`: the stylesheet and the script.

mod campaigns;
mod chart;
mod contacts;
mod counter;
mod dashboard;
mod inbox;
mod modem_settings;
mod modems;
mod pages;
mod rules;
mod session;
mod thread;
mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

pub use counter::{capacities, gsm7_table, Capacities};
pub use session::{Person, SignIns, SESSION_COOKIE};

use crate::api::ApiState;
use crate::webhook::clock::Clock;

/// `[web]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// A session ends after this long without a request (default 12h).
    #[serde(deserialize_with = "crate::config::duration_value")]
    pub session_idle: Duration,
    /// Mark the session cookie `Secure`: set it when people reach the inbox
    /// through a TLS-terminating proxy (https). The daemon itself serves
    /// plain HTTP, over which a browser would not send a Secure cookie back.
    pub secure_cookie: bool,
    /// `[[web.template]]`: texts the reply box can insert, with `{{field}}`
    /// placeholders filled from the contact's profile.
    pub template: Vec<ReplyTemplate>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle: Duration::from_secs(12 * 3600),
            secure_cookie: false,
            template: Vec::new(),
        }
    }
}

/// `[[web.template]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyTemplate {
    /// What the reply box shows (up to 60 characters).
    pub name: String,
    /// The text, e.g. "Hi {{name}}, your order is on its way."
    pub text: String,
}

/// What `[web]` holds that its types cannot check, reported by key.
pub fn check(web: &WebConfig, report: &mut dyn FnMut(String, String)) {
    if web.session_idle < Duration::from_secs(60) {
        report("web.session_idle".into(), "at least 1m, e.g. 12h".into());
    }
    for (i, t) in web.template.iter().enumerate() {
        let key = format!("web.template[{i}]");
        let name = t.name.trim();
        if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
            report(
                format!("{key}.name"),
                "1 to 60 characters, no control characters".into(),
            );
        }
        if t.text.trim().is_empty() {
            report(format!("{key}.text"), "must not be empty".into());
        } else if let Err(e) = crate::conversation::template::placeholders(&t.text) {
            report(format!("{key}.text"), e.to_string());
        }
    }
}

/// What the pages need.
#[derive(Clone)]
pub struct WebState {
    /// The API's state: pages call the API's own functions with it.
    pub api: ApiState,
    pub settings: Arc<WebConfig>,
    /// Session expiry and sign-in backoff read this clock (tests move it).
    pub clock: Arc<dyn Clock>,
    /// Failed sign-ins per name, for the backoff.
    pub sign_ins: Arc<SignIns>,
}

impl WebState {
    pub fn new(api: ApiState, settings: WebConfig, clock: Arc<dyn Clock>) -> WebState {
        WebState {
            api,
            settings: Arc::new(settings),
            clock,
            sign_ins: Arc::new(SignIns::default()),
        }
    }
}

/// The largest form the pages take (a reply or a note is a few KiB).
const FORM_LIMIT: usize = 64 * 1024;

/// The stylesheet and the script, with the build's version in their URLs
/// so a new build's are fetched, not a cached old copy.
const CSS: &str = include_str!("assets/app.css");
pub(crate) const CSS_PATH: &str = concat!("/assets/app-", env!("CARGO_PKG_VERSION"), ".css");
pub(crate) const JS_PATH: &str = concat!("/assets/app-", env!("CARGO_PKG_VERSION"), ".js");

/// The script: `assets/app.js` with the GSM 7-bit table and the part sizes
/// of `pdu` written in where it says `/*GSM7*/null`.
pub fn script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        include_str!("assets/app.js").replacen("/*GSM7*/null", &counter::table_json(), 1)
    })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The URL changes with the build: keep it a day.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The pages' routes over `state`, ready to merge with the API's router.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(session::login_page).post(session::sign_in))
        .route("/logout", post(session::sign_out))
        .route("/inbox", get(inbox::page))
        .route("/inbox/list", get(inbox::list))
        .route("/inbox/events", get(inbox::events))
        .route("/threads/{contact}", get(thread::page))
        .route("/threads/{contact}/reply", post(thread::reply))
        .route("/threads/{contact}/note", post(thread::note))
        .route("/threads/{contact}/assign", post(thread::assign))
        .route("/threads/{contact}/state", post(thread::state))
        .route("/threads/{contact}/outcome", post(thread::outcome))
        .route("/users", get(users::page).post(users::add))
        .route("/users/{name}/remove", post(users::remove))
        .route("/rules", get(rules::page).post(rules::save))
        .route("/rules/revert", post(rules::revert))
        .route("/settings/modems", get(modem_settings::page))
        .route("/settings/modems/{id}", post(modem_settings::save))
        .route("/contacts", get(contacts::list))
        // The import reads its body itself, up to the API's import limit.
        .route("/contacts/import", post(contacts::import))
        .route(
            "/contacts/{contact}",
            get(contacts::page).post(contacts::save),
        )
        .route("/campaigns", get(campaigns::list).post(campaigns::create))
        .route("/campaigns/{id}", get(campaigns::page))
        .route("/campaigns/{id}/cancel", post(campaigns::cancel))
        .route("/dashboard", get(dashboard::page))
        .route("/modems", get(modems::page))
        .route("/modems/{id}/probe", post(modems::run_probe))
        .route(
            CSS_PATH,
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            JS_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", script()) }),
        )
        .layer(middleware::from_fn(session::same_origin))
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(middleware::from_fn(crate::api::timeout))
        .with_state(state)
}

/// The gateway's whole router: the API's routes and the pages. A browser
/// asking for a path neither has gets a page that says so (the API's own
/// fallback answers problem JSON, right for API clients).
pub fn app(api: ApiState, web: WebState) -> Router {
    crate::api::router(api)
        .merge(router(web))
        .layer(middleware::from_fn(pages_for_browsers))
}

async fn pages_for_browsers(request: axum::extract::Request, next: middleware::Next) -> Response {
    let path = request.uri().path();
    let api_path = ["/v1/", "/2010-04-01/", "/cgi-bin/"]
        .iter()
        .any(|p| path.starts_with(p));
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/problem+json");
    if wants_html && !api_path && is_problem && matches!(status.as_u16(), 404 | 405) {
        return pages::problem_page(
            status,
            None,
            "Not found",
            "There is no such page here. The inbox is at /inbox.",
        );
    }
    response
}

/// `/`: the inbox when signed in, else the sign-in page.
async fn home(person: Option<Person>) -> Redirect {
    match person {
        Some(_) => Redirect::to("/inbox"),
        None => Redirect::to("/login"),
    }
}

/// What every page answer carries: no framing by other sites, scripts and
/// styles only from here, no caching of pages that hold people's texts.
async fn security_headers(request: axum::extract::Request, next: middleware::Next) -> Response {
    let is_asset = request.uri().path().starts_with("/assets/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `s` as one path segment or query value: everything but unreserved
/// characters (RFC 3986 §2.3) percent-encoded (a `+` in a number too).
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The thread page of `contact`.
pub(crate) fn thread_url(contact: &str) -> String {
    format!("/threads/{}", escape(contact))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_numbers_in_one_segment() {
        assert_eq!(escape("+15550100003"), "%2B15550100003");
        assert_eq!(escape("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(escape("ñ"), "%C3%B1");
        assert_eq!(thread_url("InfoSMS"), "/threads/InfoSMS");
    }

    #[test]
    fn the_config_is_checked_by_key() {
        let mut problems = Vec::new();
        let web = WebConfig {
            session_idle: Duration::from_secs(10),
            secure_cookie: false,
            template: vec![
                ReplyTemplate {
                    name: "".into(),
                    text: "Hi {{name".into(),
                },
                ReplyTemplate {
                    name: "ok".into(),
                    text: "Hi {{name}}".into(),
                },
            ],
        };
        check(&web, &mut |key, message| problems.push((key, message)));
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "web.session_idle",
                "web.template[0].name",
                "web.template[0].text"
            ]
        );
    }
}
