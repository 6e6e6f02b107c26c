//! A pool of modems behind one dispatcher, against simulators on ptys
//! (the real serial path): sticky senders and the spread of the rest, the
//! per-minute and daily limits (which defer, never drop, and for the daily
//! count survive a restart), and a modem that fails sends in a row resting
//! while its queue goes to the others, nothing sent twice. Every wait is
//! bounded and ends on a positive signal (a message `sent`, a modem away).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use smsgate::modem::pool::RestPolicy;
mod common;

use common::engine_rig::{modem as member, Dir, Gateway, WAIT};
use smsgate::modem::{EngineSettings, ModemSettings, ModemState};
use smsgate::sim::{Fault, Personality, SimConfig, SimHandle, Simulator};
use smsgate::store::{Accepted, Direction, Message, MessageStatus};
use tokio::time::Instant;

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-pool-{}-{name}", std::process::id()))
}

fn sim(name: &str, own: &str) -> SimHandle {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp_path(&format!("{name}.tty")));
    c.own_number = own.to_string();
    c.noise_interval = Some(Duration::ZERO);
    Simulator::start(c).unwrap()
}

fn engine() -> EngineSettings {
    EngineSettings {
        health_interval: Duration::from_millis(500),
        sweep_interval: Duration::from_secs(60),
        retry_base: Duration::from_millis(50),
        reopen_backoff_max: Duration::from_millis(300),
        // Long enough that a resting modem stays out for the whole test.
        rest: RestPolicy {
            failures: 3,
            base: Duration::from_secs(600),
            max: Duration::from_secs(1800),
        },
        ..EngineSettings::default()
    }
}

impl Gateway {
    /// The pool's modems over the store at `dir`.
    fn pool(dir: &Path, members: &[ModemSettings]) -> Gateway {
        Gateway::start(dir, members, engine())
    }

    /// Queue a message (`modem`: the caller names the sender).
    async fn send(&self, to: &str, body: &str, modem: Option<&str>) -> Message {
        let mut m = self
            .store
            .new_outbound("", to, body, 1, "gsm7", false, None, Utc::now());
        m.requested_modem = modem.map(str::to_string);
        let Accepted::New(m) = self.store.accept(m, None).await.unwrap() else {
            panic!("not accepted")
        };
        self.dispatcher.notify();
        m
    }

    /// Until the message is `sent` (bounded).
    async fn wait_sent(&self, id: &str) -> Message {
        self.wait_for(id, |m| m.status == MessageStatus::Sent).await
    }

    /// Until `what` holds (every 10 ms, bounded).
    async fn wait_until(&self, what: &str, f: impl Fn(&Gateway) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Make `modem` the contact's sticky sender: the contact writes to it.
    async fn make_sticky(&self, sim: &SimHandle, contact: &str) {
        sim.inject(contact, "hello").unwrap();
        self.wait_until("the inbound message", |p| {
            p.store
                .thread(contact, None, 10)
                .unwrap()
                .items
                .iter()
                .any(|m| m.direction == Direction::Inbound)
        })
        .await;
    }
}

fn store_dir(name: &str) -> Dir {
    Dir::new(temp_path(&format!("{name}.db")))
}

/// How many texts each simulated network got, and none twice.
fn received_once(sims: &[&SimHandle]) -> Vec<usize> {
    let mut all = Vec::new();
    let counts = sims
        .iter()
        .map(|s| {
            let r = s.received();
            all.extend(r.iter().map(|m| m.text.clone()));
            r.len()
        })
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a text reached the network twice");
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_contacts_keep_their_modem_and_the_rest_spreads_over_the_pool() {
    let dir = store_dir("spread");
    let (a, b, c) = (
        sim("spread-a", "+15550100000"),
        sim("spread-b", "+15550200000"),
        sim("spread-c", "+15550300000"),
    );
    let pool = Gateway::pool(&dir.0, &[member("a", &a), member("b", &b), member("c", &c)]);
    pool.wait_ready().await;
    pool.make_sticky(&b, "+15550109999").await;
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            pool.send("+15550109999", &format!("sticky {n}"), None)
                .await
                .id,
        );
    }
    for n in 0..30 {
        ids.push(
            pool.send(&format!("+155501{n:05}"), &format!("any {n}"), None)
                .await
                .id,
        );
    }
    for id in &ids {
        pool.wait_sent(id).await;
    }
    let counts = received_once(&[&a, &b, &c]);
    assert_eq!(counts.iter().sum::<usize>(), 34);
    let sticky = b
        .received()
        .iter()
        .filter(|m| m.text.starts_with("sticky"))
        .count();
    assert_eq!(sticky, 4, "the sticky contact was texted from b only");
    // Every modem took some of the rest: the idle ones pull work.
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
    pool.stop().await;
    for s in [a, b, c] {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_modem_leaves_the_work_to_the_others_and_drops_nothing() {
    let dir = store_dir("rate");
    let (a, b) = (sim("rate-a", "+15550400000"), sim("rate-b", "+15550500000"));
    let mut slow = member("a", &a);
    slow.sends_per_minute = Some(1);
    let pool = Gateway::pool(&dir.0, &[slow, member("b", &b)]);
    pool.wait_ready().await;
    let mut ids = Vec::new();
    for n in 0..8 {
        ids.push(
            pool.send(&format!("+155504{n:05}"), &format!("rate {n}"), None)
                .await
                .id,
        );
    }
    for id in &ids {
        pool.wait_sent(id).await;
    }
    // One slot a minute: a sent at most one of them, b the rest.
    let counts = received_once(&[&a, &b]);
    assert!(counts[0] <= 1, "{counts:?}");
    assert_eq!(counts[0] + counts[1], 8);
    pool.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_limit_defers_and_its_count_survives_a_restart() {
    let dir = store_dir("daily");
    let (a, b) = (
        sim("daily-a", "+15550600000"),
        sim("daily-b", "+15550700000"),
    );
    let limited = |sim| {
        let mut m = member("a", sim);
        m.daily_limit = Some(3);
        m
    };
    let pool = Gateway::pool(&dir.0, &[limited(&a), member("b", &b)]);
    pool.wait_ready().await;
    // The caller names a for five: three go today, two wait (never dropped).
    let mut named = Vec::new();
    for n in 0..5 {
        named.push(
            pool.send(&format!("+155506{n:05}"), &format!("named {n}"), Some("a"))
                .await
                .id,
        );
    }
    pool.wait_until("a's budget spent", |p| p.dispatcher.is_away("a"))
        .await;
    // A contact sticky to a goes to b meanwhile.
    pool.make_sticky(&a, "+15550609999").await;
    let sticky = pool
        .send("+15550609999", "sticky while a is spent", None)
        .await;
    let sticky = pool.wait_sent(&sticky.id).await;
    assert_eq!(sticky.modem.as_deref(), Some("b"));
    let statuses: Vec<MessageStatus> = named
        .iter()
        .map(|id| pool.store.get(id).unwrap().unwrap().status)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == MessageStatus::Sent)
            .count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == MessageStatus::Queued)
            .count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(a.received().len(), 3);
    pool.stop().await;

    // Restarted on the same store: a's count is still spent today.
    let pool = Gateway::pool(&dir.0, &[limited(&a), member("b", &b)]);
    pool.wait_ready().await;
    pool.wait_until("a away after the restart", |p| p.dispatcher.is_away("a"))
        .await;
    let after = pool.send("+15550608888", "after the restart", None).await;
    let after = pool.wait_sent(&after.id).await;
    assert_eq!(after.modem.as_deref(), Some("b"));
    let still_queued = named
        .iter()
        .filter(|id| pool.store.get(id).unwrap().unwrap().status == MessageStatus::Queued)
        .count();
    assert_eq!(still_queued, 2);
    assert_eq!(a.received().len(), 3);
    received_once(&[&a, &b]);
    pool.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_failing_sends_in_a_row_rests_and_its_queue_moves_without_a_resend() {
    let dir = store_dir("rest");
    let (a, b) = (sim("rest-a", "+15550800000"), sim("rest-b", "+15550900000"));
    let pool = Gateway::pool(&dir.0, &[member("a", &a), member("b", &b)]);
    pool.wait_ready().await;
    let contact = "+15550809999";
    pool.make_sticky(&a, contact).await;
    let first = pool.send(contact, "before the trouble", None).await;
    assert_eq!(pool.wait_sent(&first.id).await.modem.as_deref(), Some("a"));
    // 42: congestion, transient (24.011 Annex E-2): a's next three sends fail.
    a.fault(Fault::CmsError { code: 42, count: 3 }).unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(pool.send(contact, &format!("during {n}"), None).await.id);
    }
    for id in &ids {
        let m = pool.wait_sent(id).await;
        assert_eq!(m.modem.as_deref(), Some("b"), "{m:#?}");
    }
    assert!(pool.dispatcher.is_away("a"));
    let status = pool.status("a");
    assert_eq!(status.state, ModemState::Degraded);
    assert!(
        status.reason.as_deref().unwrap_or("").contains("resting"),
        "{status:?}"
    );
    // The three refused sends never reached the network; each text once.
    let counts = received_once(&[&a, &b]);
    assert_eq!(counts, vec![1, 5]);
    // The message a failed on moved with its attempts intact.
    let moved: Vec<Message> = ids
        .iter()
        .map(|id| pool.store.get(id).unwrap().unwrap())
        .collect();
    assert!(moved.iter().any(|m| m
        .history
        .iter()
        .any(|h| h.note.as_deref().is_some_and(|n| n.contains("rests")))));
    pool.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_settle_sends_routed_as_cds_or_stored_as_cdsi() {
    let dir = store_dir("reports");
    // A SIM800 routes reports as +CDS (the engine asks ds=1 first); an EC25
    // stores them in "SR" and says +CDSI whatever it is asked.
    let mut sims = Vec::new();
    for (i, personality) in [Personality::Sim800, Personality::Ec25]
        .into_iter()
        .enumerate()
    {
        let mut c = SimConfig::new(personality);
        c.link = Some(temp_path(&format!("reports-{i}.tty")));
        c.own_number = format!("+1555110000{i}");
        c.noise_interval = Some(Duration::ZERO);
        c.status_report_delay = Duration::ZERO;
        sims.push(Simulator::start(c).unwrap());
    }
    let pool = Gateway::pool(
        &dir.0,
        &[member("sim800", &sims[0]), member("ec25", &sims[1])],
    );
    pool.wait_ready().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        for modem in ["sim800", "ec25"] {
            let mut m = pool.store.new_outbound(
                "",
                &format!("+155511{n:05}"),
                &format!("{modem} {n}"),
                1,
                "gsm7",
                true,
                None,
                Utc::now(),
            );
            m.requested_modem = Some(modem.to_string());
            let Accepted::New(m) = pool.store.accept(m, None).await.unwrap() else {
                panic!("not accepted")
            };
            ids.push(m.id);
        }
    }
    pool.dispatcher.notify();
    for id in &ids {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = pool.store.get(id).unwrap().unwrap();
            if m.status == MessageStatus::Delivered {
                break;
            }
            assert!(Instant::now() < deadline, "not delivered: {m:#?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    for id in ["sim800", "ec25"] {
        assert_eq!(pool.status(id).counters.status_reports, 6, "{id}");
    }
    pool.stop().await;
    for s in sims {
        s.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_modem_sends_nothing_its_queue_goes_to_the_others_and_it_still_receives() {
    use smsgate::modem::overrides::Overrides;
    let dir = store_dir("paused");
    let (a, b) = (
        sim("paused-a", "+15550810000"),
        sim("paused-b", "+15550820000"),
    );
    let pool = Gateway::pool(&dir.0, &[member("a", &a), member("b", &b)]);
    pool.wait_ready().await;
    pool.make_sticky(&a, "+15550819999").await;
    let paused = Overrides {
        paused: true,
        ..Overrides::default()
    };
    pool.dispatcher.set_overrides("a", paused).await.unwrap();
    pool.wait_until("a away while paused", |p| p.dispatcher.is_away("a"))
        .await;
    // Named for a: it waits for a (never dropped, never sent by another).
    let named = pool.send("+15550811111", "named for a", Some("a")).await;
    // A's sticky contact and everyone else: b sends them.
    let sticky = pool.send("+15550819999", "sticky to a", None).await;
    assert_eq!(pool.wait_sent(&sticky.id).await.modem.as_deref(), Some("b"));
    for n in 0..4 {
        let m = pool
            .send(&format!("+155508{n:05}"), &format!("pool {n}"), None)
            .await;
        assert_eq!(pool.wait_sent(&m.id).await.modem.as_deref(), Some("b"));
    }
    // Receiving goes on while paused.
    pool.make_sticky(&a, "+15550817777").await;
    assert_eq!(
        pool.store.get(&named.id).unwrap().unwrap().status,
        MessageStatus::Queued
    );
    assert!(a.received().is_empty());
    // Unpaused: the named message goes, through a.
    pool.dispatcher
        .set_overrides("a", Overrides::default())
        .await
        .unwrap();
    assert_eq!(pool.wait_sent(&named.id).await.modem.as_deref(), Some("a"));
    assert_eq!(received_once(&[&a, &b]), vec![1, 5]);
    pool.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_limit_set_while_running_applies_at_once_and_is_kept_after_a_restart() {
    use smsgate::modem::overrides::Overrides;
    let dir = store_dir("live-limit");
    let (a, b) = (
        sim("live-limit-a", "+15550830000"),
        sim("live-limit-b", "+15550840000"),
    );
    // No limit in the config.
    let pool = Gateway::pool(&dir.0, &[member("a", &a), member("b", &b)]);
    pool.wait_ready().await;
    let two = Overrides {
        daily_limit: Some(2),
        ..Overrides::default()
    };
    pool.dispatcher.set_overrides("a", two).await.unwrap();
    let mut named = Vec::new();
    for n in 0..4 {
        named.push(
            pool.send(&format!("+155508{n:05}"), &format!("live {n}"), Some("a"))
                .await
                .id,
        );
    }
    pool.wait_until("a's budget of 2 spent", |p| p.dispatcher.is_away("a"))
        .await;
    let sent = |p: &Gateway| {
        named
            .iter()
            .filter(|id| p.store.get(id).unwrap().unwrap().status == MessageStatus::Sent)
            .count()
    };
    assert_eq!(sent(&pool), 2);
    assert_eq!(a.received().len(), 2);
    // Raised while a waits for tomorrow: the rest go now.
    let four = Overrides {
        daily_limit: Some(4),
        ..Overrides::default()
    };
    pool.dispatcher
        .set_overrides("a", four.clone())
        .await
        .unwrap();
    for id in &named {
        assert_eq!(pool.wait_sent(id).await.modem.as_deref(), Some("a"));
    }
    pool.stop().await;

    // Restarted with the same config: the stored limit still applies.
    let pool = Gateway::pool(&dir.0, &[member("a", &a), member("b", &b)]);
    assert_eq!(pool.dispatcher.overrides("a"), four);
    pool.wait_ready().await;
    pool.wait_until("a away after the restart (4 of 4 sent)", |p| {
        p.dispatcher.is_away("a")
    })
    .await;
    let after = pool
        .send("+15550838888", "after the restart", Some("a"))
        .await;
    let other = pool.send("+15550837777", "to anyone", None).await;
    assert_eq!(pool.wait_sent(&other.id).await.modem.as_deref(), Some("b"));
    assert_eq!(
        pool.store.get(&after.id).unwrap().unwrap().status,
        MessageStatus::Queued
    );
    assert_eq!(a.received().len(), 4);
    pool.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}
