//! The metrics summary over a year of 1,000,000 messages (issue 12; target
//! under 50 ms): 100,000 contacts, 5 campaigns x 2 variants (and 20% of
//! sends in no campaign), 3 teams.
//!
//! The counters are filled once through `Store::record_metrics`, the
//! engine's path, in time order, in batches of 256 facts (the engine counts
//! a batch of up to 256 events at a time; here every event is a fact), and
//! kept in
//! `<target>/bench-data/metrics_summary-1m` (`-quick`: 100,000 messages,
//! 10,000 contacts); delete it or pass `--refill` to fill again. Each sent
//! message is answered with probability 0.6 within 1 minute to 30 hours
//! (so some after the 24 h reply window); 5% of answers are STOP; the rest
//! get a first response 5 s to 3 h later (half by a person) and, one in
//! three, an outcome (a conversion or not) linked to the sent message.
//! Messages = sends + answers. The fill reports facts per second and the
//! store's size on disk after a flush (the files' allocated blocks, as
//! `du` counts them), and each run what the metric trees hold by key kind.
//!
//! Then each summary is asked 3 times to warm up and 50 times measured (wall time, and the process's CPU time per summary), one
//! after another on one thread (the API runs it on the blocking pool).
//!
//! Run: `cargo bench --bench metrics_summary` (`-- --quick`, `-- --refill`).

mod harness;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use harness::{ms, percentile};
use smsgate::conversation::metrics::{Counting, Fact, SummaryQuery};
use smsgate::store::Store;

const CACHE_MB: u64 = 64;
/// Facts per `record_metrics` call: the engine's batch of events.
const BATCH: usize = 256;
/// Measured summaries per case.
const RUNS: u32 = 50;
const DAYS: i64 = 365;
const OUTCOMES: [&str; 5] = [
    "appointment_confirmed",
    "appointment_booked",
    "rating_received",
    "payment_link_sent",
    "lead_qualified",
];

/// xorshift64*: reproducible and dependency-free.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A thing that will happen to a contact, at its time in the heap.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Send,
    Answer { message: u64, stop: bool },
    Respond { waited_from: i64, by_person: bool },
    Outcome { message: u64, name: usize },
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at_ms: i64,
    seq: u64,
    contact: u64,
    /// campaign (5: none), variant, team of the sent message.
    dims: (u8, u8, u8),
    next: Next,
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

/// Fill `path` with the facts of `messages` messages over `contacts`.
fn fill(path: &Path, messages: u64, contacts: u64) -> (u64, u64, Duration) {
    let store = Store::open(path, CACHE_MB).unwrap();
    let counting = Counting::default();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let sends = (messages as f64 / 1.6) as u64;
    let mut heap = BinaryHeap::new();
    let start_ms = base().timestamp_millis();
    let day_ms = 86_400_000;
    let mut seq = 0u64;
    for _ in 0..sends {
        seq += 1;
        let campaign = if random.chance(0.2) {
            5
        } else {
            random.below(5) as u8
        };
        heap.push(Reverse(Pending {
            at_ms: start_ms + random.below((DAYS * day_ms) as u64) as i64,
            seq,
            contact: random.below(contacts),
            dims: (campaign, random.below(2) as u8, random.below(3) as u8),
            next: Next::Send,
        }));
    }
    let (mut facts, mut stored) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(BATCH);
    let started = Instant::now();
    while let Some(Reverse(p)) = heap.pop() {
        seq += 1;
        let contact = format!("+1555{:07}", 2_000_000 + p.contact);
        let campaign = (p.dims.0 < 5).then(|| format!("campaign-{}", p.dims.0));
        let variant = campaign
            .as_ref()
            .map(|_| ["a", "b"][usize::from(p.dims.1)].to_string());
        let team = Some(format!("team-{}", p.dims.2));
        let at = time(p.at_ms);
        let fact = match p.next {
            Next::Send => {
                stored += 1;
                if random.chance(0.6) {
                    heap.push(Reverse(Pending {
                        at_ms: p.at_ms + 60_000 + random.below(30 * 3_600_000) as i64,
                        seq,
                        next: Next::Answer {
                            message: p.seq,
                            stop: random.chance(0.05),
                        },
                        ..p
                    }));
                }
                let parts = 1 + random.below(2) as u32;
                Fact::Sent {
                    contact,
                    at,
                    message_id: format!("msg_{:016x}", p.seq),
                    campaign,
                    variant,
                    team,
                    parts,
                    cost: Some(f64::from(parts) * 0.05),
                }
            }
            Next::Answer { message, stop } => {
                stored += 1;
                if !stop {
                    heap.push(Reverse(Pending {
                        at_ms: p.at_ms + 5_000 + random.below(3 * 3_600_000) as i64,
                        seq,
                        next: Next::Respond {
                            waited_from: p.at_ms,
                            by_person: random.chance(0.5),
                        },
                        ..p
                    }));
                    if random.chance(1.0 / 3.0) {
                        heap.push(Reverse(Pending {
                            at_ms: p.at_ms + 60_000,
                            seq: seq + 1,
                            next: Next::Outcome {
                                message,
                                name: random.below(OUTCOMES.len() as u64) as usize,
                            },
                            ..p
                        }));
                        seq += 1;
                    }
                }
                Fact::Inbound {
                    contact,
                    at,
                    opt_out: stop,
                }
            }
            Next::Respond {
                waited_from,
                by_person,
            } => {
                // A person's answer ends both waits; automation's the
                // contact's.
                let wait = (p.at_ms - waited_from) as u64 / 1000;
                Fact::FirstResponse {
                    contact,
                    at,
                    team,
                    waited_from: Some(time(waited_from)),
                    business_seconds: wait / 2,
                    person_waited_from: by_person.then(|| time(waited_from)),
                    person_business_seconds: if by_person { wait / 2 } else { 0 },
                }
            }
            Next::Outcome { message, name } => Fact::Outcome {
                contact,
                at,
                name: OUTCOMES[name].into(),
                campaign,
                variant,
                team,
                message_id: Some(format!("msg_{message:016x}")),
            },
        };
        batch.push((facts, fact));
        if batch.len() == BATCH {
            store.record_metrics(&batch, facts, &counting).unwrap();
            batch.clear();
        }
        facts += 1;
        if facts % 200_000 == 0 {
            eprintln!(
                "  {facts} facts ({stored} messages) in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(&(last, _)) = batch.last() {
        store.record_metrics(&batch, last, &counting).unwrap();
    }
    store.flush_blocking().unwrap();
    (facts, stored, started.elapsed())
}

/// The filled store directory, filling it when absent.
fn filled(messages: u64, contacts: u64, name: &str, refill: bool) -> PathBuf {
    let dir = harness::target_dir().join("bench-data").join(name);
    let marker = dir.join("FILLED");
    if refill {
        let _ = std::fs::remove_dir_all(&dir);
    }
    // The tag names the counters' layout: another layout is filled again.
    let tag = format!("{messages} messages, {contacts} contacts, metric layout 6");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        if text.starts_with(&tag) {
            println!("store: reusing {} ({})", dir.display(), text.trim());
            return dir;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("store: filling {} (once)", dir.display());
    let (facts, stored, took) = fill(&dir.join("db"), messages, contacts);
    let line = format!(
        "{tag}: {stored} messages, {facts} facts recorded in {:.1} s ({:.0} facts/s, {:.0} us each); {} MiB on disk after the flush",
        took.as_secs_f64(),
        facts as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / facts as f64,
        du(&dir.join("db")) / (1024 * 1024)
    );
    println!("fill: {line}");
    std::fs::write(&marker, line).unwrap();
    dir
}

/// Bytes the files under `path` take on disk (allocated blocks, as `du`).
fn du(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            du(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

/// What the metric trees hold, by key kind (the first octet): keys and
/// their key and value bytes (sled's files add its page overhead on top;
/// the bench's store holds nothing else, so `du` is the metrics' disk).
fn census(path: &Path) {
    let db = sled::Config::new().path(path).open().unwrap();
    println!("| tree | kind | keys | key + value bytes |");
    println!("|---|---|---|---|");
    for name in ["metric_facts", "metric_counters"] {
        let tree = db.open_tree(name).unwrap();
        let mut by: std::collections::BTreeMap<u8, (u64, u64)> = Default::default();
        for entry in tree.iter() {
            let (key, value) = entry.unwrap();
            let kind = by.entry(key.first().copied().unwrap_or(0)).or_default();
            kind.0 += 1;
            kind.1 += (key.len() + value.len()) as u64;
        }
        for (kind, (keys, bytes)) in by {
            println!(
                "| {name} | `{}` | {keys} | {:.1} MiB |",
                kind as char,
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
}

fn day(n: i64) -> NaiveDate {
    (base() + chrono::Duration::days(n)).date_naive()
}

fn main() {
    let quick = harness::quick();
    let refill = std::env::args().any(|a| a == "--refill");
    let (messages, contacts, name) = if quick {
        (100_000, 10_000, "metrics_summary-quick")
    } else {
        (1_000_000, 100_000, "metrics_summary-1m")
    };
    println!("machine: {}", harness::machine());
    println!("load at start: {}", harness::load());
    let dir = filled(messages, contacts, name, refill);
    census(&dir.join("db"));
    let store = Store::open(&dir.join("db"), CACHE_MB).unwrap();
    println!(
        "store on disk: {} MiB (du), sled's size_on_disk {} MiB",
        du(&dir.join("db")) / (1024 * 1024),
        store.size_on_disk() / (1024 * 1024)
    );
    let some = |s: &str| Some(s.to_string());
    let cases: Vec<(&str, SummaryQuery)> = vec![
        (
            "year, all",
            SummaryQuery {
                from: day(0),
                to: day(DAYS - 1),
                campaign: None,
                variant: None,
                team: None,
            },
        ),
        (
            "year, campaign",
            SummaryQuery {
                from: day(0),
                to: day(DAYS - 1),
                campaign: some("campaign-2"),
                variant: None,
                team: None,
            },
        ),
        (
            "year, campaign + variant",
            SummaryQuery {
                from: day(0),
                to: day(DAYS - 1),
                campaign: some("campaign-2"),
                variant: some("b"),
                team: None,
            },
        ),
        (
            "year, team",
            SummaryQuery {
                from: day(0),
                to: day(DAYS - 1),
                campaign: None,
                variant: None,
                team: some("team-1"),
            },
        ),
        (
            "year, campaign + variant + team",
            SummaryQuery {
                from: day(0),
                to: day(DAYS - 1),
                campaign: some("campaign-4"),
                variant: some("a"),
                team: some("team-0"),
            },
        ),
        (
            "last 30 days, all",
            SummaryQuery {
                from: day(DAYS - 30),
                to: day(DAYS - 1),
                campaign: None,
                variant: None,
                team: None,
            },
        ),
        (
            "days 150-239, all",
            SummaryQuery {
                from: day(150),
                to: day(239),
                campaign: None,
                variant: None,
                team: None,
            },
        ),
        (
            "second half year, all",
            SummaryQuery {
                from: day(182),
                to: day(DAYS - 1),
                campaign: None,
                variant: None,
                team: None,
            },
        ),
    ];
    println!();
    println!("| summary | p50 | max | CPU per summary | sent contacts | reply rate | median first response |");
    println!("|---|---|---|---|---|---|---|");
    let mut year_max = Duration::ZERO;
    for (name, query) in &cases {
        for _ in 0..3 {
            store.metrics_summary(query).unwrap();
        }
        let mut times = Vec::new();
        let mut last = None;
        // CPU time too: on a shared machine wall time includes waiting for a core.
        let cpu = harness::cpu_time("self");
        for _ in 0..RUNS {
            let t = Instant::now();
            last = Some(store.metrics_summary(query).unwrap());
            times.push(t.elapsed());
        }
        let cpu = (harness::cpu_time("self") - cpu) / RUNS;
        times.sort();
        let summary = last.unwrap();
        if name.starts_with("year") {
            year_max = year_max.max(times[times.len() - 1]);
        }
        println!(
            "| {name} | {} | {} | {} | {} | {:.3} | {} |",
            ms(percentile(&times, 50.0)),
            ms(times[times.len() - 1]),
            ms(cpu),
            summary.reply_rate.denominator,
            summary.reply_rate.value.unwrap_or(0.0),
            summary
                .time_to_first_response
                .overall
                .median_s
                .map_or("-".into(), |s| format!("{s} s")),
        );
    }
    println!();
    println!(
        "target: a year's summary under 50 ms: slowest year case {} ({})",
        ms(year_max),
        harness::met(year_max < Duration::from_millis(50))
    );
}
