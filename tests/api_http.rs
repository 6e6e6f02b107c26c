//! The HTTP API end to end through `router(state).oneshot(..)`: a real store in
//! a temporary directory, a dispatcher with fake modem statuses, no socket
//! (except the one test of `serve` and its graceful shutdown).

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use common::rig::{Reply, Rig};
use smsgate::api::{self, ApiToken, Scope};
use smsgate::compose::SmsPolicy;
use smsgate::modem::status::ModemState;
use smsgate::store::{InboundPart, MessageFilter, MessageStatus, PartStatus};

const ADMIN: &str = "admin-secret";
const SENDER: &str = "send-secret";
const READER: &str = "read-secret";

/// The API over an empty store (tests/common/rig.rs) and fake modems.
struct Gateway(Rig);

impl std::ops::Deref for Gateway {
    type Target = Rig;
    fn deref(&self) -> &Rig {
        &self.0
    }
}

fn gateway() -> Gateway {
    let tokens = vec![
        ApiToken::from_secret("ops", ADMIN, vec![Scope::Admin]),
        ApiToken::from_secret("crm", SENDER, vec![Scope::Send]),
        ApiToken::from_secret("dashboard", READER, vec![Scope::Read]),
    ];
    let mut rig = Rig::new("api-test", &smsgate::config::Config::default(), tokens);
    rig.state.sms = Arc::new(SmsPolicy {
        default_country: "US".into(),
        max_parts: 10,
        status_reports: true,
        validity: None,
    });
    Gateway(rig)
}

impl Gateway {
    fn add_modem(&mut self, id: &str, state: ModemState, reason: Option<&str>) {
        self.0.add_modem_with(id, |status| {
            status.state = state;
            status.reason = reason.map(str::to_string);
            status.own_number = Some("+15550000000".into());
            status.operator = Some("Simulated".into());
            status.signal_csq = Some(20);
        });
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.call_with(method, uri, token, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        Answer::of(
            self.0
                .call(method, uri, token, body.as_ref(), headers)
                .await,
        )
    }

    async fn send_request(&self, request: Request<Body>) -> Answer {
        Answer::of(self.0.send(request).await)
    }

    async fn send(&self, body: Value) -> Answer {
        self.call(Method::POST, "/v1/messages", Some(SENDER), Some(body))
            .await
    }

    /// Send and return the new message id.
    async fn sent(&self, to: &str, text: &str) -> String {
        let a = self.send(json!({"to": to, "body": text})).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
        a.body["id"].as_str().unwrap().to_string()
    }

    async fn inbound(&self, from: &str, text: &str, pdu: &[u8]) {
        self.store
            .receive(InboundPart {
                modem: "m1",
                own_number: "+15550000000",
                raw_pdu: pdu,
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

    fn stored(&self) -> usize {
        self.store
            .list(&MessageFilter::default(), None, 1000)
            .unwrap()
            .items
            .len()
    }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    /// JSON bodies parsed (a body that claims JSON and is not fails the
    /// test); CSV and other text bodies kept as a string.
    fn of(reply: Reply) -> Answer {
        let is_json = reply
            .header("content-type")
            .is_some_and(|t| t.contains("json"));
        let body = if reply.bytes.is_empty() {
            Value::Null
        } else if is_json {
            serde_json::from_slice(&reply.bytes)
                .unwrap_or_else(|_| panic!("not JSON: {:?}", reply.text()))
        } else {
            Value::String(reply.text())
        };
        Answer {
            status: reply.status,
            headers: reply.headers,
            body,
        }
    }

    /// Assert a problem+json answer with this status and code.
    fn problem(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body["code"].as_str()),
            (status, Some(code)),
            "{}",
            self.body
        );
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.body["type"],
            format!("urn:smsgate:problem:{code}").as_str()
        );
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

#[tokio::test]
async fn accepts_gsm_and_ucs2_with_parts_and_alphabet() {
    let mut g = gateway();
    g.add_modem("m1", ModemState::Ready, None);

    let a = g
        .send(json!({"to": "+1 (555) 123-0001", "body": "Your appointment is at 10:00. Reply C to confirm."}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["alphabet", "created_at", "id", "parts", "status", "to"]
    );
    assert_eq!(a.body["to"], "+15551230001");
    assert_eq!(a.body["parts"], 1);
    assert_eq!(a.body["alphabet"], "gsm7");
    assert_eq!(a.body["status"], "queued");
    let id = a.body["id"].as_str().unwrap();
    assert_eq!(
        a.headers[header::LOCATION],
        format!("/v1/messages/{id}").as_str()
    );
    let stored = g.store.get(id).unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Queued);
    assert!(stored.status_report, "the policy's default");
    assert_eq!(stored.part_status.len(), 1);

    // An emoji forces UCS-2: 70 UTF-16 units per single part, 67 or 66 when
    // concatenated; 40 emoji are 80 units, so two parts.
    let text = "😀".repeat(40);
    let a = g
        .send(json!({"to": "(555) 123-0002", "body": text, "modem": "m1",
                     "status_report": false, "validity": "24h"}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    assert_eq!(
        a.body["to"], "+15551230002",
        "national input in the default country"
    );
    assert_eq!(
        (a.body["parts"].as_u64(), a.body["alphabet"].as_str()),
        (Some(2), Some("ucs2"))
    );
    let stored = g
        .store
        .get(a.body["id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.requested_modem.as_deref(), Some("m1"));
    assert_eq!(stored.from, "+15550000000", "the requested modem's number");
    assert_eq!(stored.validity, Some(86_400));
    assert!(!stored.status_report);
    assert_eq!(stored.part_status.len(), 2);
    assert!(stored
        .part_status
        .iter()
        .all(|p| p.status == PartStatus::Pending));

    let a = g
        .send(json!({"to": "+15551230003", "body": "x", "validity": 600}))
        .await;
    let stored = g
        .store
        .get(a.body["id"].as_str().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.validity, Some(600));
    assert_eq!(g.stored(), 3);
}

#[tokio::test]
async fn send_at_schedules() {
    let g = gateway();
    let at = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let a = g
        .send(json!({"to": "+15551230010", "body": "Reminder", "send_at": at}))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.body["status"], "scheduled");
    let id = a.body["id"].as_str().unwrap();
    let stored = g.store.get(id).unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Scheduled);
    assert!(stored.not_before.is_some());
    assert!(
        g.store.due(Utc::now(), 10).unwrap().is_empty(),
        "not due yet"
    );
    assert_eq!(
        g.store
            .due(Utc::now() + Duration::hours(3), 10)
            .unwrap()
            .len(),
        1
    );

    // A time already past sends now.
    let a = g
        .send(json!({"to": "+15551230010", "body": "Now", "send_at": "2001-01-01T00:00:00Z"}))
        .await;
    assert_eq!(a.body["status"], "queued");
}

#[tokio::test]
async fn idempotency_key_replays_and_refuses_another_body() {
    let g = gateway();
    let key = [("idempotency-key", "order-1234-reminder")];
    let request = json!({"to": "+15551230020", "body": "Your order shipped"});
    let first = g
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(SENDER),
            Some(request.clone()),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let id = first.body["id"].as_str().unwrap().to_string();

    // The message moves on; the replay still answers what the first call got.
    g.store
        .update(&id, |m| {
            m.transition(Utc::now(), MessageStatus::Sending);
            true
        })
        .await
        .unwrap();
    // Same request written differently (the fingerprint is of the normalised request).
    let same =
        json!({"to": "+1 555 123 0020", "body": "Your order shipped", "status_report": true});
    let second = g
        .call_with(Method::POST, "/v1/messages", Some(SENDER), Some(same), &key)
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(second.body, first.body, "the same 202 body");
    assert_eq!(g.stored(), 1, "sent once");

    let other = json!({"to": "+15551230020", "body": "Something else"});
    let third = g
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(SENDER),
            Some(other),
            &key,
        )
        .await;
    third.problem(422, "idempotency_key_reused");
    assert_eq!(g.stored(), 1);

    // Without a key, the same request is a new message.
    g.send(request).await;
    assert_eq!(g.stored(), 2);

    let bad = g
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(SENDER),
            Some(json!({"to": "+15551230020", "body": "x"})),
            &[("idempotency-key", "")],
        )
        .await;
    bad.problem(422, "invalid_idempotency_key");
}

#[tokio::test]
async fn get_one_with_history() {
    let g = gateway();
    let id = g.sent("+15551230030", "hello").await;
    let a = g
        .call(
            Method::GET,
            &format!("/v1/messages/{id}"),
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["id"], id.as_str());
    assert_eq!(a.body["direction"], "outbound");
    assert_eq!(a.body["contact"], "+15551230030");
    assert_eq!(a.body["error"], Value::Null);
    assert_eq!(a.body["history"][0]["status"], "queued");
    // The wire type, not the stored record: public fields only.
    let keys: Vec<&str> = a
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "alphabet",
            "body",
            "category",
            "contact",
            "created_at",
            "direction",
            "error",
            "from",
            "history",
            "id",
            "modem",
            "part_status",
            "parts",
            "status",
            "status_report",
            "to",
            "updated_at"
        ]
    );
    let stored = serde_json::to_value(g.store.get(&id).unwrap().unwrap()).unwrap();
    for internal in ["reference", "attempts"] {
        assert!(stored.get(internal).is_some(), "the store keeps {internal}");
    }
    conforms(&a.body, "Message");

    g.call(Method::GET, "/v1/messages/msg_nope", Some(READER), None)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn list_filters_and_cursors() {
    let g = gateway();
    let mut to_a = Vec::new();
    for i in 0..5 {
        to_a.push(g.sent("+15551230041", &format!("a{i}")).await);
    }
    g.sent("+15551230042", "b0").await;
    g.inbound("+15551230041", "reply from a", b"pdu-a").await;

    // Pages of 2 over all 7, newest first, no overlaps.
    let mut seen = Vec::new();
    let mut uri = "/v1/messages?limit=2".to_string();
    loop {
        let a = g.call(Method::GET, &uri, Some(READER), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.body);
        let items = a.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_string()));
        match a.body["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/messages?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 7);

    // Contact, percent-encoded and raw (+ decodes as a space).
    for uri in [
        "/v1/messages?contact=%2B15551230041",
        "/v1/messages?contact=+15551230041",
        "/v1/messages?contact=5551230041",
    ] {
        let a = g.call(Method::GET, uri, Some(READER), None).await;
        assert_eq!(a.body["items"].as_array().unwrap().len(), 6, "{uri}");
    }
    let a = g
        .call(
            Method::GET,
            "/v1/messages?contact=%2B15551230041&direction=outbound&limit=3",
            Some(READER),
            None,
        )
        .await;
    let ids: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&to_a[4], &to_a[3], &to_a[2]].map(String::as_str));
    let cursor = a.body["next_cursor"].as_str().unwrap();
    let a = g
        .call(
            Method::GET,
            &format!(
                "/v1/messages?contact=%2B15551230041&direction=outbound&limit=3&cursor={cursor}"
            ),
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(a.body["next_cursor"], Value::Null);

    let a = g
        .call(
            Method::GET,
            "/v1/messages?direction=inbound",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["items"][0]["status"], "received");
    let a = g
        .call(
            Method::GET,
            "/v1/messages?status=queued",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 6);
    let future = (Utc::now() + Duration::hours(1))
        .to_rfc3339()
        .replace('+', "%2B");
    let a = g
        .call(
            Method::GET,
            &format!("/v1/messages?since={future}"),
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 0);

    for bad in [
        "/v1/messages?limit=0",
        "/v1/messages?limit=501",
        "/v1/messages?status=lost",
        "/v1/messages?direction=up",
        "/v1/messages?since=yesterday",
        "/v1/messages?cursor=xyz",
        "/v1/messages?contact=not-a-sender-name",
        "/v1/messages?colour=red",
    ] {
        g.call(Method::GET, bad, Some(READER), None)
            .await
            .problem(422, "invalid_query");
    }
}

#[tokio::test]
async fn cancel_waiting_then_409() {
    let g = gateway();
    let id = g.sent("+15551230050", "cancel me").await;
    let a = g
        .call(
            Method::DELETE,
            &format!("/v1/messages/{id}"),
            Some(SENDER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "cancelled");
    assert_eq!(
        a.body["history"].as_array().unwrap().last().unwrap()["note"],
        "cancelled by API"
    );
    assert!(
        g.store.due(Utc::now(), 10).unwrap().is_empty(),
        "out of the outbox"
    );
    g.call(
        Method::DELETE,
        &format!("/v1/messages/{id}"),
        Some(SENDER),
        None,
    )
    .await
    .problem(409, "not_cancellable");

    // A scheduled one cancels too; one with a part at a modem does not.
    let at = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let a = g
        .send(json!({"to": "+15551230050", "body": "later", "send_at": at}))
        .await;
    let scheduled = a.body["id"].as_str().unwrap().to_string();
    let a = g
        .call(
            Method::DELETE,
            &format!("/v1/messages/{scheduled}"),
            Some(SENDER),
            None,
        )
        .await;
    assert_eq!(a.body["status"], "cancelled");

    let busy = g.sent("+15551230050", "on its way").await;
    g.store
        .update(&busy, |m| {
            m.part_status[0].status = PartStatus::Sending;
            m.transition(Utc::now(), MessageStatus::Sending);
            true
        })
        .await
        .unwrap();
    g.call(
        Method::DELETE,
        &format!("/v1/messages/{busy}"),
        Some(SENDER),
        None,
    )
    .await
    .problem(409, "not_cancellable");
    assert_eq!(
        g.store.get(&busy).unwrap().unwrap().status,
        MessageStatus::Sending
    );

    g.call(Method::DELETE, "/v1/messages/msg_nope", Some(SENDER), None)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn resend_only_from_unknown() {
    let g = gateway();
    let text = "x".repeat(300); // two parts
    let id = g.sent("+15551230060", &text).await;
    g.call(
        Method::POST,
        &format!("/v1/messages/{id}/resend"),
        Some(SENDER),
        None,
    )
    .await
    .problem(409, "not_resendable");

    // Part 1 sent, part 2 in flight when the daemon died.
    g.store
        .update(&id, |m| {
            m.modem = Some("m1".into());
            m.part_status[0].status = PartStatus::Sent;
            m.part_status[0].mr = Some(7);
            m.part_status[1].status = PartStatus::Sending;
            m.transition(Utc::now(), MessageStatus::Unknown);
            true
        })
        .await
        .unwrap();
    let a = g
        .call(
            Method::POST,
            &format!("/v1/messages/{id}/resend"),
            Some(SENDER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["status"], "queued");
    assert_eq!(
        a.body["history"].as_array().unwrap().last().unwrap()["note"],
        "resent by API"
    );
    let stored = g.store.get(&id).unwrap().unwrap();
    assert_eq!(
        stored.part_status[0].status,
        PartStatus::Sent,
        "sent parts stay sent"
    );
    assert_eq!(stored.part_status[1].status, PartStatus::Pending);
    assert_eq!(
        g.store.due(Utc::now(), 10).unwrap().len(),
        1,
        "back in the outbox"
    );

    g.call(
        Method::POST,
        &format!("/v1/messages/{id}/resend"),
        Some(SENDER),
        None,
    )
    .await
    .problem(409, "not_resendable");
    g.call(
        Method::POST,
        "/v1/messages/msg_nope/resend",
        Some(SENDER),
        None,
    )
    .await
    .problem(404, "not_found");
}

#[tokio::test]
async fn threads_pages_and_read_marks() {
    let g = gateway();
    g.inbound("+15551230071", "Hi, can I book for Friday?", b"t1")
        .await;
    g.sent("+15551230071", "Yes, 10:00 works.").await;
    g.inbound("+15551230071", "C", b"t2").await;
    g.inbound("+15551230072", "STOP", b"t3").await;

    let a = g.call(Method::GET, "/v1/threads", Some(READER), None).await;
    assert_eq!(a.status, StatusCode::OK);
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["contact"], "+15551230072", "most recent first");
    assert_eq!(items[1]["contact"], "+15551230071");
    assert_eq!(items[1]["last_preview"], "C");
    assert_eq!(items[1]["last_direction"], "inbound");
    assert_eq!(
        (items[1]["unread"].as_u64(), items[1]["total"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(a.body["next_cursor"], Value::Null);
    let a = g
        .call(Method::GET, "/v1/threads?limit=1", Some(READER), None)
        .await;
    let cursor = a.body["next_cursor"].as_str().unwrap();
    let a = g
        .call(
            Method::GET,
            &format!("/v1/threads?limit=1&cursor={cursor}"),
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.body["items"][0]["contact"], "+15551230071");

    // Oldest first; pages go back in time.
    let a = g
        .call(
            Method::GET,
            "/v1/threads/%2B15551230071?limit=2",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let bodies: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Yes, 10:00 works.", "C"]);
    let cursor = a.body["next_cursor"].as_str().unwrap();
    let a = g
        .call(
            Method::GET,
            &format!("/v1/threads/%2B15551230071?limit=2&cursor={cursor}"),
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.body["items"][0]["body"], "Hi, can I book for Friday?");
    assert_eq!(a.body["next_cursor"], Value::Null);
    // A raw + in a path is a +; a national number is normalised.
    let a = g
        .call(Method::GET, "/v1/threads/+15551230071", Some(READER), None)
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 3);
    let a = g
        .call(Method::GET, "/v1/threads/555-123-0071", Some(READER), None)
        .await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 3);
    g.call(
        Method::GET,
        "/v1/threads/%2B15559999999",
        Some(READER),
        None,
    )
    .await
    .problem(404, "not_found");
    // A name could be an alphanumeric sender: no such thread.
    g.call(Method::GET, "/v1/threads/bob", Some(READER), None)
        .await
        .problem(404, "not_found");
    // Neither a number nor a sender (over 11 characters, not GSM text).
    for bad in ["twelve-chars", "%F0%9F%98%80"] {
        g.call(
            Method::GET,
            &format!("/v1/threads/{bad}"),
            Some(READER),
            None,
        )
        .await
        .problem(422, "invalid_number");
    }

    let a = g
        .call(
            Method::POST,
            "/v1/threads/%2B15551230071/read",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        json!({"contact": "+15551230071", "marked": 2, "unread": 0})
    );
    let a = g.call(Method::GET, "/v1/threads", Some(READER), None).await;
    assert_eq!(a.body["items"][1]["unread"], 0);
    assert_eq!(
        a.body["items"][0]["unread"], 1,
        "the other thread is untouched"
    );
    let a = g
        .call(
            Method::GET,
            "/v1/messages?direction=inbound&contact=%2B15551230071",
            Some(READER),
            None,
        )
        .await;
    assert!(a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["read"] == true));
    g.call(
        Method::POST,
        "/v1/threads/%2B15559999999/read",
        Some(READER),
        None,
    )
    .await
    .problem(404, "not_found");
}

#[tokio::test]
async fn modems_endpoints() {
    let mut g = gateway();
    let a = g.call(Method::GET, "/v1/modems", Some(READER), None).await;
    assert_eq!(a.body, json!({"items": [], "next_cursor": null}));
    g.add_modem("m2", ModemState::Offline, Some("port gone"));
    g.add_modem("m1", ModemState::Ready, None);
    let a = g.call(Method::GET, "/v1/modems", Some(READER), None).await;
    let items = a.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], "m1", "by id");
    assert_eq!(items[0]["state"], "ready");
    for field in [
        "identity",
        "operator",
        "signal_csq",
        "registration",
        "queue_depth",
        "counters",
        "last_error",
    ] {
        assert!(items[0].get(field).is_some(), "{field}");
    }
    let a = g
        .call(Method::GET, "/v1/modems/m2", Some(READER), None)
        .await;
    assert_eq!(
        (a.body["state"].as_str(), a.body["reason"].as_str()),
        (Some("offline"), Some("port gone"))
    );

    // Snapshots follow the modem's watch channel.
    g.modems[0].send_modify(|s| s.state = ModemState::Ready);
    let a = g
        .call(Method::GET, "/v1/modems/m2", Some(READER), None)
        .await;
    assert_eq!(a.body["state"], "ready");
    g.call(Method::GET, "/v1/modems/m9", Some(READER), None)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn health_and_readiness() {
    let mut g = gateway();
    let a = g.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (a.status, a.body.clone()),
        (StatusCode::OK, json!({"status": "ok"}))
    );

    let a = g.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.body, json!({"status": "not_ready"}));
    let a = g.call(Method::GET, "/readyz", Some(READER), None).await;
    assert_eq!(a.body, json!({"status": "not_ready", "modems": []}));

    g.add_modem("m1", ModemState::Degraded, Some("open /dev/ttyUSB3: gone"));
    // Without a token (or with one that cannot read): ready or not, and
    // nothing about ports or errors.
    for token in [None, Some("not-a-token"), Some(SENDER)] {
        let a = g.call(Method::GET, "/readyz", token, None).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{token:?}");
        assert_eq!(a.body, json!({"status": "not_ready"}), "{token:?}");
        conforms(&a.body, "Readiness");
    }
    for token in [READER, ADMIN] {
        let a = g.call(Method::GET, "/readyz", Some(token), None).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            a.body,
            json!({"status": "not_ready", "modems": [{"id": "m1", "state": "degraded", "reason": "open /dev/ttyUSB3: gone"}]})
        );
        conforms(&a.body, "Readiness");
    }
    g.modems[0].send_modify(|s| {
        s.state = ModemState::Ready;
        s.reason = None;
    });
    let a = g.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"status": "ready"}));
}

#[tokio::test]
async fn openapi_document_covers_every_served_route() {
    let g = gateway();
    let a = g.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["openapi"], "3.1.0");
    assert_eq!(a.body, api::openapi::document());

    let paths = a.body["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            assert!(
                api::ROUTES
                    .iter()
                    .any(|r| r.path == path && r.method.eq_ignore_ascii_case(method)),
                "{method} {path} documented but not in ROUTES"
            );
            // And the router really serves it: not the 404 fallback, not 405.
            let uri = path
                .replace("{id}", "m1")
                .replace("{contact}", "%2B15551230099");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if uri.ends_with("/stream") {
                // A live event stream never ends, so its body cannot be
                // read to the end here; tests/webhook_delivery.rs reads it.
                continue;
            }
            let answer = g.call(method.clone(), &uri, Some(ADMIN), None).await;
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            let fallback = answer.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("no such resource"));
            assert!(!fallback, "{method} {uri} fell through to the fallback");
        }
    }
    assert_eq!(documented, api::ROUTES.len(), "and vice versa");
}

#[tokio::test]
async fn auth_failures() {
    let g = gateway();
    let ok = json!({"to": "+15551230080", "body": "hi"});
    let a = g
        .call(Method::POST, "/v1/messages", None, Some(ok.clone()))
        .await;
    a.problem(401, "unauthorized");
    assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Bearer");
    g.call(
        Method::POST,
        "/v1/messages",
        Some("not-a-token"),
        Some(ok.clone()),
    )
    .await
    .problem(401, "unauthorized");
    let basic = g
        .call_with(
            Method::GET,
            "/v1/messages",
            None,
            None,
            &[("authorization", "Basic YWRtaW4=")],
        )
        .await;
    basic.problem(401, "unauthorized");
    // Wrong scope either way.
    g.call(Method::POST, "/v1/messages", Some(READER), Some(ok.clone()))
        .await
        .problem(403, "forbidden");
    g.call(Method::GET, "/v1/messages", Some(SENDER), None)
        .await
        .problem(403, "forbidden");
    g.call(Method::GET, "/v1/threads", Some(SENDER), None)
        .await
        .problem(403, "forbidden");
    g.call(Method::DELETE, "/v1/messages/msg_x", Some(READER), None)
        .await
        .problem(403, "forbidden");
    // Auth comes before validation: an anonymous bad request learns nothing.
    g.call(
        Method::POST,
        "/v1/messages",
        None,
        Some(json!({"to": "bob"})),
    )
    .await
    .problem(401, "unauthorized");
    assert_eq!(g.stored(), 0);
    // Admin does everything.
    assert_eq!(
        g.call(Method::POST, "/v1/messages", Some(ADMIN), Some(ok))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        g.call(Method::GET, "/v1/messages", Some(ADMIN), None)
            .await
            .status,
        StatusCode::OK
    );
    // Unknown paths and wrong methods are problems too.
    g.call(Method::GET, "/v1/nothing", Some(ADMIN), None)
        .await
        .problem(404, "not_found");
    g.call(Method::PUT, "/v1/messages", Some(ADMIN), None)
        .await
        .problem(405, "method_not_allowed");
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_code_and_store_nothing() {
    let mut g = gateway();
    g.add_modem("m1", ModemState::Ready, None);
    let ok_to = "+15551230090";
    let json_cases: Vec<(Value, u16, &str)> = vec![
        (json!({"to": "", "body": "hi"}), 422, "invalid_number"),
        (json!({"body": "hi"}), 422, "invalid_number"),
        (
            json!({"to": "call me", "body": "hi"}),
            422,
            "invalid_number",
        ),
        (json!({"to": "+1555", "body": "hi"}), 422, "invalid_number"),
        (
            json!({"to": "+1234567890123456", "body": "hi"}),
            422,
            "invalid_number",
        ),
        (
            json!({"to": "123-4567", "body": "hi"}),
            422,
            "invalid_number",
        ),
        (json!({"to": ok_to, "body": ""}), 422, "body_empty"),
        (json!({"to": ok_to, "body": "   "}), 422, "body_empty"),
        (json!({"to": ok_to}), 422, "body_empty"),
        (
            json!({"to": ok_to, "body": "a".repeat(1600)}),
            422,
            "body_too_long",
        ),
        (
            json!({"to": ok_to, "body": "😀".repeat(400)}),
            422,
            "body_too_long",
        ),
        (
            json!({"to": ok_to, "body": "hi", "send_at": "tomorrow"}),
            422,
            "invalid_send_at",
        ),
        (
            json!({"to": ok_to, "body": "hi", "send_at": 1700000000}),
            422,
            "invalid_send_at",
        ),
        (
            json!({"to": ok_to, "body": "hi", "validity": "forever"}),
            422,
            "invalid_validity",
        ),
        (
            json!({"to": ok_to, "body": "hi", "validity": -1}),
            422,
            "invalid_validity",
        ),
        (
            json!({"to": ok_to, "body": "hi", "modem": "m9"}),
            422,
            "unknown_modem",
        ),
        (
            json!({"to": ok_to, "body": "hi", "colour": "red"}),
            422,
            "invalid_request",
        ),
        (
            json!({"to": 15551230090u64, "body": "hi"}),
            422,
            "invalid_request",
        ),
        (json!(["not", "an", "object"]), 422, "invalid_request"),
    ];
    for (body, status, code) in json_cases {
        let a = g.send(body.clone()).await;
        assert_eq!(a.body["code"], code, "{body}");
        a.problem(status, code);
    }

    let raw = |content_type: &str, body: Vec<u8>| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/messages")
            .header(header::AUTHORIZATION, format!("Bearer {SENDER}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };
    let valid = format!(r#"{{"to":"{ok_to}","body":"hi"}}"#).into_bytes();
    let mut oversized = format!(r#"{{"to":"{ok_to}","body":""#).into_bytes();
    oversized.extend(std::iter::repeat_n(b'a', 70 * 1024));
    oversized.extend(br#""}"#);
    let raw_cases = vec![
        (
            raw("application/json", b"{\"to\": ".to_vec()),
            400,
            "invalid_json",
        ),
        (
            raw("application/json", b"to=+15551230090".to_vec()),
            400,
            "invalid_json",
        ),
        (raw("application/json", Vec::new()), 400, "invalid_json"),
        (
            raw("text/plain", valid.clone()),
            415,
            "unsupported_media_type",
        ),
        (
            raw("application/x-www-form-urlencoded", valid),
            415,
            "unsupported_media_type",
        ),
        (raw("application/json", oversized), 413, "payload_too_large"),
    ];
    for (request, status, code) in raw_cases {
        g.send_request(request).await.problem(status, code);
    }

    assert!(
        g.store
            .list(&MessageFilter::default(), None, 100)
            .unwrap()
            .items
            .is_empty(),
        "nothing refused was stored"
    );
    assert_eq!(g.store.outbox_len(), 0);
    assert!(g.store.threads(None, 10).unwrap().items.is_empty());
}

#[tokio::test]
async fn serves_on_a_socket_and_shuts_down_gracefully() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let g = gateway();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, g.state.clone(), async {
        let _ = stopped.await;
    }));

    let request = |path: &str, extra: &str, body: &str| {
        format!(
            "{path}\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let exchange = |text: String| async move {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(text.as_bytes()).await.unwrap();
        let mut reply = String::new();
        socket.read_to_string(&mut reply).await.unwrap();
        reply
    };
    let reply = exchange(request("GET /healthz HTTP/1.1", "", "")).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with(r#"{"status":"ok"}"#), "{reply}");

    let body = r#"{"to":"+15551230095","body":"over the wire"}"#;
    let extra = format!("Authorization: Bearer {SENDER}\r\nContent-Type: application/json\r\n");
    let reply = exchange(request("POST /v1/messages HTTP/1.1", &extra, body)).await;
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    assert_eq!(g.stored(), 1);

    stop.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap();
    assert!(result.is_ok());
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

/// Why `value` does not fit `schema` of the served OpenAPI document (empty:
/// it fits). Stricter than JSON Schema in one way, on purpose: an object may
/// carry only the properties its schema lists, so a field served without
/// being documented is caught here (schemathesis, in the interop step,
/// checks the rest against real traffic).
fn misfits(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{at}: unresolved {name}");
        return misfits(doc, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options
                .iter()
                .filter(|o| misfits(doc, o, value, at).is_empty())
                .count();
            let ok = if key == "oneOf" { fits == 1 } else { fits >= 1 };
            if !ok {
                return vec![format!("{at}: {fits} of the {key} options fit {value}")];
            }
        }
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.contains(value) {
            return vec![format!("{at}: {value} is not one of {options:?}")];
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let type_of = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_fits = types.is_empty()
        || types.contains(&type_of)
        || (type_of == "integer" && types.contains(&"number"));
    if !type_fits {
        return vec![format!("{at}: {type_of} where the schema says {types:?}")];
    }
    let mut out = Vec::new();
    if let (Some(text), Some("date-time")) = (value.as_str(), schema["format"].as_str()) {
        if chrono::DateTime::parse_from_rfc3339(text).is_err() {
            out.push(format!("{at}: {text:?} is not an RFC 3339 time"));
        }
    }
    if let Some(minimum) = schema["minimum"].as_f64() {
        if value.as_f64().is_some_and(|n| n < minimum) {
            out.push(format!("{at}: {value} is under {minimum}"));
        }
    }
    match value {
        Value::Object(fields) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    out.push(format!("{at}: required {name} is missing"));
                }
            }
            if let Some(properties) = schema["properties"].as_object() {
                for (name, field) in fields {
                    match properties.get(name) {
                        Some(s) => out.extend(misfits(doc, s, field, &format!("{at}.{name}"))),
                        None => out.push(format!("{at}: {name} is served but not documented")),
                    }
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                out.extend(misfits(doc, &schema["items"], item, &format!("{at}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

/// Assert that `value` fits the document's schema `name`.
fn conforms(value: &Value, name: &str) {
    conforms_to(
        value,
        &json!({ "$ref": format!("#/components/schemas/{name}") }),
    );
}

fn conforms_to(value: &Value, schema: &Value) {
    let doc = api::openapi::document();
    let problems = misfits(&doc, schema, value, "$");
    assert!(problems.is_empty(), "{problems:#?}\nin {value:#}");
}

/// The schema of an operation's answer with this status, from the document.
fn answer_schema(path: &str, method: &str, status: u16) -> Value {
    let doc = api::openapi::document();
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    let content = response["content"].as_object().unwrap_or_else(|| {
        panic!("{method} {path} documents no {status} body");
    });
    content.values().next().unwrap()["schema"].clone()
}

#[tokio::test]
async fn served_bodies_fit_the_derived_schemas() {
    let mut g = gateway();
    g.add_modem("m1", ModemState::Ready, None);
    // Outbound with every optional field set.
    let at = (Utc::now() + Duration::hours(2)).to_rfc3339();
    let a = g
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(SENDER),
            Some(
                json!({"to": "+15551230500", "body": "Reminder", "modem": "m1",
                        "validity": "24h", "send_at": at, "category": "transactional"}),
            ),
            &[("idempotency-key", "order-500")],
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    conforms_to(&a.body, &answer_schema("/v1/messages", "post", 202));
    let id = a.body["id"].as_str().unwrap().to_string();
    let a = g
        .call(
            Method::GET,
            &format!("/v1/messages/{id}"),
            Some(READER),
            None,
        )
        .await;
    conforms_to(&a.body, &answer_schema("/v1/messages/{id}", "get", 200));
    assert_eq!(a.body["idempotency_key"], "order-500");
    assert_eq!(a.body["requested_modem"], "m1");
    assert_eq!(
        a.body["not_before"].as_str().map(|t| t.is_empty()),
        Some(false)
    );
    assert_eq!(a.body["category"], "transactional");
    assert!(a.body.get("read").is_none(), "inbound only");
    // The checker sees drift: the stored record has undocumented fields.
    let record = serde_json::to_value(g.store.get(&id).unwrap().unwrap()).unwrap();
    let doc = api::openapi::document();
    let found = misfits(
        &doc,
        &json!({"$ref": "#/components/schemas/Message"}),
        &record,
        "$",
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("reference is served but not documented")),
        "{found:?}"
    );
    let a = g
        .call(
            Method::DELETE,
            &format!("/v1/messages/{id}"),
            Some(SENDER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    conforms_to(&a.body, &answer_schema("/v1/messages/{id}", "delete", 200));

    // Inbound, with its network time and read mark; then the lists.
    g.inbound("+15551230501", "Hello", b"s1").await;
    let a = g
        .call(Method::GET, "/v1/messages", Some(READER), None)
        .await;
    conforms_to(&a.body, &answer_schema("/v1/messages", "get", 200));
    let inbound = &a.body["items"][0];
    assert_eq!(inbound["direction"], "inbound");
    assert_eq!(
        (&inbound["read"], &inbound["incomplete"]),
        (&json!(false), &json!(false))
    );
    assert!(inbound["network_time"].is_string() && inbound.get("category").is_none());
    let a = g.call(Method::GET, "/v1/threads", Some(READER), None).await;
    conforms_to(&a.body, &answer_schema("/v1/threads", "get", 200));
    let a = g
        .call(
            Method::GET,
            "/v1/threads/%2B15551230501",
            Some(READER),
            None,
        )
        .await;
    conforms_to(&a.body, &answer_schema("/v1/threads/{contact}", "get", 200));
    let a = g
        .call(
            Method::POST,
            "/v1/threads/%2B15551230501/read",
            Some(READER),
            None,
        )
        .await;
    conforms_to(
        &a.body,
        &answer_schema("/v1/threads/{contact}/read", "post", 200),
    );

    // A full contact profile, its lists and an import.
    let a = g
        .call(
            Method::PUT,
            "/v1/contacts/%2B15551230501",
            Some(SENDER),
            Some(
                json!({"name": "Ana", "external_id": "crm-501", "tags": ["vip"],
                        "owner_team": "support", "time_zone": "America/Chicago",
                        "fields": {"plan": "gold"}}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    conforms_to(
        &a.body,
        &answer_schema("/v1/contacts/{contact}", "put", 200),
    );
    for uri in [
        "/v1/contacts?tag=vip",
        "/v1/contacts?q=an&limit=5",
        "/v1/contacts?external_id=crm-501",
    ] {
        let a = g.call(Method::GET, uri, Some(READER), None).await;
        assert_eq!(a.body["items"][0]["external_id"], "crm-501", "{uri}");
        conforms_to(&a.body, &answer_schema("/v1/contacts", "get", 200));
    }
    let import = Request::builder()
        .method(Method::POST)
        .uri("/v1/contacts/import")
        .header(header::AUTHORIZATION, format!("Bearer {SENDER}"))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(
            "number,name,plan
+15551230502,Bo,silver
nope,X,
",
        ))
        .unwrap();
    let a = g.send_request(import).await;
    assert_eq!(
        (&a.body["imported"], &a.body["errors"][0]["line"]),
        (&json!(1), &json!(3)),
        "{}",
        a.body
    );
    conforms_to(&a.body, &answer_schema("/v1/contacts/import", "post", 200));
    let a = g
        .call(
            Method::PUT,
            "/v1/contacts/%2B15551230502",
            Some(SENDER),
            Some(json!({"external_id": "crm-501"})),
        )
        .await;
    a.problem(409, "external_id_taken");
    conforms_to(
        &a.body,
        &answer_schema("/v1/contacts/{contact}", "put", 409),
    );

    // Events carry the wire Message, without the record's internal fields,
    // and who the contact is.
    let a = g.call(Method::GET, "/v1/events", Some(READER), None).await;
    conforms_to(&a.body, &answer_schema("/v1/events", "get", 200));
    let received = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "message.received")
        .expect("a message.received event");
    conforms(&received["data"], "Message");
    assert!(received["data"].get("reference").is_none());
    assert_eq!(
        received["contact"],
        json!({"number": "+15551230501", "name": "Ana", "external_id": "crm-501"})
    );

    for (path, uri) in [
        ("/v1/modems", "/v1/modems"),
        ("/v1/modems/{id}", "/v1/modems/m1"),
        ("/v1/webhooks", "/v1/webhooks"),
        ("/v1/webhooks/deliveries", "/v1/webhooks/deliveries"),
        ("/v1/contacts/{contact}", "/v1/contacts/%2B15551230501"),
        (
            "/v1/contacts/{contact}/consent",
            "/v1/contacts/%2B15551230501/consent",
        ),
        ("/healthz", "/healthz"),
    ] {
        let a = g.call(Method::GET, uri, Some(ADMIN), None).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}: {}", a.body);
        conforms_to(&a.body, &answer_schema(path, "get", 200));
    }
    let a = g
        .call(
            Method::PUT,
            "/v1/contacts/%2B15551230501/consent",
            Some(SENDER),
            Some(json!({"status": "opted_in", "source": "web_form", "evidence": "form 7"})),
        )
        .await;
    conforms_to(
        &a.body,
        &answer_schema("/v1/contacts/{contact}/consent", "put", 200),
    );
    assert_eq!(a.body["ledger"][0]["evidence"]["source"], "web_form");
    let a = g
        .call(
            Method::DELETE,
            "/v1/contacts/%2B15551230501",
            Some(ADMIN),
            None,
        )
        .await;
    conforms_to(
        &a.body,
        &answer_schema("/v1/contacts/{contact}", "delete", 200),
    );
    // And a problem.
    let a = g.send(json!({"to": "bob", "body": "x"})).await;
    conforms_to(&a.body, &answer_schema("/v1/messages", "post", 422));
    // Campaigns (no campaign task runs here: the campaign stays accepting,
    // with its request-time errors and skips counted).
    let campaign = json!({"name": "Spring", "template": "Hi, see you {{time}}",
        "recipients": {"numbers": ["+15551230600", "12", "+15551230600"]},
        "variants": [{"id": "a", "weight": 2}, {"id": "b", "template": "See you {{time}}"}],
        "category": "transactional", "flow": "appointment",
        "context": {"time": "Tue 10:30", "slots": ["Wed 9:00"]}, "send_at": at});
    let a = g
        .call_with(
            Method::POST,
            "/v1/campaigns",
            Some(SENDER),
            Some(campaign.clone()),
            &[("idempotency-key", "spring-1")],
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    conforms_to(&a.body, &answer_schema("/v1/campaigns", "post", 202));
    assert_eq!(
        (
            &a.body["recipients"]["errors"],
            &a.body["recipients"]["skipped_duplicate"]
        ),
        (&json!(1), &json!(1))
    );
    let id = a.body["id"].as_str().unwrap().to_string();
    // The same key and body: the same campaign; another body: refused.
    let again = g
        .call_with(
            Method::POST,
            "/v1/campaigns",
            Some(SENDER),
            Some(campaign.clone()),
            &[("idempotency-key", "spring-1")],
        )
        .await;
    assert_eq!(
        (again.status, &again.body["id"]),
        (StatusCode::ACCEPTED, &json!(id))
    );
    let mut other = campaign;
    other["name"] = json!("Autumn");
    let reused = g
        .call_with(
            Method::POST,
            "/v1/campaigns",
            Some(SENDER),
            Some(other),
            &[("idempotency-key", "spring-1")],
        )
        .await;
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    conforms_to(&reused.body, &answer_schema("/v1/campaigns", "post", 422));
    let a = g
        .call(Method::GET, "/v1/campaigns", Some(READER), None)
        .await;
    assert_eq!(a.body["items"].as_array().map(Vec::len), Some(1));
    conforms_to(&a.body, &answer_schema("/v1/campaigns", "get", 200));
    let a = g
        .call(
            Method::GET,
            &format!("/v1/campaigns/{id}"),
            Some(READER),
            None,
        )
        .await;
    conforms_to(&a.body, &answer_schema("/v1/campaigns/{id}", "get", 200));
    let a = g
        .call(
            Method::GET,
            &format!("/v1/campaigns/{id}/errors"),
            Some(READER),
            None,
        )
        .await;
    conforms_to(
        &a.body,
        &answer_schema("/v1/campaigns/{id}/errors", "get", 200),
    );
    assert_eq!(a.body["items"][0]["number"], "12");
    let a = g
        .call(
            Method::POST,
            &format!("/v1/campaigns/{id}/cancel"),
            Some(SENDER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    conforms_to(
        &a.body,
        &answer_schema("/v1/campaigns/{id}/cancel", "post", 202),
    );
    assert_eq!(a.body["state"], "cancelling");
}

#[tokio::test]
async fn alphanumeric_sender_threads_open() {
    let g = gateway();
    // As the modem layer stores them: the sender's text, and a short code.
    g.inbound("InfoSMS", "Your code is 4411", b"a1").await;
    g.inbound("InfoSMS", "Your code is 9022", b"a2").await;
    g.inbound("My Bank", "Balance low", b"a3").await;
    g.inbound("72404", "Welcome", b"a4").await;
    let a = g.call(Method::GET, "/v1/threads", Some(READER), None).await;
    let contacts: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["contact"].as_str().unwrap())
        .collect();
    assert_eq!(contacts, ["72404", "My Bank", "InfoSMS"]);
    for (path, bodies) in [
        ("InfoSMS", vec!["Your code is 4411", "Your code is 9022"]),
        ("My%20Bank", vec!["Balance low"]),
        ("72404", vec!["Welcome"]),
    ] {
        let a = g
            .call(
                Method::GET,
                &format!("/v1/threads/{path}"),
                Some(READER),
                None,
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        let got: Vec<&str> = a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(got, bodies, "{path}");
    }
    let a = g
        .call(Method::POST, "/v1/threads/InfoSMS/read", Some(READER), None)
        .await;
    assert_eq!(
        a.body,
        json!({"contact": "InfoSMS", "marked": 2, "unread": 0})
    );
    // The message list filters by the sender too.
    let a = g
        .call(
            Method::GET,
            "/v1/messages?contact=InfoSMS",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.body["items"].as_array().unwrap().len(), 2);
    // Case matters, as the store keeps it.
    g.call(Method::GET, "/v1/threads/infosms", Some(READER), None)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn webhook_urls_hide_secrets_from_readers() {
    let g = gateway();
    g.store
        .register_webhooks(&[
            (
                "crm".to_string(),
                "http://hook:s3cr3t@crm.lan:8080/sms?token=abc123".to_string(),
                vec![],
            ),
            (
                "plain".to_string(),
                "http://127.0.0.1:9/in".to_string(),
                vec![],
            ),
        ])
        .await
        .unwrap();
    let urls = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["url"].as_str().unwrap().to_string())
            .collect()
    };
    let a = g
        .call(Method::GET, "/v1/webhooks", Some(READER), None)
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let shown = urls(&a.body);
    assert_eq!(
        shown,
        ["http://***@crm.lan:8080/sms?***", "http://127.0.0.1:9/in"]
    );
    assert!(!a.body.to_string().contains("s3cr3t") && !a.body.to_string().contains("abc123"));
    let a = g.call(Method::GET, "/v1/webhooks", Some(ADMIN), None).await;
    assert_eq!(
        urls(&a.body),
        [
            "http://hook:s3cr3t@crm.lan:8080/sms?token=abc123",
            "http://127.0.0.1:9/in"
        ]
    );
}

/// The thread and inbox routes' bodies against the document: a thread with
/// notes, activities, a flow, outcomes, a snooze and a reply.
#[tokio::test]
async fn thread_and_inbox_bodies_fit_the_derived_schemas() {
    let mut g = gateway();
    g.add_modem("m1", ModemState::Ready, None);
    let c = "%2B15551230601";
    let a = g
        .send(
            json!({"to": "+15551230601", "body": "Invoice 7: reply 1 to pay",
                     "flow": "payment", "context": {"url": "https://pay.example/7"}}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    g.inbound("+15551230601", "1", b"t1").await;
    let base = format!("/v1/threads/{c}");
    let a = g
        .call(
            Method::POST,
            &format!("{base}/notes"),
            Some(SENDER),
            Some(json!({"author": "ana", "text": "Asked for the link"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    conforms_to(
        &a.body,
        &answer_schema("/v1/threads/{contact}/notes", "post", 201),
    );
    let a = g
        .call(
            Method::PUT,
            &format!("{base}/assignment"),
            Some(SENDER),
            Some(json!({"team": "billing", "assignee": "ana"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    conforms_to(
        &a.body,
        &answer_schema("/v1/threads/{contact}/assignment", "put", 200),
    );
    let a = g
        .call(
            Method::GET,
            "/v1/inbox?team=billing&state=waiting_on_customer",
            Some(READER),
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        a.body
    );
    conforms_to(&a.body, &answer_schema("/v1/inbox", "get", 200));
    let a = g
        .call(
            Method::POST,
            &format!("{base}/reply"),
            Some(SENDER),
            Some(json!({"body": "Here it is: https://pay.example/7", "author": "ana"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    conforms_to(
        &a.body,
        &answer_schema("/v1/threads/{contact}/reply", "post", 202),
    );
    let a = g
        .call(
            Method::POST,
            &format!("{base}/outcomes"),
            Some(SENDER),
            Some(json!({"outcome": "payment_link_sent", "value": "https://pay.example/7"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    conforms_to(
        &a.body,
        &answer_schema("/v1/threads/{contact}/outcomes", "post", 201),
    );
    let until = (Utc::now() + Duration::hours(3)).to_rfc3339();
    let a = g
        .call(
            Method::PUT,
            &format!("{base}/state"),
            Some(SENDER),
            Some(json!({"state": "snoozed", "until": until})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    conforms_to(
        &a.body,
        &answer_schema("/v1/threads/{contact}/state", "put", 200),
    );
    let a = g
        .call(Method::GET, "/v1/inbox?state=snoozed", Some(READER), None)
        .await;
    conforms_to(&a.body, &answer_schema("/v1/inbox", "get", 200));
    let a = g.call(Method::GET, &base, Some(READER), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    conforms_to(&a.body, &answer_schema("/v1/threads/{contact}", "get", 200));
    let kinds: Vec<&str> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    for kind in ["message", "note", "activity"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    // thread.* events carry the wire Thread (plus what changed).
    let a = g
        .call(Method::GET, "/v1/events?limit=100", Some(READER), None)
        .await;
    conforms_to(&a.body, &answer_schema("/v1/events", "get", 200));
    let mut thread_events = 0;
    for event in a.body["items"].as_array().unwrap() {
        if event["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("thread."))
        {
            let mut data = event["data"].clone();
            assert!(data["change"].is_object(), "{event}");
            data.as_object_mut().unwrap().remove("change");
            data.as_object_mut().unwrap().remove("author");
            conforms(&data, "Thread");
            thread_events += 1;
        }
    }
    assert!(thread_events >= 4, "{}", a.body);
}
