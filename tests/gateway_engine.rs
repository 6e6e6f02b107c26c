//! The modem engine against the simulator, through the real serial path
//! (tokio-serial on the simulator's pty): send, receive, status reports, sticky
//! sender, recovery from hangs and unplugs, storage full, transient and
//! permanent errors, restarts. Every wait is bounded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
mod common;

use common::engine_rig::{self, Dir, Gateway, WAIT};
use smsgate::modem::pool::DailyCounts;
use smsgate::modem::{EngineSettings, ModemState};
use smsgate::sim::{Fault, Personality, SimConfig, SimHandle, Simulator};
use smsgate::store::{Accepted, ConsentStatus, Direction, Message, MessageStatus, Store};
use tokio::time::Instant;

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-engine-{}-{name}", std::process::id()))
}

fn sim(personality: Personality, name: &str, own: &str) -> SimHandle {
    let mut c = SimConfig::new(personality);
    c.link = Some(temp_path(&format!("{name}.tty")));
    c.own_number = own.to_string();
    c.status_report_delay = Duration::from_millis(50);
    c.noise_interval = Some(Duration::ZERO);
    c.failing_numbers = vec!["+15550009999".into()];
    Simulator::start(c).unwrap()
}

fn engine() -> EngineSettings {
    EngineSettings {
        health_interval: Duration::from_millis(500),
        sweep_interval: Duration::from_secs(2),
        retry_base: Duration::from_millis(100),
        reopen_backoff_max: Duration::from_millis(300),
        ..EngineSettings::default()
    }
}

impl Gateway {
    async fn send(&self, to: &str, body: &str, status_report: bool) -> Message {
        let parts =
            smsgate::pdu::segment(body, Default::default(), Default::default(), 0, 10).unwrap();
        let m = self.store.new_outbound(
            "",
            to,
            body,
            parts.parts.len() as u8,
            parts.alphabet.as_str(),
            status_report,
            None,
            Utc::now(),
        );
        let Accepted::New(m) = self.store.accept(m, None).await.unwrap() else {
            panic!("not accepted")
        };
        self.dispatcher.notify();
        m
    }

    async fn wait_status(&self, id: &str, status: MessageStatus) -> Message {
        self.wait_for(id, |m| m.status == status).await
    }

    /// The thread of `contact` once it holds `n` inbound messages.
    async fn wait_inbound(&self, contact: &str, n: usize) -> Vec<Message> {
        let deadline = Instant::now() + WAIT;
        loop {
            let thread = self.store.thread(contact, None, 100).unwrap();
            let inbound: Vec<Message> = thread
                .items
                .into_iter()
                .filter(|m| m.direction == Direction::Inbound)
                .collect();
            if inbound.len() >= n {
                return inbound;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} inbound from {contact}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What `counts` holds for modem m1 today and yesterday in UTC (the
/// engine's default day zone): a run across midnight splits its counts
/// over both days.
fn counted(counts: &DailyCounts) -> u32 {
    let today = Utc::now().date_naive();
    [Some(today), today.pred_opt()]
        .into_iter()
        .flatten()
        .map(|day| counts.get("m1", day).unwrap())
        .sum()
}

fn store_dir(name: &str) -> Dir {
    Dir::new(temp_path(&format!("{name}.db")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_single_and_multipart_gsm7_and_ucs2_with_delivery_reports() {
    let dir = store_dir("send");
    let modem = sim(Personality::Sim800, "send", "+15550001000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;

    let single = gw.send("+15550001001", "Reply C to confirm", true).await;
    let long_gsm = "Your appointment is confirmed for Tuesday 10:30 {room 4}. ".repeat(4);
    let multipart = gw.send("+15550001002", &long_gsm, true).await;
    let emoji = format!("Привет 😀 {}", "ж".repeat(70));
    let ucs2 = gw.send("+15550001003", &emoji, true).await;
    assert_eq!((multipart.parts, ucs2.parts), (2, 2));

    for m in [&single, &multipart, &ucs2] {
        let done = gw.wait_status(&m.id, MessageStatus::Delivered).await;
        assert_eq!(done.modem.as_deref(), Some("m1"));
        assert!(done.part_status.iter().all(|p| p.mr.is_some()));
        let statuses: Vec<_> = done.history.iter().map(|t| t.status).collect();
        assert_eq!(
            statuses,
            [
                MessageStatus::Queued,
                MessageStatus::Sending,
                MessageStatus::Sent,
                MessageStatus::Delivered
            ]
        );
    }
    let received = modem.received();
    let text_to = |to: &str| {
        received
            .iter()
            .find(|r| r.to == to)
            .map(|r| (r.text.clone(), r.parts))
    };
    assert_eq!(
        text_to("+15550001001"),
        Some(("Reply C to confirm".into(), 1))
    );
    assert_eq!(text_to("+15550001002"), Some((long_gsm.clone(), 2)));
    assert_eq!(text_to("+15550001003"), Some((emoji.clone(), 2)));
    // Five parts counted for today, with no daily limit set (the modems
    // page's "sent today"); each is counted before its "sending" mark.
    let sent = DailyCounts::open(&gw.store).unwrap();
    assert_eq!(counted(&sent), 5);
    gw.stop().await;
    modem.shutdown().await;
}

/// A status report right behind its `+CMGS` (no network delay at all),
/// routed as `+CDS` (SIM800) or stored and announced as `+CDSI` (EC25):
/// the part's "sent" mark, which records its message reference, is
/// applied while the modem goes on, and the report waits for it instead of
/// finding no part to settle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_right_behind_its_send_settles_the_part() {
    for (personality, name) in [(Personality::Sim800, "cds"), (Personality::Ec25, "cdsi")] {
        let dir = store_dir(&format!("report-at-once-{name}"));
        let mut c = SimConfig::new(personality);
        c.link = Some(temp_path(&format!("report-at-once-{name}.tty")));
        c.own_number = "+15550003000".into();
        c.status_report_delay = Duration::ZERO;
        c.noise_interval = Some(Duration::ZERO);
        let modem = Simulator::start(c).unwrap();
        let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
        gw.wait_ready().await;
        // The store's writer kept busy (each of these changes takes 20 ms
        // and changes nothing), so that every "sent" mark waits in its
        // queue while the report is already there.
        let busy = gw.send("+15550003199", "held back", false).await;
        let _ = gw.wait_status(&busy.id, MessageStatus::Sent).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hog = tokio::spawn({
            let (store, stop, id) = (gw.store.clone(), stop.clone(), busy.id.clone());
            async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = store
                        .update_grouped(&id, |_| {
                            std::thread::sleep(Duration::from_millis(20));
                            false
                        })
                        .await;
                }
            }
        });
        let mut sent = Vec::new();
        for i in 0..6 {
            sent.push(
                gw.send(&format!("+1555000310{i}"), "Reply C to confirm", true)
                    .await,
            );
        }
        for m in &sent {
            let done = gw.wait_status(&m.id, MessageStatus::Delivered).await;
            assert_eq!(done.part_status[0].report_status, Some(0), "{name}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        hog.await.unwrap();
        gw.stop().await;
        modem.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_report_fails_the_message() {
    let dir = store_dir("report-fail");
    let modem = sim(Personality::Ec25, "report-fail", "+15550002000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    // The simulator's network reports failure for this number; the EC25
    // announces reports as +CDSI: "SR",n, read from the SR storage.
    let m = gw.send("+15550009999", "hello", true).await;
    let failed = gw.wait_status(&m.id, MessageStatus::Failed).await;
    let error = failed.error.unwrap();
    assert!(error.code.starts_with("status_"), "{error:?}");
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receives_single_and_multipart_inbound_for_each_personality() {
    for (n, personality) in [Personality::Sim800, Personality::Ec25, Personality::E3372]
        .into_iter()
        .enumerate()
    {
        let name = format!("inbound-{n}");
        let dir = store_dir(&name);
        let modem = sim(personality, &name, "+15550003000");
        let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
        gw.wait_ready().await;
        modem.inject("+15550003001", "C").unwrap();
        let long = "Can we move it to Thursday afternoon instead? ".repeat(5);
        assert_eq!(modem.inject("+15550003002", &long).unwrap(), 2);
        let single = gw.wait_inbound("+15550003001", 1).await;
        assert_eq!(single[0].body, "C");
        assert_eq!(single[0].modem.as_deref(), Some("m1"));
        let multi = gw.wait_inbound("+15550003002", 1).await;
        assert_eq!(multi[0].body, long, "{personality:?}");
        assert_eq!(multi[0].parts, 2);
        let events = gw.store.events_after(None, 10).unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind == "message.received")
                .count(),
            2
        );
        // Two messages (three parts) counted as received today.
        let received = DailyCounts::open_received(&gw.store).unwrap();
        let deadline = Instant::now() + WAIT;
        while counted(&received) < 2 {
            assert!(
                Instant::now() < deadline,
                "the receive count stayed at {}",
                counted(&received)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(counted(&received), 2);
        gw.stop().await;
        modem.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_inbound_out_of_order_and_duplicated_is_stored_once() {
    let dir = store_dir("order");
    let modem = sim(Personality::Ec25, "order", "+15550013000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    let text = "Part one says hello. ".repeat(8) + &"Part two says goodbye. ".repeat(7);
    // Parts 3, 1, 3 again, 2: out of order, with a duplicate of part 3.
    assert_eq!(
        modem
            .inject_parts("+15550013001", &text, &[3, 1, 3, 2])
            .unwrap(),
        3
    );
    let inbound = gw.wait_inbound("+15550013001", 1).await;
    assert_eq!(inbound[0].body, text);
    assert_eq!(inbound[0].parts, 3);
    // The duplicate part leaves no second message behind.
    modem.inject("+15550013001", "after").unwrap();
    let inbound = gw.wait_inbound("+15550013001", 2).await;
    assert_eq!(inbound.len(), 2);
    assert_eq!(inbound[1].body, "after");
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_waiting_on_the_sim_are_swept_at_start() {
    let dir = store_dir("sweep");
    let modem = sim(Personality::Sim800, "sweep", "+15550004000");
    // Stored before the gateway runs: only the AT+CMGL sweep can find them.
    modem.inject("+15550004001", "early bird").unwrap();
    modem.inject("+15550004001", "second").unwrap();
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    let inbound = gw.wait_inbound("+15550004001", 2).await;
    let bodies: Vec<_> = inbound.iter().map(|m| m.body.as_str()).collect();
    assert!(bodies.contains(&"early bird") && bodies.contains(&"second"));
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_texted_from_the_modem_it_last_talked_with() {
    let dir = store_dir("sticky");
    let a = sim(Personality::Sim800, "sticky-a", "+15550005000");
    let b = sim(Personality::Ec25, "sticky-b", "+15550006000");
    let gw = Gateway::start(
        &dir.0,
        &[engine_rig::modem("a", &a), engine_rig::modem("b", &b)],
        engine(),
    );
    gw.wait_ready().await;
    b.inject("+15550005555", "hi, it's me").unwrap();
    gw.wait_inbound("+15550005555", 1).await;
    for n in 0..4 {
        let m = gw.send("+15550005555", &format!("reply {n}"), false).await;
        let sent = gw.wait_status(&m.id, MessageStatus::Sent).await;
        assert_eq!(
            sent.modem.as_deref(),
            Some("b"),
            "sticky to the modem the contact used"
        );
    }
    assert_eq!(b.received().len(), 4);
    assert!(a.received().is_empty());
    gw.stop().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// An SMS announced between `AT+CMGS` and its prompt is read first (the
/// modem gives way with ESC); the message then goes, once, and no attempt
/// is counted against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_gives_way_to_an_sms_announced_before_its_prompt() {
    let dir = store_dir("give-way");
    let modem = sim(Personality::Sim800, "give-way", "+15550007500");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    modem
        .fault(Fault::SmsBeforePrompt {
            from: "+15550007502".into(),
            text: "C".into(),
        })
        .unwrap();
    let m = gw.send("+15550007501", "Reminder: Tue 10:30", false).await;
    let sent = gw.wait_status(&m.id, MessageStatus::Sent).await;
    let inbound = gw.wait_inbound("+15550007502", 1).await;
    assert_eq!(inbound[0].body, "C");
    assert!(
        inbound[0].created_at < sent.updated_at,
        "the SMS was stored before the send went"
    );
    assert_eq!(sent.attempts, 0);
    assert_eq!(modem.received().len(), 1, "sent once");
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_retry_and_permanent_ones_fail() {
    let dir = store_dir("errors");
    let modem = sim(Personality::Sim800, "errors", "+15550007000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    // 42: congestion (24.011 Annex E-2), transient.
    modem.fault(Fault::CmsError { code: 42, count: 1 }).unwrap();
    let m = gw.send("+15550007001", "try again", false).await;
    let sent = gw.wait_status(&m.id, MessageStatus::Sent).await;
    assert_eq!(sent.attempts, 1);
    let retry = sent
        .history
        .iter()
        .find(|t| t.status == MessageStatus::Queued && t.error.is_some())
        .unwrap();
    assert_eq!(retry.error.as_ref().unwrap().code, "cms_42");
    // 1: unassigned (unallocated) number, permanent.
    modem.fault(Fault::CmsError { code: 1, count: 1 }).unwrap();
    let m = gw.send("+15550007002", "no such number", false).await;
    let failed = gw.wait_status(&m.id, MessageStatus::Failed).await;
    assert_eq!(failed.error.unwrap().code, "cms_1");
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_modem_recovers_and_sends() {
    let dir = store_dir("hung");
    let modem = sim(Personality::Sim800, "hung", "+15550008000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    modem
        .fault(Fault::StopAnswering {
            duration: Some(Duration::from_secs(3)),
        })
        .unwrap();
    // Health checks time out meanwhile; once the firmware answers again the
    // transport resyncs (or the port is reopened) and sending resumes.
    let m = gw.send("+15550008001", "after the hang", false).await;
    let done = gw
        .wait_for(&m.id, |m| {
            matches!(m.status, MessageStatus::Sent | MessageStatus::Unknown)
        })
        .await;
    if done.status == MessageStatus::Unknown {
        // The hang caught AT+CMGS in flight: it is reported, never resent silently.
        assert!(modem.received().len() <= 1);
    }
    let later = gw.send("+15550008002", "next one", false).await;
    gw.wait_status(&later.id, MessageStatus::Sent).await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_and_replug_loses_nothing() {
    let dir = store_dir("unplug");
    let modem = sim(Personality::Ec25, "unplug", "+15550010000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(
            gw.send(&format!("+1555001{n:04}"), &format!("batch {n}"), false)
                .await
                .id,
        );
    }
    modem
        .fault(Fault::Unplug {
            duration: Duration::from_millis(800),
        })
        .unwrap();
    for n in 6..10 {
        ids.push(
            gw.send(&format!("+1555001{n:04}"), &format!("batch {n}"), false)
                .await
                .id,
        );
    }
    let mut unknown = 0;
    for id in &ids {
        let m = gw
            .wait_for(id, |m| {
                matches!(m.status, MessageStatus::Sent | MessageStatus::Unknown)
            })
            .await;
        unknown += usize::from(m.status == MessageStatus::Unknown);
    }
    // Every message is accounted for: sent, or (at most the one in flight at
    // the unplug) unknown; nothing silently dropped or sent twice.
    assert!(unknown <= 1, "{unknown} unknown");
    let received = modem.received();
    assert!(received.len() >= ids.len() - unknown);
    let mut texts: Vec<_> = received.iter().map(|r| r.text.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), received.len(), "no duplicate sends");
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_waits_while_storage_is_full() {
    let dir = store_dir("full");
    let modem = sim(Personality::Sim800, "full", "+15550011000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    modem
        .fault(Fault::StorageFull {
            duration: Some(Duration::from_millis(700)),
        })
        .unwrap();
    modem.inject("+15550011001", "are you there?").unwrap();
    let inbound = gw.wait_inbound("+15550011001", 1).await;
    assert_eq!(inbound[0].body, "are you there?");
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_go_out_after_a_restart() {
    let dir = store_dir("restart");
    let modem = sim(Personality::Sim800, "restart", "+15550012000");
    // First run: the modem is unplugged, so messages stay queued.
    modem
        .fault(Fault::Unplug {
            duration: Duration::from_secs(2),
        })
        .unwrap();
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    let ids = [
        gw.send("+15550012001", "one", false).await.id,
        gw.send("+15550012002", "two", false).await.id,
    ];
    for id in &ids {
        assert_eq!(
            gw.store.get(id).unwrap().unwrap().status,
            MessageStatus::Queued
        );
    }
    gw.stop().await;
    // Second run, same store: recovery, then the queue drains.
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    assert!(gw.store.recover_in_flight().await.unwrap().is_empty());
    for id in &ids {
        gw.wait_status(id, MessageStatus::Sent).await;
    }
    assert_eq!(modem.received().len(), 2);
    gw.stop().await;
    modem.shutdown().await;
}

impl Gateway {
    /// The `modem.status` events so far, as `state` values, oldest first.
    fn status_events(&self) -> Vec<String> {
        self.store
            .events_after(None, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "modem.status")
            .map(|e| e.data["state"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Wait until the modem has left `ready` and come back to it.
    async fn wait_away_and_back(&self) {
        let mut rx = self.statuses[0].clone();
        tokio::time::timeout(WAIT, rx.wait_for(|s| s.state != ModemState::Ready))
            .await
            .unwrap()
            .unwrap();
        self.wait_ready().await;
    }
}

/// Unplug then replug: one `offline`, one `ready`, nothing more. The positive
/// signal that any flap would have shown by the end: a message sent after the
/// replug (the actor takes work only after every URC waiting for it, the
/// replugged modem's boot URCs included) and an inbound SMS received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replugged_modem_returns_to_ready_once() {
    let dir = store_dir("replug-once");
    let modem = sim(Personality::Sim800, "replug-once", "+15550013000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    modem
        .fault(Fault::Unplug {
            duration: Duration::from_millis(400),
        })
        .unwrap();
    gw.wait_away_and_back().await;
    modem.wait_generation(2, WAIT).await.unwrap();
    let m = gw.send("+15550013001", "after the replug", false).await;
    gw.wait_status(&m.id, MessageStatus::Sent).await;
    modem.inject("+15550013002", "hello again").unwrap();
    gw.wait_inbound("+15550013002", 1).await;
    assert_eq!(gw.status_events(), ["ready", "offline", "ready"]);
    assert_eq!(gw.statuses[0].borrow().state, ModemState::Ready);
    gw.stop().await;
    modem.shutdown().await;
}

/// A reboot on the same port: the session initialises the modem again without
/// reopening the port (nothing races for its lock): `degraded` once while it
/// does, `ready` once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebooted_modem_returns_to_ready_once() {
    let dir = store_dir("reboot-once");
    let modem = sim(Personality::Sim800, "reboot-once", "+15550014000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    modem.fault(Fault::Reboot).unwrap();
    gw.wait_away_and_back().await;
    let m = gw.send("+15550014001", "after the reboot", false).await;
    gw.wait_status(&m.id, MessageStatus::Sent).await;
    modem.inject("+15550014002", "hello again").unwrap();
    gw.wait_inbound("+15550014002", 1).await;
    assert_eq!(gw.status_events(), ["ready", "degraded", "ready"]);
    let status = gw.statuses[0].borrow().clone();
    assert_eq!(status.state, ModemState::Ready);
    assert_eq!(status.counters.reconnects, 0, "the port was not reopened");
    gw.stop().await;
    modem.shutdown().await;
}

/// A modem that stops answering leaves `ready` at its first command timeout
/// (not three timeouts later), takes no work while `degraded`, and is `ready`
/// again as soon as it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_modem_leaves_ready_at_the_first_timeout() {
    let dir = store_dir("hung-first");
    let modem = sim(Personality::Ec25, "hung-first", "+15550015000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    modem
        .fault(Fault::StopAnswering { duration: None })
        .unwrap();
    let mut rx = gw.statuses[0].clone();
    let left = tokio::time::timeout(WAIT, rx.wait_for(|s| s.state != ModemState::Ready))
        .await
        .unwrap()
        .unwrap()
        .clone();
    assert_eq!(left.state, ModemState::Degraded, "{left:?}");
    assert_eq!(left.counters.timeouts, 1, "{left:?}");
    assert_eq!(left.counters.reconnects, 0, "{left:?}");
    assert!(
        left.reason
            .as_deref()
            .unwrap_or("")
            .starts_with("no answer to AT"),
        "{left:?}"
    );
    modem.fault(Fault::Clear).unwrap();
    gw.wait_ready().await;
    let m = gw.send("+15550015001", "answering again", false).await;
    gw.wait_status(&m.id, MessageStatus::Sent).await;
    let events = gw.status_events();
    assert_eq!(events, ["ready", "degraded", "ready"]);
    gw.stop().await;
    modem.shutdown().await;
}

/// A store whose inbound texts are read as consent keywords, as the daemon's.
fn with_consent_rules(store: &Store) {
    let policy = Arc::new(smsgate::policy::Policy::from_config(
        &smsgate::config::Config::default(),
    ));
    store.set_reactor(policy.reactor(), policy.per_number());
}

/// STOP, STOP, START, STOP within one second from one handset: the same
/// bytes and network timestamp for each STOP. Every one is a delivery of its
/// own (announced by `+CMTI`, read, deleted, the slot reused), so four
/// messages are stored and the contact ends opted out; a duplicate is only
/// the same slot read again before its `AT+CMGD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_stops_in_one_second_are_four_messages_and_the_contact_ends_opted_out() {
    let dir = store_dir("stops");
    let modem = sim(Personality::Sim800, "stops", "+15550016000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    with_consent_rules(&gw.store);
    gw.wait_ready().await;
    let contact = "+15550016001";
    let sent_at = chrono::DateTime::parse_from_rfc3339("2026-12-03T13:00:00+01:00").unwrap();
    for text in ["STOP", "STOP", "START", "STOP"] {
        modem.inject_sent_at(contact, text, sent_at).unwrap();
    }
    let inbound = gw.wait_inbound(contact, 4).await;
    let mut bodies: Vec<&str> = inbound.iter().map(|m| m.body.as_str()).collect();
    bodies.sort();
    assert_eq!(bodies, ["START", "STOP", "STOP", "STOP"]);
    assert!(inbound
        .iter()
        .all(|m| m.network_time == Some(sent_at.with_timezone(&Utc))));
    // The positive signal that nothing more is coming: the network holds no
    // more parts for the modem and a later text from the handset is stored
    // as the fifth.
    assert_eq!(modem.waiting_inbound(), 0);
    modem.inject_sent_at(contact, "thanks", sent_at).unwrap();
    assert_eq!(gw.wait_inbound(contact, 5).await.len(), 5);

    let consent = gw.store.consent(contact, None).unwrap();
    assert_eq!(consent.status, ConsentStatus::OptedOut);
    let actions: Vec<String> = gw
        .store
        .ledger(contact)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["opt_out", "repeat_opt_out", "opt_in", "opt_out"]);
    // The consent rules' confirmations: one per change, none for the repeat.
    let thread = gw.store.thread(contact, None, 100).unwrap();
    let mut confirmations: Vec<(chrono::DateTime<Utc>, String)> = thread
        .items
        .iter()
        .filter(|m| m.direction == Direction::Outbound)
        .map(|m| (m.created_at, m.exempt.clone().unwrap_or_default()))
        .collect();
    confirmations.sort();
    let kinds: Vec<&str> = confirmations.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "opt_out_confirmation",
            "opt_in_confirmation",
            "opt_out_confirmation"
        ]
    );
    gw.stop().await;
    modem.shutdown().await;
}

/// The same four identical STOPs already waiting in four slots when the
/// gateway starts: the sweep stores each once (and a second sweep, reading
/// nothing new, stores none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_stops_waiting_in_four_slots_are_four_messages() {
    let dir = store_dir("stops-swept");
    let modem = sim(Personality::Sim800, "stops-swept", "+15550017000");
    let contact = "+15550017001";
    let sent_at = chrono::DateTime::parse_from_rfc3339("2026-12-03T13:00:00+01:00").unwrap();
    for _ in 0..4 {
        modem.inject_sent_at(contact, "STOP", sent_at).unwrap();
    }
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    with_consent_rules(&gw.store);
    gw.wait_ready().await;
    assert_eq!(gw.wait_inbound(contact, 4).await.len(), 4);
    modem.inject(contact, "later").unwrap();
    assert_eq!(gw.wait_inbound(contact, 5).await.len(), 5);
    assert_eq!(
        gw.store.consent(contact, None).unwrap().status,
        ConsentStatus::OptedOut
    );
    gw.stop().await;
    modem.shutdown().await;
}

/// Log lines written while a test runs, captured by a `tracing` subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A failed `AT+CMGS` is a `warn` line with the message id, the modem and
/// the error; a modem going offline is a `warn` too. The subscriber is the
/// process-wide one (a thread-scoped one misses events whose callsites other
/// tests' threads registered first); this test's modem has an id of its own
/// so the other tests' lines are told apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sends_and_a_modem_going_offline_are_warnings() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let ours = |captured: &Captured| -> Vec<String> {
        captured
            .lines()
            .into_iter()
            .filter(|l| l.contains("modem=warn-m "))
            .collect()
    };

    let dir = store_dir("warn");
    let modem = sim(Personality::Sim800, "warn", "+15550018000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("warn-m", &modem)], engine());
    gw.wait_ready().await;
    modem
        .fault(Fault::CmsError {
            code: 330,
            count: 1,
        })
        .unwrap();
    let m = gw.send("+15550018001", "no SMSC", false).await;
    gw.wait_status(&m.id, MessageStatus::Failed).await;
    let failed: Vec<String> = ours(&captured)
        .into_iter()
        .filter(|l| l.contains("AT+CMGS failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{:#?}", ours(&captured));
    for part in ["WARN", &m.id, "modem=warn-m", "+CMS ERROR"] {
        assert!(failed[0].contains(part), "no {part:?} in {}", failed[0]);
    }

    modem
        .fault(Fault::Unplug {
            duration: Duration::from_millis(300),
        })
        .unwrap();
    gw.wait_away_and_back().await;
    let offline: Vec<String> = ours(&captured)
        .into_iter()
        .filter(|l| l.contains("state=\"offline\"") || l.contains("state=offline"))
        .collect();
    assert!(!offline.is_empty(), "{:#?}", ours(&captured));
    assert!(offline.iter().all(|l| l.contains("WARN")), "{offline:#?}");
    gw.stop().await;
    // Stopping with the daemon is not a fault: info, not warn.
    let stopped: Vec<String> = ours(&captured)
        .into_iter()
        .filter(|l| l.contains("reason=\"stopped\"") || l.contains("reason=stopped"))
        .collect();
    assert_eq!(stopped.len(), 1, "{:#?}", ours(&captured));
    assert!(stopped[0].contains("INFO"), "{}", stopped[0]);
    modem.shutdown().await;
}

/// The API over the engine rig's store and dispatcher (the daemon's
/// wiring), with one `read` token.
fn api(gw: &Gateway) -> axum::Router {
    let config = smsgate::config::Config::default();
    let policy = Arc::new(smsgate::policy::Policy::from_config(&config));
    let token = smsgate::api::ApiToken::from_secret(
        "tech",
        "probe-secret",
        vec![smsgate::api::Scope::Read],
    );
    let state = smsgate::api::ApiState::new(
        gw.store.clone(),
        gw.dispatcher.clone(),
        policy,
        &config,
        vec![token],
    );
    smsgate::api::router(state)
}

/// One request to `app` with the `read` token: status and JSON body.
async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer probe-secret")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// `POST /v1/modems/{id}/probe` runs the technician's checks over the
/// actor's own connection (the port is open once, by the actor) and answers
/// what the simulated modem is; `GET` answers the same last result, and it
/// is still there after the store is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_through_the_daemon_reports_the_modem_and_is_kept() {
    let dir = store_dir("probe");
    let mut c = SimConfig::new(Personality::Ec25);
    c.link = Some(temp_path("probe.tty"));
    c.own_number = "+15550002000".into();
    c.noise_interval = Some(Duration::ZERO);
    c.imei = Some("861234050012345".into());
    let modem = Simulator::start(c).unwrap();
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    let app = api(&gw);

    let (status, none) = call(&app, "GET", "/v1/modems/m1/probe").await;
    assert_eq!(status, 404, "{none}");

    let (status, report) = call(&app, "POST", "/v1/modems/m1/probe").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["modem"], "m1");
    assert_eq!(report["identity"]["imei"], "861234050012345");
    assert_eq!(report["identity"]["model"], Personality::Ec25.model());
    assert_eq!(report["registration"], "home");
    assert_eq!(report["sim"], "ready");
    assert_eq!(report["pdu_mode"], true);
    // The daemon's own order: status reports routed directly, as init set
    // them (the probe leaves the modem's settings as they were).
    assert_eq!(report["cnmi"], "2,1,0,1,0");
    assert_eq!(report["ok"], true, "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 10, "{report}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{report}");
    assert_eq!(gw.status("m1").state, ModemState::Ready);

    let (status, last) = call(&app, "GET", "/v1/modems/m1/probe").await;
    assert_eq!(status, 200);
    assert_eq!(last, report);

    for method in ["POST", "GET"] {
        let (status, body) = call(&app, method, "/v1/modems/nope/probe").await;
        assert_eq!(status, 404, "{method}: {body}");
        assert_eq!(body["code"], "not_found");
    }

    // The actor still sends after the probe.
    let m = gw.send("+15550002001", "after the probe", false).await;
    gw.wait_status(&m.id, MessageStatus::Sent).await;

    // Every handle of the store goes (the router holds one) before it is
    // opened again.
    drop(app);
    gw.stop().await;
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    let (status, kept) = call(&api(&gw), "GET", "/v1/modems/m1/probe").await;
    assert_eq!(status, 200);
    assert_eq!(kept, report);
    gw.stop().await;
    modem.shutdown().await;
}

/// A modem whose port cannot be opened is not probed: 409 says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modem_that_is_not_connected_is_not_probed() {
    let dir = store_dir("probe-offline");
    let settings = smsgate::modem::ModemSettings {
        id: "m1".into(),
        port: temp_path("no-such-port").to_string_lossy().into_owned(),
        baud: 115_200,
        pin: None,
        storage: None,
        own_number: None,
        sends_per_minute: None,
        daily_limit: None,
        rest_after_failures: None,
        resolver: None,
    };
    let gw = Gateway::start(&dir.0, &[settings], engine());
    let mut rx = gw.statuses[0].clone();
    tokio::time::timeout(WAIT, rx.wait_for(|s| s.state == ModemState::Offline))
        .await
        .unwrap()
        .unwrap();
    let (status, body) = call(&api(&gw), "POST", "/v1/modems/m1/probe").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "modem_not_connected");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot open port"),
        "{body}"
    );
    gw.stop().await;
}

/// A probe asked for while sends are queued runs between them: every
/// message goes out exactly once, and the probe answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_during_queued_sends_loses_none_and_sends_none_twice() {
    let dir = store_dir("probe-sends");
    let modem = sim(Personality::Sim800, "probe-sends", "+15550003000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    let app = api(&gw);
    let mut ids = Vec::new();
    for i in 0..12 {
        let m = gw
            .send(&format!("+155500031{i:02}"), &format!("queued {i}"), false)
            .await;
        ids.push(m.id);
        if i == 3 {
            // Asked while the first are going out and the rest wait.
            let (status, report) = call(&app, "POST", "/v1/modems/m1/probe").await;
            assert_eq!(status, 200, "{report}");
            assert_eq!(report["ok"], true, "{report}");
        }
    }
    let (status, report) = call(&app, "POST", "/v1/modems/m1/probe").await;
    assert_eq!(status, 200, "{report}");
    for id in &ids {
        gw.wait_status(id, MessageStatus::Sent).await;
    }
    let received = modem.received();
    for i in 0..12 {
        let text = format!("queued {i}");
        let copies = received.iter().filter(|r| r.text == text).count();
        assert_eq!(copies, 1, "{text}: {received:?}");
    }
    gw.stop().await;
    modem.shutdown().await;
}

/// A probe of a modem that stopped answering: its commands' timeouts are
/// the modem's, so the usual recovery follows (degraded, then the port
/// reopened after three in a row), the probe answers what it found, and
/// the modem comes back and sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_times_out_leaves_the_modem_to_the_usual_recovery() {
    let dir = store_dir("probe-hung");
    let modem = sim(Personality::Ec25, "probe-hung", "+15550004000");
    let gw = Gateway::start(&dir.0, &[engine_rig::modem("m1", &modem)], engine());
    gw.wait_ready().await;
    let app = api(&gw);
    modem
        .fault(Fault::StopAnswering { duration: None })
        .unwrap();
    let (status, report) = call(&app, "POST", "/v1/modems/m1/probe").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["responding"], false, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["checks"][0]["name"], "AT", "{report}");
    assert_eq!(report["checks"][0]["ok"], false, "{report}");
    let mut rx = gw.statuses[0].clone();
    let offline = tokio::time::timeout(
        WAIT,
        rx.wait_for(|s| s.state == ModemState::Offline && s.counters.reconnects >= 1),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert!(
        offline
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("timeouts in a row"),
        "{offline:?}"
    );
    modem.fault(Fault::Clear).unwrap();
    gw.wait_ready().await;
    let m = gw.send("+15550004001", "back after the probe", false).await;
    gw.wait_status(&m.id, MessageStatus::Sent).await;
    drop(app);
    gw.stop().await;
    modem.shutdown().await;
}
