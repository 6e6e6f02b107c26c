//! The Twilio-compatible Messaging API through `router(state).oneshot(..)`: a
//! real store in a temporary directory, a fake modem status with its own
//! number, accounts from a `[compat]` config read the daemon's way; then the
//! daemon with a simulated modem and an app on 127.0.0.1 for status
//! callbacks and incoming messages, signatures checked the documented way.

mod common;
#[path = "common/compat_receiver.rs"]
mod receiver;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};

use common::rig::{config, Rig};
use smsgate::api::compat::twilio::{id_of, sid_of};
use smsgate::api::{ApiToken, Scope};
use smsgate::config::Config;
use smsgate::modem::status::ModemState;
use smsgate::store::{MessageFilter, MessageStatus, PartStatus};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-1";
const READER_SID: &str = "ACffffffffffffffffffffffffffffffff";
const READER_TOKEN: &str = "twilio-auth-token-2";
const ADMIN: &str = "admin-secret";
const OWN: &str = "+15550000000";

fn hex(token: &str) -> String {
    smsgate::pdu::hex::encode(&smsgate::api::auth::digest(token)).to_lowercase()
}

/// The API over an empty store (tests/common/rig.rs) with modem m1 ready
/// on its own number.
struct Gateway(Rig);

impl std::ops::Deref for Gateway {
    type Target = Rig;
    fn deref(&self) -> &Rig {
        &self.0
    }
}

fn gateway() -> Gateway {
    let config = config(&format!(
        "[sms]\ndefault_country = \"US\"\n\
         [[compat.twilio]]\naccount_sid = \"{SID}\"\nauth_token_sha256 = \"{}\"\n\
         signing_token = \"{TOKEN}\"\n\
         [[compat.twilio]]\naccount_sid = \"{READER_SID}\"\nauth_token_sha256 = \"{}\"\nscope = \"read\"\n\
         [[modem]]\nid = \"m1\"\nport = \"/dev/tty-m1\"\ncost_per_part = 0.0075\n",
        hex(TOKEN),
        hex(READER_TOKEN)
    ));
    let tokens = vec![ApiToken::from_secret("ops", ADMIN, vec![Scope::Admin])];
    let mut rig = Rig::new("twilio-test", &config, tokens);
    rig.add_modem("m1", ModemState::Ready, OWN);
    Gateway(rig)
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Value,
}

impl Answer {
    /// Twilio's error JSON with this status and code.
    fn twilio_error(&self, status: u16, code: u32) {
        assert_eq!(
            (self.status.as_u16(), self.body["code"].as_u64()),
            (status, Some(u64::from(code))),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                smsgate::api::compat::url_encode(k),
                smsgate::api::compat::url_encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Gateway {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        auth: Option<&str>,
        form_body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let body = match form_body {
            Some(b) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(b)
            }
            None => Body::empty(),
        };
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let reply = self.0.send(request.body(body).unwrap()).await;
        let status = reply.status;
        let location = reply.header("location");
        let body = if reply.bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.bytes)
                .unwrap_or_else(|_| panic!("not JSON: {:?}", reply.text()))
        };
        Answer {
            status,
            location,
            body,
        }
    }

    async fn create_with(&self, pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Answer {
        self.call(
            Method::POST,
            &format!("/2010-04-01/Accounts/{SID}/Messages.json"),
            Some(&basic(SID, TOKEN)),
            Some(form(pairs)),
            headers,
        )
        .await
    }

    async fn create(&self, pairs: &[(&str, &str)]) -> Answer {
        self.create_with(pairs, &[]).await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, Some(&basic(SID, TOKEN)), None, &[])
            .await
    }

    fn stored(&self) -> usize {
        self.store
            .list(&MessageFilter::default(), None, 1000)
            .unwrap()
            .items
            .len()
    }
}

fn is_rfc2822(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| chrono::DateTime::parse_from_rfc2822(t).is_ok() && t.ends_with(" +0000"))
}

#[tokio::test]
async fn create_answers_twilios_message_resource() {
    let g = gateway();
    let a = g
        .create(&[
            ("To", "+15551234567"),
            ("From", OWN),
            ("Body", "Your table is ready"),
            ("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef"),
        ])
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let m = &a.body;
    let sid = m["sid"].as_str().unwrap();
    assert!(sid.len() == 34 && sid.starts_with("SM"), "{sid}");
    let id = id_of(sid).unwrap();
    let stored = g.store.get(&id).unwrap().unwrap();
    assert_eq!(
        stored.requested_modem.as_deref(),
        Some("m1"),
        "From picks the modem"
    );
    assert_eq!(m["account_sid"], SID);
    assert_eq!(m["to"], "+15551234567");
    assert_eq!(m["from"], OWN);
    assert_eq!(m["body"], "Your table is ready");
    assert_eq!(m["status"], "queued");
    assert_eq!(m["num_segments"], "1");
    assert_eq!(m["num_media"], "0");
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["api_version"], "2010-04-01");
    assert!(
        is_rfc2822(&m["date_created"]) && is_rfc2822(&m["date_updated"]),
        "{m}"
    );
    assert_eq!(m["date_sent"], Value::Null);
    assert_eq!(m["error_code"], Value::Null);
    assert_eq!(m["error_message"], Value::Null);
    // Not sent yet: nothing charged.
    assert_eq!(m["price"], Value::Null);
    let uri = format!("/2010-04-01/Accounts/{SID}/Messages/{sid}.json");
    assert_eq!(m["uri"], uri.as_str());
    assert_eq!(a.location.as_deref(), Some(uri.as_str()));

    // Fetch: the same resource; once sent, dated and priced per part.
    let fetched = g.get(&uri).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body["sid"], sid);
    let now = Utc::now();
    g.store
        .update(&id, |m| {
            m.modem = Some("m1".into());
            m.transition(now, MessageStatus::Sent);
            true
        })
        .await
        .unwrap();
    let sent = g.get(&uri).await.body;
    assert_eq!(sent["status"], "sent");
    assert!(is_rfc2822(&sent["date_sent"]), "{sent}");
    assert_eq!(sent["price"], "-0.0075");
    assert_eq!(sent["price_unit"], "USD");

    // Two parts of UCS-2 cost twice.
    let long = "ж".repeat(100);
    let a = g.create(&[("To", "+15551234567"), ("Body", &long)]).await;
    assert_eq!(a.body["num_segments"], "2");
}

#[tokio::test]
async fn authentication_is_basic_with_the_accounts_token() {
    let g = gateway();
    let path = format!("/2010-04-01/Accounts/{SID}/Messages.json");
    let body = || Some(form(&[("To", "+15551234567"), ("Body", "hi")]));
    for auth in [
        None,
        Some(basic(SID, "wrong")),
        Some(basic(READER_SID, TOKEN)),
        Some(format!("Bearer {ADMIN}")),
        Some("Basic !!".to_string()),
    ] {
        let a = g
            .call(Method::POST, &path, auth.as_deref(), body(), &[])
            .await;
        a.twilio_error(401, 20003);
    }
    // Another account's path with a good login.
    let other = format!("/2010-04-01/Accounts/{READER_SID}/Messages.json");
    g.call(Method::POST, &other, Some(&basic(SID, TOKEN)), body(), &[])
        .await
        .twilio_error(401, 20003);
    // A read-only account reads but does not send.
    let reader = basic(READER_SID, READER_TOKEN);
    g.call(Method::POST, &other, Some(&reader), body(), &[])
        .await
        .twilio_error(403, 20003);
    let list = g.call(Method::GET, &other, Some(&reader), None, &[]).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(g.stored(), 0);
}

#[tokio::test]
async fn refusals_use_twilios_codes_and_store_nothing() {
    let g = gateway();
    let too_long = "x".repeat(160 * 11);
    let cases: Vec<(Vec<(&str, &str)>, u32)> = vec![
        (vec![("Body", "hi")], 21604),
        (vec![("To", "12"), ("Body", "hi")], 21211),
        (vec![("To", "+15551234567")], 21602),
        (vec![("To", "+15551234567"), ("Body", "")], 21602),
        (vec![("To", "+15551234567"), ("Body", &too_long)], 21617),
        (
            vec![
                ("To", "+15551234567"),
                ("Body", "hi"),
                ("From", "+15559999999"),
            ],
            21606,
        ),
        (
            vec![
                ("To", "+15551234567"),
                ("Body", "hi"),
                ("ValidityPeriod", "0"),
            ],
            21624,
        ),
        (
            vec![
                ("To", "+15551234567"),
                ("Body", "hi"),
                ("SendAt", "2099-01-01T00:00:00Z"),
            ],
            35115,
        ),
        (
            vec![
                ("To", "+15551234567"),
                ("Body", "hi"),
                ("SendAt", "tomorrow"),
                ("ScheduleType", "fixed"),
            ],
            35115,
        ),
        (
            vec![
                ("To", "+15551234567"),
                ("Body", "hi"),
                ("StatusCallback", "ftp://x"),
            ],
            21609,
        ),
    ];
    for (pairs, code) in cases {
        g.create(&pairs).await.twilio_error(400, code);
    }
    assert_eq!(g.stored(), 0);

    // A recipient who texted STOP (recorded through /v1/optouts): 21610.
    let body = json!({"number": "+15557654321"});
    let r =
        g.0.call(Method::POST, "/v1/optouts", Some(ADMIN), Some(&body), &[])
            .await;
    assert_eq!(r.status, StatusCode::OK);
    g.create(&[("To", "+15557654321"), ("Body", "Sale!")])
        .await
        .twilio_error(400, 21610);
    assert_eq!(g.stored(), 0);
}

#[tokio::test]
async fn idempotency_token_replays_the_first_message() {
    let g = gateway();
    let token = [("I-Twilio-Idempotency-Token", "retry-1")];
    let pairs = [("To", "+15551234567"), ("Body", "once")];
    let first = g.create_with(&pairs, &token).await;
    let again = g.create_with(&pairs, &token).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(first.body["sid"], again.body["sid"]);
    assert_eq!(g.stored(), 1);
    // The same token with another body is refused, as /v1 refuses it.
    let other = g
        .create_with(&[("To", "+15551234567"), ("Body", "twice")], &token)
        .await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST, "{}", other.body);
    assert_eq!(g.stored(), 1);
}

#[tokio::test]
async fn scheduled_messages_cancel_by_update_or_delete() {
    let g = gateway();
    let later = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let a = g
        .create(&[
            ("To", "+15551234567"),
            ("Body", "Reminder"),
            ("SendAt", &later),
            ("ScheduleType", "fixed"),
        ])
        .await;
    assert_eq!(a.body["status"], "scheduled", "{}", a.body);
    let uri = a.body["uri"].as_str().unwrap().to_string();
    let auth = basic(SID, TOKEN);
    let cancelled = g
        .call(
            Method::POST,
            &uri,
            Some(&auth),
            Some(form(&[("Status", "canceled")])),
            &[],
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "canceled");
    let id = id_of(a.body["sid"].as_str().unwrap()).unwrap();
    assert_eq!(
        g.store.get(&id).unwrap().unwrap().status,
        MessageStatus::Cancelled
    );

    // DELETE cancels a queued one: 204.
    let q = g.create(&[("To", "+15551234567"), ("Body", "x")]).await;
    let quri = q.body["uri"].as_str().unwrap().to_string();
    let d = g.call(Method::DELETE, &quri, Some(&auth), None, &[]).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_eq!(g.get(&quri).await.body["status"], "canceled");

    // One that reached a modem: 30409, as Twilio answers past `scheduled`.
    let s = g.create(&[("To", "+15551234567"), ("Body", "y")]).await;
    let sid = s.body["sid"].as_str().unwrap();
    let now = Utc::now();
    g.store
        .update(&id_of(sid).unwrap(), |m| {
            m.part_status[0].status = PartStatus::Sending;
            m.transition(now, MessageStatus::Sending);
            true
        })
        .await
        .unwrap();
    let suri = s.body["uri"].as_str().unwrap();
    g.call(Method::DELETE, suri, Some(&auth), None, &[])
        .await
        .twilio_error(400, 30409);
    g.call(
        Method::POST,
        suri,
        Some(&auth),
        Some(form(&[("Status", "canceled")])),
        &[],
    )
    .await
    .twilio_error(400, 30409);
    assert_eq!(g.get(suri).await.body["status"], "sending");

    // Unknown sids: 20404.
    let made_up = format!(
        "/2010-04-01/Accounts/{SID}/Messages/SM{}.json",
        "0".repeat(32)
    );
    g.get(&made_up).await.twilio_error(404, 20404);
    g.call(Method::DELETE, &made_up, Some(&auth), None, &[])
        .await
        .twilio_error(404, 20404);
}

/// Each status change of a message with a StatusCallback is a callback,
/// queued before sending before sent before delivered, and scheduled then
/// canceled for a cancelled one: the events the store writes for it (and for
/// no other message), read by the `compat-twilio-status` endpoint as the
/// webhook worker reads them. The callback lives in the message record, so
/// it goes where the message goes (the history files) and is never a
/// record of its own to prune.
#[tokio::test]
async fn a_status_callback_hears_every_status_change() {
    use smsgate::api::compat::callbacks;
    let g = gateway();
    let endpoints = callbacks::endpoints(&g.state.compat, &g.store, "US");
    let status = endpoints
        .iter()
        .find(|e| e.id == "compat-twilio-status")
        .unwrap();
    let foreign = status.foreign.clone().unwrap();
    let url = "http://app.lan/status?shop=1";
    async fn create(g: &Gateway, pairs: &[(&str, &str)]) -> String {
        let a = g.create(pairs).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
        id_of(a.body["sid"].as_str().unwrap()).unwrap()
    }
    let watched = create(
        &g,
        &[
            ("To", "+15551234567"),
            ("Body", "Table for two"),
            ("StatusCallback", url),
        ],
    )
    .await;
    let plain = create(&g, &[("To", "+15551234568"), ("Body", "No callback")]).await;
    let later = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let scheduled = create(
        &g,
        &[
            ("To", "+15551234569"),
            ("Body", "Reminder"),
            ("SendAt", &later),
            ("ScheduleType", "fixed"),
            ("StatusCallback", url),
        ],
    )
    .await;
    let cancel = g
        .call(
            Method::POST,
            &format!(
                "/2010-04-01/Accounts/{SID}/Messages/{}.json",
                sid_of(&scheduled)
            ),
            Some(&basic(SID, TOKEN)),
            Some(form(&[("Status", "canceled")])),
            &[],
        )
        .await;
    assert_eq!(cancel.body["status"], "canceled", "{}", cancel.body);
    // What the modem engine does: sending, sent, an interim report (the
    // centre still trying: nothing Twilio reports), delivered.
    let now = Utc::now();
    for id in [&watched, &plain] {
        let steps: [&dyn Fn(&mut smsgate::store::Message); 4] = [
            &|m| {
                m.modem = Some("m1".into());
                m.from = OWN.into();
                m.part_status[0].status = PartStatus::Sending;
                m.transition(now, MessageStatus::Sending);
            },
            &|m| {
                m.part_status[0].status = PartStatus::Sent;
                m.part_status[0].mr = Some(9);
                m.transition(now, MessageStatus::Sent);
            },
            &|m| m.part_status[0].report_status = Some(0x21),
            &|m| {
                m.part_status[0].status = PartStatus::Delivered;
                m.part_status[0].report_status = Some(0x00);
                m.transition(now, MessageStatus::Delivered);
            },
        ];
        for step in steps {
            g.store
                .update(id, |m| {
                    step(m);
                    true
                })
                .await
                .unwrap();
        }
    }

    // The callbacks, as the worker makes them: signed form POSTs to the URL.
    let callbacks_of = |events: &[smsgate::store::Event]| {
        let mut out: Vec<(String, String)> = Vec::new();
        for e in events {
            let Some(partition) = status.partition(e) else {
                continue;
            };
            let request = foreign
                .request(e, std::time::Duration::from_secs(5))
                .unwrap();
            assert_eq!(
                (request.method.as_str(), request.url.as_str()),
                ("POST", url)
            );
            let params: Vec<(String, String)> =
                smsgate::api::compat::kannel::pairs(std::str::from_utf8(&request.body).unwrap())
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
                    .collect();
            let signature = request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-twilio-signature"))
                .map(|(_, v)| v.clone());
            assert_eq!(
                signature,
                Some(documented_signature(TOKEN, url, &params)),
                "{params:?}"
            );
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            assert_eq!(param("MessageSid"), sid_of(&partition));
            assert_eq!(param("SmsStatus"), param("MessageStatus"));
            out.push((partition, param("MessageStatus")));
        }
        out
    };
    let events = g.store.events_after(None, 100).unwrap();
    let heard = callbacks_of(&events);
    let of = |id: &str| -> Vec<&str> {
        heard
            .iter()
            .filter(|(p, _)| p == id)
            .map(|(_, s)| s.as_str())
            .collect()
    };
    assert_eq!(of(&watched), ["queued", "sending", "sent", "delivered"]);
    assert_eq!(of(&scheduled), ["scheduled", "canceled"]);
    assert_eq!(of(&plain), Vec::<&str>::new());
    // The message without a callback paid for no extra event.
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.data["id"] == plain.as_str())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(kinds, ["message.sent", "message.delivered"]);
    // A [[webhook]] receiver gets the steps every message announces, not
    // the ones only a callback asked for.
    let webhook = smsgate::webhook::Endpoint {
        id: "crm".into(),
        url: "http://crm.lan/hook".into(),
        secrets: Vec::new(),
        events: Vec::new(),
        timeout: std::time::Duration::from_secs(5),
        foreign: None,
    };
    let to_webhook: Vec<&str> = events
        .iter()
        .filter(|e| e.data["id"] == watched.as_str() && webhook.partition(e).is_some())
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(to_webhook, ["message.sent", "message.delivered"]);

    // Kept in the message, not beside it: nothing in the tree an earlier
    // build kept callbacks in, and the callback moves to the history files
    // with the settled message; its events still carry it.
    assert!(g.store.aux_tree("compat_callbacks").unwrap().is_empty());
    assert!(g.store.get(&watched).unwrap().unwrap().callback.is_some());
    assert!(g.store.get(&plain).unwrap().unwrap().callback.is_none());
    let moved = g
        .store
        .archive_all_settled(chrono::Duration::zero())
        .await
        .unwrap();
    assert_eq!(moved, 3, "delivered, delivered, cancelled");
    assert!(g.store.get(&watched).unwrap().unwrap().callback.is_some());
    assert_eq!(callbacks_of(&events), heard);
}

#[tokio::test]
async fn statuses_map_as_twilio_names_them() {
    let g = gateway();
    let now = Utc::now();
    let mut uris = Vec::new();
    for _ in 0..3 {
        let a = g.create(&[("To", "+15551234567"), ("Body", "x")]).await;
        uris.push((
            a.body["uri"].as_str().unwrap().to_string(),
            id_of(a.body["sid"].as_str().unwrap()).unwrap(),
        ));
    }
    // Failed after the network reported on a part: undelivered.
    g.store
        .update(&uris[0].1, |m| {
            m.part_status[0].report_status = Some(0x41);
            m.settle_with_error(now, MessageStatus::Failed, "report_failed", "rejected");
            true
        })
        .await
        .unwrap();
    // Failed before the network took it: failed.
    g.store
        .update(&uris[1].1, |m| {
            m.settle_with_error(now, MessageStatus::Failed, "cms_500", "modem error");
            true
        })
        .await
        .unwrap();
    g.store
        .update(&uris[2].1, |m| {
            m.transition(now, MessageStatus::Delivered);
            true
        })
        .await
        .unwrap();
    let undelivered = g.get(&uris[0].0).await.body;
    assert_eq!(undelivered["status"], "undelivered");
    assert_eq!(undelivered["error_code"], 30008);
    assert!(undelivered["error_message"]
        .as_str()
        .unwrap()
        .contains("report_failed"));
    assert_eq!(g.get(&uris[1].0).await.body["status"], "failed");
    assert_eq!(g.get(&uris[2].0).await.body["status"], "delivered");
}

#[tokio::test]
async fn list_pages_the_twilio_way_and_filters() {
    let g = gateway();
    let mut sids = Vec::new();
    for i in 0..7 {
        let to = if i % 2 == 0 {
            "+15551234567"
        } else {
            "+15557654321"
        };
        let a = g.create(&[("To", to), ("Body", &format!("n{i}"))]).await;
        sids.push(a.body["sid"].as_str().unwrap().to_string());
    }
    // Follow next_page_uri, as twilio-python does, until it is null.
    let mut seen = Vec::new();
    let mut next = Some(format!(
        "/2010-04-01/Accounts/{SID}/Messages.json?PageSize=3"
    ));
    let mut pages = 0;
    while let Some(uri) = next {
        let page = g.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["page"], pages);
        assert_eq!(page.body["page_size"], 3);
        assert!(page.body["first_page_uri"]
            .as_str()
            .unwrap()
            .contains("Page=0"));
        for m in page.body["messages"].as_array().unwrap() {
            seen.push(m["sid"].as_str().unwrap().to_string());
        }
        next = page.body["next_page_uri"].as_str().map(str::to_string);
        pages += 1;
        assert!(pages < 10, "paging does not end");
    }
    // Newest first, each once. Messages created within the same millisecond
    // (the sid's first 12 hex digits) have no order of their own, as in
    // Twilio, whose list sorts by a date in seconds.
    let created_ms = |sid: &str| sid[2..14].to_string();
    assert!(
        seen.windows(2)
            .all(|w| created_ms(&w[0]) >= created_ms(&w[1])),
        "newest first: {seen:?}"
    );
    let mut once = seen.clone();
    once.sort();
    once.dedup();
    let mut want = sids.clone();
    want.sort();
    assert_eq!(once.len(), seen.len(), "each once: {seen:?}");
    assert_eq!(once, want, "every message listed");

    let to = g
        .get(&format!(
            "/2010-04-01/Accounts/{SID}/Messages.json?To=%2B15557654321"
        ))
        .await;
    let got: Vec<&str> = to.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec!["+15557654321"; 3]);
    // DateSent> after everything: none; DateSent< after everything: all.
    let tomorrow = (Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let none = g
        .get(&format!(
            "/2010-04-01/Accounts/{SID}/Messages.json?DateSent%3E={tomorrow}"
        ))
        .await;
    assert_eq!(none.body["messages"], json!([]));
    let all = g
        .get(&format!(
            "/2010-04-01/Accounts/{SID}/Messages.json?DateSent%3C={tomorrow}&PageSize=50"
        ))
        .await;
    assert_eq!(all.body["messages"].as_array().unwrap().len(), 7);
    let zero = g
        .get(&format!(
            "/2010-04-01/Accounts/{SID}/Messages.json?PageSize=0"
        ))
        .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    let bad = g
        .get(&format!(
            "/2010-04-01/Accounts/{SID}/Messages.json?DateSent%3E=soon"
        ))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[test]
fn sids_round_trip_store_ids() {
    let id = "msg_0190aa55bb6600000000ffff1234";
    assert_eq!(id_of(&sid_of(id)).as_deref(), Some(id));
}

/// The commented `[compat]` example of config/smsgate.toml, uncommented
/// (with real digests), is a valid configuration of what it describes.
#[test]
fn the_documented_example_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/smsgate.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("# [[compat.twilio]]").unwrap();
    let example: String = text[start..]
        .lines()
        .filter(|l| !l.starts_with("# #"))
        .filter_map(|l| l.strip_prefix("# "))
        .map(|l| {
            l.replace(
                "auth_token_sha256 = \"...\"",
                &format!("auth_token_sha256 = \"{}\"", hex(TOKEN)),
            )
            .replace(
                "signing_token = \"...\"",
                &format!("signing_token = \"{TOKEN}\""),
            )
            .replace(
                "password_sha256 = \"...\"",
                &format!("password_sha256 = \"{}\"", hex("pw")),
            )
        })
        .map(|l| l + "\n")
        .collect();
    let config = Config::from_toml(&example, std::iter::empty())
        .unwrap_or_else(|e| panic!("{e}\n{example}"));
    let c = &config.compat;
    assert_eq!(
        (c.twilio.len(), c.twilio[0].number.len()),
        (1, 1),
        "{example}"
    );
    assert_eq!((c.kannel.len(), c.kannel[0].service.len()), (1, 1));
}

#[test]
fn config_problems_name_their_keys() {
    let e = Config::from_toml(
        &format!(
            "[[compat.twilio]]\naccount_sid = \"AC12\"\nauth_token_sha256 = \"{}\"\nsigning_token = \"other\"\n\
             [[compat.twilio.number]]\nnumber = \"5551234\"\nsms_url = \"https://crm.lan/sms\"\n\
             [[compat.kannel]]\nusername = \"\"\npassword_sha256 = \"{}\"\n\
             [[modem]]\nid = \"m1\"\nport = \"/dev/tty-m1\"\ncost_per_part = \"cheap\"\n",
            hex(TOKEN),
            hex("pw")
        ),
        std::iter::empty(),
    )
    .unwrap_err();
    let keys = e.keys();
    for key in [
        "compat.twilio[0].number[0].sms_url",
        "modem[0].cost_per_part",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    let e = Config::from_toml(
        &format!(
            "[[compat.twilio]]\naccount_sid = \"AC12\"\nauth_token_sha256 = \"{}\"\nsigning_token = \"other\"\n\
             [[compat.twilio.number]]\nnumber = \"5551234\"\nsms_url = \"http://crm.lan/sms\"\n\
             [[compat.kannel]]\nusername = \"\"\npassword_sha256 = \"{}\"\n\
             [conversation]\ncurrency = \"usd\"\n",
            hex(TOKEN),
            hex("pw")
        ),
        std::iter::empty(),
    )
    .unwrap_err();
    assert_eq!(
        e.keys(),
        vec![
            "compat.twilio[0].account_sid",
            "compat.twilio[0].signing_token",
            "compat.twilio[0].number[0].number",
            "compat.kannel[0].username",
            "conversation.currency",
        ],
        "{e}"
    );
}

/// X-Twilio-Signature computed as Twilio documents it, independently of the
/// gateway's code: the URL, then each parameter name and value sorted by
/// name, HMAC-SHA1 with the auth token, base64.
fn documented_signature(token: &str, url: &str, params: &[(String, String)]) -> String {
    use hmac::{Hmac, Mac};
    let mut sorted = params.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut data = url.to_string();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

mod live {
    use super::*;
    use common::wait_until;
    use receiver::{http_text, App};
    use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};

    const SIM_OWN: &str = "+15550500000";

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("smsgate-twilio-{}-{name}", std::process::id()))
    }

    fn sim(name: &str, failing: &[&str]) -> SimHandle {
        let mut c = SimConfig::new(Personality::Sim800);
        c.link = Some(temp(&format!("{name}.tty")));
        c.own_number = SIM_OWN.into();
        c.status_report_delay = Duration::from_millis(30);
        c.noise_interval = Some(Duration::ZERO);
        c.failing_numbers = failing.iter().map(|s| s.to_string()).collect();
        Simulator::start(c).unwrap()
    }

    use std::time::Duration;

    async fn daemon(name: &str, modem: &SimHandle, sms_url: &str) -> common::InProcessDaemon {
        let db = temp(&format!("{name}.db"));
        let _ = std::fs::remove_dir_all(&db);
        let text = format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[sms]\ndefault_country = \"US\"\n\
             [[modem]]\nid = \"m1\"\nport = \"{}\"\n\
             [[compat.twilio]]\naccount_sid = \"{SID}\"\nauth_token_sha256 = \"{}\"\nsigning_token = \"{TOKEN}\"\n\
             [[compat.twilio.number]]\nnumber = \"{SIM_OWN}\"\nsms_url = \"{sms_url}\"\n",
            db.display(),
            modem.link().display(),
            hex(TOKEN),
        );
        let daemon = common::InProcessDaemon::start(&text, ADMIN).await;
        daemon.wait_ready().await;
        daemon
    }

    async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(f).await.unwrap()
    }

    /// Whether a request to `url` carries the documented signature.
    fn signed(r: &receiver::Request, url: &str) -> bool {
        r.header("x-twilio-signature").as_deref()
            == Some(documented_signature(TOKEN, url, &r.params()).as_str())
    }

    fn create(addr: &str, to: &str, callback: &str) -> Value {
        let body = form(&[
            ("To", to),
            ("Body", "Table for two at 8"),
            ("StatusCallback", callback),
        ]);
        let (status, _, text) = http_text(
            "POST",
            addr,
            &format!("/2010-04-01/Accounts/{SID}/Messages.json"),
            &[
                ("Authorization", &basic(SID, TOKEN)),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &body,
        );
        assert_eq!(status, 201, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_callbacks_arrive_in_order_signed() {
        let failing = "+15550500009";
        let modem = sim("status", &[failing]);
        let (app, app_addr) = App::start().await;
        let gw = daemon("status", &modem, &format!("http://{app_addr}/sms")).await;
        let addr = gw.addr.clone();
        let app2 = app.clone();
        blocking(move || {
            let callback = format!("http://{app_addr}/status?shop=1");
            let ok = create(&addr, "+15550500001", &callback);
            let bad = create(&addr, failing, &callback);
            let statuses = |sid: &Value| -> Vec<String> {
                app2.requests()
                    .iter()
                    .filter(|r| {
                        r.param("MessageSid").as_ref() == sid.as_str().map(str::to_string).as_ref()
                    })
                    .filter_map(|r| r.param("MessageStatus"))
                    .collect()
            };
            // Every status change, in order (the modem's status reports
            // come after `sent`).
            wait_until(Duration::from_secs(20), "the status callbacks", || {
                (statuses(&ok["sid"]) == ["queued", "sending", "sent", "delivered"]
                    && statuses(&bad["sid"]) == ["queued", "sending", "sent", "undelivered"])
                .then_some(())
            });
            for r in app2.requests() {
                assert_eq!(r.method, "POST");
                assert_eq!(r.uri, "/status?shop=1");
                assert!(signed(&r, &callback), "{r:?}");
                assert_eq!(r.param("AccountSid").as_deref(), Some(SID));
                assert_eq!(r.param("ApiVersion").as_deref(), Some("2010-04-01"));
                // Created without From: our number is known once the modem
                // that sends it is chosen.
                let from = match r.param("MessageStatus").as_deref() {
                    Some("queued") => "",
                    _ => SIM_OWN,
                };
                assert_eq!(r.param("From").as_deref(), Some(from), "{r:?}");
                assert_eq!(r.param("SmsSid"), r.param("MessageSid"));
                assert_eq!(r.param("SmsStatus"), r.param("MessageStatus"));
            }
            let undelivered = app2
                .requests()
                .into_iter()
                .find(|r| r.param("MessageStatus").as_deref() == Some("undelivered"))
                .unwrap();
            assert_eq!(undelivered.param("To").as_deref(), Some(failing));
            assert_eq!(undelivered.param("ErrorCode").as_deref(), Some("30008"));
            // A tampered body would not verify.
            let mut forged = undelivered.clone();
            forged.body = forged.body.replace("undelivered", "delivered");
            assert!(!signed(&forged, &callback));
            // The fetched resource agrees with the last callback.
            let (_, _, text) = http_text(
                "GET",
                &addr,
                ok["uri"].as_str().unwrap(),
                &[("Authorization", &basic(SID, TOKEN))],
                "",
            );
            let fetched: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(fetched["status"], "delivered");
        })
        .await;
        gw.stop().await;
        modem.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incoming_sms_posts_signed_and_twiml_replies_once() {
        let modem = sim("incoming", &[]);
        let (app, app_addr) = App::start().await;
        app.script(|r| match r.param("Body").as_deref() {
            Some("When do you open?") => (
                200,
                "text/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>We open at 9 &amp; close at 5</Message></Response>".into(),
            ),
            Some("thanks") => (200, "text/xml", "<Response/>".into()),
            _ => (200, "text/html", "<html>oops</html>".into()),
        });
        let sms_url = format!("http://{app_addr}/sms");
        let gw = daemon("incoming", &modem, &sms_url).await;
        let addr = gw.addr.clone();
        let m = modem.clone();
        let app2 = app.clone();
        blocking(move || {
            let customer = "+15550500021";
            m.inject(customer, "When do you open?").unwrap();
            wait_until(Duration::from_secs(20), "the TwiML reply", || {
                m.received()
                    .into_iter()
                    .find(|r| r.to == customer && r.text == "We open at 9 & close at 5")
            });
            let r = app2.requests().into_iter().next().unwrap();
            assert_eq!((r.method.as_str(), r.uri.as_str()), ("POST", "/sms"));
            assert!(signed(&r, &sms_url), "{r:?}");
            for (k, v) in [
                ("From", customer),
                ("To", SIM_OWN),
                ("Body", "When do you open?"),
                ("NumSegments", "1"),
                ("NumMedia", "0"),
                ("AccountSid", SID),
                ("FromCountry", "US"),
                ("ToCountry", "US"),
                ("SmsStatus", "received"),
                ("ApiVersion", "2010-04-01"),
            ] {
                assert_eq!(r.param(k).as_deref(), Some(v), "{k}");
            }
            let sid = r.param("MessageSid").unwrap();
            assert!(sid.starts_with("SM") && sid.len() == 34, "{sid}");

            // <Response/> and a malformed answer: nothing sent. Their
            // deliveries settled (a reply is accepted before that) is the
            // signal to look.
            m.inject(customer, "thanks").unwrap();
            m.inject("+15550500022", "???").unwrap();
            wait_until(Duration::from_secs(20), "three deliveries settled", || {
                let (_, page) = common::http(
                    "GET",
                    &addr,
                    "/v1/webhooks/deliveries?limit=100",
                    Some(ADMIN),
                    None,
                );
                let settled = page["items"]
                    .as_array()?
                    .iter()
                    .filter(|d| d["endpoint"] == "compat-twilio-sms" && d["status"] == "delivered")
                    .count();
                (settled == 3).then_some(())
            });
            for (contact, outbound) in [(customer, 1), ("+15550500022", 0)] {
                let path = format!("/v1/threads/{}?limit=100", contact.replace('+', "%2B"));
                let (_, thread) = common::http("GET", &addr, &path, Some(ADMIN), None);
                let count = thread["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|i| i["direction"] == "outbound")
                    .count();
                assert_eq!(count, outbound, "{contact}: {thread}");
            }
        })
        .await;
        gw.stop().await;
        modem.shutdown().await;
    }
}
