//! `[[modem]] port = "auto"`: find modems among the `/dev/smsgate/*-at` links
//! that `udev/60-smsgate.rules` makes, tell them apart by IMEI (`AT+CGSN`,
//! 27.007 §5.4), and follow them as they are plugged in and out.
//!
//! A link's name comes from the USB serial number, which some modems lack or
//! share; the IMEI is what stays with the modem, so a configured `imei` binds
//! a discovered port to a modem id across re-plugs and sockets. With a single
//! auto modem and no `imei`, the first port whose IMEI no other modem claims
//! is taken.
//!
//! [`Discovery::run`] rescans the directory when inotify says it changed (or
//! every few seconds when inotify is not available, e.g. the directory does
//! not exist yet: udev creates it with the first link). A port is asked for its
//! IMEI once per link (a re-created link is asked again), never while a modem
//! actor holds it: serial ports open exclusive, and the actor already has it.
//! What the daemon uses: [`PortResolver::current`] at each (re)open of the
//! port, and [`PortResolver::changed`] to stop waiting when a port appears.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::at::command::Cgsn;
use crate::at::{open_serial, spawn, TransportConfig};

/// The `port` value that asks for discovery.
pub const AUTO: &str = "auto";
/// Where `udev/60-smsgate.rules` puts its links.
pub const DEFAULT_DIR: &str = "/dev/smsgate";
/// Rescan period without inotify, and after a port did not answer.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Rescan period with inotify: a safety net only.
const WATCHED_INTERVAL: Duration = Duration::from_secs(30);
/// A freshly plugged modem boots for a few seconds before it answers `AT`.
const RETRY_UNANSWERED: Duration = Duration::from_secs(3);
/// udev creates the link, then sets owner and mode: let it finish.
const SETTLE: Duration = Duration::from_millis(200);

/// 15 digits (IMEI), 16 (IMEISV), 14 (without the check digit): what
/// `crate::at::parse::imei` accepts.
pub fn is_imei(text: &str) -> bool {
    (14..=16).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// A configured modem with `port = "auto"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoModem {
    pub id: String,
    /// None: the only auto modem, takes any unclaimed port.
    pub imei: Option<String>,
}

/// Modem id -> its current port (absent: not plugged in).
pub type Ports = BTreeMap<String, String>;

/// The `*-at` links in `dir`, sorted (a missing directory: none).
pub fn list_links(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut links: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-at") && !n.starts_with('.'))
        })
        .collect();
    links.sort();
    links
}

/// Ask `port` for its IMEI, briefly; `None` when it does not answer (busy,
/// booting, not a modem).
pub async fn read_imei(port: &str, baud: u32) -> Option<String> {
    let serial = open_serial(port, baud).ok()?;
    let config = TransportConfig {
        resync_attempts: 2,
        resync_timeout: Duration::from_millis(500),
        ..TransportConfig::default()
    };
    let (client, _urcs) = spawn(serial, config);
    let imei = client.send(&Cgsn).await.ok().filter(|i| is_imei(i));
    // Close the port before the actor opens it (exclusive).
    client.close(Duration::from_secs(2)).await;
    imei
}

/// Which port each auto modem gets, from what the links answered. Pure.
pub fn assign(modems: &[AutoModem], found: &[(String, Option<String>)]) -> Ports {
    let mut ports = Ports::new();
    for m in modems {
        if let Some(imei) = &m.imei {
            if let Some((port, _)) = found.iter().find(|(_, i)| i.as_ref() == Some(imei)) {
                ports.insert(m.id.clone(), port.clone());
            }
        }
    }
    // The single auto modem without an imei (config validation refuses more
    // than one): the first answering port no one else claims.
    let unbound: Vec<&AutoModem> = modems.iter().filter(|m| m.imei.is_none()).collect();
    if let [only] = unbound.as_slice() {
        let claimed: Vec<&String> = modems.iter().filter_map(|m| m.imei.as_ref()).collect();
        if let Some((port, _)) = found
            .iter()
            .find(|(_, imei)| imei.as_ref().is_some_and(|i| !claimed.contains(&i)))
        {
            ports.insert(only.id.clone(), port.clone());
        }
    }
    ports
}

/// What is known of one link: enough to notice it was re-created.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinkKey {
    /// The link's own inode: a re-created link has a new one.
    inode: u64,
    target: PathBuf,
}

#[derive(Debug, Clone)]
struct Known {
    key: LinkKey,
    imei: Option<String>,
    asked: Instant,
}

/// What discovery has looked at: a positive signal that a scan happened
/// (tests wait for it rather than sleeping; logs may show it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Scans completed so far.
    pub scans: u64,
    /// The links of the last scan, each with the IMEI it answered.
    pub links: Vec<(String, Option<String>)>,
}

/// Finds auto modems in a directory of links and publishes their ports.
pub struct Discovery {
    dir: PathBuf,
    baud: u32,
    modems: Vec<AutoModem>,
    known: HashMap<PathBuf, Known>,
    ports: watch::Sender<Ports>,
    scanned: watch::Sender<Scanned>,
}

impl Discovery {
    /// `dir` is [`DEFAULT_DIR`] in the daemon, a temporary directory in tests.
    pub fn new(dir: impl Into<PathBuf>, baud: u32, modems: Vec<AutoModem>) -> Discovery {
        Discovery {
            dir: dir.into(),
            baud,
            modems,
            known: HashMap::new(),
            ports: watch::channel(Ports::new()).0,
            scanned: watch::channel(Scanned::default()).0,
        }
    }

    /// Follows every scan: how many so far and what the last one saw.
    pub fn scanned(&self) -> watch::Receiver<Scanned> {
        self.scanned.subscribe()
    }

    /// A resolver for modem `id` (follows every later scan).
    pub fn resolver(&self, id: &str) -> PortResolver {
        PortResolver {
            id: id.to_string(),
            ports: self.ports.subscribe(),
        }
    }

    /// Every auto modem's port, as of the last scan.
    pub fn ports(&self) -> Ports {
        self.ports.borrow().clone()
    }

    /// Look at the directory once: ask new or re-created links for their
    /// IMEI, forget vanished ones, publish the assignment. Returns it.
    pub async fn scan(&mut self) -> Ports {
        let links = list_links(&self.dir);
        self.known.retain(|path, _| links.contains(path));
        let in_use: Vec<String> = self.ports.borrow().values().cloned().collect();
        for link in &links {
            let Some(key) = link_key(link) else {
                self.known.remove(link);
                continue;
            };
            let path = link.to_string_lossy().into_owned();
            let stale = match self.known.get(link) {
                None => true,
                Some(k) if k.key != key => true,
                // A modem that did not answer (booting, busy) is asked again
                // later, unless an actor holds its port.
                Some(k) => {
                    k.imei.is_none()
                        && k.asked.elapsed() >= RETRY_UNANSWERED
                        && !in_use.contains(&path)
                }
            };
            if stale {
                // The same link name re-created while an actor already
                // reopened it (a quick re-plug between two polls): the port is
                // busy, and the name (USB serial or socket) says it is the
                // same modem.
                let previous = self
                    .known
                    .get(link)
                    .and_then(|k| k.imei.clone())
                    .filter(|_| in_use.contains(&path));
                let imei = read_imei(&path, self.baud).await.or(previous);
                tracing::info!(port = %path, imei = imei.as_deref().unwrap_or("(no answer)"), "discovered modem port");
                self.known.insert(
                    link.clone(),
                    Known {
                        key,
                        imei,
                        asked: Instant::now(),
                    },
                );
            }
        }
        let found: Vec<(String, Option<String>)> = links
            .iter()
            .filter_map(|l| {
                let k = self.known.get(l)?;
                Some((l.to_string_lossy().into_owned(), k.imei.clone()))
            })
            .collect();
        let ports = assign(&self.modems, &found);
        self.ports.send_if_modified(|current| {
            if *current == ports {
                return false;
            }
            for m in &self.modems {
                let (before, after) = (current.get(&m.id), ports.get(&m.id));
                if before != after {
                    match after {
                        Some(p) => tracing::info!(modem = %m.id, port = %p, "modem port found"),
                        None => tracing::warn!(modem = %m.id, "modem port gone"),
                    }
                }
            }
            *current = ports.clone();
            true
        });
        self.scanned.send_modify(|s| {
            s.scans += 1;
            s.links = found;
        });
        ports
    }

    /// Rescan on every change of the directory until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut watcher = DirWatcher::new(&self.dir);
        loop {
            self.scan().await;
            if watcher.is_none() {
                watcher = DirWatcher::new(&self.dir);
                if watcher.is_some() {
                    // The directory appeared after that scan looked (udev
                    // creates it with the first link): what changed before
                    // the watch began is never reported, so look again now.
                    continue;
                }
            }
            let retry_pending = self.known.values().any(|k| k.imei.is_none());
            let period = match (&watcher, retry_pending) {
                (Some(_), false) => WATCHED_INTERVAL,
                _ => POLL_INTERVAL,
            };
            tokio::select! {
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                _ = tokio::time::sleep(period) => {}
                alive = async {
                    match watcher.as_mut() {
                        Some(w) => w.changed().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if !alive {
                        // The directory itself went (udev removes it with the
                        // last link): poll until it is back.
                        watcher = None;
                    }
                    tokio::time::sleep(SETTLE).await;
                }
            }
        }
    }
}

fn link_key(link: &Path) -> Option<LinkKey> {
    let meta = std::fs::symlink_metadata(link).ok()?;
    // A plain device node (a local rule with NAME=) is keyed by itself.
    let target = std::fs::read_link(link).unwrap_or_else(|_| link.to_path_buf());
    Some(LinkKey {
        inode: meta.ino(),
        target,
    })
}

/// Modem `id`'s port as discovery last saw it.
#[derive(Debug, Clone)]
pub struct PortResolver {
    id: String,
    ports: watch::Receiver<Ports>,
}

impl PortResolver {
    /// The port to open now; `None`: the modem is not plugged in.
    pub fn current(&self) -> Option<String> {
        self.ports.borrow().get(&self.id).cloned()
    }

    /// Wait until this modem's port changes (appears, goes, moves); returns
    /// the new one. `None` also when discovery has stopped.
    pub async fn changed(&mut self) -> Option<String> {
        let before = self.current();
        let id = self.id.clone();
        self.ports
            .wait_for(|p| p.get(&id) != before.as_ref())
            .await
            .ok()
            .and_then(|p| p.get(&id).cloned())
    }
}

/// inotify on the links' directory (nix, `sys::inotify`).
struct DirWatcher {
    fd: tokio::io::unix::AsyncFd<InotifyFd>,
}

struct InotifyFd(nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl DirWatcher {
    /// `None` when inotify or the directory is not there.
    fn new(dir: &Path) -> Option<DirWatcher> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        inotify.add_watch(dir, flags).ok()?;
        // SAFETY: the AsyncFd owns the Inotify, whose fd stays open and the
        // same until both are dropped together (as src/sim/pty.rs does).
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                InotifyFd(inotify),
                tokio::io::Interest::READABLE,
            )
        }
        .ok()?;
        Some(DirWatcher { fd })
    }

    /// Wait for a change; `false` when the directory itself is gone.
    async fn changed(&mut self) -> bool {
        use nix::sys::inotify::AddWatchFlags;
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return false;
            };
            match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from)) {
                Ok(Ok(events)) => {
                    let gone = events.iter().any(|e| {
                        e.mask.intersects(
                            AddWatchFlags::IN_DELETE_SELF
                                | AddWatchFlags::IN_MOVE_SELF
                                | AddWatchFlags::IN_IGNORED,
                        )
                    });
                    return !gone;
                }
                Ok(Err(_)) => return false,
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(p, i)| (p.to_string(), i.map(str::to_string)))
            .collect()
    }

    fn auto(id: &str, imei: Option<&str>) -> AutoModem {
        AutoModem {
            id: id.into(),
            imei: imei.map(str::to_string),
        }
    }

    #[test]
    fn imeis() {
        assert!(is_imei("869012045678901"));
        assert!(is_imei("8690120456789012"));
        assert!(!is_imei("86901204567890a"));
        assert!(!is_imei("1234"));
    }

    #[test]
    fn bound_by_imei_whatever_the_link_name() {
        let modems = [
            auto("a", Some("111111111111111")),
            auto("b", Some("222222222222222")),
        ];
        let ports = assign(
            &modems,
            &found(&[
                ("/dev/smsgate/X-at", Some("222222222222222")),
                ("/dev/smsgate/Y-at", Some("111111111111111")),
                ("/dev/smsgate/Z-at", None),
            ]),
        );
        assert_eq!(
            ports.get("a").map(String::as_str),
            Some("/dev/smsgate/Y-at")
        );
        assert_eq!(
            ports.get("b").map(String::as_str),
            Some("/dev/smsgate/X-at")
        );
        let ports = assign(
            &modems,
            &found(&[("/dev/smsgate/X-at", Some("222222222222222"))]),
        );
        assert_eq!(ports.get("a"), None);
    }

    #[test]
    fn the_only_unbound_modem_takes_an_unclaimed_port() {
        let modems = [auto("a", Some("111111111111111")), auto("solo", None)];
        let ports = assign(
            &modems,
            &found(&[
                ("/dev/smsgate/A-at", Some("111111111111111")),
                ("/dev/smsgate/B-at", None),
                ("/dev/smsgate/C-at", Some("333333333333333")),
            ]),
        );
        assert_eq!(
            ports.get("solo").map(String::as_str),
            Some("/dev/smsgate/C-at")
        );
        assert_eq!(
            ports.get("a").map(String::as_str),
            Some("/dev/smsgate/A-at")
        );
        // Two unbound modems: neither guesses (config validation refuses it).
        let ports = assign(
            &[auto("x", None), auto("y", None)],
            &found(&[("/dev/smsgate/C-at", Some("333333333333333"))]),
        );
        assert!(ports.is_empty());
    }

    #[test]
    fn only_at_links_are_listed() {
        let dir = std::env::temp_dir().join(format!("smsgate-disc-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["b-at", "a-at", "a-nmea", ".hidden-at"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let names: Vec<String> = list_links(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a-at", "b-at"]);
        assert!(list_links(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
