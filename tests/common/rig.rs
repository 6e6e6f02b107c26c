//! The API in process, without a socket: a real store in a temporary
//! directory (removed on drop), a dispatcher with fake modem statuses, the
//! state built from a config the daemon's way (`ApiState::new`), and
//! requests through `router(state).oneshot(..)`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;

use smsgate::api::{self, ApiState, ApiToken};
use smsgate::config::Config;
use smsgate::modem::dispatch::Dispatcher;
use smsgate::modem::status::{ModemState, ModemStatus};
use smsgate::policy::Policy;
use smsgate::store::Store;

/// A fresh, empty directory under the system's temporary one, unique to this
/// process and call.
pub fn temp_dir(prefix: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "smsgate-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A config from TOML, as the daemon reads its file (no environment).
pub fn config(toml: &str) -> Config {
    Config::from_toml(toml, std::iter::empty()).unwrap()
}

/// The API's state over an open `store`, serving `config` with `tokens`,
/// with a dispatcher that knows no modem.
pub fn state_over(store: &Store, config: &Config, tokens: Vec<ApiToken>) -> ApiState {
    let dispatcher = Arc::new(Dispatcher::new(store.clone()));
    let policy = Arc::new(Policy::from_config(config));
    ApiState::new(store.clone(), dispatcher, policy, config, tokens)
}

/// The API over a store of its own.
pub struct Rig {
    pub state: ApiState,
    pub store: Store,
    pub dir: PathBuf,
    /// Fake modems' status senders, kept alive.
    pub modems: Vec<watch::Sender<ModemStatus>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One answer: status, headers and the body's bytes.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Bytes,
}

impl Reply {
    /// The body as JSON (Null when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

impl Rig {
    /// The API serving `config` with `tokens`, over an empty store.
    pub fn new(prefix: &str, config: &Config, tokens: Vec<ApiToken>) -> Rig {
        let dir = temp_dir(prefix);
        let store = Store::open(&dir, 8).unwrap();
        let state = state_over(&store, config, tokens);
        Rig {
            state,
            store,
            dir,
            modems: Vec::new(),
        }
    }

    /// A modem the dispatcher knows, in `state`, with its own number.
    pub fn add_modem(&mut self, id: &str, state: ModemState, own_number: &str) {
        self.add_modem_with(id, |status| {
            status.state = state;
            status.own_number = Some(own_number.into());
        });
    }

    /// A modem whose status `edit` sets.
    pub fn add_modem_with(&mut self, id: &str, edit: impl FnOnce(&mut ModemStatus)) {
        let mut status = ModemStatus::new(id, &format!("/dev/tty-{id}"));
        edit(&mut status);
        let (tx, rx) = watch::channel(status);
        self.state.dispatcher.register(id, rx);
        self.modems.push(tx);
    }

    /// One request through the router.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = api::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    /// A request with an optional bearer token, an optional JSON body and
    /// extra headers.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(body).unwrap()).await
    }
}
