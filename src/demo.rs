//! `smsgate demo`: the gateway on its embedded default, a simulated SIM800
//! modem with simulated customers who answer as people do (confirm, ask to
//! reschedule, ask a question, text STOP), the API on 127.0.0.1:8080 and the
//! simulator's control API on 127.0.0.1:8081. Data lives in a temporary
//! directory removed at exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::{ApiToken, Scope};
use crate::config::Config;
use crate::daemon::{self, DaemonError, Started};
use crate::sim::{self, HandsetScript, Personality, SimConfig, Simulator};

/// The demo's configuration, embedded so `cargo run -- demo` needs no file.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Where the simulator's control API listens.
pub const CONTROL_ADDR: &str = "127.0.0.1:8081";

/// The simulated customers: number, what they answer, after how long.
pub const CUSTOMERS: [(&str, &str, u64); 4] = [
    ("+15550100001", "C", 2),
    ("+15550100002", "Can we move it to Thursday afternoon? R", 3),
    ("+15550100003", "Do I need to bring anything with me?", 4),
    ("+15550100004", "STOP", 2),
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Daemon(#[from] DaemonError),
    #[error("demo config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("simulator: {0}")]
    Sim(#[from] sim::SimError),
    #[error("cannot start the simulator's control API on {addr}: {source}")]
    Control {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot create the demo directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// A token for the demo: `SMSGATE_API_TOKEN` when set, else a fresh random one.
pub fn demo_token() -> String {
    if let Ok(t) = std::env::var("SMSGATE_API_TOKEN") {
        if !t.is_empty() {
            return t;
        }
    }
    let mut out = String::from("demo_");
    for i in 0..2u64 {
        let h =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), i);
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The banner: token and copy-paste commands.
pub fn banner(api: SocketAddr, control: SocketAddr, token: &str, dir: &std::path::Path) -> String {
    let c = CUSTOMERS;
    format!(
        r#"smsgate demo: a simulated SIM800 modem (+15550000000) and four simulated customers
  API      http://{api}   (token below; Authorization: Bearer ...)
  control  http://{control}   (the simulator: inject SMS, see what the network received)
  data     {dir}   (removed when the demo stops)

export TOKEN={token}

# Text a customer who confirms with "C":
curl -s -X POST http://{api}/v1/messages -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{{"to": "{c0}", "body": "Hi Ana, your appointment is Tue 10:30. Reply C to confirm, R to reschedule."}}'

# Watch it go queued -> sending -> sent -> delivered (use the id printed above):
curl -s http://{api}/v1/messages/MESSAGE_ID -H "Authorization: Bearer $TOKEN"

# The customer's reply arrives in the thread a few seconds later:
curl -s http://{api}/v1/threads/%2B{c0n} -H "Authorization: Bearer $TOKEN"
curl -s http://{api}/v1/threads -H "Authorization: Bearer $TOKEN"

# Other customers: {c1} asks to reschedule, {c2} asks a question, {c3} texts STOP.
# Text from a phone of your own (the simulator's control API):
curl -s -X POST http://{control}/inject -H 'Content-Type: application/json' \
  -d '{{"from": "+15550199999", "text": "Hi, are you open on Saturday?"}}'
curl -s http://{api}/v1/modems -H "Authorization: Bearer $TOKEN"

Ctrl-C stops the demo."#,
        dir = dir.display(),
        c0 = c[0].0,
        c0n = &c[0].0[1..],
        c1 = c[1].0,
        c2 = c[2].0,
        c3 = c[3].0,
    )
}

fn demo_dir() -> Result<PathBuf, DemoError> {
    let dir = std::env::temp_dir().join(format!("smsgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| DemoError::Dir {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(dir)
}

/// Run the demo until `shutdown`; `api_bind`/`control` override the default
/// addresses (tests use ephemeral ports). `on_started` gets the banner.
pub async fn run(
    api_bind: Option<String>,
    control: Option<SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_started: impl FnOnce(&Started, String) + Send,
) -> Result<(), DemoError> {
    let dir = demo_dir()?;
    let result = run_in(&dir, api_bind, control, shutdown, on_started).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(
    dir: &std::path::Path,
    api_bind: Option<String>,
    control: Option<SocketAddr>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_started: impl FnOnce(&Started, String) + Send,
) -> Result<(), DemoError> {
    let mut config = Config::from_toml(DEMO_CONFIG, std::iter::empty())?;
    config.store.path = dir.join("db");
    let link = dir.join("modem");
    config.modem[0].port = link.display().to_string();
    if let Some(bind) = api_bind {
        config.api.bind = bind.parse().map_err(|_| crate::config::ConfigError {
            file: None,
            problems: vec![crate::config::Problem {
                key: "--api".into(),
                message: format!("{bind:?} is not an address:port"),
            }],
        })?;
    }
    let mut sim_config = SimConfig::new(Personality::Sim800);
    sim_config.link = Some(link);
    sim_config.own_number = config.modem[0].own_number.clone().unwrap_or_default();
    sim_config.status_report_delay = Duration::from_secs(1);
    sim_config.handsets = CUSTOMERS
        .iter()
        .map(|(number, reply, delay)| HandsetScript {
            number: number.to_string(),
            reply: reply.to_string(),
            delay: Duration::from_secs(*delay),
            ..Default::default()
        })
        .collect();
    let sim = Simulator::start(sim_config)?;
    let control_addr = control.unwrap_or_else(|| {
        CONTROL_ADDR
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081)))
    });
    let control = sim::control::serve(sim.clone(), control_addr)
        .await
        .map_err(|source| DemoError::Control {
            addr: control_addr.to_string(),
            source,
        })?;
    let token = demo_token();
    let tokens = vec![ApiToken::from_secret("demo", &token, vec![Scope::Admin])];
    let dir_shown = dir.to_path_buf();
    let result = daemon::run(config, tokens, shutdown, move |started| {
        on_started(started, banner(started.api, control, &token, &dir_shown));
    })
    .await;
    sim.shutdown().await;
    Ok(result?)
}
