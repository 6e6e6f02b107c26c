//! The dashboard page over a year: `GET /dashboard` rendered by the
//! gateway's router (`web::app`, as the daemon serves it) for a signed-in
//! person, in process (`oneshot`, no socket: the server's time, session
//! check, the summaries and the HTML with its SVG), one request at a time.
//!
//! A year's page reads the summary of the period, one per week for the
//! replies and opt-outs chart (53), and one per variant when a campaign is
//! chosen: the cost is in those summaries (`Store::metrics_summary`).
//!
//! The counters are filled first, through `Store::record_metric_blocking`
//! (the engine's path), in time order: every day of 2025, `SENDS` texts to
//! contacts drawn from `CONTACTS` (4 campaigns x 2 variants, and a fifth of
//! the sends in none; 3 teams), each answered with probability 0.6 ten
//! minutes later (5% STOP), the answers given a first response (half by a
//! person) and one in three an outcome. The store is removed after.
//!
//! Then, to see where the page's time goes, the store's summary of the
//! year, of a week and of a day alone.
//!
//! Run: `cargo bench --bench web_dashboard` (`-- --quick`: 60 texts a day).

mod harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use chrono::{DateTime, TimeZone, Utc};
use harness::{ms, percentile};
use http_body_util::BodyExt;
use smsgate::conversation::metrics::{Counting, Fact, SummaryQuery};
use smsgate::store::users::{hash_password, Role, UserRecord};
use smsgate::store::Store;
use smsgate::webhook::clock::Clock;
use tower::ServiceExt;

const CACHE_MB: u64 = 64;
const CONTACTS: u64 = 20_000;
const TEAMS: [&str; 3] = ["support", "sales", "scheduling"];
const WARM: usize = 3;
const RUNS: usize = 20;

/// "Now" for the page: the last day of the filled year.
struct Fixed;

impl Clock for Fixed {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 12, 31, 18, 0, 0).unwrap()
    }
}

/// xorshift64*: reproducible and dependency-free.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A year of facts; how many.
fn fill(store: &Store, sends_per_day: u64) -> u64 {
    let counting = Counting::default();
    let mut random = Random(0x5eed_da5b_0a2d);
    let mut facts = 0u64;
    let mut record = |fact: Fact| {
        store
            .record_metrics(&[(facts, fact)], facts, &counting)
            .unwrap();
        facts += 1;
    };
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 8, 0, 0).unwrap();
    for day in 0..365 {
        for k in 0..sends_per_day {
            let at = start + chrono::Duration::days(day) + chrono::Duration::seconds(k as i64 * 30);
            let contact = format!("+4915{:08}", random.below(CONTACTS));
            let campaign = random.below(5);
            let variant = if random.below(2) == 0 { "a" } else { "b" };
            let team = TEAMS[random.below(3) as usize];
            let id = format!("m{day}-{k}");
            let (campaign, variant) = match campaign {
                4 => (None, None),
                c => (Some(format!("cmp_{c}")), Some(variant.to_string())),
            };
            record(Fact::Sent {
                contact: contact.clone(),
                at,
                message_id: id.clone(),
                campaign: campaign.clone(),
                variant: variant.clone(),
                team: Some(team.into()),
                parts: 1 + random.below(2) as u32,
                cost: Some(0.05),
            });
            if random.below(10) >= 6 {
                continue;
            }
            let answered = at + chrono::Duration::minutes(10);
            let stop = random.below(20) == 0;
            record(Fact::Inbound {
                contact: contact.clone(),
                at: answered,
                opt_out: stop,
            });
            if stop {
                continue;
            }
            let wait = 5 + random.below(3 * 3600) as i64;
            record(Fact::FirstResponse {
                contact: contact.clone(),
                at: answered + chrono::Duration::seconds(wait),
                team: Some(team.into()),
                waited_from: Some(answered),
                business_seconds: wait as u64,
                // Half answered by a person (whose clock ends too).
                person_waited_from: (random.below(2) == 0).then_some(answered),
                person_business_seconds: wait as u64,
            });
            if random.below(3) == 0 {
                record(Fact::Outcome {
                    contact,
                    at: answered + chrono::Duration::seconds(wait + 60),
                    name: "appointment_booked".into(),
                    campaign,
                    variant,
                    team: Some(team.into()),
                    message_id: Some(id),
                });
            }
        }
    }
    facts
}

fn main() {
    let quick = harness::quick();
    let sends = if quick { 60 } else { 300 };
    let dir = harness::scratch("web_dashboard");
    let rt = harness::client_runtime();
    println!("machine: {}", harness::machine());
    rt.block_on(async {
        let store = Store::open(&dir.join("db"), CACHE_MB).unwrap();
        let started = Instant::now();
        let filler = store.clone();
        let facts = tokio::task::spawn_blocking(move || fill(&filler, sends))
            .await
            .unwrap();
        store.sync().await.unwrap();
        println!(
            "filled {facts} facts ({} texts) in {:.1} s, {} MiB on disk",
            sends * 365,
            started.elapsed().as_secs_f64(),
            store.size_on_disk() / (1024 * 1024)
        );
        let now = Utc::now();
        let person = UserRecord {
            name: "ana".into(),
            role: Role::Agent,
            team: None,
            password: hash_password("bench password").unwrap(),
            created_at: now,
            updated_at: now,
        };
        store.create_user(&person).await.unwrap();
        let (token, _) = store.create_session("ana", now).await.unwrap();
        let cookie = format!("{}={token}", smsgate::web::SESSION_COOKIE);
        let config = harness::config(&dir.join("db"), CACHE_MB, &[]);
        let state = smsgate::api::ApiState {
            store: store.clone(),
            dispatcher: Arc::new(smsgate::modem::Dispatcher::new(store.clone())),
            tokens: Arc::new(harness::tokens()),
            sms: Arc::new(config.sms_policy()),
            policy: Arc::new(smsgate::policy::Policy::from_config(&config)),
            extra_metrics: None,
            compat: Default::default(),
            conversation: Default::default(),
            rules: Arc::new(smsgate::conversation::rulebook::RuleBook::open(
                &store,
                &Default::default(),
            )),
            fleet: None,
        };
        let web = smsgate::web::WebState::new(
            state.clone(),
            smsgate::web::WebConfig::default(),
            Arc::new(Fixed),
        );
        let app = smsgate::web::app(state, web);
        println!("load before: {}", harness::load());
        println!("| page | summaries | bytes | p50 | p99 | max |");
        println!("|---|---|---|---|---|---|");
        for (name, summaries, path) in [
            (
                "a year, all",
                54,
                "/dashboard?from=2025-01-01&to=2025-12-31",
            ),
            (
                "a year, one team",
                54,
                "/dashboard?from=2025-01-01&to=2025-12-31&team=sales",
            ),
            // The campaign's record is not in the store: its variants are
            // not listed, so no per-variant summaries (the weekly ones are
            // the bulk).
            (
                "a year, one campaign",
                54,
                "/dashboard?from=2025-01-01&to=2025-12-31&campaign=cmp_1",
            ),
            ("last 30 days (the default)", 31, "/dashboard"),
            (
                "92 days, per day",
                93,
                "/dashboard?from=2025-10-01&to=2025-12-31",
            ),
        ] {
            let mut latencies = Vec::with_capacity(RUNS);
            let mut bytes = 0;
            for i in 0..WARM + RUNS {
                let request = Request::builder()
                    .uri(path)
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap();
                let began = Instant::now();
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let took = began.elapsed();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
                let svg = b"<svg";
                assert!(
                    body.windows(svg.len()).any(|w| w == svg),
                    "{path}: no chart"
                );
                bytes = body.len();
                if i >= WARM {
                    latencies.push(took);
                }
            }
            latencies.sort();
            println!(
                "| {name} | {summaries} | {bytes} | {} | {} | {} |",
                ms(percentile(&latencies, 50.0)),
                ms(percentile(&latencies, 99.0)),
                ms(*latencies.last().unwrap_or(&Duration::ZERO))
            );
        }
        // Where a year's page goes: the store's summaries it asks for.
        println!("| store read alone | p50 | p99 |");
        println!("|---|---|---|");
        let day = |m: u32, d: u32| chrono::NaiveDate::from_ymd_opt(2025, m, d).unwrap();
        for (name, from, to) in [
            ("summary of the year", day(1, 1), day(12, 31)),
            ("summary of one week", day(6, 2), day(6, 8)),
            ("summary of one day", day(6, 2), day(6, 2)),
        ] {
            let query = SummaryQuery {
                from,
                to,
                campaign: None,
                variant: None,
                team: None,
            };
            let mut latencies = Vec::with_capacity(RUNS);
            for i in 0..WARM + RUNS {
                let began = Instant::now();
                let summary = store.metrics_summary(&query).unwrap();
                let took = began.elapsed();
                assert!(summary.reply_rate.denominator > 0, "{name}");
                if i >= WARM {
                    latencies.push(took);
                }
            }
            latencies.sort();
            println!(
                "| {name} | {} | {} |",
                ms(percentile(&latencies, 50.0)),
                ms(percentile(&latencies, 99.0))
            );
        }
        println!("load after: {}", harness::load());
    });
    let _ = std::fs::remove_dir_all(&dir);
}
