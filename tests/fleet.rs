//! The fleet on NATS JetStream (feature `fleet`; `.ci/run` installs
//! Debian's nats-server): gateways in this process, each with its own
//! store and simulated modem, sharing one broker on loopback.
//!
//! - A STOP at gateway A reaches gateway C: C's ledger has A's entry, what
//!   waited at C for the contact is cancelled, C refuses a new send, and C's
//!   modem never texts the contact; an opt-in at C reaches A the same way.
//! - Outbound through the work queue: what three gateways accept goes out
//!   once, from whichever gateway took it; every gateway reads each
//!   message's final state; a contact keeps the site that texted it; a
//!   cancel at the accepting gateway wins over every other; every inbox
//!   shows the same threads, and a reply written anywhere goes from the
//!   number the customer texted.
//! - Every gateway's metrics summary is the same, a send's cost at the
//!   price of a part where it was sent; consent kept per gateway number
//!   holds per number across the fleet; an opt-out between the parts of a
//!   message taken elsewhere stops it there, reported once.
//! - Without the broker for longer than `consent_staleness`, a gateway
//!   defers sends (never drops them), says so on `/readyz` and `/metrics`,
//!   and sends them once the broker is back.

#![cfg(feature = "fleet")]

mod common;
#[path = "common/compat_receiver.rs"]
mod compat_receiver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::nats::NatsServer;
use common::{http, texts_to, wait_until};
use serde_json::{json, Value};
use smsgate::sim::SimHandle;

const TOKEN: &str = "fleet-token";

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("smsgate-fleet-{}-{name}", std::process::id()))
}

/// Removes what a test left under the temp dir (stores, configs, logs)
/// when dropped, unless the test failed (then they say what happened).
struct Leftovers(&'static [&'static str]);

impl Drop for Leftovers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for name in self.0 {
            let path = temp(name);
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn sim(name: &str, own: &str) -> SimHandle {
    common::sim800(temp(&format!("{name}.tty")), own)
}

/// A gateway of site `site` in this process, ready, with `modem`.
async fn gateway(
    name: &str,
    site: &str,
    nats: &str,
    staleness: &str,
    modem: &SimHandle,
) -> common::InProcessDaemon {
    gateway_with(name, site, nats, staleness, modem, "", "").await
}

/// [`gateway`] with `consent`'s lines in its `[consent]` and `modem_lines`
/// in its `[[modem]]` (`m1`).
async fn gateway_with(
    name: &str,
    site: &str,
    nats: &str,
    staleness: &str,
    modem: &SimHandle,
    consent: &str,
    modem_lines: &str,
) -> common::InProcessDaemon {
    let _ = std::fs::remove_dir_all(temp(&format!("{name}.db")));
    gateway_again(name, site, nats, staleness, modem, consent, modem_lines).await
}

/// [`gateway_with`] on the store it left (a gateway started again).
async fn gateway_again(
    name: &str,
    site: &str,
    nats: &str,
    staleness: &str,
    modem: &SimHandle,
    consent: &str,
    modem_lines: &str,
) -> common::InProcessDaemon {
    let db = temp(&format!("{name}.db"));
    let text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [consent]\nprogram_name = \"Acme Dental\"\n{consent}\
         [cluster]\nnats_url = [\"{nats}\"]\nsite = \"{site}\"\nconsent_staleness = \"{staleness}\"\n\
         [[modem]]\nid = \"m1\"\nport = \"{}\"\n{modem_lines}",
        db.display(),
        modem.link().display()
    );
    let daemon = common::InProcessDaemon::start(&text, TOKEN).await;
    daemon.wait_ready().await;
    daemon
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn post(addr: &str, body: Value) -> (u16, Value) {
    http("POST", addr, "/v1/messages", Some(TOKEN), Some(&body))
}

/// `POST /v1/messages` with an Idempotency-Key.
fn idempotent_post(addr: &str, key: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, text) = compat_receiver::http_text(
        "POST",
        addr,
        "/v1/messages",
        &[
            ("Authorization", &auth),
            ("Idempotency-Key", key),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn consent(addr: &str, contact: &str) -> Value {
    let path = format!("/v1/contacts/{}/consent", contact.replace('+', "%2B"));
    let (status, v) = http("GET", addr, &path, Some(TOKEN), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// `/metrics` as text.
fn metrics(addr: &str) -> String {
    let auth = format!("Bearer {TOKEN}");
    compat_receiver::http_text("GET", addr, "/metrics", &[("Authorization", &auth)], "").2
}

fn readyz(addr: &str) -> Value {
    http("GET", addr, "/readyz", None, None).1
}

/// Wait until the gateway's consent replica is current (connected to the
/// broker and caught up with the bucket).
fn wait_current(addr: &str) {
    // A JetStream cluster that has just formed (or lost a server) elects
    // its leaders first: the gateway's first requests can time out (10 s).
    wait_until(Duration::from_secs(60), "the consent replica", || {
        (readyz(addr)["fleet"]["consent_current"] == true).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_at_one_gateway_holds_at_every_other() {
    let _leftovers = Leftovers(&["stop-a.db", "stop-b.db", "stop-c.db"]);
    let nats = NatsServer::start(temp("nats-stop"));
    let (sa, sc) = (sim("stop-a", "+15550600000"), sim("stop-c", "+15550700000"));
    let a = gateway("stop-a", "a", &nats.url(), "10m", &sa).await;
    let c = gateway("stop-c", "c", &nats.url(), "10m", &sc).await;
    let (addr_a, addr_c) = (a.addr.clone(), c.addr.clone());
    let (sa2, sc2) = (sa.clone(), sc.clone());
    blocking(move || {
        wait_current(&addr_a);
        wait_current(&addr_c);
        let customer = "+15550600001";
        // Waiting at C: a reminder for tomorrow.
        let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
        let (status, waiting) = post(
            &addr_c,
            json!({"to": customer, "body": "See you tomorrow", "send_at": tomorrow}),
        );
        assert_eq!(status, 202, "{waiting}");
        // The customer texts STOP to A's number.
        let start = Instant::now();
        sa2.inject(customer, "STOP").unwrap();
        let seen = wait_until(Duration::from_secs(20), "the STOP at C", || {
            let v = consent(&addr_c, customer);
            (v["status"] == "opted_out").then_some(v)
        });
        println!("STOP at A -> opted out at C: {:?}", start.elapsed());
        let entry = &seen["ledger"][0];
        assert_eq!(entry["site"], "a", "{seen}");
        assert_eq!(entry["action"], "opt_out");
        assert_eq!(entry["source"], "sms");
        // What waited at C is cancelled, a new send refused.
        let id = waiting["id"].as_str().unwrap().to_string();
        let m = wait_until(Duration::from_secs(20), "the reminder cancelled", || {
            let m = common::message(&addr_c, TOKEN, &id);
            (m["status"] == "failed").then_some(m)
        });
        assert_eq!(m["error"]["code"], "recipient_opted_out");
        let (status, refused) = post(&addr_c, json!({"to": customer, "body": "One more"}));
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["code"], "recipient_opted_out");
        // A answered with its one confirmation; C never texted the customer.
        wait_until(Duration::from_secs(20), "A's confirmation", || {
            texts_to(&sa2, customer)
                .into_iter()
                .find(|t| t.contains("unsubscribed"))
        });
        // A's own ledger has no site (made there); one entry at each.
        let at_a = consent(&addr_a, customer);
        assert_eq!(at_a["ledger"].as_array().unwrap().len(), 1, "{at_a}");
        assert!(at_a["ledger"][0].get("site").is_none(), "{at_a}");

        // An opt-in with evidence at C reaches A, and A sends again.
        let path = format!("/v1/contacts/{}/consent", customer.replace('+', "%2B"));
        let (status, v) = http(
            "PUT",
            &addr_c,
            &path,
            Some(TOKEN),
            Some(&json!({"status": "opted_in", "source": "paper", "evidence": "form 12"})),
        );
        assert_eq!(status, 200, "{v}");
        let back = wait_until(Duration::from_secs(20), "the opt-in at A", || {
            let v = consent(&addr_a, customer);
            (v["status"] == "opted_in").then_some(v)
        });
        assert_eq!(back["ledger"][1]["site"], "c", "{back}");
        assert_eq!(back["evidence"]["evidence"], "form 12", "{back}");
        let (status, v) = post(&addr_a, json!({"to": customer, "body": "Welcome back"}));
        assert_eq!(status, 202, "{v}");
        wait_until(Duration::from_secs(20), "sent from A", || {
            texts_to(&sa2, customer)
                .into_iter()
                .find(|t| t == "Welcome back")
        });
        // Each change crossed once: no echo back to where it was made.
        assert_eq!(
            consent(&addr_a, customer)["ledger"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            consent(&addr_c, customer)["ledger"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert!(texts_to(&sc2, customer).is_empty());
    })
    .await;
    // A gateway that joins later gets each contact's latest consent.
    let sb = sim("stop-b", "+15550650000");
    let b = gateway("stop-b", "b", &nats.url(), "10m", &sb).await;
    let addr_b = b.addr.clone();
    blocking(move || {
        wait_current(&addr_b);
        let v = consent(&addr_b, "+15550600001");
        assert_eq!(v["status"], "opted_in", "{v}");
        assert_eq!(v["ledger"][0]["site"], "c", "{v}");
    })
    .await;
    b.stop().await;
    sb.shutdown().await;
    a.stop().await;
    c.stop().await;
    sa.shutdown().await;
    sc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_broker_sends_wait_once_consent_is_stale() {
    let _leftovers = Leftovers(&["stale.db"]);
    let mut nats = NatsServer::start(temp("nats-stale"));
    let modem = sim("stale", "+15550800000");
    let gw = gateway("stale", "solo", &nats.url(), "2s", &modem).await;
    let addr = gw.addr.clone();
    let m = modem.clone();
    let nats = blocking(move || {
        wait_current(&addr);
        let text = metrics(&addr);
        assert!(text.contains("smsgate_fleet_connected 1"), "{text}");
        assert!(text.contains("smsgate_fleet_consent_current 1"), "{text}");
        // Sent at once while current.
        assert_eq!(
            post(&addr, json!({"to": "+15550800001", "body": "first"})).0,
            202
        );
        wait_until(Duration::from_secs(20), "the first send", || {
            texts_to(&m, "+15550800001").into_iter().next()
        });
        nats.kill();
        let ready = wait_until(Duration::from_secs(20), "the replica stale", || {
            let r = readyz(&addr);
            (r["fleet"]["consent_current"] == false).then_some(r)
        });
        assert_eq!(ready["fleet"]["connected"], false, "{ready}");
        assert_eq!(ready["status"], "ready", "receiving goes on: {ready}");
        let text = metrics(&addr);
        assert!(text.contains("smsgate_fleet_consent_current 0"), "{text}");
        // A new send waits, with the reason.
        let (status, v) = post(&addr, json!({"to": "+15550800002", "body": "second"}));
        assert_eq!(status, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let waiting = common::message(&addr, TOKEN, &id);
        assert_eq!(waiting["status"], "deferred", "{waiting}");
        assert!(
            waiting
                .to_string()
                .contains("the fleet's consent is not current"),
            "{waiting}"
        );
        // The broker back: the replica syncs and the message goes.
        nats.restart();
        wait_current(&addr);
        wait_until(Duration::from_secs(30), "the deferred send", || {
            texts_to(&m, "+15550800002").into_iter().next()
        });
        nats
    })
    .await;
    gw.stop().await;
    modem.shutdown().await;
    drop(nats);
}

/// A gateway with no modems, on its own store, signed in to `nats` as
/// `credentials` (the lines of `[cluster.credentials]`) with `cluster`'s
/// other lines (`tls_ca`).
async fn signed_in_gateway(
    name: &str,
    url: &str,
    cluster: &str,
    credentials: &str,
) -> common::InProcessDaemon {
    let db = temp(&format!("{name}.db"));
    let _ = std::fs::remove_dir_all(&db);
    let text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [cluster]\nnats_url = [\"{url}\"]\nsite = \"north\"\n{cluster}\
         [cluster.credentials]\n{credentials}",
        db.display(),
    );
    common::InProcessDaemon::start(&text, TOKEN).await
}

/// A CA, and a certificate for 127.0.0.1 that it signed, made with Debian's
/// `openssl` in `dir`: (the CA's PEM, the server's certificate, its key).
fn test_certificates(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("openssl (apt-get install openssl): {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=smsgate test CA",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// The gateway signs in to the broker with each kind of credentials it
/// takes (a token, a user and password, an nkey seed file) and over TLS
/// with its own CA; wrong credentials leave it unconnected (the server
/// refuses them) and `/readyz` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_signs_in_with_each_kind_of_credentials_and_tls() {
    let _leftovers = Leftovers(&["creds", "creds-gw.db"]);
    let dir = temp("creds");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // An nkey pair made with the nkeys crate (`KeyPair::new_user()`): the
    // server knows the public key, the gateway reads the seed from a file.
    let seed = dir.join("north.nk");
    std::fs::write(
        &seed,
        "SUADEXOJRUJ54VN56H4ND6RTMPCA6KIGBSMFOCEHILNGL3HVGLOFXWS4LI\n",
    )
    .unwrap();
    let public = "UAKK5GO6IWL7OEW2P33LTBY563FWVCGPRKDNXN6DFKVS3E2OD452QYUR";
    let (ca, cert, key) = test_certificates(&dir);
    let tls = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
        cert.display(),
        key.display()
    );
    let seed_line = format!("nkey = \"{}\"\n", seed.display());
    let ca_line = format!("tls_ca = \"{}\"\n", ca.display());
    // (server's configuration, the gateway's scheme, its `[cluster]` lines,
    // its credentials, whether it gets in)
    let cases: Vec<(String, &str, String, String, bool)> = vec![
        (
            "authorization { token: \"s3cret\" }\n".into(),
            "nats",
            String::new(),
            "token = \"s3cret\"\n".into(),
            true,
        ),
        (
            "authorization { token: \"s3cret\" }\n".into(),
            "nats",
            String::new(),
            "token = \"guess\"\n".into(),
            false,
        ),
        (
            "authorization { user: \"north\", password: \"pa55\" }\n".into(),
            "nats",
            String::new(),
            "user = \"north\"\npassword = \"pa55\"\n".into(),
            true,
        ),
        (
            "authorization { user: \"north\", password: \"pa55\" }\n".into(),
            "nats",
            String::new(),
            "user = \"north\"\npassword = \"wrong\"\n".into(),
            false,
        ),
        (
            format!("authorization {{ users = [ {{ nkey: \"{public}\" }} ] }}\n"),
            "nats",
            String::new(),
            seed_line.clone(),
            true,
        ),
        (
            format!("authorization {{ token: \"s3cret\" }}\n{tls}"),
            "tls",
            ca_line.clone(),
            "token = \"s3cret\"\n".into(),
            true,
        ),
    ];
    for (i, (conf, scheme, cluster, credentials, gets_in)) in cases.into_iter().enumerate() {
        let nats = NatsServer::start_with(dir.join(format!("nats-{i}")), Some(&conf));
        let url = format!("{scheme}://127.0.0.1:{}", nats.port);
        let gateway = signed_in_gateway("creds-gw", &url, &cluster, &credentials).await;
        let addr = gateway.addr.clone();
        let server_log = nats.dir.join("server.log");
        blocking(move || {
            if gets_in {
                wait_until(Duration::from_secs(30), "signed in", || {
                    (readyz(&addr)["fleet"]["consent_current"] == true).then_some(())
                });
                assert_eq!(readyz(&addr)["fleet"]["connected"], true, "case {i}");
            } else {
                wait_until(Duration::from_secs(30), "the server's refusal", || {
                    std::fs::read_to_string(&server_log)
                        .ok()?
                        .contains("authentication error")
                        .then_some(())
                });
                let ready = readyz(&addr);
                assert_eq!(ready["fleet"]["connected"], false, "case {i}: {ready}");
                assert_eq!(
                    ready["fleet"]["consent_current"], false,
                    "case {i}: {ready}"
                );
            }
        })
        .await;
        gateway.stop().await;
        drop(nats);
    }
}

/// The commented `[cluster]` example of config/smsgate.toml, uncommented,
/// is a valid configuration of what it describes.
#[test]
fn the_documented_example_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/smsgate.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("\n# [cluster]\n").unwrap();
    let example: String = text[start + 1..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter(|l| !l.starts_with("# #"))
        .filter_map(|l| l.strip_prefix("# "))
        .map(|l| l.to_string() + "\n")
        .collect();
    let config = smsgate::config::Config::from_toml(&example, std::iter::empty())
        .unwrap_or_else(|e| panic!("{e}\n{example}"));
    let cluster = config.cluster.expect("[cluster]");
    assert_eq!(cluster.site, "north");
    assert_eq!(cluster.consent_staleness, Duration::from_secs(600));
    assert_eq!(cluster.gone_after, Duration::from_secs(900));
    assert_eq!(cluster.credentials.token.as_deref(), Some("..."));
}

/// `smsgate run` as a child process (so it can be SIGKILLed), site `site`,
/// its store at `db` (kept across restarts), no modems; ready once its
/// consent replica is current.
fn child_gateway(
    name: &str,
    site: &str,
    urls: &[String],
    db: &std::path::Path,
    port: u16,
) -> common::ChildDaemon {
    child_gateway_with(name, site, urls, db, port, &[], "replicas = 3\n")
}

/// [`child_gateway`] with simulated modems (`m1`, `m2`, ... on their links)
/// and `cluster`'s lines in its `[cluster]`.
fn child_gateway_with(
    name: &str,
    site: &str,
    urls: &[String],
    db: &std::path::Path,
    port: u16,
    modems: &[std::path::PathBuf],
    cluster: &str,
) -> common::ChildDaemon {
    let config = temp(&format!("{name}.toml"));
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let mut text = format!(
        "[api]\nbind = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
         [consent]\nprogram_name = \"Acme Dental\"\n\
         [cluster]\nnats_url = [{}]\nsite = \"{site}\"\n{cluster}",
        db.display(),
        urls.join(", ")
    );
    for (i, link) in modems.iter().enumerate() {
        text.push_str(&format!(
            "[[modem]]\nid = \"m{}\"\nport = \"{}\"\n",
            i + 1,
            link.display()
        ));
    }
    std::fs::write(&config, text).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_smsgate"))
        .args(["run", "--config"])
        .arg(&config)
        .env("SMSGATE_API_TOKEN", TOKEN)
        .env("SMSGATE_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(temp(&format!("{name}.log")))
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let daemon = common::ChildDaemon(child);
    let addr = format!("127.0.0.1:{port}");
    wait_until(Duration::from_secs(30), "the child gateway's API", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    wait_current(&addr);
    daemon
}

fn opt_out(addr: &str, contact: &str) {
    let path = format!("/v1/contacts/{}/consent", contact.replace('+', "%2B"));
    let (status, v) = http(
        "PUT",
        addr,
        &path,
        Some(TOKEN),
        Some(&json!({"status": "opted_out", "reason": "asked by phone"})),
    );
    assert_eq!(status, 200, "{v}");
}

/// Three NATS servers as one JetStream cluster with replicated (R3)
/// streams; gateway A a child process, C in this process, on different
/// servers. With one server killed, a STOP at A still holds at C; an
/// opt-out answered by A just before A is SIGKILLed reaches C, from A's
/// event log once A is back if it had not gone out before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_survives_a_dead_server_and_a_killed_gateway() {
    let _leftovers = Leftovers(&["r3-a.db", "r3-c.db", "r3-a.toml", "r3-a.log", "nats-r3"]);
    let mut servers = common::nats::cluster(temp("nats-r3"), 3);
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let db_a = temp("r3-a.db");
    let _ = std::fs::remove_dir_all(&db_a);
    let port_a = common::free_port();
    let addr_a = format!("127.0.0.1:{port_a}");
    let urls_a = urls.clone();
    let db = db_a.clone();
    let a = blocking(move || child_gateway("r3-a", "a", &urls_a, &db, port_a)).await;
    // C on the third server first, with the others to fail over to.
    let modem = sim("r3-c", "+15550900000");
    let c_db = temp("r3-c.db");
    let _ = std::fs::remove_dir_all(&c_db);
    let c = common::InProcessDaemon::start(
        &format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
             [cluster]\nnats_url = [\"{}\", \"{}\", \"{}\"]\nsite = \"c\"\nreplicas = 3\n\
             [[modem]]\nid = \"m1\"\nport = \"{}\"\n",
            c_db.display(),
            urls[2],
            urls[0],
            urls[1],
            modem.link().display()
        ),
        TOKEN,
    )
    .await;
    c.wait_ready().await;
    let addr_c = c.addr.clone();
    let (a, servers) = blocking(move || {
        wait_current(&addr_c);
        // One server of three down: the streams keep a quorum.
        servers[1].kill();
        let x = "+15550900001";
        opt_out(&addr_a, x);
        let seen = wait_until(Duration::from_secs(30), "A's opt-out at C", || {
            let v = consent(&addr_c, x);
            (v["status"] == "opted_out").then_some(v)
        });
        assert_eq!(seen["ledger"][0]["site"], "a", "{seen}");
        // An opt-out answered by A, then A killed at once.
        let y = "+15550900002";
        opt_out(&addr_a, y);
        let mut a = a;
        let _ = a.0.kill();
        let _ = a.0.wait();
        drop(a);
        // A back on its store: what it had not published goes now.
        let a = child_gateway("r3-a", "a", &urls, &db_a, port_a);
        let seen = wait_until(
            Duration::from_secs(30),
            "the killed gateway's opt-out at C",
            || {
                let v = consent(&addr_c, y);
                (v["status"] == "opted_out").then_some(v)
            },
        );
        assert_eq!(seen["ledger"].as_array().unwrap().len(), 1, "{seen}");
        assert_eq!(consent(&addr_a, y)["ledger"].as_array().unwrap().len(), 1);
        // And C refuses to text either.
        for contact in [x, y] {
            let (status, v) = post(&addr_c, json!({"to": contact, "body": "hello"}));
            assert_eq!(status, 409, "{v}");
        }
        assert!(modem.received().is_empty());
        (a, servers)
    })
    .await;
    c.stop().await;
    drop(a);
    drop(servers);
}

/// Messages accepted by three gateways (one simulated modem each) go out
/// through the work queue: each exactly once (the simulators' received
/// lists), many from a gateway other than the one that accepted them; every
/// gateway answers the same final state for each; a contact texted again
/// is texted from the same site; a scheduled message cancelled where it was
/// accepted is cancelled for the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_goes_through_the_work_queue_once() {
    let _leftovers = Leftovers(&["wq-a.db", "wq-b.db", "wq-c.db", "nats-wq"]);
    let nats = NatsServer::start(temp("nats-wq"));
    let sims = [
        sim("wq-a", "+15551100000"),
        sim("wq-b", "+15551200000"),
        sim("wq-c", "+15551300000"),
    ];
    let mut gateways = Vec::new();
    for (site, modem) in ["a", "b", "c"].iter().zip(&sims) {
        gateways.push(gateway(&format!("wq-{site}"), site, &nats.url(), "10m", modem).await);
    }
    let addrs: Vec<String> = gateways.iter().map(|g| g.addr.clone()).collect();
    let sims2 = sims.clone();
    blocking(move || {
        for addr in &addrs {
            wait_current(addr);
        }
        const N: usize = 150;
        // Three clients, one per gateway, each its own contacts.
        let clients: Vec<_> = addrs
            .iter()
            .enumerate()
            .map(|(g, addr)| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    (0..N / 3)
                        .map(|i| {
                            let to = format!("+1555140{g}{i:03}");
                            let (status, v) =
                                post(&addr, json!({"to": to, "body": format!("hello {g}-{i}")}));
                            assert_eq!(status, 202, "{v}");
                            assert_eq!(v["status"], "queued", "{v}");
                            (g, to, v["id"].as_str().unwrap().to_string())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let sent: Vec<(usize, String, String)> = clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        assert_eq!(sent.len(), N);
        wait_until(Duration::from_secs(60), "every message on the air", || {
            let total: usize = sims2.iter().map(|s| s.received().len()).sum();
            (total >= N).then_some(())
        });
        // Each once, from one modem of the fleet.
        let mut from_other = 0;
        for (g, to, _) in &sent {
            let by: Vec<usize> = (0..3)
                .flat_map(|s| std::iter::repeat_n(s, texts_to(&sims2[s], to).len()))
                .collect();
            assert_eq!(by.len(), 1, "{to} texted by simulators {by:?}");
            if by[0] != *g {
                from_other += 1;
            }
        }
        let total: usize = sims2.iter().map(|s| s.received().len()).sum();
        assert_eq!(total, N, "nothing sent twice");
        println!("{from_other} of {N} sent by a gateway other than the one that accepted them");
        assert!(
            from_other > 0,
            "the work queue spreads messages over the fleet"
        );
        // Every gateway reads the same final state of every message.
        for (_, _, id) in &sent {
            // The simulated network reports delivery: final is `delivered`.
            for addr in &addrs {
                wait_until(
                    Duration::from_secs(20),
                    "the message's state everywhere",
                    || {
                        let m = common::message(addr, TOKEN, id);
                        (m["status"] == "delivered").then_some(())
                    },
                );
            }
        }
        // A contact texted again is texted from the same site.
        for (g, to, _) in sent.iter().step_by(10) {
            let before: Vec<usize> = (0..3)
                .filter(|s| !texts_to(&sims2[*s], to).is_empty())
                .collect();
            let other = &addrs[(g + 1) % 3];
            let (status, v) = post(other, json!({"to": to, "body": "again"}));
            assert_eq!(status, 202, "{v}");
            let now: Vec<usize> = wait_until(Duration::from_secs(20), "the second text", || {
                let now: Vec<usize> = (0..3)
                    .filter(|s| texts_to(&sims2[*s], to).iter().any(|t| t == "again"))
                    .collect();
                (!now.is_empty()).then_some(now)
            });
            assert_eq!(now, before, "{to} keeps its site");
        }
        // A scheduled message cancelled where it was accepted: the fence
        // holds it for the fleet, and every gateway reads it cancelled.
        let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let (status, v) = post(
            &addrs[0],
            json!({"to": "+15551499999", "body": "later", "send_at": later}),
        );
        assert_eq!(status, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        let (status, v) = http(
            "DELETE",
            &addrs[0],
            &format!("/v1/messages/{id}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["status"], "cancelled", "{v}");
        for addr in &addrs[1..] {
            wait_until(Duration::from_secs(20), "the cancel everywhere", || {
                let m = common::message(addr, TOKEN, &id);
                (m["status"] == "cancelled").then_some(())
            });
        }
        let text = metrics(&addrs[1]);
        assert!(text.contains("smsgate_fleet_events_pending "), "{text}");

        // Customers text the three numbers: every gateway's inbox shows
        // every thread, the same.
        let askers: Vec<String> = (0..6).map(|i| format!("+155514800{i:02}")).collect();
        for (i, who) in askers.iter().enumerate() {
            sims2[i % 3].inject(who, "Is there parking?").unwrap();
        }
        let inbox = |addr: &str, query: &str| -> Vec<(String, String)> {
            let (status, v) = http(
                "GET",
                addr,
                &format!("/v1/inbox?limit=100{query}"),
                Some(TOKEN),
                None,
            );
            assert_eq!(status, 200, "{v}");
            let mut out: Vec<(String, String)> = v["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| askers.iter().any(|a| t["contact"] == a.as_str()))
                .map(|t| {
                    (
                        t["contact"].as_str().unwrap().to_string(),
                        t["state"].to_string(),
                    )
                })
                .collect();
            out.sort();
            out
        };
        wait_until(
            Duration::from_secs(20),
            "the same threads in every inbox",
            || {
                let first = inbox(&addrs[0], "");
                (first.len() == askers.len() && addrs.iter().all(|a| inbox(a, "") == first))
                    .then_some(())
            },
        );
        // A reply written at another gateway goes from the number the
        // customer texted.
        for (i, who) in askers.iter().enumerate() {
            let at = &addrs[(i + 1) % 3];
            let path = format!("/v1/threads/{}/reply", who.replace('+', "%2B"));
            let (status, v) = http(
                "POST",
                at,
                &path,
                Some(TOKEN),
                Some(&json!({"body": "Yes, behind the building.", "author": "ana"})),
            );
            assert_eq!(status, 202, "{v}");
            wait_until(
                Duration::from_secs(20),
                "the reply from the texted number",
                || {
                    texts_to(&sims2[i % 3], who)
                        .iter()
                        .any(|t| t == "Yes, behind the building.")
                        .then_some(())
                },
            );
            for other in (0..3).filter(|s| *s != i % 3) {
                assert!(
                    !texts_to(&sims2[other], who)
                        .iter()
                        .any(|t| t == "Yes, behind the building."),
                    "{who} answered from simulator {other}"
                );
            }
        }
        // Closed at one gateway: closed in every inbox.
        let path = format!("/v1/threads/{}/state", askers[0].replace('+', "%2B"));
        let (status, v) = http(
            "PUT",
            &addrs[2],
            &path,
            Some(TOKEN),
            Some(&json!({"state": "closed"})),
        );
        assert_eq!(status, 200, "{v}");
        for addr in &addrs {
            wait_until(
                Duration::from_secs(20),
                "the thread closed everywhere",
                || {
                    inbox(addr, "&state=closed")
                        .iter()
                        .any(|(c, _)| c == &askers[0])
                        .then_some(())
                },
            );
        }
        // A note written at one gateway: in the thread's timeline at every
        // gateway, once, beside the close's activity from another.
        let contact = askers[0].replace('+', "%2B");
        let (status, note) = http(
            "POST",
            &addrs[1],
            &format!("/v1/threads/{contact}/notes"),
            Some(TOKEN),
            Some(&json!({"author": "ana", "text": "Called back: parking is fine."})),
        );
        assert_eq!(status, 201, "{note}");
        for addr in &addrs {
            let items = wait_until(
                Duration::from_secs(20),
                "the note in every timeline",
                || {
                    let (status, v) = http(
                        "GET",
                        addr,
                        &format!("/v1/threads/{contact}?limit=100"),
                        Some(TOKEN),
                        None,
                    );
                    assert_eq!(status, 200, "{v}");
                    let items = v["items"].as_array()?.clone();
                    items.iter().any(|i| i["kind"] == "note").then_some(items)
                },
            );
            let notes: Vec<_> = items.iter().filter(|i| i["kind"] == "note").collect();
            assert_eq!(notes.len(), 1, "{addr}: {notes:?}");
            assert_eq!(notes[0]["id"], note["id"]);
            assert_eq!(notes[0]["text"], "Called back: parking is fine.");
            assert_eq!(notes[0]["author"], "ana");
            assert!(
                items.iter().any(|i| i["kind"] == "activity"
                    && i["activity"] == "state_changed"
                    && i["detail"]["to"] == "closed"),
                "{addr}: the close made at another gateway: {items:?}"
            );
        }
        // The conversation metrics count every gateway's sends and first
        // responses (each gateway sent about a third of them, and the
        // replies were written at gateways other than the receiving one):
        // the same summary everywhere.
        let summary = |addr: &str| {
            let (status, v) = http("GET", addr, "/v1/metrics/summary", Some(TOKEN), None);
            assert_eq!(status, 200, "{v}");
            v
        };
        let first = wait_until(
            Duration::from_secs(30),
            "the same metrics everywhere",
            || {
                let first = summary(&addrs[0]);
                addrs.iter().all(|a| summary(a) == first).then_some(first)
            },
        );
        assert!(first["messages_sent"].as_u64().unwrap() >= 150, "{first}");
        assert!(
            first["time_to_first_response"]["overall"]["count"]
                .as_u64()
                .unwrap()
                >= askers.len() as u64,
            "{first}"
        );
    })
    .await;
    for g in gateways {
        g.stop().await;
    }
    for s in sims {
        s.shutdown().await;
    }
}

/// Every `message.failed` event of message `id` in a gateway's event log
/// (what its webhooks deliver).
fn failed_events(addr: &str, id: &str) -> usize {
    let mut after = String::new();
    let mut count = 0;
    loop {
        let path = format!("/v1/events?limit=100{after}");
        let (status, page) = http("GET", addr, &path, Some(TOKEN), None);
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        count += items
            .iter()
            .filter(|e| e["type"] == "message.failed" && e["data"]["id"] == id)
            .count();
        match page["next_cursor"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return count,
        }
    }
}

/// Two gateways on one nats-server for the opt-out tests: A (site `a`,
/// no modem: it only accepts and takes nothing from the work queue) and C
/// (site `c`, ready, with a simulated modem owning `own`, its `[[modem]]`
/// lines followed by `modem_extra`); each with a webhook for
/// `message.failed` to the receiver, at `/a` and `/c`. Stores
/// `<prefix>-a.db`, `<prefix>-c.db`.
async fn accepting_and_sending(
    prefix: &str,
    own: &str,
    modem_extra: &str,
) -> (
    NatsServer,
    SimHandle,
    std::sync::Arc<compat_receiver::App>,
    common::InProcessDaemon,
    common::InProcessDaemon,
) {
    let nats = NatsServer::start(temp(&format!("nats-{prefix}")));
    let sc = sim(&format!("{prefix}-c"), own);
    let (hooks, hook) = compat_receiver::App::start().await;
    let webhook = |path: &str| {
        format!(
            "[[webhook]]\nid = \"w\"\nurl = \"http://{hook}/{path}\"\n\
             secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nevents = [\"message.failed\"]\n"
        )
    };
    let config = |site: &str, rest: &str| {
        let db = temp(&format!("{prefix}-{site}.db"));
        let _ = std::fs::remove_dir_all(&db);
        format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
             [consent]\nprogram_name = \"Acme Dental\"\n\
             [cluster]\nnats_url = [\"{}\"]\nsite = \"{site}\"\n{rest}",
            db.display(),
            nats.url()
        )
    };
    // Not ready without a modem (`/readyz` says so): it only accepts.
    let a = common::InProcessDaemon::start(&config("a", &webhook("a")), TOKEN).await;
    let modem = format!(
        "[[modem]]\nid = \"m1\"\nport = \"{}\"\n{modem_extra}",
        sc.link().display()
    );
    let c =
        common::InProcessDaemon::start(&config("c", &format!("{}{modem}", webhook("c"))), TOKEN)
            .await;
    c.wait_ready().await;
    (nats, sc, hooks, a, c)
}

/// A message accepted at A (no modems: it only accepts) and taken at C,
/// waiting there for its `send_at`, when the customer texts STOP to C:
/// the fleet reports its failure once, from A; C gives its copy back,
/// never sends it, and ends with A's failed record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opt_out_is_reported_once_for_the_fleet() {
    let _leftovers = Leftovers(&["once-a.db", "once-c.db"]);
    let (_nats, sc, hooks, a, c) = accepting_and_sending("once", "+15550800000", "").await;
    let (addr_a, addr_c) = (a.addr.clone(), c.addr.clone());
    let sim_c = sc.clone();
    let hooks2 = hooks.clone();
    blocking(move || {
        wait_current(&addr_a);
        wait_current(&addr_c);
        let customer = "+15550800001";
        let send_at = (chrono::Utc::now() + chrono::Duration::seconds(4)).to_rfc3339();
        let (status, accepted) = post(
            &addr_a,
            json!({"to": customer, "body": "See you at 10:30", "send_at": send_at}),
        );
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        // C takes it (A has no modem) and holds it until its send_at.
        wait_until(Duration::from_secs(20), "the copy taken at C", || {
            let (status, m) = http(
                "GET",
                &addr_c,
                &format!("/v1/messages/{id}"),
                Some(TOKEN),
                None,
            );
            let waiting = m["status"] == "scheduled" || m["status"] == "queued";
            (status == 200 && waiting).then_some(())
        });
        sim_c.inject(customer, "STOP").unwrap();
        for addr in [&addr_a, &addr_c] {
            let m = wait_until(Duration::from_secs(20), "failed everywhere", || {
                let (_, m) = http(
                    "GET",
                    addr,
                    &format!("/v1/messages/{id}"),
                    Some(TOKEN),
                    None,
                );
                (m["status"] == "failed").then_some(m)
            });
            assert_eq!(m["error"]["code"], "recipient_opted_out", "{m}");
        }
        // One failure in the fleet's event logs, A's, and its webhook once.
        assert_eq!(failed_events(&addr_a, &id), 1);
        assert_eq!(failed_events(&addr_c, &id), 0);
        wait_until(Duration::from_secs(20), "A's webhook", || {
            hooks2
                .requests()
                .iter()
                .any(|r| r.uri == "/a" && r.body.contains(&id))
                .then_some(())
        });
        assert!(
            !hooks2
                .requests()
                .iter()
                .any(|r| r.uri == "/c" && r.body.contains(&id)),
            "C reported it too"
        );
        // Not on the air: C's copy went back before its send_at, and A's
        // record is failed.
        assert!(texts_to(&sim_c, customer)
            .iter()
            .all(|t| t != "See you at 10:30"));
    })
    .await;
    drop(hooks);
    a.stop().await;
    c.stop().await;
    sc.shutdown().await;
}

/// `GET /v1/threads/{contact}` at `addr`: its timeline items (none for a
/// contact the gateway does not know).
fn timeline(addr: &str, contact: &str) -> Vec<Value> {
    let path = format!("/v1/threads/{}?limit=100", contact.replace('+', "%2B"));
    let (status, v) = http("GET", addr, &path, Some(TOKEN), None);
    match status {
        404 => Vec::new(),
        200 => v["items"].as_array().cloned().unwrap_or_default(),
        _ => panic!("GET {path} at {addr}: {status} {v}"),
    }
}

/// A contact erased at A (`DELETE /v1/contacts/{n}`) is erased at C too:
/// the message C sent, the answer C received, the thread and its note.
/// What C publishes afterwards does not bring it back at A, and a message
/// sent after the erasure starts a new conversation everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_at_one_gateway_erases_the_contact_everywhere() {
    let _leftovers = Leftovers(&["erase-a.db", "erase-c.db"]);
    let (nats, sc, hooks, a, c) = accepting_and_sending("erase", "+15550810000", "").await;
    let (addr_a, addr_c) = (a.addr.clone(), c.addr.clone());
    let nats_url = nats.url();
    let sim_c = sc.clone();
    blocking(move || {
        wait_current(&addr_a);
        wait_current(&addr_c);
        let customer = "+15550810001";
        let contact = customer.replace('+', "%2B");
        // Opted in at A (with evidence), as C reads it too.
        let (status, v) = http(
            "PUT",
            &addr_a,
            &format!("/v1/contacts/{contact}/consent"),
            Some(TOKEN),
            Some(&json!({"status": "opted_in", "source": "paper", "evidence": "form 7"})),
        );
        assert_eq!(status, 200, "{v}");
        wait_until(Duration::from_secs(20), "the opt-in at C", || {
            (consent(&addr_c, customer)["status"] == "opted_in").then_some(())
        });
        assert_eq!(ledger_holding(&nats_url, customer), 1);
        let (status, accepted) = post(
            &addr_a,
            json!({"to": customer, "body": "Your order shipped"}),
        );
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        for addr in [&addr_a, &addr_c] {
            message_in(addr, &id, "delivered", Duration::from_secs(30));
        }
        sim_c.inject(customer, "Thanks! Is it insured?").unwrap();
        let (status, note) = http(
            "POST",
            &addr_c,
            &format!("/v1/threads/{contact}/notes"),
            Some(TOKEN),
            Some(&json!({"author": "ana", "text": "Wants insurance details"})),
        );
        assert_eq!(status, 201, "{note}");
        // The answer received at C and the note written there, at A.
        wait_until(Duration::from_secs(20), "the conversation at A", || {
            let items = timeline(&addr_a, customer);
            let answered = items.iter().any(|i| i["body"] == "Thanks! Is it insured?");
            let noted = items.iter().any(|i| i["kind"] == "note");
            (answered && noted).then_some(())
        });

        // One more for later, waiting in the fleet's work queue.
        let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let (status, waiting) = post(
            &addr_a,
            json!({"to": customer, "body": "Your insurance papers", "send_at": later}),
        );
        assert_eq!(status, 202, "{waiting}");
        let waiting = waiting["id"].as_str().unwrap().to_string();
        wait_sticky(&nats_url, customer, "c");
        let (status, erased) = http(
            "DELETE",
            &addr_a,
            &format!("/v1/contacts/{contact}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 200, "{erased}");
        assert_eq!(erased["erased_messages"], 3, "{erased}");
        assert_eq!(erased["opt_out_kept"], false);
        wait_until(Duration::from_secs(20), "the contact erased at C", || {
            let (status, _) = http(
                "GET",
                &addr_c,
                &format!("/v1/messages/{id}"),
                Some(TOKEN),
                None,
            );
            (status == 404 && timeline(&addr_c, customer).is_empty()).then_some(())
        });
        // What waited is claimed for a cancel in the fence: no gateway
        // can claim it to send (one that takes it from the work queue
        // gives it back).
        let fence = bucket_of(&nats_url, smsgate::fleet::work::FENCE_BUCKET);
        let handle = tokio::runtime::Handle::current();
        let claim = handle
            .block_on(fence.get(&waiting))
            .unwrap()
            .expect("a claim");
        let claim: Value = serde_json::from_slice(&claim).unwrap();
        assert_eq!(claim["for"], "cancel", "{claim}");
        // The fleet's buckets forget it too: its sticky site, and its
        // consent (not an opt-out, which would be kept); C's consent
        // record went with the rest.
        let key = smsgate::fleet::consent_key(customer, None);
        for bucket in [
            smsgate::fleet::work::STICKY_BUCKET,
            smsgate::fleet::CONSENT_BUCKET,
        ] {
            let kv = bucket_of(&nats_url, bucket);
            wait_until(
                Duration::from_secs(20),
                "the buckets forget the contact",
                || {
                    handle
                        .block_on(kv.get(&key))
                        .unwrap()
                        .is_none()
                        .then_some(())
                },
            );
        }
        assert_eq!(consent(&addr_c, customer)["status"], "unknown");
        // The ledger stream forgets its entries too (it did not opt out).
        wait_until(Duration::from_secs(20), "the ledger stream forgets", || {
            (ledger_holding(&nats_url, customer) == 0).then_some(())
        });
        for addr in [&addr_a, &addr_c] {
            let (status, threads) = http("GET", addr, "/v1/threads?limit=100", Some(TOKEN), None);
            assert_eq!(status, 200, "{threads}");
            assert!(
                !threads.to_string().contains(customer),
                "{addr} still lists the contact: {threads}"
            );
            let (status, inbox) = http("GET", addr, "/v1/inbox?limit=100", Some(TOKEN), None);
            assert_eq!(status, 200, "{inbox}");
            assert!(!inbox.to_string().contains(customer), "{addr}: {inbox}");
        }

        // After the erasure: a new conversation, at both; the old one does
        // not come back at A with C's events of the new send.
        let (status, accepted) = post(
            &addr_a,
            json!({"to": customer, "body": "Insurance is included"}),
        );
        assert_eq!(status, 202, "{accepted}");
        let later = accepted["id"].as_str().unwrap().to_string();
        for addr in [&addr_a, &addr_c] {
            message_in(addr, &later, "delivered", Duration::from_secs(30));
            let items = timeline(addr, customer);
            assert!(
                items.iter().all(|i| i["body"] != "Your order shipped"
                    && i["body"] != "Thanks! Is it insured?"
                    && i["kind"] != "note"),
                "{addr}: the erased conversation came back: {items:?}"
            );
            let (status, _) = http(
                "GET",
                addr,
                &format!("/v1/messages/{id}"),
                Some(TOKEN),
                None,
            );
            assert_eq!(status, 404, "{addr}: the erased message came back");
        }
    })
    .await;
    drop(hooks);
    a.stop().await;
    c.stop().await;
    sc.shutdown().await;
}

/// A gateway away from the fleet for longer than the events stream keeps
/// events (here: the stream purged while it was stopped) still erases a
/// contact erased meanwhile at another gateway, and lists a campaign
/// created meanwhile: it finds them in the fleet's list of erasures
/// (hashed) and its campaigns bucket, both kept for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_back_after_the_events_stream_forgot_erases_and_lists_what_it_missed() {
    let _leftovers = Leftovers(&[
        "away-a.db",
        "away-c.db",
        "away-a.tty",
        "away-c.tty",
        "nats-away",
    ]);
    let nats = NatsServer::start(temp("nats-away"));
    let (sa, sc) = (sim("away-a", "+15550820000"), sim("away-c", "+15550820009"));
    let a = gateway("away-a", "a", &nats.url(), "10m", &sa).await;
    let c = gateway("away-c", "c", &nats.url(), "10m", &sc).await;
    let customer = "+15550820001";
    let (addr_a, addr_c) = (a.addr.clone(), c.addr.clone());
    let sim_c = sc.clone();
    blocking(move || {
        wait_current(&addr_a);
        wait_current(&addr_c);
        sim_c.inject(customer, "Do you open on Sundays?").unwrap();
        for addr in [&addr_a, &addr_c] {
            wait_until(Duration::from_secs(20), "the text at both", || {
                (!timeline(addr, customer).is_empty()).then_some(())
            });
        }
    })
    .await;
    c.stop().await;

    // Erased at A while C is away; then the events stream forgets.
    let (addr_a, nats_url) = (a.addr.clone(), nats.url());
    let campaign_id = blocking(move || {
        let (status, erased) = http(
            "DELETE",
            &addr_a,
            &format!("/v1/contacts/{}", customer.replace('+', "%2B")),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 200, "{erased}");
        assert_eq!(erased["erased_messages"], 1, "{erased}");
        let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
        let (status, created) = http(
            "POST",
            &addr_a,
            "/v1/campaigns",
            Some(TOKEN),
            Some(&json!({
                "name": "Sunday opening",
                "recipients": {"numbers": ["+15550820002", "+15550820003"]},
                "template": "We now open on Sundays",
                "category": "transactional",
                "send_at": tomorrow
            })),
        );
        assert_eq!(status, 202, "{created}");
        let campaign_id = created["id"].as_str().unwrap().to_string();
        let handle = tokio::runtime::Handle::current();
        let campaigns = bucket_of(&nats_url, smsgate::fleet::work::CAMPAIGNS_BUCKET);
        wait_until(Duration::from_secs(20), "the campaign announced", || {
            handle
                .block_on(campaigns.get(&campaign_id))
                .unwrap()
                .map(|_| ())
        });
        let listed = bucket_of(&nats_url, smsgate::fleet::work::ERASED_BUCKET);
        let key = smsgate::store::erased_key(customer);
        wait_until(Duration::from_secs(20), "the erasure listed", || {
            handle.block_on(listed.get(&key)).unwrap().map(|_| ())
        });
        assert!(
            !String::from_utf8_lossy(&handle.block_on(listed.get(&key)).unwrap().unwrap())
                .contains(&customer[1..])
        );
        handle.block_on(async {
            let client = async_nats::connect(&nats_url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let events = js
                .get_stream(smsgate::fleet::work::EVENTS_STREAM)
                .await
                .unwrap();
            events.purge().await.unwrap();
        });
        campaign_id
    })
    .await;

    let c = gateway_again("away-c", "c", &nats.url(), "10m", &sc, "", "").await;
    let addr_c = c.addr.clone();
    blocking(move || {
        wait_until(Duration::from_secs(20), "the contact erased at C", || {
            timeline(&addr_c, customer).is_empty().then_some(())
        });
        let (status, threads) = http("GET", &addr_c, "/v1/threads?limit=100", Some(TOKEN), None);
        assert_eq!(status, 200, "{threads}");
        assert!(!threads.to_string().contains(customer), "{threads}");
        let listed = wait_until(Duration::from_secs(20), "the campaign at C", || {
            campaign_there(&addr_c, &campaign_id)
        });
        assert_eq!(listed["name"], "Sunday opening", "{listed}");
        assert_eq!(listed["site"], "a", "{listed}");
    })
    .await;
    a.stop().await;
    c.stop().await;
    let store = common::open_store(&temp("away-c.db"), 8);
    assert_eq!(store.trees_holding(customer.as_bytes()).unwrap(), vec![]);
    sa.shutdown().await;
    sc.shutdown().await;
}

/// Conversation rules stored at one gateway (`PUT /v1/rules`) are in
/// effect at every gateway, one that joins later too, and act on a text
/// there; removed at another gateway, the file's rules are back everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_stored_at_one_gateway_are_in_effect_at_every_gateway() {
    let _leftovers = Leftovers(&[
        "rules-a.db",
        "rules-b.db",
        "rules-a.tty",
        "rules-b.tty",
        "nats-rules",
    ]);
    let nats = NatsServer::start(temp("nats-rules"));
    let (sa, sb) = (
        sim("rules-a", "+15550830000"),
        sim("rules-b", "+15550840000"),
    );
    let a = gateway("rules-a", "a", &nats.url(), "10m", &sa).await;
    let addr_a = a.addr.clone();
    blocking(move || {
        wait_current(&addr_a);
        let rules = json!({"rules": [{
            "name": "hours",
            "when": {"keywords": ["hours"]},
            "then": {"reply": "We open 9 to 5, Monday to Saturday"}
        }]});
        let (status, v) = http("PUT", &addr_a, "/v1/rules", Some(TOKEN), Some(&rules));
        assert_eq!(status, 200, "{v}");
    })
    .await;
    // B joins after the change.
    let b = gateway("rules-b", "b", &nats.url(), "10m", &sb).await;
    let (addr_a, addr_b) = (a.addr.clone(), b.addr.clone());
    let sim_b = sb.clone();
    blocking(move || {
        wait_current(&addr_b);
        let rules_at = |addr: &str| http("GET", addr, "/v1/rules", Some(TOKEN), None).1;
        wait_until(Duration::from_secs(20), "the rules at B", || {
            let v = rules_at(&addr_b);
            (v["source"] == "store" && v["rules"][0]["name"] == "hours").then_some(())
        });
        // In effect at B: a text there is answered by the rule.
        let customer = "+15550840001";
        sim_b.inject(customer, "What are your hours?").unwrap();
        wait_until(Duration::from_secs(20), "the rule's reply from B", || {
            texts_to(&sim_b, customer)
                .iter()
                .any(|t| t.contains("9 to 5"))
                .then_some(())
        });
        // Removed at B: the file's rules at A again.
        let (status, v) = http("DELETE", &addr_b, "/v1/rules", Some(TOKEN), None);
        assert_eq!(status, 200, "{v}");
        wait_until(Duration::from_secs(20), "the file's rules at A", || {
            (rules_at(&addr_a)["source"] == "config").then_some(())
        });
    })
    .await;
    a.stop().await;
    b.stop().await;
    sa.shutdown().await;
    sb.shutdown().await;
}

/// A message accepted at A (no modems) and claimed by B, whose modem hangs
/// in `AT+CMGS` when B is SIGKILLed and never comes back: once B has not
/// been heard from for `gone_after`, A's record is `unknown` (reported
/// once, by A), and no gateway sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_claimed_by_a_gateway_that_is_gone_is_unknown_where_it_was_accepted() {
    let _leftovers = Leftovers(&["gone-a.db", "gone-b.db", "gone-b.toml", "gone-b.log"]);
    let nats = NatsServer::start(temp("nats-gone"));
    let sb = sim("gone-b", "+15551100000");
    let db_a = temp("gone-a.db");
    let _ = std::fs::remove_dir_all(&db_a);
    let a = common::InProcessDaemon::start(
        &format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = 8\n\
             [consent]\nprogram_name = \"Acme Dental\"\n\
             [cluster]\nnats_url = [\"{}\"]\nsite = \"a\"\ngone_after = \"3s\"\n",
            db_a.display(),
            nats.url()
        ),
        TOKEN,
    )
    .await;
    let db_b = temp("gone-b.db");
    let _ = std::fs::remove_dir_all(&db_b);
    let (urls, link, port_b) = (vec![nats.url()], sb.link(), common::free_port());
    let b = blocking(move || {
        child_gateway_with(
            "gone-b",
            "b",
            &urls,
            &db_b,
            port_b,
            &[link],
            "gone_after = \"3s\"\n",
        )
    })
    .await;
    let addr_a = a.addr.clone();
    let sim_b = sb.clone();
    blocking(move || {
        let mut b = b;
        wait_current(&addr_a);
        let addr_b = format!("127.0.0.1:{port_b}");
        wait_until(Duration::from_secs(20), "B's modem ready", || {
            let (_, modems) = http("GET", &addr_b, "/v1/modems", Some(TOKEN), None);
            (modems.to_string().contains("\"ready\"")).then_some(())
        });
        // B's modem takes the command and never answers.
        sim_b
            .fault(smsgate::sim::Fault::StopAnswering { duration: None })
            .unwrap();
        let customer = "+15551100001";
        let (status, accepted) = post(
            &addr_a,
            json!({"to": customer, "body": "Your order shipped"}),
        );
        assert_eq!(status, 202, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        let read = |id: &str| {
            let (status, m) = http(
                "GET",
                &addr_a,
                &format!("/v1/messages/{id}"),
                Some(TOKEN),
                None,
            );
            assert_eq!(status, 200, "{m}");
            m
        };
        wait_until(
            Duration::from_secs(20),
            "B sending it, as A reads it",
            || (read(&id)["status"] == "sending").then_some(()),
        );
        b.0.kill().unwrap();
        b.0.wait().unwrap();
        let m = wait_until(Duration::from_secs(20), "unknown at A", || {
            let m = read(&id);
            (m["status"] == "unknown").then_some(m)
        });
        assert_eq!(m["error"]["code"], "sender_gone", "{m}");
        assert!(
            m["error"]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("\"b\""),
            "{m}"
        );
        // Reported once, by A; never on the air (B's modem swallowed it).
        let (status, page) = http("GET", &addr_a, "/v1/events?limit=100", Some(TOKEN), None);
        assert_eq!(status, 200, "{page}");
        let unknown = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "message.unknown" && e["data"]["id"] == id.as_str())
            .count();
        assert_eq!(unknown, 1, "{page}");
        assert!(texts_to(&sim_b, customer).is_empty());
    })
    .await;
    a.stop().await;
    sb.shutdown().await;
}

/// The fleet under load and failure: a 3-server NATS cluster (R3 streams)
/// and 3 gateways (child processes) with 2 simulated modems each; 4
/// clients send 3,000 messages through all three APIs while one gateway is
/// SIGKILLed and restarted and one NATS server is killed. Every
/// acknowledged message ends final (or `unknown`, counted) on the gateway
/// that accepted it, none goes out twice, and a STOP texted to A cancels
/// what waits for the contact at C and blocks C's later sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_messages_through_a_fleet_with_failures() {
    let names = [
        "load-a.db",
        "load-b.db",
        "load-c.db",
        "load-a.toml",
        "load-b.toml",
        "load-c.toml",
        "load-a.log",
        "load-b.log",
        "load-c.log",
        "nats-load",
    ];
    let _leftovers = Leftovers(Box::leak(Box::new(names)));
    let servers = common::nats::cluster(temp("nats-load"), 3);
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    let sites = ["a", "b", "c"];
    let sims: Vec<Vec<SimHandle>> = sites
        .iter()
        .enumerate()
        .map(|(g, site)| {
            (0..2)
                .map(|m| sim(&format!("load-{site}{m}"), &format!("+155516{g}{m}0000")))
                .collect()
        })
        .collect();
    let ports: Vec<u16> = sites.iter().map(|_| common::free_port()).collect();
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let links: Vec<Vec<std::path::PathBuf>> = sims
        .iter()
        .map(|ms| ms.iter().map(|m| m.link()).collect())
        .collect();
    let start = {
        let urls = urls.clone();
        move |g: usize, links: &[std::path::PathBuf], port: u16| {
            // Each gateway on its own server first.
            let mut order = urls.clone();
            order.rotate_left(g);
            let site = ["a", "b", "c"][g];
            let db = temp(&format!("load-{site}.db"));
            child_gateway_with(
                &format!("load-{site}"),
                site,
                &order,
                &db,
                port,
                links,
                "replicas = 3\n",
            )
        }
    };
    for site in sites {
        let _ = std::fs::remove_dir_all(temp(&format!("load-{site}.db")));
    }
    let sims2 = sims.clone();
    let (servers, gateways) = blocking(move || {
        let mut gateways: Vec<common::ChildDaemon> =
            (0..3).map(|g| start(g, &links[g], ports[g])).collect();
        // Waiting at C for a contact who will text STOP to A.
        let stopper = "+15551690000";
        let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
        // The streams' leaders are still being elected: a 503 is retried
        // with the same Idempotency-Key, as the answer says.
        let waiting = wait_until(Duration::from_secs(30), "the first accept", || {
            let (status, v) = idempotent_post(
                &addrs[2],
                "first",
                json!({"to": stopper, "body": "Your visit in two hours", "send_at": later}),
            );
            assert!(status == 202 || status == 503, "{status} {v}");
            (status == 202).then_some(v)
        });
        let waiting = waiting["id"].as_str().unwrap().to_string();

        const TOTAL: usize = 3000;
        const CLIENTS: usize = 4;
        let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let addrs = addrs.clone();
                let acked = acked.clone();
                std::thread::spawn(move || {
                    let mut refused = 0;
                    for i in 0..TOTAL / CLIENTS {
                        let g = (c + i) % 3;
                        // 600 contacts: texted several times each.
                        let to = format!("+1555170{:04}", (c * 997 + i * 13) % 600);
                        let body = format!("m{c}-{i}");
                        // A 503 (the broker's answer not acknowledged: a
                        // stream's leader is being elected) is asked again
                        // with the same Idempotency-Key, as the answer says,
                        // for up to 20 s; a gateway that does not answer
                        // (killed) is not.
                        let key = format!("load-{c}-{i}");
                        let mut status = 503;
                        let mut v = Value::Null;
                        let deadline = Instant::now() + Duration::from_secs(20);
                        while status == 503 && Instant::now() < deadline {
                            (status, v) = common::try_http_with(
                                "POST",
                                &addrs[g],
                                "/v1/messages",
                                Some(TOKEN),
                                &[("Idempotency-Key", &key)],
                                Some(&json!({"to": to, "body": body})),
                            );
                            if status == 503 {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                        if status == 202 {
                            let id = v["id"].as_str().unwrap_or_default().to_string();
                            acked.lock().unwrap().push((g, to, body, id));
                        } else {
                            // The killed gateway, or its broker's answer not
                            // acknowledged: not accepted, not counted.
                            refused += 1;
                        }
                    }
                    refused
                })
            })
            .collect();
        // A third of the way: SIGKILL gateway B, kill one NATS server,
        // start B again on the same store.
        wait_until(Duration::from_secs(120), "a third accepted", || {
            (acked.lock().unwrap().len() >= TOTAL / 3).then_some(())
        });
        let _ = gateways[1].0.kill();
        let _ = gateways[1].0.wait();
        let mut servers = servers;
        servers[1].kill();
        std::thread::sleep(Duration::from_millis(500));
        gateways[1] = start(1, &links[1], ports[1]);
        let refused: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
        let acked = acked.lock().unwrap().clone();
        println!(
            "{} accepted, {refused} refused while B was down",
            acked.len()
        );
        assert!(acked.len() >= TOTAL * 2 / 3, "{} accepted", acked.len());

        // Every acknowledged message final (or unknown) where it was accepted.
        let mut unknown = 0;
        for (g, _, _, id) in &acked {
            let settled = |m: &Value| {
                let s = m["status"].as_str().unwrap_or_default();
                matches!(s, "sent" | "delivered" | "failed" | "unknown")
            };
            let start = Instant::now();
            let m = loop {
                let m = common::message(&addrs[*g], TOKEN, id);
                if settled(&m) {
                    break m;
                }
                if start.elapsed() > Duration::from_secs(120) {
                    for a in &addrs {
                        eprintln!("{a}: {}", common::message(a, TOKEN, id));
                    }
                    panic!("message {id} accepted at {} not settled", addrs[*g]);
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if m["status"] == "unknown" {
                unknown += 1;
            }
            assert_ne!(m["status"], "failed", "{m}");
        }
        // None twice: each body at most once on the air; every one not
        // unknown exactly once.
        let mut on_air = std::collections::HashMap::new();
        for ms in &sims2 {
            for s in ms {
                for r in s.received() {
                    *on_air.entry(r.text).or_insert(0usize) += 1;
                }
            }
        }
        let twice: Vec<_> = on_air.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "sent twice: {twice:?}");
        let missing = acked
            .iter()
            .filter(|(_, _, body, _)| !on_air.contains_key(body))
            .count();
        assert!(
            missing <= unknown,
            "{missing} never sent, {unknown} unknown"
        );
        println!(
            "{} acknowledged, {unknown} unknown, {missing} not on the air",
            acked.len()
        );

        // A STOP texted to A's first modem: C's waiting message is cancelled,
        // C refuses a new one, and no modem of the fleet texts the contact.
        sims2[0][0].inject(stopper, "STOP").unwrap();
        let m = wait_until(
            Duration::from_secs(30),
            "C's waiting message cancelled",
            || {
                let m = common::message(&addrs[2], TOKEN, &waiting);
                (m["status"] == "failed").then_some(m)
            },
        );
        assert_eq!(m["error"]["code"], "recipient_opted_out", "{m}");
        let (status, v) = post(&addrs[2], json!({"to": stopper, "body": "one more"}));
        assert_eq!(status, 409, "{v}");
        // Every gateway's inbox shows the same threads (the STOP's among them).
        let inbox = |addr: &str| -> Vec<(String, String)> {
            let mut out = Vec::new();
            for query in ["", "&state=closed"] {
                let path = format!("/v1/inbox?limit=200{query}");
                let (status, v) = http("GET", addr, &path, Some(TOKEN), None);
                assert_eq!(status, 200, "{v}");
                out.extend(v["items"].as_array().unwrap().iter().map(|t| {
                    (
                        t["contact"].as_str().unwrap().to_string(),
                        t["state"].to_string(),
                    )
                }));
            }
            out.sort();
            out
        };
        let threads = wait_until(
            Duration::from_secs(30),
            "the same inbox on every gateway",
            || {
                let first = inbox(&addrs[0]);
                (first.iter().any(|(c, _)| c == stopper) && addrs.iter().all(|a| inbox(a) == first))
                    .then_some(first)
            },
        );
        println!("{} threads in every inbox", threads.len());
        for ms in &sims2 {
            for s in ms {
                assert!(
                    texts_to(s, stopper)
                        .iter()
                        .all(|t| t.contains("unsubscribed")),
                    "{:?}",
                    texts_to(s, stopper)
                );
            }
        }
        (servers, gateways)
    })
    .await;
    drop(gateways);
    drop(servers);
    for ms in sims {
        for s in ms {
            s.shutdown().await;
        }
    }
}

/// A campaign's `GET /v1/campaigns/{id}` at `addr`.
fn campaign(addr: &str, id: &str) -> Value {
    let (status, v) = http(
        "GET",
        addr,
        &format!("/v1/campaigns/{id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v
}

/// `GET /v1/campaigns/{id}` at `addr` once it has the campaign (another
/// gateway's is there once announced).
fn campaign_there(addr: &str, id: &str) -> Option<Value> {
    let path = format!("/v1/campaigns/{id}");
    let (status, v) = http("GET", addr, &path, Some(TOKEN), None);
    (status == 200).then_some(v)
}

/// A campaign created at one gateway goes through the fleet's work queue
/// as every API send does: each recipient is texted once in the whole
/// fleet, the other gateways' modems send a share, and the creating
/// gateway's counts follow the messages the others sent to their final
/// state; every gateway lists and reads the campaign as the creating one
/// does. A scheduled campaign cancelled at another gateway is cancelled by
/// the creating one, for the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_goes_through_the_work_queue_once() {
    let _leftovers = Leftovers(&["cmp-a.db", "cmp-b.db", "cmp-c.db", "nats-cmp"]);
    let nats = NatsServer::start(temp("nats-cmp"));
    let sims = [
        sim("cmp-a", "+15551800000"),
        sim("cmp-b", "+15551810000"),
        sim("cmp-c", "+15551820000"),
    ];
    let mut gateways = Vec::new();
    for (site, modem) in ["a", "b", "c"].iter().zip(&sims) {
        gateways.push(gateway(&format!("cmp-{site}"), site, &nats.url(), "10m", modem).await);
    }
    let addrs: Vec<String> = gateways.iter().map(|g| g.addr.clone()).collect();
    let sims2 = sims.clone();
    blocking(move || {
        for addr in &addrs {
            wait_current(addr);
        }
        const N: usize = 60;
        let to: Vec<String> = (0..N).map(|i| format!("+155518300{i:02}")).collect();
        let (status, created) = http(
            "POST",
            &addrs[0],
            "/v1/campaigns",
            Some(TOKEN),
            Some(&json!({
                "name": "Check-up reminder",
                "recipients": {"numbers": to},
                "template": "Your check-up is on {{time}}",
                "category": "transactional",
                "context": {"time": "Tue 10:30"}
            })),
        );
        assert_eq!(status, 202, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let done = wait_until(
            Duration::from_secs(30),
            "every message delivered, counted where the campaign was created",
            || {
                let c = campaign(&addrs[0], &id);
                (c["messages"]["delivered"] == N).then_some(c)
            },
        );
        assert_eq!(done["state"], "accepted", "{done}");
        assert_eq!(done["recipients"]["accepted"], N, "{done}");
        for status in ["queued", "sent", "failed", "unknown", "cancelled"] {
            assert_eq!(done["messages"][status], 0, "{status}: {done}");
        }
        // Each recipient once, from one modem of the fleet.
        let mut by_sim = [0usize; 3];
        for number in &to {
            let by: Vec<usize> = (0..3)
                .flat_map(|s| std::iter::repeat_n(s, texts_to(&sims2[s], number).len()))
                .collect();
            assert_eq!(by.len(), 1, "{number} texted by simulators {by:?}");
            assert_eq!(
                texts_to(&sims2[by[0]], number),
                ["Your check-up is on Tue 10:30"]
            );
            by_sim[by[0]] += 1;
        }
        let total: usize = sims2.iter().map(|s| s.received().len()).sum();
        assert_eq!(total, N, "nothing sent twice");
        println!("campaign texts sent by gateways a, b, c: {by_sim:?}");
        assert!(
            by_sim[1] + by_sim[2] > 0,
            "the work queue spreads a campaign over the fleet: {by_sim:?}"
        );
        // Every gateway reads it as A does, with the site that has it.
        for addr in &addrs[1..] {
            let there = wait_until(
                Duration::from_secs(20),
                "the campaign at every gateway",
                || {
                    let c = campaign_there(addr, &id)?;
                    (c["messages"] == done["messages"] && c["state"] == "accepted").then_some(c)
                },
            );
            assert_eq!(there["site"], "a", "{there}");
            assert_eq!(there["recipients"], done["recipients"], "{there}");
            let (status, page) = http("GET", addr, "/v1/campaigns", Some(TOKEN), None);
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["items"][0]["id"], id.as_str(), "{page}");
            let (status, v) = http(
                "GET",
                addr,
                &format!("/v1/campaigns/{id}/errors"),
                Some(TOKEN),
                None,
            );
            assert_eq!(
                (status, v["code"].as_str()),
                (409, Some("campaign_elsewhere")),
                "{v}"
            );
        }
        assert!(done.get("site").is_none(), "{done}");

        // A campaign for later, cancelled at C: A, where it was created,
        // claims its messages in the fence and cancels them, for the fleet.
        let later_to: Vec<String> = (0..10).map(|i| format!("+155518400{i:02}")).collect();
        let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let (status, created) = http(
            "POST",
            &addrs[0],
            "/v1/campaigns",
            Some(TOKEN),
            Some(&json!({
                "name": "Next week",
                "recipients": {"numbers": later_to},
                "template": "See you next week",
                "category": "transactional",
                "send_at": later
            })),
        );
        assert_eq!(status, 202, "{created}");
        let later_id = created["id"].as_str().unwrap().to_string();
        wait_until(
            Duration::from_secs(20),
            "the later campaign accepted",
            || (campaign(&addrs[0], &later_id)["state"] == "accepted").then_some(()),
        );
        wait_until(Duration::from_secs(20), "the later campaign at C", || {
            (campaign_there(&addrs[2], &later_id)?["state"] == "accepted").then_some(())
        });
        let (status, v) = http(
            "POST",
            &addrs[2],
            &format!("/v1/campaigns/{later_id}/cancel"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 202, "{v}");
        assert_eq!(
            (v["state"].as_str(), v["site"].as_str()),
            (Some("cancelling"), Some("a")),
            "{v}"
        );
        let cancelled = wait_until(Duration::from_secs(20), "the campaign cancelled", || {
            let c = campaign(&addrs[0], &later_id);
            (c["state"] == "cancelled").then_some(c)
        });
        assert_eq!(cancelled["messages"]["cancelled"], 10, "{cancelled}");
        assert_eq!(cancelled["messages"]["queued"], 0, "{cancelled}");
        wait_until(Duration::from_secs(20), "C reads it cancelled", || {
            let c = campaign(&addrs[2], &later_id);
            (c["state"] == "cancelled" && c["messages"] == cancelled["messages"]).then_some(())
        });
        // Every gateway reads each of its messages cancelled.
        let (status, page) = http(
            "GET",
            &addrs[0],
            &format!("/v1/messages?contact={}", later_to[0].replace('+', "%2B")),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 200, "{page}");
        let message = page["items"][0]["id"].as_str().unwrap().to_string();
        for addr in &addrs[1..] {
            wait_until(Duration::from_secs(20), "the cancel everywhere", || {
                let m = common::message(addr, TOKEN, &message);
                (m["status"] == "cancelled").then_some(())
            });
        }
    })
    .await;
    for g in gateways {
        g.stop().await;
    }
    for s in sims {
        s.shutdown().await;
    }
}

/// Wait until message `id` at `addr` is `status`; its record. On a
/// timeout, the panic says where the record was left.
fn message_in(addr: &str, id: &str, status: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let m = common::message(addr, TOKEN, id);
        if m["status"] == status {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "message {id} at {addr} not {status} after {limit:?}: {m}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET /v1/metrics/summary` at `addr`.
fn summary(addr: &str) -> Value {
    let (status, v) = http("GET", addr, "/v1/metrics/summary", Some(TOKEN), None);
    assert_eq!(status, 200, "{v}");
    v
}

/// A summary with its cost total rounded to a millionth (a sum of floats
/// counted in another order may differ in its last bits).
fn rounded_cost(mut v: Value) -> Value {
    let cost = &mut v["cost_per_outcome"]["numerator"];
    if let Some(x) = cost.as_f64() {
        *cost = json!((x * 1e6).round() as i64);
    }
    v
}

/// Three sites each call their modem `m1`, at a different price a part
/// (0.01, 0.02, 0.03). Messages accepted at every gateway go out from every
/// site (some name the site's modem, the rest go to whichever gateway takes
/// them); once every gateway reads each one delivered, the metrics summary
/// is the same at every gateway, and its cost is each message's parts at
/// the price of the site that sent it, not the reading gateway's price of
/// its own `m1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gateway_counts_a_send_at_the_price_where_it_was_sent() {
    let _leftovers = Leftovers(&["price-a.db", "price-b.db", "price-c.db", "nats-price"]);
    let nats = NatsServer::start(temp("nats-price"));
    let numbers = ["+15551900000", "+15551910000", "+15551920000"];
    let prices = [0.01, 0.02, 0.03];
    let sites = ["a", "b", "c"];
    let sims: Vec<SimHandle> = sites
        .iter()
        .zip(numbers)
        .map(|(site, number)| sim(&format!("price-{site}"), number))
        .collect();
    let mut gateways = Vec::new();
    for ((site, modem), price) in sites.iter().zip(&sims).zip(prices) {
        let name = format!("price-{site}");
        let line = format!("cost_per_part = {price}\n");
        gateways.push(gateway_with(&name, site, &nats.url(), "10m", modem, "", &line).await);
    }
    let addrs: Vec<String> = gateways.iter().map(|g| g.addr.clone()).collect();
    let sims2 = sims.clone();
    blocking(move || {
        for addr in &addrs {
            wait_current(addr);
        }
        // 10 at each gateway: 3 for its own modem (so that every site
        // sends), 7 for any site; every third one two parts long.
        let mut sent: Vec<(usize, String, String, String)> = Vec::new();
        for (g, addr) in addrs.iter().enumerate() {
            for i in 0..10 {
                let to = format!("+155519300{g}{i}");
                let mut body = format!("Reminder {g}-{i}");
                if i % 3 == 0 {
                    while body.len() < 200 {
                        body.push_str(" and more");
                    }
                }
                let mut request = json!({"to": to, "body": body});
                if i < 3 {
                    request["modem"] = json!("m1");
                }
                let (status, v) = post(addr, request);
                assert_eq!(status, 202, "{v}");
                let parts = v["parts"].as_u64().unwrap();
                assert_eq!(parts, if i % 3 == 0 { 2 } else { 1 }, "{v}");
                sent.push((g, to, body, v["id"].as_str().unwrap().to_string()));
            }
        }
        // Every message delivered, as every gateway reads it.
        for (_, _, _, id) in &sent {
            for addr in &addrs {
                wait_until(Duration::from_secs(30), "delivered everywhere", || {
                    let m = common::message(addr, TOKEN, id);
                    (m["status"] == "delivered").then_some(())
                });
            }
        }
        // Who sent each: once on the air, from the simulator of one site,
        // whose number the record's `from` is at every gateway.
        let mut expected = 0.0;
        let mut parts_total = 0;
        let mut by_site = [0usize; 3];
        for (g, to, body, id) in &sent {
            let by: Vec<usize> = (0..3)
                .filter(|s| texts_to(&sims2[*s], to).iter().any(|t| t == body))
                .collect();
            assert_eq!(by.len(), 1, "{to} texted by simulators {by:?}");
            assert_eq!(texts_to(&sims2[by[0]], to).len(), 1, "{to} texted twice");
            let m = common::message(&addrs[*g], TOKEN, id);
            assert_eq!(m["from"], numbers[by[0]], "{m}");
            let parts = m["parts"].as_u64().unwrap();
            expected += prices[by[0]] * parts as f64;
            parts_total += parts;
            by_site[by[0]] += 1;
        }
        println!("sent by sites a, b, c: {by_site:?}; cost {expected:.2} for {parts_total} parts");
        assert!(by_site.iter().all(|n| *n >= 3), "{by_site:?}");
        // The same summary everywhere, the cost where each part was sent.
        let deadline = Instant::now() + Duration::from_secs(20);
        let first = loop {
            let all: Vec<Value> = addrs.iter().map(|a| summary(a)).collect();
            let first = rounded_cost(all[0].clone());
            let same = all[1..].iter().all(|s| rounded_cost(s.clone()) == first);
            if same && all[0]["messages_sent"] == sent.len() {
                break all;
            }
            let seen: Vec<Value> = all
                .iter()
                .map(|s| json!([s["messages_sent"], s["cost_per_outcome"]]))
                .collect();
            assert!(
                Instant::now() < deadline,
                "not the same metrics everywhere (expected {} sent, cost {expected}): {}",
                sent.len(),
                Value::from(seen)
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        if !first.iter().all(|s| *s == first[0]) {
            println!("the cost totals differ in their last bits: {first:?}");
        }
        let cost = &first[0]["cost_per_outcome"];
        assert_eq!(cost["parts"], parts_total, "{cost}");
        let numerator = cost["numerator"].as_f64().unwrap();
        assert!(
            (numerator - expected).abs() < 1e-9,
            "cost {numerator}, expected {expected}: {cost}"
        );
        // No conversions: no cost per outcome.
        assert_eq!(cost["denominator"], 0, "{cost}");
        assert!(cost["value"].is_null(), "{cost}");
    })
    .await;
    for g in gateways {
        g.stop().await;
    }
    for s in sims {
        s.shutdown().await;
    }
}

/// Wait until the fleet's sticky bucket says `contact` talks with `site`
/// (what each gateway's replica of the bucket follows).
fn wait_sticky(nats: &str, contact: &str, site: &str) {
    let handle = tokio::runtime::Handle::current();
    let key = smsgate::fleet::consent_key(contact, None);
    let kv = bucket_of(nats, smsgate::fleet::work::STICKY_BUCKET);
    wait_until(Duration::from_secs(20), "the sticky site", || {
        let value = handle.block_on(kv.get(&key)).ok().flatten()?;
        let v: Value = serde_json::from_slice(&value).ok()?;
        (v["site"] == site).then_some(())
    });
}

/// How many messages of the consent ledger stream hold `needle` (from a
/// blocking thread of the runtime).
fn ledger_holding(nats: &str, needle: &str) -> usize {
    tokio::runtime::Handle::current().block_on(async {
        let client = async_nats::connect(nats).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(smsgate::fleet::CONSENT_STREAM).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut holding = 0;
        for seq in state.first_sequence..=state.last_sequence {
            // A purged sequence is gone.
            if let Ok(m) = stream.get_raw_message(seq).await {
                holding += usize::from(String::from_utf8_lossy(&m.payload).contains(needle));
            }
        }
        holding
    })
}

/// One of the fleet's buckets (from a blocking thread of the runtime).
fn bucket_of(nats: &str, bucket: &str) -> async_nats::jetstream::kv::Store {
    tokio::runtime::Handle::current().block_on(async {
        let client = async_nats::connect(nats).await.unwrap();
        async_nats::jetstream::new(client)
            .get_key_value(bucket)
            .await
            .unwrap()
    })
}

/// A gateway's consent view of `contact` without what differs by design
/// between gateways: the ledger entries' `site` (where a change came from:
/// absent where it was made) and `id` (each store numbers its ledger).
fn consent_here(addr: &str, contact: &str) -> Value {
    let mut v = consent(addr, contact);
    for entry in v["ledger"].as_array_mut().unwrap() {
        entry.as_object_mut().unwrap().remove("site");
        entry.as_object_mut().unwrap().remove("id");
    }
    v
}

/// With `[consent] scope = "number"` on every gateway, a STOP texted to
/// A's number opts the customer out of A's number only, for the fleet:
/// every gateway shows the same consent (A's ledger entry, with A's
/// number); a send that must go from A's number is refused at A's accept
/// (naming A's modem) or, accepted elsewhere for the site the customer
/// talks with (A), failed `recipient_opted_out` and never sent, reported
/// once by the gateway that accepted it; a send from B's or C's number
/// goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_per_number_holds_across_the_fleet() {
    let _leftovers = Leftovers(&["pn-a.db", "pn-b.db", "pn-c.db", "nats-pn"]);
    let nats = NatsServer::start(temp("nats-pn"));
    let numbers = ["+15552000000", "+15552010000", "+15552020000"];
    let sites = ["a", "b", "c"];
    let sims: Vec<SimHandle> = sites
        .iter()
        .zip(numbers)
        .map(|(site, number)| sim(&format!("pn-{site}"), number))
        .collect();
    let mut gateways = Vec::new();
    for (site, modem) in sites.iter().zip(&sims) {
        let name = format!("pn-{site}");
        let scope = "scope = \"number\"\n";
        gateways.push(gateway_with(&name, site, &nats.url(), "10m", modem, scope, "").await);
    }
    let addrs: Vec<String> = gateways.iter().map(|g| g.addr.clone()).collect();
    let sims2 = sims.clone();
    let url = nats.url();
    blocking(move || {
        for addr in &addrs {
            wait_current(addr);
        }
        let customer = "+15552030001";
        sims2[0].inject(customer, "STOP").unwrap();
        // The same consent at every gateway: one opt-out, for A's number.
        let at_a = wait_until(Duration::from_secs(20), "the STOP everywhere", || {
            let views: Vec<Value> = addrs.iter().map(|a| consent_here(a, customer)).collect();
            let done = views
                .iter()
                .all(|v| v["ledger"].as_array().unwrap().len() == 1);
            (done && views.iter().all(|v| *v == views[0])).then(|| views[0].clone())
        });
        let entry = &at_a["ledger"][0];
        assert_eq!(entry["action"], "opt_out", "{at_a}");
        assert_eq!(entry["status"], "opted_out", "{at_a}");
        assert_eq!(entry["gateway_number"], numbers[0], "{at_a}");
        assert!(consent(&addrs[0], customer)["ledger"][0]
            .get("site")
            .is_none());
        for addr in &addrs[1..] {
            assert_eq!(consent(addr, customer)["ledger"][0]["site"], "a");
        }

        // From A's number, named at A: refused at accept.
        let (status, v) = post(
            &addrs[0],
            json!({"to": customer, "body": "From A's m1", "modem": "m1"}),
        );
        assert_eq!(status, 409, "{v}");
        assert_eq!(v["code"], "recipient_opted_out", "{v}");
        // Without a modem named, the customer is texted from the number
        // they texted (A's, the fleet's sticky site): at every gateway that
        // is accepted (the contact is not opted out of every number), and
        // failed before it reaches a modem.
        wait_sticky(&url, customer, "a");
        let mut ids = Vec::new();
        for (g, addr) in addrs.iter().enumerate() {
            let body = format!("Sticky from {}", sites[g]);
            let (status, v) = post(addr, json!({"to": customer, "body": body}));
            assert_eq!(status, 202, "{v}");
            ids.push((g, body, v["id"].as_str().unwrap().to_string()));
        }
        for (g, body, id) in &ids {
            for addr in &addrs {
                let m = wait_until(Duration::from_secs(20), "failed everywhere", || {
                    let m = common::message(addr, TOKEN, id);
                    (m["status"] == "failed").then_some(m)
                });
                assert_eq!(m["error"]["code"], "recipient_opted_out", "{m}");
                assert!(
                    m["part_status"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .all(|p| p["mr"].is_null()),
                    "{m}"
                );
            }
            // Reported once: by the gateway that accepted it.
            for (h, addr) in addrs.iter().enumerate() {
                let n = failed_events(addr, id);
                assert_eq!(n, usize::from(h == *g), "{body}: {n} at {}", sites[h]);
            }
            for s in &sims2 {
                assert!(!texts_to(s, customer).contains(body), "{body} sent");
            }
        }
        // From B's and C's numbers: sent.
        for g in [1, 2] {
            let body = format!("From {}'s m1", sites[g]);
            let (status, v) = post(
                &addrs[g],
                json!({"to": customer, "body": body, "modem": "m1"}),
            );
            assert_eq!(status, 202, "{v}");
            let id = v["id"].as_str().unwrap().to_string();
            wait_until(Duration::from_secs(20), "sent from that number", || {
                texts_to(&sims2[g], customer).contains(&body).then_some(())
            });
            let m = wait_until(Duration::from_secs(20), "delivered", || {
                let m = common::message(&addrs[g], TOKEN, &id);
                (m["status"] == "delivered").then_some(m)
            });
            assert_eq!(m["from"], numbers[g], "{m}");
        }
        // So the contact's consent for every number (the view's status) is
        // not an opt-out, at any gateway.
        for addr in &addrs {
            let v = consent(addr, customer);
            assert_ne!(v["status"], "opted_out", "{v}");
        }
        // A texted its confirmation, and nothing else went from A's number.
        assert!(
            texts_to(&sims2[0], customer)
                .iter()
                .all(|t| t.contains("unsubscribed")),
            "{:?}",
            texts_to(&sims2[0], customer)
        );
    })
    .await;
    for g in gateways {
        g.stop().await;
    }
    for s in sims {
        s.shutdown().await;
    }
}

/// A 3-part message accepted at A (no modems) and taken by C, whose modem
/// sends a part every 3 s (`sends_per_minute = 20`): once part 1 is sent,
/// the customer's STOP reaches C's modem as it reads part 2's `AT+CMGS`
/// (its `+CMTI` before the prompt). Part 2 goes back unsent, and the copy,
/// already on its way (a part on the air), fails where it is: `failed`
/// with `recipient_opted_out` at C and, from C's record, at A; part 1 sent,
/// parts 2 and 3 never; one `message.failed` in the fleet (C's event log
/// and C's webhook, none at A).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_message_taken_elsewhere_stops_between_parts_at_an_opt_out() {
    let _leftovers = Leftovers(&["parts-a.db", "parts-c.db", "nats-parts"]);
    let (_nats, sc, hooks, a, c) =
        accepting_and_sending("parts", "+15552100000", "sends_per_minute = 20\n").await;
    let (addr_a, addr_c) = (a.addr.clone(), c.addr.clone());
    let sim_c = sc.clone();
    let hooks2 = hooks.clone();
    blocking(move || {
        wait_current(&addr_a);
        wait_current(&addr_c);
        let customer = "+15552100001";
        let mut body = String::from("Your appointment:");
        while body.len() < 400 {
            body.push_str(" please bring your insurance card and arrive early.");
        }
        body.truncate(400);
        let (status, accepted) = post(&addr_a, json!({"to": customer, "body": body}));
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["parts"], 3, "{accepted}");
        let id = accepted["id"].as_str().unwrap().to_string();
        // Part 1 sent at C; part 2 waits for the modem's rate limit.
        let first = wait_until(Duration::from_secs(20), "part 1 sent at C", || {
            let m = common::message(&addr_c, TOKEN, &id);
            (m["part_status"][0]["mr"].is_number()).then_some(m)
        });
        assert_eq!(first["status"], "sending", "{first}");
        sim_c
            .fault(smsgate::sim::Fault::SmsBeforePrompt {
                from: customer.into(),
                text: "STOP".into(),
            })
            .unwrap();
        // Failed at C, and at A once C's record reaches it.
        for addr in [&addr_c, &addr_a] {
            let m = message_in(addr, &id, "failed", Duration::from_secs(20));
            assert_eq!(m["error"]["code"], "recipient_opted_out", "{m}");
        }
        // The STOP came between parts 1 and 2: at C, and for the fleet.
        let at_c = consent(&addr_c, customer);
        assert_eq!(at_c["status"], "opted_out", "{at_c}");
        // Part 1 went out, parts 2 and 3 never did; the same record at
        // both gateways (once C's last change has reached A).
        let m = wait_until(Duration::from_secs(20), "the same record", || {
            let c = common::message(&addr_c, TOKEN, &id);
            (c == common::message(&addr_a, TOKEN, &id)).then_some(c)
        });
        let parts = m["part_status"].as_array().unwrap();
        assert!(parts[0]["mr"].is_number(), "{m}");
        assert!(
            parts[1..]
                .iter()
                .all(|p| p["mr"].is_null() && p["status"] == "pending"),
            "{m}"
        );
        assert_eq!(m["modem"], "m1", "{m}");
        assert_eq!(m["from"], "+15552100000", "{m}");
        // Never complete on the air: only C's confirmation reached the customer.
        assert!(
            texts_to(&sim_c, customer)
                .iter()
                .all(|t| t.contains("unsubscribed")),
            "{:?}",
            texts_to(&sim_c, customer)
        );
        // Reported once for the fleet: where it failed (C).
        wait_until(Duration::from_secs(20), "C's webhook", || {
            hooks2
                .requests()
                .iter()
                .any(|r| r.uri == "/c" && r.body.contains(&id))
                .then_some(())
        });
        assert_eq!(failed_events(&addr_c, &id), 1);
        assert_eq!(failed_events(&addr_a, &id), 0);
        let reported = hooks2
            .requests()
            .iter()
            .filter(|r| r.body.contains(&id))
            .count();
        assert_eq!(reported, 1, "{:?}", hooks2.requests());
    })
    .await;
    drop(hooks);
    a.stop().await;
    c.stop().await;
    sc.shutdown().await;
}
