//! Crash test (issue: gateway, "Store"; issue 11, "The store"): a child
//! process writing to the store is killed with SIGKILL at random moments, 50
//! times; after each kill the store opens, every message the child
//! acknowledged is there exactly once, no message is there twice, and
//! nothing of a contact whose erasure was acknowledged can be read, through
//! the store or in the history files.
//!
//! The child runs the whole life of a message, so kills land in every step:
//! accepts (group commit), status updates, moves to the history files (with
//! `archive_after` zero: every delivered message moves on the next pass),
//! retention (half the messages are created 40 days ago: their bodies are
//! blanked, in sled and in the history), erasure of contacts, and compaction
//! of the history files (at a low bar, so most passes rewrite a file).
//! Housekeeping runs in a loop, not on its hourly
//! clock, and prints the step it is in, so the test can say where the kills
//! landed.
//!
//! The child is this test binary itself, re-run with an environment variable
//! that turns `crash_writer_child` into the writer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use smsgate::store::{Accepted, IdempotencyKey, MessageFilter, MessageStatus, Store};

const CHILD_ENV: &str = "SMSGATE_CRASH_WRITER_DIR";
/// The round the child runs in: its erasable contacts are new ones.
const ROUND_ENV: &str = "SMSGATE_CRASH_ROUND";
const ROUNDS: usize = 50;
/// Writer tasks in the child.
const WRITERS: usize = 6;
/// Messages each writer sends an erasable contact before erasing it.
const PER_ERASED_CONTACT: u64 = 4;
/// Marks the bodies of erasable contacts' messages: `erase-<contact>-`.
const ERASE_MARK: &str = "erase-";

/// The contact a writer keeps (never erased).
fn kept_contact(t: usize) -> String {
    format!("+1444000000{t}")
}

/// The `k`th erasable contact of writer `t`.
fn erased_contact(t: usize, k: u64) -> String {
    format!("+1555{t}{k:08}")
}

/// The child. Writers accept messages (printing `ack <id> <body>` once an
/// accept returned, i.e. durable), mark them delivered so they can move,
/// and every few messages erase a contact they are done with (printing
/// `erased <contact>` once the erasure returned). A housekeeping task moves, blanks and compacts in
/// a loop, printing `begin <step>` and `end <step>`.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&PathBuf::from(dir), 8).unwrap();
        let round: u64 = std::env::var(ROUND_ENV)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let prefix = format!(
            "{}-{}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or(0)
        );
        let mut tasks = Vec::new();
        for t in 0..WRITERS {
            let store = store.clone();
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                // Past the contacts earlier rounds may have erased.
                let base = round * 1_000_000;
                for n in 0u64.. {
                    let erasable = n % 2 == 1;
                    let contact = if erasable {
                        erased_contact(t, base + n / (2 * PER_ERASED_CONTACT))
                    } else {
                        kept_contact(t)
                    };
                    let body = if erasable {
                        format!("{ERASE_MARK}{contact}-{prefix}-{n}")
                    } else {
                        format!("keep-{prefix}-{t}-{n}")
                    };
                    // Half of them old enough for retention.
                    let at = if n % 4 < 2 {
                        Utc::now() - chrono::Duration::days(40)
                    } else {
                        Utc::now()
                    };
                    let m = store.new_outbound("", &contact, &body, 1, "gsm7", false, None, at);
                    let key = IdempotencyKey {
                        key: body.clone(),
                        fingerprint: body.clone(),
                    };
                    let Ok(Accepted::New(m)) = store.accept(m, Some(key)).await else {
                        continue;
                    };
                    println!("ack {} {body}", m.id);
                    let _ = store
                        .update(&m.id, |m| {
                            let now = Utc::now();
                            m.transition(now, MessageStatus::Sending);
                            m.transition(now, MessageStatus::Sent);
                            m.transition(now, MessageStatus::Delivered);
                            true
                        })
                        .await;
                    // The last message to this erasable contact: erase the
                    // one two before it (by now moved to the history files).
                    let k = n / (2 * PER_ERASED_CONTACT);
                    if erasable && (n / 2) % PER_ERASED_CONTACT == PER_ERASED_CONTACT - 1 && k >= 2
                    {
                        let contact = erased_contact(t, base + k - 2);
                        println!("erasing {contact}");
                        if store.erase_contact(&contact).await.is_ok() {
                            println!("erased {contact}");
                        }
                    }
                }
            }));
        }
        let housekeeping = {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    // A low bar (live share under 90%): most passes rewrite
                    // a file, so kills land inside real compactions.
                    println!("begin compaction");
                    let s = store.clone();
                    let compacted =
                        tokio::task::spawn_blocking(move || s.compact_history(0.9, 0)).await;
                    println!("end compaction {compacted:?}");
                    println!("begin archive");
                    let moved = store.archive_all_settled(chrono::Duration::zero()).await;
                    println!("end archive {moved:?}");
                    println!("begin retention");
                    let blanked = store
                        .purge_bodies_before(Utc::now() - chrono::Duration::days(30))
                        .await;
                    println!("end retention {blanked:?}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        for t in tasks {
            let _ = t.await;
        }
        let _ = housekeeping.await;
    });
}

/// A small deterministic PRNG (xorshift), so a failing round can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the child printed before it was killed.
#[derive(Default)]
struct Heard {
    /// id -> body of acknowledged messages.
    acked: Vec<(String, String)>,
    erased: Vec<String>,
    /// Erasures begun and not acknowledged.
    erasing: HashSet<String>,
    /// The housekeeping step begun and not ended (where the kill landed).
    in_step: Option<String>,
    /// Housekeeping steps completed.
    steps_done: usize,
    /// Compaction passes that rewrote a file.
    compactions: usize,
}

/// Every message the store lists, by id, with how often it is listed.
fn listed(store: &Store) -> HashMap<String, (usize, smsgate::store::Message)> {
    let mut seen: HashMap<String, (usize, smsgate::store::Message)> = HashMap::new();
    let mut cursor = None;
    loop {
        let page = store
            .list(&MessageFilter::default(), cursor.as_deref(), 500)
            .unwrap();
        for m in page.items {
            seen.entry(m.id.clone()).or_insert((0, m)).0 += 1;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen
}

/// The contacts whose erasable-message marks are on disk in the history files.
fn marked_on_disk(dir: &Path) -> HashSet<String> {
    let mut found = HashSet::new();
    let Ok(files) = std::fs::read_dir(dir.join("history")) else {
        return found;
    };
    for f in files {
        let bytes = std::fs::read(f.unwrap().path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for (at, _) in text.match_indices(ERASE_MARK) {
            let rest = &text[at + ERASE_MARK.len()..];
            if let Some(contact) = rest.split('-').next() {
                found.insert(contact.to_string());
            }
        }
    }
    found
}

#[test]
fn sigkill_during_writes_moves_retention_and_erasure_loses_nothing() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("smsgate-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut erased: HashSet<String> = HashSet::new();
    // Erasures a kill cut short: their messages may be there or not.
    let mut cut_short: HashSet<String> = HashSet::new();
    let mut killed_in: BTreeMap<String, usize> = BTreeMap::new();
    let mut steps_done = 0;
    let mut compactions = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &dir)
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let heard = Arc::new(Mutex::new(Heard::default()));
        // Steps as they begin, so a kill can be aimed at one.
        let (began, beginnings) = std::sync::mpsc::channel::<String>();
        let reader = {
            let heard = heard.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut h = heard.lock().unwrap();
                    if let Some(rest) = line.strip_prefix("ack ") {
                        if let Some((id, body)) = rest.split_once(' ') {
                            h.acked.push((id.to_string(), body.to_string()));
                        }
                    } else if let Some(contact) = line.strip_prefix("erasing ") {
                        h.erasing.insert(contact.to_string());
                        let _ = began.send("erasure".into());
                    } else if let Some(contact) = line.strip_prefix("erased ") {
                        h.erasing.remove(contact);
                        h.erased.push(contact.to_string());
                    } else if let Some(step) = line.strip_prefix("begin ") {
                        h.in_step = Some(step.to_string());
                        let _ = began.send(step.to_string());
                    } else if let Some(outcome) = line.strip_prefix("end ") {
                        h.in_step = None;
                        h.steps_done += 1;
                        if outcome.starts_with("compaction") && !outcome.contains("files: 0,") {
                            h.compactions += 1;
                        }
                    }
                }
            })
        };
        // Kill at a random moment (sometimes while the store is still
        // opening), or aimed: a random moment after one step began, once
        // there is something to work on.
        let spawned = std::time::Instant::now();
        let warm = Duration::from_millis(30 + rng.next() % 400);
        let aim = ["archive", "retention", "compaction", "erasure"]
            .get(round % 5)
            .copied();
        std::thread::sleep(warm);
        if let Some(aim) = aim {
            let give_up = spawned + Duration::from_secs(5);
            while let Ok(step) = beginnings
                .recv_timeout(give_up.saturating_duration_since(std::time::Instant::now()))
            {
                if step == aim {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.next() % 3000));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        let heard = std::mem::take(&mut *heard.lock().unwrap());
        let this_round: Vec<(String, String)> = heard.acked.clone();
        acked.extend(heard.acked);
        erased.extend(heard.erased);
        steps_done += heard.steps_done;
        compactions += heard.compactions;
        *killed_in
            .entry(heard.in_step.unwrap_or_else(|| "writes only".into()))
            .or_default() += 1;
        if !heard.erasing.is_empty() {
            *killed_in.entry("erasure".into()).or_default() += 1;
        }
        cut_short.extend(heard.erasing);

        let store = Store::open(&dir, 8)
            .unwrap_or_else(|e| panic!("round {round}: store does not open: {e}"));
        let seen = listed(&store);
        for (id, (count, m)) in &seen {
            assert_eq!(*count, 1, "round {round}: {id} listed {count} times");
            assert!(
                !erased.contains(&m.contact),
                "round {round}: {id} of erased {} is listed",
                m.contact
            );
        }
        for (id, body) in &acked {
            let contact = body
                .strip_prefix(ERASE_MARK)
                .and_then(|rest| rest.split('-').next());
            if contact.is_some_and(|c| erased.contains(c) || cut_short.contains(c)) {
                continue;
            }
            let Some((_, m)) = seen.get(id) else {
                panic!("round {round}: acknowledged {id} ({body}) is gone");
            };
            // Retention may have blanked it; nothing else changes a body.
            assert!(
                m.body == *body || m.body.is_empty(),
                "round {round}: {id} reads {:?}, not {body:?}",
                m.body
            );
        }
        // Read by id too, this round's (the look-up through the history).
        for (id, _) in &this_round {
            let got = store.get(id).unwrap();
            let should = seen.contains_key(id);
            assert_eq!(got.is_some(), should, "round {round}: get {id}");
        }
        for contact in &erased {
            assert!(
                store.thread(contact, None, 5).unwrap().items.is_empty(),
                "round {round}: erased {contact} has a thread"
            );
        }
        let on_disk = marked_on_disk(&dir);
        let leaked: Vec<&String> = on_disk.intersection(&erased).collect();
        assert!(
            leaked.is_empty(),
            "round {round}: erased contacts' text still in the history files: {leaked:?}"
        );
        drop(store);
    }
    eprintln!(
        "{ROUNDS} kills, {} acknowledged messages, {} erased contacts, {steps_done} housekeeping \
         steps done ({compactions} compactions); none lost or doubled, nothing erased readable. \
         Kills landed in: {killed_in:?}",
        acked.len(),
        erased.len(),
    );
    assert!(!acked.is_empty(), "the writer never acknowledged anything");
    assert!(!erased.is_empty(), "the writer never erased a contact");
    // How many compactions rewrote a file, and whether a kill landed in one,
    // depends on timing (a pass that finds nothing to rewrite is quick): both
    // are reported, not required. The unit test `store::compact` stops a
    // compaction after each of its steps deterministically and reopens.
    for step in ["archive", "retention", "erasure"] {
        assert!(
            killed_in.contains_key(step),
            "no kill landed during {step}: {killed_in:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
