//! Signing in and out, the session cookie, CSRF tokens, the same-origin
//! check, and the backoff after failed sign-ins.
//!
//! - The cookie holds a random 256-bit token (the store keeps its SHA-256):
//!   `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
//!   request carries it), `Secure` when `[web] secure_cookie` says the
//!   inbox is reached over https. A session ends after `[web] session_idle`
//!   without a request, and at sign-out (deleted from the store).
//! - Every state-changing form carries the session's CSRF token, compared
//!   in constant time; and every post whose browser says where it comes
//!   from (`Sec-Fetch-Site`, else `Origin`) must come from this site, the
//!   sign-in form included (it has no session yet, so no token).
//! - After [`FREE_FAILURES`] failed sign-ins a name waits, twice as long
//!   after each further failure (from [`FIRST_WAIT`] up to [`MAX_WAIT`]);
//!   a success clears it. Failures are counted per name whether or not
//!   the name exists (an unknown name is verified against a decoy hash, so
//!   it takes as long), kept in memory, and logged without the password.
//!   At most two password checks run at once, whoever asks.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;

use super::pages::{self, Refused, Shell};
use super::WebState;
use crate::store::users::{self, Role};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "smsgate_session";

/// Failed sign-ins a name may have before it waits.
pub const FREE_FAILURES: u32 = 5;
/// The wait after the [`FREE_FAILURES`]th failure; it doubles with each more.
pub const FIRST_WAIT: chrono::Duration = chrono::Duration::seconds(30);
/// The longest wait.
pub const MAX_WAIT: chrono::Duration = chrono::Duration::minutes(15);
/// A name's failures are forgotten this long after its last one.
const FORGET_AFTER: chrono::Duration = chrono::Duration::hours(24);
/// Names tracked at most (each failure with a new name adds one): past it,
/// the oldest are forgotten first.
const MAX_NAMES: usize = 10_000;
/// A session's last use is written at most this often.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// The signed-in person of a request.
#[derive(Debug, Clone)]
pub struct Person {
    pub name: String,
    pub role: Role,
    pub team: Option<String>,
    /// The session's CSRF token, for the forms of the page.
    csrf: String,
    /// The session's cookie token (sign-out ends this session).
    token: String,
}

impl Person {
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The form's `csrf` field against the session's, in constant time; a
    /// mismatch is a page that says what to do.
    pub fn check_csrf(&self, given: &str) -> Result<(), Refused> {
        let same = crate::api::auth::constant_time_eq(
            &crate::api::auth::digest(given),
            &crate::api::auth::digest(&self.csrf),
        );
        if same {
            return Ok(());
        }
        tracing::warn!(user = %self.name, "web form refused: missing or wrong CSRF token");
        Err(Refused::from(pages::problem_page(
            StatusCode::FORBIDDEN,
            Some(self),
            "Form refused",
            "This form was not sent from a page of this session (it may be from before you \
             signed in again). Go back, reload the page and try again.",
        )))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        // Tokens are 64 hex digits: anything else was never ours.
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What a request's cookie says.
enum Lookup {
    Person(Person),
    /// No cookie, or one with no session.
    Nobody,
    /// A session that went idle too long (now ended).
    Expired,
}

async fn look_up(state: &WebState, headers: &HeaderMap) -> Result<Lookup, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(Lookup::Nobody);
    };
    let store = &state.api.store;
    let Some(session) = store.session(&token).map_err(pages::store_error)? else {
        return Ok(Lookup::Nobody);
    };
    let now = state.clock.now();
    let idle =
        chrono::Duration::from_std(state.settings.session_idle).unwrap_or(chrono::Duration::MAX);
    if now - session.last_seen > idle {
        store
            .end_session(&token)
            .await
            .map_err(pages::store_error)?;
        tracing::info!(user = %session.user, "web session ended: idle");
        return Ok(Lookup::Expired);
    }
    let Some(user) = store.user(&session.user).map_err(pages::store_error)? else {
        store
            .end_session(&token)
            .await
            .map_err(pages::store_error)?;
        return Ok(Lookup::Nobody);
    };
    if now - session.last_seen >= TOUCH_EVERY {
        store
            .touch_session(&token, now)
            .map_err(pages::store_error)?;
    }
    Ok(Lookup::Person(Person {
        name: user.name,
        role: user.role,
        team: user.team,
        csrf: session.csrf,
        token,
    }))
}

/// Where a request without a session goes: a page load to the sign-in page
/// (and back here after), a post or a script's fetch to a 401 that says so.
fn to_sign_in(parts: &Parts, expired: bool) -> Response {
    let path = parts.uri.path();
    let page_load = parts.method == Method::GET && !path.starts_with("/inbox/");
    let mut response = if page_load {
        let here = parts
            .uri
            .path_and_query()
            .map_or(path, |p| p.as_str())
            .to_string();
        let mut to = format!("/login?next={}", super::escape(&here));
        if expired {
            to.push_str("&expired=1");
        }
        Redirect::to(&to).into_response()
    } else {
        pages::problem_page(
            StatusCode::UNAUTHORIZED,
            None,
            "Signed out",
            if expired {
                "You were signed out after a time without activity. Sign in again; what you \
                 typed was not sent."
            } else {
                "Sign in to do this."
            },
        )
    };
    if expired {
        response
            .headers_mut()
            .append(header::SET_COOKIE, clear_cookie());
    }
    response
}

impl FromRequestParts<WebState> for Person {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Person, Response> {
        match look_up(state, &parts.headers).await? {
            Lookup::Person(p) => Ok(p),
            Lookup::Nobody => Err(to_sign_in(parts, false)),
            Lookup::Expired => Err(to_sign_in(parts, true)),
        }
    }
}

impl OptionalFromRequestParts<WebState> for Person {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Option<Person>, Response> {
        match look_up(state, &parts.headers).await? {
            Lookup::Person(p) => Ok(Some(p)),
            Lookup::Nobody | Lookup::Expired => Ok(None),
        }
    }
}

/// An admin, or a 403 page in plain words.
pub fn require_admin(person: &Person) -> Result<(), Refused> {
    if person.is_admin() {
        return Ok(());
    }
    Err(Refused::from(pages::problem_page(
        StatusCode::FORBIDDEN,
        Some(person),
        "For administrators only",
        &format!(
            "This page is for administrators. You are signed in as {} (an agent); ask an \
             administrator if you need it.",
            person.name
        ),
    )))
}

/// Middleware on every page route: a post (or any method that changes
/// something) from another site is refused before anything reads it.
/// Browsers say where a request comes from in `Sec-Fetch-Site` (all current
/// ones) or `Origin`; a request with neither (not a browser) still needs the
/// form's CSRF token.
pub async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)").trim().to_string())
    };
    let site = text(header::HeaderName::from_static("sec-fetch-site"));
    let origin = text(header::ORIGIN);
    let host = text(header::HOST);
    let same = match (&site, &origin) {
        (Some(site), _) => site == "same-origin" || site == "none",
        (None, Some(origin)) => {
            // Origin is scheme://host[:port]; its host part must be the Host we were asked as.
            let authority = origin.split_once("://").map(|(_, a)| a);
            authority.is_some() && authority == host.as_deref()
        }
        (None, None) => true,
    };
    if same {
        return next.run(request).await;
    }
    tracing::warn!(
        path = %request.uri().path(),
        sec_fetch_site = site.as_deref().unwrap_or("-"),
        origin = origin.as_deref().unwrap_or("-"),
        "web post refused: it came from another site"
    );
    pages::problem_page(
        StatusCode::FORBIDDEN,
        None,
        "Refused",
        "This form was sent from another site, so it was refused. Use the inbox's own pages.",
    )
}

/// Password checks run at once at most: each costs argon2's 19 MiB and
/// tens of milliseconds of a core, and anyone who reaches the port can ask
/// for one (more wait their turn).
const CHECKS_AT_ONCE: usize = 2;

/// Failed sign-ins by name (lowercased), in memory, and the password
/// checks' slots.
#[derive(Debug)]
pub struct SignIns {
    failures: Mutex<HashMap<String, Failures>>,
    checks: tokio::sync::Semaphore,
}

impl Default for SignIns {
    fn default() -> Self {
        SignIns {
            failures: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(CHECKS_AT_ONCE),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    /// No attempt is checked before this.
    until: Option<DateTime<Utc>>,
}

fn key_of(name: &str) -> String {
    name.trim().to_lowercase()
}

impl SignIns {
    /// How long `name` must still wait at `now` (None: it may try).
    pub fn wait(&self, name: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let failures = self.failures.lock().ok()?;
        let until = failures.get(&key_of(name))?.until?;
        (until > now).then(|| until - now)
    }

    /// Count a failure of `name` at `now`: the failures so far and the wait
    /// it starts, if any.
    pub fn failed(&self, name: &str, now: DateTime<Utc>) -> (u32, Option<chrono::Duration>) {
        let Ok(mut failures) = self.failures.lock() else {
            return (0, None);
        };
        failures.retain(|_, f| now - f.last < FORGET_AFTER);
        if failures.len() >= MAX_NAMES {
            if let Some(oldest) = failures
                .iter()
                .min_by_key(|(_, f)| f.last)
                .map(|(k, _)| k.clone())
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(key_of(name)).or_insert(Failures {
            count: 0,
            last: now,
            until: None,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let wait = (entry.count >= FREE_FAILURES).then(|| {
            let doublings = (entry.count - FREE_FAILURES).min(16);
            (FIRST_WAIT * 2i32.pow(doublings)).min(MAX_WAIT)
        });
        entry.until = wait.map(|w| now + w);
        (entry.count, wait)
    }

    /// A successful sign-in: the name's failures are forgotten.
    pub fn succeeded(&self, name: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&key_of(name));
        }
    }
}

/// "30 seconds", "2 minutes", "15 minutes".
fn wait_words(wait: chrono::Duration) -> String {
    let seconds = wait.num_seconds().max(1);
    if seconds < 90 {
        format!("{seconds} seconds")
    } else {
        format!("{} minutes", (seconds + 59) / 60)
    }
}

/// A sign-in page's `next`: a path of this site, else the inbox.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_string(),
        _ => "/inbox".to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    expired: Option<String>,
    #[serde(default)]
    signed_out: Option<String>,
}

/// The sign-in page, with a message (an error or a notice) and the name typed.
fn login_form(
    status: StatusCode,
    next: &str,
    username: &str,
    message: Option<(&str, bool)>,
) -> Response {
    let body = html! {
        @if let Some((text, is_error)) = message {
            @if is_error {
                p.error role="alert" { (text) }
            } @else {
                p.notice role="status" { (text) }
            }
        }
        form.signin method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            p {
                label for="username" { "Username" }
                input #username type="text" name="username" value=(username)
                    autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus;
            }
            p {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    (status, Shell::new("Sign in").render(body)).into_response()
}

/// `GET /login`.
pub async fn login_page(
    person: Option<Person>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let next = local_path(query.next.as_deref());
    if person.is_some() {
        return Redirect::to(&next).into_response();
    }
    let message = if query.expired.is_some() {
        Some((
            "You were signed out after a time without activity. Sign in again.",
            false,
        ))
    } else if query.signed_out.is_some() {
        Some(("You are signed out.", false))
    } else {
        None
    };
    login_form(StatusCode::OK, &next, "", message)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// A user name as it may appear in a log line: printable, at most 64 characters.
fn loggable(name: &str) -> String {
    name.chars().take(64).flat_map(char::escape_debug).collect()
}

fn session_cookie(token: &str, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    ))
    .ok()
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("smsgate_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// `POST /login`.
pub async fn sign_in(
    State(state): State<WebState>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_form(
            StatusCode::BAD_REQUEST,
            "/inbox",
            "",
            Some((
                "The sign-in form could not be read. Reload the page and try again.",
                true,
            )),
        );
    };
    let next = local_path(form.next.as_deref());
    let name = form.username.trim().to_string();
    let now = state.clock.now();
    if let Some(wait) = state.sign_ins.wait(&name, now) {
        tracing::warn!(user = %loggable(&name), wait_s = wait.num_seconds(), "web sign-in refused: waiting after failed sign-ins");
        let text = format!(
            "Too many failed sign-ins for this name. Try again in {}.",
            wait_words(wait)
        );
        return login_form(
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &name,
            Some((&text, true)),
        );
    }
    let user = match state.api.store.user(&name) {
        Ok(user) => user,
        Err(e) => return pages::store_error(e),
    };
    let hash = user
        .as_ref()
        .map_or_else(|| users::decoy_hash().to_string(), |u| u.password.clone());
    let password = form.password;
    let verified = match state.sign_ins.checks.acquire().await {
        Ok(_slot) => tokio::task::spawn_blocking(move || users::verify_password(&hash, &password))
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    let Some(user) = user.filter(|_| verified) else {
        let (failures, wait) = state.sign_ins.failed(&name, now);
        tracing::warn!(
            user = %loggable(&name),
            failures,
            wait_s = wait.map_or(0, |w| w.num_seconds()),
            "web sign-in failed"
        );
        let text = match wait {
            Some(wait) => format!(
                "Wrong username or password. After {failures} failed sign-ins, this name \
                 waits {} before the next try.",
                wait_words(wait)
            ),
            None => "Wrong username or password.".to_string(),
        };
        return login_form(StatusCode::UNAUTHORIZED, &next, &name, Some((&text, true)));
    };
    state.sign_ins.succeeded(&name);
    let store = &state.api.store;
    // Housekeeping: sessions nobody came back to.
    let idle =
        chrono::Duration::from_std(state.settings.session_idle).unwrap_or(chrono::Duration::MAX);
    if let Some(since) = now.checked_sub_signed(idle) {
        if let Err(e) = store.end_idle_sessions(since).await {
            tracing::warn!(error = %e, "cannot end idle web sessions");
        }
    }
    let (token, _) = match store.create_session(&user.name, now).await {
        Ok(session) => session,
        Err(e) => return pages::store_error(e),
    };
    tracing::info!(user = %user.name, role = user.role.as_str(), "web sign-in");
    let mut response = Redirect::to(&next).into_response();
    if let Some(cookie) = session_cookie(&token, state.settings.secure_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// `POST /logout`: the session ends in the store, the cookie is cleared.
pub async fn sign_out(
    State(state): State<WebState>,
    person: Person,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if let Err(refused) = person.check_csrf(&csrf) {
        return refused.into_response();
    }
    if let Err(e) = state.api.store.end_session(&person.token).await {
        return pages::store_error(e);
    }
    tracing::info!(user = %person.name, "web sign-out");
    let mut response = Redirect::to("/login?signed_out=1").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_starts_at_the_fifth_failure_and_doubles() {
        let sign_ins = SignIns::default();
        let t0 = Utc::now();
        for n in 1..FREE_FAILURES {
            assert_eq!(sign_ins.failed("Ana", t0), (n, None));
            assert_eq!(sign_ins.wait("ana", t0), None);
        }
        assert_eq!(sign_ins.failed(" ana ", t0), (5, Some(FIRST_WAIT)));
        assert_eq!(sign_ins.wait("ANA", t0), Some(FIRST_WAIT));
        let t1 = t0 + FIRST_WAIT;
        assert_eq!(sign_ins.wait("ana", t1), None);
        assert_eq!(sign_ins.failed("ana", t1), (6, Some(FIRST_WAIT * 2)));
        let mut at = t1;
        for _ in 0..10 {
            at += MAX_WAIT;
            sign_ins.failed("ana", at);
        }
        assert_eq!(sign_ins.wait("ana", at), Some(MAX_WAIT));
        // Another name is not affected; a success forgets.
        assert_eq!(sign_ins.wait("ben", at), None);
        sign_ins.succeeded("ana");
        assert_eq!(sign_ins.wait("ana", at), None);
        assert_eq!(sign_ins.failed("ana", at), (1, None));
        // Old failures are forgotten.
        for _ in 0..4 {
            sign_ins.failed("cy", at);
        }
        let later = at + FORGET_AFTER;
        assert_eq!(sign_ins.failed("cy", later), (1, None));
    }

    #[test]
    fn cookies_and_next_paths() {
        let mut headers = HeaderMap::new();
        let token = "ab".repeat(32);
        headers.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("theme=dark; {SESSION_COOKIE}={token}")).unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some(token));
        let mut bad = HeaderMap::new();
        bad.append(
            header::COOKIE,
            HeaderValue::from_static("smsgate_session=../../etc"),
        );
        assert_eq!(cookie(&bad, SESSION_COOKIE), None);
        assert_eq!(local_path(Some("/threads/%2B1555")), "/threads/%2B1555");
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", ""] {
            assert_eq!(local_path(Some(bad)), "/inbox", "{bad}");
        }
        assert_eq!(wait_words(chrono::Duration::seconds(30)), "30 seconds");
        assert_eq!(wait_words(chrono::Duration::seconds(120)), "2 minutes");
        assert_eq!(loggable("a\nb"), "a\\nb");
    }
}
