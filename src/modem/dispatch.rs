//! Which modem sends which message. Modem actors pull work when they are
//! ready and idle, so the least-loaded ready modem takes the next message; a
//! message goes to the modem the caller named, else to the one its contact
//! last talked with (the sticky sender) unless that modem is offline.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{watch, Notify};

use super::status::{ModemState, ModemStatus};
use crate::store::{Message, Store};

/// How many due messages one look at the outbox considers.
const SCAN: usize = 64;
/// The longest an idle modem sleeps before looking again (a backstop: new
/// work and state changes wake it at once).
const IDLE_RECHECK: Duration = Duration::from_secs(30);

pub struct Dispatcher {
    store: Store,
    modems: RwLock<HashMap<String, watch::Receiver<ModemStatus>>>,
    /// Messages handed to a modem and not yet released.
    claimed: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Dispatcher {
    pub fn new(store: Store) -> Dispatcher {
        Dispatcher {
            store,
            modems: RwLock::new(HashMap::new()),
            claimed: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        }
    }

    pub fn register(&self, id: &str, status: watch::Receiver<ModemStatus>) {
        if let Ok(mut modems) = self.modems.write() {
            modems.insert(id.to_string(), status);
        }
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

    /// New work or a modem changed: idle modems look again.
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }

    /// May `modem` send `message`?
    fn assignable(&self, message: &Message, modem: &str) -> bool {
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
                // Sticky unless that modem is gone from the config or offline.
                !matches!(self.state_of(&sticky), Some(s) if s != ModemState::Offline)
            }
            _ => true,
        }
    }

    /// The next message for `modem`, waiting until there is one or `stop`
    /// turns true.
    pub async fn next_for(&self, modem: &str, stop: &mut watch::Receiver<bool>) -> Option<Message> {
        loop {
            if *stop.borrow() {
                return None;
            }
            // Register interest before looking, so a notify in between is not lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = Utc::now();
            if let Ok(due) = self.store.due(now, SCAN) {
                for message in due {
                    if !self.assignable(&message, modem) {
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
