//! Consent end to end, through the simulator and the API of a running daemon:
//! STOP -> one confirmation -> 409 -> START -> sending works; a second STOP
//! gets no second confirmation; STOP cancels waiting messages; a STOP that
//! arrives while a message waits in the modem actor stops it; HELP answers.

mod common;

use std::time::Duration;

use common::{http, texts_to, wait_until};
use serde_json::{json, Value};
use smsgate::sim::SimHandle;

const TOKEN: &str = "consent-token";

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("smsgate-consent-{}-{name}", std::process::id()))
}

fn sim(name: &str, own: &str) -> SimHandle {
    common::sim800(temp(&format!("{name}.tty")), own)
}

/// A daemon in this process on an ephemeral port, ready.
async fn daemon(name: &str, modems: &[(&str, &SimHandle, Option<u32>)]) -> common::InProcessDaemon {
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let mut text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[consent]\nprogram_name = \"Acme Dental\"\nhelp_contact = \"+1 555 0100\"\n",
        db.display()
    );
    for (id, sim, per_minute) in modems {
        text.push_str(&format!(
            "[[modem]]\nid = \"{id}\"\nport = \"{}\"\n",
            sim.link().display()
        ));
        if let Some(n) = per_minute {
            text.push_str(&format!("sends_per_minute = {n}\n"));
        }
    }
    let daemon = common::InProcessDaemon::start(&text, TOKEN).await;
    daemon.wait_ready().await;
    daemon
}

fn post(addr: &str, to: &str, body: &str) -> (u16, Value) {
    http(
        "POST",
        addr,
        "/v1/messages",
        Some(TOKEN),
        Some(&json!({"to": to, "body": body})),
    )
}

/// Outbound messages in the contact's thread whose body contains `needle`.
fn outbound_in_thread(addr: &str, contact: &str, needle: &str) -> usize {
    let path = format!("/v1/threads/{}?limit=100", contact.replace('+', "%2B"));
    let (status, thread) = http("GET", addr, &path, Some(TOKEN), None);
    assert_eq!(status, 200, "{thread}");
    thread["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| {
            m["direction"] == "outbound" && m["body"].as_str().is_some_and(|b| b.contains(needle))
        })
        .count()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_confirm_refuse_start_send() {
    let modem = sim("flow", "+15550300000");
    let gw = daemon("flow", &[("m1", &modem, None)]).await;
    let customer = "+15550300001";
    let m = modem.clone();
    let addr = gw.addr.clone();
    blocking(move || {
        assert_eq!(post(&addr, customer, "Your appointment is Tue 10:30").0, 202);
        m.inject(customer, "Stop texting me").unwrap();
        // Exactly one confirmation goes out.
        let confirmation = wait_until(Duration::from_secs(20), "the confirmation", || {
            texts_to(&m, customer).into_iter().find(|t| t.contains("unsubscribed"))
        });
        assert!(confirmation.starts_with("Acme Dental"));
        let (status, problem) = post(&addr, customer, "One more thing");
        assert_eq!(status, 409);
        assert_eq!(problem["code"], "recipient_opted_out");
        // A second STOP: recorded, no second confirmation.
        m.inject(customer, "STOP").unwrap();
        let path = format!("/v1/contacts/{}/consent", customer.replace('+', "%2B"));
        wait_until(Duration::from_secs(20), "the repeat in the ledger", || {
            let (_, v) = http("GET", &addr, &path, Some(TOKEN), None);
            (v["ledger"].as_array()?.len() == 2).then_some(())
        });
        // A confirmation is queued in the transaction that writes the ledger
        // entry: the thread now holds every confirmation there will be.
        assert_eq!(outbound_in_thread(&addr, customer, "unsubscribed"), 1);
        let (_, consent) = http("GET", &addr, &path, Some(TOKEN), None);
        assert_eq!(consent["status"], "opted_out");
        let first = &consent["ledger"][0];
        assert_eq!(first["action"], "opt_out");
        assert_eq!(first["matched"], "stop", "the revoking word of \"Stop texting me\"");
        assert_eq!(first["gateway_number"], "+15550300000");
        assert!(first["inbound_message_id"].as_str().unwrap().starts_with("msg_"));
        // HELP is answered even now.
        m.inject(customer, "HELP").unwrap();
        wait_until(Duration::from_secs(20), "the HELP reply", || {
            texts_to(&m, customer).into_iter().find(|t| t.contains("Msg&data rates may apply"))
        });
        // More HELPs right away: one answer per window, not one each.
        m.inject(customer, "HELP").unwrap();
        m.inject(customer, "help").unwrap();
        // START: opted in again, sending works.
        m.inject(customer, "START").unwrap();
        wait_until(Duration::from_secs(20), "opted in", || {
            let (_, v) = http("GET", &addr, &path, Some(TOKEN), None);
            (v["status"] == "opted_in").then_some(())
        });
        // The opt-in confirmation came after the two HELPs on the same modem.
        assert_eq!(outbound_in_thread(&addr, customer, "Msg&data rates may apply"), 1);
        let (status, accepted) = post(&addr, customer, "Welcome back");
        assert_eq!(status, 202, "{accepted}");
        wait_until(Duration::from_secs(20), "sent again", || {
            texts_to(&m, customer).into_iter().find(|t| t == "Welcome back")
        });
        // The export has every entry.
        let csv = {
            let mut s = std::net::TcpStream::connect(&addr).unwrap();
            use std::io::{Read, Write};
            write!(s, "GET /v1/consent/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        assert!(csv.contains("text/csv"));
        assert_eq!(csv.matches(customer).count(), 3, "opt_out, repeat_opt_out, opt_in");
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_waiting_messages_and_one_waiting_in_the_actor() {
    // Two modems: m1 sends slowly (30 a minute, so a claimed message waits
    // ~2 s for its slot inside the actor); the STOP comes in on m2.
    let slow = sim("race-a", "+15550400000");
    let other = sim("race-b", "+15550500000");
    let gw = daemon("race", &[("m1", &slow, Some(30)), ("m2", &other, None)]).await;
    let customer = "+15550400001";
    let (s1, s2) = (slow.clone(), other.clone());
    let addr = gw.addr.clone();
    blocking(move || {
        // Scheduled for tomorrow: waiting in the outbox.
        let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
        let (status, scheduled) = http(
            "POST",
            &addr,
            "/v1/messages",
            Some(TOKEN),
            Some(&json!({"to": customer, "body": "See you tomorrow", "send_at": later, "modem": "m1"})),
        );
        assert_eq!(status, 202);
        // Take m1's rate-limit slot with someone else, then queue one for the customer.
        assert_eq!(http("POST", &addr, "/v1/messages", Some(TOKEN), Some(&json!({"to": "+15550400099", "body": "first", "modem": "m1"}))).0, 202);
        wait_until(Duration::from_secs(20), "the first send", || {
            (!s1.received().is_empty()).then_some(())
        });
        let (status, waiting) = http("POST", &addr, "/v1/messages", Some(TOKEN), Some(&json!({"to": customer, "body": "Reminder", "modem": "m1"})));
        assert_eq!(status, 202);
        std::thread::sleep(Duration::from_millis(300));
        s2.inject(customer, "STOP").unwrap();
        for id in [scheduled["id"].as_str().unwrap(), waiting["id"].as_str().unwrap()] {
            let m = wait_until(Duration::from_secs(20), "cancelled", || {
                let (_, m) = http("GET", &addr, &format!("/v1/messages/{id}"), Some(TOKEN), None);
                (m["status"] == "failed").then_some(m)
            });
            assert_eq!(m["error"]["code"], "recipient_opted_out");
        }
        // Nothing but the confirmation reached the customer, from m2 where the
        // STOP came in: each modem sends in order, so once a message queued
        // after the STOP has gone out through each, neither holds one back.
        for (modem, sim) in [("m1", &s1), ("m2", &s2)] {
            let marker = format!("after the stop via {modem}");
            let (status, _) = http("POST", &addr, "/v1/messages", Some(TOKEN), Some(&json!({"to": "+15550400098", "body": marker, "modem": modem})));
            assert_eq!(status, 202);
            wait_until(Duration::from_secs(30), "the later message", || {
                texts_to(sim, "+15550400098").into_iter().find(|t| *t == marker)
            });
        }
        wait_until(Duration::from_secs(20), "the confirmation", || {
            texts_to(&s2, customer).into_iter().next()
        });
        assert!(texts_to(&s1, customer).is_empty(), "{:?}", texts_to(&s1, customer));
        let confirmations = texts_to(&s2, customer);
        assert_eq!(confirmations.len(), 1, "{confirmations:?}");
    })
    .await;
    gw.stop().await;
    slow.shutdown().await;
    other.shutdown().await;
}

/// A modem announces the customer's STOP between `AT+CMGS` and its prompt
/// (the send was already marked `sending`): the STOP is read first, the
/// part is not sent (ESC), the message fails as opted out, and the
/// confirmation is the only text the customer gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_announced_before_the_prompt_stops_that_send() {
    let modem = sim("prompt", "+15550600000");
    let gw = daemon("prompt", &[("m1", &modem, None)]).await;
    let customer = "+15550600001";
    modem
        .fault(smsgate::sim::Fault::SmsBeforePrompt {
            from: customer.into(),
            text: "STOP".into(),
        })
        .unwrap();
    let m = modem.clone();
    let addr = gw.addr.clone();
    blocking(move || {
        let (status, accepted) = post(&addr, customer, "Your appointment is Tue 10:30");
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        let failed = wait_until(Duration::from_secs(20), "the send stopped", || {
            let (_, m) = http(
                "GET",
                &addr,
                &format!("/v1/messages/{id}"),
                Some(TOKEN),
                None,
            );
            (m["status"] == "failed").then_some(m)
        });
        assert_eq!(failed["error"]["code"], "recipient_opted_out", "{failed}");
        let steps: Vec<&str> = failed["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["status"].as_str())
            .collect();
        assert!(
            steps.contains(&"sending"),
            "marked before the prompt: {steps:?}"
        );
        wait_until(Duration::from_secs(20), "the confirmation", || {
            texts_to(&m, customer)
                .into_iter()
                .find(|t| t.contains("unsubscribed"))
        });
        assert_eq!(
            texts_to(&m, customer).len(),
            1,
            "only the confirmation: {:?}",
            texts_to(&m, customer)
        );
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marketing_needs_evidence_and_manual_opt_outs_hold() {
    let modem = sim("marketing", "+15550600000");
    let gw = daemon("marketing", &[("m1", &modem, None)]).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let customer = "+15550600001";
        let send = |category: &str| {
            http("POST", &addr, "/v1/messages", Some(TOKEN), Some(&json!({"to": customer, "body": "20% off", "category": category})))
        };
        assert_eq!(send("marketing").1["code"], "consent_required");
        let path = format!("/v1/contacts/{}/consent", customer.replace('+', "%2B"));
        let (status, v) = http("PUT", &addr, &path, Some(TOKEN), Some(&json!({"status": "opted_in"})));
        assert_eq!((status, v["code"].as_str()), (422, Some("evidence_required")));
        let (status, v) = http(
            "PUT",
            &addr,
            &path,
            Some(TOKEN),
            Some(&json!({"status": "opted_in", "source": "web_form", "evidence": "signup #1234", "captured_at": "2026-01-02T10:00:00Z"})),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["evidence"]["source"], "web_form");
        let (status, accepted) = send("marketing");
        assert_eq!(status, 202);
        assert!(matches!(accepted["status"].as_str(), Some("queued" | "deferred")), "{accepted}");
        assert_eq!(send("conversational").1["code"], "not_conversational");
        let (status, _) = http("POST", &addr, "/v1/optouts", Some(TOKEN), Some(&json!({"number": customer, "reason": "asked on the phone"})));
        assert_eq!(status, 200);
        assert_eq!(send("transactional").1["code"], "recipient_opted_out");
        // Erasure keeps the opt-out.
        let (status, erased) = http("DELETE", &addr, &format!("/v1/contacts/{}", customer.replace('+', "%2B")), Some(TOKEN), None);
        assert_eq!(status, 200);
        assert_eq!(erased["opt_out_kept"], true);
        assert_eq!(send("transactional").1["code"], "recipient_opted_out");
        let (status, v) = http("PUT", &addr, &format!("/v1/contacts/{}", "%2B15550600002"), Some(TOKEN), Some(&json!({"time_zone": "Mars/Base"})));
        assert_eq!((status, v["code"].as_str()), (422, Some("invalid_time_zone")));
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

/// An erasure leaves the number nowhere in the store but where the design
/// keeps it: a contact who was texted, answered, was noted, assigned,
/// given a profile, put in a campaign and counted in the metrics, with a
/// webhook that cannot be reached holding deliveries about them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_leaves_the_number_nowhere() {
    let modem = sim("erase-all", "+15550610000");
    let db = temp("erase-all.db");
    let _ = std::fs::remove_dir_all(&db);
    let text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [consent]\nprogram_name = \"Acme Dental\"\n\
         [[webhook]]\nid = \"crm\"\nurl = \"http://127.0.0.1:{}/hook\"\n\
         secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n\
         [[modem]]\nid = \"m1\"\nport = \"{}\"\n",
        db.display(),
        common::free_port(),
        modem.link().display()
    );
    let gw = common::InProcessDaemon::start(&text, TOKEN).await;
    gw.wait_ready().await;
    let (addr, m) = (gw.addr.clone(), modem.clone());
    let customer = "+15550610001";
    blocking(move || {
        let contact = customer.replace('+', "%2B");
        let (status, v) = http(
            "PUT",
            &addr,
            &format!("/v1/contacts/{contact}"),
            Some(TOKEN),
            Some(&json!({"name": "Ana Ruiz", "tags": ["vip"], "external_id": "crm-1", "fields": {"plan": "gold"}})),
        );
        assert_eq!(status, 200, "{v}");
        let (status, accepted) = post(&addr, customer, "Your crown is ready");
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        wait_until(Duration::from_secs(20), "delivered", || {
            (common::message(&addr, TOKEN, &id)["status"] == "delivered").then_some(())
        });
        m.inject(customer, "Great, can I come Tuesday?").unwrap();
        wait_until(Duration::from_secs(20), "the answer in the thread", || {
            let (_, v) = http("GET", &addr, &format!("/v1/threads/{contact}"), Some(TOKEN), None);
            v.to_string().contains("Tuesday").then_some(())
        });
        let (status, v) = http(
            "POST",
            &addr,
            &format!("/v1/threads/{contact}/notes"),
            Some(TOKEN),
            Some(&json!({"author": "ana", "text": "Prefers mornings"})),
        );
        assert_eq!(status, 201, "{v}");
        let (status, v) = http(
            "PUT",
            &addr,
            &format!("/v1/threads/{contact}/assignment"),
            Some(TOKEN),
            Some(&json!({"team": "front-desk", "assignee": "ana"})),
        );
        assert_eq!(status, 200, "{v}");
        let (status, v) = http(
            "POST",
            &addr,
            "/v1/campaigns",
            Some(TOKEN),
            Some(&json!({
                "name": "Check-up",
                "recipients": {"numbers": [customer]},
                "variants": [{"id": "a", "template": "Time for a check-up", "weight": 1}],
                "category": "transactional"
            })),
        );
        assert_eq!(status, 202, "{v}");
        wait_until(Duration::from_secs(20), "the campaign's text", || {
            texts_to(&m, customer)
                .iter()
                .any(|t| t == "Time for a check-up")
                .then_some(())
        });
        // A campaign that refuses the contact (no value for a placeholder):
        // the refusal names the number.
        let (status, refused) = http(
            "POST",
            &addr,
            "/v1/campaigns",
            Some(TOKEN),
            Some(&json!({
                "name": "Nicknames",
                "recipients": {"numbers": [customer]},
                "template": "Hi {{nickname}}",
                "category": "transactional"
            })),
        );
        assert_eq!(status, 202, "{refused}");
        let path = format!("/v1/campaigns/{}/errors", refused["id"].as_str().unwrap());
        wait_until(Duration::from_secs(20), "the refused recipient", || {
            let (_, v) = http("GET", &addr, &path, Some(TOKEN), None);
            (v["items"][0]["number"] == customer).then_some(())
        });
        let (status, erased) = http("DELETE", &addr, &format!("/v1/contacts/{contact}"), Some(TOKEN), None);
        assert_eq!(status, 200, "{erased}");
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
    let store = common::open_store(&db, 8);
    let left = store.trees_holding(customer.as_bytes()).unwrap();
    let digits = store
        .trees_holding(customer.trim_start_matches('+').as_bytes())
        .unwrap();
    drop(store);
    let _ = std::fs::remove_dir_all(&db);
    assert!(
        left.is_empty() && digits.is_empty(),
        "the number is still in: {left:?} {digits:?}"
    );
}
