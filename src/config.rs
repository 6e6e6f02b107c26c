//! Typed settings: a TOML file plus `SMSGATE_<SECTION>__<KEY>` environment
//! overrides (the `config` crate), validated once at start so a mistake is
//! reported with its key before anything runs. Unknown keys are refused.
//! `[[modem]]` and `[[webhook]]` are file-only; `SMSGATE_API_TOKEN` (one admin
//! token) is read by the daemon directly. config/smsgate.toml documents every
//! key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("config: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn error(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
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
            dir: PathBuf::from(crate::modem::discovery::DEFAULT_DIR),
        }
    }
}

/// `[consent]`: keywords, replies and who may be texted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsentConfig {
    /// The business name in HELP and confirmation replies.
    pub program_name: String,
    /// How to reach a person, for HELP replies (a phone number, an address).
    pub help_contact: String,
    /// Message frequency, for HELP replies.
    pub frequency: String,
    /// The one reply to an opt-out ({program} is replaced). No marketing.
    pub opt_out_confirmation: String,
    /// The reply to START/UNSTOP/YES.
    pub opt_in_confirmation: String,
    /// Opt-out keywords; default STOP, STOPALL, STOP ALL, UNSUBSCRIBE, CANCEL,
    /// END, QUIT, REVOKE, OPTOUT, OPT OUT, OPT-OUT, ARRET, ALTO, PARAR, ...
    pub opt_out_keywords: Option<Vec<String>>,
    /// Opt-in keywords; default START, UNSTOP, SUBSCRIBE (YES while opted out).
    pub opt_in_keywords: Option<Vec<String>>,
    /// Help keywords; default HELP, INFO, AIDE, AYUDA.
    pub help_keywords: Option<Vec<String>>,
    /// "all": an opt-out covers every gateway number (default); "number":
    /// only the number it was sent to.
    pub scope: String,
    /// Categories that may go to contacts who never opted in or out.
    pub allow_without_opt_in: Vec<String>,
}

impl Default for ConsentConfig {
    fn default() -> Self {
        ConsentConfig {
            program_name: "smsgate".into(),
            help_contact: String::new(),
            frequency: "Message frequency varies".into(),
            opt_out_confirmation:
                "{program}: you are unsubscribed and will get no more messages. Reply START to resubscribe.".into(),
            opt_in_confirmation: "{program}: you are subscribed again. Reply HELP for help, STOP to opt out.".into(),
            opt_out_keywords: None,
            opt_in_keywords: None,
            help_keywords: None,
            scope: "all".into(),
            allow_without_opt_in: vec!["transactional".into(), "conversational".into()],
        }
    }
}

/// `[quiet_hours]`: local night-time, per contact.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuietHoursConfig {
    /// Local start, "HH:MM".
    pub start: String,
    /// Local end, "HH:MM" (may be past midnight).
    pub end: String,
    /// IANA zone for contacts without one.
    pub default_time_zone: String,
    /// Use the country's zone for numbers of single-zone countries.
    pub infer_from_country: bool,
    /// Categories held back during quiet hours (marketing always is).
    pub defer: Vec<String>,
}

impl Default for QuietHoursConfig {
    fn default() -> Self {
        QuietHoursConfig {
            start: "21:00".into(),
            end: "08:00".into(),
            default_time_zone: "America/New_York".into(),
            infer_from_country: true,
            defer: vec!["marketing".into()],
        }
    }
}

/// `[rate_limits]`: per contact (carriers filter bursts).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Marketing messages per contact per 24 hours.
    pub marketing_per_day: u32,
    /// Messages of any kind per contact per hour.
    pub per_contact_per_hour: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            marketing_per_day: 3,
            per_contact_per_hour: 10,
        }
    }
}

/// The event types a webhook can ask for.
pub const EVENT_TYPES: [&str; 9] = [
    "message.received",
    "message.sent",
    "message.delivered",
    "message.failed",
    "message.unknown",
    "message.expired",
    "modem.status",
    "consent.changed",
    "*",
];

/// `[[webhook]]`: one receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable name used in the API and logs.
    pub id: String,
    /// `http://host:port/path` of the receiver.
    pub url: String,
    /// Signing secrets, `whsec_` + base64 (Standard Webhooks). Every secret
    /// signs each delivery, so a new one can be added before the old is removed.
    pub secrets: Vec<String>,
    /// Event types to send; empty or `["*"]`: all.
    #[serde(default)]
    pub events: Vec<String>,
    /// How long to wait for the receiver's answer.
    #[serde(default = "default_webhook_timeout")]
    pub timeout: String,
}

fn default_webhook_timeout() -> String {
    "10s".into()
}

/// `[api]`: the local HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on; keep it on loopback or a trusted LAN.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Bearer tokens: only the SHA-256 of each secret is stored.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

fn default_bind() -> String {
    "127.0.0.1:8080".into()
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            bind: default_bind(),
            tokens: Vec::new(),
        }
    }
}

/// `[[api.tokens]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it (logged, never the secret).
    pub name: String,
    /// Hex SHA-256 of the secret (`printf %s SECRET | sha256sum`).
    pub sha256: String,
    /// Any of "send", "read", "admin".
    pub scopes: Vec<String>,
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
    #[serde(default = "default_archive_after")]
    pub archive_after: String,
}

fn default_archive_after() -> String {
    "10m".into()
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
    /// Send at most this many parts a minute (carrier spam filters).
    #[serde(default)]
    pub sends_per_minute: Option<u32>,
    /// With `port = "auto"`: which discovered modem this is (`AT+CGSN`), so
    /// it keeps its id across re-plugs. Required when several are "auto".
    #[serde(default)]
    pub imei: Option<String>,
}

fn default_baud() -> u32 {
    115_200
}

/// `[sms]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// ISO 3166 alpha-2 country for numbers written without a country code.
    #[serde(default = "default_country")]
    pub default_country: String,
    /// Default validity: "none" or a duration (5m, 24h, 7d).
    #[serde(default = "default_validity")]
    pub validity: String,
    /// Ask for status reports unless a request says otherwise.
    #[serde(default = "default_true")]
    pub status_reports: bool,
    /// Refuse texts that need more parts than this.
    #[serde(default = "default_max_parts")]
    pub max_parts: usize,
    /// Deliver a multipart message incomplete when parts are missing this long.
    #[serde(default = "default_reassembly")]
    pub reassembly_timeout: String,
}

fn default_country() -> String {
    "US".into()
}
fn default_validity() -> String {
    "24h".into()
}
fn default_true() -> bool {
    true
}
fn default_max_parts() -> usize {
    10
}
fn default_reassembly() -> String {
    "10m".into()
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

/// A duration such as "90s", "5m", "24h", "7d", "2w".
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(n.checked_mul(unit)?))
}

impl Config {
    /// Read `path` (TOML) and the environment's overrides, then validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| error(path.display().to_string(), format!("cannot read: {e}")))?;
        Config::from_toml(&text, std::env::vars())
    }

    /// Parse TOML text with `SMSGATE_<SECTION>__<KEY>` overrides from `env`.
    pub fn from_toml(
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
                .map_err(|e| error(&name, e.to_string()))?;
        }
        let raw = builder
            .build()
            .map_err(|e| error("(file)", e.to_string()))?;
        let config: Config = raw.try_deserialize().map_err(|e| from_config_error(&e))?;
        config.validate()?;
        Ok(config)
    }

    /// Every check that needs more than a type.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.api.bind.parse::<SocketAddr>().map_err(|_| {
            error(
                "api.bind",
                format!("{:?} is not an address:port", self.api.bind),
            )
        })?;
        for (i, t) in self.api.tokens.iter().enumerate() {
            let key = format!("api.tokens[{i}]");
            if t.name.trim().is_empty() {
                return Err(error(format!("{key}.name"), "must not be empty"));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error(
                    format!("{key}.sha256"),
                    "must be 64 hex digits (the SHA-256 of the secret)",
                ));
            }
            if t.scopes.is_empty() {
                return Err(error(
                    format!("{key}.scopes"),
                    "needs at least one of send, read, admin",
                ));
            }
            if let Some(bad) = t
                .scopes
                .iter()
                .find(|s| !matches!(s.as_str(), "send" | "read" | "admin"))
            {
                return Err(error(
                    format!("{key}.scopes"),
                    format!("unknown scope {bad:?} (send, read, admin)"),
                ));
            }
        }
        if self.store.cache_mb == 0 {
            return Err(error("store.cache_mb", "must be at least 1"));
        }
        if self.store.retention_days == Some(0) {
            return Err(error(
                "store.retention_days",
                "at least 1 (omit it to keep bodies)",
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, m) in self.modem.iter().enumerate() {
            let key = format!("modem[{i}]");
            let valid_id = !m.id.is_empty()
                && m.id.len() <= 64
                && m.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_id {
                return Err(error(
                    format!("{key}.id"),
                    format!("{:?}: use 1-64 letters, digits, - or _", m.id),
                ));
            }
            if !ids.insert(m.id.as_str()) {
                return Err(error(
                    format!("{key}.id"),
                    format!("{:?} is used twice", m.id),
                ));
            }
            if m.port.trim().is_empty() {
                return Err(error(format!("{key}.port"), "must not be empty"));
            }
            const BAUDS: [u32; 8] = [
                9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600,
            ];
            if !BAUDS.contains(&m.baud) {
                return Err(error(
                    format!("{key}.baud"),
                    format!("{} is not a standard speed ({BAUDS:?})", m.baud),
                ));
            }
            if let Some(pin) = &m.pin {
                if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(error(format!("{key}.pin"), "a SIM PIN is 4 to 8 digits"));
                }
            }
            if let Some(s) = &m.storage {
                if !matches!(s.to_ascii_uppercase().as_str(), "ME" | "SM" | "MT") {
                    return Err(error(
                        format!("{key}.storage"),
                        format!("{s:?}: use ME, SM or MT"),
                    ));
                }
            }
            if let Some(n) = &m.own_number {
                crate::pdu::Address::parse_number(n)
                    .map_err(|e| error(format!("{key}.own_number"), e.to_string()))?;
            }
            if m.sends_per_minute == Some(0) {
                return Err(error(
                    format!("{key}.sends_per_minute"),
                    "must be at least 1 (omit it for no limit)",
                ));
            }
        }
        // `port = "auto"`: udev's /dev/smsgate/*-at links, bound by IMEI
        // (src/modem/discovery.rs).
        let auto: Vec<(usize, &ModemConfig)> = self
            .modem
            .iter()
            .enumerate()
            .filter(|(_, m)| m.port == crate::modem::discovery::AUTO)
            .collect();
        let mut imeis = std::collections::HashSet::new();
        for (i, m) in self.modem.iter().enumerate() {
            let key = format!("modem[{i}].imei");
            match &m.imei {
                Some(imei) if !crate::modem::discovery::is_imei(imei) => {
                    return Err(error(key, "an IMEI is 14 to 16 digits"));
                }
                Some(imei) if !imeis.insert(imei.as_str()) => {
                    return Err(error(key, format!("{imei} is used twice")));
                }
                None if auto.len() > 1 && m.port == crate::modem::discovery::AUTO => {
                    return Err(error(
                        key,
                        "several modems have port = \"auto\": each needs its imei",
                    ));
                }
                _ => {}
            }
        }
        let c = &self.sms.default_country;
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(error(
                "sms.default_country",
                format!("{c:?}: an ISO 3166 alpha-2 code such as US or DE"),
            ));
        }
        if crate::phone::calling_code(c).is_none() {
            return Err(error(
                "sms.default_country",
                format!("{c:?} is not in smsgate's table of calling codes; write numbers in +E.164 and pick a listed country"),
            ));
        }
        if !self.sms.validity.eq_ignore_ascii_case("none") {
            match parse_duration(&self.sms.validity) {
                Some(d)
                    if d.as_secs() >= 300 && d.as_secs() <= crate::pdu::relative_seconds(255) => {}
                _ => return Err(error("sms.validity", "\"none\" or 5m to 63w (e.g. 24h)")),
            }
        }
        if !(1..=255).contains(&self.sms.max_parts) {
            return Err(error("sms.max_parts", "1 to 255"));
        }
        if parse_duration(&self.store.archive_after).is_none() {
            return Err(error("store.archive_after", "a duration such as 10m"));
        }
        if parse_duration(&self.sms.reassembly_timeout).is_none() {
            return Err(error("sms.reassembly_timeout", "a duration such as 10m"));
        }
        if !matches!(self.consent.scope.as_str(), "all" | "number") {
            return Err(error("consent.scope", "\"all\" or \"number\""));
        }
        for c in &self.consent.allow_without_opt_in {
            if !matches!(c.as_str(), "transactional" | "conversational" | "marketing") {
                return Err(error(
                    "consent.allow_without_opt_in",
                    format!("unknown category {c:?}"),
                ));
            }
        }
        for (key, list) in [
            ("consent.opt_out_keywords", &self.consent.opt_out_keywords),
            ("consent.opt_in_keywords", &self.consent.opt_in_keywords),
            ("consent.help_keywords", &self.consent.help_keywords),
        ] {
            if list
                .as_ref()
                .is_some_and(|l| l.iter().all(|k| k.trim().is_empty()))
            {
                return Err(error(
                    key,
                    "an empty list would ignore every request; omit the key for the defaults",
                ));
            }
        }
        if crate::policy::quiet_hours::QuietHours::parse(
            &self.quiet_hours.start,
            &self.quiet_hours.end,
        )
        .is_none()
        {
            return Err(error("quiet_hours.start", "start and end are HH:MM"));
        }
        if self
            .quiet_hours
            .default_time_zone
            .parse::<chrono_tz::Tz>()
            .is_err()
        {
            return Err(error(
                "quiet_hours.default_time_zone",
                format!(
                    "{:?} is not an IANA zone (e.g. America/Chicago)",
                    self.quiet_hours.default_time_zone
                ),
            ));
        }
        for c in &self.quiet_hours.defer {
            if !matches!(c.as_str(), "transactional" | "conversational" | "marketing") {
                return Err(error(
                    "quiet_hours.defer",
                    format!("unknown category {c:?}"),
                ));
            }
        }
        let mut hook_ids = std::collections::HashSet::new();
        for (i, w) in self.webhook.iter().enumerate() {
            let key = format!("webhook[{i}]");
            let valid_id = !w.id.is_empty()
                && w.id.len() <= 64
                && w.id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_id {
                return Err(error(
                    format!("{key}.id"),
                    format!("{:?}: use 1-64 letters, digits, - or _", w.id),
                ));
            }
            if !hook_ids.insert(w.id.as_str()) {
                return Err(error(
                    format!("{key}.id"),
                    format!("{:?} is used twice", w.id),
                ));
            }
            let rest = w.url.strip_prefix("http://").ok_or_else(|| {
                error(
                    format!("{key}.url"),
                    "must start with http:// (receivers are on the LAN; put a TLS proxy in front for https)",
                )
            })?;
            let host = rest.split('/').next().unwrap_or("");
            if host.is_empty() {
                return Err(error(format!("{key}.url"), "has no host"));
            }
            if w.secrets.is_empty() {
                return Err(error(
                    format!("{key}.secrets"),
                    "needs at least one whsec_ secret",
                ));
            }
            for (j, secret) in w.secrets.iter().enumerate() {
                if !secret.starts_with("whsec_") || secret.len() < 6 + 16 {
                    return Err(error(
                        format!("{key}.secrets[{j}]"),
                        "must be whsec_ followed by base64 (at least 16 characters)",
                    ));
                }
                crate::webhook::Secret::parse(secret)
                    .map_err(|e| error(format!("{key}.secrets[{j}]"), e.to_string()))?;
            }
            if let Some(bad) = w.events.iter().find(|e| !EVENT_TYPES.contains(&e.as_str())) {
                return Err(error(
                    format!("{key}.events"),
                    format!("unknown event type {bad:?}"),
                ));
            }
            match parse_duration(&w.timeout) {
                Some(d) if d.as_secs() >= 1 && d.as_secs() <= 120 => {}
                _ => return Err(error(format!("{key}.timeout"), "1s to 120s, e.g. 10s")),
            }
        }
        Ok(())
    }

    /// Validity in seconds (None: "none").
    pub fn validity_seconds(&self) -> Option<u32> {
        parse_duration(&self.sms.validity).map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
    }
}

fn from_config_error(e: &config::ConfigError) -> ConfigError {
    if let config::ConfigError::Type { key: Some(key), .. } = e {
        return error(key.clone(), e.to_string());
    }
    let text = e.to_string();
    let quoted = |open: &str, close: char| -> Option<String> {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].to_string())
    };
    // serde: "unknown field `bnd`, expected ... for key `api`".
    if let Some(field) = text
        .contains("unknown field")
        .then(|| quoted("field `", '`'))
        .flatten()
    {
        let key = match quoted("for key `", '`') {
            Some(section) => format!("{section}.{field}"),
            None => field,
        };
        return error(key, text);
    }
    // config: "missing configuration field \"modem[0]port\"".
    if let Some(path) = quoted("missing configuration field \"", '"') {
        return error(
            path.replace("]", "].")
                .replace("].[", "][")
                .replace("]..", "]."),
            text,
        );
    }
    error("(file)", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, std::iter::empty())
    }

    #[test]
    fn defaults_and_a_full_file() {
        let c = load("").unwrap();
        assert_eq!(c.api.bind, "127.0.0.1:8080");
        assert_eq!(c.store.cache_mb, 32);
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
            [sms]
            default_country = "DE"
            validity = "none"
            max_parts = 5
            "#,
        )
        .unwrap();
        assert_eq!(c.modem[0].baud, 115_200);
        assert_eq!(c.validity_seconds(), None);
        assert_eq!(c.api.tokens[0].scopes, ["send", "read"]);
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
        assert_eq!(c.api.bind, "127.0.0.1:9999");
        assert_eq!(c.store.cache_mb, 8);
    }

    #[test]
    fn every_error_names_its_key() {
        let cases = [
            ("[api]\nbnd = \"x\"", "api.bnd"),
            ("[api]\nbind = \"nope\"", "api.bind"),
            ("[[api.tokens]]\nname = \"a\"\nsha256 = \"12\"\nscopes = [\"send\"]", "api.tokens[0].sha256"),
            ("[[api.tokens]]\nname = \"a\"\nsha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\nscopes = [\"root\"]", "api.tokens[0].scopes"),
            ("[store]\ncache_mb = \"lots\"", "store.cache_mb"),
            ("[[modem]]\nid = \"a b\"\nport = \"/dev/x\"", "modem[0].id"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\n[[modem]]\nid = \"a\"\nport = \"/dev/y\"", "modem[1].id"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nbaud = 1234", "modem[0].baud"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\npin = \"12\"", "modem[0].pin"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nstorage = \"XX\"", "modem[0].storage"),
            ("[[modem]]\nid = \"a\"\nport = \"/dev/x\"\nown_number = \"+1abc\"", "modem[0].own_number"),
            ("[[modem]]\nid = \"a\"", "modem[0].port"),
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
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn auto_ports() {
        let one = load("[[modem]]\nid = \"a\"\nport = \"auto\"").unwrap();
        assert_eq!(one.modem[0].imei, None);
        let two = load("[[modem]]\nid = \"a\"\nport = \"auto\"\nimei = \"869012045678901\"\n[[modem]]\nid = \"b\"\nport = \"auto\"\nimei = \"869012045678902\"\n[[modem]]\nid = \"c\"\nport = \"/dev/ttyUSB0\"").unwrap();
        assert_eq!(two.modem[1].imei.as_deref(), Some("869012045678902"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").map(|d| d.as_secs()), Some(90));
        assert_eq!(parse_duration("2w").map(|d| d.as_secs()), Some(1_209_600));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("99999999999999999999w"), None);
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
