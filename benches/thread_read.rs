//! Thread reads on a big store: `GET /v1/threads/{contact}` (the last 50
//! messages) with 1,000,000 stored messages over 10,000 contacts, on a daemon
//! with 8 simulated modems and `cache_mb = 32`; and the daemon's RSS.
//!
//! The store is filled once, by a child process (this bench re-executed, so
//! the fill's allocations are not in the daemon's RSS) through the store API
//! with 256 concurrent accepts (group commit), and kept in
//! `<target>/bench-data/thread_read-1m` (`thread_read-quick` for `--quick`,
//! 100,000 messages). Delete that directory to fill again, or pass `--refill`.
//! Messages alternate inbound (`received`) and outbound (`delivered`), so none
//! waits in the outbox. The 8 simulators run in another child process; the
//! daemon runs in this one, and reads come from one keep-alive connection,
//! random contacts, one at a time, after a warm-up.
//!
//! Events: the daemon keeps them `EVENTS_KEEP` (7 days) for catch-up and
//! stream resumes. The fill's messages span a year (one every 30 s) but are
//! all written now, so the fill prunes the events after every chunk except
//! the last, as a year of the daemon's housekeeping would have: the events of
//! the last 25,000 messages stay (8.7 days of them). `-- --all-events` keeps
//! every event instead (the worst case: 1M messages within the last 7 days),
//! in its own store directory.
//!
//! Run: `cargo bench --bench thread_read` (`-- --quick` for a small store).
//! `-- --disk` instead measures the store's size on disk, then on a copy
//! erases 3 contacts in 5, blanks every body (retention) and compacts the
//! history files after each, reporting the size at every step.
//! Targets (ARCHITECTURE.md, "Targets"): p99 under 2 ms; RSS under 64 MB.

mod harness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use harness::{ms, percentile, Client, DaemonThread, SimChild};
use smsgate::store::{Accepted, Direction, MessageStatus, Store};

/// 100 messages per contact: 10,000 contacts for 1M messages.
const PER_CONTACT: usize = 100;
const FILL_ENV: &str = "SMSGATE_BENCH_FILL";
const CACHE_MB: u64 = 32;
const MODEMS: usize = 8;

fn contact(i: usize) -> String {
    format!("+1555{:07}", 3_000_000 + i)
}

/// Messages accepted between two archiver passes while filling.
const CHUNK: usize = 25_000;

/// Store message `n`: contact n % contacts, one message every 30 s overall,
/// alternately inbound (received, read) and outbound (delivered).
async fn accept_one(store: &Store, n: usize, contacts: usize, base: chrono::DateTime<Utc>) {
    let c = contact(n % contacts);
    let at = base + chrono::Duration::seconds(30 * n as i64);
    let body = format!(
        "Message {n}: your appointment is on Tuesday at 10:30. Reply C to confirm, R to reschedule."
    );
    let mut m = store.new_outbound("+15550000000", &c, &body, 1, "gsm7", false, None, at);
    m.modem = Some(format!("m{:02}", n % MODEMS));
    if n % 2 == 0 {
        m.direction = Direction::Inbound;
        m.from = c.clone();
        m.to = "+15550000000".into();
        m.part_status.clear();
        m.history.clear();
        m.transition(at, MessageStatus::Received);
        m.read = true;
    } else {
        m.transition(at, MessageStatus::Sending);
        m.transition(at, MessageStatus::Sent);
        m.transition(at, MessageStatus::Delivered);
    }
    match store.accept(m, None).await.unwrap() {
        Accepted::New(_) => {}
        other => panic!("{other:?}"),
    }
}

/// The child: fill the store at `path` with `count` messages; the events of
/// every chunk but the last are pruned unless `all_events`.
fn fill(path: &Path, count: usize, all_events: bool) {
    let contacts = count / PER_CONTACT;
    let rt = harness::client_runtime();
    let store = Store::open(path, CACHE_MB).unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let start = Instant::now();
    rt.block_on(async {
        // In chunks, each followed by a pass of the archiver, as the daemon's
        // housekeeping does every 30 s: settled messages leave sled for the
        // history files, so sled's live trees stay small.
        let mut done = 0;
        while done < count {
            let chunk_end = (done + CHUNK).min(count);
            let tasks: Vec<_> = (0..256)
                .map(|_| {
                    let store = store.clone();
                    let next = next.clone();
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= chunk_end {
                                break;
                            }
                            accept_one(&store, n, contacts, base).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            next.store(chunk_end, Ordering::Relaxed);
            store
                .archive_all_settled(chrono::Duration::zero())
                .await
                .unwrap();
            done = chunk_end;
            if !all_events && done < count {
                store.prune_events_before(Utc::now()).await.unwrap();
            }
            if done % 100_000 == 0 {
                eprintln!("  filled {done} in {:.0} s", start.elapsed().as_secs_f64());
            }
        }
        store.sync().await.unwrap();
    });
    store.flush_blocking().unwrap();
    eprintln!(
        "  filled {count} messages in {:.1} s ({:.0}/s), {} MiB on disk",
        start.elapsed().as_secs_f64(),
        count as f64 / start.elapsed().as_secs_f64(),
        store.size_on_disk() / (1024 * 1024)
    );
}

fn run_fill_child_if_asked() {
    let Ok(spec) = std::env::var(FILL_ENV) else {
        return;
    };
    let (count, rest) = spec.split_once(':').unwrap();
    let (events, path) = rest.split_once(':').unwrap();
    fill(Path::new(path), count.parse().unwrap(), events == "all");
    std::process::exit(0);
}

/// The filled store directory, filling it (in a child) when absent.
fn filled_store(count: usize, name: &str, refill: bool, all_events: bool) -> PathBuf {
    let dir = harness::target_dir().join("bench-data").join(name);
    let marker = dir.join("FILLED");
    if refill {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The tag names the layout: a store of an older layout is filled again.
    let tag = format!(
        "{count} messages, {} per contact, schema {}, archived with a global index, {}",
        PER_CONTACT,
        smsgate::store::SCHEMA_VERSION,
        if all_events {
            "every event"
        } else {
            "events of the last chunk"
        }
    );
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(tag.as_str()) {
        println!("store: reusing {} ({count} messages)", dir.display());
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "store: filling {} with {count} messages (once)",
        dir.display()
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env(
            FILL_ENV,
            format!(
                "{count}:{}:{}",
                if all_events { "all" } else { "pruned" },
                dir.join("db").display()
            ),
        )
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(&marker, tag).unwrap();
    dir
}

/// Bytes of the files in `dir` and below.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.metadata().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `--disk`: what the filled store takes on disk, and what erasure and
/// retention give back once housekeeping's compaction has run (with its
/// thresholds), on a copy of the store. No daemon, no reads.
fn disk(dir: &Path, count: usize) {
    let copy = harness::scratch("thread_read-disk");
    copy_dir(&dir.join("db"), &copy);
    let rt = harness::client_runtime();
    let store = Store::open(&copy, CACHE_MB).unwrap();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let report = |what: &str, messages: usize| {
        let history = dir_bytes(&copy.join("history"));
        let sled = dir_bytes(&copy).saturating_sub(history);
        println!(
            "disk {what}: {messages} messages, history files {:.1} MiB ({:.0} bytes/message), sled {:.1} MiB, {:.1} MiB in all",
            mib(history),
            history as f64 / messages.max(1) as f64,
            mib(sled),
            mib(history + sled)
        );
    };
    report("as filled", count);
    rt.block_on(async {
        let contacts = count / PER_CONTACT;
        let t = Instant::now();
        let mut erased = 0;
        for i in (0..contacts).filter(|i| i % 5 < 3) {
            erased += store.erase_contact(&contact(i)).await.unwrap();
        }
        let left = count - erased;
        println!(
            "erased 3 contacts in 5 ({erased} messages) in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        report("after erasure (frames zeroed in place)", left);
        let t = Instant::now();
        let done = store.compact_history_now().await.unwrap();
        println!(
            "compaction: {} files, {:.1} MiB given back, in {:.1} s",
            done.files,
            mib(done.reclaimed()),
            t.elapsed().as_secs_f64()
        );
        report("after compaction", left);
        let t = Instant::now();
        let blanked = store.purge_bodies_before(Utc::now()).await.unwrap();
        println!(
            "retention blanked {blanked} bodies in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        report("after retention (old copies zeroed)", left);
        let done = store.compact_history_now().await.unwrap();
        println!(
            "compaction: {} files, {:.1} MiB given back",
            done.files,
            mib(done.reclaimed())
        );
        report("after compaction", left);
    });
    drop(store);
    let _ = std::fs::remove_dir_all(&copy);
}

fn main() {
    harness::run_sim_child_if_asked();
    run_fill_child_if_asked();
    let quick = harness::quick();
    let refill = std::env::args().any(|a| a == "--refill");
    let all_events = std::env::args().any(|a| a == "--all-events");
    let (count, name) = match (quick, all_events) {
        (true, false) => (100_000, "thread_read-quick"),
        (true, true) => (100_000, "thread_read-quick-all-events"),
        (false, false) => (1_000_000, "thread_read-1m"),
        (false, true) => (1_000_000, "thread_read-1m-all-events"),
    };
    let reads = if quick { 2_000 } else { 20_000 };
    let contacts = count / PER_CONTACT;
    let dir = filled_store(count, name, refill, all_events);
    if std::env::args().any(|a| a == "--disk") {
        disk(&dir, count);
        return;
    }
    let sim_dir = harness::scratch("thread_read-sims");
    let sims = SimChild::spawn(MODEMS, &sim_dir);
    let config = harness::config(&dir.join("db"), CACHE_MB, &sims.modems());
    let opened = Instant::now();
    let daemon = DaemonThread::start(config);
    daemon.wait_ready(Duration::from_secs(60));
    println!(
        "daemon up with {MODEMS} modems ready in {:.2} s; store {} MiB on disk",
        opened.elapsed().as_secs_f64(),
        daemon.started.store.size_on_disk() / (1024 * 1024)
    );
    let rss_ready = harness::rss_kib("self");
    let addr = daemon.started.api;
    let rt = harness::client_runtime();

    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let (latencies, elapsed) = rt.block_on(async {
        let mut client = Client::connect(addr).await;
        // A cheap xorshift: random contacts without a dependency.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut latencies = Vec::with_capacity(reads);
        let warmup = reads / 10;
        let mut start = Instant::now();
        for n in 0..warmup + reads {
            if n == warmup {
                start = Instant::now();
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = contact((x % contacts as u64) as usize);
            let path = format!("/v1/threads/{}?limit=50", c.replace('+', "%2B"));
            let t = Instant::now();
            let (status, body) = client.request("GET", &path, b"").await;
            let took = t.elapsed();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            if n >= warmup {
                latencies.push(took);
            }
            if n == 0 {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["items"].as_array().unwrap().len(), 50);
            }
        }
        (latencies, start.elapsed())
    });
    println!("load after:  {}", harness::load());
    let rss = harness::rss_kib("self");
    let peak = harness::peak_rss_kib("self");
    let mut sorted = latencies.clone();
    sorted.sort();
    let p50 = percentile(&sorted, 50.0);
    let p99 = percentile(&sorted, 99.0);
    let max = *sorted.last().unwrap();
    println!(
        "{reads} reads of a random contact's last 50 (of {count} messages, {contacts} contacts): {:.0}/s",
        reads as f64 / elapsed.as_secs_f64()
    );
    println!("latency p50 {}  p99 {}  max {}", ms(p50), ms(p99), ms(max));
    println!(
        "RSS of this process (the daemon, plus the bench's one client): {:.1} MiB when ready, {:.1} MiB after the reads, peak {:.1} MiB",
        rss_ready as f64 / 1024.0,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    // 64 MB taken strictly: 64,000,000 bytes (61.0 MiB).
    let rss_ok = peak * 1024 < 64_000_000;
    println!(
        "target p99 < 2 ms: {}; target RSS < 64 MB (peak): {}",
        harness::met(p99 < Duration::from_millis(2)),
        harness::met(rss_ok)
    );
    daemon.stop();
    drop(sims);
    let _ = std::fs::remove_dir_all(&sim_dir);
}
