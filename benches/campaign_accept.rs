//! Accepting a 100,000-recipient campaign: `POST /v1/campaigns` to the daemon
//! in this process (no modems: the messages stay queued, so only the accept
//! path is measured), then the campaign task composes and admits every
//! recipient as `POST /v1/messages` does and stores each batch of 100 (its
//! messages, counts and resume cursor) in one transaction. Timed from the
//! POST until the campaign is `accepted`; afterwards every recipient must
//! have exactly one stored message.
//!
//! Memory: RSS after a campaign of a tenth the size and after the full one.
//! The campaign's own working set does not grow with the list (the task
//! holds two batches: one being stored, the next being composed; the POST
//! holds the list while it is answered); the 100,000 messages it stores are
//! the store's, as any 100,000 accepts are. `-- --baseline` stores the same
//! numbers of messages through `POST /v1/messages` (64 clients) instead, so
//! the two RSS growths can be compared; `-- --rounds N` adds N more full
//! campaigns to the same store, to see the growth per 100,000 flatten as
//! sled's cache starts evicting.
//!
//! Then the full campaign is cancelled (`POST /v1/campaigns/{id}/cancel`:
//! every message still waits, so all of them, a page at a time): time and
//! RSS growth.
//!
//! After each full campaign the bench waits for two of the daemon's
//! housekeeping passes (which give freed heap memory back to the system)
//! and prints the RSS. `-- --rounds N --settle` cancels each further
//! round's campaign once accepted (its messages settle as sent ones do and
//! housekeeping moves them to the history files), to show the RSS of a
//! daemon that keeps accepting campaigns and sending them.
//!
//! Run: `cargo bench --bench campaign_accept` (`-- --quick`: 10,000 recipients).
//! Target (issue 12): under 10 s, bounded memory.

mod harness;

use std::time::{Duration, Instant};

use harness::Client;
use smsgate::store::{CampaignState, MessageFilter, Store};

/// Clients of the `--baseline` run (as `benches/api_accept.rs`).
const CLIENTS: usize = 64;

fn number(i: usize) -> String {
    format!("+1555{i:07}")
}

/// Post a campaign to `n` numbers starting at `first`; its id and how long
/// the POST took.
async fn post(addr: std::net::SocketAddr, first: usize, n: usize) -> (String, Duration) {
    let numbers: Vec<String> = (first..first + n).map(number).collect();
    let body = serde_json::json!({
        "name": format!("bench {n}"),
        "recipients": {"numbers": numbers},
        "variants": [
            {"id": "a", "template": "Your check-up is due on {{date}}. Book at {{url}} or reply STOP to opt out.", "weight": 1},
            {"id": "b", "template": "Time for a check-up ({{date}})! Book: {{url}}. Reply STOP to opt out.", "weight": 1}
        ],
        "category": "transactional",
        "context": {"date": "March 3", "url": "https://example.test/book"}
    })
    .to_string();
    let mut client = Client::connect(addr).await;
    let start = Instant::now();
    let (status, answer) = client
        .request("POST", "/v1/campaigns", body.as_bytes())
        .await;
    let took = start.elapsed();
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    (answer["id"].as_str().unwrap().to_string(), took)
}

/// Wait until the campaign is accepted; how long from `since`.
fn wait_accepted(store: &Store, id: &str, since: Instant) -> Duration {
    loop {
        let record = store.campaign(id).unwrap().unwrap();
        if record.state == CampaignState::Accepted {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(600),
            "not accepted after 10 minutes: {:?}",
            record.progress
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The same texts, one `POST /v1/messages` each, from [`CLIENTS`] clients.
async fn post_messages(addr: std::net::SocketAddr, first: usize, n: usize) {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for i in (first + c..first + n).step_by(CLIENTS) {
                    let body = serde_json::json!({
                        "to": number(i),
                        "body": "Your check-up is due on March 3. Book at https://example.test/book or reply STOP to opt out."
                    })
                    .to_string();
                    let (status, answer) = client
                        .request("POST", "/v1/messages", body.as_bytes())
                        .await;
                    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// One run of `n` recipients from `first`: (campaign id, POST time, POST to
/// accepted). Prints the RSS as it goes.
fn run(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    addr: std::net::SocketAddr,
    baseline: bool,
    first: usize,
    n: usize,
) -> (Option<String>, Duration, Duration) {
    let start = Instant::now();
    if baseline {
        rt.block_on(post_messages(addr, first, n));
        let took = start.elapsed();
        println!(
            "  {n} messages: {:.2} s ({:.0}/s), RSS {} KiB, peak {} KiB",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            harness::rss_kib("self"),
            harness::peak_rss_kib("self")
        );
        return (None, took, took);
    }
    let (id, posted) = rt.block_on(post(addr, first, n));
    println!(
        "  {n}: peak RSS once the POST was answered {} KiB",
        harness::peak_rss_kib("self")
    );
    let took = wait_accepted(store, &id, start);
    println!(
        "  {n}: POST {:.0} ms, accepted after {:.2} s ({:.0}/s), RSS {} KiB, peak {} KiB",
        posted.as_secs_f64() * 1e3,
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        harness::rss_kib("self"),
        harness::peak_rss_kib("self")
    );
    (Some(id), posted, took)
}

/// The RSS once the daemon's housekeeping has run after the accept (it
/// gives back freed memory, `memory::give_back_freed_memory`): waits two of
/// its periods, so that sled's delayed reclamation is done as well.
fn rss_after_housekeeping() -> u64 {
    std::thread::sleep(smsgate::modem::expiry::PERIOD * 2 + Duration::from_secs(1));
    if let Some((used, free)) = smsgate::memory::measure_heap() {
        println!(
            "  heap: {} KiB in use, {} KiB free",
            used / 1024,
            free / 1024
        );
    }
    harness::rss_kib("self")
}

/// Cancel campaign `id` of `n` messages, all still waiting; how long until
/// it is `cancelled`.
async fn cancel(store: &Store, addr: std::net::SocketAddr, id: &str, n: usize) -> Duration {
    let start = Instant::now();
    let (status, answer) = Client::connect(addr)
        .await
        .request("POST", &format!("/v1/campaigns/{id}/cancel"), b"")
        .await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
    let record = loop {
        let record = store.campaign(id).unwrap().unwrap();
        if record.state == CampaignState::Cancelled {
            break record;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "not cancelled after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(record.messages().cancelled, n as u64);
    start.elapsed()
}

/// `--rounds N` on the command line (default 0).
fn rounds() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let quick = harness::quick();
    let baseline = std::env::args().any(|a| a == "--baseline");
    let full = if quick { 10_000 } else { 100_000 };
    let dir = harness::scratch("campaign_accept");
    // `--settle`: each further round's campaign is cancelled once accepted
    // (its messages settle, as sent ones do) and moved to the history files
    // by housekeeping a second later, as a daemon with modems does with
    // what it sent.
    let settle = std::env::args().any(|a| a == "--settle");
    let mut config = harness::config(&dir.join("db"), 32, &[]);
    if settle {
        config.store.archive_after = Duration::from_secs(1);
    }
    let daemon = harness::DaemonThread::start(config);
    let addr = daemon.started.api;
    let store: Store = daemon.started.store.clone();
    let rt = harness::client_runtime();
    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    println!(
        "mode: {}",
        if baseline {
            "baseline (POST /v1/messages)"
        } else {
            "campaign"
        }
    );
    println!("RSS at start: {} KiB", harness::rss_kib("self"));

    let small = full / 10;
    run(&rt, &store, addr, baseline, 0, small);
    let rss_small = harness::rss_kib("self");
    let cpu0 = harness::cpu_time("self");
    let (id, posted, took) = run(&rt, &store, addr, baseline, small, full);
    let cpu = harness::cpu_time("self") - cpu0;
    let rss_full = harness::rss_kib("self");
    println!("load after:  {}", harness::load());
    println!(
        "{full} recipients: POST {:.0} ms, accepted after {:.2} s ({:.0}/s), CPU {:.0} us per recipient; RSS {rss_small} KiB after {small}, {rss_full} KiB after {full} more (+{} KiB, {:.0} bytes per message)",
        posted.as_secs_f64() * 1e3,
        took.as_secs_f64(),
        full as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / full as f64,
        rss_full.saturating_sub(rss_small),
        rss_full.saturating_sub(rss_small) as f64 * 1024.0 / full as f64,
    );
    let settled = rss_after_housekeeping();
    println!("RSS after housekeeping: {settled} KiB");
    let mut rss = rss_full;
    let mut settled_rounds = vec![settled];
    for round in 1..=rounds() {
        let live = store.live_messages();
        let (id, _, _) = run(&rt, &store, addr, baseline, small + full * round, full);
        if let (true, Some(id)) = (settle, id) {
            let took = rt.block_on(cancel(&store, addr, &id, full));
            println!("  cancelled in {:.2} s", took.as_secs_f64());
            // Housekeeping moves them to the history files.
            let start = Instant::now();
            while store.live_messages() > live {
                assert!(
                    start.elapsed() < Duration::from_secs(600),
                    "not archived after 10 minutes"
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            println!(
                "  moved to the history files {:.0} s after the cancel",
                start.elapsed().as_secs_f64()
            );
        }
        let now = harness::rss_kib("self");
        let settled = rss_after_housekeeping();
        println!(
            "round {round}: {full} more, RSS +{} KiB; after housekeeping {settled} KiB",
            now.saturating_sub(rss)
        );
        settled_rounds.push(settled);
        rss = now;
    }
    if settled_rounds.len() > 1 {
        println!(
            "RSS after housekeeping, per round (KiB): {settled_rounds:?}; max {}",
            settled_rounds.iter().max().unwrap_or(&0)
        );
    }

    if let Some(id) = id {
        // Every recipient exactly once.
        let record = store.campaign(&id).unwrap().unwrap();
        assert_eq!(
            record.progress.accepted, full as u64,
            "{:?}",
            record.progress
        );
        let mut seen = std::collections::HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list(&MessageFilter::default(), cursor.as_deref(), 500)
                .unwrap();
            for m in page.items {
                if m.campaign.as_deref() == Some(id.as_str()) {
                    assert!(seen.insert(m.to.clone()), "{} twice", m.to);
                }
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), full);
        println!("in store: {} of {full}, each once", seen.len());
        println!(
            "target (under 10 s for 100,000): {}",
            harness::met(!quick && took < Duration::from_secs(10))
        );

        // Cancel the whole campaign: every message still waits (no
        // modems), so the task cancels all of them, a page at a time.
        let rss_before = harness::rss_kib("self");
        let took = rt.block_on(cancel(&store, addr, &id, full));
        println!(
            "cancel of {full}: {:.2} s ({:.0}/s), RSS {} KiB (+{} KiB)",
            took.as_secs_f64(),
            full as f64 / took.as_secs_f64(),
            harness::rss_kib("self"),
            harness::rss_kib("self").saturating_sub(rss_before)
        );
    }
    daemon.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
