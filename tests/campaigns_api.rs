//! Campaigns end to end through a running daemon's API (and the simulator
//! where messages must really go out): an A/B campaign whose per-variant
//! counts add up to the totals and to what the network received; a missing
//! template field listed per recipient; opted-out and unconsented recipients
//! skipped and counted; cancel; validation; and a daemon killed (SIGKILL)
//! three times in the middle of accepting a campaign while sending it,
//! restarted each time, with every recipient holding exactly one message and
//! the network receiving nobody twice.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, http, wait_until, ChildDaemon};
use serde_json::{json, Value};
use smsgate::conversation::campaigns::BATCH;
use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};
use smsgate::store::{MessageFilter, MessageStatus, Store};

const TOKEN: &str = "campaign-token";

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-campaigns-{}-{name}", std::process::id()))
}

fn sim(name: &str, own: &str) -> SimHandle {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp(&format!("{name}.tty")));
    c.own_number = own.into();
    c.status_report_delay = Duration::from_millis(20);
    c.noise_interval = Some(Duration::ZERO);
    Simulator::start(c).unwrap()
}

fn config_text(db: &Path, bind: &str, modem: Option<&SimHandle>) -> String {
    let mut text = format!(
        "[api]\nbind = \"{bind}\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[sms]\ndefault_country = \"US\"\n",
        db.display()
    );
    if let Some(sim) = modem {
        text.push_str(&format!(
            "[[modem]]\nid = \"m1\"\nport = \"{}\"\n",
            sim.link().display()
        ));
    }
    text
}

/// A daemon in this process on an ephemeral port (ready when it has a modem).
async fn daemon(name: &str, modem: Option<&SimHandle>) -> common::InProcessDaemon {
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let daemon =
        common::InProcessDaemon::start(&config_text(&db, "127.0.0.1:0", modem), TOKEN).await;
    if modem.is_some() {
        daemon.wait_ready().await;
    }
    daemon
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn numbers(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:04}")).collect()
}

fn create(addr: &str, body: &Value) -> Value {
    let (status, campaign) = http("POST", addr, "/v1/campaigns", Some(TOKEN), Some(body));
    assert_eq!(status, 202, "{campaign}");
    campaign
}

fn get(addr: &str, id: &str) -> Value {
    let (status, campaign) = http(
        "GET",
        addr,
        &format!("/v1/campaigns/{id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{campaign}");
    campaign
}

/// Wait until the campaign is in `state`; its body then.
fn wait_state(addr: &str, id: &str, state: &str) -> Value {
    wait_until(
        Duration::from_secs(60),
        &format!("campaign {state}"),
        || {
            let c = get(addr, id);
            (c["state"] == state).then_some(c)
        },
    )
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The sum of a field over the campaign's variants.
fn variants_sum(campaign: &Value, field: &[&str]) -> u64 {
    campaign["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| n(field.iter().fold(v, |v, f| &v[*f])))
        .sum()
}

/// Every error of a campaign, following the cursor.
fn all_errors(addr: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = format!("/v1/campaigns/{id}/errors?limit=7");
    loop {
        let (status, page) = http("GET", addr, &path, Some(TOKEN), None);
        assert_eq!(status, 200, "{page}");
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/campaigns/{id}/errors?limit=7&cursor={c}"),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ab_campaign_counts_add_up_to_the_totals_and_the_network() {
    let modem = sim("ab", "+15550400000");
    let gw = daemon("ab", Some(&modem)).await;
    let (addr, m) = (gw.addr.clone(), modem.clone());
    blocking(move || {
        let to = numbers("+1555041", 40);
        let campaign = create(
            &addr,
            &json!({
                "name": "Check-up reminder",
                "recipients": {"numbers": to},
                "variants": [
                    {"id": "a", "template": "A: your check-up is on {{time}}. Reply C to confirm, R to reschedule", "weight": 1},
                    {"id": "b", "template": "B: see you {{time}}? Reply C or R", "weight": 1}
                ],
                "category": "transactional",
                "flow": "appointment",
                "context": {"time": "Tue 10:30", "slots": ["Wed 9:00", "Thu 14:00"]}
            }),
        );
        assert_eq!(campaign["recipients"]["total"], 40);
        // Nothing sent yet: the variant's metrics count nobody.
        assert_eq!(campaign["variants"][0]["metrics"]["messages_sent"], 0);
        let id = campaign["id"].as_str().unwrap().to_string();
        let done = wait_until(Duration::from_secs(60), "every message delivered", || {
            let c = get(&addr, &id);
            (c["messages"]["delivered"] == 40).then_some(c)
        });
        assert_eq!(done["state"], "accepted");
        let r = &done["recipients"];
        assert_eq!((n(&r["processed"]), n(&r["accepted"]), n(&r["errors"])), (40, 40, 0));
        // The variants add up to the totals.
        assert_eq!(variants_sum(&done, &["accepted"]), 40);
        for status in ["queued", "sent", "delivered", "failed", "cancelled"] {
            assert_eq!(
                variants_sum(&done, &["messages", status]),
                n(&done["messages"][status]),
                "{status}"
            );
        }
        // And to what the network received: each recipient once, with the
        // text of the variant counted for it.
        let received = m.received();
        assert_eq!(received.len(), 40, "{received:?}");
        let mut per_recipient: HashMap<&str, usize> = HashMap::new();
        let mut per_variant: BTreeMap<String, u64> = BTreeMap::new();
        for r in &received {
            *per_recipient.entry(&r.to).or_default() += 1;
            let variant = if r.text.starts_with("A: your check-up is on Tue 10:30.") {
                "a"
            } else if r.text.starts_with("B: see you Tue 10:30?") {
                "b"
            } else {
                panic!("unexpected text {:?}", r.text)
            };
            *per_variant.entry(variant.into()).or_default() += 1;
        }
        assert!(per_recipient.values().all(|&c| c == 1));
        assert_eq!(per_recipient.len(), 40);
        for v in done["variants"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let got = per_variant.get(id).copied().unwrap_or(0);
            assert_eq!(n(&v["messages"]["delivered"]), got, "variant {id}");
            assert_eq!(n(&v["accepted"]), got, "variant {id}");
            // 40 fair draws: both variants are used (all in one: p = 2^-39).
            assert!(got > 0, "variant {id} never chosen");
        }
        // Each variant's metrics count the contacts it was sent to, and the
        // variants add up to the campaign's summary.
        let with_metrics = wait_until(Duration::from_secs(20), "variant metrics", || {
            let c = get(&addr, &id);
            let counted: u64 = c["variants"]
                .as_array()?
                .iter()
                .map(|v| v["metrics"]["reply_rate"]["denominator"].as_u64().unwrap_or(0))
                .sum();
            (counted == 40).then_some(c)
        });
        for v in with_metrics["variants"].as_array().unwrap() {
            let id = v["id"].as_str().unwrap();
            let sent = per_variant.get(id).copied().unwrap_or(0);
            assert_eq!(n(&v["metrics"]["reply_rate"]["denominator"]), sent, "variant {id}");
            assert_eq!(n(&v["metrics"]["messages_sent"]), sent, "variant {id}");
        }
        let (_, summary) = http(
            "GET",
            &addr,
            &format!("/v1/metrics/summary?campaign={id}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(n(&summary["reply_rate"]["denominator"]), 40, "{summary}");
        // The list shows it.
        let (status, list) = http("GET", &addr, "/v1/campaigns", Some(TOKEN), None);
        assert_eq!(status, 200);
        assert_eq!(list["items"][0]["id"], id.as_str());
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_is_an_error_per_recipient_never_a_blank() {
    let gw = daemon("missing", None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let mut to = numbers("+1555042", 30);
        to.push("12".into()); // not a number
        to.push(to[0].clone()); // listed twice
        let campaign = create(
            &addr,
            &json!({
                "name": "Names",
                "recipients": {"numbers": to},
                "variants": [
                    {"id": "named", "template": "Hi {{name}}, see you {{time}}"},
                    {"id": "plain", "template": "See you {{time}}"}
                ],
                "category": "transactional",
                "context": {"time": "Tue 10:30"}
            }),
        );
        let id = campaign["id"].as_str().unwrap().to_string();
        let done = wait_state(&addr, &id, "accepted");
        let r = &done["recipients"];
        let named = &done["variants"][0];
        let plain = &done["variants"][1];
        // No contact has a profile here, so every recipient drawn for
        // `named` is an error, none is sent a blank.
        assert_eq!(named["accepted"], 0);
        let errors = all_errors(&addr, &id);
        assert_eq!(errors.len() as u64, n(&r["errors"]));
        let missing: Vec<&Value> = errors
            .iter()
            .filter(|e| e["code"] == "missing_field")
            .collect();
        assert!(!missing.is_empty(), "no recipient drew `named`");
        for e in &missing {
            assert!(e["detail"].as_str().unwrap().contains("{{name}}"), "{e}");
            assert!(e["number"].as_str().unwrap().starts_with("+1555042"), "{e}");
        }
        let bad: Vec<&Value> = errors
            .iter()
            .filter(|e| e["code"] == "invalid_number")
            .collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0]["number"], "12");
        assert_eq!(n(&r["skipped_duplicate"]), 1);
        // Every entry is accounted for once.
        assert_eq!(n(&r["total"]), 32);
        assert_eq!(n(&r["processed"]), 32);
        assert_eq!(
            n(&r["accepted"]) + n(&r["errors"]) + n(&r["skipped_duplicate"]),
            32
        );
        assert_eq!(n(&plain["accepted"]), n(&r["accepted"]));
        assert_eq!(n(&plain["accepted"]) + missing.len() as u64, 30);
        assert_eq!(n(&done["messages"]["queued"]), n(&r["accepted"]));
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_by_tag_reaches_the_tagged_contacts_with_their_fields() {
    let gw = daemon("tagged", None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let to = numbers("+1555046", 8);
        for (i, number) in to.iter().enumerate() {
            // Six are tagged vip; four of those have a name and a field.
            let mut profile = json!({"tags": if i < 6 { vec!["vip"] } else { vec!["other"] }});
            if i < 4 {
                profile["name"] = json!(format!("Ana{i}"));
                profile["fields"] = json!({"plan": "gold"});
            }
            let path = format!("/v1/contacts/{}", number.replace('+', "%2B"));
            let (status, body) = http("PUT", &addr, &path, Some(TOKEN), Some(&profile));
            assert!(status == 200 || status == 201, "{status} {body}");
        }
        let campaign = create(
            &addr,
            &json!({
                "name": "VIP",
                "recipients": {"tag": "vip"},
                "template": "Hi {{name}}, your {{plan}} plan renews {{date}}",
                "category": "transactional",
                "context": {"date": "June 1"}
            }),
        );
        let id = campaign["id"].as_str().unwrap().to_string();
        let done = wait_state(&addr, &id, "accepted");
        let r = &done["recipients"];
        assert_eq!(
            (n(&r["total"]), n(&r["accepted"]), n(&r["errors"])),
            (6, 4, 2)
        );
        let errors = all_errors(&addr, &id);
        let mut missing: Vec<&str> = errors
            .iter()
            .map(|e| e["number"].as_str().unwrap())
            .collect();
        missing.sort();
        assert_eq!(missing, vec![to[4].as_str(), to[5].as_str()]);
        for e in &errors {
            assert_eq!(e["code"], "missing_field");
        }
        for (i, number) in to.iter().enumerate().take(4) {
            let path = format!("/v1/messages?contact={}", number.replace('+', "%2B"));
            let (status, page) = http("GET", &addr, &path, Some(TOKEN), None);
            assert_eq!(status, 200, "{page}");
            let bodies: Vec<&str> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap())
                .collect();
            assert_eq!(
                bodies,
                vec![format!("Hi Ana{i}, your gold plan renews June 1")]
            );
        }
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_and_unconsented_recipients_are_skipped_and_counted() {
    let gw = daemon("optout", None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let to = numbers("+1555043", 6);
        for number in &to[..2] {
            let (status, body) = http(
                "POST",
                &addr,
                "/v1/optouts",
                Some(TOKEN),
                Some(&json!({"number": number, "reason": "phoned"})),
            );
            assert_eq!(status, 200, "{body}");
        }
        let body = |category: &str| {
            json!({"name": category, "template": "Spring offer", "recipients": {"numbers": to},
                   "category": category})
        };
        let t = create(&addr, &body("transactional"));
        let t = wait_state(&addr, t["id"].as_str().unwrap(), "accepted");
        assert_eq!(t["recipients"]["skipped_opted_out"], 2);
        assert_eq!(t["recipients"]["accepted"], 4);
        assert_eq!(t["messages"]["queued"], 4);
        // Marketing needs recorded opt-in evidence, which nobody gave.
        let m = create(&addr, &body("marketing"));
        let m = wait_state(&addr, m["id"].as_str().unwrap(), "accepted");
        assert_eq!(m["recipients"]["skipped_opted_out"], 2);
        assert_eq!(m["recipients"]["skipped_consent_required"], 4);
        assert_eq!(m["recipients"]["accepted"], 0);
        // The opted-out contacts have no message at all.
        for number in &to[..2] {
            let path = format!("/v1/messages?contact={}", number.replace('+', "%2B"));
            let (_, page) = http("GET", &addr, &path, Some(TOKEN), None);
            assert_eq!(page["items"], json!([]), "{number}");
        }
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_accepting_and_cancels_what_waits() {
    let gw = daemon("cancel", None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
        let campaign = create(
            &addr,
            &json!({"name": "Big", "template": "Sale tomorrow", "category": "transactional",
                    "send_at": later, "recipients": {"numbers": numbers("+1555044", 3000)}}),
        );
        let id = campaign["id"].as_str().unwrap().to_string();
        let (status, cancelling) = http(
            "POST",
            &addr,
            &format!("/v1/campaigns/{id}/cancel"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 202, "{cancelling}");
        assert!(
            cancelling["state"] == "cancelling" || cancelling["state"] == "cancelled",
            "{cancelling}"
        );
        let done = wait_state(&addr, &id, "cancelled");
        let accepted = n(&done["recipients"]["accepted"]);
        assert_eq!(n(&done["messages"]["cancelled"]), accepted);
        assert_eq!(done["messages"]["queued"], 0);
        assert!(n(&done["recipients"]["processed"]) <= 3000);
        // Nothing of it waits in the outbox.
        let (_, page) = http(
            "GET",
            &addr,
            "/v1/messages?status=scheduled",
            Some(TOKEN),
            None,
        );
        assert_eq!(page["items"], json!([]));
        // The task moved on (a later campaign is accepted); the cancelled one
        // took no recipient since.
        let next = create(
            &addr,
            &json!({"name": "Next", "template": "Hi", "category": "transactional",
                    "recipients": {"numbers": ["+15550449999"]}}),
        );
        wait_state(&addr, next["id"].as_str().unwrap(), "accepted");
        let after = get(&addr, &id);
        assert_eq!(after["recipients"], done["recipients"]);
        assert_eq!(after["state"], "cancelled");
        // Cancelling again changes nothing; an unknown campaign is 404.
        let (status, again) = http(
            "POST",
            &addr,
            &format!("/v1/campaigns/{id}/cancel"),
            Some(TOKEN),
            None,
        );
        assert_eq!((status, &again["state"]), (202, &json!("cancelled")));
        let (status, problem) = http(
            "POST",
            &addr,
            "/v1/campaigns/cmp_nope/cancel",
            Some(TOKEN),
            None,
        );
        assert_eq!((status, &problem["code"]), (404, &json!("not_found")));
    })
    .await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_campaigns_are_refused_with_their_code_and_store_nothing() {
    let gw = daemon("invalid", None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let good = json!({"name": "Ok", "template": "Hi {{time}}", "category": "transactional",
                          "context": {"time": "10:00"}, "recipients": {"numbers": ["+15550450001"]}});
        let with = |key: &str, value: Value| {
            let mut body = good.clone();
            body[key] = value;
            body
        };
        let cases = [
            (with("template", json!("Hi {{time")), "invalid_template"),
            (with("template", json!("Hi {{a b}}")), "invalid_template"),
            (with("variants", json!([])), "invalid_variants"),
            (with("variants", json!([{"id": "a"}, {"id": "a"}])), "invalid_variants"),
            (with("variants", json!([{"id": "a", "weight": 0}])), "invalid_weights"),
            (with("variants", json!([{"id": "a", "template": "{{}}"}])), "invalid_template"),
            (with("category", json!("promo")), "invalid_category"),
            (with("category", Value::Null), "invalid_category"),
            (with("flow", json!("survey")), "invalid_flow"),
            (with("context", json!("x")), "invalid_context"),
            (with("send_at", json!("tomorrow")), "invalid_send_at"),
            (with("name", json!("")), "invalid_name"),
            (with("recipients", json!({"numbers": []})), "invalid_recipients"),
            (with("recipients", json!({})), "invalid_recipients"),
            (
                with("recipients", json!({"numbers": ["+15550450001"], "tag": "vip"})),
                "invalid_recipients",
            ),
            // The flow checks its context as a thread would start it.
            (with("flow", json!("payment")), "invalid_flow_context"),
            (with("colour", json!("red")), "invalid_request"),
        ];
        for (body, code) in cases {
            let (status, problem) = http("POST", &addr, "/v1/campaigns", Some(TOKEN), Some(&body));
            assert_eq!((status, problem["code"].as_str()), (422, Some(code)), "{body}");
        }
        let (_, list) = http("GET", &addr, "/v1/campaigns", Some(TOKEN), None);
        assert_eq!(list["items"], json!([]));
        let (status, _) = http("GET", &addr, "/v1/campaigns/cmp_nope", Some(TOKEN), None);
        assert_eq!(status, 404);
        // The good one is taken.
        let c = create(&addr, &good);
        wait_state(&addr, c["id"].as_str().unwrap(), "accepted");
    })
    .await;
    gw.stop().await;
}

/// Start `smsgate run` on `config`; its log goes to `log`.
fn start(config: &Path, log: &Path) -> ChildDaemon {
    let child = Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["run", "--config"])
        .arg(config)
        .env("SMSGATE_API_TOKEN", TOKEN)
        .env("SMSGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    ChildDaemon(child)
}

fn wait_api(addr: &str) {
    wait_until(Duration::from_secs(30), "the API", || {
        std::net::TcpStream::connect(addr).ok()?;
        (http("GET", addr, "/healthz", None, None).0 == 200).then_some(())
    });
}

/// Every stored message of `campaign`, by recipient.
fn messages_by_recipient(
    store: &Store,
    campaign: &str,
) -> HashMap<String, Vec<smsgate::store::Message>> {
    let mut out: HashMap<String, Vec<smsgate::store::Message>> = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list(&MessageFilter::default(), cursor.as_deref(), 500)
            .unwrap();
        for m in page.items {
            if m.campaign.as_deref() == Some(campaign) {
                out.entry(m.to.clone()).or_default().push(m);
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// How many times each recipient is on the simulated network; none twice.
fn on_network(modem: &SimHandle) -> HashMap<String, usize> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for r in modem.received() {
        *count.entry(r.to).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:?}");
    count
}

/// SIGKILL three times while a large campaign is being accepted and sent
/// (a simulated modem at 115200 baud), each time once the daemon has
/// recorded at least one more batch; after each kill the store holds
/// exactly the messages of the recorded batches, nobody has two, and the
/// network received nobody twice. The last restart finishes the campaign:
/// every recipient has exactly one message, of the variant drawn for it,
/// and the network still received nobody twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_accepting_resumes_and_sends_nobody_two() {
    const RECIPIENTS: usize = 8000;
    const KILLS: usize = 3;
    let modem = {
        let mut c = SimConfig::new(Personality::Sim800);
        c.link = Some(temp("kill.tty"));
        c.own_number = "+15550460000".into();
        c.baud = Some(115_200);
        c.status_report_delay = Duration::from_millis(20);
        c.noise_interval = Some(Duration::ZERO);
        Simulator::start(c).unwrap()
    };
    let db = temp("kill.db");
    let _ = std::fs::remove_dir_all(&db);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = temp("kill.toml");
    std::fs::write(&config, config_text(&db, &addr, Some(&modem))).unwrap();
    let log = temp("kill.log");
    let m = modem.clone();
    blocking(move || {
        let mut daemon = start(&config, &log);
        wait_api(&addr);
        let to = numbers("+1555046", RECIPIENTS);
        let campaign = create(
            &addr,
            &json!({"name": "Crash", "recipients": {"numbers": to},
                    "variants": [{"id": "a", "template": "A {{time}}", "weight": 2},
                                 {"id": "b", "template": "B {{time}}", "weight": 1}],
                    "category": "transactional", "flow": "appointment",
                    "context": {"time": "Tue 10:30", "slots": ["Wed 9:00"]}}),
        );
        let id = campaign["id"].as_str().unwrap().to_string();
        let mut recorded = 0;
        for kill in 1..=KILLS {
            // SIGKILL once the task has made another batch durable. The
            // API shows a batch once stored; the task flushes a batch while
            // it stores the next, and stores a third only after the first
            // is flushed, so three batches shown mean one more on disk.
            wait_until(Duration::from_secs(60), "another durable batch", || {
                let c = get(&addr, &id);
                (n(&c["recipients"]["processed"]) > recorded + 2 * BATCH as u64).then_some(())
            });
            drop(daemon); // SIGKILL, reaped

            // What the killed daemon left: part of the list, and exactly
            // the messages of the batches it recorded (a batch's messages
            // and its cursor are one transaction).
            let store = common::open_store(&db, 8);
            let record = store.campaign(&id).unwrap().unwrap();
            let by_recipient = messages_by_recipient(&store, &id);
            drop(store);
            let p = &record.progress;
            assert!(
                p.processed < RECIPIENTS as u64,
                "kill {kill} landed after the last batch ({} of {RECIPIENTS}); make the campaign larger",
                p.processed
            );
            assert!(p.processed > recorded);
            assert_eq!(by_recipient.len() as u64, p.accepted);
            assert!(by_recipient.values().all(|m| m.len() == 1));
            let network = on_network(&m);
            println!(
                "kill {kill}: {} of {RECIPIENTS} recorded, {} on the network",
                p.processed,
                network.len()
            );
            recorded = p.processed;
            // Restarted on the same store, it goes on by itself.
            daemon = start(&config, &log);
            wait_api(&addr);
        }
        let done = wait_state(&addr, &id, "accepted");
        assert_eq!(n(&done["recipients"]["accepted"]), RECIPIENTS as u64);
        assert_eq!(variants_sum(&done, &["accepted"]), RECIPIENTS as u64);
        // Killed again: everything it answered for is durable; the store is
        // read directly.
        drop(daemon);
        let store = common::open_store(&db, 8);
        let by_recipient = messages_by_recipient(&store, &id);
        drop(store);
        let network = on_network(&m);
        assert_eq!(by_recipient.len(), RECIPIENTS);
        let weights = [2, 1];
        for number in &to {
            let messages = by_recipient
                .get(number)
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert_eq!(messages.len(), 1, "{number}: {} messages", messages.len());
            let m = &messages[0];
            // The variant recorded is the one drawn for this recipient, and
            // the text is that variant's.
            let variant =
                ["a", "b"][smsgate::conversation::campaigns::choose_variant(&id, number, &weights)];
            assert_eq!(m.variant.as_deref(), Some(variant));
            assert_eq!(m.body, format!("{} Tue 10:30", variant.to_uppercase()));
            assert_eq!(m.flow.as_deref(), Some("appointment"));
            assert_eq!(m.context.as_ref().unwrap()["slots"], json!(["Wed 9:00"]));
            // No per-recipient key: a resume depends on none (keys expire).
            assert_eq!(m.idempotency_key, None);
            // What the store calls sent reached the network once.
            if matches!(m.status, MessageStatus::Sent | MessageStatus::Delivered) {
                assert_eq!(network.get(number), Some(&1), "{number} is {:?}", m.status);
            }
        }
        // Nothing reached the network that is not a recipient's message.
        assert!(network.keys().all(|to| by_recipient.contains_key(to)));
        assert!(!network.is_empty(), "the modem sent nothing");
        println!("{} of {RECIPIENTS} on the network", network.len());
        let _ = std::fs::remove_dir_all(&db);
        let _ = std::fs::remove_file(&config);
        let _ = std::fs::remove_file(&log);
    })
    .await;
    modem.shutdown().await;
}
