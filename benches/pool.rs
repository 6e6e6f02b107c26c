//! A 64-modem pool on one machine (issue 15): 64 simulated SIM800s, each
//! paced at 115200 baud, all sending at once through one daemon.
//!
//! 60 simulators run in a child process (this bench re-executed with
//! `SMSGATE_BENCH_SIMS=60:DIR`), so their memory is not the daemon's; 4 run
//! in this process, because inbound SMS are injected there (their memory is
//! counted: the RSS below is an upper bound for the daemon). The daemon runs
//! in this process with 64 `[[modem]]` entries and one webhook to a local
//! receiver (`message.received`).
//!
//! Measured, while every modem sends:
//! - aggregate send throughput: `PER_MODEM` x 64 single-part 160-character
//!   GSM 7-bit messages to distinct contacts, posted through the API by 16
//!   connections with one `send_at` after the posting ends, so every modem
//!   starts at once with the whole queue before it (the accepts are not
//!   measured here: `benches/api_accept.rs` does that); the rate is taken
//!   from the messages' own `sent` times over the middle 80% (10th to 90th
//!   percentile), and compared with the sum of the 64 wire limits. A
//!   modem's wire limit is 11,520 bytes/s (115200 baud, 8N1: 10 bits a byte)
//!   over the bytes of one send: `AT+CMGS=153\r`, `\r\n> `, 306 hex digits
//!   and Ctrl-Z, `\r\n+CMGS: <mr>\r\n\r\nOK\r\n`.
//! - inbound `+CMTI` -> webhook: an SMS injected at one of the 4 local
//!   simulators every 25 ms, timed from the moment the simulator wrote its
//!   `+CMTI` (the URC's last byte accepted by the pty) until the receiver
//!   has its `message.received`; and from the injection, which adds the
//!   modem's own wait (a SIM800 announces an SMS between commands only).
//!   Only probes injected while sends are under way count.
//! - `GET /v1/modems` and `GET /metrics`, one request at a time, back to back.
//! - the process's peak RSS (`VmHWM`).
//!
//! Run: `cargo bench --bench pool` (`-- --quick`: 20 messages per modem;
//! `-- --long`: 200, about 7 s of sends and 150 inbound probes, so that
//! their p99 is not simply the slowest probe).
//! Targets: throughput >= 80% of the wire limits' sum, webhook p99 < 20 ms,
//! RSS < 96 MB, each request < 5 ms.

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use harness::{Client, DaemonThread, SimChild};
use smsgate::config::Config;
use smsgate::pdu::{self, Address, SubmitOptions};
use smsgate::sim::{Personality, SimConfig, Simulator};
use smsgate::store::MessageStatus;
use tokio::sync::mpsc;

const BAUD: u32 = 115_200;
const MODEMS: usize = 64;
const LOCAL: usize = 4;
const POSTERS: usize = 16;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A 160-character GSM 7-bit text, unique by `n`.
fn text(n: usize) -> String {
    let head = format!("Msg {n:05}: your appointment is confirmed for Tuesday at 10:30. ");
    let mut t = head;
    while t.len() < 160 {
        t.push_str("Reply C to confirm or R to reschedule. ");
    }
    t.truncate(160);
    t
}

fn to(n: usize) -> String {
    format!("+1555{:07}", 2_000_000 + n)
}

/// CPU time of the parts of the bench: the daemon's threads (its runtime,
/// the store's), the client runtime's (posting, probes, the 4 local
/// simulators), this main thread (waiting for the sends) and the child.
struct Cpu {
    daemon: Duration,
    clients: Duration,
    main: Duration,
    child: Duration,
}

impl Cpu {
    fn now(child: &SimChild) -> Cpu {
        let main = harness::cpu_time(&format!("self/task/{}", std::process::id()));
        let (clients, _) = harness::thread_cpu(harness::CLIENT_THREADS);
        // The whole process's (it keeps the time of threads that ended)
        // less the others'.
        Cpu {
            daemon: harness::cpu_time("self").saturating_sub(clients + main),
            clients,
            main,
            child: harness::cpu_time(&child.pid()),
        }
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            daemon: self.daemon.saturating_sub(before.daemon),
            clients: self.clients.saturating_sub(before.clients),
            main: self.main.saturating_sub(before.main),
            child: self.child.saturating_sub(before.child),
        }
    }
}

fn main() {
    harness::run_sim_child_if_asked();
    let quick = harness::quick();
    // `--long`: about 150 inbound probes instead of 45, so that the p99
    // is the second-slowest probe rather than the slowest.
    let per_modem = match (quick, harness::long()) {
        (true, _) => 20,
        (_, true) => 200,
        _ => 60,
    };
    let count = per_modem * MODEMS;
    let dir = harness::scratch("pool");
    let rt = harness::client_runtime();

    // The webhook receiver: the text of each message.received and when.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<(String, Instant)>();
    let hook = rt.block_on(async {
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        hook
    });

    std::env::set_var(harness::SIMS_BAUD_ENV, BAUD.to_string());
    let child_dir = dir.join("child");
    std::fs::create_dir_all(&child_dir).unwrap();
    let child = SimChild::spawn(MODEMS - LOCAL, &child_dir);
    let locals: Vec<_> = (0..LOCAL)
        .map(|i| {
            let mut c = SimConfig::new(Personality::Sim800);
            c.link = Some(dir.join(format!("local-{i}")));
            c.own_number = format!("+1555900{i:04}");
            c.noise_interval = Some(Duration::ZERO);
            c.baud = Some(BAUD);
            rt.block_on(async { Simulator::start(c).unwrap() })
        })
        .collect();
    let mut modems = child.modems();
    for (i, s) in locals.iter().enumerate() {
        modems.push((format!("l{i}"), s.link()));
    }
    let mut toml = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 16\n[sms]\ndefault_country = \"US\"\n\
         [[webhook]]\nid = \"bench\"\nurl = \"http://{hook}/hook\"\nsecrets = [\"{SECRET}\"]\nevents = [\"message.received\"]\n",
        dir.join("db").display()
    );
    for (id, port) in &modems {
        toml.push_str(&format!(
            "[[modem]]\nid = \"{id}\"\nport = \"{}\"\nbaud = {BAUD}\n",
            port.display()
        ));
    }
    let config = Config::from_toml(&toml, std::iter::empty()).unwrap();
    let daemon = DaemonThread::start(config);
    daemon.wait_ready(Duration::from_secs(60));
    let addr = daemon.started.api;
    let store = daemon.started.store.clone();

    // The bytes of one send, from its PDU (every text is 160 characters to
    // a number of the same length, so every send is the same size).
    let part = pdu::encode_submit(
        &Address::parse_number(&to(0)).unwrap(),
        &text(0),
        &SubmitOptions {
            status_report: false,
            ..SubmitOptions::default()
        },
    )
    .unwrap()
    .parts[0]
        .clone();
    let mr_digits = 2.0; // TP-MR 1..=255 as the simulator counts: 2 digits on average for ~60 sends
    let send_bytes = format!("AT+CMGS={}\r", part.tpdu_length).len() as f64
        + "\r\n> ".len() as f64
        + 2.0 * part.pdu.len() as f64
        + 1.0
        + "\r\n+CMGS: \r\n\r\nOK\r\n".len() as f64
        + mr_digits;
    let rate = f64::from(BAUD) / 10.0;
    let per_modem_limit = rate / send_bytes;
    let wire_limit = per_modem_limit * MODEMS as f64;

    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let rss_idle = harness::rss_kib("self");
    let sending = Arc::new(AtomicBool::new(true));

    // Probes: inbound SMS at the local simulators, and API reads.
    let inbound = {
        let sending = sending.clone();
        let locals = locals.to_vec();
        rt.spawn(async move {
            let mut samples = Vec::new();
            let mut i = 0usize;
            while sending.load(Ordering::Relaxed) {
                let body = format!("probe {i}");
                let from = format!("+1555031{:04}", i % 10_000);
                let t0 = Instant::now();
                locals[i % LOCAL].inject(&from, &body).unwrap();
                loop {
                    let Ok(Some((got, at))) =
                        tokio::time::timeout(Duration::from_secs(30), arrived.recv()).await
                    else {
                        panic!("probe {i}: no webhook within 30 s");
                    };
                    if got == body {
                        // The modem's +CMTI for it: the first written after
                        // the injection (the local simulators receive
                        // nothing else and send no other URC).
                        let cmti = locals[i % LOCAL]
                            .urcs_written(t0)
                            .into_iter()
                            .find(|(_, line)| line.starts_with("+CMTI"))
                            .map(|(written, _)| at.saturating_duration_since(written));
                        samples.push((t0, at - t0, cmti));
                        break;
                    }
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            samples
        })
    };
    let reads = {
        let sending = sending.clone();
        rt.spawn(async move {
            let mut c = Client::connect(addr).await;
            let (mut modems, mut metrics) = (Vec::new(), Vec::new());
            while sending.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let (status, body) = c.request("GET", "/v1/modems", b"").await;
                assert_eq!(status, 200);
                modems.push(t0.elapsed());
                assert!(body.len() > 64 * 100, "{} bytes for 64 modems", body.len());
                let t0 = Instant::now();
                let (status, _) = c.request("GET", "/metrics", b"").await;
                assert_eq!(status, 200);
                metrics.push(t0.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (modems, metrics)
        })
    };

    let start = Instant::now();
    let posting_cpu = Cpu::now(&child);
    // Long enough for the posting to end first (about 600 accepts/s under load).
    let lead = Duration::from_secs_f64(3.0 + count as f64 / 400.0);
    let send_at = (chrono::Utc::now() + chrono::Duration::from_std(lead).unwrap()).to_rfc3339();
    let ids: Vec<String> = rt.block_on(harness::post_messages(addr, POSTERS, count, move |n| {
        serde_json::json!({
            "to": to(n), "body": text(n), "status_report": false, "send_at": send_at
        })
        .to_string()
    }));
    let posted = start.elapsed();
    let posting_cpu = Cpu::now(&child).since(&posting_cpu);
    println!(
        "posting: {count} accepted in {:.2} s; the daemon's CPU {:.2} s = {:.3} ms an accept (the API, and {MODEMS} idle modems told of each)",
        posted.as_secs_f64(),
        posting_cpu.daemon.as_secs_f64(),
        posting_cpu.daemon.as_secs_f64() * 1000.0 / count as f64
    );
    assert!(
        posted < lead,
        "posting took {posted:?}, longer than the lead {lead:?}"
    );
    let idle_reads = rt.block_on(async {
        let mut c = Client::connect(addr).await;
        let mut v = Vec::new();
        for _ in 0..100 {
            let t0 = Instant::now();
            let (status, _) = c.request("GET", "/v1/modems", b"").await;
            assert_eq!(status, 200);
            v.push(t0.elapsed());
        }
        v.sort();
        v
    });
    println!(
        "GET /v1/modems with {MODEMS} modems, queue full, before the sends: p50 {} p99 {}",
        harness::ms(harness::percentile(&idle_reads, 50.0)),
        harness::ms(harness::percentile(&idle_reads, 99.0))
    );
    let start = start + lead;
    // CPU from here to the last send: this process (daemon, 4 simulators,
    // probes) and the child's 60 simulators.
    while Instant::now() < start {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("sends start (process {})", std::process::id());
    let cpu0 = Cpu::now(&child);
    // Waited for in posting order, the first unsent one at a time: the
    // modems take them in about that order, so each look reads a record or
    // two (reading every unsent record each time cost this thread most of
    // a core, counted as the daemon's before 2026-12-04 session 7).
    let mut remaining = ids.iter().peekable();
    let deadline = Instant::now() + Duration::from_secs(600);
    while let Some(id) = remaining.peek() {
        if store.get(id).unwrap().unwrap().status == MessageStatus::Sent {
            remaining.next();
            continue;
        }
        assert!(Instant::now() < deadline, "{} not sent", remaining.len());
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let end = Instant::now();
    let cpu = Cpu::now(&child).since(&cpu0);
    println!(
        "CPU while sending ({:.2} s of wall, 2 cores): the daemon {:.2} s = {:.3} ms a send ({:.2} cores); \
         the bench's clients and 4 simulators {:.2} s, its wait for the sends {:.2} s; the simulator child {:.2} s",
        elapsed.as_secs_f64(),
        cpu.daemon.as_secs_f64(),
        cpu.daemon.as_secs_f64() * 1000.0 / count as f64,
        cpu.daemon.as_secs_f64() / elapsed.as_secs_f64(),
        cpu.clients.as_secs_f64(),
        cpu.main.as_secs_f64(),
        cpu.child.as_secs_f64()
    );
    sending.store(false, Ordering::Relaxed);
    let probes = rt.block_on(inbound).unwrap();
    let (modem_reads, metric_reads) = rt.block_on(reads).unwrap();
    println!("load after:  {}", harness::load());
    let rss_peak = harness::peak_rss_kib("self");

    // Throughput over the middle 80% of the sends.
    let mut sent_at: Vec<_> = ids
        .iter()
        .filter_map(|id| {
            let m = store.get(id).ok()??;
            m.history
                .iter()
                .find(|h| h.status == MessageStatus::Sent)
                .map(|h| h.at)
        })
        .collect();
    sent_at.sort();
    let (lo, hi) = (count / 10, count * 9 / 10);
    let window = (sent_at[hi] - sent_at[lo]).to_std().unwrap_or_default();
    let steady = (hi - lo) as f64 / window.as_secs_f64();
    let overall = count as f64 / elapsed.as_secs_f64();
    let used: std::collections::HashSet<_> = ids
        .iter()
        .filter_map(|id| store.get(id).ok()?.and_then(|m| m.modem))
        .collect();

    println!(
        "{count} messages ({per_modem} per modem) through {MODEMS} modems at {BAUD} baud: all sent {:.2} s after their send_at (posting took {:.2} s before it); {} modems sent",
        elapsed.as_secs_f64(),
        posted.as_secs_f64(),
        used.len()
    );
    println!(
        "one send is {send_bytes:.0} wire bytes: {per_modem_limit:.1} messages/s per modem, {wire_limit:.0}/s for {MODEMS}"
    );
    let ratio = steady / wire_limit;
    println!(
        "throughput: {steady:.0} messages/s over the middle 80% of the sends ({:.2} s), {overall:.0}/s overall = {:.1}% of the wire limits' sum; target (>= 80%): {}",
        window.as_secs_f64(),
        ratio * 100.0,
        harness::met(ratio >= 0.8)
    );
    let in_window: Vec<_> = probes
        .iter()
        .filter(|(t0, _, _)| *t0 >= start && *t0 <= end)
        .collect();
    let mut injected: Vec<Duration> = in_window.iter().map(|(_, d, _)| *d).collect();
    let mut announced: Vec<Duration> = in_window.iter().filter_map(|(_, _, d)| *d).collect();
    injected.sort();
    announced.sort();
    if !announced.is_empty() {
        let p99 = harness::percentile(&announced, 99.0);
        println!(
            "inbound +CMTI written by the modem -> webhook while sending: {} probes, p50 {} p99 {} max {}; target (p99 < 20 ms): {}",
            announced.len(),
            harness::ms(harness::percentile(&announced, 50.0)),
            harness::ms(p99),
            harness::ms(*announced.last().unwrap()),
            harness::met(p99 < Duration::from_millis(20))
        );
    }
    if !injected.is_empty() {
        // Includes the modem's own wait: a simulated SIM800 announces an SMS
        // only between commands, so one that arrives during an AT+CMGS
        // (30 ms of wire) waits for its end.
        println!(
            "inbound SMS injected at the simulator -> webhook while sending: {} probes, p50 {} p99 {} max {}",
            injected.len(),
            harness::ms(harness::percentile(&injected, 50.0)),
            harness::ms(harness::percentile(&injected, 99.0)),
            harness::ms(*injected.last().unwrap()),
        );
    }
    for (what, mut v) in [
        ("GET /v1/modems", modem_reads),
        ("GET /metrics", metric_reads),
    ] {
        v.sort();
        let p99 = harness::percentile(&v, 99.0);
        println!(
            "{what} with {MODEMS} modems while sending: {} requests, p50 {} p99 {} max {}; target (< 5 ms): {}",
            v.len(),
            harness::ms(harness::percentile(&v, 50.0)),
            harness::ms(p99),
            harness::ms(*v.last().unwrap()),
            harness::met(p99 < Duration::from_millis(5))
        );
    }
    println!(
        "RSS of this process (daemon + 4 simulators + clients): {:.1} MiB when ready, peak {:.1} MiB; target (< 96 MB): {}",
        rss_idle as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        harness::met((rss_peak as f64) * 1024.0 < 96e6)
    );
    daemon.stop();
    for s in locals {
        rt.block_on(s.shutdown());
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
