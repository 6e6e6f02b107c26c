//! Send throughput through one simulated modem paced at 115200 baud (11,520
//! bytes/s: 10 bits a byte), no network delay, no status reports asked:
//! 1,000 single-part 160-character GSM 7-bit messages, posted through the API
//! as fast as it accepts them, until the last one is `sent` in the store.
//!
//! Efficiency = (bytes on the wire / 11,520) / elapsed, where the bytes are the
//! simulator's own count of both directions (`SimHandle::wire_bytes`): command
//! lines, prompts, hex PDUs with Ctrl-Z, `+CMGS` answers, and whatever else the
//! engine said in the window (health checks). The bench also computes the bytes
//! of the `AT+CMGS` exchanges alone, and the engine's time per message from the
//! messages' own history (sending -> sent, sent -> next sending).
//!
//! Then the same with status reports asked for every message (the
//! simulator's network reports each part at once, as `+CDS` or `+CDSI` as
//! the engine's `AT+CNMI` asked): issue 15 wants at least 90% of the
//! throughput without reports. `-- --reports-only` runs that pair alone.
//!
//! Run: `cargo bench --bench send_throughput` (`-- --quick`: 100 messages).
//! Target (ARCHITECTURE.md, "Targets"): at least 90% of the serial wire limit.

mod harness;

use std::time::{Duration, Instant};

use harness::DaemonThread;
use smsgate::pdu::{self, Address, SubmitOptions};
use smsgate::sim::{Personality, SimConfig, Simulator};
use smsgate::store::MessageStatus;

const BAUD: u32 = 115_200;
const POSTERS: usize = 16;

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

fn main() {
    let quick = harness::quick();
    let count = if quick { 100 } else { 1000 };
    let rt = harness::client_runtime();
    let only_reports = std::env::args().any(|a| a == "--reports-only");
    let off = run(&rt, count, false, Personality::Sim800);
    let on = run(&rt, count, true, Personality::Sim800);
    let ratio = on / off;
    println!(
        "status reports on (+CDS): {on:.1} messages/s against {off:.1} off = {:.1}%; target (>= 90%): {}",
        ratio * 100.0,
        harness::met(ratio >= 0.9)
    );
    if only_reports || harness::quick() {
        // For comparison: a Quectel stores every report (`+CDSI: "SR",<n>`),
        // so each costs AT+CPMS, AT+CMGR, AT+CMGD and AT+CPMS on the line.
        let stored = run(&rt, count, true, Personality::Ec25);
        println!(
            "status reports on, stored by the modem (EC25, +CDSI): {stored:.1} messages/s = {:.1}% of off",
            stored / off * 100.0
        );
    }
}

/// One run through a fresh daemon and simulator: messages per second.
fn run(rt: &tokio::runtime::Runtime, count: usize, reports: bool, personality: Personality) -> f64 {
    println!(
        "--- {personality:?}, status reports {}",
        if reports { "asked" } else { "not asked" }
    );
    let dir = harness::scratch("send_throughput");

    let mut sim_config = SimConfig::new(personality);
    sim_config.link = Some(dir.join("modem"));
    sim_config.own_number = "+15550000000".into();
    sim_config.noise_interval = Some(Duration::ZERO);
    sim_config.baud = Some(BAUD);
    sim_config.status_report_delay = Duration::ZERO;
    let sim = rt.block_on(async { Simulator::start(sim_config).unwrap() });
    let config = harness::config(&dir.join("db"), 32, &[("m1".into(), sim.link())]);
    let daemon = DaemonThread::start(config);
    daemon.wait_ready(Duration::from_secs(20));
    let addr = daemon.started.api;
    let store = daemon.started.store.clone();

    // The bytes of the AT+CMGS exchanges alone, computed from the PDUs.
    let to = |n: usize| format!("+1555020{:04}", n % 1000);
    let mut exchange_bytes = 0u64;
    for n in 0..count {
        let message = pdu::encode_submit(
            &Address::parse_number(&to(n)).unwrap(),
            &text(n),
            &SubmitOptions {
                status_report: reports,
                ..SubmitOptions::default()
            },
        )
        .unwrap();
        assert_eq!(message.parts.len(), 1);
        let part = &message.parts[0];
        exchange_bytes += format!("AT+CMGS={}\r", part.tpdu_length).len() as u64
            + "\r\n> ".len() as u64
            + 2 * part.pdu.len() as u64
            + 1
            + "\r\n+CMGS: \r\n\r\nOK\r\n".len() as u64;
    }

    println!("machine: {}", harness::machine());
    println!("load before: {}", harness::load());
    let (rx0, tx0) = sim.wire_bytes();
    let start = Instant::now();
    let ids: Vec<String> = rt.block_on(harness::post_messages(addr, POSTERS, count, move |n| {
        serde_json::json!({"to": to(n), "body": text(n), "status_report": reports}).to_string()
    }));
    let posted = start.elapsed();
    rt.block_on(sim.wait_received(count, Duration::from_secs(600)))
        .unwrap();
    // The last answer read and recorded: every message `sent` (or, with
    // reports, already `delivered`).
    let mut remaining: Vec<&String> = ids.iter().collect();
    while !remaining.is_empty() {
        remaining.retain(|id| {
            !matches!(
                store.get(id).unwrap().unwrap().status,
                MessageStatus::Sent | MessageStatus::Delivered
            )
        });
        if !remaining.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let elapsed = start.elapsed();
    let (rx1, tx1) = sim.wire_bytes();
    if reports {
        let mut remaining: Vec<&String> = ids.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !remaining.is_empty() && Instant::now() < deadline {
            remaining
                .retain(|id| store.get(id).unwrap().unwrap().status != MessageStatus::Delivered);
            std::thread::sleep(Duration::from_millis(1));
        }
        println!(
            "every message delivered (its report stored) after {:.2} s; {} not",
            start.elapsed().as_secs_f64(),
            remaining.len()
        );
    }
    println!("load after:  {}", harness::load());

    // The TP-MR in each answer: 1 to 3 digits (the simulator counts from 1).
    let mr_digits: u64 = (0..count)
        .map(|i| ((i % 256) + 1).to_string().len() as u64)
        .sum();
    let exchange_bytes = exchange_bytes + mr_digits;
    let (rx, tx) = (rx1 - rx0, tx1 - tx0);
    let bytes = rx + tx;
    let rate = f64::from(BAUD) / 10.0;
    let wire_time = bytes as f64 / rate;
    let efficiency = wire_time / elapsed.as_secs_f64();

    // Where the time goes, from each message's history.
    let mut messages: Vec<_> = ids
        .iter()
        .map(|id| store.get(id).unwrap().unwrap())
        .collect();
    let at = |m: &smsgate::store::Message, s: MessageStatus| {
        m.history.iter().find(|h| h.status == s).map(|h| h.at)
    };
    messages.sort_by_key(|m| at(m, MessageStatus::Sending));
    let mut in_send = Vec::new();
    let mut between = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let (Some(sending), Some(sent)) =
            (at(m, MessageStatus::Sending), at(m, MessageStatus::Sent))
        else {
            continue;
        };
        in_send.push((sent - sending).to_std().unwrap_or_default());
        if let Some(next) = messages
            .get(i + 1)
            .and_then(|n| at(n, MessageStatus::Sending))
        {
            between.push((next - sent).to_std().unwrap_or_default());
        }
    }
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len().max(1) as u32;
    let per_message_wire = exchange_bytes as f64 / count as f64 / rate;

    println!(
        "{count} messages of 160 GSM 7-bit characters through one modem at {BAUD} baud: {:.2} s (posting took {:.2} s)",
        elapsed.as_secs_f64(),
        posted.as_secs_f64()
    );
    println!(
        "wire bytes (simulator's count): {rx} to the modem + {tx} from it = {bytes}; AT+CMGS exchanges alone: {exchange_bytes} ({:.1} per message, {:.2} ms of wire); other traffic: {}",
        exchange_bytes as f64 / count as f64,
        per_message_wire * 1e3,
        bytes as i64 - exchange_bytes as i64
    );
    println!(
        "throughput {:.1} messages/s; wire limit for these bytes {:.1} messages/s",
        count as f64 / elapsed.as_secs_f64(),
        count as f64 / wire_time
    );
    println!(
        "per message: sending -> sent {:.2} ms (wire {:.2} ms), sent -> next sending {:.2} ms",
        mean(&in_send).as_secs_f64() * 1e3,
        per_message_wire * 1e3,
        mean(&between).as_secs_f64() * 1e3
    );
    println!(
        "efficiency: {:.1}% of the serial wire limit; target (>= 90%): {}",
        efficiency * 100.0,
        harness::met(efficiency >= 0.9)
    );
    daemon.stop();
    rt.block_on(sim.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    count as f64 / elapsed.as_secs_f64()
}
