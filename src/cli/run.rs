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

/// Logs: to journald with structured fields (modem, message_id, event) when
/// systemd gave us a journal stream (JOURNAL_STREAM), else readable text or
/// JSON lines on stderr. `SMSGATE_LOG=debug|info|warn|error` sets the level.
/// Text has ANSI colours only when stderr is a terminal (and `NO_COLOR` is
/// unset): piped to a file or a collector, it is plain.
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
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
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            tracing_subscriber::fmt()
                .fmt_fields(KeyedFields)
                .with_ansi(colour)
                .with_max_level(level)
                .with_writer(std::io::stderr)
                .try_init()
        }
    };
}

/// Text log fields as `key=value`, the event's own text bare. tracing's
/// default formatter prints every field named `message` bare, so an
/// `info!(message = %id, "sent")` lost its key; the event's text is the
/// first field of its call site (tracing's macros put it there), any later
/// `message` is a field like the others. The text is written with control
/// characters escaped, as the default formatter does, so a body quoted in
/// a log line cannot drive the terminal.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyedFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for KeyedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = KeyedVisitor {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct KeyedVisitor<'w> {
    writer: tracing_subscriber::fmt::format::Writer<'w>,
    result: std::fmt::Result,
    first: bool,
}

impl tracing::field::Visit for KeyedVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if !self.first {
            self.result = self.writer.write_char(' ');
        }
        self.first = false;
        self.result = self.result.and_then(|()| {
            if field.name() == "message" && field.index() == 0 {
                let text = format!("{value:?}");
                text.chars().try_for_each(|c| {
                    if c.is_control() {
                        write!(self.writer, "{}", c.escape_default())
                    } else {
                        self.writer.write_char(c)
                    }
                })
            } else {
                write!(self.writer, "{}={value:?}", field.name())
            }
        });
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::KeyedFields;

    /// Log lines captured in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text_of(log: impl FnOnce()) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(KeyedFields)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_field_named_message_keeps_its_key() {
        let text = text_of(|| {
            tracing::info!(message = "msg_1", modem = "m1", "reply accepted");
        });
        assert!(
            text.contains(" reply accepted message=\"msg_1\" modem=\"m1\""),
            "{text}"
        );
    }

    #[test]
    fn the_event_text_is_bare_and_cannot_drive_the_terminal() {
        let body = "hi\u{1b}[31mred";
        let text = text_of(|| {
            tracing::warn!(count = 2, "got {body}");
            tracing::info!("plain");
        });
        assert!(text.contains(" got hi\\u{1b}[31mred count=2\n"), "{text}");
        assert!(text.contains(" plain\n"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }
}
