//! `port = "auto"` through the daemon: modems found among udev-style
//! `<serial>-at` links by IMEI, whatever the link names; a modem plugged in
//! after the start is picked up, an unplugged one comes back.

mod common;

use std::time::Duration;

use common::{http, wait_until};
use serde_json::{json, Value};
use smsgate::sim::{Fault, Personality, SimConfig, SimHandle, Simulator};

const TOKEN: &str = "auto-token";

fn sim(dir: &std::path::Path, name: &str, imei: &str) -> SimHandle {
    let mut c = SimConfig::new(Personality::Ec25);
    c.link = Some(dir.join(format!("{name}.tty")));
    c.imei = Some(imei.into());
    c.noise_interval = Some(Duration::ZERO);
    Simulator::start(c).unwrap()
}

fn modem(addr: &str, id: &str) -> Value {
    http("GET", addr, &format!("/v1/modems/{id}"), Some(TOKEN), None).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_modems_are_found_by_imei_and_follow_replugs() {
    let base = std::env::temp_dir().join(format!("smsgate-auto-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let links = base.join("links");
    std::fs::create_dir_all(&links).unwrap();
    let a = sim(&base, "a", "869012045678901");
    let b = sim(&base, "b", "869012045678919");
    // Only b is plugged in at the start; the link names say nothing of who is who.
    std::os::unix::fs::symlink(b.link(), links.join("0123-at")).unwrap();
    let daemon = common::InProcessDaemon::start(
        &format!(
            "[api]\nbind = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n[discovery]\ndir = \"{}\"\n\
             [[modem]]\nid = \"front-desk\"\nport = \"auto\"\nimei = \"869012045678901\"\n\
             [[modem]]\nid = \"billing\"\nport = \"auto\"\nimei = \"869012045678919\"\n",
            base.join("db").display(),
            links.display()
        ),
        TOKEN,
    )
    .await;
    let addr = daemon.addr.clone();
    let (links2, a2, b2) = (links.clone(), a.clone(), b.clone());
    tokio::task::spawn_blocking(move || {
        let billing = wait_until(Duration::from_secs(20), "billing ready", || {
            let m = modem(&addr, "billing");
            (m["state"] == "ready").then_some(m)
        });
        assert!(
            billing["port"].as_str().unwrap().ends_with("0123-at"),
            "{billing}"
        );
        let front = modem(&addr, "front-desk");
        assert_eq!(front["state"], "offline");
        assert!(
            front["reason"].as_str().unwrap().contains("plugged in"),
            "{front}"
        );
        // Plug the front desk's modem in, under a name of its own.
        std::os::unix::fs::symlink(a2.link(), links2.join("4567-at")).unwrap();
        wait_until(Duration::from_secs(20), "front desk ready", || {
            (modem(&addr, "front-desk")["state"] == "ready").then_some(())
        });
        let (status, _) = http(
            "POST",
            &addr,
            "/v1/messages",
            Some(TOKEN),
            Some(&json!({"to": "+15550800001", "body": "from the desk", "modem": "front-desk"})),
        );
        assert_eq!(status, 202);
        wait_until(Duration::from_secs(20), "sent through a", || {
            (a2.received().len() == 1).then_some(())
        });
        assert!(b2.received().is_empty());
        // Unplug and replug: offline, then ready again.
        a2.fault(Fault::Unplug {
            duration: Duration::from_millis(800),
        })
        .unwrap();
        wait_until(Duration::from_secs(20), "offline", || {
            (modem(&addr, "front-desk")["state"] == "offline").then_some(())
        });
        wait_until(Duration::from_secs(20), "back", || {
            (modem(&addr, "front-desk")["state"] == "ready").then_some(())
        });
    })
    .await
    .unwrap();
    daemon.stop().await;
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&base);
}
