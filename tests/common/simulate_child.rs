//! `smsgate simulate` as a child process, for the interop tests whose
//! third-party client opens the pty itself: the child (killed and reaped on
//! drop), a scratch directory for its link, and the control API over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the simulator may take to print its line.
const START_WAIT: Duration = Duration::from_secs(30);

/// Kills and reaps a child even when an assertion fails.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a third-party client run by [`run_bounded`] printed.
pub struct Finished {
    /// None: it did not finish within the wait and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `command` (spawned here, with both pipes drained by threads so a
/// chatty client never blocks) for at most `wait`; `what` names it if it
/// does not start.
pub fn run_bounded(mut command: Command, wait: Duration, what: &str) -> Finished {
    let mut child = ChildGuard(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what} did not start ({e})")),
    );
    let drain = |mut reader: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = reader.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.0.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.0.stderr.take().unwrap()));
    let deadline = Instant::now() + wait;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // On a timeout the guard kills the client, which ends both pipes.
    drop(child);
    Finished {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A scratch directory for the link, removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `$TMPDIR/smsgate-<tag>-<pid>-<name>`, empty.
    pub fn new(tag: &str, name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("smsgate-{tag}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `smsgate simulate`: its link and its control API's address.
pub struct SimulatorChild {
    pub child: ChildGuard,
    pub link: PathBuf,
    pub control: String,
}

/// `smsgate simulate --personality <personality>` on a link in `dir`, once it
/// has printed its ready line.
pub fn start_simulator(personality: &str, dir: &TempDir) -> SimulatorChild {
    let link = dir.0.join("ttyGSM0");
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_smsgate"))
            .args(["simulate", "--personality", personality, "--baud", "115200"])
            .arg("--link")
            .arg(&link)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(START_WAIT).unwrap_or_else(|_| {
        panic!("{personality}: smsgate simulate printed no line within {START_WAIT:?}")
    });
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{personality}: bad ready line {line:?}: {e}"));
    assert_eq!(ready["link"], link.to_string_lossy().as_ref(), "{line}");
    let control = ready["control"].as_str().unwrap().to_string();
    SimulatorChild {
        child,
        link,
        control,
    }
}

/// One request to the control API; the status code and the body as JSON
/// (`Null` when empty).
pub fn control(control: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(control).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {control}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: {head}"));
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body:?}"))
    };
    (status, json)
}

/// `GET path` on the control API, which must answer 200; the body as JSON.
pub fn http_get(control_addr: &str, path: &str) -> Value {
    let (status, body) = control(control_addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}
