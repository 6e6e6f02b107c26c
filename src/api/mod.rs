//! The HTTP API: JSON under `/v1` for LAN applications, plus `/healthz`,
//! `/readyz` and `/v1/openapi.json` (ARCHITECTURE.md, "Contracts").
//!
//! # Layout
//!
//! - [`router`] builds every route from one table ([`ROUTES`] via `table`), so
//!   the OpenAPI document can be checked against what is actually served;
//!   tests drive it with `oneshot`, no socket. [`serve`] runs it on a
//!   listener with graceful shutdown.
//! - `auth`: bearer tokens (SHA-256 digests, constant-time) and scopes, a
//!   layer on each `/v1` route.
//! - `problem`: the one error type, answered as RFC 9457 problem+json.
//! - `json`: the body extractor whose refusals are problems too.
//! - `params`: query strings and contacts in paths.
//! - `csv`: RFC 4180 fields out (the consent export) and records in (the
//!   contact import).
//! - [`crate::wire`] (beside this module, webhooks serve it too): what the
//!   API serves, apart from the stored records; `openapi` derives the
//!   document's schemas from it.
//! - `messages`, `campaigns`, `threads`, `modems`, `webhooks`, `events`, `health`,
//!   `summary` (the conversation metrics), `users` (the web inbox's people),
//!   `rules` (the routing rules in effect, changed while the daemon runs),
//!   `modem_settings` (a modem's pool settings, changed while it runs),
//!   `openapi`: the handlers.

pub mod auth;
pub mod campaigns;
pub mod compat;
pub mod contacts;
mod csv;
pub mod events;
mod health;
pub mod inbox;
pub mod json;
pub mod messages;
pub mod metrics;
pub mod modem_settings;
pub mod modems;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod rules;
pub mod summary;
pub mod threads;
pub mod users;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;

pub use auth::{ApiToken, Scope};
pub use problem::ApiError;

use crate::modem::dispatch::Dispatcher;
use crate::store::Store;

/// What the API needs from the rest of the daemon.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    /// Modem snapshots, `is_known` for `modem`, and the wake-up after accepts.
    pub dispatcher: Arc<Dispatcher>,
    pub tokens: Arc<Vec<ApiToken>>,
    pub sms: Arc<crate::compose::SmsPolicy>,
    /// Consent, quiet hours and rate limits at accept time.
    pub policy: Arc<crate::policy::Policy>,
    /// Metric families from outside the API (the webhook worker).
    pub extra_metrics: Option<metrics::ExtraMetrics>,
    /// `[compat]`: the Twilio accounts and Kannel users of `compat::router`.
    pub compat: Arc<compat::CompatConfig>,
    /// `[conversation]`: the metrics summary's currency.
    pub conversation: Arc<crate::conversation::settings::ConversationConfig>,
    /// The routing rules in effect (`/v1/rules`): the file's or a stored
    /// list; the engine's decider reads the same book's live set.
    pub rules: Arc<crate::conversation::rulebook::RuleBook>,
    /// `[cluster]`: accepted messages go to the fleet's work queue.
    pub fleet: Option<Arc<dyn crate::fleet::FleetLink>>,
}

impl ApiState {
    /// The state that serves `config`: its SMS defaults, compat accounts and
    /// conversation settings, with the consent and limits `policy` the rest
    /// of the daemon shares, and no metric families from outside the API.
    pub fn new(
        store: Store,
        dispatcher: Arc<Dispatcher>,
        policy: Arc<crate::policy::Policy>,
        config: &crate::config::Config,
        tokens: Vec<ApiToken>,
    ) -> ApiState {
        ApiState {
            store: store.clone(),
            dispatcher,
            tokens: Arc::new(tokens),
            sms: Arc::new(config.sms_policy()),
            policy,
            extra_metrics: None,
            compat: Arc::new(config.compat_settings()),
            conversation: Arc::new(config.conversation.clone()),
            rules: Arc::new(crate::conversation::rulebook::RuleBook::open(
                &store,
                &config.conversation,
            )),
            fleet: None,
        }
    }
}

/// The longest a request may take before it is answered 503 `timeout`; it
/// also bounds how long graceful shutdown waits for in-flight requests. An
/// accept cut off here may still have been stored: callers retry with the same
/// `Idempotency-Key`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One served route: method, path (axum and OpenAPI share `{param}`
/// syntax), and the scope it needs (None: no token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub scope: Option<Scope>,
}

const fn route(method: &'static str, path: &'static str, scope: Option<Scope>) -> Route {
    Route {
        method,
        path,
        scope,
    }
}

/// Every route the router serves.
pub const ROUTES: &[Route] = &[
    route("GET", "/healthz", None),
    route("GET", "/readyz", None),
    route("GET", "/metrics", None),
    route("GET", "/v1/openapi.json", None),
    route("POST", "/v1/messages", Some(Scope::Send)),
    route("GET", "/v1/messages", Some(Scope::Read)),
    route("GET", "/v1/messages/{id}", Some(Scope::Read)),
    route("DELETE", "/v1/messages/{id}", Some(Scope::Send)),
    route("POST", "/v1/messages/{id}/resend", Some(Scope::Send)),
    route("GET", "/v1/threads", Some(Scope::Read)),
    route("GET", "/v1/threads/{contact}", Some(Scope::Read)),
    route("POST", "/v1/threads/{contact}/read", Some(Scope::Read)),
    route("POST", "/v1/threads/{contact}/notes", Some(Scope::Send)),
    route("POST", "/v1/threads/{contact}/reply", Some(Scope::Send)),
    route("PUT", "/v1/threads/{contact}/assignment", Some(Scope::Send)),
    route("PUT", "/v1/threads/{contact}/state", Some(Scope::Send)),
    route("POST", "/v1/threads/{contact}/outcomes", Some(Scope::Send)),
    route("GET", "/v1/inbox", Some(Scope::Read)),
    route("GET", "/v1/modems", Some(Scope::Read)),
    route("GET", "/v1/modems/{id}", Some(Scope::Read)),
    route("POST", "/v1/modems/{id}/probe", Some(Scope::Read)),
    route("GET", "/v1/modems/{id}/probe", Some(Scope::Read)),
    route("GET", "/v1/webhooks", Some(Scope::Read)),
    route("GET", "/v1/webhooks/deliveries", Some(Scope::Read)),
    route(
        "POST",
        "/v1/webhooks/deliveries/{id}/retry",
        Some(Scope::Admin),
    ),
    route("POST", "/v1/webhooks/{id}/enable", Some(Scope::Admin)),
    route("GET", "/v1/events", Some(Scope::Read)),
    route("GET", "/v1/events/stream", Some(Scope::Read)),
    route("GET", "/v1/contacts", Some(Scope::Read)),
    route("POST", "/v1/contacts/import", Some(Scope::Send)),
    route("GET", "/v1/contacts/{contact}", Some(Scope::Read)),
    route("PUT", "/v1/contacts/{contact}", Some(Scope::Send)),
    route("DELETE", "/v1/contacts/{contact}", Some(Scope::Admin)),
    route("GET", "/v1/contacts/{contact}/consent", Some(Scope::Read)),
    route("PUT", "/v1/contacts/{contact}/consent", Some(Scope::Send)),
    route("POST", "/v1/optouts", Some(Scope::Send)),
    route("GET", "/v1/consent/export", Some(Scope::Read)),
    route("POST", "/v1/campaigns", Some(Scope::Send)),
    route("GET", "/v1/campaigns", Some(Scope::Read)),
    route("GET", "/v1/campaigns/{id}", Some(Scope::Read)),
    route("GET", "/v1/campaigns/{id}/errors", Some(Scope::Read)),
    route("POST", "/v1/campaigns/{id}/cancel", Some(Scope::Send)),
    route("GET", "/v1/metrics/summary", Some(Scope::Read)),
    route("POST", "/v1/users", Some(Scope::Admin)),
    route("GET", "/v1/users", Some(Scope::Admin)),
    route("PUT", "/v1/users/{name}", Some(Scope::Admin)),
    route("DELETE", "/v1/users/{name}", Some(Scope::Admin)),
    route("GET", "/v1/rules", Some(Scope::Admin)),
    route("PUT", "/v1/rules", Some(Scope::Admin)),
    route("DELETE", "/v1/rules", Some(Scope::Admin)),
    route("GET", "/v1/modems/{id}/settings", Some(Scope::Admin)),
    route("PUT", "/v1/modems/{id}/settings", Some(Scope::Admin)),
];

/// The handler of each route in [`ROUTES`], in the same order.
fn table() -> Vec<MethodRouter<ApiState>> {
    vec![
        get(health::healthz),
        get(health::readyz),
        get(metrics::serve),
        get(openapi::serve_document),
        post(messages::send),
        get(messages::list),
        get(messages::get_one),
        delete(messages::cancel),
        post(messages::resend),
        get(threads::list),
        get(threads::timeline),
        post(threads::mark_read),
        post(threads::add_note),
        post(threads::reply),
        put(threads::assign),
        put(threads::set_state),
        post(threads::add_outcome),
        get(inbox::list),
        get(modems::list),
        get(modems::get_one),
        post(modems::probe),
        get(modems::last_probe),
        get(webhooks::list),
        get(webhooks::deliveries),
        post(webhooks::retry),
        post(webhooks::enable),
        get(events::list),
        get(events::stream),
        get(contacts::list),
        post(contacts::import),
        get(contacts::get_contact),
        put(contacts::put_contact),
        delete(contacts::delete_contact),
        get(contacts::get_consent),
        put(contacts::put_consent),
        post(contacts::post_optout),
        get(contacts::export),
        // A campaign's list of numbers is larger than any other request.
        post(campaigns::create).layer(DefaultBodyLimit::max(campaigns::CAMPAIGN_BODY_LIMIT)),
        get(campaigns::list),
        get(campaigns::get_one),
        get(campaigns::errors),
        post(campaigns::cancel),
        get(summary::summary),
        post(users::post),
        get(users::list),
        put(users::put),
        delete(users::delete),
        get(rules::get),
        put(rules::put),
        delete(rules::delete),
        get(modem_settings::get),
        put(modem_settings::put),
    ]
}

/// The API's routes over `state`.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for (spec, handler) in ROUTES.iter().zip(table()) {
        let handler = match spec.scope {
            // route_layer: only matched requests are checked, so a wrong
            // method still answers 405 rather than 401.
            Some(scope) => handler.route_layer(middleware::from_fn_with_state(
                auth::Guard {
                    tokens: state.tokens.clone(),
                    scope,
                },
                auth::require,
            )),
            None => handler,
        };
        router = router.route(spec.path, handler);
    }
    // Twilio's and Kannel's routes check their own credentials (Basic auth,
    // Kannel's username and password), not bearer tokens.
    router
        .merge(compat::router())
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(json::BODY_LIMIT))
        .layer(middleware::from_fn(timeout))
        .with_state(state)
}

/// What a connection to the API may hold: anyone who reaches the port can
/// open one, token or not, so idle and slow ones must not pile up until the
/// daemon runs out of file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a connection may take to send a request's headers, counted
    /// from when it connects or its previous response ends: it is also the
    /// keep-alive idle timeout. A response in progress (an event stream) is
    /// not cut.
    pub header_timeout: Duration,
    /// Connections served at once. Past it the API stops accepting, and new
    /// connections wait in the kernel's backlog until one closes.
    pub max_connections: usize,
}

/// File descriptors kept for everything but API connections: the store and
/// its history files, modems, webhook clients, logs.
pub const RESERVED_FDS: u64 = 128;

impl ConnectionLimits {
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

    /// Connections below the soft `RLIMIT_NOFILE`, less [`RESERVED_FDS`],
    /// and at most 1,024 (a LAN gateway needs far fewer); 64 if the limit
    /// cannot be read.
    pub fn default_max_connections() -> usize {
        match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
            Ok((soft, _)) => soft.saturating_sub(RESERVED_FDS).clamp(16, 1024) as usize,
            Err(_) => 64,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            max_connections: Self::default_max_connections(),
        }
    }
}

/// Serve the API on `listener` with the default [`ConnectionLimits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ConnectionLimits::default(), shutdown).await
}

/// Serve the API on `listener` until `shutdown` completes, then finish the
/// requests in flight (each bounded by [`REQUEST_TIMEOUT`]; event streams
/// end at once; idle keep-alive connections close).
///
/// HTTP/1.1 through hyper directly, not `axum::serve`: it has no header
/// read timeout and no connection cap.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(listener, router(state), limits, shutdown).await
}

/// [`serve_with`] for a router made of the API's and more (the daemon adds
/// the web inbox's pages).
pub async fn serve_app(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One stop signal: event streams end, and every connection finishes what
    // it is answering and closes.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = app.layer(axum::Extension(events::StreamStop(stop_rx.clone())));
    let service = hyper_util::service::TowerToHyperService::new(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut connections = tokio::task::JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    tokio::pin!(shutdown);
    loop {
        // A slot before accepting: past the cap, new connections wait in the
        // backlog instead of costing a descriptor each.
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset
                    // before accept: say so, and do not spin.
                    accept_errors.record(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let connection =
            http.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _slot = permit;
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "API connection closed");
                    }
                }
                _ = async { stop.wait_for(|stopped| *stopped).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// How long the accept loop pauses after an accept error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accept errors, logged at most once a second with how many there were.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    /// Count `error`; log it if the last log is a second old. The count
    /// logged, if it was.
    fn record(&mut self, error: &std::io::Error) -> Option<u64> {
        let now = tokio::time::Instant::now();
        self.unlogged += 1;
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return None;
        }
        let count = std::mem::take(&mut self.unlogged);
        tracing::error!(
            error = %error,
            count,
            "API cannot accept connections (at the open files limit?)"
        );
        self.last_logged = Some(now);
        Some(count)
    }
}

pub(crate) async fn timeout(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; retry (with the same Idempotency-Key when sending)",
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource; see /v1/openapi.json")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here; see /v1/openapi.json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_as_a_problem() {
        use tower::ServiceExt;
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                    "late"
                }),
            )
            .layer(middleware::from_fn(timeout));
        let request = Request::builder()
            .uri("/slow")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_are_logged_once_a_second_with_their_count() {
        let mut errors = AcceptErrors::default();
        let emfile = std::io::Error::from_raw_os_error(24);
        assert_eq!(errors.record(&emfile), Some(1));
        assert_eq!(errors.record(&emfile), None);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(errors.record(&emfile), None);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(errors.record(&emfile), Some(3));
    }

    #[test]
    fn table_matches_routes() {
        assert_eq!(ROUTES.len(), table().len());
    }

    #[test]
    fn every_v1_route_but_the_document_needs_a_token() {
        for r in ROUTES {
            let public = !r.path.starts_with("/v1/") || r.path == "/v1/openapi.json";
            assert_eq!(r.scope.is_none(), public, "{r:?}");
        }
    }

    #[test]
    fn scopes_follow_the_issue() {
        for r in ROUTES.iter().filter(|r| r.scope.is_some()) {
            // Erasure and webhook administration are for administrators;
            // sending, cancelling, resending and recording consent or time
            // zones are "send"; reading is "read".
            let writes = r.path.starts_with("/v1/messages")
                || r.path.starts_with("/v1/campaigns")
                || r.path.starts_with("/v1/contacts")
                || r.path == "/v1/optouts"
                || (r.path.starts_with("/v1/threads/") && !r.path.ends_with("/read"));
            let admin = (r.method == "DELETE" && r.path.starts_with("/v1/contacts"))
                || (r.method == "POST" && r.path.starts_with("/v1/webhooks"))
                || r.path.starts_with("/v1/users")
                || r.path.starts_with("/v1/rules")
                || r.path.ends_with("/settings");
            let want = if admin {
                Scope::Admin
            } else if writes && r.method != "GET" {
                Scope::Send
            } else {
                Scope::Read
            };
            assert_eq!(r.scope, Some(want), "{r:?}");
        }
    }
}
