//! Outbound messages of a fleet (`[cluster]`): a message taken from the
//! fleet's work queue, one given back to it, and another gateway's record of
//! a message applied here (the events stream; a campaign's message moves
//! its campaign's counter with it, at the gateway that has the campaign).

use std::collections::HashMap;

use sled::Transactional;

use super::campaigns::count_message_tx;
use super::keys;
use super::outbound::{outbox_key, queue_message};
use super::query::touch_contact;
use super::records::{FleetLeg, Message, MessageStatus};
use super::{from_json_tx, to_json, unwrap_tx, Result, Store};

/// The event a gateway writes when it gives back its copy of another
/// gateway's message after an opt-out ([`Store::give_back_opted_out`]): for
/// the fleet's events stream only (webhooks leave it out); its data is the
/// copy's record.
pub const FLEET_GIVEN_BACK: &str = "message.given_back";

/// The code of a message an opt-out stopped.
const OPTED_OUT: &str = "recipient_opted_out";

/// The event a gateway of a fleet writes when a contact is erased there
/// ([`Store::erase_contact`]): for the fleet's events stream only (webhooks
/// leave it out); data: `contact`, `erased_at`, `opt_out_kept`. Every other
/// gateway erases the contact too ([`Store::erase_remote_contact`]).
pub const FLEET_CONTACT_ERASED: &str = "contact.erased";

/// The aux tree of erased contacts: the hash of the number (as an
/// opt-out's tombstone) -> when it was erased (ns since the epoch, big
/// endian). What is still on its way about the contact from before then
/// (in a fleet another gateway's events or a copy in the work queue; a
/// campaign batch composed before it) is refused, so an erasure is not
/// undone by a record on its way.
const ERASED_TREE: &str = "fleet_erased";

/// What taking a message from the work queue did here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Now in this gateway's outbox (new here, or a record handed here).
    Queued,
    /// Already taken here and still waiting (the work queue delivered it
    /// again): nothing changed.
    Held,
    /// Past waiting here (sending, sent, failed, cancelled, ...): the work
    /// queue's copy is done with.
    Done,
}

/// How far a message has gone, for ordering two gateways' records of it:
/// waiting, then on a modem, then sent or unknown, then settled for good.
fn progress(m: &Message) -> u8 {
    use super::records::MessageStatus as S;
    match m.status {
        S::Scheduled | S::Queued | S::Deferred | S::Received => 0,
        S::Sending => 1,
        S::Sent | S::Unknown => 2,
        S::Delivered | S::Failed | S::Cancelled | S::Expired => 3,
    }
}

/// What stands for an erased contact's number in the fleet's list of
/// erasures and in kept records (after `sha256:`): the hex of the number's
/// SHA-256 (as an opt-out's tombstone and an erasure mark hash it). A
/// pseudonym, not a secret: the numbers can be tried.
pub fn erased_key(contact: &str) -> String {
    crate::pdu::hex::encode(&super::consent::tombstone_key(contact))
}

/// The hash [`erased_key`] names (None: not the hex of 32 bytes).
pub fn erased_hash_of_key(key: &str) -> Option<Vec<u8>> {
    crate::pdu::hex::decode(key).ok().filter(|h| h.len() == 32)
}

/// The aux tree of erasures done here: the hash of the number -> up to
/// when (ns since the epoch, big endian). Apart from the marks
/// ([`ERASED_TREE`]), which are written first: an erasure stopped
/// half-way (a crash) is marked and not done, so it is done again.
const ERASED_DONE_TREE: &str = "fleet_erased_done";

/// Nanoseconds since the epoch, as an erasure mark keeps a time (an i64
/// of them spans 1677-2262; a time outside is the nearest end).
fn erasure_nanos(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// The later of an 8-byte time already stored and `nanos`.
fn later_nanos(old: Option<&[u8]>, nanos: i64) -> Vec<u8> {
    let before = old
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(i64::MIN, i64::from_be_bytes);
    before.max(nanos).to_be_bytes().to_vec()
}

impl Store {
    /// Remember that `contact` was erased `at` (the later of two): what is
    /// still on its way about it from before then is refused.
    pub(crate) fn mark_erased(
        &self,
        contact: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.mark_erased_hash(&super::consent::tombstone_key(contact), at)
    }

    /// [`Store::mark_erased`] by the hash of the number.
    fn mark_erased_hash(&self, hash: &[u8], at: chrono::DateTime<chrono::Utc>) -> Result<()> {
        // Nanoseconds, as a message's time is kept: a record made in the
        // same millisecond before the erasure still counts as before it.
        let nanos = erasure_nanos(at);
        self.aux_tree(ERASED_TREE)?
            .update_and_fetch(hash, |old| Some(later_nanos(old, nanos)))?;
        Ok(())
    }

    /// The erasure of `contact` made `at` is done here: a later word of it
    /// (another gateway's event, the fleet's list of erasures) is not
    /// applied again (it would erase what came after it).
    pub(crate) fn erasure_done(
        &self,
        contact: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        let nanos = erasure_nanos(at);
        self.aux_tree(ERASED_DONE_TREE)?
            .update_and_fetch(super::consent::tombstone_key(contact), |old| {
                Some(later_nanos(old, nanos))
            })?;
        Ok(())
    }

    /// Whether the erasure of the contact whose number hashes to `hash`
    /// made `at` is done here already.
    pub fn erasure_applied(&self, hash: &[u8], at: chrono::DateTime<chrono::Utc>) -> Result<bool> {
        let raw = self.aux_tree(ERASED_DONE_TREE)?.get(hash)?;
        Ok(raw
            .as_deref()
            .and_then(|v| <[u8; 8]>::try_from(v).ok())
            .is_some_and(|done| i64::from_be_bytes(done) >= erasure_nanos(at)))
    }

    /// Apply erasures this gateway heard of only by their hashes (the
    /// fleet's list of erasures, for one away from the events stream
    /// longer than it keeps them): each not done here yet is marked first
    /// (what is on its way from before it is refused from then on), then
    /// erases the contact whose number hashes to it, found among what this
    /// gateway keeps about contacts, as another gateway's erasure does.
    /// One with no such contact here stays marked and not done: the
    /// erasure's event, which has the number, still erases. A contact
    /// whose erasure fails is logged and left for the next pass. Returns
    /// how many contacts were erased.
    pub async fn apply_hashed_erasures(
        &self,
        erasures: &[(Vec<u8>, chrono::DateTime<chrono::Utc>)],
    ) -> Result<usize> {
        let mut pending: HashMap<Vec<u8>, chrono::DateTime<chrono::Utc>> = HashMap::new();
        for (hash, at) in erasures {
            if !self.erasure_applied(hash, *at)? {
                let slot = pending.entry(hash.clone()).or_insert(*at);
                *slot = (*slot).max(*at);
            }
        }
        if pending.is_empty() {
            return Ok(0);
        }
        for (hash, at) in &pending {
            self.mark_erased_hash(hash, *at)?;
        }
        let wanted: std::collections::HashSet<Vec<u8>> = pending.keys().cloned().collect();
        let found = self
            .blocking(move |store| store.contacts_hashing_to(&wanted))
            .await?;
        let mut erased = 0;
        for contact in &found {
            let Some(at) = pending.get(&super::consent::tombstone_key(contact)) else {
                continue;
            };
            match self.erase_remote_contact(contact, *at).await {
                Ok(_) => erased += 1,
                Err(e) => {
                    tracing::error!(contact = %crate::phone::masked(contact), error = %e, "an erasure heard of from the fleet failed here; tried again at the next pass")
                }
            }
        }
        Ok(erased)
    }

    /// The contacts known here whose numbers hash to one of `hashes` (as an
    /// opt-out's tombstone does): every place an erasure erases a contact
    /// from (its threads and summaries, archived messages, profile, consent
    /// and ledger, sends, conversation, campaign recipient lists and
    /// refusals). A full scan of those trees.
    fn contacts_hashing_to(
        &self,
        hashes: &std::collections::HashSet<Vec<u8>>,
    ) -> Result<Vec<String>> {
        let i = &self.inner;
        let mut seen = std::collections::HashSet::new();
        let mut found = Vec::new();
        // Each contact hashed once, however many keys name it.
        let mut look = |contact: &[u8]| {
            if contact.is_empty() || seen.contains(contact) {
                return;
            }
            seen.insert(contact.to_vec());
            let contact = String::from_utf8_lossy(contact);
            if hashes.contains(&super::consent::tombstone_key(&contact)) {
                found.push(contact.into_owned());
            }
        };
        for key in i.contacts.iter().keys() {
            let key = key?;
            match keys::contact_of_hash_key(&key) {
                Some(contact) => look(contact),
                None => look(&key),
            }
        }
        // Keys that start with the contact, then SEP (or end there).
        for tree in [&i.profiles, &i.consent, &i.ledger, &i.sends] {
            for key in tree.iter().keys() {
                let key = key?;
                look(key.split(|b| *b == keys::SEP).next().unwrap_or_default());
            }
        }
        self.conversation_contacts(&mut look)?;
        self.campaign_numbers(&mut |n: &str| look(n.as_bytes()))?;
        Ok(found)
    }

    /// When `contact` was last erased (here, or in a fleet anywhere), if
    /// ever.
    pub fn erased_at(&self, contact: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        let raw = self
            .aux_tree(ERASED_TREE)?
            .get(super::consent::tombstone_key(contact))?;
        Ok(raw
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes)
            .map(chrono::DateTime::from_timestamp_nanos))
    }

    /// Whether `contact` was erased at or after `at` (a record of then is
    /// refused).
    pub(crate) fn erased_since(
        &self,
        contact: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        Ok(self.erased_at(contact)?.is_some_and(|erased| at <= erased))
    }

    /// The messages to `contact` of the fleet that are still waiting here
    /// (accepted here and handed to the fleet, or taken here): what an
    /// erasure claims in the fleet's fence before it forgets them, so that
    /// no gateway sends one after.
    pub fn fleet_waiting_to(&self, contact: &str) -> Result<Vec<Message>> {
        let prefix = keys::thread_prefix(contact);
        let mut out = Vec::new();
        for key in self.inner.threads.scan_prefix(&prefix).keys() {
            let key = key?;
            let id = String::from_utf8_lossy(key.get(prefix.len() + 8..).unwrap_or_default())
                .into_owned();
            if let Some(m) = self.get(&id)? {
                if m.fleet.is_some() && m.status.is_waiting() {
                    out.push(m);
                }
            }
        }
        Ok(out)
    }

    /// Take `message` from the fleet's work queue: store it as this
    /// gateway's to send (in the outbox, [`FleetLeg::Taken`]), unless it
    /// is known here already. No event is written: the gateway that
    /// accepted it announced it.
    pub fn take_from_fleet(&self, mut message: Message) -> Result<Taken> {
        message.fleet = Some(FleetLeg::Taken);
        // Unknown here: accepted by another gateway (a record of this
        // store's own is taken as it is, below).
        message.fleet_copy = true;
        let i = &self.inner;
        // Accepted before its recipient was erased: never sent.
        if self.erased_since(&message.contact, message.created_at)? {
            return Ok(Taken::Done);
        }
        if let Some(known) = self.get(&message.id)? {
            if !known.status.is_waiting() {
                return Ok(Taken::Done);
            }
            if known.fleet == Some(FleetLeg::Taken) {
                return Ok(Taken::Held);
            }
        }
        let taken = (&i.messages, &i.threads, &i.outbox, &i.contacts, &i.recent)
            .transaction(|(messages, threads, outbox, contacts, recent)| {
                match messages.get(message.id.as_bytes())? {
                    None => {
                        queue_message(messages, threads, outbox, &message)?;
                        touch_contact(contacts, recent, &message)?;
                        Ok(Taken::Queued)
                    }
                    Some(raw) => {
                        let known: Message = from_json_tx(message.id.as_bytes(), &raw)?;
                        if !known.status.is_waiting() {
                            return Ok(Taken::Done);
                        }
                        if known.fleet == Some(FleetLeg::Taken) {
                            return Ok(Taken::Held);
                        }
                        // Accepted here and handed to the fleet: this
                        // gateway sends it after all (the record as the
                        // work queue carries it, with what happened here
                        // meanwhile: none of it reached a modem).
                        let mut mine = known;
                        mine.fleet = Some(FleetLeg::Taken);
                        messages.insert(mine.id.as_bytes(), to_json(&mine)?)?;
                        if let Some(key) = outbox_key(&mine) {
                            outbox.insert(key, &[])?;
                        }
                        Ok(Taken::Queued)
                    }
                }
            })
            .map_err(unwrap_tx)?;
        // Not waited for: lost in a crash, the work queue delivers it again.
        Ok(taken)
    }

    /// Messages handed to the fleet that are still waiting here (a full
    /// scan of the live messages: once, at start).
    pub fn handed_waiting(&self) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        for item in self.inner.messages.iter() {
            let (id, raw) = item?;
            let Ok(m) = super::from_json::<Message>(&id, &raw) else {
                continue;
            };
            // Not a copy of another gateway's (given back after an opt-out):
            // that gateway publishes its own.
            if m.fleet == Some(FleetLeg::Handed) && m.status.is_waiting() && !m.fleet_copy {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Give message `id` back: another gateway of the fleet claimed it
    /// first, so this one's copy leaves the outbox and follows what that
    /// gateway publishes. Whether it was given back (it was taken here and
    /// still waiting).
    pub async fn give_back_to_fleet(&self, id: &str) -> Result<bool> {
        // The closure may run again on a conflict: its last verdict counts.
        let given = std::sync::atomic::AtomicBool::new(false);
        self.update(id, |m| {
            // Never one with a part on the air: that gateway finishes it.
            let ok = m.fleet == Some(FleetLeg::Taken)
                && m.status.is_waiting()
                && m.part_status.iter().all(|p| p.mr.is_none());
            given.store(ok, std::sync::atomic::Ordering::Relaxed);
            if ok {
                m.fleet = Some(FleetLeg::Handed);
            }
            ok
        })
        .await?;
        Ok(given.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A copy of another gateway's message whose recipient opted out goes
    /// back to the fleet instead of failing here: never sent from here, no
    /// event of its own, and [`FLEET_GIVEN_BACK`] tells the accepting
    /// gateway, which fails its record and reports it (once for the fleet;
    /// it also does when the consent reaches it). A copy no longer waiting
    /// (a part on a modem) is left alone: the caller fails it. Whether it
    /// went back.
    pub async fn give_back_opted_out(&self, id: &str) -> Result<bool> {
        // `fleet_copy` is set when the record is made and kept after.
        if !self.get(id)?.is_some_and(|m| m.fleet_copy) || !self.give_back_to_fleet(id).await? {
            return Ok(false);
        }
        if let Some(m) = self.get(id)? {
            let data = serde_json::to_value(&m).map_err(|e| super::StoreError::Corrupt {
                key: m.id.clone(),
                reason: e.to_string(),
            })?;
            self.emit(FLEET_GIVEN_BACK, data).await?;
        }
        Ok(true)
    }

    /// Another gateway gave back its copy of message `id` because the
    /// recipient opted out ([`FLEET_GIVEN_BACK`]): if the message is this
    /// gateway's own and still waits, it fails here, with its event and
    /// webhooks. Whether it failed.
    pub async fn fail_given_back(&self, id: &str) -> Result<bool> {
        let now = chrono::Utc::now();
        // The closure may run again on a conflict: its last verdict counts.
        let failed = std::sync::atomic::AtomicBool::new(false);
        self.update(id, |m| {
            let ok = !m.fleet_copy && m.fleet.is_some() && m.status.is_waiting();
            failed.store(ok, std::sync::atomic::Ordering::Relaxed);
            if ok {
                m.settle_with_error(
                    now,
                    MessageStatus::Failed,
                    OPTED_OUT,
                    "cancelled: the recipient opted out (STOP)",
                );
            }
            ok
        })
        .await?;
        Ok(failed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Apply another gateway's record of a message (the fleet's events
    /// stream), outbound or received there: kept as a [`FleetLeg::Handed`]
    /// record (never sent from here, no event, no webhook, no automation:
    /// the gateway where it happened did those), when it is newer than what
    /// is here (further along: waiting < on a modem < sent < settled; then
    /// the longer history, then the later change). A message of this
    /// gateway's own is left alone, and so is one taken here, unless no
    /// modem has touched it yet and the other gateway's has. A record
    /// applied of a campaign's message moves the campaign's counter in the
    /// same transaction, where the campaign is (the gateway that created
    /// it: the other sites' modems write no event there). Whether anything
    /// changed.
    pub fn apply_remote_message(&self, mut remote: Message) -> Result<bool> {
        remote.fleet = Some(FleetLeg::Handed);
        // Accepted elsewhere, unless the record here says otherwise.
        remote.fleet_copy = true;
        let i = &self.inner;
        // Of a contact erased since: not brought back.
        if self.erased_since(&remote.contact, remote.created_at)? {
            return Ok(false);
        }
        if self.inner.messages.get(remote.id.as_bytes())?.is_none()
            && self.archived_message(&remote.id)?.is_some()
        {
            // Already final and moved to the history here.
            return Ok(false);
        }
        let record = sled::IVec::from(serde_json::to_vec(&remote).map_err(|e| {
            super::StoreError::Corrupt {
                key: remote.id.clone(),
                reason: e.to_string(),
            }
        })?);
        let (campaigns, members) = i.campaigns.counters();
        (
            &i.messages,
            &i.threads,
            &i.contacts,
            &i.recent,
            &i.outbox,
            campaigns,
            members,
        )
            .transaction(
                |(messages, threads, contacts, recent, outbox, campaigns, members)| {
                    match messages.get(remote.id.as_bytes())? {
                        None => {
                            messages.insert(remote.id.as_bytes(), record.clone())?;
                            threads.insert(
                                keys::thread(&remote.contact, remote.created_at, &remote.id),
                                &[],
                            )?;
                            touch_contact(contacts, recent, &remote)?;
                            count_message_tx((campaigns, members), &remote)?;
                            Ok(true)
                        }
                        Some(raw) => {
                            let known: Message = from_json_tx(remote.id.as_bytes(), &raw)?;
                            // `unknown` here because its sender was gone: what
                            // that gateway says it did, once it is back, is
                            // what happened.
                            let told = known.error.as_ref().is_some_and(|e| {
                                [SENDER_GONE, FLEET_EXPIRED].contains(&e.code.as_str())
                            }) && progress(&remote) >= 2
                                && remote.status != MessageStatus::Unknown;
                            let newer = told
                                || (progress(&remote), remote.history.len(), remote.updated_at)
                                    > (progress(&known), known.history.len(), known.updated_at);
                            // A copy taken here that no modem has touched yet
                            // yields to a gateway that went further with it
                            // (this one's claim will fail: it is given back).
                            let yields = known.fleet == Some(FleetLeg::Taken)
                                && known.status.is_waiting()
                                && known.part_status.iter().all(|p| p.mr.is_none())
                                && progress(&remote) > 0;
                            if !(known.fleet == Some(FleetLeg::Handed) || yields) || !newer {
                                return Ok(false);
                            }
                            if let Some(key) = outbox_key(&known) {
                                outbox.remove(key)?;
                            }
                            if known.fleet_copy {
                                messages.insert(remote.id.as_bytes(), record.clone())?;
                            } else {
                                // Accepted here: it stays this gateway's own.
                                let mut own = remote.clone();
                                own.fleet_copy = false;
                                messages.insert(remote.id.as_bytes(), to_json(&own)?)?;
                            }
                            count_message_tx((campaigns, members), &remote)?;
                            Ok(true)
                        }
                    }
                },
            )
            .map_err(unwrap_tx)
    }
}

/// The code of a message whose sending gateway is gone.
const SENDER_GONE: &str = "sender_gone";
/// The code of a message past what the fleet's fence remembers.
const FLEET_EXPIRED: &str = "fleet_expired";

impl Store {
    /// Messages accepted here and handed to the fleet that no gateway has
    /// finished: waiting, or on another gateway's modem as far as this one
    /// knows (a full scan of the live messages: when a gateway is gone).
    pub fn handed_open(&self) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        for item in self.inner.messages.iter() {
            let (id, raw) = item?;
            let Ok(m) = super::from_json::<Message>(&id, &raw) else {
                continue;
            };
            if is_open_here(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Gateway `site`, last heard from `since`, claimed message `id` (one
    /// accepted here) to send and is gone: the message is `unknown` here,
    /// with its event and webhooks (a part may have reached the network;
    /// nobody sends it again). Whether it changed.
    pub async fn sender_gone(
        &self,
        id: &str,
        site: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let text = format!(
            "gateway {site:?} claimed it to send and has not been heard from since {}: it may or may not have been sent",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        self.unknown_in_fleet(id, SENDER_GONE, &text).await
    }

    /// Message `id` (one accepted here) is past what the fleet's fence
    /// remembers and no gateway that is there holds it: `unknown` here, as
    /// [`Store::sender_gone`]. Whether it changed.
    pub async fn fleet_expired(&self, id: &str) -> Result<bool> {
        let text = "not finished by the fleet within 28 days of its accept: a claim to send it may have expired, so nobody sends it now, and it may or may not have been sent";
        self.unknown_in_fleet(id, FLEET_EXPIRED, text).await
    }

    async fn unknown_in_fleet(&self, id: &str, code: &str, text: &str) -> Result<bool> {
        let now = chrono::Utc::now();
        // The closure may run again on a conflict: its last verdict counts.
        let changed = std::sync::atomic::AtomicBool::new(false);
        self.update(id, |m| {
            let ok = is_open_here(m);
            changed.store(ok, std::sync::atomic::Ordering::Relaxed);
            if ok {
                m.settle_with_error(now, MessageStatus::Unknown, code, text);
            }
            ok
        })
        .await?;
        Ok(changed.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Accepted here, handed to the fleet, and not finished by any gateway.
fn is_open_here(m: &Message) -> bool {
    m.fleet == Some(FleetLeg::Handed)
        && !m.fleet_copy
        && (m.status.is_waiting() || m.status == MessageStatus::Sending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;
    use crate::store::{Accepted, MessageStatus, Thread};
    use chrono::Utc;

    fn message(store: &Store, to: &str) -> Message {
        store.new_outbound("", to, "hello", 1, "gsm7", false, None, Utc::now())
    }

    fn outbox_has(store: &Store, id: &str) -> bool {
        store
            .due(Utc::now() + chrono::Duration::days(1), 100)
            .unwrap()
            .iter()
            .any(|m| m.id == id)
    }

    #[tokio::test]
    async fn a_copy_with_a_part_on_the_air_is_never_given_back() {
        let t = TempStore::new();
        let mut long = message(&t.store, "+15550009");
        long.set_parts(3, "gsm7");
        t.store.take_from_fleet(long.clone()).unwrap();
        // Part 1 went out; part 2 was put back before its AT+CMGS.
        t.store
            .update(&long.id, |m| {
                m.part_status[0].status = crate::store::PartStatus::Sent;
                m.part_status[0].mr = Some(7);
                true
            })
            .await
            .unwrap();
        assert!(t.store.get(&long.id).unwrap().unwrap().status.is_waiting());
        assert!(!t.store.give_back_to_fleet(&long.id).await.unwrap());
        assert!(!t.store.give_back_opted_out(&long.id).await.unwrap());
        assert_eq!(
            t.store.get(&long.id).unwrap().unwrap().fleet,
            Some(FleetLeg::Taken)
        );
        // Nor does it yield to another gateway's record further along (the
        // accepting gateway's `unknown` while this one was cut off).
        let mut unknown = long.clone();
        unknown.transition(Utc::now(), MessageStatus::Unknown);
        assert!(!t.store.apply_remote_message(unknown).unwrap());
        let kept = t.store.get(&long.id).unwrap().unwrap();
        assert_eq!(kept.part_status[0].mr, Some(7));
        assert_eq!(kept.fleet, Some(FleetLeg::Taken));
    }

    #[tokio::test]
    async fn a_handed_message_waits_in_the_fleet_and_a_taken_one_here() {
        let t = TempStore::new();
        let mut handed = message(&t.store, "+15550001");
        handed.fleet = Some(FleetLeg::Handed);
        let id = handed.id.clone();
        assert!(matches!(
            t.store.accept(handed.clone(), None).await.unwrap(),
            Accepted::New(_)
        ));
        assert!(
            !outbox_has(&t.store, &id),
            "a handed message is not in this outbox"
        );
        // Taken here after all: into the outbox; again: held.
        assert_eq!(
            t.store.take_from_fleet(handed.clone()).unwrap(),
            Taken::Queued
        );
        assert!(outbox_has(&t.store, &id));
        assert_eq!(
            t.store.get(&id).unwrap().unwrap().fleet,
            Some(FleetLeg::Taken)
        );
        assert_eq!(
            t.store.take_from_fleet(handed.clone()).unwrap(),
            Taken::Held
        );
        // Claimed elsewhere: given back, out of the outbox.
        assert!(t.store.handed_waiting().unwrap().is_empty());
        assert!(t.store.give_back_to_fleet(&id).await.unwrap());
        assert!(!outbox_has(&t.store, &id));
        // Handed and waiting: what a restart publishes again.
        let again: Vec<String> = t
            .store
            .handed_waiting()
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(again, vec![id.clone()]);
        assert!(!t.store.give_back_to_fleet(&id).await.unwrap());
        // A message new here: queued; once past waiting, the queue's copy is done.
        let other = message(&t.store, "+15550002");
        assert_eq!(
            t.store.take_from_fleet(other.clone()).unwrap(),
            Taken::Queued
        );
        assert!(outbox_has(&t.store, &other.id));
        t.store
            .update(&other.id, |m| {
                m.transition(Utc::now(), MessageStatus::Failed);
                true
            })
            .await
            .unwrap();
        assert_eq!(t.store.take_from_fleet(other).unwrap(), Taken::Done);
    }

    #[tokio::test]
    async fn another_sites_record_applies_when_newer_and_never_over_ones_own() {
        let t = TempStore::new();
        // Unknown here: stored as handed, with no event.
        let mut remote = message(&t.store, "+15550003");
        let id = remote.id.clone();
        let events = t.store.events_from(0, 100).unwrap().len();
        assert!(t.store.apply_remote_message(remote.clone()).unwrap());
        assert_eq!(t.store.events_from(0, 100).unwrap().len(), events);
        assert!(!outbox_has(&t.store, &id));
        // Newer (a longer history) applies; the same again or older does not.
        remote.transition(Utc::now(), MessageStatus::Sending);
        remote.transition(Utc::now(), MessageStatus::Sent);
        assert!(t.store.apply_remote_message(remote.clone()).unwrap());
        assert_eq!(
            t.store.get(&id).unwrap().unwrap().status,
            MessageStatus::Sent
        );
        assert!(!t.store.apply_remote_message(remote.clone()).unwrap());
        let mut older = remote.clone();
        older.history.truncate(1);
        older.status = MessageStatus::Queued;
        assert!(!t.store.apply_remote_message(older).unwrap());
        // A message of this gateway's own is never overwritten.
        let own = message(&t.store, "+15550004");
        t.store.accept(own.clone(), None).await.unwrap();
        let mut theirs = own.clone();
        theirs.transition(Utc::now(), MessageStatus::Failed);
        assert!(!t.store.apply_remote_message(theirs).unwrap());
        assert_eq!(
            t.store.get(&own.id).unwrap().unwrap().status,
            MessageStatus::Queued
        );
    }

    #[tokio::test]
    async fn a_record_further_along_wins_and_a_waiting_taken_copy_yields_to_it() {
        let t = TempStore::new();
        // Taken here, still waiting: in the outbox.
        let m = message(&t.store, "+15550006");
        assert_eq!(t.store.take_from_fleet(m.clone()).unwrap(), Taken::Queued);
        // Another gateway's long history of deferrals is not news...
        let mut deferred = m.clone();
        for _ in 0..10 {
            deferred.transition(Utc::now(), MessageStatus::Deferred);
        }
        assert!(!t.store.apply_remote_message(deferred.clone()).unwrap());
        // ...but one whose modem sent it is: the copy here leaves the outbox.
        let mut sent = m.clone();
        sent.transition(Utc::now(), MessageStatus::Sending);
        sent.transition(Utc::now(), MessageStatus::Sent);
        assert!(t.store.apply_remote_message(sent.clone()).unwrap());
        let here = t.store.get(&m.id).unwrap().unwrap();
        assert_eq!(
            (here.status, here.fleet),
            (MessageStatus::Sent, Some(FleetLeg::Handed))
        );
        assert!(!outbox_has(&t.store, &m.id));
        // A longer history that is still waiting never undoes "sent".
        assert!(!t.store.apply_remote_message(deferred).unwrap());
        assert_eq!(
            t.store.get(&m.id).unwrap().unwrap().status,
            MessageStatus::Sent
        );
    }

    #[tokio::test]
    async fn another_sites_thread_lists_in_the_inbox_without_timers() {
        let t = TempStore::new();
        let now = Utc::now();
        let mut thread = Thread::new("+15550005", crate::conversation::ThreadState::Open, now);
        thread.waiting_since = Some(now);
        thread.sla_due = Some(now - chrono::Duration::minutes(1));
        assert!(t.store.apply_remote_thread(&thread, &[]).unwrap());
        let inbox = t.store.inbox(&Default::default(), now, None, 10).unwrap();
        assert_eq!(inbox.items.len(), 1);
        // Its SLA runs where the conversation is: no breach comes due here.
        assert!(t.store.sla_due_by(now, 10).unwrap().is_empty());
        // Older: ignored; newer: applied.
        let mut older = thread.clone();
        older.updated_at = now - chrono::Duration::hours(1);
        older.state = crate::conversation::ThreadState::Closed;
        assert!(!t.store.apply_remote_thread(&older, &[]).unwrap());
        let mut newer = thread.clone();
        newer.updated_at = now + chrono::Duration::seconds(1);
        newer.state = crate::conversation::ThreadState::Closed;
        assert!(t.store.apply_remote_thread(&newer, &[]).unwrap());
        assert_eq!(
            t.store.thread_record("+15550005").unwrap().unwrap().state,
            crate::conversation::ThreadState::Closed
        );
        // A note made there: in the timeline here, once, even when it came
        // with a record older than the one here.
        let note = crate::store::TimelineItem {
            id: "itm_0000000001_remote".into(),
            at: now,
            author: Some("ana".into()),
            kind: crate::store::ItemKind::Note {
                text: "Called back".into(),
            },
        };
        assert!(t
            .store
            .apply_remote_thread(&older, std::slice::from_ref(&note))
            .unwrap());
        assert!(!t
            .store
            .apply_remote_thread(&older, std::slice::from_ref(&note))
            .unwrap());
        let timeline = t.store.timeline("+15550005", None, 10).unwrap();
        let notes: Vec<_> = timeline
            .items
            .iter()
            .filter(|e| matches!(e, crate::store::TimelineEntry::Item(i) if i.id == note.id))
            .collect();
        assert_eq!(notes.len(), 1);
    }

    #[tokio::test]
    async fn an_opt_out_fails_the_accepting_gateways_record_and_gives_copies_back() {
        let t = TempStore::new();
        let contact = "+15550008";
        // Accepted by another gateway, taken here.
        let copy = message(&t.store, contact);
        assert_eq!(
            t.store.take_from_fleet(copy.clone()).unwrap(),
            Taken::Queued
        );
        assert!(t.store.get(&copy.id).unwrap().unwrap().fleet_copy);
        // Accepted here, handed to the fleet, taken here after all.
        let mut own = message(&t.store, contact);
        own.fleet = Some(FleetLeg::Handed);
        t.store.accept(own.clone(), None).await.unwrap();
        assert_eq!(t.store.take_from_fleet(own.clone()).unwrap(), Taken::Queued);
        let here = t.store.get(&own.id).unwrap().unwrap();
        assert_eq!(
            (here.fleet, here.fleet_copy),
            (Some(FleetLeg::Taken), false)
        );
        let events_before = t.store.events_from(0, 1000).unwrap().len();
        let failed = t
            .store
            .fail_waiting_to(contact, "recipient_opted_out", "opted out")
            .await
            .unwrap();
        // Only this gateway's own message fails here (and is reported here).
        assert_eq!(failed, vec![own.id.clone()]);
        let events: Vec<_> = t.store.events_from(0, 1000).unwrap();
        let new: Vec<_> = events[events_before..].iter().map(|(_, e)| e).collect();
        // Its own failure, and the signal that the copy went back (for the
        // fleet's events stream, not a webhook kind).
        let kinds: Vec<(&str, &str)> = new
            .iter()
            .map(|e| (e.kind.as_str(), e.data["id"].as_str().unwrap_or("")))
            .collect();
        assert!(
            kinds.contains(&("message.failed", own.id.as_str())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&(FLEET_GIVEN_BACK, copy.id.as_str())),
            "{kinds:?}"
        );
        assert!(
            kinds
                .iter()
                .all(|(k, id)| *id == own.id || *k == FLEET_GIVEN_BACK),
            "{kinds:?}"
        );
        // The copy went back to the fleet: waiting, never sent here, out of
        // the outbox; the accepting gateway's failed record comes later.
        let back = t.store.get(&copy.id).unwrap().unwrap();
        assert_eq!(back.fleet, Some(FleetLeg::Handed));
        assert!(back.status.is_waiting());
        assert!(!outbox_has(&t.store, &copy.id));
        let mut theirs = back.clone();
        theirs.settle_with_error(
            Utc::now(),
            MessageStatus::Failed,
            "recipient_opted_out",
            "x",
        );
        assert!(t.store.apply_remote_message(theirs).unwrap());
        assert_eq!(
            t.store.get(&copy.id).unwrap().unwrap().status,
            MessageStatus::Failed
        );
        // Another gateway's record of this gateway's own message keeps it
        // this gateway's own.
        let mut sent_elsewhere = message(&t.store, "+15550009");
        sent_elsewhere.fleet = Some(FleetLeg::Handed);
        t.store.accept(sent_elsewhere.clone(), None).await.unwrap();
        let mut remote = sent_elsewhere.clone();
        remote.fleet_copy = true;
        remote.transition(Utc::now(), MessageStatus::Sending);
        remote.transition(Utc::now(), MessageStatus::Sent);
        assert!(t.store.apply_remote_message(remote).unwrap());
        assert!(!t.store.get(&sent_elsewhere.id).unwrap().unwrap().fleet_copy);
    }

    #[tokio::test]
    async fn a_copy_given_back_elsewhere_fails_the_accepting_gateways_record_once() {
        let t = TempStore::new();
        let mut own = message(&t.store, "+15550010");
        own.fleet = Some(FleetLeg::Handed);
        t.store.accept(own.clone(), None).await.unwrap();
        assert!(t.store.fail_given_back(&own.id).await.unwrap());
        let failed = t.store.get(&own.id).unwrap().unwrap();
        assert_eq!(failed.status, MessageStatus::Failed);
        assert_eq!(failed.error.unwrap().code, "recipient_opted_out");
        let failures = t
            .store
            .events_from(0, 1000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == "message.failed" && e.data["id"] == own.id.as_str())
            .count();
        assert_eq!(failures, 1);
        // Again (the consent reached it too): nothing more.
        assert!(!t.store.fail_given_back(&own.id).await.unwrap());
        // A copy of another gateway's message is not this gateway's to fail.
        let copy = message(&t.store, "+15550011");
        t.store.take_from_fleet(copy.clone()).unwrap();
        assert!(!t.store.fail_given_back(&copy.id).await.unwrap());
        assert!(t.store.get(&copy.id).unwrap().unwrap().status.is_waiting());
    }

    #[tokio::test]
    async fn a_message_whose_sender_is_gone_is_unknown_once_where_it_was_accepted() {
        let t = TempStore::new();
        let since = Utc::now() - chrono::Duration::hours(1);
        // Accepted here, handed; another site's "sending" record applied.
        let mut own = message(&t.store, "+15550020");
        own.fleet = Some(FleetLeg::Handed);
        t.store.accept(own.clone(), None).await.unwrap();
        let mut remote = t.store.get(&own.id).unwrap().unwrap();
        remote.transition(Utc::now(), MessageStatus::Sending);
        assert!(t.store.apply_remote_message(remote).unwrap());
        // Accepted here, still waiting as far as this gateway knows.
        let mut waiting = message(&t.store, "+15550021");
        waiting.fleet = Some(FleetLeg::Handed);
        t.store.accept(waiting.clone(), None).await.unwrap();
        // Another gateway's copy, and a message of this gateway's modems.
        let copy = message(&t.store, "+15550022");
        t.store.take_from_fleet(copy.clone()).unwrap();
        let local = message(&t.store, "+15550023");
        t.store.accept(local.clone(), None).await.unwrap();
        let open: Vec<String> = t
            .store
            .handed_open()
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(open.len(), 2);
        assert!(open.contains(&own.id) && open.contains(&waiting.id));

        assert!(t.store.sender_gone(&own.id, "north", since).await.unwrap());
        let unknown = t.store.get(&own.id).unwrap().unwrap();
        assert_eq!(unknown.status, MessageStatus::Unknown);
        let error = unknown.error.unwrap();
        assert_eq!(error.code, "sender_gone");
        assert!(error.text.contains("\"north\""), "{}", error.text);
        // Once: settled now, and never for a copy or a local message.
        assert!(!t.store.sender_gone(&own.id, "north", since).await.unwrap());
        assert!(!t.store.sender_gone(&copy.id, "north", since).await.unwrap());
        assert!(!t
            .store
            .sender_gone(&local.id, "north", since)
            .await
            .unwrap());
        let events = t
            .store
            .events_from(0, 1000)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == "message.unknown" && e.data["id"] == own.id.as_str())
            .count();
        assert_eq!(events, 1);
        assert_eq!(t.store.handed_open().unwrap().len(), 1);
        // The gateway was not gone for good: what it says it did wins.
        let mut back = t.store.get(&own.id).unwrap().unwrap();
        back.error = None;
        back.history.truncate(2);
        back.transition(since, MessageStatus::Sent);
        assert!(t.store.apply_remote_message(back).unwrap());
        let sent = t.store.get(&own.id).unwrap().unwrap();
        assert_eq!(sent.status, MessageStatus::Sent);
        assert!(!sent.fleet_copy);
        // Past the fence's memory: unknown as well, with its own code.
        assert!(t.store.fleet_expired(&waiting.id).await.unwrap());
        let expired = t.store.get(&waiting.id).unwrap().unwrap();
        assert_eq!(expired.status, MessageStatus::Unknown);
        assert_eq!(expired.error.unwrap().code, "fleet_expired");
        assert!(!t.store.fleet_expired(&waiting.id).await.unwrap());
        assert!(t.store.handed_open().unwrap().is_empty());
    }

    /// A campaign of this store whose one batch is `messages` (each of the
    /// campaign `id`, variant `a`), stored as the campaign task stores it.
    /// A campaign record of `n` recipients, accepting.
    fn campaign_record(id: &str, n: u64) -> crate::store::CampaignRecord {
        use crate::store::{
            CampaignRecord, CampaignState, Category, Progress, VariantCounts, VariantRecord,
        };
        let now = Utc::now();
        CampaignRecord {
            id: id.to_string(),
            name: "Spring".into(),
            category: Category::Transactional,
            variants: vec![VariantRecord {
                id: "a".into(),
                template: "hello".into(),
                weight: 1,
            }],
            flow: None,
            context: None,
            send_at: None,
            created_at: now,
            updated_at: now,
            state: CampaignState::Accepting,
            progress: Progress {
                total: n,
                listed: n,
                ..Progress::default()
            },
            counts: vec![VariantCounts::default()],
            site: None,
        }
    }

    async fn campaign_with(store: &Store, id: &str, messages: &[Message]) {
        use crate::store::BatchOutcome;
        let now = Utc::now();
        let n = messages.len() as u64;
        let record = campaign_record(id, n);
        let numbers: Vec<String> = messages.iter().map(|m| m.to.clone()).collect();
        store
            .create_campaign(&record, &numbers, &[], None)
            .await
            .unwrap();
        let batch = BatchOutcome {
            processed: n,
            messages: messages.iter().map(|m| (m.clone(), 0)).collect(),
            ..BatchOutcome::default()
        };
        let (_, stored, durability) = store.accept_campaign_batch(id, 0, &batch, now).unwrap();
        durability.wait().await.unwrap();
        assert_eq!(stored, messages.len());
    }

    /// The campaign's counts: (queued, sent, delivered).
    fn counted(store: &Store, id: &str) -> (u64, u64, u64) {
        let c = store.campaign(id).unwrap().unwrap().messages();
        (c.queued, c.sent, c.delivered)
    }

    #[tokio::test]
    async fn another_sites_record_of_a_campaign_message_moves_its_counter_once() {
        let t = TempStore::new();
        let now = Utc::now();
        let id = t.store.new_campaign_id(now);
        // Accepted here in a fleet: handed to the work queue.
        let mut m = message(&t.store, "+15550012");
        m.fleet = Some(FleetLeg::Handed);
        m.campaign = Some(id.clone());
        m.variant = Some("a".into());
        campaign_with(&t.store, &id, std::slice::from_ref(&m)).await;
        assert_eq!(counted(&t.store, &id), (1, 0, 0));
        // Sent by another gateway's modem: its record, applied here, moves
        // the counter (no event is written here); the same record again
        // moves nothing.
        let mut remote = m.clone();
        remote.fleet = Some(FleetLeg::Taken);
        remote.fleet_copy = true;
        remote.transition(now, MessageStatus::Sending);
        remote.transition(now, MessageStatus::Sent);
        let events = t.store.events_from(0, 100).unwrap().len();
        assert!(t.store.apply_remote_message(remote.clone()).unwrap());
        assert_eq!(t.store.events_from(0, 100).unwrap().len(), events);
        assert_eq!(counted(&t.store, &id), (0, 1, 0));
        assert!(!t.store.apply_remote_message(remote.clone()).unwrap());
        assert_eq!(counted(&t.store, &id), (0, 1, 0));
        // An older record (still waiting, however long its history) does
        // not move it back...
        let mut older = m.clone();
        for _ in 0..5 {
            older.transition(now, MessageStatus::Deferred);
        }
        assert!(!t.store.apply_remote_message(older.clone()).unwrap());
        assert_eq!(counted(&t.store, &id), (0, 1, 0));
        // ...nor does an event of this gateway's written before the record
        // came and counted after it: the counter follows the record.
        let late = t
            .store
            .emit("message.deferred", serde_json::to_value(&older).unwrap())
            .await
            .unwrap();
        t.store.apply_campaign_events(&[late]).unwrap();
        assert_eq!(counted(&t.store, &id), (0, 1, 0));
        // Delivered there: delivered here, in the variant's counts too.
        remote.transition(now, MessageStatus::Delivered);
        assert!(t.store.apply_remote_message(remote).unwrap());
        assert_eq!(counted(&t.store, &id), (0, 0, 1));
        let record = t.store.campaign(&id).unwrap().unwrap();
        assert_eq!(record.counts[0].messages.delivered, 1);
        assert_eq!(record.counts[0].accepted, 1);
        // The record here stays this gateway's own.
        let here = t.store.get(&m.id).unwrap().unwrap();
        assert_eq!(
            (here.status, here.fleet, here.fleet_copy),
            (MessageStatus::Delivered, Some(FleetLeg::Handed), false)
        );
    }

    #[tokio::test]
    async fn a_message_of_a_campaign_unknown_here_counts_nowhere_and_fails_nothing() {
        // Another gateway's campaign: its messages, taken and sent by this
        // gateway's modems or recorded from the events stream, are known
        // here without the campaign.
        let t = TempStore::new();
        let campaign = "cmp_0000000000000001_elsewhere";
        let mut taken = message(&t.store, "+15550013");
        taken.campaign = Some(campaign.into());
        assert_eq!(
            t.store.take_from_fleet(taken.clone()).unwrap(),
            Taken::Queued
        );
        taken.transition(Utc::now(), MessageStatus::Sending);
        taken.transition(Utc::now(), MessageStatus::Sent);
        let sent = t
            .store
            .emit("message.sent", serde_json::to_value(&taken).unwrap())
            .await
            .unwrap();
        t.store
            .apply_campaign_events(std::slice::from_ref(&sent))
            .unwrap();
        // The events were counted (the cursor moved past them), for nobody.
        assert_eq!(t.store.campaign_events_cursor().unwrap(), Some(sent.id));
        let mut remote = message(&t.store, "+15550014");
        remote.campaign = Some(campaign.into());
        remote.transition(Utc::now(), MessageStatus::Sending);
        remote.transition(Utc::now(), MessageStatus::Sent);
        assert!(t.store.apply_remote_message(remote).unwrap());
        assert!(t.store.campaign(campaign).unwrap().is_none());
        assert_eq!(
            t.store.campaign_waiting(campaign, None, 10).unwrap(),
            (vec![], None)
        );
    }

    /// In a fleet an erasure is announced once (not again where it is
    /// applied), and what the other gateways still send about the contact
    /// from before it (a record, a copy in the work queue, a thread) does
    /// not bring the contact back; what comes after it does.
    #[tokio::test]
    async fn an_erasure_is_announced_and_not_undone_by_records_on_their_way() {
        let t = TempStore::new();
        t.store.set_fleet_threads(true);
        let contact = "+15550021";
        let mine = message(&t.store, contact);
        t.store.accept(mine.clone(), None).await.unwrap();
        assert_eq!(t.store.erase_contact(contact).await.unwrap(), 1);
        let erased_at = t.store.erased_at(contact).unwrap().unwrap();
        let announced: Vec<_> = t
            .store
            .events_from(0, 100)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == FLEET_CONTACT_ERASED)
            .collect();
        assert_eq!(announced.len(), 1);
        assert_eq!(announced[0].1.data["contact"], contact);
        assert_eq!(announced[0].1.data["opt_out_kept"], false);
        // For the fleet's stream only: not served as an event.
        assert!(t
            .store
            .events_after(None, 100)
            .unwrap()
            .iter()
            .all(|e| e.kind != FLEET_CONTACT_ERASED));

        let at = |minutes: i64| erased_at + chrono::Duration::minutes(minutes);
        let made = |minutes: i64| {
            t.store
                .new_outbound("", contact, "hello", 1, "gsm7", false, None, at(minutes))
        };
        // Sent elsewhere before the erasure: not brought back.
        let mut sent = made(-1);
        sent.transition(at(-1), MessageStatus::Sending);
        sent.transition(at(-1), MessageStatus::Sent);
        assert!(!t.store.apply_remote_message(sent.clone()).unwrap());
        assert!(t.store.get(&sent.id).unwrap().is_none());
        // Waiting in the work queue from before: done with, never sent.
        let queued = made(-1);
        assert_eq!(
            t.store.take_from_fleet(queued.clone()).unwrap(),
            Taken::Done
        );
        assert!(!outbox_has(&t.store, &queued.id));
        // A thread record of before: not brought back either.
        let thread = Thread::new(contact, crate::conversation::ThreadState::Open, at(-1));
        assert!(!t.store.apply_remote_thread(&thread, &[]).unwrap());
        assert!(t.store.thread_record(contact).unwrap().is_none());
        // Begun before, changed after at a gateway that had not heard of
        // the erasure yet: not brought back either.
        let mut late = Thread::new(contact, crate::conversation::ThreadState::Open, at(-1));
        late.updated_at = at(1);
        late.tags = vec!["vip".into()];
        assert!(!t.store.apply_remote_thread(&late, &[]).unwrap());
        assert!(t.store.thread_record(contact).unwrap().is_none());
        // After the erasure: a new conversation, applied.
        let later = made(1);
        assert!(t.store.apply_remote_message(later.clone()).unwrap());
        assert!(t.store.get(&later.id).unwrap().is_some());
        let thread = Thread::new(contact, crate::conversation::ThreadState::Open, at(1));
        assert!(t.store.apply_remote_thread(&thread, &[]).unwrap());

        // Another site's erasure, applied here: the same, not announced.
        let other = "+15550022";
        t.store
            .accept(message(&t.store, other), None)
            .await
            .unwrap();
        let there = erased_at + chrono::Duration::seconds(5);
        assert_eq!(t.store.erase_remote_contact(other, there).await.unwrap(), 1);
        assert_eq!(t.store.erased_at(other).unwrap(), Some(there));
        let announced = t
            .store
            .events_from(0, 100)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == FLEET_CONTACT_ERASED)
            .count();
        assert_eq!(announced, 1);
    }

    fn listed(contact: &str, at: chrono::DateTime<Utc>) -> (Vec<u8>, chrono::DateTime<Utc>) {
        (erased_hash_of_key(&erased_key(contact)).unwrap(), at)
    }

    fn opt_in(contact: &str) -> crate::store::ConsentChange {
        crate::store::ConsentChange {
            contact: contact.into(),
            status: crate::store::ConsentStatus::OptedIn,
            action: "opt_in".into(),
            reason: None,
            evidence: Some(crate::store::Evidence {
                source: "paper".into(),
                evidence: "form 7".into(),
                captured_at: Utc::now(),
            }),
            number: None,
        }
    }

    /// A gateway that heard of erasures only by their hashes (the fleet's
    /// list, for one away from the events stream longer than it keeps
    /// them) erases the contacts they name wherever an erasure erases a
    /// contact from: one texted, one with only a profile, one with only a
    /// consent record, one only in a campaign's recipient list, one only in
    /// another site's thread. An erasure of nobody here is marked and not
    /// done, so its event (with the number) still erases. One done already
    /// is not done again, whichever way it is heard of (it would erase
    /// what came after it); a later one is.
    #[tokio::test]
    async fn erasures_known_by_their_hashes_erase_the_contacts_they_name() {
        use crate::store::ContactProfile;
        let t = TempStore::new();
        let (texted, profiled, consented, listed_only, threaded, stranger) = (
            "+15550041",
            "+15550042",
            "+15550043",
            "+15550045",
            "+15550046",
            "+15550044",
        );
        t.store
            .accept(message(&t.store, texted), None)
            .await
            .unwrap();
        let profile = ContactProfile {
            name: Some("Ana".into()),
            ..ContactProfile::default()
        };
        assert!(matches!(
            t.store.set_profile(profiled, &profile).await.unwrap(),
            crate::store::ProfileWrite::Created
        ));
        t.store.change_consent(opt_in(consented)).await.unwrap();
        t.store
            .create_campaign(
                &campaign_record("cmp_0000000000000009_here", 1),
                &[listed_only.to_string()],
                &[],
                None,
            )
            .await
            .unwrap();
        let thread = Thread::new(threaded, crate::conversation::ThreadState::Open, Utc::now());
        assert!(t.store.apply_remote_thread(&thread, &[]).unwrap());
        let found = [texted, profiled, consented, listed_only, threaded];
        for c in found {
            assert!(
                !t.store.trees_holding(c.as_bytes()).unwrap().is_empty(),
                "{c}"
            );
        }
        let at = Utc::now();
        let mut list: Vec<_> = found.iter().map(|c| listed(c, at)).collect();
        list.push(listed(stranger, at));
        assert_eq!(t.store.apply_hashed_erasures(&list).await.unwrap(), 5);
        let done = |c: &str, at| {
            t.store
                .erasure_applied(&super::super::consent::tombstone_key(c), at)
                .unwrap()
        };
        for c in found {
            assert_eq!(t.store.trees_holding(c.as_bytes()).unwrap(), vec![], "{c}");
            assert_eq!(t.store.erased_at(c).unwrap(), Some(at), "{c}");
            assert!(done(c, at), "{c}");
        }
        // Nobody here: marked (refused from before it), not done.
        assert_eq!(t.store.erased_at(stranger).unwrap(), Some(at));
        assert!(!done(stranger, at));
        assert_eq!(t.store.erase_remote_contact(stranger, at).await.unwrap(), 0);
        assert!(done(stranger, at));

        // Texted again after the erasure: heard of again (the bucket's
        // watch starts again, the event comes late), nothing is erased.
        let later = t.store.new_outbound(
            "",
            texted,
            "hello again",
            1,
            "gsm7",
            false,
            None,
            at + chrono::Duration::minutes(1),
        );
        t.store.accept(later.clone(), None).await.unwrap();
        assert!(matches!(
            t.store.set_profile(texted, &profile).await.unwrap(),
            crate::store::ProfileWrite::Created
        ));
        assert_eq!(t.store.apply_hashed_erasures(&list).await.unwrap(), 0);
        assert_eq!(t.store.erase_remote_contact(texted, at).await.unwrap(), 0);
        assert!(t.store.get(&later.id).unwrap().is_some());
        assert_eq!(t.store.profile(texted).unwrap(), profile);
        // A later erasure is done.
        let again = at + chrono::Duration::minutes(2);
        assert_eq!(
            t.store
                .apply_hashed_erasures(&[listed(texted, again)])
                .await
                .unwrap(),
            1
        );
        assert!(t.store.get(&later.id).unwrap().is_none());
        assert_eq!(t.store.erased_at(texted).unwrap(), Some(again));
    }

    /// An erasure stopped after its mark (a crash) is not done: heard of
    /// again, it erases.
    #[tokio::test]
    async fn an_erasure_stopped_after_its_mark_is_done_when_heard_of_again() {
        let t = TempStore::new();
        let contact = "+15550051";
        t.store
            .accept(message(&t.store, contact), None)
            .await
            .unwrap();
        let at = Utc::now();
        t.store.mark_erased(contact, at).unwrap();
        assert_eq!(
            t.store
                .apply_hashed_erasures(&[listed(contact, at)])
                .await
                .unwrap(),
            1
        );
        assert_eq!(t.store.trees_holding(contact.as_bytes()).unwrap(), vec![]);
    }

    /// Another gateway's erasure applied late keeps what was made here
    /// after it: the messages and their thread in the inbox, an opt-in
    /// with its evidence and its ledger entry.
    #[tokio::test]
    async fn a_late_erasure_keeps_the_consent_and_messages_made_after_it() {
        let t = TempStore::new();
        let contact = "+15550052";
        let at = Utc::now() - chrono::Duration::days(20);
        let old = t.store.new_outbound(
            "",
            contact,
            "old",
            1,
            "gsm7",
            false,
            None,
            at - chrono::Duration::hours(1),
        );
        t.store.accept(old.clone(), None).await.unwrap();
        let later = message(&t.store, contact);
        t.store.accept(later.clone(), None).await.unwrap();
        t.store.change_consent(opt_in(contact)).await.unwrap();
        t.store.erase_remote_contact(contact, at).await.unwrap();
        assert!(t.store.get(&old.id).unwrap().is_none());
        assert!(t.store.get(&later.id).unwrap().is_some());
        assert!(t.store.thread_summary(contact).unwrap().is_some());
        let consent = t.store.consent(contact, None).unwrap();
        assert_eq!(consent.status, crate::store::ConsentStatus::OptedIn);
        assert_eq!(consent.evidence.unwrap().evidence, "form 7");
        assert_eq!(t.store.ledger(contact).unwrap().len(), 1);
    }

    /// Two erasures at once (a fleet's event and its list of erasures, or
    /// two contacts) of numbers in one campaign chunk: both go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_erasures_at_once_leave_neither_number_in_a_campaign() {
        let t = TempStore::new();
        for round in 0..20 {
            let (a, b) = (
                format!("+1555006{round:02}1"),
                format!("+1555006{round:02}2"),
            );
            let id = format!("cmp_00000000000000{round:02}_here");
            t.store
                .create_campaign(&campaign_record(&id, 2), &[a.clone(), b.clone()], &[], None)
                .await
                .unwrap();
            let at = Utc::now();
            let (x, y) = tokio::join!(
                t.store.erase_remote_contact(&a, at),
                t.store.erase_remote_contact(&b, at)
            );
            x.unwrap();
            y.unwrap();
            let mut left = Vec::new();
            t.store
                .campaign_numbers(&mut |n: &str| left.push(n.to_string()))
                .unwrap();
            assert!(
                !left.contains(&a) && !left.contains(&b),
                "round {round}: {left:?}"
            );
        }
    }

    /// Another gateway's campaign is kept as announced (the newest
    /// announcement), listed with this gateway's own in id order, never
    /// over one of this gateway's own; a cancel asked here is passed on
    /// as an event, the copy left as announced.
    #[tokio::test]
    async fn another_gateways_campaign_is_listed_and_its_cancel_passed_on() {
        let t = TempStore::new();
        let own = "cmp_0000000000000002_here";
        campaign_with(&t.store, own, &[message(&t.store, "+15550031")]).await;
        let mut record = t.store.campaign(own).unwrap().unwrap();
        assert_eq!(record.site, None);
        // Announced by "north": one older and one newer than ours.
        for id in ["cmp_0000000000000001_north", "cmp_0000000000000003_north"] {
            record.id = id.into();
            assert!(t
                .store
                .apply_remote_campaign(record.clone(), "north")
                .unwrap());
        }
        // Again, unchanged: nothing changes; ours is never replaced.
        assert!(!t
            .store
            .apply_remote_campaign(record.clone(), "north")
            .unwrap());
        let mut theirs_of_ours = record.clone();
        theirs_of_ours.id = own.into();
        theirs_of_ours.name = "not ours".into();
        assert!(!t
            .store
            .apply_remote_campaign(theirs_of_ours, "north")
            .unwrap());
        assert_eq!(t.store.campaign(own).unwrap().unwrap().name, "Spring");
        let ids = |before: Option<&str>, limit| {
            let page = t.store.campaigns(before, limit).unwrap();
            let ids: Vec<String> = page.items.iter().map(|c| c.id.clone()).collect();
            (ids, page.next_cursor)
        };
        assert_eq!(
            ids(None, 10).0,
            [
                "cmp_0000000000000003_north",
                own,
                "cmp_0000000000000001_north"
            ]
        );
        let (first, next) = ids(None, 2);
        assert_eq!(first, ["cmp_0000000000000003_north", own]);
        assert_eq!(
            ids(next.as_deref(), 2),
            (vec!["cmp_0000000000000001_north".to_string()], None)
        );
        let copy = t
            .store
            .campaign("cmp_0000000000000003_north")
            .unwrap()
            .unwrap();
        assert_eq!(copy.site.as_deref(), Some("north"));
        // A cancel asked here for theirs: passed on, the copy cancelling.
        assert!(t
            .store
            .request_campaign_cancel(&copy.id)
            .await
            .unwrap()
            .is_none());
        let asked = t
            .store
            .request_remote_campaign_cancel(&copy.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(asked.state, crate::store::CampaignState::Cancelling);
        let passed: Vec<_> = t
            .store
            .events_from(0, 100)
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e.kind == crate::store::FLEET_CAMPAIGN_CANCEL)
            .collect();
        assert_eq!(passed.len(), 1);
        assert_eq!(passed[0].1.data["id"], copy.id.as_str());
        assert_eq!(passed[0].1.data["site"], "north");
        // The copy stays as announced until the next announcement.
        let stored = t.store.campaign(&copy.id).unwrap().unwrap();
        assert_eq!(stored.state, copy.state);
        let mut cancelled = stored.clone();
        cancelled.state = crate::store::CampaignState::Cancelled;
        assert!(t.store.apply_remote_campaign(cancelled, "north").unwrap());
        let after = t
            .store
            .request_remote_campaign_cancel(&copy.id)
            .await
            .unwrap();
        assert_eq!(after.unwrap().state, crate::store::CampaignState::Cancelled);
    }

    /// Without a fleet an erasure is marked (a campaign batch composed
    /// before it is refused) and announces nothing.
    #[tokio::test]
    async fn a_single_gateway_erasure_announces_nothing() {
        let t = TempStore::new();
        let contact = "+15550023";
        t.store
            .accept(message(&t.store, contact), None)
            .await
            .unwrap();
        assert_eq!(t.store.erase_contact(contact).await.unwrap(), 1);
        assert!(t.store.erased_at(contact).unwrap().is_some());
        assert!(t
            .store
            .events_from(0, 100)
            .unwrap()
            .iter()
            .all(|(_, e)| e.kind != FLEET_CONTACT_ERASED));
    }

    #[tokio::test]
    async fn in_a_fleet_every_thread_change_carries_its_record_and_items() {
        let t = TempStore::new();
        t.store.set_fleet_threads(true);
        let now = Utc::now();
        let changed = t
            .store
            .change_thread(
                "+15550007",
                crate::conversation::ThreadState::Open,
                &[crate::store::ThreadChange::Note("on it".into())],
                Some("ana"),
                now,
            )
            .await
            .unwrap();
        let synced: Vec<_> = changed
            .events
            .iter()
            .filter(|e| e.kind == crate::store::FLEET_THREAD_EVENT)
            .collect();
        assert_eq!(synced.len(), 1);
        assert_eq!(synced[0].data["contact"], "+15550007");
        assert_eq!(synced[0].data["items"][0]["text"], "on it");
        assert_eq!(
            synced[0].data["items"][0]["id"],
            changed.items[0].id.as_str()
        );
    }
}
