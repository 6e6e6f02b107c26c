//! Webhook delivery through the library: a worker over a real store, against
//! a receiver that verifies every signature itself. Retry timing runs on
//! tokio's paused clock with the receiver called in memory (no sockets, so
//! nothing real has to wait); one test goes over real HTTP.

mod common;
#[path = "common/webhook_receiver.rs"]
mod receiver;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt;

use common::rig::state_over;
use receiver::{InMemory, Receiver};
use smsgate::api::{self, ApiToken, Scope};
use smsgate::config::Config;
use smsgate::store::{DeliveryStatus, Store};
use smsgate::webhook::{
    Clock, Endpoint, HttpClient, Secret, SystemClock, TokioClock, Transport, Worker,
};

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_cm90YXRlZC1zZWNyZXQtZm9yLXNtc2dhdGUtdGVzdHM=";
const ADMIN: &str = "admin-secret";
const READER: &str = "read-secret";

struct Fixture {
    store: Store,
    dir: PathBuf,
    stop: watch::Sender<bool>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn open_store() -> (Store, PathBuf) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "smsgate-webhook-test-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    ));
    (Store::open(&dir, 8).unwrap(), dir)
}

fn endpoint(url: &str) -> Endpoint {
    Endpoint {
        id: "crm".into(),
        url: url.into(),
        // Mid-rotation: both sign every delivery.
        secrets: vec![
            Secret::parse(OLD_SECRET).unwrap(),
            Secret::parse(NEW_SECRET).unwrap(),
        ],
        events: vec![],
        timeout: Duration::from_secs(10),
        foreign: None,
    }
}

/// A store with the endpoint registered and a worker running on it.
async fn start<T: Transport, C: Clock>(url: &str, transport: T, clock: Arc<C>) -> Fixture {
    let (store, dir) = open_store();
    let e = endpoint(url);
    store
        .register_webhooks(&[(e.id.clone(), e.url.clone(), e.events.clone())])
        .await
        .unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let worker = Worker {
        store: store.clone(),
        endpoint: Arc::new(e),
        transport: Arc::new(transport),
        clock,
        replies: None,
    };
    tokio::spawn(worker.run(stop_rx));
    Fixture { store, dir, stop }
}

/// Emit `kinds` for each of `messages` messages, interleaved.
async fn emit(store: &Store, messages: usize, kinds: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for kind in kinds {
        for m in 0..messages {
            let e = store
                .emit(kind, json!({"id": format!("msg_{m:03}"), "status": kind}))
                .await
                .unwrap();
            ids.push(e.id);
        }
    }
    ids
}

/// Wait (on whatever clock the runtime has) until `f` holds. Each step also
/// gives the store's flush thread a millisecond of real time: on a paused
/// clock tokio would otherwise race through the steps while a flush is
/// pending (it does not advance during `spawn_blocking`).
async fn until(what: &str, step: Duration, steps: usize, mut f: impl FnMut() -> bool) {
    for _ in 0..steps {
        if f() {
            return;
        }
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
            .await
            .unwrap();
        tokio::time::sleep(step).await;
    }
    panic!("timed out waiting for {what}");
}

/// Per message, the order in which its events were processed.
fn assert_in_order_per_message(received: &[receiver::Received]) {
    let mut last: HashMap<String, String> = HashMap::new();
    for r in received {
        let partition = r.event["data"]["id"].as_str().unwrap().to_string();
        if let Some(before) = last.get(&partition) {
            assert!(before < &r.id, "{partition}: {} after {before}", r.id);
        }
        last.insert(partition, r.id.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_every_event_arrives_signed_by_each_secret_once_and_in_order() {
    // The receiver knows only the new secret: rotation without a gap.
    let rx = Receiver::new(&[NEW_SECRET], Arc::new(SystemClock));
    let addr = rx.serve(0).await;
    let f = start(
        &format!("http://{addr}/hooks"),
        HttpClient::new(),
        Arc::new(SystemClock),
    )
    .await;
    let ids = emit(&f.store, 40, &["message.sent", "message.delivered"]).await;
    until("80 events", Duration::from_millis(20), 500, || {
        rx.unique().len() == 80
    })
    .await;
    assert!(rx.rejected.lock().unwrap().is_empty());
    let got = rx.received();
    assert_eq!(got.len(), 80, "no event twice when the receiver is up");
    let mut seen: Vec<String> = got.iter().map(|r| r.id.clone()).collect();
    seen.sort();
    assert_eq!(seen, ids);
    assert_in_order_per_message(&got);
    for r in &got {
        assert_eq!(
            r.signature.split(' ').count(),
            2,
            "one v1 signature per secret"
        );
        assert_eq!(r.event["type"], r.event["data"]["status"]);
        assert!(r.event["created_at"].as_str().unwrap().contains('T'));
    }
    // Only the old secret verifies too.
    let old_only = Receiver::new(&[OLD_SECRET], Arc::new(SystemClock));
    let r = &got[0];
    let header = |n: &str| match n {
        "webhook-id" => Some(r.id.clone()),
        "webhook-timestamp" => Some(r.timestamp.to_string()),
        "webhook-signature" => Some(r.signature.clone()),
        _ => None,
    };
    assert_eq!(old_only.handle(header, r.body.as_bytes()).0, 200);
    // The receiver has every event before the worker records the last
    // attempt: wait for the record, not for a time.
    until(
        "the last attempt recorded",
        Duration::from_millis(20),
        500,
        || f.store.webhooks().unwrap()[0].pending == 0,
    )
    .await;
    let hooks = f.store.webhooks().unwrap();
    assert_eq!((hooks[0].pending, hooks[0].dead), (0, 0));
    assert!(hooks[0].last_success_at.is_some());
    let mut metrics = String::new();
    smsgate::webhook::render_metrics(&f.store, &mut metrics);
    for line in [
        "smsgate_webhook_pending{webhook=\"crm\"} 0",
        "smsgate_webhook_dead{webhook=\"crm\"} 0",
        "smsgate_webhook_enabled{webhook=\"crm\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_receiver_failing_for_a_while_gets_everything_in_order_once() {
    let clock = Arc::new(TokioClock::new());
    let rx = Receiver::new(&[OLD_SECRET], clock.clone());
    // Down (500) for the first 60 requests, then up.
    rx.script(|_, i| {
        if i < 60 {
            (500, String::new(), vec![])
        } else {
            (200, "{}".into(), vec![])
        }
    });
    let f = start(
        "http://receiver.invalid/",
        InMemory(rx.clone()),
        clock.clone(),
    )
    .await;
    let ids = emit(
        &f.store,
        20,
        &["message.sent", "message.delivered", "message.failed"],
    )
    .await;
    until("all 60 events", Duration::from_secs(1), 4 * 3600, || {
        rx.unique().len() == 60
    })
    .await;
    assert!(
        rx.rejected.lock().unwrap().is_empty(),
        "{:?}",
        rx.rejected.lock().unwrap()
    );
    let unique = rx.unique();
    let mut seen: Vec<String> = unique.iter().map(|r| r.id.clone()).collect();
    seen.sort();
    assert_eq!(
        seen, ids,
        "each event id once, as an idempotent receiver sees it"
    );
    assert_in_order_per_message(&unique);
    // Every attempt was signed afresh: same id, later timestamp, and never
    // sooner than the schedule's first step (5 s less 10 % jitter).
    let mut attempts: HashMap<String, Vec<i64>> = HashMap::new();
    for r in rx.received() {
        attempts.entry(r.id).or_default().push(r.timestamp);
    }
    assert!(attempts.values().any(|t| t.len() > 1));
    for times in attempts.values() {
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= 4, "{times:?}");
        }
    }
    assert!(f.store.open_deliveries("crm").unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let clock = Arc::new(TokioClock::new());
    let rx = Receiver::new(&[OLD_SECRET], clock.clone());
    rx.script(|_, i| {
        if i == 0 {
            (429, String::new(), vec![("retry-after", "120".to_string())])
        } else {
            (200, "{}".into(), vec![])
        }
    });
    let f = start(
        "http://receiver.invalid/",
        InMemory(rx.clone()),
        clock.clone(),
    )
    .await;
    emit(&f.store, 1, &["message.sent"]).await;
    until("the retry", Duration::from_secs(1), 600, || {
        rx.unique().len() == 1
    })
    .await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert!(
        got[1].timestamp - got[0].timestamp >= 120,
        "{} {}",
        got[0].timestamp,
        got[1].timestamp
    );
}

#[tokio::test(start_paused = true)]
async fn the_schedule_ends_in_a_dead_letter_a_day_after_the_first_attempt() {
    let clock = Arc::new(TokioClock::new());
    let rx = Receiver::new(&[OLD_SECRET], clock.clone());
    rx.script(|_, _| (503, String::new(), vec![]));
    let f = start(
        "http://receiver.invalid/",
        InMemory(rx.clone()),
        clock.clone(),
    )
    .await;
    emit(&f.store, 1, &["message.sent"]).await;
    let store = f.store.clone();
    let dead = || {
        store
            .list_deliveries(
                &smsgate::store::DeliveryFilter {
                    status: Some(DeliveryStatus::Dead),
                    endpoint: None,
                },
                None,
                10,
            )
            .unwrap()
            .items
    };
    until(
        "a dead letter",
        Duration::from_secs(60),
        2 * 24 * 60,
        || !dead().is_empty(),
    )
    .await;
    let d = &dead()[0];
    assert_eq!(d.attempts, 11);
    assert_eq!(d.last_status, Some(503));
    let times: Vec<i64> = rx.received().iter().map(|r| r.timestamp).collect();
    assert_eq!(times.len(), 11);
    let steps = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800];
    for (w, step) in times.windows(2).zip(steps) {
        let gap = w[1] - w[0];
        assert!(
            gap as f64 >= step as f64 * 0.9 - 1.0 && gap as f64 <= step as f64 * 1.1 + 1.0,
            "gap {gap} for step {step}"
        );
    }
    let total = times[10] - times[0];
    assert!(
        (86_400..86_400 + 60).contains(&total),
        "last attempt {total}s after the first"
    );
    assert_eq!(f.store.webhooks().unwrap()[0].dead, 1);
}

/// The API over the fixture's store.
fn api(store: &Store) -> axum::Router {
    let tokens = vec![
        ApiToken::from_secret("ops", ADMIN, vec![Scope::Admin]),
        ApiToken::from_secret("dashboard", READER, vec![Scope::Read]),
    ];
    api::router(state_over(store, &Config::default(), tokens))
}

/// One API request. POSTs wait for the store's flush, which happens on a
/// thread of its own: on a paused clock tokio would meanwhile jump to the
/// API's request timeout, so real time runs for the duration of the call.
async fn call(app: &axum::Router, method: Method, uri: &str, token: &str) -> (u16, Value) {
    let paused = method == Method::POST;
    if paused {
        tokio::time::resume();
    }
    let answer = call_now(app, method, uri, token).await;
    if paused {
        tokio::time::pause();
    }
    answer
}

async fn call_now(app: &axum::Router, method: Method, uri: &str, token: &str) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(start_paused = true)]
async fn gone_disables_the_endpoint_and_enable_resumes_in_order() {
    let clock = Arc::new(TokioClock::new());
    let rx = Receiver::new(&[OLD_SECRET], clock.clone());
    rx.script(|_, i| {
        if i == 0 {
            (410, String::new(), vec![])
        } else {
            (200, "{}".into(), vec![])
        }
    });
    let f = start(
        "http://receiver.invalid/",
        InMemory(rx.clone()),
        clock.clone(),
    )
    .await;
    let app = api(&f.store);
    emit(&f.store, 1, &["message.sent"]).await;
    until("the 410", Duration::from_secs(1), 600, || {
        rx.received().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, hooks) = call(&app, Method::GET, "/v1/webhooks", READER).await;
    assert_eq!(status, 200);
    let hook = &hooks["items"][0];
    assert_eq!(hook["enabled"], false, "{hook}");
    assert!(hook["disabled_reason"].as_str().unwrap().contains("410"));
    // Nothing goes out while disabled, however long.
    emit(&f.store, 1, &["message.delivered"]).await;
    tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(
        call(&app, Method::GET, "/v1/webhooks", READER).await.1["items"][0]["pending"],
        2
    );
    assert_eq!(
        call(&app, Method::POST, "/v1/webhooks/crm/enable", READER)
            .await
            .0,
        403
    );
    let (status, hook) = call(&app, Method::POST, "/v1/webhooks/crm/enable", ADMIN).await;
    assert_eq!((status, &hook["enabled"]), (200, &json!(true)));
    until("both events", Duration::from_secs(1), 600, || {
        rx.unique().len() == 2
    })
    .await;
    let got = rx.unique();
    assert_eq!(got[0].event["type"], "message.sent");
    assert_eq!(got[1].event["type"], "message.delivered");
    assert_eq!(
        call(&app, Method::POST, "/v1/webhooks/nope/enable", ADMIN)
            .await
            .0,
        404
    );
}

#[tokio::test(start_paused = true)]
async fn a_400_is_a_dead_letter_and_a_retry_delivers_it_signed_afresh() {
    let clock = Arc::new(TokioClock::new());
    let rx = Receiver::new(&[OLD_SECRET], clock.clone());
    rx.script(|_, i| {
        if i == 0 {
            (400, String::new(), vec![])
        } else {
            (200, "{}".into(), vec![])
        }
    });
    let f = start(
        "http://receiver.invalid/",
        InMemory(rx.clone()),
        clock.clone(),
    )
    .await;
    let app = api(&f.store);
    emit(&f.store, 1, &["message.sent"]).await;
    until("the 400", Duration::from_secs(1), 600, || {
        rx.received().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(rx.received().len(), 1, "a 400 is not retried by itself");
    let (status, page) = call(
        &app,
        Method::GET,
        "/v1/webhooks/deliveries?status=dead&endpoint=crm",
        READER,
    )
    .await;
    assert_eq!(status, 200);
    let dead = &page["items"][0];
    assert_eq!(
        (&dead["status"], &dead["last_status"]),
        (&json!("dead"), &json!(400))
    );
    let id = dead["id"].as_str().unwrap();
    let retry = format!("/v1/webhooks/deliveries/{id}/retry");
    assert_eq!(call(&app, Method::POST, &retry, READER).await.0, 403);
    let (status, again) = call(&app, Method::POST, &retry, ADMIN).await;
    assert_eq!((status, &again["status"]), (202, &json!("pending")));
    until("the retried delivery", Duration::from_secs(1), 600, || {
        rx.unique().len() == 1
    })
    .await;
    let got = rx.received();
    assert_eq!(got[0].id, got[1].id, "same webhook-id");
    assert!(
        got[1].timestamp >= got[0].timestamp + 600,
        "a fresh webhook-timestamp"
    );
    let (_, delivered) = call(
        &app,
        Method::GET,
        "/v1/webhooks/deliveries?status=delivered",
        READER,
    )
    .await;
    assert_eq!(delivered["items"][0]["id"], id);
    assert_eq!(call(&app, Method::POST, &retry, ADMIN).await.0, 409);
    let (status, _) = call(
        &app,
        Method::GET,
        "/v1/webhooks/deliveries?status=lost",
        READER,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        call(
            &app,
            Method::POST,
            "/v1/webhooks/deliveries/dly_x/retry",
            ADMIN
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn events_page_in_order_after_an_id() {
    let (store, dir) = open_store();
    let app = api(&store);
    let ids = emit(&store, 5, &["message.sent"]).await;
    let (status, page) = call(&app, Method::GET, "/v1/events?limit=2", READER).await;
    assert_eq!(status, 200);
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(page["next_cursor"], ids[1].as_str());
    let (_, rest) = call(
        &app,
        Method::GET,
        &format!("/v1/events?after={}", ids[1]),
        READER,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 3);
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(rest["items"][0]["type"], "message.sent");
    assert_eq!(
        call(&app, Method::GET, "/v1/events?after=evt_zz", READER)
            .await
            .0,
        422
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_resumes_after_last_event_id_and_ends_at_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (store, dir) = open_store();
    let ids = emit(&store, 3, &["message.sent"]).await;
    let tokens = vec![ApiToken::from_secret(
        "dashboard",
        READER,
        vec![Scope::Read],
    )];
    let state = state_over(&store, &Config::default(), tokens);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {READER}\r\nLast-Event-ID: {}\r\n\r\n",
        ids[0]
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    let later = emit(&store, 1, &["message.delivered"]).await;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let wanted = [ids[1].as_str(), ids[2].as_str(), later[0].as_str()];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !wanted.iter().all(|id| text.contains(&format!("id: {id}"))) {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stream: {text}"));
    assert!(text.contains("text/event-stream"), "{text}");
    assert!(
        !text.contains(&format!("id: {}\n", ids[0])),
        "resumed after Last-Event-ID"
    );
    assert!(text.contains("event: message.delivered"));
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("graceful shutdown does not wait for the stream")
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
