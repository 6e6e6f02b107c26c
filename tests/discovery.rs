//! `port = "auto"` against two simulators: a temporary directory stands in for
//! /dev/smsgate with `<serial>-at` links to their ptys; modems are told apart
//! by the IMEI they answer to `AT+CGSN`, follow a re-plug under another name,
//! and go away when their link does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use smsgate::modem::discovery::{AutoModem, Discovery, PortResolver, Scanned};
use smsgate::sim::{Personality, SimConfig, SimHandle, Simulator};

const IMEI_A: &str = "356938035643809";
const IMEI_B: &str = "490154203237518";

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("smsgate-discovery-{}-{name}", std::process::id()))
}

fn sim(personality: Personality, imei: &str) -> SimHandle {
    let mut c = SimConfig::new(personality);
    c.noise_interval = Some(Duration::ZERO);
    c.imei = Some(imei.into());
    Simulator::start(c).unwrap()
}

fn link(dir: &Path, name: &str, sim: &SimHandle) -> PathBuf {
    let path = dir.join(name);
    std::os::unix::fs::symlink(sim.slave_path(), &path).unwrap();
    path
}

/// Wait until a scan that `done` accepts has completed.
async fn wait_scan(
    scanned: &mut tokio::sync::watch::Receiver<Scanned>,
    what: &str,
    done: impl Fn(&Scanned) -> bool,
) {
    let waited = tokio::time::timeout(Duration::from_secs(10), scanned.wait_for(|s| done(s)))
        .await
        .map(|seen| seen.is_ok());
    assert!(
        matches!(waited, Ok(true)),
        "{what}: last scan {:?}",
        scanned.borrow()
    );
}

async fn wait_for(resolver: &PortResolver, expected: Option<&Path>, what: &str) {
    let expected = expected.map(|p| p.to_string_lossy().into_owned());
    tokio::time::timeout(Duration::from_secs(10), async {
        while resolver.current() != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: still {:?}", resolver.current()));
}

fn modems() -> Vec<AutoModem> {
    vec![
        AutoModem {
            id: "front-desk".into(),
            imei: Some(IMEI_A.into()),
        },
        AutoModem {
            id: "billing".into(),
            imei: Some(IMEI_B.into()),
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_modems_by_imei_unplugged_and_replugged() {
    let dir = temp("two");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let a = sim(Personality::Ec25, IMEI_A);
    let b = sim(Personality::Sim800, IMEI_B);
    // Link names (USB serials) say nothing about which modem is which.
    let link_b = link(&dir, "0123456789ABCDEF-at", &b);
    let link_a = link(&dir, "SIM7600X-1-at", &a);
    std::os::unix::fs::symlink("/dev/null", dir.join("other-nmea")).unwrap();

    let mut discovery = Discovery::new(&dir, 115_200, modems());
    let first = discovery.scan().await;
    assert_eq!(
        first.get("front-desk"),
        Some(&link_a.to_string_lossy().into_owned())
    );
    assert_eq!(
        first.get("billing"),
        Some(&link_b.to_string_lossy().into_owned())
    );
    let front = discovery.resolver("front-desk");
    let mut billing = discovery.resolver("billing");
    let mut scanned = discovery.scanned();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(discovery.run(stop_rx));

    // Unplugged: udev removes the link.
    std::fs::remove_file(&link_b).unwrap();
    wait_for(&billing, None, "billing unplugged").await;
    assert!(front.current().is_some(), "the other modem stays");

    // Plugged into another socket: a new name, the same IMEI.
    let waiting = tokio::spawn(async move {
        let port = billing.changed().await;
        (billing, port)
    });
    let link_b2 = link(&dir, "1-1.3-at", &b);
    let (billing, port) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(port, Some(link_b2.to_string_lossy().into_owned()));
    wait_for(&billing, Some(&link_b2), "billing back").await;

    // A link that does not answer binds nothing: once a scan has asked it
    // (and heard nothing), both modems keep their ports.
    let dead = dir.join("dead-at");
    std::os::unix::fs::symlink("/dev/null", &dead).unwrap();
    let dead = dead.to_string_lossy().into_owned();
    wait_scan(&mut scanned, "the dead link asked", |s| {
        s.links.contains(&(dead.clone(), None))
    })
    .await;
    assert_eq!(front.current(), Some(link_a.to_string_lossy().into_owned()));
    assert_eq!(
        billing.current(),
        Some(link_b2.to_string_lossy().into_owned())
    );

    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    a.shutdown().await;
    b.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_may_appear_later_and_one_modem_needs_no_imei() {
    // udev creates /dev/smsgate with the first link: until then, poll.
    let dir = temp("later");
    let _ = std::fs::remove_dir_all(&dir);
    let only = sim(Personality::E3372, IMEI_A);
    let discovery = Discovery::new(
        &dir,
        115_200,
        vec![AutoModem {
            id: "only".into(),
            imei: None,
        }],
    );
    let resolver = discovery.resolver("only");
    let mut scanned = discovery.scanned();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(discovery.run(stop_rx));
    // Scanned (twice: at start, then polling) while the directory is missing.
    wait_scan(&mut scanned, "polling a missing directory", |s| {
        s.scans >= 2
    })
    .await;
    assert_eq!(scanned.borrow().links, []);
    assert_eq!(resolver.current(), None);
    std::fs::create_dir_all(&dir).unwrap();
    let l = link(&dir, "ABC-at", &only);
    wait_for(&resolver, Some(&l), "appears after the directory").await;
    // The directory goes with its last link, and comes back.
    std::fs::remove_dir_all(&dir).unwrap();
    wait_for(&resolver, None, "gone with the directory").await;
    std::fs::create_dir_all(&dir).unwrap();
    let l = link(&dir, "ABC-at", &only);
    wait_for(&resolver, Some(&l), "back").await;
    let _ = stop_tx.send(true);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    only.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
