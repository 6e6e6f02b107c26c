//! sd_notify: tell systemd when the daemon is ready, what it is doing, that it
//! is alive, and that it is stopping. Through libsystemd with the cargo
//! feature `systemd` (the Debian package's build); without it these are
//! no-ops, so a plain `cargo build` needs no system library.

use std::time::Duration;

/// Send `KEY=value` pairs; `false` when not under systemd (or built without it).
pub fn notify(state: &[(&str, &str)]) -> bool {
    #[cfg(feature = "systemd")]
    {
        systemd::daemon::notify(false, state.iter()).unwrap_or(false)
    }
    #[cfg(not(feature = "systemd"))]
    {
        let _ = state;
        false
    }
}

pub fn ready(status: &str) {
    notify(&[("READY", "1"), ("STATUS", status)]);
}

pub fn status(status: &str) {
    notify(&[("STATUS", status)]);
}

pub fn watchdog() {
    notify(&[("WATCHDOG", "1")]);
}

pub fn stopping() {
    notify(&[("STOPPING", "1"), ("STATUS", "stopping")]);
}

/// `WatchdogSec=` as systemd passes it (`WATCHDOG_USEC`, for this process).
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// The one-line STATUS= summary.
pub fn summary(ready: usize, modems: usize, queued: usize) -> String {
    format!("{ready}/{modems} modems ready, {queued} queued")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_env() {
        assert_eq!(
            watchdog_from(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_from(Some("30000000"), Some("8"), 7),
            None,
            "meant for another process"
        );
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("x"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }

    #[test]
    fn status_line() {
        assert_eq!(summary(2, 2, 14), "2/2 modems ready, 14 queued");
    }

    #[test]
    fn without_systemd_nothing_is_sent() {
        // Not under systemd in tests: NOTIFY_SOCKET is unset, so even the
        // libsystemd build reports that nothing was sent.
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!notify(&[("STATUS", "test")]));
        }
    }
}
