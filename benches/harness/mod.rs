//! What the gateway benchmarks share: a keep-alive HTTP/1.1 client over a
//! tokio `TcpStream`, percentiles, the daemon's config, the machine and its
//! load, and this process's CPU time and RSS from /proc.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use smsgate::api::{ApiToken, Scope};
use smsgate::config::Config;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const TOKEN: &str = "bench-token-0123456789";

pub fn tokens() -> Vec<ApiToken> {
    vec![ApiToken::from_secret("bench", TOKEN, vec![Scope::Admin])]
}

/// `--quick` on the command line (`cargo bench --bench x -- --quick`).
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// `-- --long`: a longer run than the default.
pub fn long() -> bool {
    std::env::args().any(|a| a == "--long")
}

/// A scratch directory under the target directory, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("bench-data").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cargo target directory (`CARGO_TARGET_DIR`, else `./target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A daemon config: API on an ephemeral loopback port, the store at `db`,
/// one `[[modem]]` per `(id, port)`.
pub fn config(db: &Path, cache_mb: u64, modems: &[(String, PathBuf)]) -> Config {
    let mut text = format!(
        "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\ncache_mb = {cache_mb}\n[sms]\ndefault_country = \"US\"\n",
        db.display()
    );
    for (id, port) in modems {
        text.push_str(&format!(
            "[[modem]]\nid = \"{id}\"\nport = \"{}\"\nbaud = 115200\n",
            port.display()
        ));
    }
    Config::from_toml(&text, std::iter::empty()).unwrap()
}

/// One keep-alive HTTP/1.1 connection.
pub struct Client {
    stream: BufReader<TcpStream>,
    host: String,
    line: String,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream: BufReader::with_capacity(16 * 1024, stream),
            host: addr.to_string(),
            line: String::new(),
        }
    }

    /// Send one request and read its answer: (status, body).
    pub async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.request_as(method, path, "application/json", body)
            .await
    }

    /// `request` with a body of another type (a CSV import).
    pub async fn request_as(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.stream.get_mut().write_all(&request).await.unwrap();
        self.line.clear();
        self.stream.read_line(&mut self.line).await.unwrap();
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("bad status line {:?}", self.line))
            .parse()
            .unwrap();
        let mut length = 0usize;
        loop {
            self.line.clear();
            let n = self.stream.read_line(&mut self.line).await.unwrap();
            assert!(n > 0, "connection closed in the headers");
            let l = self.line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                assert!(
                    !(name.eq_ignore_ascii_case("transfer-encoding")),
                    "chunked answers are not handled"
                );
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await.unwrap();
        (status, body)
    }
}

/// Post `count` messages on one keep-alive connection as client `index`
/// (100 contacts of its own, texted in turn); the latency and id of each
/// 202 (`api_accept`, and the fleet's accepts).
pub async fn timed_posts(
    addr: std::net::SocketAddr,
    index: usize,
    count: usize,
) -> Vec<(Duration, String)> {
    let mut c = Client::connect(addr).await;
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        // 100 contacts per client: contacts repeat, as threads do.
        let body = format!(
            r#"{{"to": "+1555{:03}{:04}", "body": "Your appointment is on Tuesday at 10:30. Reply C to confirm, R to reschedule. ({n})"}}"#,
            index,
            n % 100
        );
        let start = std::time::Instant::now();
        let (status, answer) = c.request("POST", "/v1/messages", body.as_bytes()).await;
        let took = start.elapsed();
        assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
        let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        out.push((took, answer["id"].as_str().unwrap().to_string()));
    }
    out
}

/// `POST /v1/messages` for messages 0..`count`, split in order over
/// `connections` keep-alive connections, message `n`'s JSON from `body(n)`;
/// every answer must be a 202. The ids, in message order.
pub async fn post_messages<F>(
    addr: std::net::SocketAddr,
    connections: usize,
    count: usize,
    body: F,
) -> Vec<String>
where
    F: Fn(usize) -> String + Send + Sync + 'static,
{
    let body = std::sync::Arc::new(body);
    let per = count / connections;
    let tasks: Vec<_> = (0..connections)
        .map(|p| {
            let body = body.clone();
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                let mut ids = Vec::new();
                let end = if p == connections - 1 {
                    count
                } else {
                    (p + 1) * per
                };
                for n in p * per..end {
                    let (status, answer) =
                        c.request("POST", "/v1/messages", body(n).as_bytes()).await;
                    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&answer));
                    let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                    ids.push(v["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.unwrap());
    }
    ids
}

/// The `p`-th percentile (0-100) of sorted durations, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// `nproc`, the CPU model, RAM, kernel and rustc, in one line.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let kernel = first_line("uname", &["-r"]);
    let rustc = first_line("rustc", &["--version"]);
    format!(
        "{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {kernel}, {rustc}",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// The 1-, 5- and 15-minute load averages.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// User + system CPU time of process `pid` ("self" for this one).
pub fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after ')'.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // CLK_TCK is 100 on every Linux we run on.
    Duration::from_millis(ticks * 10)
}

/// Resident set size of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Peak RSS (`VmHWM`) in KiB.
pub fn peak_rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The daemon on a runtime of its own with two workers, as `smsgate run` has.
pub struct DaemonThread {
    pub started: smsgate::daemon::Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DaemonThread {
    pub fn start(config: Config) -> DaemonThread {
        // As the binary's main does, before the daemon's threads start.
        smsgate::memory::limit_arenas();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(smsgate::daemon::run(
                config,
                tokens(),
                async move {
                    let _ = stop_rx.await;
                },
                move |s| {
                    let _ = started_tx.send(s.clone());
                },
            ))
            .unwrap();
        });
        let started = started_rx.recv().unwrap();
        DaemonThread {
            started,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Block until every configured modem is ready (or panic after `limit`).
    pub fn wait_ready(&self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let statuses = self.started.dispatcher.statuses();
            if statuses
                .iter()
                .all(|s| s.state == smsgate::modem::ModemState::Ready)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "modems not ready: {:?}",
                statuses
                    .iter()
                    .filter(|s| s.state != smsgate::modem::ModemState::Ready)
                    .map(|s| (&s.id, s.state, &s.reason))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, in effect: stop and wait for the daemon to return.
    pub fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Name of the client runtime's threads (see [`thread_cpu`]).
pub const CLIENT_THREADS: &str = "bench-client";

/// A runtime with two workers for the clients (they would be other processes).
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(CLIENT_THREADS)
        .enable_all()
        .build()
        .unwrap()
}

/// Environment variable that turns a bench binary into its own simulator child:
/// `N:DIR` hosts N unthrottled SIM800 simulators at `DIR/modem-<i>`.
const SIMS_ENV: &str = "SMSGATE_BENCH_SIMS";
/// With [`SIMS_ENV`]: the simulators' wire speed (unset: unthrottled).
pub const SIMS_BAUD_ENV: &str = "SMSGATE_BENCH_SIMS_BAUD";

/// Call first in `main`: when this process is the simulator child, serve the
/// simulators until stdin closes (the parent went away), then exit.
pub fn run_sim_child_if_asked() {
    let Ok(spec) = std::env::var(SIMS_ENV) else {
        return;
    };
    let (n, dir) = spec.split_once(':').unwrap();
    let n: usize = n.parse().unwrap();
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut sims = Vec::new();
        for i in 0..n {
            let mut c = smsgate::sim::SimConfig::new(smsgate::sim::Personality::Sim800);
            c.link = Some(dir.join(format!("modem-{i}")));
            c.own_number = format!("+1555000{i:04}");
            c.noise_interval = Some(Duration::ZERO);
            // `SMSGATE_BENCH_SIMS_BAUD`: paced at that speed (default: unthrottled).
            c.baud = std::env::var(SIMS_BAUD_ENV)
                .ok()
                .and_then(|b| b.parse().ok());
            c.status_report_delay = Duration::ZERO;
            sims.push(smsgate::sim::Simulator::start(c).unwrap());
        }
        println!("ready");
        // Block on stdin in a thread: EOF when the parent closes it or dies.
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
        for s in sims {
            s.shutdown().await;
        }
    });
    std::process::exit(0);
}

/// A child process of this bench hosting `n` simulated modems, so their CPU
/// and memory are not the daemon's.
pub struct SimChild {
    child: std::process::Child,
    pub links: Vec<PathBuf>,
}

impl SimChild {
    pub fn spawn(n: usize, dir: &Path) -> SimChild {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(SIMS_ENV, format!("{n}:{}", dir.display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the simulator child did not start");
        SimChild {
            child,
            links: (0..n).map(|i| dir.join(format!("modem-{i}"))).collect(),
        }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// `(id, port)` pairs for [`config`].
    pub fn modems(&self) -> Vec<(String, PathBuf)> {
        self.links
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("m{i:02}"), l.clone()))
            .collect()
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of this process's threads, split into those whose
/// name starts with `prefix` and all the others.
pub fn thread_cpu(prefix: &str) -> (Duration, Duration) {
    let (mut named, mut other) = (0u64, 0u64);
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // The kernel keeps 15 characters of a thread's name.
        if prefix.starts_with(name) || name.starts_with(prefix) {
            named += ticks;
        } else {
            other += ticks;
        }
    }
    (
        Duration::from_millis(named * 10),
        Duration::from_millis(other * 10),
    )
}
