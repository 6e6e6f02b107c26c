//! `/v1/users` through `router(state).oneshot(..)`, and `smsgate user` (the
//! real binary) against the API served on a loopback port.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use smsgate::api::{self, ApiState, ApiToken, Scope};
use smsgate::modem::dispatch::Dispatcher;
use smsgate::store::Store;

const ADMIN: &str = "users-admin-secret";
const SENDER: &str = "users-send-secret";

/// A store in a temporary directory (removed on drop) and the API over it.
/// (A minimal rig until the shared builder lands in tests/common/.)
struct Rig {
    state: ApiState,
    store: Store,
    dir: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rig() -> Rig {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "smsgate-users-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 8).unwrap();
    let state = ApiState {
        store: store.clone(),
        dispatcher: Arc::new(Dispatcher::new(store.clone())),
        tokens: Arc::new(vec![
            ApiToken::from_secret("ops", ADMIN, vec![Scope::Admin]),
            ApiToken::from_secret("crm", SENDER, vec![Scope::Send, Scope::Read]),
        ]),
        sms: Arc::new(Default::default()),
        policy: Arc::new(smsgate::policy::Policy::from_config(
            &smsgate::config::Config::default(),
        )),
        extra_metrics: None,
        compat: Default::default(),
        conversation: Default::default(),
        rules: Arc::new(smsgate::conversation::rulebook::RuleBook::open(
            &store,
            &Default::default(),
        )),
        fleet: None,
    };
    Rig { state, store, dir }
}

impl Rig {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let response = api::router(self.state.clone())
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value, content_type)
    }
}

#[tokio::test]
async fn an_admin_adds_lists_changes_and_removes_people() {
    let g = rig();
    let (status, body, _) = g
        .call(
            Method::POST,
            "/v1/users",
            ADMIN,
            Some(json!({"name": "ana", "password": "correct horse battery", "role": "agent", "team": "support"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "ana");
    assert_eq!(body["role"], "agent");
    assert_eq!(body["team"], "support");
    assert!(body.get("password").is_none());
    // Stored as an argon2id hash, never as given.
    let stored = g.store.user("ana").unwrap().unwrap();
    assert!(stored.password.starts_with("$argon2id$"));
    assert!(!stored.password.contains("correct horse"));

    let (status, body, _) = g
        .call(
            Method::POST,
            "/v1/users",
            ADMIN,
            Some(json!({"name": "ana", "password": "another long one", "role": "admin"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("user_exists"))
    );

    g.call(
        Method::POST,
        "/v1/users",
        ADMIN,
        Some(json!({"name": "ops", "password": "0123456789", "role": "admin"})),
    )
    .await;
    let (status, body, _) = g.call(Method::GET, "/v1/users", ADMIN, None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ana", "ops"]);
    assert_eq!(body["next_cursor"], Value::Null);

    // A new password ends the person's sessions; the team can be cleared.
    let (token, _) = g.store.create_session("ana", Utc::now()).await.unwrap();
    let (status, body, _) = g
        .call(
            Method::PUT,
            "/v1/users/ana",
            ADMIN,
            Some(json!({"password": "a new long password", "team": null, "role": "admin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["role"].as_str(), &body["team"]),
        (Some("admin"), &Value::Null)
    );
    assert!(g.store.session(&token).unwrap().is_none());
    let stored = g.store.user("ana").unwrap().unwrap();
    assert!(smsgate::store::users::verify_password(
        &stored.password,
        "a new long password"
    ));

    // A change of role alone keeps the sessions and the password.
    let (token, _) = g.store.create_session("ana", Utc::now()).await.unwrap();
    let (status, _, _) = g
        .call(
            Method::PUT,
            "/v1/users/ana",
            ADMIN,
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(g.store.session(&token).unwrap().is_some());
    assert_eq!(
        g.store.user("ana").unwrap().unwrap().password,
        stored.password
    );

    let (status, _, _) = g.call(Method::DELETE, "/v1/users/ana", ADMIN, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(g.store.session(&token).unwrap().is_none());
    let (status, body, _) = g.call(Method::DELETE, "/v1/users/ana", ADMIN, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _, _) = g
        .call(
            Method::PUT,
            "/v1/users/ana",
            ADMIN,
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_people_are_refused_as_problems_and_nothing_is_stored() {
    let g = rig();
    for (body, code) in [
        (
            json!({"name": "bo", "password": "nine char", "role": "agent"}),
            "invalid_password",
        ),
        (
            json!({"name": "bo", "password": "", "role": "agent"}),
            "invalid_password",
        ),
        (
            json!({"name": "bo ruiz", "password": "long enough pw", "role": "agent"}),
            "invalid_name",
        ),
        (
            json!({"name": "", "password": "long enough pw", "role": "agent"}),
            "invalid_name",
        ),
        (
            json!({"name": "bo", "password": "long enough pw", "role": "root"}),
            "invalid_role",
        ),
        (
            json!({"name": "bo", "password": "long enough pw", "role": "agent", "team": "a\u{7}b"}),
            "invalid_team",
        ),
        (
            json!({"name": "bo", "password": "long enough pw"}),
            "invalid_request",
        ),
        (
            json!({"name": "bo", "password": "long enough pw", "role": "agent", "admin": true}),
            "invalid_request",
        ),
    ] {
        let (status, answer, content_type) = g
            .call(Method::POST, "/v1/users", ADMIN, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer["code"], code, "{body}: {answer}");
        assert_eq!(content_type, "application/problem+json");
        // The detail is plain words and never echoes the password.
        assert!(!answer["detail"]
            .as_str()
            .unwrap()
            .contains("long enough pw"));
    }
    assert!(g.store.users().unwrap().is_empty());
    g.call(
        Method::POST,
        "/v1/users",
        ADMIN,
        Some(json!({"name": "bo", "password": "long enough pw", "role": "agent"})),
    )
    .await;
    let (status, answer, _) = g
        .call(
            Method::PUT,
            "/v1/users/bo",
            ADMIN,
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_password"))
    );
    let stored = g.store.user("bo").unwrap().unwrap();
    assert!(smsgate::store::users::verify_password(
        &stored.password,
        "long enough pw"
    ));
}

#[tokio::test]
async fn only_admin_tokens_manage_people() {
    let g = rig();
    for (method, uri, body) in [
        (
            Method::POST,
            "/v1/users",
            Some(json!({"name": "x", "password": "0123456789", "role": "admin"})),
        ),
        (Method::GET, "/v1/users", None),
        (Method::PUT, "/v1/users/x", Some(json!({"role": "admin"}))),
        (Method::DELETE, "/v1/users/x", None),
    ] {
        let (status, answer, _) = g.call(method.clone(), uri, SENDER, body.clone()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {uri}"
        );
        let (status, _, _) = g.call(method.clone(), uri, "wrong", body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    assert!(g.store.users().unwrap().is_empty());
}

/// `smsgate user ...` with the admin token, stdin piped (not a terminal:
/// the password is read as a line).
fn smsgate_user(addr: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .arg("user")
        .args(args)
        .args(["--api", addr])
        .env("SMSGATE_API_TOKEN", ADMIN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

async fn cli(addr: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let (addr, stdin) = (addr.to_string(), stdin.to_string());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        smsgate_user(&addr, &args, &stdin)
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_command_manages_people_through_the_api() {
    let g = rig();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, g.state.clone(), async move {
        let _ = stopped.await;
    }));

    let (ok, out, err) = cli(
        &addr,
        &[
            "add",
            "ana",
            "--role",
            "agent",
            "--team",
            "support",
            "--password-stdin",
        ],
        "correct horse battery\n",
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("added ana"), "{out}");
    let stored = g.store.user("ana").unwrap().unwrap();
    assert!(smsgate::store::users::verify_password(
        &stored.password,
        "correct horse battery"
    ));
    assert_eq!(stored.team.as_deref(), Some("support"));

    // Not a terminal and no flag: the password is still one line of stdin.
    let (ok, _, err) = cli(&addr, &["add", "ops", "--role", "admin"], "0123456789abc\n").await;
    assert!(ok, "{err}");

    // A refusal is one line with the API's words and code, exit 2.
    let (ok, _, err) = cli(&addr, &["add", "bo", "--role", "agent"], "short\n").await;
    assert!(!ok);
    assert!(
        err.contains("invalid_password") && err.contains("10 characters"),
        "{err}"
    );
    assert!(g.store.user("bo").unwrap().is_none());

    let (ok, out, _) = cli(&addr, &["list"], "").await;
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with("ana") && lines[1].contains("agent") && lines[1].contains("support")
    );
    assert!(lines[2].starts_with("ops") && lines[2].contains("admin"));

    let (ok, out, err) = cli(&addr, &["passwd", "ana"], "a brand new secret\n").await;
    assert!(ok, "{err}");
    assert!(out.contains("password of ana changed"));
    let stored = g.store.user("ana").unwrap().unwrap();
    assert!(smsgate::store::users::verify_password(
        &stored.password,
        "a brand new secret"
    ));

    let (ok, out, _) = cli(&addr, &["remove", "ana"], "").await;
    assert!(ok && out.contains("removed ana"));
    assert!(g.store.user("ana").unwrap().is_none());
    let (ok, _, err) = cli(&addr, &["remove", "ana"], "").await;
    assert!(!ok && err.contains("not_found"), "{err}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
