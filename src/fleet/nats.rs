//! The fleet's link to NATS JetStream (feature `fleet`): the connection,
//! the consent ledger stream and bucket, the publisher of this site's
//! consent changes and the watcher that applies the other sites'.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use chrono::Utc;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{ClusterConfig, Freshness, CONSENT_BUCKET, CONSENT_STREAM, CONSENT_SUBJECTS};
use crate::store::{LedgerEntry, Store};

/// Events read per pass of the publisher.
const BATCH: usize = 256;

/// Compare-and-set attempts on one key before the pass fails (and is retried).
pub(super) const CAS_TRIES: usize = 5;

/// How long to wait before trying the broker again after an error.
pub(super) const RETRY: Duration = Duration::from_secs(1);

/// How often the watcher checks the connection (the replica's sync time
/// moves on while connected and caught up).
const TICK: Duration = Duration::from_millis(200);

/// The store's aux tree of the fleet's cursors.
const AUX: &str = "fleet";
/// The publisher's cursor: the sequence of the next event to read.
const CONSENT_CURSOR: &[u8] = b"consent_cursor";

/// Why the fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cluster.nats_url: {0}")]
    Url(String),
    #[error("cluster.credentials: {0}")]
    Credentials(String),
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// What a gateway puts in the consent bucket: the change and where it was
/// made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ConsentValue {
    site: String,
    /// The per-number scope (a gateway number), when consent is per number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    entry: LedgerEntry,
}

/// The running fleet link of one gateway.
pub struct Fleet {
    pub freshness: Arc<Freshness>,
    /// The work queue and fence, for the API and the modem actors.
    pub link: Arc<super::work::Work>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// What the conversation layer shares with the fleet.
pub struct Conversation {
    /// How the other sites' events count in this gateway's metrics (None:
    /// not counted).
    pub metrics: Option<super::work::RemoteMetrics>,
    /// The rules in effect, changed through the API here or elsewhere.
    pub rules: Arc<crate::conversation::rulebook::RuleBook>,
}

/// Connect (in the background: a broker that is down at start is retried
/// while the gateway runs) and start the publisher and the watcher.
/// `per_number`: consent is kept per gateway number (the policy's setting;
/// the same on every gateway of a fleet).
pub async fn start(
    config: &ClusterConfig,
    store: Store,
    per_number: bool,
    dispatcher: Arc<crate::modem::Dispatcher>,
    modems: usize,
    conversation: Conversation,
    stop: watch::Receiver<bool>,
) -> Result<Fleet, FleetError> {
    let Conversation { metrics, rules } = conversation;
    let freshness = Arc::new(Freshness::new(config.consent_staleness));
    store.set_fleet_threads(true);
    let client = connect(config).await?;
    let js = jetstream::new(client.clone());
    let work = Arc::new(
        super::work::Work::new(
            js.clone(),
            config.site.clone(),
            config.replicas,
            store.clone(),
            dispatcher,
            modems,
            freshness.clone(),
        )?
        .with_metrics(metrics)
        .with_gone_after(config.gone_after),
    );
    let link = Link {
        client,
        js,
        site: config.site.clone(),
        replicas: config.replicas,
        store,
        per_number,
        freshness: freshness.clone(),
    };
    let publisher = tokio::spawn(link.clone().publish(stop.clone()));
    let watcher = tokio::spawn(link.watch(stop.clone()));
    let mut tasks = vec![
        publisher,
        watcher,
        tokio::spawn(work.clone().publish_events(stop.clone())),
        tokio::spawn(work.clone().watch_sticky(stop.clone())),
        tokio::spawn(work.clone().republish_handed(stop.clone())),
        tokio::spawn(work.clone().consume_events(stop.clone())),
        tokio::spawn(work.clone().watch_sites(stop.clone())),
        tokio::spawn(work.clone().announce_campaigns(stop.clone())),
        tokio::spawn(work.clone().watch_erasures(stop.clone())),
        tokio::spawn(work.clone().watch_campaigns(stop.clone())),
        tokio::spawn(work.clone().share_rules(rules, stop.clone())),
    ];
    // A gateway without modems sends nothing: it takes nothing.
    if modems > 0 {
        tasks.push(tokio::spawn(
            work.clone().pull(config.site.clone(), stop.clone()),
        ));
        tasks.push(tokio::spawn(work.clone().pull("any".into(), stop.clone())));
        tasks.push(tokio::spawn(work.clone().hold(stop)));
    }
    Ok(Fleet {
        freshness,
        link: work,
        tasks,
    })
}

async fn connect(config: &ClusterConfig) -> Result<async_nats::Client, FleetError> {
    let mut addrs = Vec::new();
    for url in &config.nats_url {
        let addr: async_nats::ServerAddr = url
            .parse()
            .map_err(|e| FleetError::Url(format!("{url:?}: {e}")))?;
        addrs.push(addr);
    }
    let c = &config.credentials;
    // What the client says of its connection, in the log: a refused
    // sign-in (a wrong token or password) or an unreachable server is
    // said once until it changes, not at every retry.
    let last_said: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("smsgate {}", config.site))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .event_callback(move |event| {
            let last_said = last_said.clone();
            async move {
                say_connection_event(&last_said, &event);
            }
        });
    if let Some(token) = &c.token {
        options = options.token(token.clone());
    }
    if let (Some(user), Some(password)) = (&c.user, &c.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(path) = &c.nkey {
        let seed = std::fs::read_to_string(path)
            .map_err(|e| FleetError::Credentials(format!("nkey {}: {e}", path.display())))?;
        options = options.nkey(seed.trim().to_string());
    }
    if let Some(path) = &c.creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| FleetError::Credentials(format!("creds {}: {e}", path.display())))?;
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if config.nats_url.iter().any(|u| u.starts_with("tls://")) {
        options = options.require_tls(true);
    }
    async_nats::connect_with_options(addrs, options)
        .await
        .map_err(|e| FleetError::Connect(e.to_string()))
}

/// A watch of `keys` in `bucket` (`what` in errors, e.g. "the sticky
/// bucket"): each key's latest value first (what changed while this
/// gateway was away), then every change as it comes.
pub(super) async fn watch_from_start(
    bucket: &kv::Store,
    keys: &str,
    what: &str,
) -> Result<kv::Watch, String> {
    bucket
        .watch_with_history(keys)
        .await
        .map_err(|e| format!("{what}'s watch: {e}"))
}

/// The entry a watch of [`watch_from_start`] gave, or why it stopped.
pub(super) fn watched(
    change: Option<Result<kv::Entry, kv::WatcherError>>,
    what: &str,
) -> Result<kv::Entry, String> {
    match change {
        Some(Ok(entry)) => Ok(entry),
        Some(Err(e)) => Err(format!("{what}'s watch: {e}")),
        None => Err(format!("{what}'s watch ended")),
    }
}

/// Put `payload` at `key` of `bucket` (named `what` in errors) unless the
/// bucket holds a value that `newer` says is as new or newer: compare and
/// set on the revision read, so a value put meanwhile is compared in turn.
/// Whether it was put.
pub(super) async fn put_unless_newer(
    bucket: &kv::Store,
    what: &str,
    key: &str,
    payload: &[u8],
    newer: impl Fn(&[u8]) -> bool,
) -> Result<bool, String> {
    for _ in 0..CAS_TRIES {
        let current = bucket
            .entry(key)
            .await
            .map_err(|e| format!("the {what} bucket: {e}"))?;
        let written = match current {
            Some(current) if current.operation == kv::Operation::Put => {
                if newer(&current.value) {
                    return Ok(false);
                }
                bucket
                    .update(key, payload.to_vec().into(), current.revision)
                    .await
                    .is_ok()
            }
            _ => bucket.create(key, payload.to_vec().into()).await.is_ok(),
        };
        if written {
            return Ok(true);
        }
    }
    Err(format!(
        "the {what} bucket: {key} changed {CAS_TRIES} times while it was written"
    ))
}

/// Log `event` of the broker's connection, unless it repeats what was last
/// said (the client retries a failed connection every few seconds).
/// Whether it was said.
fn say_connection_event(
    last_said: &std::sync::Mutex<Option<String>>,
    event: &async_nats::Event,
) -> bool {
    use async_nats::Event;
    let text = event.to_string();
    let mut last = last_said.lock().unwrap_or_else(|e| e.into_inner());
    if last.as_deref() == Some(text.as_str()) {
        tracing::debug!(event = %text, "fleet: the broker's connection");
        return false;
    }
    match event {
        Event::Connected => tracing::info!("fleet: connected to the broker"),
        Event::Disconnected => tracing::warn!("fleet: disconnected from the broker; reconnecting"),
        Event::ClientError(e) => {
            tracing::warn!(error = %e, "fleet: cannot connect to the broker; retrying")
        }
        Event::ServerError(e) => tracing::error!(error = %e, "fleet: the broker refused"),
        _ => tracing::info!(event = %text, "fleet: the broker's connection"),
    }
    *last = Some(text);
    true
}

#[cfg(test)]
mod tests {
    use async_nats::{ClientError, Event};

    /// A refused sign-in retried every few seconds is said once, and again
    /// after the connection came and went.
    #[test]
    fn a_repeated_connection_event_is_said_once() {
        let last = std::sync::Mutex::default();
        let refused = || Event::ClientError(ClientError::Other("authorization violation".into()));
        assert!(super::say_connection_event(&last, &refused()));
        assert!(!super::say_connection_event(&last, &refused()));
        assert!(!super::say_connection_event(&last, &refused()));
        assert!(super::say_connection_event(&last, &Event::Connected));
        assert!(super::say_connection_event(&last, &Event::Disconnected));
        assert!(super::say_connection_event(&last, &refused()));
    }
}

#[derive(Clone)]
struct Link {
    client: async_nats::Client,
    js: jetstream::Context,
    site: String,
    replicas: usize,
    store: Store,
    per_number: bool,
    freshness: Arc<Freshness>,
}

/// A KV bucket, created when missing: its stream as the KV convention has
/// it (what the client's `create_key_value` derives), created directly:
/// that call first reads the account's info, which the client cannot parse
/// from a 2.9 server.
/// `max_age`: how long a key is kept after its last change (ZERO: for
/// ever); a bucket made without it by an older version gets it (a bucket
/// asked for with ZERO is left as its operator set it).
pub(super) async fn bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    history: i64,
    replicas: usize,
    max_age: Duration,
) -> Result<kv::Store, String> {
    if let Ok(bucket) = js.get_key_value(name).await {
        if max_age.is_zero() {
            return Ok(bucket);
        }
        let stream = js
            .get_stream(format!("KV_{name}"))
            .await
            .map_err(|e| format!("the bucket {name}: {e}"))?;
        let config = &stream.cached_info().config;
        if config.max_age != max_age {
            let mut config = config.clone();
            config.max_age = max_age;
            js.update_stream(config)
                .await
                .map_err(|e| format!("the bucket {name}'s max age: {e}"))?;
        }
        return Ok(bucket);
    }
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.into()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: history,
        max_bytes: -1,
        max_message_size: -1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        deny_purge: false,
        allow_direct: true,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        max_age,
        ..stream::Config::default()
    })
    .await
    .map_err(|e| format!("the bucket {name}: {e}"))?;
    js.get_key_value(name)
        .await
        .map_err(|e| format!("the bucket {name}: {e}"))
}

/// A step that failed: logged, retried after [`RETRY`].
pub(super) fn failed(what: &str, error: &dyn std::fmt::Display) {
    tracing::warn!(error = %error, "fleet: {what} failed; retrying");
}

/// Whether a fleet task runs its pass again after one that succeeded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// A pass ends when its watch or pull ends: run it again.
    UntilStopped,
    /// One pass that succeeds is the whole task.
    UntilDone,
}

/// A fleet task: `pass` (given its own receiver of `stop`) runs until the
/// daemon stops; one that fails is logged as `what` and runs again after
/// [`RETRY`].
pub(super) async fn run_task<F, Fut>(
    what: &str,
    repeat: Repeat,
    mut stop: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut(watch::Receiver<bool>) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        match pass(stop.clone()).await {
            Ok(()) if repeat == Repeat::UntilDone => return,
            Ok(()) => continue,
            Err(e) => failed(what, &e),
        }
        tokio::select! {
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// A fleet task that publishes what the store's event log holds: `pass`
/// runs at start and each time events are written, until the daemon
/// stops; one that fails is logged as `what` and runs again after
/// [`RETRY`].
pub(super) async fn publish_task<F, Fut>(
    what: &str,
    store: &Store,
    mut stop: watch::Receiver<bool>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut events = store.event_notifier();
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match pass().await {
            Ok(()) => None,
            Err(e) => {
                failed(what, &e);
                Some(RETRY)
            }
        };
        tokio::select! {
            biased;
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
            _ = events.changed(), if wait.is_none() => {}
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => {}
        }
    }
}

impl Link {
    /// The ledger stream and the consent bucket, created when missing.
    async fn consent_bucket(&self) -> Result<kv::Store, String> {
        self.js
            .get_or_create_stream(stream::Config {
                name: CONSENT_STREAM.into(),
                subjects: vec![CONSENT_SUBJECTS.into()],
                num_replicas: self.replicas,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..stream::Config::default()
            })
            .await
            .map_err(|e| format!("the ledger stream: {e}"))?;
        bucket(
            &self.js,
            CONSENT_BUCKET,
            "smsgate: each contact's consent",
            5,
            self.replicas,
            Duration::ZERO,
        )
        .await
        .map_err(|e| format!("the consent bucket: {e}"))
    }

    fn scope<'a>(&self, entry: &'a LedgerEntry) -> Option<&'a str> {
        if self.per_number {
            entry.gateway_number.as_deref()
        } else {
            None
        }
    }

    /// Publish this site's consent changes, in the order of the event log,
    /// from a durable cursor: each to the ledger stream (deduplicated by its
    /// entry id) and the bucket, both acknowledged, then the cursor moves.
    async fn publish(self, stop: watch::Receiver<bool>) {
        let bucket = tokio::sync::OnceCell::new();
        let store = self.store.clone();
        publish_task("publishing consent changes", &store, stop, || {
            let (this, bucket) = (&self, &bucket);
            async move {
                let b = bucket.get_or_try_init(|| this.consent_bucket()).await?;
                this.publish_pending(b).await
            }
        })
        .await;
    }

    async fn publish_pending(&self, bucket: &kv::Store) -> Result<(), String> {
        let aux = self.store.aux_tree(AUX).map_err(|e| e.to_string())?;
        loop {
            let from = aux
                .get(CONSENT_CURSOR)
                .map_err(|e| e.to_string())?
                .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
                .map_or(0, u64::from_be_bytes);
            let batch = self
                .store
                .events_from(from, BATCH)
                .map_err(|e| e.to_string())?;
            let Some(&(last, _)) = batch.last() else {
                return Ok(());
            };
            for (_, event) in &batch {
                if event.kind != "consent.changed" {
                    continue;
                }
                let Some(entry) = event.data.get("ledger_entry") else {
                    continue;
                };
                let entry: LedgerEntry = match serde_json::from_value(entry.clone()) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(event = %event.id, error = %e, "fleet: a consent event without a readable ledger entry; not published");
                        continue;
                    }
                };
                if entry.site.is_some() {
                    // Applied from another site: that site published it.
                    continue;
                }
                self.publish_one(bucket, entry).await?;
            }
            aux.insert(CONSENT_CURSOR, &(last + 1).to_be_bytes())
                .map_err(|e| e.to_string())?;
        }
    }

    async fn publish_one(&self, bucket: &kv::Store, mut entry: LedgerEntry) -> Result<(), String> {
        entry.site = Some(self.site.clone());
        let value = ConsentValue {
            site: self.site.clone(),
            number: self.scope(&entry).map(str::to_string),
            entry,
        };
        let payload = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}.{}", self.site, value.entry.id).as_str(),
        );
        self.js
            .publish_with_headers(
                super::ledger_subject(&self.site, &value.entry.contact, value.number.as_deref()),
                headers,
                payload.clone().into(),
            )
            .await
            .map_err(|e| format!("the ledger stream: {e}"))?
            .await
            .map_err(|e| format!("the ledger stream's acknowledgement: {e}"))?;
        let key = super::consent_key(&value.entry.contact, value.number.as_deref());
        // The bucket keeps the newest change by its time: a change made here
        // while the broker was away, published later, does not replace a
        // newer one from another site.
        let put = put_unless_newer(bucket, "consent", &key, &payload, |held| {
            serde_json::from_slice::<ConsentValue>(held)
                .is_ok_and(|held| held.entry.at >= value.entry.at)
        })
        .await?;
        if put {
            tracing::debug!(contact = %crate::phone::masked(&value.entry.contact), status = value.entry.status.as_str(), "fleet: consent change published");
        } else {
            tracing::info!(contact = %crate::phone::masked(&value.entry.contact), "fleet: a newer consent change is in the bucket; this one only goes to the ledger");
        }
        Ok(())
    }

    /// Watch the bucket: apply the other sites' changes to the store, and
    /// keep the replica's sync time while connected and caught up.
    async fn watch(self, stop: watch::Receiver<bool>) {
        let what = "watching the consent bucket";
        run_task(what, Repeat::UntilStopped, stop, |mut stop| {
            let this = &self;
            async move {
                let watched = this.watch_once(&mut stop).await;
                if watched.is_err() {
                    this.freshness.set_connected(false);
                }
                watched
            }
        })
        .await;
    }

    /// One watch, until the stream of changes ends or fails (Ok on stop).
    async fn watch_once(&self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        let bucket = self.consent_bucket().await?;
        // Caught up once the change that was last when the watch began has
        // been seen (at once for an empty bucket).
        let mut stream = self
            .js
            .get_stream(format!("KV_{CONSENT_BUCKET}"))
            .await
            .map_err(|e| format!("the consent bucket's stream: {e}"))?;
        let last = stream
            .info()
            .await
            .map_err(|e| format!("the consent bucket's stream: {e}"))?
            .state
            .last_sequence;
        let mut changes = watch_from_start(&bucket, ">", "the consent bucket").await?;
        let mut caught_up = last == 0;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let connected =
                self.client.connection_state() == async_nats::connection::State::Connected;
            self.freshness.set_connected(connected);
            if connected && caught_up {
                self.freshness.synced(Utc::now());
            }
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() || *stop.borrow() { return Ok(()) },
                change = changes.next() => {
                    let entry = watched(change, "the consent bucket")?;
                    if entry.revision >= last || entry.delta == 0 {
                        caught_up = true;
                    }
                    if entry.operation == kv::Operation::Put {
                        self.apply(&entry.key, &entry.value).await?;
                    }
                }
                _ = tick.tick() => {}
            }
        }
    }

    /// Apply one value of the bucket (a change of another site).
    async fn apply(&self, key: &str, raw: &[u8]) -> Result<(), String> {
        let value: ConsentValue = match serde_json::from_slice(raw) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(key, error = %e, "fleet: an unreadable consent value; skipped");
                return Ok(());
            }
        };
        if value.site == self.site {
            return Ok(());
        }
        let mut entry = value.entry;
        entry.site = Some(value.site.clone());
        let contact = entry.contact.clone();
        let status = entry.status;
        match self
            .store
            .apply_remote_consent(entry, value.number.as_deref())
            .await
        {
            Ok(Some(_)) => {
                tracing::info!(contact = %crate::phone::masked(&contact), status = status.as_str(), site = %value.site, "fleet: consent change from another site applied");
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(format!("storing a consent change from {}: {e}", value.site)),
        }
    }
}
