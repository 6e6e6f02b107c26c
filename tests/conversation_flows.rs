//! The conversation layer wired end to end: a running daemon with the
//! shipped rules and flows, a simulated modem, and four scripted customers
//! answering an appointment reminder: one confirms ("C"), one reschedules
//! ("R", then slot "2"), one writes an urgent complaint, one texts STOP.
//! Checks what each thread became, what was sent, the causal timeline, and
//! the metrics summary against counts made here from the messages.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use smsgate::sim::{HandsetScript, Personality, SimConfig, Simulator};

const TOKEN: &str = "flows-token";
const CONFIRMS: &str = "+15550500001";
const RESCHEDULES: &str = "+15550500002";
const URGENT: &str = "+15550500003";
const STOPS: &str = "+15550500004";
const URGENT_TEXT: &str =
    "This is urgent, nobody told me the time changed. I need to talk to someone asap";
const PRICE: f64 = 0.05;

fn path_of(contact: &str) -> String {
    contact.replace('+', "%2B")
}

fn thread(addr: &str, contact: &str) -> Value {
    let (status, body) = common::http(
        "GET",
        addr,
        &format!("/v1/threads/{}?limit=100", path_of(contact)),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body
}

fn outcomes(thread: &Value) -> Vec<(String, Value)> {
    thread["thread"]["outcomes"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|o| {
                    (
                        o["name"].as_str().unwrap_or("").to_string(),
                        o["value"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The texts the network delivered to `contact`, in order.
fn delivered_to(sim: &smsgate::sim::SimHandle, contact: &str) -> Vec<String> {
    sim.received()
        .into_iter()
        .filter(|r| r.to == contact)
        .map(|r| r.text)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_answer_the_appointment_flow_and_the_metrics_add_up() {
    let temp = |name: &str| {
        std::env::temp_dir().join(format!("smsgate-flows-{}-{name}", std::process::id()))
    };
    let mut sim = SimConfig::new(Personality::Sim800);
    sim.link = Some(temp("m1.tty"));
    sim.own_number = "+15550500000".into();
    sim.noise_interval = Some(Duration::ZERO);
    sim.status_report_delay = Duration::from_millis(20);
    let once = |number: &str, reply: &str| HandsetScript {
        number: number.into(),
        reply: reply.into(),
        once: true,
        delay: Duration::from_millis(50),
        ..Default::default()
    };
    sim.handsets = vec![
        once(CONFIRMS, "C"),
        HandsetScript {
            number: RESCHEDULES.into(),
            reply: "R".into(),
            then: vec!["2".into()],
            delay: Duration::from_millis(50),
            ..Default::default()
        },
        once(URGENT, URGENT_TEXT),
        once(STOPS, "STOP"),
    ];
    let modem = Simulator::start(sim).unwrap();
    let db = temp("db");
    let _ = std::fs::remove_dir_all(&db);
    let config = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [[modem]]\nid = \"m1\"\nport = \"{}\"\ncost_per_part = {PRICE}\n",
        db.display(),
        modem.link().display()
    );
    let gw = common::InProcessDaemon::start(&config, TOKEN).await;
    gw.wait_ready().await;
    let addr = gw.addr.clone();
    let sim = modem.clone();
    tokio::task::spawn_blocking(move || {
        let reminder = "Hi, your appointment is Tue 10:30. Reply C to confirm, R to reschedule.";
        for to in [CONFIRMS, RESCHEDULES, URGENT, STOPS] {
            let (status, body) = common::http(
                "POST",
                &addr,
                "/v1/messages",
                Some(TOKEN),
                Some(&json!({
                    "to": to,
                    "body": reminder,
                    "status_report": true,
                    "flow": "appointment",
                    "context": {"time": "Tue 10:30", "slots": ["Wed 09:00", "Thu 14:00", "Fri 11:00"]}
                })),
            );
            assert_eq!(status, 202, "{body}");
        }

        // "C": confirmed, answered, closed, out of the flow.
        let confirmed = common::wait_until(Duration::from_secs(30), "C confirmed", || {
            let t = thread(&addr, CONFIRMS);
            (t["thread"]["state"] == "closed").then_some(t)
        });
        assert_eq!(
            outcomes(&confirmed),
            vec![("appointment_confirmed".into(), json!("Tue 10:30"))]
        );
        assert_eq!(confirmed["thread"]["flow"], Value::Null);

        // "R" then "2": the slots offered, slot 2 booked and confirmed.
        let booked = common::wait_until(Duration::from_secs(30), "R then 2 booked", || {
            let t = thread(&addr, RESCHEDULES);
            (!outcomes(&t).is_empty()).then_some(t)
        });
        let booked_outcomes = outcomes(&booked);
        assert_eq!(booked_outcomes.len(), 1, "{booked}");
        assert_eq!(booked_outcomes[0].0, "appointment_booked");
        assert!(
            booked_outcomes[0].1.as_str().unwrap_or("").contains("Thu 14:00"),
            "{booked}"
        );
        assert_eq!(booked["thread"]["state"], "closed");

        // The urgent text: in the inbox, urgent, answered by nobody.
        let inbox = common::wait_until(Duration::from_secs(30), "the urgent thread", || {
            let (_, page) = common::http("GET", &addr, "/v1/inbox", Some(TOKEN), None);
            let items = page["items"].as_array().cloned().unwrap_or_default();
            items
                .iter()
                .any(|i| i["contact"] == URGENT && i["priority"] == "urgent")
                .then_some(items)
        });
        assert_eq!(inbox[0]["contact"], URGENT, "urgent first: {inbox:?}");
        let urgent = thread(&addr, URGENT);
        assert_eq!(urgent["thread"]["state"], "open");
        assert!(outcomes(&urgent).is_empty());

        // STOP: opted out, out of the flow, nothing but the confirmation.
        let stopped = common::wait_until(Duration::from_secs(30), "STOP handled", || {
            let t = thread(&addr, STOPS);
            let items = t["items"].as_array().map_or(0, |i| i.len());
            (t["thread"]["flow"].is_null() && items >= 3).then_some(t)
        });
        let (_, consent) = common::http(
            "GET",
            &addr,
            &format!("/v1/contacts/{}/consent", path_of(STOPS)),
            Some(TOKEN),
            None,
        );
        assert_eq!(consent["status"], "opted_out", "{consent}");
        // Not waiting on us: a STOP is not a question for the team.
        assert_ne!(stopped["thread"]["state"], "open", "{stopped}");
        let kinds: Vec<(String, String)> = stopped["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "message")
            .map(|i| {
                (
                    i["direction"].as_str().unwrap().to_string(),
                    i["body"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(kinds.len(), 3, "reminder, STOP, confirmation: {kinds:?}");
        assert_eq!(kinds[0], ("outbound".into(), reminder.into()));
        assert_eq!(kinds[1], ("inbound".into(), "STOP".into()));
        assert_eq!(kinds[2].0, "outbound", "the confirmation after the STOP");

        // What the customers' phones got: automation answered the flows only.
        let all_sent = common::wait_until(Duration::from_secs(30), "every text delivered", || {
            let confirm = delivered_to(&sim, CONFIRMS);
            let reschedule = delivered_to(&sim, RESCHEDULES);
            let stops = delivered_to(&sim, STOPS);
            (confirm.len() == 2 && reschedule.len() == 3 && stops.len() == 2)
                .then_some((confirm, reschedule, stops))
        });
        let (confirm, reschedule, _) = all_sent;
        assert!(confirm[1].to_lowercase().contains("confirm"), "{confirm:?}");
        assert!(reschedule[1].contains("2") && reschedule[1].contains("Thu 14:00"), "{reschedule:?}");
        assert!(reschedule[2].contains("Thu 14:00"), "{reschedule:?}");
        assert_eq!(delivered_to(&sim, URGENT), vec![reminder.to_string()]);

        // The metrics, counted here from the messages the gateway sent.
        let (_, page) = common::http(
            "GET",
            &addr,
            "/v1/messages?direction=outbound&limit=100",
            Some(TOKEN),
            None,
        );
        let parts: u64 = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["parts"].as_u64().unwrap())
            .sum();
        let summary = common::wait_until(Duration::from_secs(30), "the metrics counted", || {
            let (status, s) =
                common::http("GET", &addr, "/v1/metrics/summary", Some(TOKEN), None);
            assert_eq!(status, 200, "{s}");
            (s["cost_per_outcome"]["parts"] == parts
                && s["time_to_first_response"]["overall"]["count"] == 3
                && s["conversion_rate"]["numerator"] == 2)
                .then_some(s)
        });
        // Sent to four; three answered without opting out; one opted out;
        // two converted (confirmed, booked).
        assert_eq!(summary["reply_rate"]["denominator"], 4, "{summary}");
        assert_eq!(summary["reply_rate"]["numerator"], 3, "{summary}");
        assert_eq!(summary["opt_out_rate"]["numerator"], 1, "{summary}");
        assert_eq!(summary["conversion_rate"]["denominator"], 4, "{summary}");
        assert_eq!(summary["cost_per_outcome"]["denominator"], 2, "{summary}");
        let cost = summary["cost_per_outcome"]["numerator"].as_f64().unwrap();
        assert!((cost - parts as f64 * PRICE).abs() < 1e-9, "{summary}");
        // Automation answered three waits (C; R; 2); no person did.
        assert_eq!(summary["time_to_first_response"]["person"]["overall"]["count"], 0, "{summary}");
    })
    .await
    .unwrap();
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&db);
}

const PAYS: &str = "+15550500011";
const RATES_LOW: &str = "+15550500012";
const RATES_HIGH: &str = "+15550500013";
const PAY_URL: &str = "https://pay.example/inv/77";
const COMMENT: &str = "The fix did not hold, it is leaking again";

/// The payment and rating flows, with scripted customers: one answers an
/// invoice "1" (the link, then the billing system's payment_completed
/// closes the thread); one rates 2 and then writes a comment (kept, a
/// person gets the thread); one rates 5 (thanked, no person).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customers_answer_the_payment_and_rating_flows() {
    let temp = |name: &str| {
        std::env::temp_dir().join(format!("smsgate-flows2-{}-{name}", std::process::id()))
    };
    let mut sim = SimConfig::new(Personality::Sim800);
    sim.link = Some(temp("m1.tty"));
    sim.own_number = "+15550500010".into();
    sim.noise_interval = Some(Duration::ZERO);
    let once = |number: &str, reply: &str| HandsetScript {
        number: number.into(),
        reply: reply.into(),
        once: true,
        delay: Duration::from_millis(50),
        ..Default::default()
    };
    sim.handsets = vec![once(PAYS, "1"), once(RATES_LOW, "2"), once(RATES_HIGH, "5")];
    let modem = Simulator::start(sim).unwrap();
    let db = temp("db");
    let _ = std::fs::remove_dir_all(&db);
    let config = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [[modem]]\nid = \"m1\"\nport = \"{}\"\n",
        db.display(),
        modem.link().display()
    );
    let gw = common::InProcessDaemon::start(&config, TOKEN).await;
    gw.wait_ready().await;
    let addr = gw.addr.clone();
    let sim = modem.clone();
    tokio::task::spawn_blocking(move || {
        let send = |to: &str, body: &str, flow: &str, context: Value| {
            let (status, sent) = common::http(
                "POST",
                &addr,
                "/v1/messages",
                Some(TOKEN),
                Some(&json!({"to": to, "body": body, "flow": flow, "context": context})),
            );
            assert_eq!(status, 202, "{sent}");
            sent
        };
        let invoice = "Your invoice of $120 is ready. Reply 1 to get the payment link.";
        let invoice_sent = send(PAYS, invoice, "payment", json!({"url": PAY_URL}));
        let ask = "How did we do today? Reply with a number from 1 (poor) to 5 (great).";
        send(RATES_LOW, ask, "rating", json!({}));
        send(RATES_HIGH, ask, "rating", json!({}));

        // Payment: "1" gets the link; the thread waits for the payment.
        let paying = common::wait_until(Duration::from_secs(30), "the payment link", || {
            let t = thread(&addr, PAYS);
            (!outcomes(&t).is_empty()).then_some(t)
        });
        assert_eq!(
            outcomes(&paying),
            vec![("payment_link_sent".into(), Value::Null)]
        );
        // Linked to the answer that led to it.
        let answer = paying["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["direction"] == "inbound")
            .map(|i| i["id"].clone());
        assert_eq!(
            answer,
            Some(paying["thread"]["outcomes"][0]["message_id"].clone())
        );
        assert_eq!(paying["thread"]["flow"]["started_by"], invoice_sent["id"]);
        assert_eq!(paying["thread"]["flow"]["step"], "link_sent");
        let link = format!("Here is your payment link: {PAY_URL}");
        common::wait_until(Duration::from_secs(30), "the link at the phone", || {
            (delivered_to(&sim, PAYS).len() == 2).then_some(())
        });
        assert_eq!(delivered_to(&sim, PAYS), [invoice.to_string(), link]);
        // The billing system records the payment: the thread closes.
        let (status, closed) = common::http(
            "POST",
            &addr,
            &format!("/v1/threads/{}/outcomes", path_of(PAYS)),
            Some(TOKEN),
            Some(&json!({"outcome": "payment_completed", "value": "120.00", "author": "billing"})),
        );
        assert_eq!(status, 201, "{closed}");
        assert_eq!(closed["state"], "closed");
        assert_eq!(closed["flow"], Value::Null);
        let paid = thread(&addr, PAYS);
        assert_eq!(
            outcomes(&paid),
            vec![
                ("payment_link_sent".into(), Value::Null),
                ("payment_completed".into(), json!("120.00"))
            ]
        );

        // Rating 2: no automated answer, urgent, the support team's; the
        // comment that follows is kept with it.
        let low = common::wait_until(Duration::from_secs(30), "the low rating", || {
            let t = thread(&addr, RATES_LOW);
            (!outcomes(&t).is_empty()).then_some(t)
        });
        assert_eq!(outcomes(&low), vec![("rating_received".into(), json!("2"))]);
        assert_eq!(low["thread"]["flow"]["step"], "rated");
        sim.inject(RATES_LOW, COMMENT).unwrap();
        let commented = common::wait_until(Duration::from_secs(30), "the comment kept", || {
            let t = thread(&addr, RATES_LOW);
            (t["thread"]["answers"]["comment"] == COMMENT).then_some(t)
        });
        assert_eq!(commented["thread"]["flow"], Value::Null);
        assert_eq!(commented["thread"]["state"], "open");
        assert_eq!(commented["thread"]["priority"], "urgent");
        assert_eq!(commented["thread"]["team"], "support");
        assert_eq!(outcomes(&commented).len(), 1, "one rating: {commented}");
        let inbox = || -> Vec<String> {
            let (_, page) = common::http("GET", &addr, "/v1/inbox", Some(TOKEN), None);
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["contact"].as_str().map(str::to_string))
                .collect()
        };
        assert!(inbox().contains(&RATES_LOW.to_string()), "a person has it");

        // Rating 5: thanked, nobody else needed.
        let high = common::wait_until(Duration::from_secs(30), "the high rating", || {
            let t = thread(&addr, RATES_HIGH);
            (t["thread"]["state"] == "waiting_on_customer" && !outcomes(&t).is_empty()).then_some(t)
        });
        assert_eq!(
            outcomes(&high),
            vec![("rating_received".into(), json!("5"))]
        );
        assert_eq!(high["thread"]["priority"], "normal");
        assert_eq!(high["thread"]["team"], Value::Null);
        assert!(!inbox().contains(&RATES_HIGH.to_string()), "nobody needed");
        let thanks = "Thank you for your rating! Reply with a comment if you like.";
        common::wait_until(Duration::from_secs(30), "the thanks at the phone", || {
            (delivered_to(&sim, RATES_HIGH).len() == 2).then_some(())
        });
        assert_eq!(
            delivered_to(&sim, RATES_HIGH),
            [ask.to_string(), thanks.to_string()]
        );
        // The low rater got the question only: the engine accepts a reply
        // before it records what the text did, so with the comment kept
        // every answer there was is in the thread, and there is none.
        let sent_to_low: Vec<String> = commented["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "message" && i["direction"] == "outbound")
            .map(|i| i["body"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(sent_to_low, [ask.to_string()]);
        common::wait_until(Duration::from_secs(30), "the question at the phone", || {
            (!delivered_to(&sim, RATES_LOW).is_empty()).then_some(())
        });
        assert_eq!(delivered_to(&sim, RATES_LOW), [ask.to_string()]);
    })
    .await
    .unwrap();
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&db);
}
