//! Durable accepts: `POST /v1/messages` from 64 concurrent clients, each on its
//! own keep-alive HTTP/1.1 connection, against the daemon in this process (no
//! modems: the messages stay queued, so only the accept path is measured).
//! Every 202 must be durable, and is checked in the store afterwards.
//!
//! Run: `cargo bench --bench api_accept` (`-- --quick` for a short run).
//! Target (ARCHITECTURE.md, "Targets"): at least 5,000 accepts/s with p99
//! under 25 ms.

mod harness;

use std::time::{Duration, Instant};

use harness::{ms, percentile};
use smsgate::store::{MessageStatus, Store};

const CLIENTS: usize = 64;

/// Every client posts `per_client`; returns (elapsed, latencies and ids).
async fn round(
    addr: std::net::SocketAddr,
    per_client: usize,
) -> (Duration, Vec<(Duration, String)>) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(harness::timed_posts(addr, i, per_client)))
        .collect();
    let mut all = Vec::with_capacity(CLIENTS * per_client);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (start.elapsed(), all)
}

fn main() {
    let quick = harness::quick();
    let per_client = if quick { 100 } else { 800 };
    let warmup_per_client = if quick { 10 } else { 50 };
    let dir = harness::scratch("api_accept");
    let config = harness::config(&dir.join("db"), 32, &[]);

    let daemon = harness::DaemonThread::start(config);
    let addr = daemon.started.api;
    let store: Store = daemon.started.store.clone();
    let rt = harness::client_runtime();
    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let (_, warm) = rt.block_on(round(addr, warmup_per_client));
    let (client0, daemon0) = harness::thread_cpu(harness::CLIENT_THREADS);
    let (elapsed, results) = rt.block_on(round(addr, per_client));
    let (client1, daemon1) = harness::thread_cpu(harness::CLIENT_THREADS);
    println!("load after:  {}", harness::load());

    let n = results.len();
    let mut latencies: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let rate = n as f64 / elapsed.as_secs_f64();
    let p50 = percentile(&latencies, 50.0);
    let p99 = percentile(&latencies, 99.0);
    let p999 = percentile(&latencies, 99.9);
    let max = *latencies.last().unwrap();

    // Every 202 is in the store, queued, once.
    let ids: std::collections::HashSet<&str> = results
        .iter()
        .chain(warm.iter())
        .map(|(_, id)| id.as_str())
        .collect();
    assert_eq!(ids.len(), results.len() + warm.len(), "duplicate ids");
    let mut missing = 0;
    for id in &ids {
        match store.get(id).unwrap() {
            Some(m) if m.status == MessageStatus::Queued => {}
            _ => missing += 1,
        }
    }
    let stored = store.outbox_len();

    println!(
        "{CLIENTS} clients, {n} accepts after {} warm-up: {rate:.0}/s over {:.2} s",
        warm.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "latency p50 {}  p99 {}  p99.9 {}  max {}",
        ms(p50),
        ms(p99),
        ms(p999),
        ms(max)
    );
    let (client_cpu, daemon_cpu) = (client1 - client0, daemon1 - daemon0);
    println!(
        "CPU in the measured round: daemon {:.2} s ({:.0} us per accept, {:.0}% of the 2 cores), clients {:.2} s ({:.0}%)",
        daemon_cpu.as_secs_f64(),
        daemon_cpu.as_secs_f64() * 1e6 / n as f64,
        100.0 * daemon_cpu.as_secs_f64() / (2.0 * elapsed.as_secs_f64()),
        client_cpu.as_secs_f64(),
        100.0 * client_cpu.as_secs_f64() / (2.0 * elapsed.as_secs_f64()),
    );
    println!(
        "store: {} of {} accepted messages found queued ({missing} missing); outbox holds {stored}; {} MiB on disk",
        ids.len() - missing,
        ids.len(),
        store.size_on_disk() / (1024 * 1024)
    );
    let ok = rate >= 5000.0 && p99 < Duration::from_millis(25) && missing == 0;
    println!(
        "target (>= 5,000/s, p99 < 25 ms, nothing lost): {}",
        harness::met(ok)
    );

    daemon.stop();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
