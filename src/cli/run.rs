//! `smsgate run`, `smsgate check-config` and `smsgate demo`.

use std::path::PathBuf;

use clap::Args;

use super::UsageError;
use crate::api::{ApiToken, Scope};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, default_value = "/etc/smsgate/smsgate.toml")]
    config: PathBuf,
    /// Log format on stderr (under systemd, logs go to the journal with
    /// structured fields whatever this says).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api: String,
    /// Where the simulator's control API listens.
    #[arg(long, default_value = crate::demo::CONTROL_ADDR)]
    control: std::net::SocketAddr,
}

/// Logs: to journald with structured fields (modem, message, event) when
/// systemd gave us a journal stream (JOURNAL_STREAM), else readable text or
/// JSON lines on stderr. `SMSGATE_LOG=debug|info|warn|error` sets the level.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match std::env::var("SMSGATE_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "warn" => tracing::Level::WARN,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let filter = tracing_subscriber::filter::LevelFilter::from_level(level);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .try_init();
            return;
        }
    }
    let _ = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

fn runtime() -> Result<tokio::runtime::Runtime, UsageError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| UsageError(format!("cannot start the runtime: {e}")))
}

/// Validate the file: every problem at once (exit 2), else warnings and OK.
pub fn check_config(args: RunArgs) -> Result<(), UsageError> {
    let config = Config::load(&args.config)?;
    for warning in warnings(&args.config, &config) {
        eprintln!("smsgate: warning: {warning}");
    }
    println!(
        "{}: OK ({} modem(s), API on {}, store at {})",
        args.config.display(),
        config.modem.len(),
        config.api.bind,
        config.store.path.display()
    );
    Ok(())
}

/// The admin token `SMSGATE_API_TOKEN` gives, if set.
fn env_token() -> Option<ApiToken> {
    let secret = std::env::var("SMSGATE_API_TOKEN").ok()?;
    (!secret.is_empty())
        .then(|| ApiToken::from_secret("SMSGATE_API_TOKEN", &secret, vec![Scope::Admin]))
}

fn warnings(path: &std::path::Path, config: &Config) -> Vec<String> {
    let mut out = crate::config::file_warnings(path);
    out.extend(config.warnings(env_token().is_some()));
    out
}

pub fn run(args: RunArgs) -> Result<(), UsageError> {
    init_logging(args.log_format);
    let config = Config::load(&args.config)?;
    for warning in warnings(&args.config, &config) {
        tracing::warn!("{warning}");
    }
    let extra: Vec<ApiToken> = env_token().into_iter().collect();
    runtime()?
        .block_on(crate::daemon::run(
            config,
            extra,
            crate::daemon::signal(),
            |_| {},
        ))
        .map_err(|e| UsageError(e.to_string()))
}

pub fn demo(args: DemoArgs) -> Result<(), UsageError> {
    init_logging(LogFormat::Text);
    runtime()?
        .block_on(crate::demo::run(
            Some(args.api),
            Some(args.control),
            crate::daemon::signal(),
            |_, banner| println!("{banner}"),
        ))
        .map_err(|e| UsageError(e.to_string()))
}
