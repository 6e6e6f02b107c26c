//! Threads as a team inbox, end to end: inbound messages stored as the modem
//! actors store them, the conversation engine (with a test decider and an
//! injected clock) applying them, and the API (`router(state).oneshot`)
//! reading and changing threads; one test runs the daemon with a simulated
//! modem.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use common::rig::Rig;
use common::web::TestClock;
use smsgate::api::{ApiToken, Scope};
use smsgate::conversation::engine::{Decider, Engine, MetricsWiring};
use smsgate::conversation::metrics::{Counting, Histogram};
use smsgate::conversation::{Action, Priority};
use smsgate::store::{InboundPart, Store};
use smsgate::webhook::reply::Replies;

const TOKEN: &str = "inbox-token";

/// The API over a store of its own (tests/common/rig.rs), and an engine.
struct Inbox {
    rig: Rig,
    store: Store,
    engine: Engine,
    clock: Arc<TestClock>,
}

fn inbox(decider: Decider) -> Inbox {
    let mut config = smsgate::config::Config::default();
    config.sms.status_reports = false;
    let tokens = vec![ApiToken::from_secret("ops", TOKEN, vec![Scope::Admin])];
    let rig = Rig::new("inbox-test", &config, tokens);
    let store = rig.store.clone();
    let policy = rig.state.policy.clone();
    store.set_reactor(policy.reactor(), policy.per_number());
    let clock = Arc::new(TestClock::at(Utc::now()));
    let engine = Engine::new(
        store.clone(),
        policy,
        Some(rig.state.dispatcher.clone()),
        rig.state.sms.clone(),
    )
    .with_decider(decider)
    .with_clock(clock.clone());
    Inbox {
        rig,
        store,
        engine,
        clock,
    }
}

fn path_of(contact: &str) -> String {
    contact.replace('+', "%2B")
}

impl Inbox {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let reply = self
            .rig
            .call(method, uri, Some(TOKEN), body.as_ref(), &[])
            .await;
        (reply.status, reply.json())
    }

    /// Store an inbound text as a modem actor does, then let the engine
    /// apply everything up to it.
    async fn inbound(&self, from: &str, text: &str) {
        static N: AtomicU64 = AtomicU64::new(0);
        let pdu = format!("pdu-{}", N.fetch_add(1, Ordering::Relaxed));
        self.store
            .receive(InboundPart {
                modem: "m1",
                own_number: "+15550000000",
                raw_pdu: pdu.as_bytes(),
                sender: from,
                text,
                alphabet: "gsm7",
                network_time: Utc::now(),
                concat: None,
                error: None,
            })
            .await
            .unwrap();
        self.engine.catch_up().await.unwrap();
    }

    async fn thread(&self, contact: &str) -> Value {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/threads/{}?limit=100", path_of(contact)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn inbox(&self, query: &str) -> Vec<String> {
        let (status, body) = self
            .call(Method::GET, &format!("/v1/inbox{query}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["contact"].as_str().unwrap().to_string())
            .collect()
    }

    async fn reply(&self, contact: &str, text: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/threads/{}/reply", path_of(contact)),
            Some(json!({"body": text, "author": "ana"})),
        )
        .await
    }
}

fn nothing() -> Decider {
    Arc::new(|_| Vec::new())
}

/// What each timeline item is, in order: message bodies, note texts,
/// activity names.
fn timeline(thread: &Value) -> Vec<String> {
    thread["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match i["kind"].as_str().unwrap() {
            "message" => format!(
                "{}: {}",
                i["direction"].as_str().unwrap(),
                i["body"].as_str().unwrap()
            ),
            "note" => format!("note: {}", i["text"].as_str().unwrap()),
            "activity" => format!("activity: {}", i["activity"].as_str().unwrap()),
            other => panic!("kind {other}"),
        })
        .collect()
}

#[tokio::test]
async fn inbound_opens_a_reply_waits_and_the_next_inbound_reopens() {
    let g = inbox(nothing());
    let c = "+15551110001";
    g.inbound(c, "Can I move my appointment?").await;
    let thread = g.thread(c).await;
    assert_eq!(thread["thread"]["state"], "open");
    assert!(thread["thread"]["waiting_since"].is_string());
    let (status, body) = g.call(Method::GET, "/v1/inbox", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["contact"], c);
    assert!(body["items"][0]["wait_seconds"].as_i64().unwrap() >= 0);

    let (status, reply) = g.reply(c, "Sure, which day suits you?").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["category"], "conversational");
    // The engine ends the wait when it reads the reply's acceptance.
    assert_eq!(g.thread(c).await["thread"]["state"], "open");
    g.engine.catch_up().await.unwrap();
    let thread = g.thread(c).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    assert_eq!(thread["thread"]["waiting_since"], Value::Null);
    assert!(g.inbox("").await.is_empty());
    assert_eq!(g.inbox("?state=waiting_on_customer").await, [c]);
    let stored = g.store.get(reply["id"].as_str().unwrap()).unwrap().unwrap();
    assert_eq!(stored.author.as_deref(), Some("ana"));

    g.inbound(c, "Thursday please").await;
    let thread = g.thread(c).await;
    assert_eq!(thread["thread"]["state"], "open");
    assert_eq!(g.inbox("").await, [c]);
    assert_eq!(
        timeline(&thread),
        [
            "inbound: Can I move my appointment?",
            "outbound: Sure, which day suits you?",
            "activity: state_changed",
            "inbound: Thursday please",
            "activity: state_changed",
        ]
    );
    let items = thread["items"].as_array().unwrap();
    assert_eq!(items[1]["author"], "ana");
    assert_eq!(items[2]["author"], "ana");
    assert_eq!(items[4]["author"], "automation");
    assert_eq!(items[4]["detail"]["to"], "open");
}

#[tokio::test]
async fn notes_assignment_state_and_replies_in_causal_order_with_stop_before_its_confirmation() {
    let g = inbox(nothing());
    let c = "+15551110002";
    g.inbound(c, "My bill is wrong").await;
    let (status, note) = g
        .call(
            Method::POST,
            &format!("/v1/threads/{}/notes", path_of(c)),
            Some(json!({"author": "ana", "text": "Checking with billing"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["kind"], "note");
    let (status, thread) = g
        .call(
            Method::PUT,
            &format!("/v1/threads/{}/assignment", path_of(c)),
            Some(json!({"team": "billing", "assignee": "bo", "author": "ana"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["team"], "billing");
    assert_eq!(g.reply(c, "We are on it.").await.0, StatusCode::ACCEPTED);
    g.engine.catch_up().await.unwrap();
    let (status, _) = g
        .call(
            Method::PUT,
            &format!("/v1/threads/{}/state", path_of(c)),
            Some(json!({"state": "closed", "author": "bo"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    g.inbound(c, "STOP").await;
    let thread = g.thread(c).await;
    let lines = timeline(&thread);
    assert_eq!(
        lines[..6],
        [
            "inbound: My bill is wrong",
            "note: Checking with billing",
            "activity: assigned",
            "outbound: We are on it.",
            "activity: state_changed",
            "activity: state_changed",
        ]
    );
    assert_eq!(lines[6], "inbound: STOP");
    assert!(
        lines[7].starts_with("outbound: ") && lines[7].contains("unsubscribed"),
        "{lines:?}"
    );
    assert_eq!(
        lines.len(),
        8,
        "a STOP gets no answer but the confirmation: {lines:?}"
    );
    // STOP and its confirmation share a millisecond: the order is causal.
    let items = thread["items"].as_array().unwrap();
    let ms = |i: &Value| {
        DateTime::parse_from_rfc3339(i["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(ms(&items[6]), ms(&items[7]));
    assert_eq!(
        thread["thread"]["state"], "closed",
        "a consent keyword does not reopen the thread"
    );
    // The events of the changes, each with the thread and what changed.
    let (_, events) = g.call(Method::GET, "/v1/events?limit=100", None).await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .filter(|k| k.starts_with("thread."))
        .collect();
    assert_eq!(
        kinds,
        [
            "thread.note_added",
            "thread.assigned",
            "thread.state_changed",
            "thread.state_changed"
        ]
    );
    let assigned = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "thread.assigned")
        .unwrap();
    assert_eq!(assigned["data"]["contact"], c);
    assert_eq!(assigned["data"]["assignee"], "bo");
    assert_eq!(assigned["data"]["change"]["previous_team"], Value::Null);
}

#[tokio::test]
async fn the_inbox_puts_urgent_first_then_the_oldest_wait_and_filters() {
    // The test decider marks texts with "urgent" urgent and routes texts
    // with "bill" to billing.
    let decider: Decider = Arc::new(|input| {
        let mut actions = Vec::new();
        if input.text.contains("urgent") {
            actions.push(Action::SetPriority(Priority::Urgent));
        }
        if input.text.contains("bill") {
            actions.push(Action::Route("billing".into()));
        }
        actions
    });
    let g = inbox(decider);
    let (a, b, c, d) = (
        "+15551110011",
        "+15551110012",
        "+15551110013",
        "+15551110014",
    );
    g.inbound(a, "question about my bill").await;
    g.inbound(b, "hello").await;
    g.inbound(c, "urgent: bill doubled").await;
    g.inbound(d, "urgent please call").await;
    assert_eq!(g.inbox("").await, [c, d, a, b]);
    assert_eq!(g.inbox("?team=billing").await, [c, a]);
    assert_eq!(g.inbox("?priority=urgent").await, [c, d]);
    assert_eq!(g.inbox("?priority=normal&team=billing").await, [a]);
    // Pages of one follow the same order.
    let mut seen = Vec::new();
    let mut uri = "/v1/inbox?limit=1".to_string();
    loop {
        let (_, page) = g.call(Method::GET, &uri, None).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["contact"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/inbox?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, [c, d, a, b]);
    let (status, _) = g
        .call(
            Method::PUT,
            &format!("/v1/threads/{}/assignment", path_of(b)),
            Some(json!({"team": "support", "assignee": "cy"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(g.inbox("?assignee=cy").await, [b]);
    assert_eq!(
        g.inbox("?assignee=cy&team=billing").await,
        Vec::<String>::new()
    );
    // Unassigning takes it out of the person's inbox.
    g.call(
        Method::PUT,
        &format!("/v1/threads/{}/assignment", path_of(b)),
        Some(json!({"team": null, "assignee": null})),
    )
    .await;
    assert!(g.inbox("?assignee=cy").await.is_empty());
    assert_eq!(
        g.call(Method::GET, "/v1/inbox?state=later", None).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn snooze_wakes_on_the_injected_clock_and_an_sla_breach_is_emitted_once() {
    let g = inbox(nothing());
    let c = "+15551110021";
    let start = Utc::now();
    g.clock.set(start);
    let engine = g
        .engine
        .clone()
        .with_sla(Arc::new(|_, at| Some(at + chrono::Duration::minutes(10))));
    g.store
        .receive(InboundPart {
            modem: "m1",
            own_number: "+15550000000",
            raw_pdu: b"sla-1",
            sender: c,
            text: "hello?",
            alphabet: "gsm7",
            network_time: start,
            concat: None,
            error: None,
        })
        .await
        .unwrap();
    engine.catch_up().await.unwrap();
    let due = start + chrono::Duration::minutes(10);
    let (_, page) = g.call(Method::GET, "/v1/inbox", None).await;
    assert_eq!(
        DateTime::parse_from_rfc3339(page["items"][0]["sla_due"].as_str().unwrap()).unwrap(),
        due
    );
    g.clock.set(due - chrono::Duration::seconds(1));
    assert_eq!(engine.timers().await.unwrap(), 0);
    g.clock.set(due);
    assert_eq!(engine.timers().await.unwrap(), 1);
    g.clock.set(due + chrono::Duration::hours(1));
    assert_eq!(engine.timers().await.unwrap(), 0);
    let breaches = |events: &Value| {
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "thread.sla_breached")
            .count()
    };
    let (_, events) = g.call(Method::GET, "/v1/events?limit=100", None).await;
    assert_eq!(breaches(&events), 1);
    assert_eq!(g.thread(c).await["thread"]["sla_breached"], true);

    // Snooze: refused without a future time; out of the inbox until then.
    let state_uri = format!("/v1/threads/{}/state", path_of(c));
    let past = (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let (status, problem) = g
        .call(
            Method::PUT,
            &state_uri,
            Some(json!({"state": "snoozed", "until": past})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["code"], "invalid_until");
    let (status, problem) = g
        .call(Method::PUT, &state_uri, Some(json!({"state": "snoozed"})))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_until"))
    );
    let until = Utc::now() + chrono::Duration::days(2);
    let (status, thread) = g
        .call(
            Method::PUT,
            &state_uri,
            Some(json!({"state": "snoozed", "until": until.to_rfc3339(), "author": "ana"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["state"], "snoozed");
    assert_eq!(thread["sla_breached"], false, "the wait ended");
    assert!(g.inbox("").await.is_empty());
    assert_eq!(g.inbox("?state=snoozed").await, [c]);
    g.clock.set(until - chrono::Duration::seconds(1));
    assert_eq!(engine.timers().await.unwrap(), 0);
    g.clock.set(until);
    assert_eq!(engine.timers().await.unwrap(), 1);
    let woken = g.thread(c).await;
    assert_eq!(woken["thread"]["state"], "open");
    assert_eq!(g.inbox("").await, [c]);
    // Woken, it waits on us again: from the wake, with the SLA clock.
    let time = |v: &Value| DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(time(&woken["thread"]["waiting_since"]), until);
    let due = until + chrono::Duration::minutes(10);
    assert_eq!(time(&woken["thread"]["sla_due"]), due);
    g.clock.set(due - chrono::Duration::seconds(1));
    assert_eq!(engine.timers().await.unwrap(), 0);
    g.clock.set(due);
    assert_eq!(engine.timers().await.unwrap(), 1);
    let (_, events) = g.call(Method::GET, "/v1/events?limit=100", None).await;
    assert_eq!(breaches(&events), 2, "the woken wait breached once");
}

#[tokio::test]
async fn a_flow_starts_at_accept_and_stop_leaves_it_with_only_the_confirmation() {
    // The decider answers in the flow (as the flows part will).
    let decider: Decider = Arc::new(|input| match input.flow {
        Some(f) if f.name == "appointment" && input.text.trim() == "C" => vec![
            Action::Outcome {
                name: "appointment_confirmed".into(),
                value: None,
            },
            Action::Reply("Confirmed, see you then.".into()),
            Action::Flow(None),
            Action::Close,
        ],
        _ => vec![Action::Reply("A person will get back to you.".into())],
    });
    let g = inbox(decider);
    let (yes, stop) = ("+15551110031", "+15551110032");
    for to in [yes, stop] {
        let (status, body) = g
            .call(
                Method::POST,
                "/v1/messages",
                Some(json!({"to": to, "body": "Appointment Tue 10:00. Reply C to confirm",
                    "flow": "appointment", "context": {"time": "Tue 10:00", "slots": ["Wed 9:00", "Thu 15:00"]}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let thread = g.thread(to).await;
        assert_eq!(thread["thread"]["flow"]["name"], "appointment");
        assert_eq!(thread["thread"]["flow"]["started_by"], body["id"]);
        assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    }
    g.inbound(yes, "C").await;
    let thread = g.thread(yes).await;
    assert_eq!(thread["thread"]["state"], "closed");
    assert_eq!(thread["thread"]["flow"], Value::Null);
    assert_eq!(
        thread["thread"]["outcomes"][0]["name"],
        "appointment_confirmed"
    );
    assert_eq!(
        timeline(&thread)
            .iter()
            .filter(|l| l.starts_with("outbound: Confirmed"))
            .count(),
        1
    );

    g.inbound(stop, "STOP").await;
    let thread = g.thread(stop).await;
    assert_eq!(thread["thread"]["flow"], Value::Null);
    let outbound: Vec<String> = timeline(&thread)
        .into_iter()
        .filter(|l| l.starts_with("outbound: "))
        .collect();
    assert_eq!(
        outbound.len(),
        2,
        "the flow's first text and the confirmation: {outbound:?}"
    );
    assert!(outbound[1].contains("unsubscribed"));
    assert!(timeline(&thread).contains(&"activity: flow_left".to_string()));

    // Opted out: a person's reply is refused as POST /v1/messages refuses it.
    let (status, problem) = g.reply(stop, "Sorry to see you go").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["code"], "recipient_opted_out");

    // Flows are named; a context is an object, only with a flow.
    for (body, code) in [
        (
            json!({"to": yes, "body": "x", "flow": "survey"}),
            "invalid_flow",
        ),
        (
            json!({"to": yes, "body": "x", "flow": "payment", "context": [1]}),
            "invalid_context",
        ),
        (
            json!({"to": yes, "body": "x", "context": {"url": "https://pay"}}),
            "invalid_context",
        ),
    ] {
        let (status, problem) = g.call(Method::POST, "/v1/messages", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["code"], code);
    }
}

#[tokio::test]
async fn payment_completed_from_billing_closes_the_payment_flow() {
    let g = inbox(nothing());
    let c = "+15551110041";
    let (status, sent) = g
        .call(
            Method::POST,
            "/v1/messages",
            Some(
                json!({"to": c, "body": "Your invoice: reply 1 to pay", "flow": "payment",
                "context": {"url": "https://pay.example/i/1"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let uri = format!("/v1/threads/{}/outcomes", path_of(c));
    let (status, problem) = g
        .call(
            Method::POST,
            &uri,
            Some(json!({"outcome": "paid in full!"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_outcome"))
    );
    let (status, thread) = g
        .call(
            Method::POST,
            &uri,
            Some(json!({"outcome": "payment_completed", "value": 120.5, "note": "card", "author": "billing"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{thread}");
    assert_eq!(thread["state"], "closed");
    assert_eq!(thread["flow"], Value::Null);
    assert_eq!(thread["outcomes"][0]["name"], "payment_completed");
    assert_eq!(thread["outcomes"][0]["value"], "120.5");
    assert_eq!(thread["outcomes"][0]["message_id"], sent["id"]);
    // A custom outcome on a thread in no flow.
    let (status, thread) = g
        .call(
            Method::POST,
            &uri,
            Some(json!({"outcome": "warranty_sold"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(thread["outcomes"][1]["name"], "warranty_sold");
}

#[tokio::test]
async fn unknown_threads_are_404_and_a_contact_with_only_messages_has_a_default_thread() {
    let g = inbox(nothing());
    let (status, _) = g
        .call(Method::GET, "/v1/threads/%2B15551119999", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = g
        .call(
            Method::POST,
            "/v1/threads/%2B15551119999/notes",
            Some(json!({"author": "ana", "text": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let c = "+15551110051";
    let (status, _) = g
        .call(
            Method::POST,
            "/v1/messages",
            Some(json!({"to": c, "body": "Your order shipped"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let thread = g.thread(c).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    assert_eq!(timeline(&thread), ["outbound: Your order shipped"]);
    let (status, problem) = g
        .call(
            Method::POST,
            &format!("/v1/threads/{}/notes", path_of(c)),
            Some(json!({"author": "", "text": "x"})),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_request"))
    );
}

/// The daemon runs the engine: an inbound text through a simulated modem
/// opens a thread in the inbox; a reply through the thread reaches the
/// handset and moves the thread out of the inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_daemon_and_a_simulated_modem() {
    use smsgate::sim::{Personality, SimConfig, Simulator};
    let temp = |name: &str| {
        std::env::temp_dir().join(format!("smsgate-threads-{}-{name}", std::process::id()))
    };
    let mut sim = SimConfig::new(Personality::Sim800);
    sim.link = Some(temp("m1.tty"));
    sim.own_number = "+15550400000".into();
    sim.noise_interval = Some(Duration::ZERO);
    let modem = Simulator::start(sim).unwrap();
    let db = temp("db");
    let _ = std::fs::remove_dir_all(&db);
    let config = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[[modem]]\nid = \"m1\"\nport = \"{}\"\n",
        db.display(),
        modem.link().display()
    );
    let gw = common::InProcessDaemon::start(&config, TOKEN).await;
    gw.wait_ready().await;
    let addr = gw.addr.clone();
    let customer = "+15550400001";
    let m = modem.clone();
    tokio::task::spawn_blocking(move || {
        m.inject(customer, "Is the shop open Sunday?").unwrap();
        let inbox = common::wait_until(Duration::from_secs(20), "the thread in the inbox", || {
            let (_, page) = common::http("GET", &addr, "/v1/inbox", Some(TOKEN), None);
            (page["items"][0]["contact"] == customer).then_some(page)
        });
        assert_eq!(inbox["items"][0]["state"], "open");
        let path = format!("/v1/threads/{}/reply", path_of(customer));
        let (status, reply) = common::http(
            "POST",
            &addr,
            &path,
            Some(TOKEN),
            Some(&json!({"body": "Yes, 10 to 4.", "author": "ana"})),
        );
        assert_eq!(status, 202, "{reply}");
        common::wait_until(Duration::from_secs(20), "the reply at the handset", || {
            m.received()
                .into_iter()
                .find(|r| r.to == customer && r.text == "Yes, 10 to 4.")
        });
        common::wait_until(Duration::from_secs(20), "the inbox empty", || {
            let (_, page) = common::http("GET", &addr, "/v1/inbox", Some(TOKEN), None);
            (page["items"] == json!([])).then_some(())
        });
        let (_, thread) = common::http(
            "GET",
            &addr,
            &format!("/v1/threads/{}", path_of(customer)),
            Some(TOKEN),
            None,
        );
        assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    })
    .await
    .unwrap();
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&db);
}

/// The engine of `g` counting the metrics (no teams: no business hours).
fn counting(g: &Inbox) -> Engine {
    let config = smsgate::conversation::settings::ConversationConfig::default();
    g.engine.clone().with_metrics(MetricsWiring {
        counting: Counting::from_config(&config),
        costs: Default::default(),
        teams: Vec::new(),
    })
}

impl Inbox {
    /// Store an inbound text as a modem actor does, the engine not run.
    async fn arrives(&self, from: &str, text: &str) {
        static N: AtomicU64 = AtomicU64::new(0);
        let pdu = format!("arrives-{}", N.fetch_add(1, Ordering::Relaxed));
        self.store
            .receive(InboundPart {
                modem: "m1",
                own_number: "+15550000000",
                raw_pdu: pdu.as_bytes(),
                sender: from,
                text,
                alphabet: "gsm7",
                network_time: Utc::now(),
                concat: None,
                error: None,
            })
            .await
            .unwrap();
    }

    /// A webhook receiver answering the contact's last `message.received`
    /// with `{"reply": text}` (the webhook worker's reply by response).
    async fn webhook_reply(&self, contact: &str, text: &str) {
        let event = self
            .store
            .events_from(0, 1_000)
            .unwrap()
            .into_iter()
            .rev()
            .find(|(_, e)| e.kind == "message.received" && e.data["contact"] == contact)
            .map(|(_, e)| e)
            .unwrap();
        let replies = Replies {
            store: self.store.clone(),
            dispatcher: self.rig.state.dispatcher.clone(),
            sms: self.rig.state.sms.clone(),
            policy: self.rig.state.policy.clone(),
        };
        replies.send("crm", &event, text).await.unwrap();
    }

    async fn summary(&self, day: DateTime<Utc>) -> Value {
        let from = day.date_naive();
        let to = from.succ_opt().unwrap();
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/v1/metrics/summary?from={from}&to={to}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

/// A time after every real "now" of the test (so the injected clock, not
/// the store's arrival times, places the engine's changes), whole seconds.
fn later_than_now() -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::hours(1);
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

fn time_of(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_persons_first_response_counts_from_the_inbound_that_automation_answered_first() {
    // Automation answers "hours?" at once; nothing else.
    let decider: Decider = Arc::new(|input| {
        if input.text.contains("hours") {
            vec![Action::Reply("We are open 9 to 5.".into())]
        } else {
            Vec::new()
        }
    });
    let g = inbox(decider);
    let engine = counting(&g);
    let (a, b) = ("+15551110061", "+15551110062");
    let t0 = later_than_now();

    // A: a webhook receiver's reply by response a second after the text
    // (automation: a program answering the delivery), a person's reply ten
    // minutes after it.
    g.clock.set(t0);
    g.arrives(a, "Is my order on its way?").await;
    engine.catch_up().await.unwrap();
    g.clock.set(t0 + chrono::Duration::seconds(1));
    g.webhook_reply(a, "Tracking: https://track.example/1")
        .await;
    engine.catch_up().await.unwrap();
    let thread = g.thread(a).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    assert_eq!(thread["thread"]["waiting_since"], Value::Null);
    assert_eq!(time_of(&thread["thread"]["person_waiting_since"]), t0);
    // The activities (on the injected clock, an hour ahead of the
    // messages' real times: only their own order is compared).
    let activities = |thread: &Value| -> Vec<Value> {
        thread["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "activity")
            .cloned()
            .collect()
    };
    let answered = activities(&thread);
    assert_eq!(answered.len(), 1, "{thread}");
    assert_eq!(answered[0]["activity"], "state_changed");
    assert_eq!(answered[0]["author"], "webhook");
    g.clock.set(t0 + chrono::Duration::minutes(10));
    let (status, _) = g.reply(a, "Hi, Ana here: it ships today.").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    engine.catch_up().await.unwrap();
    let thread = g.thread(a).await;
    assert_eq!(thread["thread"]["person_waiting_since"], Value::Null);
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    let answered = activities(&thread);
    assert_eq!(answered.len(), 2, "{thread}");
    let responded = &answered[1];
    assert_eq!(responded["activity"], "responded");
    assert_eq!(responded["author"], "ana");
    assert_eq!(time_of(&responded["detail"]["person_waited_from"]), t0);

    // B: the engine's own automation answers at once; a person ten minutes
    // later.
    g.clock.set(t0);
    g.arrives(b, "What are your hours?").await;
    engine.catch_up().await.unwrap();
    assert_eq!(g.thread(b).await["thread"]["state"], "waiting_on_customer");
    g.clock.set(t0 + chrono::Duration::minutes(10));
    g.reply(b, "Also open Saturdays!").await;
    engine.catch_up().await.unwrap();

    // Overall: A's 1 s and B's 0 s, each wait once; by a person: 600 s
    // each, though automation answered both first.
    let summary = g.summary(t0).await;
    let ttfr = &summary["time_to_first_response"];
    assert_eq!(ttfr["overall"]["count"], 2, "{summary}");
    assert_eq!(ttfr["overall"]["median_s"], 0, "{summary}");
    assert_eq!(ttfr["overall"]["p90_s"], 1, "{summary}");
    let six_minutes = Histogram::value(Histogram::bucket(600));
    assert_eq!(ttfr["person"]["overall"]["count"], 2, "{summary}");
    assert_eq!(
        ttfr["person"]["overall"]["median_s"], six_minutes,
        "{summary}"
    );
    assert_eq!(ttfr["person"]["overall"]["p90_s"], six_minutes, "{summary}");
}

/// Automation answers two waits before a person answers: the overall time
/// to first response counts each of the two waits once (the person's
/// answer ends no wait of those), the person's counts one, from the first.
#[tokio::test]
async fn a_persons_answer_after_two_automated_ones_adds_no_overall_first_response() {
    let decider: Decider = Arc::new(|input| {
        if input.text.contains("hours") {
            vec![Action::Reply("We are open 9 to 5.".into())]
        } else {
            Vec::new()
        }
    });
    let g = inbox(decider);
    let engine = counting(&g);
    let c = "+15551110063";
    let t0 = later_than_now();
    g.clock.set(t0);
    g.arrives(c, "What are your hours?").await;
    engine.catch_up().await.unwrap();
    g.clock.set(t0 + chrono::Duration::minutes(1));
    g.arrives(c, "And your hours on Sunday?").await;
    engine.catch_up().await.unwrap();
    let thread = g.thread(c).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer", "{thread}");
    assert_eq!(time_of(&thread["thread"]["person_waiting_since"]), t0);
    g.clock.set(t0 + chrono::Duration::minutes(10));
    let (status, _) = g.reply(c, "Closed on Sundays, sorry!").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    engine.catch_up().await.unwrap();

    let summary = g.summary(t0).await;
    let ttfr = &summary["time_to_first_response"];
    assert_eq!(ttfr["overall"]["count"], 2, "{summary}");
    assert_eq!(ttfr["overall"]["p90_s"], 0, "{summary}");
    let ten_minutes = Histogram::value(Histogram::bucket(600));
    assert_eq!(ttfr["person"]["overall"]["count"], 1, "{summary}");
    assert_eq!(
        ttfr["person"]["overall"]["median_s"], ten_minutes,
        "{summary}"
    );
}

#[tokio::test]
async fn conversational_answers_from_an_app_or_a_webhook_move_the_thread_once() {
    let g = inbox(nothing());
    let (app, hook, notice, early) = (
        "+15551110071",
        "+15551110072",
        "+15551110073",
        "+15551110074",
    );
    for c in [app, hook, notice] {
        g.inbound(c, "Hello, a question").await;
    }
    assert_eq!(g.inbox("").await.len(), 3);

    // An app answers through POST /v1/messages: signed with its token.
    let send = |to: &str, category: &str, body: &str| json!({"to": to, "body": body, "category": category});
    let (status, sent) = g
        .call(
            Method::POST,
            "/v1/messages",
            Some(send(app, "conversational", "Yes, ask away")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    // A webhook receiver answers by response.
    g.webhook_reply(hook, "Our FAQ: https://faq.example").await;
    // A transactional notice is not an answer.
    let (status, _) = g
        .call(
            Method::POST,
            "/v1/messages",
            Some(send(notice, "transactional", "Your order shipped")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    g.engine.catch_up().await.unwrap();
    assert_eq!(g.inbox("").await, [notice]);

    let thread = g.thread(app).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    let item = |thread: &Value, n: usize| thread["items"][n].clone();
    assert_eq!(item(&thread, 1)["author"], "api:ops");
    assert_eq!(item(&thread, 2)["activity"], "state_changed");
    assert_eq!(item(&thread, 2)["author"], "api:ops");
    // An app's answer is a person's, as far as the gateway can tell.
    assert_eq!(thread["thread"]["person_waiting_since"], Value::Null);
    let thread = g.thread(hook).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    assert_eq!(item(&thread, 2)["author"], "webhook");
    // A webhook's is automation: a person still owes an answer.
    assert!(thread["thread"]["person_waiting_since"].is_string());

    // Once: a second answer changes nothing.
    let (status, _) = g
        .call(
            Method::POST,
            "/v1/messages",
            Some(send(app, "conversational", "Anything else?")),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    g.engine.catch_up().await.unwrap();
    assert_eq!(
        timeline(&g.thread(app).await),
        [
            "inbound: Hello, a question",
            "outbound: Yes, ask away",
            "activity: state_changed",
            "outbound: Anything else?",
        ]
    );

    // An answer accepted before the engine read the text it answers (a
    // webhook receiver faster than the engine): the log's order holds, the
    // thread waits on the customer.
    g.arrives(early, "Do you deliver?").await;
    g.webhook_reply(early, "Yes, within 5 miles.").await;
    g.engine.catch_up().await.unwrap();
    let thread = g.thread(early).await;
    assert_eq!(thread["thread"]["state"], "waiting_on_customer");
    assert!(!g.inbox("").await.contains(&early.to_string()));

    // The acceptances are events of their own, for the conversational ones.
    let (_, events) = g.call(Method::GET, "/v1/events?limit=100", None).await;
    let accepted: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "message.accepted")
        .map(|e| e["data"]["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        accepted,
        [
            "Yes, ask away",
            "Our FAQ: https://faq.example",
            "Anything else?",
            "Yes, within 5 miles."
        ]
    );
}

#[tokio::test]
async fn rules_stored_through_the_api_decide_the_next_inbound_without_a_restart() {
    // The daemon's wiring: the decider reads the rule book the API changes.
    let probe = inbox(nothing());
    let live = probe.rig.state.rules.live();
    let decider = smsgate::conversation::engine::rules_decider(
        probe.store.clone(),
        live,
        Arc::new(Vec::new()),
    );
    let Inbox { rig, store, .. } = probe;
    let policy = rig.state.policy.clone();
    let engine = Engine::new(
        store.clone(),
        policy,
        Some(rig.state.dispatcher.clone()),
        rig.state.sms.clone(),
    )
    .with_decider(decider);
    let g = Inbox {
        rig,
        store,
        engine,
        clock: Arc::new(TestClock::at(Utc::now())),
    };

    // The config's rules (none, and the shipped defaults): nothing routes a
    // text about an invoice to billing.
    let before = "+15550007001";
    g.inbound(before, "question about my invoice").await;
    assert_ne!(g.thread(before).await["thread"]["team"], "billing");

    let (status, body) = g
        .call(
            Method::PUT,
            "/v1/rules",
            Some(json!({"rules": [{
                "name": "billing-words",
                "when": {"keywords": ["invoice"]},
                "then": {"route": "billing", "tag": "billing"}
            }]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "store");

    let after = "+15550007002";
    g.inbound(after, "question about my invoice").await;
    let thread = g.thread(after).await;
    assert_eq!(thread["thread"]["team"], "billing", "{thread}");
    // The first thread was decided by the rules of its time.
    assert_ne!(g.thread(before).await["thread"]["team"], "billing");

    // Back to the config's: the next text is not routed by the stored rule.
    let (status, body) = g.call(Method::DELETE, "/v1/rules", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["source"], "config");
    let reverted = "+15550007003";
    g.inbound(reverted, "question about my invoice").await;
    assert_ne!(g.thread(reverted).await["thread"]["team"], "billing");
}
