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

use super::probe::ProbeRequest;
use super::status::{ModemState, ModemStatus};
use crate::store::{Message, Store};

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
}

impl Dispatcher {
    pub fn new(store: Store) -> Dispatcher {
        Dispatcher {
            store,
            modems: RwLock::new(HashMap::new()),
            claimed: Mutex::new(HashSet::new()),
            away: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            probes: RwLock::new(HashMap::new()),
        }
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
