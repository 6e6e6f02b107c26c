//! Sustained webhook delivery: 20,000 events (10,000 messages, each `sent`
//! then `delivered`) are stored first, then one endpoint's worker delivers
//! them to a local receiver over HTTP (signed, in order per message, 16
//! partitions in flight) and the run is timed until the last one arrives.
//!
//! Run: `cargo bench --bench webhook_throughput` (`WEBHOOK_BENCH_EVENTS` to
//! change the count). Target: at least 2,000 events/s.

mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use smsgate::store::Store;
use smsgate::webhook::{Endpoint, HttpClient, Secret, SystemClock, Worker};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let total: usize = std::env::var("WEBHOOK_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(total - total % 2));
}

async fn run(total: usize) {
    let dir = std::env::temp_dir().join(format!("smsgate-bench-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(&dir, 32).expect("store");
    let url = {
        // The receiver counts what it gets and answers 204.
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        let app = axum::Router::new().fallback(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        COUNT.get_or_init(|| count);
        format!("http://{addr}/hook")
    };
    store
        .register_webhooks(&[("bench".into(), url.clone(), vec![])])
        .await
        .expect("register");

    // Pre-fill: 64 writers share the group commit.
    let fill = Instant::now();
    let messages = total / 2;
    let mut writers = Vec::new();
    for w in 0..64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for kind in ["message.sent", "message.delivered"] {
                for m in (w..messages).step_by(64) {
                    let data = json!({"id": format!("msg_{m:06}"), "status": kind, "body": "Your appointment is Tue 10:30. Reply C to confirm, R to reschedule."});
                    store.emit(kind, data).await.expect("emit");
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    println!(
        "webhook_throughput: stored {total} events in {:.1} s",
        fill.elapsed().as_secs_f64()
    );

    let load_before = harness::load();
    let cpu_before = harness::cpu_time("self").as_secs_f64();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let worker = Worker {
        store: store.clone(),
        endpoint: Arc::new(Endpoint {
            id: "bench".into(),
            url,
            secrets: vec![Secret::parse(SECRET).expect("secret")],
            events: vec![],
            timeout: Duration::from_secs(10),
            foreign: None,
        }),
        transport: Arc::new(HttpClient::new()),
        clock: Arc::new(SystemClock),
        replies: None,
    };
    let started = Instant::now();
    let handle = tokio::spawn(worker.run(stop_rx));
    let count = COUNT.get().expect("receiver").clone();
    while count.load(Ordering::Relaxed) < total {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stalled at {}",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = harness::cpu_time("self").as_secs_f64() - cpu_before;
    let open = store
        .open_deliveries("bench")
        .map(|o| o.len())
        .unwrap_or(usize::MAX);
    println!(
        "  delivered {total} events in {elapsed:.2} s: {:.0} events/s (target >= 2,000/s); {} received, {open} still open right after",
        total as f64 / elapsed,
        count.load(Ordering::Relaxed)
    );
    println!(
        "  process CPU {cpu:.1} s ({:.0}% of one core, receiver included); loadavg before {load_before}, after {}",
        100.0 * cpu / elapsed,
        harness::load()
    );
    let _ = stop.send(true);
    let _ = handle.await;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

static COUNT: std::sync::OnceLock<Arc<AtomicUsize>> = std::sync::OnceLock::new();
