//! Inbound latency: an SMS injected into the simulator's network until it is
//! visible in `GET /v1/threads/{contact}`. The path covers the modem's `+CMTI`,
//! the engine's `AT+CMGR`, decode, the durable store, `AT+CMGD`, and the API.
//! The simulator is unthrottled (no baud pacing, no command latency, no noise);
//! injects go one at a time and the thread is polled on a keep-alive connection
//! as fast as the daemon answers.
//!
//! Run: `cargo bench --bench inbound_latency` (`-- --quick` for a short run).
//! Target (ARCHITECTURE.md, "Targets"): p99 under 50 ms.

mod harness;

use std::time::{Duration, Instant};

use harness::{ms, percentile, Client, DaemonThread};
use smsgate::sim::{Personality, SimConfig, Simulator};

const CONTACTS: usize = 50;

fn main() {
    let quick = harness::quick();
    let count = if quick { 100 } else { 1000 };
    let warmup = if quick { 10 } else { 50 };
    let dir = harness::scratch("inbound_latency");
    let rt = harness::client_runtime();

    let mut sim_config = SimConfig::new(Personality::Sim800);
    sim_config.link = Some(dir.join("modem"));
    sim_config.own_number = "+15550000000".into();
    sim_config.noise_interval = Some(Duration::ZERO);
    let sim = rt.block_on(async { Simulator::start(sim_config).unwrap() });
    let config = harness::config(&dir.join("db"), 32, &[("m1".into(), sim.link())]);
    let daemon = DaemonThread::start(config);
    daemon.wait_ready(Duration::from_secs(20));
    let addr = daemon.started.api;
    let dispatcher = daemon.started.dispatcher.clone();

    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let (latencies, polls) = rt.block_on(async {
        let mut client = Client::connect(addr).await;
        let mut latencies = Vec::with_capacity(count);
        let mut polls = 0u64;
        for n in 0..warmup + count {
            let contact = format!("+1555010{:04}", n % CONTACTS);
            let path = format!("/v1/threads/{}?limit=50", contact.replace('+', "%2B"));
            let text = format!("Inbound reply number {n}: C");
            let needle = format!("\"body\":\"{text}\"");
            let start = Instant::now();
            sim.inject(&contact, &text).unwrap();
            loop {
                let (status, body) = client.request("GET", &path, b"").await;
                polls += 1;
                if status == 200 && memfind(&body, needle.as_bytes()) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "message {n} never showed up (status {status}); modem: {:?}; waiting in the network: {}",
                    dispatcher.statuses().first().map(|s| (s.state, s.last_error.clone(), s.counters.received)),
                    sim.waiting_inbound()
                );
            }
            if n >= warmup {
                latencies.push(start.elapsed());
            }
        }
        (latencies, polls)
    });
    println!("load after:  {}", harness::load());
    let mut sorted = latencies.clone();
    sorted.sort();
    let p50 = percentile(&sorted, 50.0);
    let p99 = percentile(&sorted, 99.0);
    let max = *sorted.last().unwrap();
    println!("{count} injects one at a time after {warmup} warm-up ({polls} thread polls in all)");
    println!(
        "inject -> visible in the thread: p50 {}  p99 {}  max {}",
        ms(p50),
        ms(p99),
        ms(max)
    );
    println!(
        "target (p99 < 50 ms): {}",
        harness::met(p99 < Duration::from_millis(50))
    );
    daemon.stop();
    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
}

fn memfind(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
