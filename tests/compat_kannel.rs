//! Kannel's `sendsms` through the gateway: a table of requests against the
//! router (no socket), then the daemon with a simulated modem and an app on
//! 127.0.0.1 for delivery reports (`dlr-url`, `dlr-mask`) and an
//! sms-service `get_url` whose plain-text answer is texted back.

mod common;
#[path = "common/compat_receiver.rs"]
mod receiver;

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use common::rig::{config, Rig};
use common::wait_until;
use receiver::{http_text, App};
use smsgate::api::compat::kannel::{ACCEPTED, AUTH_FAILED, DENIED, MISSING_TO};
use smsgate::api::compat::url_encode;
use smsgate::api::{ApiToken, Scope};
use smsgate::modem::status::ModemState;
use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};
use smsgate::store::{MessageFilter, MessageStatus};

const USER: &str = "playsms";
const PASSWORD: &str = "kannel-pw";
const ADMIN: &str = "admin-secret";
const OWN: &str = "+15550400000";

fn hex(secret: &str) -> String {
    smsgate::pdu::hex::encode(&smsgate::api::auth::digest(secret)).to_lowercase()
}

fn compat_toml() -> String {
    format!(
        "[[compat.kannel]]\nusername = \"{USER}\"\npassword_sha256 = \"{}\"\n",
        hex(PASSWORD)
    )
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
        "[sms]\ndefault_country = \"US\"\n{}",
        compat_toml()
    ));
    let tokens = vec![ApiToken::from_secret("ops", ADMIN, vec![Scope::Admin])];
    let mut rig = Rig::new("kannel-test", &config, tokens);
    rig.add_modem("m1", ModemState::Ready, OWN);
    Gateway(rig)
}

impl Gateway {
    async fn call(&self, method: Method, query: &str, form: Option<&str>) -> (u16, String, String) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("/cgi-bin/sendsms?{query}"));
        let body = match form {
            Some(f) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(f.to_string())
            }
            None => Body::empty(),
        };
        let reply = self.0.send(request.body(body).unwrap()).await;
        (
            reply.status.as_u16(),
            reply.header("content-type").unwrap_or_default(),
            String::from_utf8(reply.bytes.to_vec()).unwrap(),
        )
    }

    fn messages(&self) -> Vec<smsgate::store::Message> {
        let mut items = self
            .store
            .list(&MessageFilter::default(), None, 1000)
            .unwrap()
            .items;
        items.reverse();
        items
    }
}

fn auth() -> String {
    format!("username={USER}&password={PASSWORD}")
}

#[tokio::test]
async fn sendsms_answers_as_kannel_does() {
    let g = gateway();
    // (query, status, answer, messages stored by it)
    let ok = auth();
    let cases: Vec<(String, u16, String, usize)> = vec![
        (
            format!("{ok}&to=%2B15551230001&text=Hello+there"),
            202,
            ACCEPTED.into(),
            1,
        ),
        // Kannel's older field names.
        (
            format!("user={USER}&pass={PASSWORD}&to=%2B15551230001&text=Hi"),
            202,
            ACCEPTED.into(),
            1,
        ),
        (
            format!("username={USER}&password=wrong&to=%2B15551230001&text=Hi"),
            403,
            AUTH_FAILED.into(),
            0,
        ),
        (
            format!("username=nobody&password={PASSWORD}&to=%2B15551230001&text=Hi"),
            403,
            AUTH_FAILED.into(),
            0,
        ),
        (
            "to=%2B15551230001&text=Hi".into(),
            403,
            AUTH_FAILED.into(),
            0,
        ),
        (format!("{ok}&text=Hi"), 400, MISSING_TO.into(), 0),
        (format!("{ok}&to=+&text=Hi"), 400, MISSING_TO.into(), 0),
        // Several receivers, separated by spaces.
        (
            format!("{ok}&to=%2B15551230002+%2B15551230003&text=Both"),
            202,
            ACCEPTED.into(),
            2,
        ),
        (
            format!("{ok}&to=%2B15551230004+12&text=One"),
            202,
            format!("{ACCEPTED} Denied receivers are: 12"),
            1,
        ),
        (format!("{ok}&to=12+34&text=None"), 400, DENIED.into(), 0),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&dlr-mask=64&dlr-url=http%3A%2F%2Fa"),
            400,
            "DLR-Mask field misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&dlr-mask=3&dlr-url=ftp%3A%2F%2Fapp"),
            400,
            "DLR-URL field misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&coding=5"),
            400,
            "Coding field misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&coding=1"),
            400,
            "Coding field misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&validity=-1"),
            400,
            "Validity field misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&deferred=soon"),
            400,
            "Deferred field misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=%C3%28"),
            400,
            "Charset or body misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text="),
            400,
            "Charset or body misformed, rejected".into(),
            0,
        ),
        (
            format!("{ok}&to=%2B15551230001&text=Hi&from=%2B15559999999"),
            400,
            "Sender missing and no global set, rejected".into(),
            0,
        ),
    ];
    for (query, status, answer, stored) in cases {
        let before = g.messages().len();
        let (s, content_type, text) = g.call(Method::GET, &query, None).await;
        assert_eq!((s, text.as_str()), (status, answer.as_str()), "{query}");
        assert_eq!(content_type, "text/html", "{query}");
        assert_eq!(g.messages().len() - before, stored, "{query}");
    }
    let sent = g.messages();
    assert_eq!(sent[0].to, "+15551230001");
    assert_eq!(sent[0].body, "Hello there");
    assert_eq!(
        sent.iter()
            .filter(|m| m.body == "Both")
            .map(|m| m.to.as_str())
            .collect::<Vec<_>>(),
        vec!["+15551230002", "+15551230003"]
    );

    // POST, fields form-encoded.
    let (s, _, text) = g
        .call(
            Method::POST,
            "",
            Some(&format!(
                "{ok}&to=%2B15551230005&text=Posted&from=%2B15550400000"
            )),
        )
        .await;
    assert_eq!((s, text.as_str()), (202, ACCEPTED));
    let posted = g.messages().pop().unwrap();
    assert_eq!(
        (posted.body.as_str(), posted.requested_modem.as_deref()),
        ("Posted", Some("m1"))
    );
}

#[tokio::test]
async fn coding_charset_validity_deferred() {
    let g = gateway();
    let ok = auth();
    // UCS-2: the text in UTF-16BE bytes, as Kannel's clients send it with coding=2.
    let utf16: Vec<u8> = "Привет"
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    let encoded: String = utf16.iter().map(|b| format!("%{b:02X}")).collect();
    let (s, _, text) = g
        .call(
            Method::GET,
            &format!("{ok}&to=%2B15551230001&coding=2&charset=UTF-16BE&text={encoded}"),
            None,
        )
        .await;
    assert_eq!((s, text.as_str()), (202, ACCEPTED));
    let m = g.messages().pop().unwrap();
    assert_eq!((m.body.as_str(), m.alphabet.as_str()), ("Привет", "ucs2"));
    // Latin-1 bytes with their charset.
    g.call(
        Method::GET,
        &format!("{ok}&to=%2B15551230001&charset=ISO-8859-1&text=caf%E9"),
        None,
    )
    .await;
    assert_eq!(g.messages().pop().unwrap().body, "café");
    // An odd number of UCS-2 bytes is not text.
    let (s, _, text) = g
        .call(
            Method::GET,
            &format!("{ok}&to=%2B15551230001&coding=2&charset=UCS-2&text=%04"),
            None,
        )
        .await;
    assert_eq!(
        (s, text.as_str()),
        (400, "Charset or body misformed, rejected")
    );

    // validity and deferred are minutes.
    let (s, _, _) = g
        .call(
            Method::GET,
            &format!("{ok}&to=%2B15551230001&text=Later&validity=60&deferred=30"),
            None,
        )
        .await;
    assert_eq!(s, 202);
    let m = g.messages().pop().unwrap();
    assert_eq!(m.validity, Some(3600));
    assert_eq!(m.status, MessageStatus::Scheduled);
    let wait = m.not_before.unwrap() - m.created_at;
    assert!(
        (chrono::Duration::minutes(29)..=chrono::Duration::minutes(31)).contains(&wait),
        "{wait}"
    );
}

#[tokio::test]
async fn opted_out_receivers_are_denied() {
    let g = gateway();
    let body = json!({"number": "+15557654321"});
    let r =
        g.0.call(Method::POST, "/v1/optouts", Some(ADMIN), Some(&body), &[])
            .await;
    assert_eq!(r.status, StatusCode::OK);
    let ok = auth();
    let (s, _, text) = g
        .call(
            Method::GET,
            &format!("{ok}&to=%2B15557654321&text=Sale"),
            None,
        )
        .await;
    assert_eq!((s, text.as_str()), (400, DENIED));
    let (s, _, text) = g
        .call(
            Method::GET,
            &format!("{ok}&to=%2B15557654321+%2B15551230001&text=Sale"),
            None,
        )
        .await;
    assert_eq!(
        (s, text.as_str()),
        (
            202,
            format!("{ACCEPTED} Denied receivers are: +15557654321").as_str()
        )
    );
    assert_eq!(g.messages().len(), 1);
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-kannel-{}-{name}", std::process::id()))
}

fn sim(name: &str, failing: &[&str]) -> SimHandle {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp(&format!("{name}.tty")));
    c.own_number = OWN.into();
    c.status_report_delay = Duration::from_millis(30);
    c.noise_interval = Some(Duration::ZERO);
    c.failing_numbers = failing.iter().map(|s| s.to_string()).collect();
    Simulator::start(c).unwrap()
}

async fn daemon(name: &str, modem: &SimHandle, extra: &str) -> common::InProcessDaemon {
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[sms]\ndefault_country = \"US\"\n\
         [[modem]]\nid = \"m1\"\nport = \"{}\"\n{}{extra}",
        db.display(),
        modem.link().display(),
        compat_toml()
    );
    let daemon = common::InProcessDaemon::start(&text, ADMIN).await;
    daemon.wait_ready().await;
    daemon
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_reports_follow_dlr_mask_with_kannels_escapes() {
    let failing = "+15550400009";
    let modem = sim("dlr", &[failing]);
    let gw = daemon("dlr", &modem, "").await;
    let (app, app_addr) = App::start().await;
    let dlr = format!("http://{app_addr}/dlr?type=%d&to=%p&from=%P&id=%I&answer=%A&t=%T&time=%t");
    let addr = gw.addr.clone();
    let app2 = app.clone();
    blocking(move || {
        let send = |to: &str, mask: u8, text: &str| {
            let query = format!(
                "/cgi-bin/sendsms?{}&to={}&text={text}&dlr-mask={mask}&dlr-url={}",
                auth(),
                url_encode(to),
                url_encode(&dlr)
            );
            let (s, _, answer) = http_text("GET", &addr, &query, &[], "");
            assert_eq!((s, answer.as_str()), (202, ACCEPTED));
        };
        // Everything: submitted (8), then delivered (1).
        send("+15550400001", 1 | 2 | 8 | 16, "all");
        // Only final states of a number whose report fails: failed (2) alone.
        send(failing, 1 | 2, "final");
        // Submitted only: 8, and no report of the delivery.
        send("+15550400002", 8, "submitted");
        let reports = |to: &str| -> Vec<String> {
            app2.requests()
                .iter()
                .filter(|r| r.param("to").as_deref() == Some(to))
                .filter_map(|r| r.param("type"))
                .collect()
        };
        wait_until(Duration::from_secs(20), "the delivery reports", || {
            (reports("+15550400001") == ["8", "1"] && reports(failing) == ["2"]).then_some(())
        });
        // The delivered report of the first was the last event of its kind
        // the gateway produced before this check: the masked-out ones did
        // not go (a later send's report arriving is the signal below).
        send("+15550400003", 1, "marker");
        wait_until(Duration::from_secs(20), "the marker's report", || {
            (reports("+15550400003") == ["1"]).then_some(())
        });
        assert_eq!(reports("+15550400002"), ["8"]);
        assert_eq!(reports(failing), ["2"]);
        let first = app2
            .requests()
            .into_iter()
            .find(|r| r.param("to").as_deref() == Some("+15550400001"))
            .unwrap();
        assert_eq!(first.method, "GET");
        assert_eq!(first.param("from").as_deref(), Some(OWN));
        assert!(first.param("id").unwrap().starts_with("msg_"));
        assert_eq!(first.param("answer").as_deref(), Some("ACK/"));
        assert!(first.param("t").unwrap().parse::<i64>().is_ok());
        assert_eq!(
            first.param("time").unwrap().len(),
            "2026-01-01 00:00:00".len()
        );
        let failed = app2
            .requests()
            .into_iter()
            .find(|r| r.param("to").as_deref() == Some(failing))
            .unwrap();
        assert!(
            failed.param("answer").unwrap().starts_with("NACK/"),
            "{failed:?}"
        );
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_service_get_url_answer_is_the_reply() {
    let modem = sim("service", &[]);
    let (app, app_addr) = App::start().await;
    app.script(|r| {
        if r.param("text").as_deref() == Some("balance please") {
            (200, "text/plain", "Your balance is 42".into())
        } else {
            (200, "text/plain", String::new())
        }
    });
    let gw = daemon(
        "service",
        &modem,
        &format!(
            "[[compat.kannel.service]]\nget_url = \"http://{app_addr}/in?from=%p&to=%P&text=%a&id=%I&at=%T\"\n"
        ),
    )
    .await;
    let m = modem.clone();
    let app2 = app.clone();
    let addr = gw.addr.clone();
    blocking(move || {
        let customer = "+15550400021";
        m.inject(customer, "balance   please").unwrap();
        wait_until(Duration::from_secs(20), "the reply", || {
            m.received()
                .into_iter()
                .find(|r| r.to == customer && r.text == "Your balance is 42")
        });
        let request = app2.requests().into_iter().next().unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.param("from").as_deref(), Some(customer));
        assert_eq!(request.param("to").as_deref(), Some(OWN));
        assert!(
            request.uri.contains("text=balance%20please"),
            "{}",
            request.uri
        );
        // An empty answer: nothing sent. Its delivery settled (the reply,
        // if any, is accepted before that) is the signal to look.
        let other = "+15550400022";
        m.inject(other, "hello").unwrap();
        wait_until(Duration::from_secs(20), "both deliveries settled", || {
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
                .filter(|d| d["endpoint"] == "compat-kannel-sms" && d["status"] == "delivered")
                .count();
            (settled == 2).then_some(())
        });
        let path = format!("/v1/threads/{}", other.replace('+', "%2B"));
        let (_, thread) = common::http("GET", &addr, &path, Some(ADMIN), None);
        // The thread's messages: the text, and no reply (its activities,
        // what the rules decided, are not messages).
        let messages: Vec<&serde_json::Value> = thread["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "message")
            .collect();
        assert_eq!(messages.len(), 1, "{thread}");
        assert_eq!(messages[0]["direction"], "inbound");
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

/// Kannel's `dlr-mask` 4 ("buffered", queued on the SMSC): a status report
/// saying the service centre is still trying (a busy handset: TP-ST 0x21)
/// is reported as Kannel's AT driver reports it, between 8 (submitted) and
/// 1 (delivered), only when the mask asks; and 4 alone still asks the
/// network for status reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_handsets_interim_report_is_dlr_4_when_asked() {
    let (all, final_only, buffered_only) = ("+15550400031", "+15550400032", "+15550400033");
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp("busy.tty"));
    c.own_number = OWN.into();
    c.status_report_delay = Duration::from_millis(30);
    c.noise_interval = Some(Duration::ZERO);
    c.busy_numbers = vec![all.into(), final_only.into(), buffered_only.into()];
    let modem = Simulator::start(c).unwrap();
    let gw = daemon("busy", &modem, "").await;
    let (app, app_addr) = App::start().await;
    let dlr = format!("http://{app_addr}/dlr?type=%d&to=%p&answer=%A");
    let addr = gw.addr.clone();
    let app2 = app.clone();
    blocking(move || {
        let send = |to: &str, mask: u8| {
            let query = format!(
                "/cgi-bin/sendsms?{}&to={}&text=hi&dlr-mask={mask}&dlr-url={}",
                auth(),
                url_encode(to),
                url_encode(&dlr)
            );
            let (s, _, answer) = http_text("GET", &addr, &query, &[], "");
            assert_eq!((s, answer.as_str()), (202, ACCEPTED));
        };
        send(all, 1 | 2 | 4 | 8 | 16);
        send(final_only, 1 | 2);
        send(buffered_only, 4);
        let reports = |to: &str| -> Vec<String> {
            app2.requests()
                .iter()
                .filter(|r| r.param("to").as_deref() == Some(to))
                .filter_map(|r| r.param("type"))
                .collect()
        };
        wait_until(Duration::from_secs(20), "the delivery reports", || {
            (reports(all) == ["8", "4", "1"]
                && reports(final_only) == ["1"]
                && reports(buffered_only) == ["4"])
            .then_some(())
        });
        let buffered = app2
            .requests()
            .into_iter()
            .find(|r| r.param("type").as_deref() == Some("4"))
            .unwrap();
        assert_eq!(buffered.param("answer").as_deref(), Some("Buffered"));
        // Each was delivered in the end (so the mask-4 one asked for
        // reports), and nothing the masks left out was sent: a later
        // message's report made (the events are handed out in order), and
        // no delivery waiting.
        for to in [all, final_only, buffered_only] {
            let path = format!("/v1/messages?contact={}", url_encode(to));
            wait_until(Duration::from_secs(20), "delivered", || {
                let (_, page) = common::http("GET", &addr, &path, Some(ADMIN), None);
                (page["items"][0]["status"] == "delivered").then_some(())
            });
        }
        let marker = "+15550400034";
        send(marker, 8);
        wait_until(Duration::from_secs(20), "the marker's report", || {
            (reports(marker) == ["8"]).then_some(())
        });
        wait_until(Duration::from_secs(20), "no DLR waiting", || {
            let (_, hooks) = common::http("GET", &addr, "/v1/webhooks", Some(ADMIN), None);
            let dlr = hooks["items"]
                .as_array()?
                .iter()
                .find(|e| e["id"] == "compat-kannel-dlr")?
                .clone();
            (dlr["pending"] == 0).then_some(())
        });
        assert_eq!(reports(final_only), ["1"]);
        assert_eq!(reports(buffered_only), ["4"]);
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}
