//! Wiring: open the store, recover, start the webhook workers, one actor per
//! modem, housekeeping, the campaign task and the API with the web inbox; on SIGTERM/SIGINT stop taking work, give an `AT+CMGS` in
//! flight up to 8 s, flush the store and return within 10 s.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::api::{self, ApiState, ApiToken};
use crate::config::Config;
use crate::modem::discovery::{self, AutoModem, Discovery};
use crate::modem::{self, Dispatcher, EngineSettings, ModemSettings};
use crate::policy::Policy;
use crate::store::Store;
use crate::webhook;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot open the store at {path}: {source}")]
    Store {
        path: String,
        source: crate::store::StoreError,
    },
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error("API server: {0}")]
    Serve(std::io::Error),
    #[cfg(feature = "fleet")]
    #[error("fleet: {0}")]
    Fleet(crate::fleet::nats::FleetError),
}

/// How long shutdown may take in all (the issue: exit within 10 s).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// The tokens the config names, plus any given directly (demo, `SMSGATE_API_TOKEN`).
pub fn tokens(config: &Config, extra: Vec<ApiToken>) -> Vec<ApiToken> {
    config.api.tokens.iter().cloned().chain(extra).collect()
}

/// What the daemon reports once it listens (tests and the demo use it).
#[derive(Clone)]
pub struct Started {
    pub api: SocketAddr,
    pub store: Store,
    pub dispatcher: Arc<Dispatcher>,
}

/// Run until `shutdown` resolves. `on_started` is called once the store is
/// open and the API listens.
pub async fn run(
    config: Config,
    extra_tokens: Vec<ApiToken>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_started: impl FnOnce(&Started) + Send,
) -> Result<(), DaemonError> {
    config.validate()?;
    // Everything the daemon creates (store files, history, snapshots) holds
    // message bodies and numbers: private to its user, whatever umask it got.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let store = Store::open(&config.store.path, config.store.cache_mb).map_err(|source| {
        DaemonError::Store {
            path: config.store.path.display().to_string(),
            source,
        }
    })?;
    match store.recover_in_flight().await {
        Ok(unknown) if !unknown.is_empty() => {
            tracing::warn!(
                count = unknown.len(),
                "messages in flight at the last stop are now unknown"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "recovery after restart failed"),
    }
    let dispatcher = Arc::new(Dispatcher::new(store.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let sms = Arc::new(config.sms_policy());
    // Webhooks register before the modems start, so a new endpoint's
    // starting cursor is before the modems' first modem.status events.
    let mut endpoints: Vec<webhook::Endpoint> = config.webhook.iter().map(Into::into).collect();
    // Twilio's and Kannel's callbacks ride on the same durable deliveries.
    endpoints.extend(api::compat::callbacks::endpoints(
        &config.compat,
        &store,
        &config.sms.default_country,
    ));
    // Consent: inbound STOP/START/HELP act inside the store's transaction; every
    // send passes the policy right before AT+CMGS.
    let policy = Policy::from_config(&config);
    // The rules were checked with the config (`Config::check`); a problem
    // here is one that check missed, so it stops the start the same way.
    crate::conversation::rules::RuleSet::from_config(
        &config.conversation.rule,
        config.conversation.default_rules,
    )
    .map_err(|problems| {
        DaemonError::Config(crate::config::ConfigError {
            file: None,
            problems: problems
                .into_iter()
                .map(|(key, message)| crate::config::Problem { key, message })
                .collect(),
        })
    })?;
    // The rules in effect: the file's, or the list stored through
    // `/v1/rules`, which replaces them; the API swaps it live.
    let rule_book = Arc::new(crate::conversation::rulebook::RuleBook::open(
        &store,
        &config.conversation,
    ));
    // In a fleet: consent changes go to and come from the other gateways,
    // and sends wait while the replica is older than its staleness.
    #[cfg(feature = "fleet")]
    let (policy, fleet_tasks, fleet_link) = match &config.cluster {
        Some(cluster) => {
            let fleet = crate::fleet::nats::start(
                cluster,
                store.clone(),
                policy.per_number(),
                dispatcher.clone(),
                config.modem.len(),
                crate::fleet::nats::Conversation {
                    // The other sites' events count in this gateway's
                    // conversation metrics as the engine counts its own.
                    metrics: Some(crate::fleet::work::RemoteMetrics {
                        policy: Arc::new(Policy::from_config(&config)),
                        wiring: Arc::new(crate::conversation::engine::MetricsWiring::from_config(
                            &config.conversation,
                            config.cost_per_part(),
                        )),
                    }),
                    // Rules stored through the API are shared too.
                    rules: rule_book.clone(),
                },
                stop_rx.clone(),
            )
            .await
            .map_err(DaemonError::Fleet)?;
            tracing::info!(site = %cluster.site, servers = ?cluster.nats_url, "fleet: outbound, message events and consent shared through NATS JetStream");
            let link: Arc<dyn crate::fleet::FleetLink> = fleet.link;
            (
                policy.with_freshness(fleet.freshness),
                fleet.tasks,
                Some(link),
            )
        }
        None => (policy, Vec::new(), None),
    };
    #[cfg(not(feature = "fleet"))]
    let fleet_link: Option<Arc<dyn crate::fleet::FleetLink>> = None;
    let policy = Arc::new(policy);
    store.set_reactor(policy.reactor(), policy.per_number());
    store.set_retention_days(config.store.retention_days);
    // The watchdog pings every worker; WATCHDOG=1 only when all answer.
    let watchdog = crate::notify::watchdog_interval();
    let liveness = crate::liveness::Liveness::default();
    let replies = webhook::Replies {
        store: store.clone(),
        dispatcher: dispatcher.clone(),
        sms: sms.clone(),
        policy: policy.clone(),
    };
    let webhooks = webhook::start(endpoints, &store, Some(replies), stop_rx.clone())
        .await
        .map_err(|source| DaemonError::Store {
            path: config.store.path.display().to_string(),
            source,
        })?;
    // The conversation engine reads the event log beside the webhook
    // workers (its own cursor), before the modems deliver anything.
    let conversation = tokio::spawn(
        crate::conversation::engine::Engine::new(
            store.clone(),
            policy.clone(),
            Some(dispatcher.clone()),
            sms.clone(),
        )
        .with_conversation(
            &config.conversation,
            rule_book.live(),
            config.cost_per_part(),
        )
        .run(stop_rx.clone()),
    );
    let engine = Arc::new(EngineSettings {
        gate: Some(policy.clone()),
        fleet: fleet_link.clone(),
        liveness: watchdog.map(|_| liveness.clone()),
        validity: config.validity_seconds(),
        day_zone: config.quiet_hours.default_time_zone,
        ..EngineSettings::default()
    });
    // `port = "auto"`: find the modems among the udev links before the actors
    // open ports, then follow plugs and unplugs.
    let autos: Vec<&crate::config::ModemConfig> = config
        .modem
        .iter()
        .filter(|m| m.port == discovery::AUTO)
        .collect();
    let mut discovery_task = None;
    let mut resolvers = std::collections::HashMap::new();
    if let Some(first) = autos.first() {
        // Discovery probes every link at one speed: the first auto modem's.
        let wanted = autos
            .iter()
            .map(|m| AutoModem {
                id: m.id.clone(),
                imei: m.imei.clone(),
            })
            .collect();
        let mut finder = Discovery::new(config.discovery.dir.clone(), first.baud, wanted);
        let found = finder.scan().await;
        tracing::info!(dir = %config.discovery.dir.display(), found = ?found, "modem discovery");
        for m in &autos {
            resolvers.insert(m.id.clone(), finder.resolver(&m.id));
        }
        discovery_task = Some(tokio::spawn(finder.run(stop_rx.clone())));
    }
    let mut actors = Vec::new();
    for m in &config.modem {
        let mut settings = ModemSettings::from(m);
        settings.resolver = resolvers.remove(&m.id);
        let (actor, _status) = modem::spawn_modem(
            settings,
            engine.clone(),
            store.clone(),
            dispatcher.clone(),
            stop_rx.clone(),
        );
        actors.push(actor);
    }
    let housekeeping = tokio::spawn(modem::expiry::run(
        store.clone(),
        config.sms.reassembly_timeout,
        config.store.retention_days,
        config.store.archive_after,
        stop_rx.clone(),
    ));

    // Campaigns: accept recipients in batches, resume unfinished ones, cancel;
    // in a fleet, through its work queue and fence as every API send.
    let campaigns = tokio::spawn(
        crate::conversation::campaigns::CampaignTask {
            store: store.clone(),
            policy: policy.clone(),
            sms: sms.clone(),
            wake: {
                let dispatcher = dispatcher.clone();
                Arc::new(move || dispatcher.notify())
            },
            clock: Arc::new(crate::webhook::clock::SystemClock),
            fleet: fleet_link.clone(),
            unpublished: Default::default(),
        }
        .run(stop_rx.clone()),
    );

    let state = ApiState {
        sms,
        rules: rule_book,
        fleet: fleet_link,
        extra_metrics: {
            let store = store.clone();
            Some(Arc::new(move |out: &mut String| {
                webhook::render_metrics(&store, out)
            }))
        },
        ..ApiState::new(
            store.clone(),
            dispatcher.clone(),
            policy.clone(),
            &config,
            tokens(&config, extra_tokens),
        )
    };
    // The API and the web inbox on a runtime of their own, so that a request
    // does not wait behind the modem actors for one of the async workers.
    let api_runtime = ApiRuntime::start().map_err(DaemonError::Serve)?;
    if watchdog.is_some() {
        // A wedged API runtime withholds WATCHDOG=1 as a wedged actor does.
        liveness.answer_from(&api_runtime.handle, "api", stop_rx.clone());
    }
    let listener = std::net::TcpListener::bind(config.api.bind)
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            let _in_api = api_runtime.handle.enter();
            tokio::net::TcpListener::from_std(listener)
        })
        .map_err(|source| DaemonError::Bind {
            bind: config.api.bind.to_string(),
            source,
        })?;
    let api_addr = listener.local_addr().map_err(DaemonError::Serve)?;
    on_started(&Started {
        api: api_addr,
        store: store.clone(),
        dispatcher: dispatcher.clone(),
    });
    tracing::info!(api = %api_addr, modems = config.modem.len(), "smsgate running");
    let modem_count = config.modem.len();
    crate::notify::ready(&crate::notify::summary(
        0,
        modem_count,
        store.outbox_gauge(),
    ));
    let outbox_counter = tokio::spawn(count_outbox(store.clone(), stop_rx.clone()));
    let supervisor = tokio::spawn(supervise(
        dispatcher.clone(),
        store.clone(),
        modem_count,
        watchdog,
        liveness,
        stop_rx.clone(),
    ));

    // One shutdown signal, fanned out: the API stops accepting, the actors stop
    // taking work and finish what is in flight.
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The web inbox's pages beside the API, on the same address.
    let web = crate::web::WebState::new(
        state.clone(),
        config.web.clone(),
        Arc::new(webhook::clock::SystemClock),
    );
    let app = crate::web::app(state, web);
    let server = api_runtime.handle.spawn(api::serve_app(
        listener,
        app,
        config.api.connection_limits(),
        async move {
            let _ = api_stop_rx.await;
        },
    ));
    shutdown.await;
    tracing::info!("shutting down");
    crate::notify::stopping();
    let deadline = tokio::time::Instant::now() + SHUTDOWN_DEADLINE - Duration::from_millis(500);
    let _ = stop_tx.send(true);
    let _ = api_stop_tx.send(());
    for actor in actors {
        let _ = tokio::time::timeout_at(deadline, actor).await;
    }
    let _ = tokio::time::timeout_at(deadline, housekeeping).await;
    let _ = tokio::time::timeout_at(deadline, campaigns).await;
    for worker in webhooks {
        let _ = tokio::time::timeout_at(deadline, worker).await;
    }
    let _ = tokio::time::timeout_at(deadline, conversation).await;
    #[cfg(feature = "fleet")]
    for task in fleet_tasks {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    let _ = tokio::time::timeout_at(deadline, supervisor).await;
    let _ = tokio::time::timeout_at(deadline, outbox_counter).await;
    if let Some(task) = discovery_task {
        let _ = tokio::time::timeout_at(deadline, task).await;
    }
    let _ = tokio::time::timeout_at(deadline, server).await;
    drop(api_runtime);
    if let Err(e) = store.flush_blocking() {
        tracing::error!(error = %e, "final flush failed");
    }
    Ok(())
}

/// The runtime the API server runs on: two worker threads of its own
/// beside the daemon's two, which the 64 actors of a pool keep busy. With
/// it on the same workers, a `GET /metrics` or `/v1/modems` waited behind
/// them (BENCHMARKS.md, the pool: p99 4.6-7.8 ms with 64 modems sending,
/// 2.5-3.9 ms on its own runtime). Two workers, not one: the API's accept
/// rate needs both cores when the modems are idle (`benches/api_accept.rs`:
/// one worker gave 4,163-4,962 accepts/s against 4,755-5,501 before).
/// Ends (its tasks cancelled after at most a second) when dropped.
struct ApiRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ApiRuntime {
    fn start() -> std::io::Result<ApiRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("smsgate-api")
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("smsgate-api-rt".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(ApiRuntime {
            handle,
            stop: Some(stop),
        })
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// STATUS= every few seconds, and WATCHDOG=1 while every worker answers a
/// liveness ping within half of `WatchdogSec`.
/// Count the outbox every [`crate::store::OUTBOX_GAUGE_PERIOD`] off the
/// async workers (sled counts by walking the tree: O(queue)), so that
/// `/metrics`, the Modems page and the service status read a number.
async fn count_outbox(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let s = store.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || s.count_outbox()).await {
            tracing::error!(error = %e, "counting the outbox failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(crate::store::OUTBOX_GAUGE_PERIOD) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

async fn supervise(
    dispatcher: Arc<Dispatcher>,
    store: Store,
    modems: usize,
    watchdog: Option<Duration>,
    liveness: crate::liveness::Liveness,
    mut stop: watch::Receiver<bool>,
) {
    let period = watchdog.map_or(Duration::from_secs(5), |w| {
        (w / 4).max(Duration::from_millis(100))
    });
    let mut last_status = String::new();
    loop {
        let ready = dispatcher
            .statuses()
            .iter()
            .filter(|s| s.state == crate::modem::ModemState::Ready)
            .count();
        let line = crate::notify::summary(ready, modems, store.outbox_gauge());
        if line != last_status {
            crate::notify::status(&line);
            last_status = line;
        }
        if let Some(w) = watchdog {
            match liveness.check(w / 2).await {
                Ok(()) => crate::notify::watchdog(),
                Err(late) => {
                    tracing::error!(workers = ?late, "liveness ping unanswered: withholding WATCHDOG=1")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
