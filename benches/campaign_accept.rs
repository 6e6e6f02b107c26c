//! Accepting a 100,000-recipient campaign: `POST /v1/campaigns` to the daemon
//! in this process (no modems: the messages stay queued, so only the accept
//! path is measured), then the campaign task accepts every recipient through
//! the normal admission and `Store::accept` with its idempotency key. Timed
//! from the POST until the campaign is `accepted`; afterwards every recipient
//! must have exactly one stored message.
//!
//! Memory: the process's peak RSS is read after a campaign of a tenth the
//! size and again after the full one; the task holds one chunk of 500
//! recipients at a time, so the second peak should not grow with the list
//! (what does grow: the request body and its parsed list while the POST is
//! answered, about 10 MB for 100,000 numbers, and sled's bounded cache).
//!
//! Run: `cargo bench --bench campaign_accept` (`-- --quick`: 10,000 recipients).
//! Target (issue 12): under 10 s, bounded memory.

mod harness;

use std::time::{Duration, Instant};

use harness::Client;
use smsgate::store::{CampaignState, MessageFilter, Store};

/// Post a campaign to `n` numbers starting at `first`; its id and how long
/// the POST took.
async fn post(addr: std::net::SocketAddr, first: usize, n: usize) -> (String, Duration) {
    let numbers: Vec<String> = (first..first + n).map(|i| format!("+1555{i:07}")).collect();
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

/// One run: post, wait; (POST time, POST to accepted, peak RSS KiB after).
/// Prints the peak right after the POST was answered, and the RSS at the end.
fn run(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    addr: std::net::SocketAddr,
    first: usize,
    n: usize,
) -> (String, Duration, Duration, u64) {
    let start = Instant::now();
    let (id, posted) = rt.block_on(post(addr, first, n));
    println!(
        "  {n}: peak RSS once the POST was answered {} KiB",
        harness::peak_rss_kib("self")
    );
    let took = wait_accepted(store, &id, start);
    println!("  {n}: RSS when accepted {} KiB", harness::rss_kib("self"));
    (id, posted, took, harness::peak_rss_kib("self"))
}

fn main() {
    let quick = harness::quick();
    let full = if quick { 10_000 } else { 100_000 };
    let dir = harness::scratch("campaign_accept");
    let config = harness::config(&dir.join("db"), 32, &[]);
    let daemon = harness::DaemonThread::start(config);
    let addr = daemon.started.api;
    let store: Store = daemon.started.store.clone();
    let rt = harness::client_runtime();
    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    println!("RSS at start: {} KiB", harness::rss_kib("self"));

    let small = full / 10;
    let (_, posted, took, peak_small) = run(&rt, &store, addr, 0, small);
    println!(
        "{small} recipients: POST {:.0} ms, accepted after {:.2} s ({:.0}/s), peak RSS {peak_small} KiB",
        posted.as_secs_f64() * 1e3,
        took.as_secs_f64(),
        small as f64 / took.as_secs_f64()
    );
    let cpu0 = harness::cpu_time("self");
    let (id, posted, took, peak_full) = run(&rt, &store, addr, small, full);
    let cpu = harness::cpu_time("self") - cpu0;
    println!("load after:  {}", harness::load());
    println!(
        "{full} recipients: POST {:.0} ms, accepted after {:.2} s ({:.0}/s), CPU {:.0} us per recipient, peak RSS {peak_full} KiB (+{} KiB over the {small} run)",
        posted.as_secs_f64() * 1e3,
        took.as_secs_f64(),
        full as f64 / took.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / full as f64,
        peak_full.saturating_sub(peak_small)
    );

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
    daemon.stop();
}
