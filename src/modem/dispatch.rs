//! Which modem sends which message. Modem actors pull work when they are
//! ready, idle and within their limits, so the least-loaded healthy modem
//! takes the next message; a message goes to the modem the caller named, else
//! to the one its contact last talked with (the sticky sender) unless that
//! modem is offline or away from the pool (resting after failed sends, or its
//! daily limit spent), else to any.
//!
//! A modem away from the pool keeps what only it may send: a message the
//! caller named it for, and one with a part it already sent (the parts share
//! a sender). Everything else of its moves: no part of those reached a modem,
//! so nothing goes out twice.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch, Notify};

use super::overrides::{Defaults, Overrides, TREE};
use super::probe::ProbeRequest;
use super::status::{ModemState, ModemStatus};
use crate::store::{Message, Store, StoreError};

/// The overrides kept in the store; one unreadable is logged and left out
/// (that modem runs on its config's values).
fn stored_overrides(store: &Store) -> HashMap<String, Overrides> {
    let tree = match store.aux_tree(TREE) {
        Ok(tree) => tree,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the modems' stored settings; the config's apply");
            return HashMap::new();
        }
    };
    let mut out = HashMap::new();
    for entry in tree.iter() {
        let parsed = entry.map_err(|e| e.to_string()).and_then(|(key, raw)| {
            let id = String::from_utf8(key.to_vec()).map_err(|e| e.to_string())?;
            let value: Overrides = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
            Ok((id, value))
        });
        match parsed {
            Ok((id, value)) => {
                out.insert(id, value);
            }
            Err(e) => {
                tracing::error!(error = %e, "a modem's stored settings are unreadable; its config's apply")
            }
        }
    }
    out
}

/// How many due messages not claimed by another modem one look at the
/// outbox reads at most (claimed ones are skipped by key, unread; the look
/// ends at the first it can take).
const SCAN: usize = 64;
/// The longest an idle modem sleeps before looking again (a backstop: new
/// work and state changes wake it at once).
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// What is left of a modem's daily limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Parts it may still send today.
    pub left: u32,
    /// Its `daily_limit`.
    pub per_day: u32,
}

impl Budget {
    /// Can the parts of `message` not sent yet go today? A message's parts go
    /// through one modem, so a budget too small for the rest leaves it to
    /// another modem or to tomorrow; one bigger than a whole day's limit goes
    /// with a fresh day's budget (else it would wait for ever).
    pub fn fits(&self, message: &Message) -> bool {
        let unsent = message
            .part_status
            .iter()
            .filter(|p| p.mr.is_none())
            .count()
            .max(1);
        let unsent = u32::try_from(unsent).unwrap_or(u32::MAX);
        self.left > 0 && (unsent <= self.left || self.left == self.per_day)
    }
}

pub struct Dispatcher {
    store: Store,
    modems: RwLock<HashMap<String, watch::Receiver<ModemStatus>>>,
    /// Messages handed to a modem and not yet released.
    claimed: Mutex<HashSet<String>>,
    /// Modems away from the pool (resting, daily limit spent): their sticky
    /// contacts' messages go to the others meanwhile.
    away: Mutex<HashSet<String>>,
    /// New work (a message accepted, or put back): one idle modem looks. It
    /// wakes the next when it took one and more is due, and all of them when
    /// what is due is not its to take (a contact sticky to another modem, a
    /// modem named by the caller). Waking all 64 for every message cost each
    /// of them a look at the outbox and a read of the same record.
    work: Notify,
    /// A modem's state or settings changed: every idle modem looks again.
    wake: Notify,
    /// Each actor's mailbox for probes (`POST /v1/modems/{id}/probe`): the
    /// actor runs them over its own connection, between its commands.
    probes: RwLock<HashMap<String, mpsc::Sender<ProbeRequest>>>,
    /// Settings changed at run time, by modem (`overrides`), kept in the
    /// store; a paused modem takes no work and is away from the pool.
    overrides: RwLock<HashMap<String, Overrides>>,
    /// Each modem's config values, what its overrides fall back to.
    defaults: RwLock<HashMap<String, Defaults>>,
    /// Counts changes of `overrides`: actors waiting (for work, for a new
    /// day) look again at once.
    changes: watch::Sender<u64>,
}

impl Dispatcher {
    pub fn new(store: Store) -> Dispatcher {
        Dispatcher {
            modems: RwLock::new(HashMap::new()),
            claimed: Mutex::new(HashSet::new()),
            away: Mutex::new(HashSet::new()),
            work: Notify::new(),
            wake: Notify::new(),
            probes: RwLock::new(HashMap::new()),
            overrides: RwLock::new(stored_overrides(&store)),
            defaults: RwLock::new(HashMap::new()),
            changes: watch::channel(0).0,
            store,
        }
    }

    /// `id`'s config values (its actor says them when it starts).
    pub fn set_defaults(&self, id: &str, defaults: Defaults) {
        if let Ok(mut all) = self.defaults.write() {
            all.insert(id.to_string(), defaults);
        }
    }

    pub fn defaults(&self, id: &str) -> Defaults {
        self.defaults
            .read()
            .ok()
            .and_then(|all| all.get(id).copied())
            .unwrap_or_default()
    }

    /// What was changed at run time for `id`.
    pub fn overrides(&self, id: &str) -> Overrides {
        self.overrides
            .read()
            .ok()
            .and_then(|all| all.get(id).cloned())
            .unwrap_or_default()
    }

    pub fn is_paused(&self, id: &str) -> bool {
        self.overrides(id).paused
    }

    /// Store `overrides` for `id` (durable when it returns), then apply them:
    /// idle modems look again, a paused one's queue goes to the others.
    pub async fn set_overrides(&self, id: &str, overrides: Overrides) -> Result<(), StoreError> {
        let tree = self.store.aux_tree(TREE)?;
        if overrides == Overrides::default() {
            tree.remove(id.as_bytes())?;
        } else {
            let value = serde_json::to_vec(&overrides).map_err(|e| StoreError::Corrupt {
                key: id.to_string(),
                reason: e.to_string(),
            })?;
            tree.insert(id.as_bytes(), value)?;
        }
        self.store.sync().await?;
        if let Ok(mut all) = self.overrides.write() {
            all.insert(id.to_string(), overrides);
        }
        self.changes.send_modify(|n| *n += 1);
        self.notify_all();
        Ok(())
    }

    /// Turns when any modem's overrides change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn register(&self, id: &str, status: watch::Receiver<ModemStatus>) {
        if let Ok(mut modems) = self.modems.write() {
            modems.insert(id.to_string(), status);
        }
    }

    /// Where modem `id`'s actor takes probe requests.
    pub fn register_probes(&self, id: &str, mailbox: mpsc::Sender<ProbeRequest>) {
        if let Ok(mut probes) = self.probes.write() {
            probes.insert(id.to_string(), mailbox);
        }
    }

    /// Modem `id`'s probe mailbox (None: no actor runs it, e.g. a test's
    /// fake modem).
    pub fn probe_mailbox(&self, id: &str) -> Option<mpsc::Sender<ProbeRequest>> {
        self.probes.read().ok().and_then(|p| p.get(id).cloned())
    }

    pub fn is_known(&self, id: &str) -> bool {
        self.modems
            .read()
            .map(|m| m.contains_key(id))
            .unwrap_or(false)
    }

    /// Snapshots of every modem, by id.
    pub fn statuses(&self) -> Vec<ModemStatus> {
        let mut out: Vec<ModemStatus> = self
            .modems
            .read()
            .map(|m| m.values().map(|rx| rx.borrow().clone()).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    fn state_of(&self, id: &str) -> Option<ModemState> {
        self.modems
            .read()
            .ok()
            .and_then(|m| m.get(id).map(|rx| rx.borrow().state))
    }

    /// Take `modem` out of the pool (`true`) or put it back; the other
    /// modems look again, for the messages that were sticky to it.
    pub fn set_away(&self, modem: &str, away: bool) {
        let changed = match self.away.lock() {
            Ok(mut set) if away => set.insert(modem.to_string()),
            Ok(mut set) => set.remove(modem),
            Err(_) => false,
        };
        if changed {
            self.notify_all();
        }
    }

    /// Is `modem` out of the pool?
    pub fn is_away(&self, modem: &str) -> bool {
        self.away.lock().map(|s| s.contains(modem)).unwrap_or(false)
    }

    /// New work: an idle modem looks (and passes it on, see `work`).
    pub fn notify(&self) {
        self.work.notify_one();
    }

    /// A modem changed (its state, its settings, in or out of the pool):
    /// every idle modem looks again.
    pub fn notify_all(&self) {
        self.wake.notify_waiters();
    }

    /// May `modem` send `message`, with `budget` parts left of its daily
    /// limit (None: no limit)?
    fn assignable(&self, message: &Message, modem: &str, budget: Option<Budget>) -> bool {
        if self.is_paused(modem) {
            return false;
        }
        if let Some(budget) = budget {
            if !budget.fits(message) {
                return false;
            }
        }
        if let Some(requested) = &message.requested_modem {
            return requested == modem;
        }
        // A retry of a message with parts already sent stays on its modem, so
        // the parts share a sender.
        if let Some(current) = &message.modem {
            if message.part_status.iter().any(|p| p.mr.is_some()) {
                return current == modem;
            }
        }
        match self.store.sticky_modem(&message.contact).ok().flatten() {
            Some(sticky) if sticky != modem => {
                // Sticky unless that modem is gone from the config, offline or
                // away from the pool.
                self.is_away(&sticky)
                    || self.is_paused(&sticky)
                    || !matches!(self.state_of(&sticky), Some(s) if s != ModemState::Offline)
            }
            _ => true,
        }
    }

    /// The next message for `modem` (with `budget` left of its daily limit;
    /// None: no limit), waiting until there is one or `stop` turns true.
    pub async fn next_for(
        &self,
        modem: &str,
        budget: Option<Budget>,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Message> {
        // Woken for new work: what it finds due and cannot take, the others
        // may (so they are woken; a modem woken by them does not wake them
        // again).
        let mut for_work = false;
        loop {
            if *stop.borrow() {
                return None;
            }
            // Register interest before looking, so a notify in between is not
            // lost (one for `work` that this modem does not take goes on to
            // another when this future is dropped).
            let work = self.work.notified();
            tokio::pin!(work);
            work.as_mut().enable();
            let changed = self.wake.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Utc::now();
            match self.look(modem, budget, now) {
                Look::Took { message, more } => {
                    if more {
                        self.notify();
                    }
                    return Some(*message);
                }
                Look::NotOurs if for_work => self.notify_all(),
                Look::NotOurs | Look::Nothing => {}
                Look::Broken => return None,
            }
            // What is due now but not for us (or claimed) waits for a
            // change; a message that becomes due later wakes us then, even
            // behind one that is due (no other modem wakes us for it).
            let wait = match self.store.next_due_after(now).ok().flatten() {
                Some(at) => (at - now)
                    .to_std()
                    .unwrap_or(IDLE_RECHECK)
                    .min(IDLE_RECHECK),
                None => IDLE_RECHECK,
            };
            for_work = false;
            tokio::select! {
                _ = &mut work => for_work = true,
                _ = &mut changed => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One look at the outbox for `modem`: claim the oldest due message it
    /// may send, reading at most [`SCAN`] records.
    fn look(&self, modem: &str, budget: Option<Budget>, now: chrono::DateTime<Utc>) -> Look {
        let mut took: Option<Message> = None;
        let (mut more, mut not_ours, mut broken) = (false, false, false);
        let mut reads = 0;
        let visited = self.store.visit_due(now, |id| {
            let Ok(claimed) = self.claimed.lock() else {
                broken = true;
                return ControlFlow::Break(());
            };
            if claimed.contains(id) {
                return ControlFlow::Continue(());
            }
            drop(claimed);
            if took.is_some() {
                more = true;
                return ControlFlow::Break(());
            }
            if reads == SCAN {
                return ControlFlow::Break(());
            }
            reads += 1;
            let Ok(Some(message)) = self.store.get(id) else {
                return ControlFlow::Continue(());
            };
            if !message.status.is_waiting() {
                return ControlFlow::Continue(());
            }
            if !self.assignable(&message, modem, budget) {
                not_ours = true;
                return ControlFlow::Continue(());
            }
            match self.claimed.lock() {
                Ok(mut claimed) => {
                    if claimed.insert(message.id.clone()) {
                        took = Some(message);
                    }
                    ControlFlow::Continue(())
                }
                Err(_) => {
                    broken = true;
                    ControlFlow::Break(())
                }
            }
        });
        if let Err(e) = visited {
            tracing::warn!(modem, error = %e, "cannot read the outbox; looking again later");
        }
        match took {
            Some(message) => Look::Took {
                message: Box::new(message),
                more,
            },
            None if broken => Look::Broken,
            None if not_ours => Look::NotOurs,
            None => Look::Nothing,
        }
    }

    /// The modem is done with `id` (sent, failed, or put back for a retry).
    pub fn release(&self, id: &str) {
        if let Ok(mut claimed) = self.claimed.lock() {
            claimed.remove(id);
        }
        // Put back (a retry), it is new work for the others.
        self.notify();
    }
}

/// What one look at the outbox found.
enum Look {
    /// A message claimed for the modem; `more`: another is due, unclaimed.
    Took { message: Box<Message>, more: bool },
    /// Due messages, none the modem may send.
    NotOurs,
    /// Nothing due and unclaimed.
    Nothing,
    /// The claims' lock is poisoned (a modem panicked holding it).
    Broken,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;
    use crate::store::{Accepted, MessageStatus};
    use std::sync::Arc;

    /// A dispatcher with `modems` registered as ready (no actors: the test
    /// asks for work in their place).
    fn pool(store: &Store, modems: &[&str]) -> (Arc<Dispatcher>, Vec<watch::Sender<ModemStatus>>) {
        let dispatcher = Arc::new(Dispatcher::new(store.clone()));
        let mut senders = Vec::new();
        for id in modems {
            let mut status = ModemStatus::new(id, "/dev/null");
            status.state = ModemState::Ready;
            let (tx, rx) = watch::channel(status);
            dispatcher.register(id, rx);
            senders.push(tx);
        }
        (dispatcher, senders)
    }

    /// Queue a message to `to`, not waiting for the flush: that wait is on
    /// the store's thread, and the paused clock would run ahead meanwhile
    /// (the modems' idle rechecks with it).
    fn queue(store: &Store, to: &str) -> Message {
        let m = store.new_outbound("", to, "hi", 1, "gsm7", false, None, Utc::now());
        let (Accepted::New(m), _not_waited) = store.accept_deferred(m, None).unwrap() else {
            panic!("not accepted")
        };
        m
    }

    /// `modem` waits for work on a task of its own (started now, so it waits
    /// before any started later).
    async fn idle(
        dispatcher: &Arc<Dispatcher>,
        modem: &'static str,
        stop: &watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<Option<Message>> {
        let (dispatcher, mut stop) = (dispatcher.clone(), stop.clone());
        let task = tokio::spawn(async move { dispatcher.next_for(modem, None, &mut stop).await });
        // Until it looked at the (empty) outbox and waits.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        task
    }

    /// New work wakes one idle modem; a message sticky to another idle
    /// modem still reaches that one at once (the first wakes them all), not
    /// after the idle recheck.
    #[tokio::test(start_paused = true)]
    async fn a_message_sticky_to_an_idle_modem_reaches_it_at_once() {
        let t = TempStore::new();
        let (dispatcher, _modems) = pool(&t.store, &["a", "b"]);
        // The contact last talked with b.
        let earlier = queue(&t.store, "+15551239000");
        t.store
            .update(&earlier.id, |m| {
                m.modem = Some("b".into());
                m.transition(Utc::now(), MessageStatus::Sent);
                true
            })
            .await
            .unwrap();
        let (_stop_tx, stop) = watch::channel(false);
        let a = idle(&dispatcher, "a", &stop).await;
        let b = idle(&dispatcher, "b", &stop).await;
        let started = tokio::time::Instant::now();
        let m = queue(&t.store, "+15551239000");
        dispatcher.notify();
        let took = b.await.unwrap().unwrap();
        assert_eq!(took.id, m.id);
        assert!(
            started.elapsed() < IDLE_RECHECK,
            "b waited {:?} for its contact's message",
            started.elapsed()
        );
        assert!(!a.is_finished(), "a took nothing");
        a.abort();
    }

    /// Several messages and one notice (a campaign's batch): each idle
    /// modem woken wakes the next while work is due, so all of them start.
    #[tokio::test(start_paused = true)]
    async fn a_batch_of_work_wakes_one_idle_modem_after_another() {
        let t = TempStore::new();
        let (dispatcher, _modems) = pool(&t.store, &["a", "b", "c"]);
        let (_stop_tx, stop) = watch::channel(false);
        let mut waiting = Vec::new();
        for modem in ["a", "b", "c"] {
            waiting.push(idle(&dispatcher, modem, &stop).await);
        }
        let started = tokio::time::Instant::now();
        let mut queued = HashSet::new();
        for n in 0..3 {
            queued.insert(queue(&t.store, &format!("+1555123910{n}")).id);
        }
        dispatcher.notify();
        let mut took = HashSet::new();
        for task in waiting {
            took.insert(task.await.unwrap().unwrap().id);
        }
        assert_eq!(took, queued, "each modem took one of them");
        assert!(started.elapsed() < IDLE_RECHECK, "{:?}", started.elapsed());
    }
}
