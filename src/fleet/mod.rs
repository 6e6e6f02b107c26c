//! Several gateways as one fleet on NATS JetStream (`[cluster]`, off unless
//! configured; the broker client is behind the cargo feature `fleet`).
//!
//! What is built so far: consent. Each gateway publishes every change of a
//! contact's consent that happened at its site (an inbound STOP or START,
//! an API change) to the ledger stream `SMSGATE_CONSENT` and puts the new
//! state in the KV bucket `smsgate_consent`; every gateway watches the
//! bucket and applies the other sites' changes to its own store
//! ([`crate::store::Store::apply_remote_consent`]), which cancels what
//! waits for a contact who opted out. The check right before `AT+CMGS` reads
//! the local store, so it reads the local replica.
//!
//! While a gateway has lost the broker its replica ages: it keeps sending
//! only to contacts whose consent it has seen within `consent_staleness`
//! (the replica's last sync, or a change at this site), and defers the
//! others ([`Freshness`], checked by the policy with quiet hours and rate
//! limits); `/readyz` and `/metrics` say so.
//!
//! Outbound: a message accepted by any gateway's API is stored there as
//! [`crate::store::FleetLeg::Handed`] (never in its outbox) and published
//! to the work-queue stream `SMSGATE_OUTBOUND`, on the subject of the site
//! that must send it (`smsgate.out.<site>`: an explicit modem, a contact's
//! sticky sender) or of any site (`smsgate.out.any`); the 202 comes after
//! JetStream's acknowledgement. Each gateway pulls what its modems can send
//! soon, stores it as [`crate::store::FleetLeg::Taken`] and, right before the
//! first `AT+CMGS`, claims it in the fence bucket `smsgate_sent` (a create:
//! one gateway wins, whatever JetStream redelivered to whom). The work
//! queue's message is acknowledged once the result is stored. Each gateway
//! publishes the state changes of what it sent to `SMSGATE_EVENTS`; the
//! others apply them, so a message reads the same on every gateway.

#[cfg(feature = "fleet")]
pub mod nats;
#[cfg(feature = "fleet")]
pub mod work;

use std::future::Future;
use std::pin::Pin;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The KV bucket of each contact's current consent.
pub const CONSENT_BUCKET: &str = "smsgate_consent";
/// The stream of consent ledger entries, one subject per site and contact.
pub const CONSENT_STREAM: &str = "SMSGATE_CONSENT";
/// Subjects of [`CONSENT_STREAM`]: [`ledger_subject`]'s (and
/// `smsgate.consent.<site>`, written before the contact was in it).
pub const CONSENT_SUBJECTS: &str = "smsgate.consent.>";

/// The ledger stream's subject of a consent change at `site`:
/// `smsgate.consent.<site>.<consent key>` ([`consent_key`]), so that an
/// erasure can purge the contact's entries by subject (`site` `*`: the
/// filter of every site's).
pub fn ledger_subject(site: &str, contact: &str, number: Option<&str>) -> String {
    format!("smsgate.consent.{site}.{}", consent_key(contact, number))
}

/// `[cluster]`: the broker and this gateway's place in the fleet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// NATS servers (`nats://host:4222`; `tls://` for TLS).
    pub nats_url: Vec<String>,
    /// This gateway's site: letters, digits, `-` or `_` (a subject token).
    pub site: String,
    #[serde(default)]
    pub credentials: Credentials,
    /// A CA bundle (PEM) for servers whose certificates the system's roots
    /// do not cover.
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Without the broker, consent seen longer ago than this no longer
    /// allows a send (the send waits).
    #[serde(
        default = "default_staleness",
        deserialize_with = "crate::config::duration_value"
    )]
    pub consent_staleness: Duration,
    /// Replicas of the fleet's streams and buckets (3 on a 3-server cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// A gateway not heard from for this long is gone: a message it claimed
    /// to send and never finished becomes `unknown` at the gateway that
    /// accepted it (never sent again by another).
    #[serde(
        default = "default_gone_after",
        deserialize_with = "crate::config::duration_value"
    )]
    pub gone_after: Duration,
}

fn default_gone_after() -> Duration {
    Duration::from_secs(900)
}

fn default_staleness() -> Duration {
    Duration::from_secs(600)
}

fn default_replicas() -> usize {
    1
}

/// How the gateway signs in to NATS: at most one of a token, a user and
/// password, an nkey seed file or a creds file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub token: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// A file holding an nkey seed (`SU...`).
    pub nkey: Option<std::path::PathBuf>,
    /// A `.creds` file (JWT and seed).
    pub creds: Option<std::path::PathBuf>,
}

impl ClusterConfig {
    /// What a type cannot say: (key under `cluster`, problem).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !cfg!(feature = "fleet") {
            out.push((
                "cluster".into(),
                "this build has no fleet support: build smsgate with `--features fleet`, or remove [cluster]"
                    .into(),
            ));
        }
        if self.nats_url.is_empty() {
            out.push((
                "cluster.nats_url".into(),
                "at least one server, e.g. [\"nats://10.0.0.5:4222\"]".into(),
            ));
        }
        for (i, url) in self.nats_url.iter().enumerate() {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("nats" | "tls")) {
                out.push((
                    format!("cluster.nats_url[{i}]"),
                    format!("{url:?}: a nats://host:port or tls://host:port address"),
                ));
            }
        }
        let site_ok = !self.site.is_empty()
            && self.site.len() <= 64
            && self
                .site
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if self.site == "any" {
            out.push((
                "cluster.site".into(),
                "\"any\" names the work queue's subject for every site: choose another name".into(),
            ));
        } else if !site_ok {
            out.push((
                "cluster.site".into(),
                format!("{:?}: use 1-64 letters, digits, - or _", self.site),
            ));
        }
        let c = &self.credentials;
        let kinds = [
            c.token.is_some(),
            c.user.is_some() || c.password.is_some(),
            c.nkey.is_some(),
            c.creds.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        if kinds > 1 {
            out.push((
                "cluster.credentials".into(),
                "one of token, user and password, nkey or creds".into(),
            ));
        }
        if c.user.is_some() != c.password.is_some() {
            out.push((
                "cluster.credentials".into(),
                "user and password go together".into(),
            ));
        }
        if self.consent_staleness < Duration::from_secs(1) {
            out.push((
                "cluster.consent_staleness".into(),
                "at least 1s, e.g. 10m".into(),
            ));
        }
        if self.gone_after < Duration::from_secs(1) {
            out.push(("cluster.gone_after".into(), "must be at least 1s".into()));
        }
        if !(1..=5).contains(&self.replicas) {
            out.push((
                "cluster.replicas".into(),
                format!("{}: 1 to 5 (JetStream's limit)", self.replicas),
            ));
        }
        out
    }
}

/// A future of the fleet link (object-safe: the API and the modems hold
/// the link as a trait object, so that a build without the feature has none).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who holds a message of the fleet, as the fence bucket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This gateway: it sends (or cancelled) the message.
    Mine,
    /// Another gateway (its site): this one must not send it.
    Theirs(String),
    /// Cancelled at the gateway that accepted it (its site).
    Cancelled(String),
}

/// Why a gateway claims a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimFor {
    /// Right before its first `AT+CMGS`.
    Send,
    /// `DELETE /v1/messages/{id}` at the gateway that accepted it.
    Cancel,
}

/// The fleet as the API and the modem actors use it.
pub trait FleetLink: Send + Sync {
    /// This gateway's site.
    fn site(&self) -> &str;
    /// Whether the broker is reachable now: while it is not, the API keeps
    /// what it accepts for this gateway's own modems (nothing was
    /// published, so nothing can be sent twice).
    fn connected(&self) -> bool;
    /// Publish an accepted message (stored here as handed) to the work
    /// queue; Ok once JetStream has acknowledged it.
    fn hand(&self, message: &crate::store::Message) -> Pending<'_, Result<(), String>>;
    /// Claim message `id` in the fence bucket.
    fn claim(&self, id: &str, why: ClaimFor) -> Pending<'_, Result<Claim, String>>;
}

/// How long the fence bucket keeps a claim (its keys expire then, so it
/// does not grow for ever).
pub const FENCE_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

/// A message of the fleet accepted longer ago than this is past what the
/// fence remembers (two days short of [`FENCE_KEEP`]): every claim made for
/// it was made after its accept, so one made for it may have expired after
/// that, and no gateway claims it any more. Its work-queue copies are
/// dropped, and the gateway that accepted it settles it `unknown`
/// (`fleet_expired`). Its accept, not its `not_before`: a deferral moves
/// `not_before` (quiet hours, a modem's limits), and a cancel claimed for
/// it at its accept would expire while a gateway holding a copy waited.
pub const FENCE_SAFE: chrono::TimeDelta = chrono::TimeDelta::days(28);

/// How far ahead a message handed to the fleet may be due: a week short of
/// [`FENCE_SAFE`], the least time the fleet has to send it before it is
/// past the fence (deferrals, a gateway away for a while).
pub const FLEET_AHEAD_MAX: chrono::TimeDelta = chrono::TimeDelta::days(21);

/// Whether `message` is past what the fence remembers ([`FENCE_SAFE`]).
pub fn past_the_fence(message: &crate::store::Message, now: DateTime<Utc>) -> bool {
    message.created_at < now - FENCE_SAFE
}

/// Whether a message due at `not_before` is further ahead of `now` than
/// the fleet takes ([`FLEET_AHEAD_MAX`]). Such a message is not handed to
/// the fleet when it is accepted: a cancel's claim in the fence could
/// expire before its time, and a gateway that took its copy then would
/// send it. It stays with the accepting gateway's modems, and a cancel
/// needs no broker.
pub fn beyond_the_fence(not_before: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    not_before.is_some_and(|at| at > now + FLEET_AHEAD_MAX)
}

/// How long a deferred send waits before the replica is asked again (or
/// the staleness, when shorter).
pub const STALE_RECHECK: Duration = Duration::from_secs(30);

/// How current this gateway's replica of the fleet's consent is: the time
/// of its last sync (connected to the broker and caught up with the
/// bucket), shared by the watcher that sets it and the policy that reads it.
#[derive(Debug)]
pub struct Freshness {
    staleness: chrono::Duration,
    /// Milliseconds since the epoch of the last sync; 0: never synced.
    synced_ms: AtomicI64,
    connected: AtomicBool,
    /// Other sites' message events not applied here yet (-1: not known).
    events_pending: AtomicI64,
}

impl Freshness {
    pub fn new(staleness: Duration) -> Freshness {
        Freshness {
            staleness: chrono::Duration::from_std(staleness).unwrap_or(chrono::Duration::MAX),
            synced_ms: AtomicI64::new(0),
            connected: AtomicBool::new(false),
            events_pending: AtomicI64::new(-1),
        }
    }

    /// The replica is current as of `at`.
    pub fn synced(&self, at: DateTime<Utc>) {
        self.synced_ms
            .fetch_max(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// Whether the gateway holds a connection to the broker now.
    pub fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// The events stream's lag: other sites' events not applied here yet.
    pub fn set_events_pending(&self, pending: u64) {
        self.events_pending.store(
            i64::try_from(pending).unwrap_or(i64::MAX),
            Ordering::Relaxed,
        );
    }

    /// None until the events stream was first read.
    pub fn events_pending(&self) -> Option<u64> {
        u64::try_from(self.events_pending.load(Ordering::Relaxed)).ok()
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// When the replica was last current.
    pub fn last_sync(&self) -> Option<DateTime<Utc>> {
        match self.synced_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// How old the replica is at `now` (None: never synced).
    pub fn age(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.last_sync().map(|t| now - t)
    }

    /// Whether the replica as a whole is within the staleness at `now`.
    pub fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.age(now).is_some_and(|age| age <= self.staleness)
    }

    /// Why a send to a contact whose consent changed here at `changed_here`
    /// (None: never, or only through the replica) must wait at `now`, and
    /// until when; None when its consent was seen within the staleness.
    pub fn hold(
        &self,
        changed_here: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, String)> {
        let seen = match (self.last_sync(), changed_here) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if seen.is_some_and(|t| now - t <= self.staleness) {
            return None;
        }
        let since = match seen {
            Some(t) => format!("since {}", t.to_rfc3339()),
            None => "never synced".into(),
        };
        let recheck = chrono::Duration::from_std(STALE_RECHECK)
            .unwrap_or(chrono::Duration::zero())
            .min(self.staleness);
        Some((
            now + recheck,
            format!("the fleet's consent is not current ({since}): waiting for the broker"),
        ))
    }
}

/// The KV key of a contact's consent (KV keys allow letters, digits and
/// `-/_=.`): `c` and the number's digits for an international number
/// (`+4930123` -> `c4930123`), else `x` and the hex of its bytes; with a
/// per-number scope, `.` and the gateway number the same way.
pub fn consent_key(contact: &str, number: Option<&str>) -> String {
    fn part(s: &str) -> String {
        match s.strip_prefix('+') {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                format!("c{digits}")
            }
            _ => {
                let mut out = String::from("x");
                for b in s.bytes() {
                    out.push_str(&format!("{b:02x}"));
                }
                out
            }
        }
    }
    match number {
        Some(n) => format!("{}.{}", part(contact), part(n)),
        None => part(contact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn keys_use_only_what_kv_allows() {
        assert_eq!(consent_key("+4930123", None), "c4930123");
        assert_eq!(
            consent_key("+4930123", Some("+15550001")),
            "c4930123.c15550001"
        );
        assert_eq!(consent_key("ACME", None), "x41434d45");
        assert_eq!(consent_key("+", None), "x2b");
        for key in [
            consent_key("+1 (555)", None),
            consent_key("Ünï", Some("12")),
        ] {
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b)));
        }
    }

    #[test]
    fn a_replica_within_the_staleness_allows_every_send() {
        let f = Freshness::new(Duration::from_secs(600));
        let now = at("2026-12-04T12:00:00Z");
        // Never synced, nothing seen here: wait.
        let (until, why) = f.hold(None, now).unwrap();
        assert_eq!(until, now + chrono::Duration::seconds(30));
        assert!(why.contains("never synced"), "{why}");
        f.synced(now - chrono::Duration::minutes(10));
        assert_eq!(f.hold(None, now), None);
        assert!(f.fresh(now));
        // A minute later the replica is 11 minutes old.
        let later = now + chrono::Duration::minutes(1);
        assert!(!f.fresh(later));
        let (_, why) = f.hold(None, later).unwrap();
        assert!(why.contains("since 2026-12-04T11:50:00"), "{why}");
        // A contact whose consent changed here 2 minutes ago is still seen.
        assert_eq!(
            f.hold(Some(later - chrono::Duration::minutes(2)), later),
            None
        );
        // Syncs only move forward.
        f.synced(now - chrono::Duration::hours(1));
        assert_eq!(f.last_sync(), Some(now - chrono::Duration::minutes(10)));
    }

    #[test]
    fn a_message_is_past_the_fence_four_weeks_after_its_accept() {
        let t = crate::store::test_support::TempStore::new();
        let now = Utc::now();
        let at = |days: i64| now - chrono::Duration::days(days);
        let message = |created: i64, send_at: Option<i64>| {
            let mut m = t.store.new_outbound(
                "",
                "+15550000001",
                "hi",
                1,
                "gsm7",
                false,
                None,
                at(created),
            );
            m.not_before = send_at.map(at);
            m
        };
        assert!(!past_the_fence(&message(27, None), now));
        assert!(past_the_fence(&message(29, None), now));
        // Its accept counts, not its time: a deferral moves `not_before`
        // (here to yesterday, or to tomorrow), a claim made at its accept
        // does not last longer for that.
        assert!(past_the_fence(&message(29, Some(1)), now));
        assert!(past_the_fence(&message(29, Some(-1)), now));
        assert!(!past_the_fence(&message(20, Some(29)), now));
        const { assert!(FENCE_SAFE.num_days() + 2 == (FENCE_KEEP.as_secs() / 86_400) as i64) };
        const { assert!(FLEET_AHEAD_MAX.num_days() + 7 == FENCE_SAFE.num_days()) };
    }

    #[test]
    fn a_message_due_more_than_three_weeks_ahead_is_beyond_the_fence() {
        let now = Utc::now();
        let ahead = |days: i64| Some(now + chrono::Duration::days(days));
        assert!(!beyond_the_fence(None, now));
        assert!(!beyond_the_fence(ahead(-3), now));
        assert!(!beyond_the_fence(ahead(20), now));
        assert!(!beyond_the_fence(Some(now + FLEET_AHEAD_MAX), now));
        assert!(beyond_the_fence(ahead(22), now));
    }

    #[test]
    fn the_config_is_checked() {
        let good = ClusterConfig {
            nats_url: vec!["nats://127.0.0.1:4222".into(), "tls://n2:4222".into()],
            site: "north-1".into(),
            credentials: Credentials::default(),
            tls_ca: None,
            consent_staleness: Duration::from_secs(600),
            replicas: 3,
            gone_after: Duration::from_secs(900),
        };
        let fleet_problem = usize::from(!cfg!(feature = "fleet"));
        assert_eq!(
            good.problems().len(),
            fleet_problem,
            "{:?}",
            good.problems()
        );
        let any = ClusterConfig {
            site: "any".into(),
            ..good.clone()
        };
        assert!(any
            .problems()
            .iter()
            .any(|(k, m)| k == "cluster.site" && m.contains("any")));
        let bad = ClusterConfig {
            nats_url: vec!["http://x".into()],
            site: "north.1".into(),
            credentials: Credentials {
                token: Some("t".into()),
                user: Some("u".into()),
                ..Credentials::default()
            },
            consent_staleness: Duration::ZERO,
            replicas: 7,
            gone_after: Duration::from_millis(10),
            ..good
        };
        let keys: Vec<String> = bad.problems().into_iter().map(|(k, _)| k).collect();
        for key in [
            "cluster.nats_url[0]",
            "cluster.site",
            "cluster.credentials",
            "cluster.consent_staleness",
            "cluster.replicas",
            "cluster.gone_after",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
    }
}
