//! The inbox over 100,000 open threads: `GET /v1/inbox` pages (50 threads)
//! through the daemon's HTTP API, unfiltered and filtered by team, assignee
//! and priority, and deep pages (by cursor).
//!
//! The store is filled in this process before the daemon opens it, through
//! `Store::change_thread` (one transaction and one durable commit per
//! thread, as an inbound's engine pass does), with 64 concurrent tasks: a
//! wait a few seconds apart for each thread, 1 in 10 urgent, 8 teams, 80
//! people. The daemon runs with no modems and `cache_mb = 32`; reads come
//! from one keep-alive connection, one at a time, after a warm-up.
//!
//! Run: `cargo bench --bench inbox` (`-- --quick`: 10,000 threads).
//! Target (ARCHITECTURE.md, "Targets"): p99 under 5 ms per page (API).

mod harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use harness::{ms, percentile, Client, DaemonThread};
use smsgate::conversation::{Priority, ThreadState};
use smsgate::store::{Store, ThreadChange};

const CACHE_MB: u64 = 32;
const TEAMS: usize = 8;
const PEOPLE: usize = 80;

fn contact(i: usize) -> String {
    format!("+1555{:07}", 5_000_000 + i)
}

/// Open `count` threads in the store at `path`.
fn fill(path: &std::path::Path, count: usize) {
    let rt = harness::client_runtime();
    let store = Store::open(path, CACHE_MB).unwrap();
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let store = store.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            break;
                        }
                        let at = base + chrono::Duration::seconds(3 * n as i64);
                        let mut changes = vec![
                            ThreadChange::Inbound {
                                message_id: format!("msg_bench_{n}"),
                                reopen: true,
                                sla_due: Some(at + chrono::Duration::minutes(10)),
                            },
                            ThreadChange::Assign {
                                team: Some(format!("team{}", n % TEAMS)),
                                assignee: Some(format!("person{}", n % PEOPLE)),
                            },
                        ];
                        if n % 10 == 0 {
                            changes.push(ThreadChange::Priority(Priority::Urgent));
                        }
                        store
                            .change_thread(&contact(n), ThreadState::Open, &changes, None, at)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        store.sync().await.unwrap();
    });
    store.flush_blocking().unwrap();
    println!(
        "filled {count} open threads in {:.1} s ({:.0}/s), {} MiB on disk",
        start.elapsed().as_secs_f64(),
        count as f64 / start.elapsed().as_secs_f64(),
        store.size_on_disk() / (1024 * 1024)
    );
}

/// `reads` pages of `query`, after a tenth as many to warm up: sorted
/// latencies and the items on the first page.
async fn pages(client: &mut Client, query: &str, reads: usize) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::with_capacity(reads);
    let mut first = 0;
    for i in 0..reads + reads / 10 {
        let started = Instant::now();
        let (status, body) = client.request("GET", query, b"").await;
        let took = started.elapsed();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        if i == 0 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            first = v["items"].as_array().map_or(0, Vec::len);
        }
        if i >= reads / 10 {
            latencies.push(took);
        }
    }
    latencies.sort();
    (latencies, first)
}

/// The cursor `depth` pages in.
async fn cursor_at(client: &mut Client, base: &str, depth: usize) -> String {
    let mut cursor = String::new();
    for _ in 0..depth {
        let path = if cursor.is_empty() {
            base.to_string()
        } else {
            format!("{base}&cursor={cursor}")
        };
        let (_, body) = client.request("GET", &path, b"").await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        cursor = v["next_cursor"].as_str().unwrap().to_string();
    }
    cursor
}

fn main() {
    let quick = harness::quick();
    let count = if quick { 10_000 } else { 100_000 };
    let reads = if quick { 500 } else { 5_000 };
    let dir = harness::scratch("inbox");
    let db = dir.join("db");
    fill(&db, count);
    let daemon = DaemonThread::start(harness::config(&db, CACHE_MB, &[]));
    let addr = daemon.started.api;
    let rt = harness::client_runtime();
    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    println!("| page | first page items | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let mut worst = Duration::ZERO;
    rt.block_on(async {
        let mut client = Client::connect(addr).await;
        let deep = cursor_at(&mut client, "/v1/inbox?limit=50", 100).await;
        let queries = [
            (
                "inbox, first page".to_string(),
                "/v1/inbox?limit=50".to_string(),
            ),
            (
                "inbox, page 101 (cursor)".into(),
                format!("/v1/inbox?limit=50&cursor={deep}"),
            ),
            ("team=team3".into(), "/v1/inbox?limit=50&team=team3".into()),
            (
                "assignee=person17".into(),
                "/v1/inbox?limit=50&assignee=person17".into(),
            ),
            (
                "priority=urgent&team=team2".into(),
                "/v1/inbox?limit=50&priority=urgent&team=team2".into(),
            ),
            (
                "assignee=person3&team=team3".into(),
                "/v1/inbox?limit=50&assignee=person3&team=team3".into(),
            ),
        ];
        for (name, query) in queries {
            let (latencies, first) = pages(&mut client, &query, reads).await;
            let p99 = percentile(&latencies, 99.0);
            worst = worst.max(p99);
            println!(
                "| {name} | {first} | {} | {} | {} |",
                ms(percentile(&latencies, 50.0)),
                ms(p99),
                ms(*latencies.last().unwrap_or(&Duration::ZERO))
            );
        }
    });
    println!("load after: {}", harness::load());
    println!(
        "worst p99 {} against 5 ms: {}",
        ms(worst),
        harness::met(worst < Duration::from_millis(5))
    );
    daemon.stop();
}
