//! `GET /metrics` on a running daemon with a simulated modem, parsed as
//! Prometheus text: every sample belongs to a declared family, the values
//! say what happened, histograms are cumulative.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{http, wait_ready, wait_until};
use serde_json::json;
use smsgate::sim::{Personality, SimConfig, Simulator};

/// One sample: name, labels, value.
type Sample = (String, HashMap<String, String>, f64);

/// A small parser of the text format (0.0.4): `# TYPE` lines and samples.
fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once("=\"").unwrap();
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), HashMap::new()),
        };
        samples.push((name, labels, value));
    }
    (types, samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_the_modems_and_the_queue() {
    let mut c = SimConfig::new(Personality::Ec25);
    c.link = Some(std::env::temp_dir().join(format!("smsgate-metrics-{}.tty", std::process::id())));
    c.noise_interval = Some(Duration::ZERO);
    c.status_report_delay = Duration::from_millis(20);
    let sim = Simulator::start(c).unwrap();
    let db = std::env::temp_dir().join(format!("smsgate-metrics-{}.db", std::process::id()));
    let _ = std::fs::remove_dir_all(&db);
    let token = "metrics-token";
    let daemon = common::InProcessDaemon::start(
        &format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n[[modem]]\nid = \"m1\"\nport = \"{}\"\n",
            db.display(),
            sim.link().display()
        ),
        token,
    )
    .await;
    let addr = daemon.addr.clone();
    let text = tokio::task::spawn_blocking(move || {
        wait_ready(&addr);
        let (status, accepted) = http(
            "POST",
            &addr,
            "/v1/messages",
            Some(token),
            Some(&json!({"to": "+15550700001", "body": "hello"})),
        );
        assert_eq!(status, 202);
        let id = accepted["id"].as_str().unwrap().to_string();
        wait_until(Duration::from_secs(20), "delivered", || {
            let (_, m) = http(
                "GET",
                &addr,
                &format!("/v1/messages/{id}"),
                Some(token),
                None,
            );
            (m["status"] == "delivered").then_some(())
        });
        // The outbox is counted every second: once this count has caught
        // up with the delivery, it reads 0.
        wait_until(Duration::from_secs(10), "the outbox counted empty", || {
            let text = scrape(&addr);
            text.contains("\nsmsgate_outbox_messages 0\n")
                .then_some(text)
        })
    })
    .await
    .unwrap();
    let (types, samples) = parse(&text);
    for (name, _, _) in &samples {
        let family = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no # TYPE");
    }
    let value = |name: &str, modem: Option<&str>| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && modem.is_none_or(|m| l.get("modem").map(String::as_str) == Some(m))
            })
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(value("smsgate_modem_up", Some("m1")), 1.0);
    assert_eq!(value("smsgate_modem_registered", Some("m1")), 1.0);
    assert!(value("smsgate_modem_signal_dbm", Some("m1")) < 0.0);
    assert_eq!(value("smsgate_modem_sent_parts_total", Some("m1")), 1.0);
    assert_eq!(value("smsgate_modem_status_reports_total", Some("m1")), 1.0);
    assert_eq!(value("smsgate_outbox_messages", None), 0.0);
    assert_eq!(value("smsgate_housekeeping_errors_total", None), 0.0);
    assert!(value("smsgate_store_size_bytes", None) > 0.0);
    let state_ready = samples
        .iter()
        .find(|(n, l, _)| {
            n == "smsgate_modem_state" && l.get("state").map(String::as_str) == Some("ready")
        })
        .unwrap();
    assert_eq!(state_ready.2, 1.0);
    // The histogram: cumulative buckets ending in +Inf == count.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(n, _, _)| n == "smsgate_at_command_duration_seconds_bucket")
        .map(|(_, _, v)| *v)
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    let count = value("smsgate_at_command_duration_seconds_count", Some("m1"));
    assert_eq!(*buckets.last().unwrap(), count);
    assert!(count > 10.0, "init, health checks and the send were timed");
    daemon.stop().await;
    sim.shutdown().await;
}

/// `GET /metrics` without a token; the body.
fn scrape(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "no token needed");
    assert!(out.contains("text/plain; version=0.0.4"));
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}
