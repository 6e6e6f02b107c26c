//! The sled store: messages, their indexes, the outbox, inbound multipart parts,
//! dedupe keys, message references, sticky senders and events; the web
//! inbox's users and sessions (`users.rs`).
//!
//! The interface is narrow on purpose (sled 0.34 has open reports of corruption
//! after abrupt stops, spacejam/sled #1533 and #1509): callers see records and
//! operations, never trees. Every operation that changes state is one sled
//! transaction over all the trees it touches, and the async operations return
//! only once a flush has made the change durable (group commit, see
//! `durability.rs`), so an API 202 or an `AT+CMGD` never runs ahead of the disk.
//! The modem actors' marks share their transactions with each other's
//! (`grouped.rs`).

mod campaigns;
mod compact;
mod consent;
mod contacts;
mod conversation;
mod deliveries;
mod durability;
mod fleet;
mod grouped;
mod history;
mod history_log;
mod inbound;
mod keys;
mod log;
mod metrics;
mod outbound;
mod packed;
mod prune;
mod query;
mod read_marks;
pub mod records;
#[cfg(test)]
mod tests;
pub mod users;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Tree;
use tokio::sync::watch;

pub use campaigns::{
    BatchOutcome, CampaignCreated, CampaignRecord, CampaignState, Progress, RecipientError,
    StatusCounts, VariantCounts, VariantRecord, FLEET_CAMPAIGN_CANCEL, RECIPIENT_CHUNK,
};
pub use compact::{Compacted, COMPACT_BELOW_LIVE_SHARE, COMPACT_MIN_BYTES};
pub use consent::{
    ConsentChange, ConsentRecord, ConsentStatus, ContactProfile, Evidence, LedgerEntry,
    ProfileRefused, ProfileUpdate, ProfileWrite, Reaction, Reactor, ERASED_PREFIX,
};
pub use contacts::{ContactQuery, NumberedProfile, IMPORT_BATCH};
pub use conversation::{
    Entry as TimelineEntry, InboxFilter, ItemKind, OutcomeRecord, Sequenced, Thread, ThreadChange,
    ThreadChanged, TimelineItem, FLEET_THREAD_EVENT,
};
pub use deliveries::{
    event_seq, Attempt, AttemptOutcome, Delivery, DeliveryFilter, DeliveryStatus, OpenDelivery,
    WebhookEndpoint,
};
pub use fleet::{erased_hash_of_key, erased_key, Taken, FLEET_CONTACT_ERASED, FLEET_GIVEN_BACK};
pub use history::ARCHIVE_BATCH;
pub use inbound::{InboundPart, ReadFrom, ReceiveOutcome};
pub use outbound::{Accepted, GroupedChange, IdempotencyKey};
pub use prune::{Pruned, DEDUPE_KEEP, EVENTS_KEEP, IDEMPOTENCY_KEEP, SEND_LOG_KEEP};
pub use query::{MessageFilter, Page, ThreadSummary};
pub use records::{
    Callback, Category, Direction, ErrorInfo, Event, FleetLeg, Message, MessageStatus, Part,
    PartStatus, Transition, CALLBACK_EVENTS,
};

use durability::GroupCommit;

/// How often the daemon counts the outbox for [`Store::outbox_gauge`].
pub const OUTBOX_GAUGE_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);

/// The schema this build writes; a store written by a newer one is refused.
/// 2: message ids carry the contact's hash; final messages move to the
/// history files (`history.rs`).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store record {key:?} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("store could not make a write durable: {0}")]
    Durability(String),
    #[error("store schema version {found} is newer than this smsgate supports ({supported})")]
    Schema { found: u32, supported: u32 },
    #[error("store schema version {found} was written by a pre-release smsgate that this one cannot read (it writes {supported}); move the store directory aside")]
    SchemaTooOld { found: u32, supported: u32 },
    #[error("invalid cursor")]
    InvalidCursor,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An error raised inside a transaction closure.
pub(crate) type TxError = ConflictableTransactionError<StoreError>;

/// The store. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    /// id -> Message.
    messages: Tree,
    /// contact, time, id -> (): a contact's messages in time order.
    threads: Tree,
    /// due time, id -> (): outbound messages waiting for a modem or their time.
    outbox: Tree,
    /// contact -> ThreadSummary.
    contacts: Tree,
    /// last activity, contact -> (): threads most recent first.
    recent: Tree,
    /// modem, sender, reference, total -> the parts received so far.
    parts: Tree,
    /// modem, raw PDU -> message id or "part": an SMS read twice is stored once.
    dedupe: Tree,
    /// modem, TP-MR, recipient -> (message id, part): matches status reports.
    mrs: Tree,
    /// contact -> modem id: text a contact from the number it last talked with.
    sticky: Tree,
    /// contact, time, id -> category: the per-contact send log (rate limits).
    sends: Tree,
    /// consent key (contact [, number]) -> ConsentRecord.
    consent: Tree,
    /// contact, sequence -> LedgerEntry: append-only.
    ledger: Tree,
    /// SHA-256 of an erased contact who opted out -> ().
    tombstones: Tree,
    /// contact -> ContactProfile.
    profiles: Tree,
    /// What inbound messages do to consent (installed by the daemon's policy),
    /// and whether consent is kept per gateway number.
    reactor: std::sync::RwLock<Option<(Reactor, bool)>>,
    /// id -> (): outbound messages with a part handed to a modem (`sending`),
    /// which a restart turns into `unknown` or back into the queue.
    active: Tree,
    /// report deadline, id -> (): sent messages waiting for status reports.
    deadlines: Tree,
    /// Idempotency-Key -> (fingerprint, message id).
    idempotency: Tree,
    /// sequence -> Event.
    events: Tree,
    /// contact, 0x00, first entry -> packed (created time, location) entries
    /// of the contact's archived messages (`history.rs`).
    history: Tree,
    /// `blanked_through`: how far retention has blanked archived bodies; and
    /// the notes that let open finish an interrupted write to the history
    /// (`pending_frames`, `to_erase`, `to_remove`: `history.rs`, `compact.rs`).
    history_files: Tree,
    /// The archived records.
    history_log: history_log::HistoryLog,
    /// One writer of the history index at a time (plans read the tree).
    history_lock: std::sync::Mutex<()>,
    /// One erasure at a time: an erasure rewrites shared records (campaign
    /// recipient lists), and in a fleet two may come for one contact at
    /// once (its event and the fleet's list of erasures).
    erasing: tokio::sync::Mutex<()>,
    /// Bumped after every committed move into (or within) the history, so a
    /// read that overlapped one can run again (`query.rs`).
    history_moves: std::sync::atomic::AtomicU64,
    /// `[store] retention_days` (0: none), for messages moving to the history.
    retention_days: AtomicU32,
    /// In a fleet: every thread change also writes `thread.synced` (the
    /// record and its timeline items), for the other gateways' inboxes.
    fleet_threads: std::sync::atomic::AtomicBool,
    /// The outbox's depth as last counted (u64::MAX: not yet).
    outbox_gauge: std::sync::atomic::AtomicU64,
    /// Webhook endpoints, cursors and deliveries (`deliveries.rs`).
    deliveries: deliveries::DeliveryTrees,
    /// Contact fields' indexes: tags, external ids, search (`contacts.rs`).
    contact_index: contacts::Trees,
    /// Threads as an inbox: state, timeline items, inbox order (`conversation.rs`).
    conversations: conversation::Trees,
    /// Campaigns, their recipient lists and counters (`campaigns.rs`).
    campaigns: campaigns::Trees,
    /// The metric counters (`metrics.rs`).
    metric_counters: metrics::Trees,
    /// People who sign in to the web inbox, and their sessions (`users.rs`).
    people: users::Trees,
    /// Bumped after new events are durable: webhook workers and event
    /// streams wait on it instead of polling.
    new_events: watch::Sender<()>,
    /// Bumped after the conversation engine's cursor moved
    /// ([`Store::wait_for_engine`]).
    engine_moved: watch::Sender<()>,
    commit: GroupCommit,
    /// The trees a message's state change touches (the same handles as the
    /// fields above), for [`outbound::UpdateTrees::apply`].
    updates: outbound::UpdateTrees,
    /// The thread that applies the modem actors' marks together
    /// (`grouped.rs`), started with the first; None: it could not start
    /// (each mark is then a transaction of its own).
    grouped: std::sync::OnceLock<Option<grouped::GroupedUpdates>>,
    /// Housekeeping steps that failed since open (`/metrics`).
    housekeeping_errors: std::sync::atomic::AtomicU64,
    id_seed: u32,
    id_counter: AtomicU32,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(Some(grouped)) = self.grouped.take() {
            grouped.close();
        }
        self.commit.close();
    }
}

/// `path` and any missing parents, created 0700; an existing store directory
/// is tightened to 0700 too (one made by an older smsgate under umask 022).
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Directories under `dir` 0700, files 0600 (sled creates its files with the
/// umask's mode; symbolic links are left alone).
fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let mode = if kind.is_dir() {
            make_private(&entry.path())?;
            0o700
        } else if kind.is_file() {
            0o600
        } else {
            continue;
        };
        let path = entry.path();
        if std::fs::symlink_metadata(&path)?.permissions().mode() & 0o777 != mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
    }
    Ok(())
}

impl Store {
    /// Open (or create) the store at `path` with a page cache of `cache_mb` MiB.
    /// The directory is created 0700 and every file in it made 0600, whatever
    /// the umask: it holds message bodies and phone numbers.
    pub fn open(path: &Path, cache_mb: u64) -> Result<Store> {
        create_private_dir(path).map_err(sled::Error::Io)?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_mb.max(1) * 1024 * 1024)
            // The group commit flushes on demand; the periodic flush is a backstop.
            .flush_every_ms(Some(1000))
            .open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(raw) => {
                let found = <[u8; 4]>::try_from(raw.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        key: "meta/schema_version".into(),
                        reason: format!("{} octets, expected 4", raw.len()),
                    })?;
                if found < SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooOld {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
        }
        let seed = std::collections::hash_map::RandomState::new();
        // Below 2^31: room for the counter to grow without wrapping (`new_id`).
        let id_seed = (std::hash::BuildHasher::hash_one(&seed, std::process::id()) as u32) >> 1;
        let updates = outbound::UpdateTrees {
            messages: db.open_tree("messages")?,
            outbox: db.open_tree("outbox")?,
            active: db.open_tree("active")?,
            deadlines: db.open_tree("deadlines")?,
            mrs: db.open_tree("mrs")?,
            sticky: db.open_tree("sticky")?,
            events: db.open_tree("events")?,
            sends: db.open_tree("sends")?,
        };
        let inner = Inner {
            messages: updates.messages.clone(),
            threads: db.open_tree("threads")?,
            outbox: updates.outbox.clone(),
            contacts: db.open_tree("contacts")?,
            recent: db.open_tree("recent")?,
            parts: db.open_tree("parts")?,
            dedupe: db.open_tree("dedupe")?,
            mrs: updates.mrs.clone(),
            sticky: updates.sticky.clone(),
            idempotency: db.open_tree("idempotency")?,
            active: updates.active.clone(),
            consent: db.open_tree("consent")?,
            sends: updates.sends.clone(),
            ledger: db.open_tree("ledger")?,
            tombstones: db.open_tree("tombstones")?,
            profiles: db.open_tree("profiles")?,
            reactor: std::sync::RwLock::new(None),
            deadlines: updates.deadlines.clone(),
            events: updates.events.clone(),
            history: db.open_tree("history")?,
            history_files: db.open_tree("history_files")?,
            history_log: history_log::HistoryLog::open(
                &path.join("history"),
                history::MAX_FILE_BYTES,
            )?,
            history_lock: std::sync::Mutex::new(()),
            erasing: tokio::sync::Mutex::new(()),
            history_moves: std::sync::atomic::AtomicU64::new(0),
            retention_days: AtomicU32::new(0),
            fleet_threads: std::sync::atomic::AtomicBool::new(false),
            outbox_gauge: std::sync::atomic::AtomicU64::new(u64::MAX),
            deliveries: deliveries::DeliveryTrees::open(&db)?,
            contact_index: contacts::Trees::open(&db)?,
            conversations: conversation::Trees::open(&db)?,
            metric_counters: metrics::Trees::open(&db)?,
            campaigns: campaigns::Trees::open(&db)?,
            people: users::Trees::open(&db)?,
            new_events: watch::channel(()).0,
            engine_moved: watch::channel(()).0,
            commit: GroupCommit::start(db.clone()).map_err(|e| {
                StoreError::Durability(format!("cannot start the store's flush thread: {e}"))
            })?,
            updates,
            grouped: std::sync::OnceLock::new(),
            housekeeping_errors: std::sync::atomic::AtomicU64::new(0),
            db,
            id_seed,
            id_counter: AtomicU32::new(0),
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.recover_history()?;
        make_private(path).map_err(sled::Error::Io)?;
        Ok(store)
    }

    /// A new message id for `contact` (see [`keys::message_id`]); the salt is
    /// process-unique, so ids never repeat. Ids sort by creation time, which
    /// the message list relies on, and within one millisecond in the order
    /// this store made them: the salt counts up from a random start below
    /// 2^31, so it does not wrap before two billion ids. That makes the order
    /// causal: a reply queued in reaction to a message (an opt-out
    /// confirmation, in the STOP's own transaction and millisecond) sorts
    /// after it in its thread and in the list, live or archived.
    pub fn new_id(&self, contact: &str, at: DateTime<Utc>) -> String {
        let n = self.inner.id_counter.fetch_add(1, Ordering::Relaxed);
        let salt = self.inner.id_seed.wrapping_add(n);
        keys::message_id(at, contact, salt)
    }

    /// In a fleet (`[cluster]`): every thread change also writes
    /// `thread.synced` (for the events stream), and an erasure is marked
    /// and announced ([`FLEET_CONTACT_ERASED`]).
    pub fn set_fleet_threads(&self, on: bool) {
        self.inner
            .fleet_threads
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn fleet_threads(&self) -> bool {
        self.inner
            .fleet_threads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The trees with an entry whose key or value contains `needle`, and
    /// how many such entries each has: what an erasure must leave no trace
    /// in is checked with it (a full scan of every tree: for tests and
    /// audits, not for a request's path).
    pub fn trees_holding(&self, needle: &[u8]) -> Result<Vec<(String, usize)>> {
        let holds =
            |hay: &[u8]| !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle);
        let mut out = Vec::new();
        for name in self.inner.db.tree_names() {
            let tree = self.inner.db.open_tree(&name)?;
            let mut n = 0;
            for entry in tree.iter() {
                let (key, value) = entry?;
                if holds(&key) || holds(&value) {
                    n += 1;
                }
            }
            if n > 0 {
                out.push((String::from_utf8_lossy(&name).into_owned(), n));
            }
        }
        Ok(out)
    }

    /// The aux tree of the fleet's sticky replica (contact key -> site),
    /// named here because an erasure clears the contact from it too.
    pub const FLEET_STICKY: &'static str = "fleet_sticky";

    /// A tree of the database for a module outside the store (the compat
    /// APIs' per-message callbacks), named `aux_<name>`: written with the
    /// store's own durability ([`Store::sync`]), kept by the same files.
    pub fn aux_tree(&self, name: &str) -> Result<sled::Tree> {
        Ok(self.inner.db.open_tree(format!("aux_{name}"))?)
    }

    /// Wait until everything written so far is on disk.
    pub async fn sync(&self) -> Result<()> {
        let ticket = self.inner.commit.ticket();
        self.durable(ticket).await
    }

    async fn durable(&self, ticket: u64) -> Result<()> {
        self.inner
            .commit
            .durable(ticket)
            .await
            .map_err(StoreError::Durability)
    }

    /// The grouped writer, started on first use (None: its thread could not
    /// start; logged once).
    fn grouped(&self) -> Option<&grouped::GroupedUpdates> {
        self.inner
            .grouped
            .get_or_init(
                || match grouped::GroupedUpdates::start(self.inner.updates.clone()) {
                    Ok(grouped) => Some(grouped),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the store's grouped writer; each change is written alone");
                        None
                    }
                },
            )
            .as_ref()
    }

    /// Run blocking store work (file I/O, fsyncs, long scans) on tokio's
    /// blocking pool, off the async workers.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(store))
            .await
            .map_err(|e| StoreError::Durability(format!("store task: {e}")))?
    }

    /// Flush now, blocking (for shutdown and synchronous callers).
    pub fn flush_blocking(&self) -> Result<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Bytes the store takes on disk: the database and the history files.
    pub fn size_on_disk(&self) -> u64 {
        let history: u64 = self
            .inner
            .history_log
            .files()
            .map(|files| files.iter().map(|(_, size)| size).sum())
            .unwrap_or(0);
        self.inner.db.size_on_disk().unwrap_or(0) + history
    }

    /// Install the policy's reaction to inbound messages (STOP, START, HELP).
    /// `per_number`: an opt-out covers only the gateway number it came to
    /// (default: all of the gateway's numbers).
    pub fn set_reactor(&self, reactor: Reactor, per_number: bool) {
        if let Ok(mut slot) = self.inner.reactor.write() {
            *slot = Some((reactor, per_number));
        }
    }

    pub(crate) fn reactor(&self) -> Option<(Reactor, bool)> {
        self.inner.reactor.read().ok().and_then(|r| r.clone())
    }

    /// The modem a contact last talked with.
    pub fn sticky_modem(&self, contact: &str) -> Result<Option<String>> {
        Ok(self
            .inner
            .sticky
            .get(contact.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Changes whenever new events have become durable (after every write
    /// that appends events). Each receiver sees each change once.
    pub fn event_notifier(&self) -> watch::Receiver<()> {
        self.inner.new_events.subscribe()
    }

    /// Called after a write that appended `events` is durable: the steps in
    /// messages' lives are logged (`log.rs`) and the readers woken.
    fn events_committed(&self, events: &[Event]) {
        log::committed(events);
        self.inner.new_events.send_replace(());
    }

    /// Append a free-standing event (e.g. `modem.status`), durably.
    pub async fn emit(&self, kind: &str, data: serde_json::Value) -> Result<Event> {
        let now = Utc::now();
        let event = self
            .inner
            .events
            .transaction(|events| push_event(events, kind, now, data.clone()))
            .map_err(unwrap_tx)?;
        let ticket = self.inner.commit.ticket();
        self.durable(ticket).await?;
        self.events_committed(std::slice::from_ref(&event));
        Ok(event)
    }
}

/// Whether events of `kind` are written for a fleet's streams only (a
/// thread's record, a copy given back, an erasure, a cancel passed on to
/// another gateway's campaign): no webhook receiver gets them and
/// `GET /v1/events` does not serve them.
pub fn fleet_only(kind: &str) -> bool {
    [
        FLEET_THREAD_EVENT,
        FLEET_GIVEN_BACK,
        FLEET_CONTACT_ERASED,
        FLEET_CAMPAIGN_CANCEL,
    ]
    .contains(&kind)
}

/// A write applied but perhaps not yet on disk ([`Store::update_deferred`]).
#[must_use = "the write is not known to be durable until waited for"]
pub struct Durability {
    store: Store,
    /// None: nothing was written.
    ticket: Option<u64>,
    /// The events the write appended: announced once durable.
    events: Vec<Event>,
}

impl Durability {
    /// Wait until the write is on disk; flushes now unless a flush that
    /// covers it has already happened. Events it appended are announced to
    /// their readers (webhook delivery) then.
    pub async fn wait(self) -> Result<()> {
        if let Some(ticket) = self.ticket {
            self.store.durable(ticket).await?;
        }
        if !self.events.is_empty() {
            self.store.events_committed(&self.events);
        }
        Ok(())
    }
}

/// Append an event inside a transaction; its id is a sled-generated sequence,
/// monotonic across restarts.
pub(crate) fn push_event(
    events: &TransactionalTree,
    kind: &str,
    at: DateTime<Utc>,
    data: serde_json::Value,
) -> std::result::Result<Event, TxError> {
    let seq = events.generate_id()?;
    let event = Event {
        id: format!("evt_{seq:016x}"),
        kind: kind.to_string(),
        created_at: at,
        data,
    };
    events.insert(&seq.to_be_bytes(), to_json(&event)?)?;
    Ok(event)
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> std::result::Result<Vec<u8>, TxError> {
    serde_json::to_vec(value).map_err(|e| {
        ConflictableTransactionError::Abort(StoreError::Corrupt {
            key: "(new record)".into(),
            reason: e.to_string(),
        })
    })
}

pub(crate) fn from_json<T: DeserializeOwned>(key: &[u8], raw: &[u8]) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn from_json_tx<T: DeserializeOwned>(
    key: &[u8],
    raw: &[u8],
) -> std::result::Result<T, TxError> {
    from_json(key, raw).map_err(ConflictableTransactionError::Abort)
}

pub(crate) fn unwrap_tx(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A store in a fresh temporary directory, removed on drop.
    pub struct TempStore {
        pub store: Store,
        pub dir: std::path::PathBuf,
    }

    impl TempStore {
        pub fn new() -> TempStore {
            let dir = std::env::temp_dir().join(format!(
                "smsgate-store-test-{}-{}",
                std::process::id(),
                rand_suffix()
            ));
            let store = Store::open(&dir, 8).unwrap();
            TempStore { store, dir }
        }
    }

    impl TempStore {
        /// Close the store (every handle dropped) and open the same directory
        /// again, as a daemon restart does.
        pub fn restart(&mut self) {
            let scratch = TempStore::new();
            let old = std::mem::replace(&mut self.store, scratch.store.clone());
            drop(old);
            // sled's I/O threads can hold the old file (and its lock) a moment
            // after the last handle goes, more so on a loaded machine: wait for
            // the open to succeed rather than fail the test on that race.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            self.store = loop {
                match Store::open(&self.dir, 8) {
                    Ok(store) => break store,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(e) => panic!("reopen {}: {e}", self.dir.display()),
                }
            };
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::AtomicU64;
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed) ^ (Utc::now().timestamp_nanos_opt().unwrap_or(0) as u64)
    }
}
