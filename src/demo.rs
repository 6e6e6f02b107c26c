//! `smsgate demo`: the gateway on its embedded default, a simulated SIM800
//! modem with simulated customers who answer as people do (confirm, ask to
//! reschedule, ask a question, text STOP), the API and the web inbox (user
//! `demo`, a fresh password in the banner) on 127.0.0.1:8080 and the
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

/// A simulated customer: number, name, what they answer to the texts they
/// get (in turn, then nothing more), after how long.
pub struct Customer {
    pub number: &'static str,
    pub name: &'static str,
    pub answers: &'static [&'static str],
    pub delay_s: u64,
}

/// The simulated customers, each sent an appointment reminder when the demo
/// starts: one confirms, one reschedules and picks slot 2, one writes an
/// urgent complaint (a person must answer), one texts STOP.
pub const CUSTOMERS: [Customer; 4] = [
    Customer {
        number: "+15550100001",
        name: "Ana Ruiz",
        answers: &["C"],
        delay_s: 2,
    },
    Customer {
        number: "+15550100002",
        name: "Ben Okafor",
        answers: &["R", "2"],
        delay_s: 3,
    },
    Customer {
        number: "+15550100003",
        name: "Chloe Martin",
        answers: &["I was charged twice for my last visit, this is urgent, please call me asap"],
        delay_s: 4,
    },
    Customer {
        number: "+15550100004",
        name: "Dev Patel",
        answers: &["STOP"],
        delay_s: 2,
    },
];

/// The reminder the demo sends each customer, in the appointment flow.
pub const REMINDER: &str =
    "Hi {{name}}, your appointment is Tue 10:30. Reply C to confirm, R to reschedule.";

/// The appointment flow's context: the time and the slots offered on "R".
fn reminder_context() -> serde_json::Value {
    serde_json::json!({"time": "Tue 10:30", "slots": ["Wed 09:00", "Thu 14:00", "Fri 11:00"]})
}

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

/// The web inbox's demo user (an admin, so every page can be seen).
pub const DEMO_USER: &str = "demo";

/// A fresh password for the demo user: 16 random hex digits.
pub fn demo_password() -> String {
    crate::store::users::random_hex(8)
}

/// The banner: the inbox's address and sign-in, the token and copy-paste commands.
pub fn banner(
    api: SocketAddr,
    control: SocketAddr,
    token: &str,
    password: &str,
    dir: &std::path::Path,
) -> String {
    let c = &CUSTOMERS;
    format!(
        r#"smsgate demo: a simulated SIM800 modem (+15550000000) and four simulated customers
  Inbox    http://{api}/inbox   (sign in as {user} with password {password})
  API      http://{api}   (token below; Authorization: Bearer ...)
  control  http://{control}   (the simulator: inject SMS, see what the network received)
  data     {dir}   (removed when the demo stops)

Each customer gets an appointment reminder now (flow "appointment"): {n0} confirms
with C, {n1} answers R and then picks slot 2, {n2} writes an urgent complaint
(for a person, not for automation), {n3} texts STOP. Give them ten seconds,
or watch them arrive in the inbox (open it in a browser and sign in).

export TOKEN={token}

# The inbox: the threads waiting on a person, urgent first:
curl -s http://{api}/v1/inbox -H "Authorization: Bearer $TOKEN"

# A thread's timeline (messages, outcomes, state changes, oldest first):
curl -s http://{api}/v1/threads/%2B{c1n} -H "Authorization: Bearer $TOKEN"

# Answer the urgent one as a person, then close it:
curl -s -X POST http://{api}/v1/threads/%2B{c2n}/reply -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{{"body": "Sorry about that, Chloe. I have refunded the second charge.", "author": "sam"}}'
curl -s -X PUT http://{api}/v1/threads/%2B{c2n}/state -H "Authorization: Bearer $TOKEN" \
  -H 'Content-Type: application/json' -d '{{"state": "closed"}}'

# The five metrics (reply rate, time to first response, conversion, opt-outs, cost per outcome):
curl -s http://{api}/v1/metrics/summary -H "Authorization: Bearer $TOKEN"

# Text from a phone of your own (the simulator's control API):
curl -s -X POST http://{control}/inject -H 'Content-Type: application/json' \
  -d '{{"from": "+15550199999", "text": "Hi, how much is a consultation?"}}'
curl -s http://{api}/v1/modems -H "Authorization: Bearer $TOKEN"

Ctrl-C stops the demo."#,
        dir = dir.display(),
        user = DEMO_USER,
        n0 = c[0].name,
        n1 = c[1].name,
        n2 = c[2].name,
        n3 = c[3].name,
        c1n = &c[1].number[1..],
        c2n = &c[2].number[1..],
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
        .map(|c| HandsetScript {
            number: c.number.to_string(),
            reply: c.answers.first().unwrap_or(&"").to_string(),
            then: c.answers.iter().skip(1).map(|a| a.to_string()).collect(),
            once: true,
            delay: Duration::from_secs(c.delay_s),
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
    let password = demo_password();
    let tokens = vec![ApiToken::from_secret("demo", &token, vec![Scope::Admin])];
    let dir_shown = dir.to_path_buf();
    let result = daemon::run(config, tokens, shutdown, move |started| {
        tokio::spawn(remind(started.api, token.clone(), password.clone()));
        on_started(
            started,
            banner(started.api, control, &token, &password, &dir_shown),
        );
    })
    .await;
    sim.shutdown().await;
    Ok(result?)
}

/// What the demo does at start, through the API as any app would: the web
/// inbox's demo user; then, as its booking system, the customers' names and
/// each an appointment reminder in the appointment flow. A refusal is
/// logged; the demo goes on.
async fn remind(api: SocketAddr, token: String, password: String) {
    use crate::webhook::client::{HttpClient, Outgoing, Transport};
    let client = HttpClient::new();
    let call = |method: hyper::Method, path: String, body: serde_json::Value| Outgoing {
        method,
        url: format!("http://{api}{path}"),
        content_type: "application/json",
        headers: vec![("authorization", format!("Bearer {token}"))],
        body: body.to_string().into(),
        timeout: Duration::from_secs(10),
    };
    let user = serde_json::json!({"name": DEMO_USER, "password": password, "role": "admin"});
    match client
        .post(call(hyper::Method::POST, "/v1/users".into(), user))
        .await
    {
        Ok(answer) if answer.status < 300 => {}
        Ok(answer) => tracing::warn!(
            status = answer.status,
            body = %String::from_utf8_lossy(&answer.body),
            "demo: the demo user was refused"
        ),
        Err(e) => tracing::warn!(error = %e, "demo: the demo user was not made"),
    }
    for c in &CUSTOMERS {
        let path = format!("/v1/contacts/{}", c.number.replace('+', "%2B"));
        let profile = serde_json::json!({"name": c.name, "tags": ["demo"]});
        let first_name = c.name.split(' ').next().unwrap_or(c.name).to_string();
        let Ok(body) = crate::conversation::template::render(REMINDER, |field| {
            (field == "name").then(|| first_name.clone())
        }) else {
            continue;
        };
        let reminder = serde_json::json!({
            "to": c.number,
            "body": body,
            "flow": "appointment",
            "context": reminder_context(),
        });
        for request in [
            call(hyper::Method::PUT, path, profile),
            call(hyper::Method::POST, "/v1/messages".into(), reminder),
        ] {
            match client.post(request).await {
                Ok(answer) if answer.status < 300 => {}
                Ok(answer) => tracing::warn!(
                    status = answer.status,
                    body = %String::from_utf8_lossy(&answer.body),
                    "demo: the reminder was refused"
                ),
                Err(e) => tracing::warn!(error = %e, "demo: the reminder was not sent"),
            }
        }
    }
}
