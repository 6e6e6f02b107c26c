//! Inbound SMS -> webhook latency: the daemon runs in-process with a simulated
//! SIM800 on a pty and one webhook to a local receiver; SMS are injected at
//! the simulator one at a time and timed until the receiver has the
//! `message.received` delivery (URC, `AT+CMGR`, decode, durable store,
//! `AT+CMGD`, fan-out, signing, HTTP POST).
//!
//! Run: `cargo bench --bench webhook_latency` (`WEBHOOK_BENCH_N=100` for a
//! shorter run; `BENCH_LOG=1` for the daemon's debug log on stderr). Target
//! (ARCHITECTURE.md): p99 under 50 ms. A probe that takes seconds means the
//! daemon missed a `+CMTI` and a periodic sweep found the SMS.

mod harness;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use smsgate::config::Config;
use smsgate::modem::ModemState;
use smsgate::sim::{Personality, SimConfig, Simulator};
use tokio::sync::mpsc;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let n: usize = std::env::var("WEBHOOK_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    if std::env::var_os("BENCH_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = std::env::temp_dir().join(format!("smsgate-bench-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");

    // The receiver: answers 204 and reports each body's text when it arrives.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<(String, Instant)>();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let arrived_tx = arrived_tx.clone();
        async move {
            let at = Instant::now();
            if let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) {
                if let Some(text) = event["data"]["body"].as_str() {
                    let _ = arrived_tx.send((text.to_string(), at));
                }
            }
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let link = dir.join("modem");
    let mut sim_config = SimConfig::new(Personality::Sim800);
    sim_config.link = Some(link.clone());
    sim_config.own_number = "+15550000000".into();
    sim_config.noise_interval = Some(Duration::ZERO);
    let sim = Simulator::start(sim_config).expect("simulator");
    let config = Config::from_toml(
        &format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 16\n\
             [[modem]]\nid = \"m1\"\nport = \"{}\"\n\
             [[webhook]]\nid = \"bench\"\nurl = \"http://{hook}/hook\"\nsecrets = [\"{SECRET}\"]\nevents = [\"message.received\"]\n",
            dir.join("db").display(),
            link.display()
        ),
        std::iter::empty(),
    )
    .expect("config");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(smsgate::daemon::run(
        config,
        Vec::new(),
        async move {
            let _ = stop_rx.await;
        },
        move |started| {
            let _ = started_tx.send((started.dispatcher.clone(), started.store.clone()));
        },
    ));
    let (dispatcher, store) = started_rx.await.expect("daemon started");
    let ready = Instant::now();
    while !dispatcher
        .statuses()
        .iter()
        .any(|s| s.state == ModemState::Ready)
    {
        assert!(ready.elapsed() < Duration::from_secs(30), "modem not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let load_before = harness::load();
    let cpu_before = harness::cpu_time("self").as_secs_f64();
    let wall = Instant::now();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let text = format!("latency probe {i}");
        let from = format!("+1555030{:04}", i % 10_000);
        let sent = Instant::now();
        sim.inject(&from, &text).expect("inject");
        loop {
            let (got, at) = tokio::time::timeout(Duration::from_secs(60), arrived.recv())
                .await
                .unwrap_or_else(|_| {
                    let filter = smsgate::store::MessageFilter { contact: Some(from.clone()), ..Default::default() };
                    let stored = store.list(&filter, None, 5).map(|p| p.items.len());
                    let last = store.last_event_id();
                    let open = store.open_deliveries("bench").map(|o| o.len());
                    let hooks = store.webhooks();
                    panic!("probe {i}: no webhook within 60 s; stored {stored:?}, last event {last:?}, open {open:?}, {hooks:?}, waiting at sim {}", sim.waiting_inbound())
                })
                .expect("receiver running");
            if got == text {
                samples.push(at - sent);
                break;
            }
        }
    }
    let wall = wall.elapsed();
    let cpu = harness::cpu_time("self").as_secs_f64() - cpu_before;
    samples.sort();
    let pct =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "webhook_latency: {n} inbound SMS, one at a time, simulator -> daemon -> local receiver"
    );
    println!(
        "  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (target p99 < 50 ms)",
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(samples[samples.len() - 1])
    );
    println!(
        "  wall {:.1} s; process CPU {:.1} s ({:.0}% of one core); loadavg before {load_before}, after {}",
        wall.as_secs_f64(),
        cpu,
        100.0 * cpu / wall.as_secs_f64(),
        harness::load()
    );
    let _ = stop_tx.send(());
    let _ = daemon.await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
