//! Debian's `nats-server` for the fleet tests: started on loopback with
//! JetStream and a temporary store directory, killed on drop. `.ci/run`
//! installs it; with the `fleet` feature on, a missing binary fails the test
//! by name. Shared by tests/fleet.rs and benches/fleet.rs.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary: `SMSGATE_NATS_SERVER`, else `nats-server` on PATH or
/// in /usr/sbin (Debian's package puts it there).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SMSGATE_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]);
    for dir in candidates {
        let path = dir.join("nats-server");
        if path.is_file() {
            return path;
        }
    }
    panic!("nats-server not found: install Debian's nats-server (apt-get install nats-server) or set SMSGATE_NATS_SERVER");
}

/// A free TCP port on loopback (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// One nats-server with JetStream on 127.0.0.1.
pub struct NatsServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    /// In a cluster: its name, its route port and the others' route URLs.
    cluster: Option<(String, u16, String)>,
    /// A configuration file of its own (authorization, TLS), beside the
    /// command line's listen address, port and JetStream store.
    conf: Option<PathBuf>,
}

/// Servers routed to each other as one JetStream cluster (`smsgate`).
pub fn cluster(dir: PathBuf, size: usize) -> Vec<NatsServer> {
    let _ = std::fs::remove_dir_all(&dir);
    let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
    let urls = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut servers: Vec<NatsServer> = (0..size)
        .map(|i| {
            let dir = dir.join(format!("n{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            NatsServer {
                port: free_port(),
                dir,
                child: None,
                cluster: Some((format!("n{i}"), routes[i], urls.clone())),
                conf: None,
            }
        })
        .collect();
    for server in &mut servers {
        server.restart();
    }
    servers
}

impl NatsServer {
    /// Start on a free port with its store under `dir` (removed first).
    pub fn start(dir: PathBuf) -> NatsServer {
        NatsServer::start_with(dir, None)
    }

    /// [`NatsServer::start`] with `conf` as its configuration file (its
    /// `authorization` or `tls` blocks).
    pub fn start_with(dir: PathBuf, conf: Option<&str>) -> NatsServer {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let conf = conf.map(|text| {
            let path = dir.join("server.conf");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut server = NatsServer {
            port: free_port(),
            dir,
            child: None,
            cluster: None,
            conf,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Start again (same port, same store) after [`NatsServer::kill`].
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let mut command = Command::new(binary());
        if let Some(conf) = &self.conf {
            command.arg("-c").arg(conf);
        }
        command
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.dir.join("js"));
        if let Some((name, route, routes)) = &self.cluster {
            command
                .args(["--name", name, "--cluster_name", "smsgate", "--cluster"])
                .arg(format!("nats://127.0.0.1:{route}"))
                .arg("--routes")
                .arg(routes);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on {} (log: {})",
                self.port,
                self.dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        // Kept after a failure: its server.log says why.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
