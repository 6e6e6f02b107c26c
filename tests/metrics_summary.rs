//! `GET /v1/metrics/summary` on a running daemon: metrics recorded through
//! the store (as the conversation engine counts them, with the sequence of
//! the event each came from) and read back over
//! HTTP, checked against counts made by hand here; the period and filters
//! of the query string; its refusals.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use smsgate::conversation::metrics::{Counting, Fact};

const TOKEN: &str = "metrics-summary-token";

fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, h, m, 0).unwrap()
}

fn sent(
    contact: &str,
    when: DateTime<Utc>,
    id: &str,
    campaign: &str,
    variant: &str,
    parts: u32,
) -> Fact {
    Fact::Sent {
        contact: contact.into(),
        at: when,
        message_id: id.into(),
        campaign: Some(campaign.into()),
        variant: Some(variant.into()),
        team: Some("support".into()),
        parts,
        // The modem's cost_per_part, 0.05 here.
        cost: Some(f64::from(parts) * 0.05),
    }
}

fn inbound(contact: &str, when: DateTime<Utc>, opt_out: bool) -> Fact {
    Fact::Inbound {
        contact: contact.into(),
        at: when,
        opt_out,
    }
}

async fn get(addr: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let (addr, path, token) = (
        addr.to_string(),
        path.to_string(),
        token.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || common::http("GET", &addr, &path, token.as_deref(), None))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_answers_hand_counted_metrics_over_http() {
    let db = std::env::temp_dir().join(format!("smsgate-metrics-summary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&db);
    let config = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [conversation]\ncurrency = \"EUR\"\nreply_window = \"24h\"\n\
         [[conversation.team]]\nid = \"support\"\nbusiness_hours = \"Mon-Fri 08:00-18:00\"\ntime_zone = \"Europe/Berlin\"",
        db.display()
    );
    let daemon = common::InProcessDaemon::start(&config, TOKEN).await;
    let counting = Counting::default();
    let (a, b, c, d) = (
        "+4915110000001",
        "+4915110000002",
        "+4915110000003",
        "+4915110000004",
    );
    let facts = vec![
        // 2 March 2026 (a Monday). A (spring/a) replies twice.
        sent(a, at(2, 9, 0), "m1", "spring", "a", 1),
        inbound(a, at(2, 9, 10), false),
        inbound(a, at(2, 15, 0), false),
        // B (spring/b, two parts) replies 25 hours later: after the window.
        sent(b, at(2, 9, 0), "m2", "spring", "b", 2),
        inbound(b, at(3, 10, 0), false),
        // C (spring/a) texts STOP.
        sent(c, at(2, 9, 0), "m3", "spring", "a", 1),
        inbound(c, at(2, 9, 1), true),
        // D (spring/b) is sent something on the 2nd and the 3rd, replies on
        // the 3rd and books (a conversion linked to the 3rd's message).
        sent(d, at(2, 9, 0), "m4", "spring", "b", 1),
        sent(d, at(3, 9, 0), "m5", "spring", "b", 1),
        inbound(d, at(3, 9, 30), false),
        Fact::FirstResponse {
            contact: d.into(),
            at: at(3, 9, 31),
            team: Some("support".into()),
            // A person's answer: it ends the wait and the person's.
            waited_from: Some(at(3, 9, 30)),
            business_seconds: 60,
            person_waited_from: Some(at(3, 9, 30)),
            person_business_seconds: 60,
        },
        Fact::Outcome {
            contact: d.into(),
            at: at(3, 9, 32),
            name: "appointment_booked".into(),
            campaign: Some("spring".into()),
            variant: Some("b".into()),
            team: Some("support".into()),
            message_id: Some("m5".into()),
        },
    ];
    // Event sequences far past the daemon's own events (the engine counts
    // those meanwhile; none of them makes a fact).
    let base = 1u64 << 40;
    for (i, fact) in facts.into_iter().enumerate() {
        // The same event read twice (as after a crash): counted once.
        let seq = base + i as u64;
        let batch = [(seq, fact)];
        let counted: Vec<usize> = (0..2)
            .map(|_| daemon.store.record_metrics(&batch, seq, &counting).unwrap())
            .collect();
        assert_eq!(counted, [1, 0]);
    }

    // Both days: A B C D sent (D once); A and D replied; C opted out; D
    // converted. Parts 1+2+1+1+1 = 6 at 0.05 = 0.30 for one conversion.
    let (status, all) = get(
        &daemon.addr,
        "/v1/metrics/summary?from=2026-03-02&to=2026-03-03",
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["from"], "2026-03-02");
    assert_eq!(all["to"], "2026-03-03");
    assert_eq!(all["currency"], "EUR");
    assert_eq!(
        (all["campaign"].clone(), all["team"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(all["messages_sent"], 5);
    assert_eq!(
        all["reply_rate"],
        json!({"value": 0.5, "numerator": 2, "denominator": 4})
    );
    assert_eq!(
        all["opt_out_rate"],
        json!({"value": 0.25, "numerator": 1, "denominator": 4})
    );
    assert_eq!(
        all["conversion_rate"],
        json!({"value": 0.25, "numerator": 1, "denominator": 4})
    );
    let cost = &all["cost_per_outcome"];
    assert_eq!(
        (cost["denominator"].clone(), cost["parts"].clone()),
        (json!(1), json!(6))
    );
    assert!(
        (cost["numerator"].as_f64().unwrap() - 0.30).abs() < 1e-9,
        "{cost}"
    );
    assert!(
        (cost["value"].as_f64().unwrap() - 0.30).abs() < 1e-9,
        "{cost}"
    );
    let one_minute = json!({"median_s": 60, "p90_s": 60, "count": 1});
    let ttfr = &all["time_to_first_response"];
    assert_eq!(ttfr["overall"], one_minute);
    assert_eq!(ttfr["business_hours"], one_minute);
    assert_eq!(ttfr["person"]["overall"], one_minute);

    // Each day alone: the 2nd has A B C D (D's reply and booking belong to
    // the 3rd's message); the 3rd has D only, who replied and converted.
    let (_, second) = get(
        &daemon.addr,
        "/v1/metrics/summary?from=2026-03-02&to=2026-03-02",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        second["reply_rate"],
        json!({"value": 0.25, "numerator": 1, "denominator": 4})
    );
    assert_eq!(second["conversion_rate"]["numerator"], 0);
    assert_eq!(second["cost_per_outcome"]["value"], Value::Null);
    let (_, third) = get(
        &daemon.addr,
        "/v1/metrics/summary?from=2026-03-03T00:00:00Z&to=2026-03-03",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        third["reply_rate"],
        json!({"value": 1.0, "numerator": 1, "denominator": 1})
    );
    assert_eq!(
        third["conversion_rate"],
        json!({"value": 1.0, "numerator": 1, "denominator": 1})
    );

    // Filters: variant a is A and C; variant b is B and D.
    let (_, va) = get(
        &daemon.addr,
        "/v1/metrics/summary?from=2026-03-02&to=2026-03-03&campaign=spring&variant=a",
        Some(TOKEN),
    )
    .await;
    assert_eq!(va["variant"], "a");
    assert_eq!(
        va["reply_rate"],
        json!({"value": 0.5, "numerator": 1, "denominator": 2})
    );
    assert_eq!(va["opt_out_rate"]["numerator"], 1);
    assert_eq!(
        va["time_to_first_response"]["overall"]["count"], 0,
        "kept by team only"
    );
    assert_eq!(
        va["time_to_first_response"]["overall"]["median_s"],
        Value::Null
    );
    let (_, vb) = get(
        &daemon.addr,
        "/v1/metrics/summary?from=2026-03-02&to=2026-03-03&campaign=spring&variant=b&team=support",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        vb["reply_rate"],
        json!({"value": 0.5, "numerator": 1, "denominator": 2})
    );
    assert_eq!(vb["conversion_rate"]["numerator"], 1);
    let (_, other) = get(
        &daemon.addr,
        "/v1/metrics/summary?from=2026-03-02&to=2026-03-03&team=sales",
        Some(TOKEN),
    )
    .await;
    assert_eq!(
        other["reply_rate"],
        json!({"value": null, "numerator": 0, "denominator": 0})
    );

    // Refusals are problems naming what is wrong.
    for (path, says) in [
        ("/v1/metrics/summary?from=March", "from must be a date"),
        (
            "/v1/metrics/summary?from=2026-03-03&to=2026-03-02",
            "is after",
        ),
        ("/v1/metrics/summary?variant=a", "variant needs campaign"),
        (
            "/v1/metrics/summary?campain=spring",
            "unknown query parameter",
        ),
    ] {
        let (status, problem) = get(&daemon.addr, path, Some(TOKEN)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("invalid_query")),
            "{path}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{path}: {problem}"
        );
    }
    assert_eq!(get(&daemon.addr, "/v1/metrics/summary", None).await.0, 401);
    // The default period (the last 30 days) answers too.
    let (status, default) = get(&daemon.addr, "/v1/metrics/summary", Some(TOKEN)).await;
    assert_eq!(status, 200, "{default}");

    daemon.stop().await;
    let _ = std::fs::remove_dir_all(&db);
}
