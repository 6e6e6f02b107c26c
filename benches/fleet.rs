//! The fleet (issue 15, feature `fleet`): how long a STOP stored at one
//! gateway takes to hold at another.
//!
//! One nats-server with JetStream on loopback (Debian's, as the tests use
//! it) and two gateways in this process, sites `a` and `c`, each with its
//! own store and no modems (consent is what is measured). For each of N
//! contacts an opt-out is recorded at A through its API (`PUT
//! /v1/contacts/{n}/consent`, answered once durable at A); the time is taken
//! from that answer until C's store (what the check before `AT+CMGS` reads)
//! holds the opt-out. One contact at a time, so each sample is the
//! propagation alone: A's publisher (ledger stream and bucket, both
//! acknowledged), the broker, C's watcher and C's durable write.
//!
//! Then accepts through the fleet: a third gateway `b` joins, and 64
//! clients on keep-alive connections post `POST /v1/messages` round-robin
//! to the three APIs; each 202 comes after JetStream acknowledged the
//! message in the work queue (no gateway has modems, so the queue keeps
//! them all, and its count is checked against the 202s).
//!
//! Run: `cargo bench --features fleet --bench fleet` (`-- --quick`: 100
//! contacts and 6,400 accepts; else 1,000 and 32,000). Targets (issue 15):
//! a STOP at A blocks a send at C whose `AT+CMGS` starts more than 1 s
//! later: the maximum under 1 s; at least 3,000 accepts/s through the
//! fleet with p99 under 50 ms, on this machine with everything on it.

#[path = "../tests/common/nats.rs"]
mod nats;

mod harness;

use std::time::{Duration, Instant};

use harness::{Client, DaemonThread};
use smsgate::store::ConsentStatus;

fn gateway(dir: &std::path::Path, name: &str, nats: &str) -> DaemonThread {
    let mut config = harness::config(&dir.join(name), 32, &[]);
    let cluster = format!("[cluster]\nnats_url = [\"{nats}\"]\nsite = \"{name}\"\n");
    let parsed = smsgate::config::Config::from_toml(&cluster, std::iter::empty()).unwrap();
    config.cluster = parsed.cluster;
    DaemonThread::start(config)
}

/// Wait until the gateway's consent replica is current (`/readyz`).
async fn wait_current(addr: std::net::SocketAddr) {
    let start = Instant::now();
    let mut client = Client::connect(addr).await;
    loop {
        let (_, body) = client.request("GET", "/readyz", b"").await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v["fleet"]["consent_current"] == true {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not current: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let quick = harness::quick();
    let n = if quick { 100 } else { 1_000 };
    let dir = harness::scratch("fleet");
    let server = nats::NatsServer::start(dir.join("nats"));
    let a = gateway(&dir, "a", &server.url());
    let c = gateway(&dir, "c", &server.url());
    let rt = harness::client_runtime();
    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let c_store = c.started.store.clone();
    let (samples, api) = rt.block_on(async {
        wait_current(a.started.api).await;
        wait_current(c.started.api).await;
        let mut client = Client::connect(a.started.api).await;
        let mut samples = Vec::with_capacity(n);
        let mut api = Vec::with_capacity(n);
        for i in 0..n {
            let contact = format!("+1555300{i:04}");
            let path = format!("/v1/contacts/%2B{}/consent", &contact[1..]);
            let sent = Instant::now();
            let (status, body) = client
                .request("PUT", &path, br#"{"status":"opted_out","reason":"bench"}"#)
                .await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            let stored = Instant::now();
            api.push(stored - sent);
            loop {
                if c_store.consent(&contact, None).unwrap().status == ConsentStatus::OptedOut {
                    break;
                }
                assert!(
                    stored.elapsed() < Duration::from_secs(30),
                    "{contact}: not at C after 30 s"
                );
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            samples.push(stored.elapsed());
        }
        (samples, api)
    });
    println!("load after:  {}", harness::load());
    let mut sorted = samples.clone();
    sorted.sort();
    let mut api = api;
    api.sort();
    let max = sorted.last().copied().unwrap_or_default();
    println!(
        "{n} opt-outs at A: the API's answer p50 {}, p99 {}; A's answer -> held at C: p50 {}, p90 {}, p99 {}, max {}",
        harness::ms(harness::percentile(&api, 50.0)),
        harness::ms(harness::percentile(&api, 99.0)),
        harness::ms(harness::percentile(&sorted, 50.0)),
        harness::ms(harness::percentile(&sorted, 90.0)),
        harness::ms(harness::percentile(&sorted, 99.0)),
        harness::ms(max),
    );
    println!(
        "target (a STOP at A holds at C within 1 s, every sample): {}",
        harness::met(max < Duration::from_secs(1))
    );
    let b = gateway(&dir, "b", &server.url());
    accepts(
        &rt,
        &[&a, &b, &c],
        &server.url(),
        if quick { 100 } else { 500 },
    );
    a.stop();
    b.stop();
    c.stop();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

const CLIENTS: usize = 64;

/// 64 clients, round-robin over `gateways`, `per_client` accepts each.
fn accepts(
    rt: &tokio::runtime::Runtime,
    gateways: &[&DaemonThread],
    nats: &str,
    per_client: usize,
) {
    let addrs: Vec<std::net::SocketAddr> = gateways.iter().map(|g| g.started.api).collect();
    let round = |per_client: usize| {
        rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|i| tokio::spawn(harness::timed_posts(addrs[i % addrs.len()], i, per_client)))
                .collect();
            let mut all = Vec::with_capacity(CLIENTS * per_client);
            for t in tasks {
                all.extend(t.await.unwrap().into_iter().map(|(took, _)| took));
            }
            (start.elapsed(), all)
        })
    };
    rt.block_on(async {
        for addr in &addrs {
            wait_current(*addr).await;
        }
    });
    let (_, warm) = round(10);
    println!("load before accepts: {}", harness::load());
    let (elapsed, mut latencies) = round(per_client);
    println!("load after accepts:  {}", harness::load());
    latencies.sort();
    let n = latencies.len();
    let rate = n as f64 / elapsed.as_secs_f64();
    let p99 = harness::percentile(&latencies, 99.0);
    // Every 202 is in the work queue (nothing pulls it: no modems).
    let queued = rt.block_on(async {
        let client = async_nats::connect(nats).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("SMSGATE_OUTBOUND").await.unwrap();
        stream.info().await.unwrap().state.messages
    });
    let accepted = (n + warm.len()) as u64;
    println!(
        "{CLIENTS} clients over {} gateways, {n} accepts after {} warm-up: {rate:.0}/s over {:.2} s; latency p50 {}, p99 {}, max {}",
        addrs.len(),
        warm.len(),
        elapsed.as_secs_f64(),
        harness::ms(harness::percentile(&latencies, 50.0)),
        harness::ms(p99),
        harness::ms(latencies.last().copied().unwrap_or_default()),
    );
    println!("work queue: {queued} messages for {accepted} accepted");
    println!(
        "target (>= 3,000 accepts/s, p99 < 50 ms, every 202 in the work queue): {}",
        harness::met(rate >= 3000.0 && p99 < Duration::from_millis(50) && queued == accepted)
    );
}
