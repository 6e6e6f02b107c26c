//! Contacts as a CRM uses them, through the API of a running daemon: the
//! profile's fields round-trip and are checked; external ids are unique and
//! find their contact; tag lists page in number order; `q` searches; a CSV
//! import keeps good rows, reports bad ones by line and leaves consent
//! alone; and an event about a contact carries who it is, in the webhook
//! delivery, `GET /v1/events` and the SSE stream.

mod common;
#[path = "common/webhook_receiver.rs"]
mod receiver;

use std::sync::Arc;
use std::time::Duration;

use common::{http, http_raw, wait_until};
use receiver::Receiver;
use serde_json::{json, Value};
use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};
use smsgate::webhook::SystemClock;

const TOKEN: &str = "contacts-token";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("smsgate-contacts-{}-{name}", std::process::id()))
}

fn sim(name: &str) -> SimHandle {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(temp(&format!("{name}.tty")));
    c.own_number = "+15550400000".into();
    c.noise_interval = Some(Duration::ZERO);
    Simulator::start(c).unwrap()
}

/// A daemon in this process with one simulated modem (and a webhook to
/// `hook`, if given), ready.
async fn daemon(name: &str, modem: &SimHandle, hook: Option<&str>) -> common::InProcessDaemon {
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let mut text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n[sms]\ndefault_country = \"US\"\n[[modem]]\nid = \"m1\"\nport = \"{}\"\n",
        db.display(),
        modem.link().display()
    );
    if let Some(url) = hook {
        text.push_str(&format!(
            "[[webhook]]\nid = \"crm\"\nurl = \"{url}\"\nsecrets = [\"{SECRET}\"]\ntimeout = \"2s\"\n"
        ));
    }
    let daemon = common::InProcessDaemon::start(&text, TOKEN).await;
    daemon.wait_ready().await;
    daemon
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn path_of(number: &str) -> String {
    format!("/v1/contacts/{}", number.replace('+', "%2B"))
}

fn put(addr: &str, number: &str, body: Value) -> (u16, Value) {
    http("PUT", addr, &path_of(number), Some(TOKEN), Some(&body))
}

fn get(addr: &str, path: &str) -> Value {
    let (status, body) = http("GET", addr, path, Some(TOKEN), None);
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn numbers(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["contact"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_round_trip_and_bad_values_are_refused_by_code() {
    let modem = sim("profile");
    let gw = daemon("profile", &modem, None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let ana = "+15550401001";
        let full = json!({
            "name": "Ana Ruiz", "external_id": "crm-1001", "tags": ["vip", "dental"],
            "owner_team": "support", "time_zone": "America/Chicago",
            "fields": {"plan": "gold", "next.visit": "Tue 10:30"}
        });
        let (status, saved) = put(&addr, ana, full.clone());
        assert_eq!(status, 200, "{saved}");
        let read = get(&addr, &path_of(ana));
        assert_eq!(read, saved);
        for key in [
            "name",
            "external_id",
            "tags",
            "owner_team",
            "time_zone",
            "fields",
        ] {
            assert_eq!(read[key], full[key], "{key}");
        }
        assert_eq!(read["consent"], "unknown");
        // Surrounding spaces go, repeated tags go.
        let (_, saved) = put(
            &addr,
            ana,
            json!({"name": "  Ana  ", "tags": ["vip", " vip", "a"]}),
        );
        assert_eq!(
            (&saved["name"], &saved["tags"]),
            (&json!("Ana"), &json!(["vip", "a"]))
        );
        // PUT replaces: what it leaves out is cleared (a time-zone-only PUT,
        // as before this change, sets just the zone).
        let (status, saved) = put(&addr, ana, json!({"time_zone": "Europe/Madrid"}));
        assert_eq!(status, 200);
        assert_eq!(saved["time_zone"], "Europe/Madrid");
        assert_eq!(saved["name"], Value::Null);
        assert_eq!(saved["external_id"], Value::Null);
        assert_eq!(saved["tags"], json!([]));
        assert_eq!(saved["fields"], json!({}));
        assert!(get(&addr, "/v1/contacts?tag=vip")["items"]
            .as_array()
            .unwrap()
            .is_empty());

        let many_tags: Vec<String> = (0..51).map(|n| format!("t{n}")).collect();
        let many_fields: serde_json::Map<String, Value> =
            (0..101).map(|n| (format!("k{n}"), json!("v"))).collect();
        for (body, status, code) in [
            (json!({"name": "n".repeat(201)}), 422, "invalid_name"),
            (json!({"name": "tab\there"}), 422, "invalid_name"),
            (json!({"tags": ["a;b"]}), 422, "invalid_tags"),
            (json!({"tags": ["ok", ""]}), 200, ""),
            (json!({"tags": ["bell\u{7}"]}), 422, "invalid_tags"),
            (json!({"tags": ["t".repeat(65)]}), 422, "invalid_tags"),
            (json!({"tags": many_tags}), 422, "invalid_tags"),
            (json!({"fields": {"no spaces": "x"}}), 422, "invalid_fields"),
            (json!({"fields": {"name": "x"}}), 422, "invalid_fields"),
            (
                json!({"fields": {"k": "v".repeat(1001)}}),
                422,
                "invalid_fields",
            ),
            (json!({"fields": many_fields}), 422, "invalid_fields"),
            (json!({"fields": {"k": 5}}), 422, "invalid_request"),
            (
                json!({"external_id": "x".repeat(201)}),
                422,
                "invalid_external_id",
            ),
            (
                json!({"owner_team": "t".repeat(65)}),
                422,
                "invalid_owner_team",
            ),
            (
                json!({"time_zone": "Mars/Olympus"}),
                422,
                "invalid_time_zone",
            ),
            (json!({"nickname": "Ana"}), 422, "invalid_request"),
        ] {
            let (got, problem) = put(&addr, ana, body.clone());
            assert_eq!(got, status, "{body}: {problem}");
            if status != 200 {
                assert_eq!(problem["code"], code, "{body}");
                assert_eq!(problem["type"], format!("urn:smsgate:problem:{code}"));
            }
        }
        // The refusals wrote nothing: the last good PUT stands.
        assert_eq!(get(&addr, &path_of(ana))["tags"], json!(["ok"]));
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_are_unique_and_find_their_contact() {
    let modem = sim("extid");
    let gw = daemon("extid", &modem, None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let (a, b) = ("+15550402001", "+15550402002");
        assert_eq!(
            put(&addr, a, json!({"name": "A", "external_id": "crm-7"})).0,
            200
        );
        let (status, problem) = put(&addr, b, json!({"name": "B", "external_id": "crm-7"}));
        assert_eq!(
            (status, &problem["code"]),
            (409, &json!("external_id_taken"))
        );
        assert!(
            !problem["detail"].as_str().unwrap().contains(a),
            "the other contact's number is not told"
        );
        let found = get(&addr, "/v1/contacts?external_id=crm-7");
        assert_eq!(numbers(&found), [a]);
        assert_eq!(found["items"][0]["name"], "A");
        assert_eq!(found["next_cursor"], Value::Null);
        assert!(get(&addr, "/v1/contacts?external_id=nobody")["items"]
            .as_array()
            .unwrap()
            .is_empty());
        // The same contact may PUT its own id again; once it lets it go,
        // another can take it.
        assert_eq!(
            put(&addr, a, json!({"name": "A2", "external_id": "crm-7"})).0,
            200
        );
        assert_eq!(put(&addr, a, json!({"external_id": "crm-8"})).0, 200);
        assert_eq!(put(&addr, b, json!({"external_id": "crm-7"})).0, 200);
        assert_eq!(numbers(&get(&addr, "/v1/contacts?external_id=crm-7")), [b]);
        assert_eq!(numbers(&get(&addr, "/v1/contacts?external_id=crm-8")), [a]);
        for query in [
            "external_id=crm-7&tag=vip",
            "external_id=crm-7&cursor=00",
            "tag=",
            "q=a&q=b",
            "colour=red",
            "limit=0",
        ] {
            let (status, problem) = http(
                "GET",
                &addr,
                &format!("/v1/contacts?{query}"),
                Some(TOKEN),
                None,
            );
            assert_eq!(
                (status, &problem["code"]),
                (422, &json!("invalid_query")),
                "{query}"
            );
        }
        // Erasure frees the id and takes the contact out of every list.
        let (status, _) = http("DELETE", &addr, &path_of(b), Some(TOKEN), None);
        assert_eq!(status, 200);
        assert!(get(&addr, "/v1/contacts?external_id=crm-7")["items"]
            .as_array()
            .unwrap()
            .is_empty());
        assert_eq!(numbers(&get(&addr, "/v1/contacts")), [a]);
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_lists_page_in_number_order_and_q_searches() {
    let modem = sim("lists");
    let gw = daemon("lists", &modem, None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        let people = [
            ("+15550403005", "Carmen Díaz", "ERP-5", vec!["vip"]),
            ("+15550403001", "Ana Ruiz", "ERP-1", vec!["vip", "dental"]),
            ("+15550403004", "Bo Chen", "ERP-4", vec!["dental"]),
            ("+15550403002", "Dana Scully", "ERP-2", vec!["vip"]),
            ("+15550403003", "Eli Ruiz", "X-3", vec!["vip"]),
            ("+15550403006", "Fay Wray", "ERP-6", vec!["vipx"]),
        ];
        for (number, name, id, tags) in &people {
            let (status, body) = put(
                &addr,
                number,
                json!({"name": name, "external_id": id, "tags": tags}),
            );
            assert_eq!(status, 200, "{body}");
        }
        // Pages of two through the cursor, in number order; a tag that
        // begins another ("vip", "vipx") does not take its contacts.
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/contacts?tag=vip&limit=2&cursor={c}"),
                None => "/v1/contacts?tag=vip&limit=2".to_string(),
            };
            let page = get(&addr, &path);
            let got = numbers(&page);
            assert!(got.len() <= 2);
            seen.extend(got);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(
            seen,
            [
                "+15550403001",
                "+15550403002",
                "+15550403003",
                "+15550403005"
            ]
        );
        // q: a case-insensitive substring of the name or the external id,
        // or digits of the number however they are written.
        assert_eq!(
            numbers(&get(&addr, "/v1/contacts?q=ruiz")),
            ["+15550403001", "+15550403003"]
        );
        assert_eq!(
            numbers(&get(&addr, "/v1/contacts?q=D%C3%8DAZ")),
            ["+15550403005"]
        );
        assert_eq!(numbers(&get(&addr, "/v1/contacts?q=x-3")), ["+15550403003"]);
        assert_eq!(
            numbers(&get(&addr, "/v1/contacts?q=%28555%29%20040-3004")),
            ["+15550403004"]
        );
        assert_eq!(
            numbers(&get(&addr, "/v1/contacts?q=ruiz&tag=dental")),
            ["+15550403001"]
        );
        assert_eq!(
            get(&addr, "/v1/contacts?limit=500")["items"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
        let (status, problem) = http(
            "GET",
            &addr,
            "/v1/contacts?tag=vip&cursor=zz",
            Some(TOKEN),
            None,
        );
        assert_eq!((status, &problem["code"]), (422, &json!("invalid_query")));
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_keeps_good_rows_reports_bad_ones_and_leaves_consent_alone() {
    let modem = sim("import");
    let gw = daemon("import", &modem, None).await;
    let addr = gw.addr.clone();
    blocking(move || {
        // An existing contact who opted out, with a zone and a field.
        let known = "+15550404001";
        assert_eq!(
            put(
                &addr,
                known,
                json!({"name": "Old Name", "external_id": "K-1", "time_zone": "Asia/Tokyo",
                       "fields": {"plan": "silver", "vet": "Dr. Who"}}),
            )
            .0,
            200
        );
        let (status, _) = http(
            "POST",
            &addr,
            "/v1/optouts",
            Some(TOKEN),
            Some(&json!({"number": known})),
        );
        assert_eq!(status, 200);
        let consent_path = format!("{}/consent", path_of(known));
        let consent_before = get(&addr, &consent_path);

        let mut csv: Vec<u8> = Vec::new();
        csv.extend_from_slice(b"number,name,external_id,tags,plan\r\n"); // 1
        csv.extend_from_slice(b"+15550404002,Ana Ruiz,A-2,vip;dental,gold\r\n"); // 2
        csv.extend_from_slice(b"+15550404001,New Name,K-1,,\r\n"); // 3: existing
        csv.extend_from_slice(b"not a number,X,A-3,,\r\n"); // 4
        csv.extend_from_slice(b"+15550404005,Dup,A-2,,\r\n"); // 5: A-2 is row 2's
        csv.extend_from_slice(b"+15550404006,Short\r\n"); // 6
        csv.extend_from_slice(b"+15550404007,\xff\xfe,A-7,,\r\n"); // 7
        csv.extend_from_slice(b"+15550404008,Bad\"quote,A-8,,\r\n"); // 8
                                                                     // 9-10: quoted fields with a comma, doubled quotes and a line break.
        csv.extend_from_slice(
            b"5550404009,\"Ruiz, \"\"Bo\"\"\",A-9,\"vip\",\"line one\r\nline two\"\r\n",
        );
        csv.extend_from_slice(b"+15550404011,Bad Tag,A-11,a\x01b,\r\n"); // 11
        let (status, report) = http_raw(
            "POST",
            &addr,
            "/v1/contacts/import",
            Some(TOKEN),
            "text/csv; charset=utf-8",
            &csv,
        );
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["imported"], 2, "{report}");
        assert_eq!(report["updated"], 1, "{report}");
        let errors: Vec<(u64, &str)> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].as_u64().unwrap(), e["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            errors,
            [
                (4, "invalid_number"),
                (5, "external_id_taken"),
                (6, "wrong_column_count"),
                (7, "invalid_utf8"),
                (8, "invalid_quoting"),
                (11, "invalid_tags"),
            ],
            "{report}"
        );
        assert!(report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| !e["detail"].as_str().unwrap().is_empty()));

        let ana = get(&addr, &path_of("+15550404002"));
        assert_eq!(ana["name"], "Ana Ruiz");
        assert_eq!(ana["tags"], json!(["vip", "dental"]));
        assert_eq!(ana["fields"], json!({"plan": "gold"}));
        let bo = get(&addr, &path_of("+15550404009"));
        assert_eq!(bo["name"], "Ruiz, \"Bo\"");
        assert_eq!(bo["fields"]["plan"], "line one\r\nline two");
        assert_eq!(
            numbers(&get(&addr, "/v1/contacts?external_id=A-9")),
            ["+15550404009"]
        );
        // The existing contact: the file's columns replaced (an empty cell
        // cleared `plan`); columns it lacks (zone, `vet`) kept.
        let k = get(&addr, &path_of(known));
        assert_eq!(k["name"], "New Name");
        assert_eq!(k["time_zone"], "Asia/Tokyo");
        assert_eq!(k["fields"], json!({"vet": "Dr. Who"}));
        // Consent: untouched for the existing contact, unknown for new ones.
        assert_eq!(k["consent"], "opted_out");
        assert_eq!(get(&addr, &consent_path), consent_before);
        assert_eq!(ana["consent"], "unknown");
        for bad in [
            "+15550404005",
            "+15550404006",
            "+15550404007",
            "+15550404008",
        ] {
            assert_eq!(get(&addr, &path_of(bad))["name"], Value::Null, "{bad}");
        }

        // Refusals of the whole file write nothing.
        for (content_type, body, status, code) in [
            (
                "application/json",
                &b"{}"[..],
                415,
                "unsupported_media_type",
            ),
            ("text/csv", b"", 422, "invalid_csv_header"),
            ("text/csv", b"name,tags\nA,b\n", 422, "invalid_csv_header"),
            (
                "text/csv",
                b"number,name,NAME\n+15550404020,A,B\n",
                422,
                "invalid_csv_header",
            ),
            (
                "text/csv",
                b"number,has space\n+15550404020,x\n",
                422,
                "invalid_csv_header",
            ),
        ] {
            let (got, problem) = http_raw(
                "POST",
                &addr,
                "/v1/contacts/import",
                Some(TOKEN),
                content_type,
                body,
            );
            assert_eq!((got, &problem["code"]), (status, &json!(code)), "{problem}");
        }
        assert_eq!(get(&addr, &path_of("+15550404020"))["name"], Value::Null);
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_a_contact_say_who_it_is_in_webhooks_the_log_and_the_stream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let modem = sim("events");
    let rx = Receiver::new(&[SECRET], Arc::new(SystemClock));
    let hook = rx.serve(0).await;
    let gw = daemon("events", &modem, Some(&format!("http://{hook}/hook"))).await;
    let customer = "+15550405001";
    let addr = gw.addr.clone();
    let (status, _) = blocking({
        let addr = addr.clone();
        move || {
            put(
                &addr,
                customer,
                json!({"name": "Ana Ruiz", "external_id": "crm-55", "tags": ["vip"]}),
            )
        }
    })
    .await;
    assert_eq!(status, 200);
    // The stream from now on, open before the text arrives.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 1024];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).contains("200 OK"));
    modem
        .inject(customer, "Is my appointment still on?")
        .unwrap();

    let wanted = json!({"number": customer, "name": "Ana Ruiz", "external_id": "crm-55"});
    // SSE: the message.received event's data line.
    let mut text = String::from_utf8_lossy(&head[..n]).into_owned();
    let mut buf = [0u8; 4096];
    let sse_event: Value = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            // Whole lines only: a read can end inside one.
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            if let Some(line) = complete
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .find(|l| l.contains("message.received"))
            {
                return serde_json::from_str(line).unwrap();
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no message.received on the stream: {text}"));
    assert_eq!(sse_event["contact"], wanted);

    let (delivered, log) = blocking({
        let rx = rx.clone();
        let addr = addr.clone();
        move || {
            let delivered = wait_until(Duration::from_secs(20), "the webhook delivery", || {
                rx.unique()
                    .into_iter()
                    .find(|r| r.event["type"] == "message.received")
            });
            (delivered, get(&addr, "/v1/events?limit=500"))
        }
    })
    .await;
    assert!(rx.rejected.lock().unwrap().is_empty());
    assert_eq!(delivered.event["contact"], wanted);
    assert_eq!(delivered.event["data"]["contact"], customer);
    assert_eq!(delivered.id, sse_event["id"].as_str().unwrap());
    let items = log["items"].as_array().unwrap();
    let logged = items
        .iter()
        .find(|e| e["type"] == "message.received")
        .expect("message.received in the log");
    assert_eq!(logged["contact"], wanted);
    // Events about no contact carry none.
    let status_event = items
        .iter()
        .find(|e| e["type"] == "modem.status")
        .expect("a modem.status event");
    assert!(status_event.get("contact").is_none(), "{status_event}");
    // A contact without a profile: who, with nulls.
    let stranger = "+15550405002";
    modem.inject(stranger, "Hello?").unwrap();
    let delivered = blocking({
        let rx = rx.clone();
        move || {
            wait_until(Duration::from_secs(20), "the stranger's delivery", || {
                rx.unique().into_iter().find(|r| {
                    r.event["type"] == "message.received" && r.event["data"]["contact"] == stranger
                })
            })
        }
    })
    .await;
    assert_eq!(
        delivered.event["contact"],
        json!({"number": stranger, "name": null, "external_id": null})
    );
    drop(stream);
    gw.stop().await;
    modem.shutdown().await;
}
