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
/// outbox reads (claimed ones are skipped by key, unread).
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
        self.notify();
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
            self.notify();
        }
    }

    /// Is `modem` out of the pool?
    pub fn is_away(&self, modem: &str) -> bool {
        self.away.lock().map(|s| s.contains(modem)).unwrap_or(false)
    }

    /// New work or a modem changed: idle modems look again.
    pub fn notify(&self) {
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
        loop {
            if *stop.borrow() {
                return None;
            }
            // Register interest before looking, so a notify in between is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Utc::now();
            let unclaimed = |id: &str| self.claimed.lock().is_ok_and(|c| !c.contains(id));
            if let Ok(due) = self.store.due_ids(now, SCAN, unclaimed) {
                for id in due {
                    let Ok(Some(message)) = self.store.get(&id) else {
                        continue;
                    };
                    if !message.status.is_waiting() || !self.assignable(&message, modem, budget) {
                        continue;
                    }
                    let Ok(mut claimed) = self.claimed.lock() else {
                        return None;
                    };
                    if claimed.insert(message.id.clone()) {
                        return Some(message);
                    }
                }
            }
            let wait = match self.store.next_due().ok().flatten() {
                Some(at) if at > now => (at - now)
                    .to_std()
                    .unwrap_or(IDLE_RECHECK)
                    .min(IDLE_RECHECK),
                // Due now but not for us (or claimed): wait for a change.
                _ => IDLE_RECHECK,
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// The modem is done with `id` (sent, failed, or put back for a retry).
    pub fn release(&self, id: &str) {
        if let Ok(mut claimed) = self.claimed.lock() {
            claimed.remove(id);
        }
        self.notify();
    }
}
