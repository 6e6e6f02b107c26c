//! `smsgate demo` and the web inbox: the banner prints the inbox's address
//! and a sign-in; with it, a browser's requests (over a real socket) see the
//! simulated customers fill the inbox, the urgent complaint first.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One HTTP/1.1 request; the status, the head (lowercased) and the body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = form.unwrap_or("");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nSec-Fetch-Site: same-origin\r\nContent-Length: {}\r\n", body.len());
    if form.is_some() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    if let Some(c) = cookie {
        head.push_str(&format!("Cookie: {c}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_prints_a_sign_in_and_its_customers_fill_the_inbox() {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let demo = tokio::spawn(smsgate::demo::run(
        Some("127.0.0.1:0".into()),
        Some("127.0.0.1:0".parse().unwrap()),
        async move {
            let _ = stop_rx.await;
        },
        move |started, banner| {
            let _ = started_tx.send((started.api, banner));
        },
    ));
    let (api, banner) = started_rx.await.unwrap();
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with("Inbox"))
        .unwrap_or_else(|| panic!("no inbox line in:\n{banner}"));
    assert!(line.contains(&format!("http://{api}/inbox")), "{line}");
    let password = line
        .split("with password ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .to_string();
    assert!(line.contains("sign in as demo"), "{line}");
    assert_eq!(password.len(), 16);
    let addr = api.to_string();
    tokio::task::spawn_blocking(move || {
        // The demo makes its user through the API just after it starts.
        let deadline = Instant::now() + Duration::from_secs(40);
        let cookie = loop {
            let form = format!("username=demo&password={password}");
            let (status, head, body) = request(&addr, "POST", "/login", None, Some(&form));
            if status == 303 {
                let cookie = head
                    .lines()
                    .find_map(|l| l.strip_prefix("set-cookie: "))
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_string();
                break cookie;
            }
            assert!(Instant::now() < deadline, "cannot sign in: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        };
        // Chloe's urgent complaint waits for a person, first in the inbox.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _, body) = request(&addr, "GET", "/inbox", Some(&cookie), None);
            assert_eq!(status, 200);
            if let Some(first) = body.split("<li class=\"thread").nth(1) {
                if first.contains("Chloe Martin") && first.contains("Urgent") {
                    assert!(first.contains("charged twice"), "{first}");
                    break;
                }
            }
            assert!(Instant::now() < deadline, "Chloe never came first:\n{body}");
            std::thread::sleep(Duration::from_millis(200));
        }
        // The demo's templates are offered, filled with her name.
        let (_, _, thread) = request(&addr, "GET", "/threads/%2B15550100003", Some(&cookie), None);
        assert!(
            thread.contains("Sorry about that, Chloe Martin."),
            "{thread}"
        );
    })
    .await
    .unwrap();
    let _ = stop_tx.send(());
    demo.await.unwrap().unwrap();
}
