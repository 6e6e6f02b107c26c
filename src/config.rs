//! Typed settings: a TOML file plus `SMSGATE_<SECTION>__<KEY>` environment
//! overrides (the `config` crate), deserialized once at start into typed
//! values (durations, addresses, token digests and scopes, webhook secrets,
//! local times, zones, categories), so inner code never parses a string or
//! repeats a default. Every problem is reported at once, each with its key.
//! Unknown keys are refused. `[[modem]]` and `[[webhook]]` are file-only;
//! `SMSGATE_API_TOKEN` (one admin token) is read by the daemon directly.
//! config/smsgate.toml documents every key.
//!
//! Dependencies go one way: this module uses the small value types of the
//! modules it configures (`ApiToken`, `Secret`, `Category`, the policy's
//! sections) and builds their settings ([`ModemSettings`], [`Endpoint`],
//! [`Policy`]); they never look at the config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::api::{ApiToken, ConnectionLimits};
use crate::compose::SmsPolicy;
use crate::modem::{discovery, ModemSettings};
pub use crate::policy::settings::{ConsentConfig, ConsentScope, QuietHoursConfig, RateLimitConfig};
use crate::policy::Policy;
use crate::webhook::{Endpoint, Secret};

/// One configuration problem, naming its key (`api.tokens[0].sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// Everything wrong with a configuration, found at once (never empty).
#[derive(Debug)]
pub struct ConfigError {
    /// The file, when it was read from one.
    pub file: Option<PathBuf>,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn one(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            problems: vec![problem(key, message)],
        }
    }

    /// The keys named, in the order found.
    pub fn keys(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.key.as_str()).collect()
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = match &self.file {
            Some(file) => file.display().to_string(),
            None => "config".to_string(),
        };
        // A problem with the whole file (unreadable, TOML syntax) has no key.
        let line = |p: &Problem| match p.key.as_str() {
            FILE => p.message.clone(),
            key => format!("{key}: {}", p.message),
        };
        match self.problems.as_slice() {
            [one] => write!(f, "{origin}: {}", line(one)),
            many => {
                write!(f, "{origin}: {} problems:", many.len())?;
                for p in many {
                    write!(f, "\n  {}", line(p))?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The key of a problem with the file as a whole.
pub const FILE: &str = "(file)";

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub store: StoreConfig,
    /// The modems this daemon drives.
    #[serde(default)]
    pub modem: Vec<ModemConfig>,
    #[serde(default)]
    pub sms: SmsConfig,
    /// Where events are pushed (signed, retried, durable).
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    #[serde(default)]
    pub consent: ConsentConfig,
    #[serde(default)]
    pub quiet_hours: QuietHoursConfig,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// `[conversation]`: rules, teams, conversions.
    #[serde(default)]
    pub conversation: crate::conversation::settings::ConversationConfig,
    /// `[compat]`: the Twilio- and Kannel-compatible APIs.
    #[serde(default)]
    pub compat: crate::api::compat::CompatConfig,
    /// `[web]`: the web inbox's sessions and reply templates.
    #[serde(default)]
    pub web: crate::web::WebConfig,
    /// `[cluster]`: this gateway in a fleet on NATS JetStream (absent: one
    /// gateway alone, no broker).
    #[serde(default)]
    pub cluster: Option<crate::fleet::ClusterConfig>,
}

/// `[discovery]`: where `port = "auto"` modems are looked for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// The directory of the udev rules' `<serial>-at` links.
    pub dir: PathBuf,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            dir: PathBuf::from(discovery::DEFAULT_DIR),
        }
    }
}

/// The event types a webhook can ask for.
pub const EVENT_TYPES: [&str; 16] = [
    "message.received",
    "message.accepted",
    "message.sent",
    "message.delivered",
    "message.failed",
    "message.unknown",
    "message.expired",
    "modem.status",
    "consent.changed",
    "thread.assigned",
    "thread.state_changed",
    "thread.responded",
    "thread.note_added",
    "thread.outcome",
    "thread.sla_breached",
    "*",
];

/// `[[webhook]]`: one receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable name used in the API and logs.
    pub id: String,
    /// `http://host:port/path` of the receiver.
    #[serde(deserialize_with = "http_url")]
    pub url: String,
    /// Signing secrets, `whsec_` + base64 (Standard Webhooks). Every secret
    /// signs each delivery, so a new one can be added before the old is removed.
    #[serde(deserialize_with = "secrets")]
    pub secrets: Vec<Secret>,
    /// Event types to send; empty or `["*"]`: all.
    #[serde(default, deserialize_with = "event_types")]
    pub events: Vec<String>,
    /// How long to wait for the receiver's answer (1s to 120s).
    #[serde(
        default = "default_webhook_timeout",
        deserialize_with = "webhook_timeout"
    )]
    pub timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The receiver as the webhook workers use it.
impl From<&WebhookConfig> for Endpoint {
    fn from(c: &WebhookConfig) -> Endpoint {
        Endpoint {
            id: c.id.clone(),
            url: c.url.clone(),
            secrets: c.secrets.clone(),
            events: c.events.iter().filter(|e| *e != "*").cloned().collect(),
            timeout: c.timeout,
            foreign: None,
        }
    }
}

/// `[api]`: the local HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; keep it on loopback or a trusted LAN.
    #[serde(default = "default_bind", deserialize_with = "socket_addr")]
    pub bind: SocketAddr,
    /// Bearer tokens: only the SHA-256 of each secret is stored.
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// How long a connection may take to send a request's headers, counted
    /// from when it connects or its last response ended (so also how long an
    /// idle keep-alive connection stays open).
    #[serde(default = "default_header_timeout", deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// Connections served at once (default: below the open files limit,
    /// at most 1024); more wait until one closes.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_header_timeout() -> Duration {
    ConnectionLimits::DEFAULT_HEADER_TIMEOUT
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: default_bind(),
            tokens: Vec::new(),
            header_timeout: default_header_timeout(),
            max_connections: None,
        }
    }
}

impl ApiConfig {
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: self.header_timeout,
            max_connections: self
                .max_connections
                .unwrap_or_else(ConnectionLimits::default_max_connections),
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled database.
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Page cache in MiB: bounded, for a Raspberry Pi.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// Blank message bodies older than this many days (the records, consent
    /// ledger and counts stay). None: keep bodies.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Settled messages (a final status) unchanged this long move from the
    /// database to the history files, which keeps memory bounded as history
    /// grows ("30s", "10m", "1h"; default 10m).
    #[serde(default = "default_archive_after", deserialize_with = "duration")]
    pub archive_after: Duration,
}

fn default_archive_after() -> Duration {
    Duration::from_secs(600)
}

fn default_store_path() -> PathBuf {
    PathBuf::from("/var/lib/smsgate/db")
}

fn default_cache_mb() -> u64 {
    32
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: default_store_path(),
            cache_mb: default_cache_mb(),
            retention_days: None,
            archive_after: default_archive_after(),
        }
    }
}

/// `[[modem]]`: one modem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModemConfig {
    /// Stable name used in the API and logs (letters, digits, `-`, `_`).
    pub id: String,
    /// The AT port; a /dev/serial/by-id/... path survives re-plugging.
    pub port: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// SIM PIN, if the SIM asks for one. A wrong PIN is reported, never retried.
    #[serde(default)]
    pub pin: Option<String>,
    /// Preferred SMS storage: "ME", "SM" or "MT" (default: ME, else SM).
    #[serde(default)]
    pub storage: Option<String>,
    /// This modem's number, when the SIM does not store it.
    #[serde(default)]
    pub own_number: Option<String>,
    /// Send at most this many parts a minute (carrier spam filters). While
    /// it waits for its next slot the modem takes no work; the others do.
    #[serde(default)]
    pub sends_per_minute: Option<u32>,
    /// Send at most this many parts a day, counted per local day of
    /// `[quiet_hours] default_time_zone` and kept across restarts (the
    /// carrier's daily limit). Once spent, the modem's messages wait for the
    /// next day or go to another modem; none is dropped.
    #[serde(default)]
    pub daily_limit: Option<u32>,
    /// After this many failed sends in a row (errors the modem gives for any
    /// message, timeouts; default 3) the modem rests: 1 min, doubling up to
    /// 30 min while failures go on. Its queue goes to the other modems.
    #[serde(default)]
    pub rest_after_failures: Option<u32>,
    /// With `port = "auto"`: which discovered modem this is (`AT+CGSN`), so
    /// it keeps its id across re-plugs. Required when several are "auto".
    #[serde(default)]
    pub imei: Option<String>,
    /// What one part sent through this modem costs, in `[conversation]
    /// currency` (a float >= 0): the cost per outcome metric.
    #[serde(default, deserialize_with = "cost")]
    pub cost_per_part: Option<f64>,
}

fn default_baud() -> u32 {
    115_200
}

/// The modem's settings as its actor takes them.
impl From<&ModemConfig> for ModemSettings {
    fn from(m: &ModemConfig) -> Self {
        ModemSettings {
            id: m.id.clone(),
            port: m.port.clone(),
            baud: m.baud,
            pin: m.pin.clone(),
            storage: m.storage.clone(),
            own_number: m.own_number.clone(),
            sends_per_minute: m.sends_per_minute,
            daily_limit: m.daily_limit,
            rest_after_failures: m.rest_after_failures,
            resolver: None,
        }
    }
}

/// `[sms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// ISO 3166 alpha-2 country for numbers written without a country code.
    #[serde(default = "default_country")]
    pub default_country: String,
    /// Default validity: "none" (None: the network's) or 5m to 63w.
    #[serde(default = "default_validity", deserialize_with = "validity")]
    pub validity: Option<Duration>,
    /// Ask for status reports unless a request says otherwise.
    #[serde(default = "default_true")]
    pub status_reports: bool,
    /// Refuse texts that need more parts than this.
    #[serde(default = "default_max_parts")]
    pub max_parts: usize,
    /// Deliver a multipart message incomplete when parts are missing this long.
    #[serde(default = "default_reassembly", deserialize_with = "duration")]
    pub reassembly_timeout: Duration,
}

// `[sms]` defaults are the composition's own (one place for both).
fn default_country() -> String {
    SmsPolicy::default().default_country
}
fn default_validity() -> Option<Duration> {
    SmsPolicy::default()
        .validity
        .map(|s| Duration::from_secs(u64::from(s)))
}
fn default_true() -> bool {
    true
}
fn default_max_parts() -> usize {
    SmsPolicy::default().max_parts
}
fn default_reassembly() -> Duration {
    Duration::from_secs(600)
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            default_country: default_country(),
            validity: default_validity(),
            status_reports: true,
            max_parts: default_max_parts(),
            reassembly_timeout: default_reassembly(),
        }
    }
}

// Typed values from the file's strings: each parser is the one the project
// uses for that kind of value, and its error says what is expected.

fn custom<E: serde::de::Error>(message: impl std::fmt::Display) -> E {
    E::custom(message)
}

/// A duration such as `90s`, `10m`, `24h`, `7d` (for sections typed in their own modules).
pub fn duration_value<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    duration(d)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    crate::duration::parse(&text)
        .ok_or_else(|| custom(format!("{text:?}: a duration such as 90s, 10m, 24h or 7d")))
}

fn cost<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let value = f64::deserialize(d)?;
    if value.is_finite() && value >= 0.0 {
        Ok(Some(value))
    } else {
        Err(custom(format!("{value}: a price of at least 0, e.g. 0.05")))
    }
}

fn validity<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match crate::duration::parse(&text) {
        Some(v) if v.as_secs() >= 300 && v.as_secs() <= crate::pdu::relative_seconds(255) => {
            Ok(Some(v))
        }
        _ => Err(custom(format!(
            "{text:?}: \"none\" or 5m to 63w (e.g. 24h)"
        ))),
    }
}

fn webhook_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let timeout = duration(d)?;
    if !(1..=120).contains(&timeout.as_secs()) {
        return Err(custom("1s to 120s, e.g. 10s"));
    }
    Ok(timeout)
}

fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse().map_err(|_| {
        custom(format!(
            "{text:?} is not an address:port (e.g. 127.0.0.1:8080)"
        ))
    })
}

pub(crate) fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let url = String::deserialize(d)?;
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        custom("must start with http:// (receivers are on the LAN; put a TLS proxy in front for https)")
    })?;
    if rest.split('/').next().unwrap_or("").is_empty() {
        return Err(custom("has no host"));
    }
    Ok(url)
}

/// A `whsec_` secret, parsed by the signer's own parser.
struct SecretText(Secret);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if !text.starts_with("whsec_") || text.len() < 6 + 16 {
            return Err(custom(
                "must be whsec_ followed by base64 (at least 16 characters)",
            ));
        }
        Secret::parse(&text).map(SecretText).map_err(custom)
    }
}

fn secrets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Secret>, D::Error> {
    let secrets = Vec::<SecretText>::deserialize(d)?;
    if secrets.is_empty() {
        return Err(custom("needs at least one whsec_ secret"));
    }
    Ok(secrets.into_iter().map(|s| s.0).collect())
}

fn event_types<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let events = Vec::<String>::deserialize(d)?;
    if let Some(bad) = events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
        return Err(custom(format!("unknown event type {bad:?}")));
    }
    Ok(events)
}

impl Config {
    /// Read `path` (TOML) and the environment's overrides, then validate.
    /// Problems, a TOML syntax error included, name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            problems: vec![problem(FILE, format!("cannot read: {e}"))],
        })?;
        Config::parse(&text, std::env::vars()).map_err(|mut e| {
            e.file = Some(path.to_path_buf());
            e
        })
    }

    /// Parse TOML text with `SMSGATE_<SECTION>__<KEY>` overrides from `env`.
    pub fn from_toml(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Config::parse(text, env)
    }

    fn parse(
        text: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml));
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("SMSGATE_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let key = format!(
                "{}.{}",
                section.to_ascii_lowercase(),
                key.to_ascii_lowercase()
            );
            builder = builder
                .set_override(key.as_str(), value)
                .map_err(|e| ConfigError::one(&name, e.to_string()))?;
        }
        // A TOML syntax error: its message has the line and column.
        let root: config::Value = builder
            .build()
            .and_then(|raw| raw.try_deserialize())
            .map_err(|e| ConfigError::one(FILE, e.to_string()))?;
        let mut problems = Vec::new();
        let config = deserialize_all::<Config>(root, &mut problems);
        // Found in the table's (hash) order: reported in the keys' order.
        problems.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(config) = &config {
            config.check(&mut problems);
        }
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError {
                file: None,
                problems,
            }),
        }
    }

    /// Every check that needs more than a type (a config built or changed in
    /// code, e.g. the demo's, goes through here too).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        self.check(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                file: None,
                problems,
            })
        }
    }

    fn check(&self, problems: &mut Vec<Problem>) {
        // Rules are typed at deserialization; what a type cannot say (an
        // empty `when`, two rules of one name) is checked where the rules
        // are built. A value already reported as bad was taken out: its
        // rule is not reported again as empty.
        if let Err(rules) = crate::conversation::rules::RuleSet::from_config(
            &self.conversation.rule,
            self.conversation.default_rules,
        ) {
            for (key, message) in rules {
                let inner = format!("{key}.");
                if !problems.iter().any(|p| p.key.starts_with(&inner)) {
                    problems.push(problem(key, message));
                }
            }
        }
        let mut report = |key: String, message: String| problems.push(problem(key, message));
        if let Some(cluster) = &self.cluster {
            for (key, message) in cluster.problems() {
                report(key, message);
            }
        }
        for (i, t) in self.api.tokens.iter().enumerate() {
            let key = format!("api.tokens[{i}]");
            if t.name.trim().is_empty() {
                report(format!("{key}.name"), "must not be empty".into());
            }
            if t.scopes.is_empty() {
                report(
                    format!("{key}.scopes"),
                    "needs at least one of send, read, admin".into(),
                );
            }
        }
        if self.api.max_connections == Some(0) {
            report(
                "api.max_connections".into(),
                "at least 1 (omit it for a limit below the open files limit)".into(),
            );
        }
        if self.api.header_timeout.is_zero() {
            report("api.header_timeout".into(), "at least 1s, e.g. 10s".into());
        }
        if self.store.cache_mb == 0 {
            report("store.cache_mb".into(), "must be at least 1".into());
        }
        if self.store.retention_days == Some(0) {
            report(
                "store.retention_days".into(),
                "at least 1 (omit it to keep bodies)".into(),
            );
        }
        let mut ids = std::collections::HashSet::new();
        let mut ports: Vec<(usize, PathBuf)> = Vec::new();
        let auto = self
            .modem
            .iter()
            .filter(|m| m.port == discovery::AUTO)
            .count();
        let mut imeis = std::collections::HashSet::new();
        for (i, m) in self.modem.iter().enumerate() {
            let key = format!("modem[{i}]");
            if !valid_id(&m.id) {
                report(
                    format!("{key}.id"),
                    format!("{:?}: use 1-64 letters, digits, - or _", m.id),
                );
            } else if !ids.insert(m.id.as_str()) {
                report(format!("{key}.id"), format!("{:?} is used twice", m.id));
            }
            if m.port.trim().is_empty() {
                report(format!("{key}.port"), "must not be empty".into());
            } else if m.port != discovery::AUTO {
                // One port, one modem: two actors on one port fight over
                // every answer. A by-id link and its tty are the same port.
                let port =
                    std::fs::canonicalize(&m.port).unwrap_or_else(|_| PathBuf::from(&m.port));
                match ports.iter().find(|(_, p)| *p == port) {
                    Some((j, _)) => report(
                        format!("{key}.port"),
                        format!("{} is also modem[{j}]'s port: one modem per port", m.port),
                    ),
                    None => ports.push((i, port)),
                }
            }
            const BAUDS: [u32; 8] = [
                9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
            ];
            if !BAUDS.contains(&m.baud) {
                report(
                    format!("{key}.baud"),
                    format!("{} is not a standard speed ({BAUDS:?})", m.baud),
                );
            }
            if let Some(pin) = &m.pin {
                if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                    report(format!("{key}.pin"), "a SIM PIN is 4 to 8 digits".into());
                }
            }
            if let Some(s) = &m.storage {
                if !matches!(s.to_ascii_uppercase().as_str(), "ME" | "SM" | "MT") {
                    report(format!("{key}.storage"), format!("{s:?}: use ME, SM or MT"));
                }
            }
            if let Some(n) = &m.own_number {
                if let Err(e) = crate::pdu::Address::parse_number(n) {
                    report(format!("{key}.own_number"), e.to_string());
                }
            }
            let limits = [
                ("sends_per_minute", m.sends_per_minute),
                ("daily_limit", m.daily_limit),
                ("rest_after_failures", m.rest_after_failures),
            ];
            for (name, value) in limits {
                if let Some(Err(e)) = value.map(|v| crate::modem::overrides::check_limit(name, v)) {
                    report(format!("{key}.{name}"), e);
                }
            }
            // `port = "auto"`: udev's /dev/smsgate/*-at links, bound by IMEI
            // (src/modem/discovery.rs).
            let key = format!("{key}.imei");
            match &m.imei {
                Some(imei) if !discovery::is_imei(imei) => {
                    report(key, "an IMEI is 14 to 16 digits".into());
                }
                Some(imei) if !imeis.insert(imei.as_str()) => {
                    report(key, format!("{imei} is used twice"));
                }
                None if auto > 1 && m.port == discovery::AUTO => {
                    report(
                        key,
                        "several modems have port = \"auto\": each needs its imei".into(),
                    );
                }
                _ => {}
            }
        }
        let c = &self.sms.default_country;
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            report(
                "sms.default_country".into(),
                format!("{c:?}: an ISO 3166 alpha-2 code such as US or DE"),
            );
        } else if crate::phone::calling_code(c).is_none() {
            report(
                "sms.default_country".into(),
                format!("{c:?} is not in smsgate's table of calling codes; write numbers in +E.164 and pick a listed country"),
            );
        }
        if !(1..=255).contains(&self.sms.max_parts) {
            report("sms.max_parts".into(), "1 to 255".into());
        }
        crate::api::compat::check(&self.compat, &mut report);
        crate::web::check(&self.web, &mut report);
        let mut team_ids = std::collections::HashSet::new();
        for (i, t) in self.conversation.team.iter().enumerate() {
            let key = format!("conversation.team[{i}]");
            if !valid_id(&t.id) {
                report(
                    format!("{key}.id"),
                    format!("{:?}: use 1-64 letters, digits, - or _", t.id),
                );
            } else if !team_ids.insert(t.id.as_str()) {
                report(format!("{key}.id"), format!("{:?} is used twice", t.id));
            }
            if t.response_standard.is_zero() {
                report(
                    format!("{key}.response_standard"),
                    "at least 1s, e.g. 10m".into(),
                );
            }
        }
        for (key, message) in crate::conversation::rules::unknown_routes(
            &self.conversation.rule,
            &self.conversation.team,
        ) {
            report(key, message);
        }
        let currency = &self.conversation.currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            report(
                "conversation.currency".into(),
                format!("{currency:?}: an ISO 4217 code such as USD"),
            );
        }
        let mut hook_ids = std::collections::HashSet::new();
        for (i, w) in self.webhook.iter().enumerate() {
            let key = format!("webhook[{i}].id");
            if !valid_id(&w.id) {
                report(key, format!("{:?}: use 1-64 letters, digits, - or _", w.id));
            } else if crate::api::compat::callbacks::ENDPOINT_IDS.contains(&w.id.as_str()) {
                report(
                    key,
                    format!("{:?} is reserved for the compat APIs' callbacks", w.id),
                );
            } else if !hook_ids.insert(w.id.as_str()) {
                report(key, format!("{:?} is used twice", w.id));
            }
        }
    }

    /// `[compat]` as the compat APIs take it: with Twilio's `price` of each
    /// modem from its `cost_per_part` in `[conversation] currency` (the one
    /// price the metrics use too), rounded to 9 decimals.
    pub fn compat_settings(&self) -> crate::api::compat::CompatConfig {
        let mut compat = self.compat.clone();
        compat.price = self
            .modem
            .iter()
            .filter_map(|m| {
                let text = format!("{:.9}", m.cost_per_part?);
                let text = text.trim_end_matches('0').trim_end_matches('.');
                Some(crate::api::compat::Price {
                    modem: m.id.clone(),
                    per_part: crate::api::compat::Decimal::parse(text)?,
                    unit: self.conversation.currency.clone(),
                })
            })
            .collect();
        compat
    }

    /// `[[modem]] cost_per_part` by modem id, for the modems that have one:
    /// a sent message's cost is its parts times its modem's price.
    pub fn cost_per_part(&self) -> std::collections::HashMap<String, f64> {
        self.modem
            .iter()
            .filter_map(|m| Some((m.id.clone(), m.cost_per_part?)))
            .collect()
    }

    /// Validity in seconds, as a PDU and a message carry it (None: "none").
    /// The SMS settings every send path composes with.
    pub fn sms_policy(&self) -> SmsPolicy {
        SmsPolicy {
            default_country: self.sms.default_country.clone(),
            max_parts: self.sms.max_parts,
            status_reports: self.sms.status_reports,
            validity: self.validity_seconds(),
        }
    }

    pub fn validity_seconds(&self) -> Option<u32> {
        self.sms
            .validity
            .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
    }

    /// What works but is probably a mistake: `check-config` prints these and
    /// `run` logs them. `env_token`: `SMSGATE_API_TOKEN` is set.
    /// The configured team ids, for messages.
    fn team_list(&self) -> String {
        let ids: Vec<&str> = self
            .conversation
            .team
            .iter()
            .map(|t| t.id.as_str())
            .collect();
        ids.join(", ")
    }

    pub fn warnings(&self, env_token: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.api.tokens.is_empty() && !env_token {
            out.push(
                "no API token: [[api.tokens]] is empty and SMSGATE_API_TOKEN is unset, so every /v1 request will be refused".into(),
            );
        }
        // The shipped flows (and the default rules) route to these teams by
        // id: an appointment's unclear answer to scheduling, a qualified
        // lead to sales, a low rating to support.
        let conversation = &self.conversation;
        if !conversation.team.is_empty() {
            use crate::conversation::flows::{SALES, SCHEDULING, SUPPORT};
            let shipped = [SUPPORT, SALES, SCHEDULING];
            let missing: Vec<&str> = shipped
                .iter()
                .copied()
                .filter(|id| !conversation.team.iter().any(|t| t.id == *id))
                .collect();
            if !missing.is_empty() {
                out.push(format!(
                    "[[conversation.team]] has no {}: the shipped rules and flows route threads there, and they get no SLA clock (known: {})",
                    missing.join(", "),
                    self.team_list()
                ));
            }
        }
        if !self.api.bind.ip().is_loopback() {
            out.push(format!(
                "api.bind {} listens beyond loopback: anyone who reaches it can try tokens; keep it on a trusted LAN",
                self.api.bind
            ));
        }
        out
    }
}

/// Tokens in the file hold digests and webhook secrets are secrets: a file
/// others can read gives them away.
pub fn file_warnings(path: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o004 != 0 => vec![format!(
            "{} is readable by every user (mode {:o}): it holds token digests and webhook secrets; chmod o-r it",
            path.display(),
            meta.permissions().mode() & 0o777
        )],
        _ => Vec::new(),
    }
}

/// Built from the config's `[consent]`, `[quiet_hours]` and `[rate_limits]`.
/// Here rather than in `policy`, so the policy module does not know about
/// config files.
impl Policy {
    pub fn from_config(config: &Config) -> Policy {
        Policy::new(&config.consent, &config.quiet_hours, &config.rate_limits)
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A list of rules from outside the file (`PUT /v1/rules`, the rules
/// page), as a table `{ rule = [...] }`: read and checked exactly as
/// `[[conversation.rule]]` is at load (every problem at once, the checks
/// beyond types of `Config::check`, the routes against `conversation`'s
/// teams), and compiled with its `default_rules`. Problems are keyed
/// `rule[N]...`, in the list's numbering.
pub fn check_rules(
    root: config::Value,
    conversation: &crate::conversation::settings::ConversationConfig,
) -> Result<
    (
        Vec<crate::conversation::rules::RuleConfig>,
        crate::conversation::rules::RuleSet,
    ),
    Vec<Problem>,
> {
    use crate::conversation::rules::{unknown_routes, RuleConfig, RuleSet};
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RuleList {
        #[serde(default)]
        rule: Vec<RuleConfig>,
    }
    let mut problems = Vec::new();
    let list = deserialize_all::<RuleList>(root, &mut problems);
    let Some(list) = list else {
        return Err(problems);
    };
    let ours = |key: String| key.replacen("conversation.rule[", "rule[", 1);
    let built = RuleSet::from_config(&list.rule, conversation.default_rules);
    if let Err(found) = &built {
        for (key, message) in found {
            let key = ours(key.clone());
            let inner = format!("{key}.");
            // As in `Config::check`: a value already reported as bad was
            // taken out; its rule is not reported again as empty.
            if !problems.iter().any(|p| p.key.starts_with(&inner)) {
                problems.push(problem(key, message.clone()));
            }
        }
    }
    for (key, message) in unknown_routes(&list.rule, &conversation.team) {
        problems.push(problem(ours(key), message));
    }
    // By rule, in the list's order.
    let index = |key: &str| -> usize {
        key.strip_prefix("rule[")
            .and_then(|rest| rest.split(']').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    problems.sort_by(|a, b| (index(&a.key), &a.key).cmp(&(index(&b.key), &b.key)));
    match built {
        Ok(set) if problems.is_empty() => Ok((list.rule, set)),
        _ => Err(problems),
    }
}

/// TOML text holding `[[rule]]` tables (the rules page's form), as the
/// value [`check_rules`] reads; a syntax error is one problem with its line.
pub fn rules_toml(text: &str) -> Result<config::Value, Vec<Problem>> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|raw| raw.try_deserialize())
        .map_err(|e| vec![problem("rules", e.to_string())])
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn key_of(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Deserialize `root`, collecting every problem rather than the first: on
/// each error, note it with its key path, take the offending value out (an
/// unknown key, a bad value, or the table that lacks a required key) and try
/// again, so defaults fill in and the next problem shows. The value is
/// returned (for the checks beyond types to run on) unless an array entry had
/// to be taken out: those checks would then number later entries wrongly.
fn deserialize_all<T: DeserializeOwned>(
    mut root: config::Value,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    // (array path, original index) of each table taken out of an array, so
    // later problems in the same array keep the file's numbering.
    let mut removed: Vec<(Vec<Step>, usize)> = Vec::new();
    // Each round removes one value: bounded by the file's size.
    for _ in 0..1000 {
        let error = match serde_path_to_error::deserialize::<_, T>(root.clone()) {
            Ok(value) => return removed.is_empty().then_some(value),
            Err(e) => e,
        };
        let path: Vec<Step> = error
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                _ => None,
            })
            .collect();
        let mut message = error.into_inner().to_string();
        // The key is given separately.
        if let Some(at) = message.find(" for key `") {
            message.truncate(at);
        }
        let quoted = |prefix: &str| -> Option<String> {
            let rest = message.strip_prefix(prefix)?;
            Some(rest[..rest.find('`')?].to_string())
        };
        let original = original_path(&path, &removed);
        let (key, target) = if let Some(field) = quoted("unknown field `") {
            // The path may or may not end at the unknown key already.
            let field = Step::Key(field);
            let mut target = path.clone();
            let mut key = original.clone();
            if target.last() != Some(&field) {
                target.push(field.clone());
                key.push(field);
            }
            (key, target)
        } else if let Some(field) = quoted("missing field `").or_else(|| {
            // The config crate's wording: `missing configuration field "modem[0]port"`.
            let rest = message.strip_prefix("missing configuration field \"")?;
            let full = &rest[..rest.find('"')?];
            Some(full[full.rfind([']', '.']).map_or(0, |i| i + 1)..].to_string())
        }) {
            let mut key = original.clone();
            key.push(Step::Key(field));
            (key, path.clone())
        } else {
            (original.clone(), path.clone())
        };
        let key = if key.is_empty() {
            FILE.to_string()
        } else {
            key_of(&key)
        };
        // A required value already reported as bad, and taken out, is not
        // reported again as missing.
        if !problems.iter().any(|p| p.key == key) {
            problems.push(problem(key, message));
        }
        if let Some(Step::Index(i)) = target.last() {
            let parent = original_path(&target[..target.len() - 1], &removed);
            let index = original_path(&target, &removed)
                .last()
                .and_then(|s| match s {
                    Step::Index(o) => Some(*o),
                    Step::Key(_) => None,
                })
                .unwrap_or(*i);
            if !remove(&mut root, &target) {
                return None;
            }
            removed.push((parent, index));
        } else if !remove(&mut root, &target) {
            return None;
        }
        if problems.len() >= 100 {
            return None;
        }
    }
    None
}

/// `path` in the file's numbering, given the array entries taken out.
fn original_path(path: &[Step], removed: &[(Vec<Step>, usize)]) -> Vec<Step> {
    let mut out = Vec::new();
    for step in path {
        match step {
            Step::Index(i) => {
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|(array, _)| *array == out)
                    .map(|(_, r)| *r)
                    .collect();
                gone.sort_unstable();
                let mut index = *i;
                for r in gone {
                    if r <= index {
                        index += 1;
                    }
                }
                out.push(Step::Index(index));
            }
            key => out.push(key.clone()),
        }
    }
    out
}

/// Take the value at `path` out of `root` (false: nothing there to take).
fn remove(root: &mut config::Value, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = root;
    for step in parents {
        let next = match (step, &mut node.kind) {
            (Step::Key(k), config::ValueKind::Table(t)) => t.get_mut(k),
            (Step::Index(i), config::ValueKind::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match (last, &mut node.kind) {
        (Step::Key(k), config::ValueKind::Table(t)) => t.remove(k).is_some(),
        (Step::Index(i), config::ValueKind::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Scope;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, std::iter::empty())
    }

    #[test]
    fn defaults_and_a_full_file() {
        let c = load("").unwrap();
        assert_eq!(c.api.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.store.cache_mb, 32);
        assert_eq!(c.store.archive_after, Duration::from_secs(600));
        assert_eq!(c.sms.reassembly_timeout, Duration::from_secs(600));
        assert_eq!(c.api.header_timeout, Duration::from_secs(10));
        assert_eq!(c.validity_seconds(), Some(86_400));
        let c = load(
            r#"
            [api]
            bind = "0.0.0.0:9000"
            [[api.tokens]]
            name = "crm"
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            scopes = ["send", "read"]
            [store]
            path = "/tmp/x"
            cache_mb = 16
            [[modem]]
            id = "sim800-1"
            port = "/dev/ttyUSB2"
            pin = "1234"
            storage = "sm"
            own_number = "+15551234567"
            sends_per_minute = 20
            daily_limit = 500
            rest_after_failures = 5
            [sms]
            default_country = "DE"
            validity = "none"
            max_parts = 5
            "#,
        )
        .unwrap();
        assert_eq!(c.modem[0].baud, 115_200);
        let settings = crate::modem::ModemSettings::from(&c.modem[0]);
        assert_eq!(
            (settings.daily_limit, settings.rest_after_failures),
            (Some(500), Some(5))
        );
        assert_eq!(c.validity_seconds(), None);
        assert_eq!(
            c.api.tokens[0],
            ApiToken::from_secret("crm", "test", vec![Scope::Send, Scope::Read])
        );
    }

    #[test]
    fn environment_overrides_sections_only() {
        let env = vec![
            (
                "SMSGATE_API__BIND".to_string(),
                "127.0.0.1:9999".to_string(),
            ),
            ("SMSGATE_STORE__CACHE_MB".to_string(), "8".to_string()),
            // Read by the daemon itself, not a config key.
            ("SMSGATE_API_TOKEN".to_string(), "secret".to_string()),
            ("HOME".to_string(), "/root".to_string()),
        ];
        let c = Config::from_toml("", env.into_iter()).unwrap();
        assert_eq!(c.api.bind.to_string(), "127.0.0.1:9999");
        assert_eq!(c.store.cache_mb, 8);
        // Typed values from the environment too.
        let env = [
            ("SMSGATE_STORE__ARCHIVE_AFTER", "30s"),
            ("SMSGATE_API__MAX_CONNECTIONS", "12"),
            ("SMSGATE_SMS__VALIDITY", "none"),
        ];
        let c =
            Config::from_toml("", env.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        assert_eq!(c.store.archive_after, Duration::from_secs(30));
        assert_eq!(c.api.max_connections, Some(12));
        assert_eq!(c.validity_seconds(), None);
        let bad = Config::from_toml(
            "",
            [("SMSGATE_API__BND".to_string(), "x".to_string())].into_iter(),
        )
        .unwrap_err();
        assert_eq!(
            bad.keys(),
            ["api.bnd"],
            "unknown keys are refused from the environment too"
        );
    }

    #[test]
    fn every_error_names_its_key() {
        let cases = [
            ("[api]\nbnd = \"x\"", "api.bnd"),
            ("[api]\nbind = \"nope\"", "api.bind"),
            ("[[api.tokens]]\nname = \"a\"\nsha256 = \"12\"\nscopes = [\"send\"]", "api.tokens[0].sha256"),
            ("[[api.tokens]]\nname = \"a\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nscopes = [\"root\"]", "api.tokens[0].scopes[0]"),
            ("[[api.tokens]]\nname = \"a\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nscopes = []", "api.tokens[0].scopes"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\n[[modem]]\nid = \"b\"\nport = \"/dev/x\"", "modem[1].port"),
            ("[[webhook]]\nid = \"crm\"\nurl = \"https://crm.example/hook\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]", "webhook[0].url"),
            ("[[webhook]]\nid = \"crm\"\nurl = \"http://crm.example/hook\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"nope\"]", "webhook[0].secrets[1]"),
            ("[[webhook]]\nid = \"crm\"\nurl = \"http://crm.example/hook\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\ntimeout = \"5m\"", "webhook[0].timeout"),
            ("[api]\nheader_timeout = \"soon\"", "api.header_timeout"),
            ("[api]\nmax_connections = 0", "api.max_connections"),
            ("[store]\ncache_mb = \"lots\"", "store.cache_mb"),
            ("[[modem]]\nid = \"a b\"\nport = \"/dev/x\"", "modem[0].id"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\n[[modem]]\nid = \"a\"\nport = \"/dev/y\"", "modem[1].id"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nbaud = 1234", "modem[0].baud"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\npin = \"12\"", "modem[0].pin"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nstorage = \"XX\"", "modem[0].storage"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nown_number = \"+1abc\"", "modem[0].own_number"),
            ("[[modem]]\nid = \"a\"", "modem[0].port"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\ndaily_limit = 0", "modem[0].daily_limit"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nrest_after_failures = 0", "modem[0].rest_after_failures"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\ndaily_limit = -5", "modem[0].daily_limit"),
            ("[[modem]]\nid = \"a\"\nport = \"auto\"\nimei = \"12ab\"", "modem[0].imei"),
            ("[[modem]]\nid = \"a\"\nport = \"auto\"\nimei = \"869012045678901\"\n[[modem]]\nid = \"b\"\nport = \"auto\"", "modem[1].imei"),
            ("[[modem]]\nid = \"a\"\nport = \"auto\"\nimei = \"869012045678901\"\n[[modem]]\nid = \"b\"\nport = \"auto\"\nimei = \"869012045678901\"", "modem[1].imei"),
            ("[sms]\ndefault_country = \"usa\"", "sms.default_country"),
            ("[sms]\ndefault_country = \"XX\"", "sms.default_country"),
            ("[sms]\nvalidity = \"1m\"", "sms.validity"),
            ("[sms]\nmax_parts = 0", "sms.max_parts"),
            ("[sms]\nreassembly_timeout = \"soon\"", "sms.reassembly_timeout"),
            ("[store]\narchive_after = \"later\"", "store.archive_after"),
            ("[sms\n", "(file)"),
            ("[consent]\nscope = \"everyone\"", "consent.scope"),
            ("[consent]\nopt_out_keywords = []", "consent.opt_out_keywords"),
            ("[quiet_hours]\nstart = \"9pm\"", "quiet_hours.start"),
            ("[quiet_hours]\ndefault_time_zone = \"Mars/Olympus\"", "quiet_hours.default_time_zone"),
            ("[rate_limits]\nburst = 3", "rate_limits.burst"),
        ];
        for (text, key) in cases {
            let e = load(text).expect_err(text);
            assert_eq!(e.keys(), [key], "{text}: {e}");
        }
    }

    #[test]
    fn every_problem_at_once() {
        // Three sections, three problems, one report.
        let e =
            load("[api]\nbind = \"nope\"\n[store]\ncache_mb = \"lots\"\n[sms]\nvalidity = \"1m\"")
                .unwrap_err();
        let mut keys = e.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["api.bind", "sms.validity", "store.cache_mb"], "{e}");
        // Several in one table, an unknown key among them.
        let e = load("[api]\nbind = \"nope\"\nbnd = 1\nheader_timeout = \"x\"").unwrap_err();
        let mut keys = e.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["api.bind", "api.bnd", "api.header_timeout"], "{e}");
        // A modem missing its port does not hide the next modem's problem,
        // and the next keeps its number in the file.
        let e = load(
            "[[modem]]\nid = \"a\"\n[[modem]]\nid = \"b\"\nport = \"/dev/x\"\nbaud = \"fast\"\n[[modem]]\nid = \"c\"\nport = \"/dev/y\"\nsends_per_minute = \"many\"",
        )
        .unwrap_err();
        let mut keys = e.keys();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "modem[0].port",
                "modem[1].baud",
                "modem[2].sends_per_minute"
            ],
            "{e}"
        );
        // Checks beyond types are collected too.
        let e =
            load("[[modem]]\nid = \"a b\"\nport = \"/dev/x\"\npin = \"12\"\n[sms]\nmax_parts = 0")
                .unwrap_err();
        assert_eq!(
            e.keys(),
            ["modem[0].id", "modem[0].pin", "sms.max_parts"],
            "{e}"
        );
        assert!(e.to_string().starts_with("config: 3 problems:"), "{e}");
    }

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let e = load("[api]\nbind = \"127.0.0.1:8080\"\n[sms\n").unwrap_err();
        assert_eq!(e.keys(), ["(file)"]);
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(e.to_string().contains("column"), "{e}");
    }

    #[test]
    fn warnings() {
        let quiet = load("[[api.tokens]]\nname = \"a\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nscopes = [\"read\"]").unwrap();
        assert!(quiet.warnings(false).is_empty());
        let open = load("[api]\nbind = \"0.0.0.0:8080\"").unwrap();
        let w = open.warnings(false);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("no API token") && w[1].contains("beyond loopback"),
            "{w:?}"
        );
        assert_eq!(open.warnings(true).len(), 1, "SMSGATE_API_TOKEN is a token");
    }

    #[test]
    fn auto_ports() {
        let one = load("[[modem]]\nid = \"a\"\nport = \"auto\"").unwrap();
        assert_eq!(one.modem[0].imei, None);
        let two = load("[[modem]]\nid = \"a\"\nport = \"auto\"\nimei = \"869012045678901\"\n[[modem]]\nid = \"b\"\nport = \"auto\"\nimei = \"869012045678902\"\n[[modem]]\nid = \"c\"\nport = \"/dev/ttyUSB0\"").unwrap();
        assert_eq!(two.modem[1].imei.as_deref(), Some("869012045678902"));
    }

    #[test]
    fn teams_and_costs() {
        let c = load(
            "[[modem]]\nid = \"a\"\nport = \"/dev/ttyUSB0\"\ncost_per_part = 0.05\n\
             [[modem]]\nid = \"b\"\nport = \"/dev/ttyUSB1\"\ncost_per_part = 1\n\
             [[modem]]\nid = \"c\"\nport = \"/dev/ttyUSB2\"\n\
             [[conversation.team]]\nid = \"support\"\nresponse_standard = \"10m\"\n\
             business_hours = \"Mon-Fri 08:00-18:00\"\ntime_zone = \"America/Chicago\"",
        )
        .unwrap();
        let costs = c.cost_per_part();
        assert_eq!(costs.len(), 2, "{costs:?}");
        assert_eq!((costs["a"], costs["b"]), (0.05, 1.0));
        assert_eq!(c.conversation.team[0].id, "support");
        assert_eq!(
            c.conversation.team[0].business_hours.zone(),
            chrono_tz::America::Chicago
        );
        for (text, key) in [
            (
                "[[modem]]\nid = \"a\"\nport = \"/dev/x\"\ncost_per_part = -0.01",
                "modem[0].cost_per_part",
            ),
            (
                "[[conversation.team]]\nid = \"s\"\nbusiness_hours = \"Mon-Fry 08:00-18:00\"",
                "conversation.team[0].business_hours",
            ),
            (
                "[[conversation.team]]\nid = \"s\"\ntime_zone = \"Chicago\"",
                "conversation.team[0].time_zone",
            ),
            (
                "[[conversation.team]]\nid = \"s\"\n[[conversation.team]]\nid = \"s\"",
                "conversation.team[1].id",
            ),
            (
                "[[conversation.team]]\nid = \"s\"\nresponse_standard = \"0s\"",
                "conversation.team[0].response_standard",
            ),
            (
                "[[conversation.team]]\nid = \"support\"\n\
                 [[conversation.rule]]\nwhen = { keywords = [\"invoice\"] }\nthen = { route = \"billing\" }",
                "conversation.rule[0].then.route",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert_eq!(e.keys(), [key], "{text}: {e}");
        }
        // Teams free-form while none is configured.
        load("[[conversation.rule]]\nwhen = { keywords = [\"invoice\"] }\nthen = { route = \"billing\" }")
            .unwrap();
    }

    #[test]
    fn teams_the_shipped_flows_route_to_are_warned_about_when_missing() {
        let token = "[[api.tokens]]\nname = \"a\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nscopes = [\"read\"]\n";
        assert!(
            load(token).unwrap().warnings(false).is_empty(),
            "no teams: free-form"
        );
        let some = load(&format!("{token}[[conversation.team]]\nid = \"support\"")).unwrap();
        let w = some.warnings(false);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("no sales, scheduling") && w[0].contains("known: support"),
            "{w:?}"
        );
        let all = load(&format!(
            "{token}[[conversation.team]]\nid = \"support\"\n[[conversation.team]]\nid = \"sales\"\n[[conversation.team]]\nid = \"scheduling\""
        ))
        .unwrap();
        assert!(all.warnings(false).is_empty());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Lines a config file is made of, right and wrong, in any order.
    fn line() -> impl Strategy<Value = String> {
        let header = prop::sample::select(vec![
            "[api]",
            "[store]",
            "[sms]",
            "[consent]",
            "[quiet_hours]",
            "[rate_limits]",
            "[discovery]",
            "[[modem]]",
            "[[webhook]]",
            "[[api.tokens]]",
            "[nope]",
        ])
        .prop_map(str::to_string);
        let key = prop::sample::select(vec![
            "bind",
            "header_timeout",
            "max_connections",
            "cache_mb",
            "archive_after",
            "validity",
            "max_parts",
            "id",
            "port",
            "baud",
            "pin",
            "url",
            "secrets",
            "name",
            "sha256",
            "scopes",
            "start",
            "default_time_zone",
            "scope",
            "defer",
            "events",
            "timeout",
            "bogus",
        ]);
        let value = prop::sample::select(vec![
            "\"127.0.0.1:80\"",
            "\"10m\"",
            "\"x\"",
            "0",
            "12",
            "true",
            "[]",
            "[\"send\"]",
            "[\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]",
            "\"http://h/\"",
            "\"21:00\"",
            "\"/dev/ttyUSB0\"",
            "\"none\"",
            "\"marketing\"",
        ]);
        prop_oneof![header, (key, value).prop_map(|(k, v)| format!("{k} = {v}"))]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any text: a config, or problems each naming a key; never a panic.
        #[test]
        fn a_config_or_named_problems(lines in prop::collection::vec(line(), 0..16), noise in "\\PC{0,40}") {
            for text in [lines.join("\n"), format!("{}\n{noise}", lines.join("\n"))] {
                if let Err(e) = Config::from_toml(&text, std::iter::empty()) {
                    prop_assert!(!e.problems.is_empty());
                    for p in &e.problems {
                        prop_assert!(!p.key.is_empty() && !p.message.is_empty(), "{text}: {e}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod shipped_files {
    use super::*;

    #[test]
    fn the_documented_and_demo_files_load() {
        for file in ["config/smsgate.toml", "config/demo.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            Config::from_toml(&text, std::iter::empty()).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
}
