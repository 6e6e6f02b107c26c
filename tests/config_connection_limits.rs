//! `[api] header_timeout` and `max_connections` on a running daemon: a client
//! that sends its headers a line at a time is cut, idle connections are
//! closed, and past the cap a new connection waits for a slot, so `/healthz`
//! still answers once the idle ones are gone (issue 11: 1,100 idle
//! connections made `/healthz` time out).

mod common;

use std::time::{Duration, Instant};

use smsgate::sim::{Personality, SimConfig, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const CAP: usize = 4;

/// A daemon with the test's limits; `extra` is appended to its config.
async fn daemon(name: &str, extra: &str) -> (common::InProcessDaemon, std::path::PathBuf) {
    let db = std::env::temp_dir().join(format!("smsgate-limits-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&db);
    let text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\nheader_timeout = \"{}s\"\nmax_connections = {CAP}\n[store]\npath = \"{}\"\ncache_mb = 8\n{extra}",
        HEADER_TIMEOUT.as_secs(),
        db.display()
    );
    (
        common::InProcessDaemon::start(&text, "limits-token").await,
        db,
    )
}

/// Read until the server closes the connection (EOF or a reset); the bytes.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_headers_slowly_is_cut_at_the_header_timeout() {
    let (daemon, db) = daemon("slow", "").await;
    // Before connecting: the server's clock starts when it accepts, which
    // can come before connect() returns here.
    let started = Instant::now();
    let mut stream = TcpStream::connect(&daemon.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    // A header line every 200 ms, for up to 30 s: the server must close the
    // connection long before the client would have finished.
    let mut buf = [0u8; 64];
    let mut closed = false;
    for _ in 0..150 {
        tokio::select! {
            read = stream.read(&mut buf) => {
                assert!(!matches!(read, Ok(n) if n > 0), "an answer to unfinished headers");
                closed = true;
                break;
            }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                    closed = true;
                    break;
                }
            }
        }
    }
    let took = started.elapsed();
    assert!(closed, "the slow client was never cut");
    assert!(
        took >= HEADER_TIMEOUT,
        "cut after {took:?}, before the timeout"
    );
    assert!(took < HEADER_TIMEOUT * 5, "cut only after {took:?}");
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_past_the_cap_healthz_waits_for_a_slot() {
    let (daemon, db) = daemon("cap", "").await;
    let started = Instant::now();
    // Fill every slot with connections that never send a byte.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(TcpStream::connect(&daemon.addr).await.unwrap());
    }
    // One more, asking for /healthz: it is only accepted when a slot frees.
    let addr = daemon.addr.clone();
    let health = tokio::spawn(async move {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(&mut stream).await;
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    });
    // Every idle connection is closed by the server, after the timeout.
    for mut stream in idle {
        let bytes = read_until_closed(&mut stream).await;
        let took = started.elapsed();
        assert!(bytes.is_empty(), "an idle connection got {bytes:?}");
        assert!(
            took >= HEADER_TIMEOUT,
            "an idle connection closed after {took:?}"
        );
        assert!(
            took < HEADER_TIMEOUT * 10,
            "an idle connection lived {took:?}"
        );
    }
    let (answer, took) = health.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The cap held: the fifth connection was served only once the idle ones
    // had used up their header timeout.
    assert!(
        took >= HEADER_TIMEOUT,
        "/healthz answered after {took:?}: past the cap"
    );
    // And with the slots free again, it answers at once.
    let addr = daemon.addr.clone();
    let (status, _) =
        tokio::task::spawn_blocking(move || common::http("GET", &addr, "/healthz", None, None))
            .await
            .unwrap();
    assert_eq!(status, 200);
    daemon.stop().await;
    let _ = std::fs::remove_dir_all(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_outlives_the_header_timeout_and_ends_at_shutdown() {
    let mut c = SimConfig::new(Personality::Sim800);
    c.link = Some(
        std::env::temp_dir().join(format!("smsgate-limits-{}-stream.tty", std::process::id())),
    );
    c.noise_interval = Some(Duration::ZERO);
    let modem = Simulator::start(c).unwrap();
    let modem_config = format!(
        "[[modem]]\nid = \"m1\"\nport = \"{}\"\n",
        modem.link().display()
    );
    let (daemon, db) = daemon("stream", &modem_config).await;
    daemon.wait_ready().await;
    let mut stream = TcpStream::connect(&daemon.addr).await.unwrap();
    stream
        .write_all(b"GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer limits-token\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream closed before its head");
        seen.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // An idle connection opened now is closed by the header timeout: once it
    // is, the stream has been open longer than that.
    let mut idle = TcpStream::connect(&daemon.addr).await.unwrap();
    assert!(read_until_closed(&mut idle).await.is_empty());
    // An SMS received after the timeout still arrives on the stream.
    modem.inject("+15551230000", "after the timeout").unwrap();
    while !String::from_utf8_lossy(&seen).contains("event: message.received") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream closed before the event");
        seen.extend_from_slice(&buf[..n]);
    }
    // Shutdown ends the stream.
    daemon.stop().await;
    read_until_closed(&mut stream).await;
    modem.shutdown().await;
    let _ = std::fs::remove_dir_all(db);
}
