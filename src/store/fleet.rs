//! Outbound messages of a fleet (`[cluster]`): a message taken from the
//! fleet's work queue, one given back to it, and another gateway's record of
//! a message applied here (the events stream).

use sled::Transactional;

use super::keys;
use super::outbound::{outbox_key, queue_message};
use super::query::touch_contact;
use super::records::{FleetLeg, Message};
use super::{from_json_tx, to_json, unwrap_tx, Result, Store};

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

impl Store {
    /// Take `message` from the fleet's work queue: store it as this
    /// gateway's to send (in the outbox, [`FleetLeg::Taken`]), unless it
    /// is known here already. No event is written: the gateway that
    /// accepted it announced it.
    pub fn take_from_fleet(&self, mut message: Message) -> Result<Taken> {
        message.fleet = Some(FleetLeg::Taken);
        let i = &self.inner;
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

    /// Give message `id` back: another gateway of the fleet claimed it
    /// first, so this one's copy leaves the outbox and follows what that
    /// gateway publishes. Whether it was given back (it was taken here and
    /// still waiting).
    pub async fn give_back_to_fleet(&self, id: &str) -> Result<bool> {
        let changed = self
            .update(id, |m| {
                if m.fleet != Some(FleetLeg::Taken) || !m.status.is_waiting() {
                    return false;
                }
                m.fleet = Some(FleetLeg::Handed);
                true
            })
            .await?;
        Ok(changed.is_some_and(|(m, _)| m.fleet == Some(FleetLeg::Handed)))
    }

    /// Apply another gateway's record of a message (the fleet's events
    /// stream), outbound or received there: kept as a [`FleetLeg::Handed`]
    /// record (never sent from here, no event, no webhook, no automation:
    /// the gateway where it happened did those), when it is newer than what
    /// is here. A message this gateway holds itself (taken here, or its
    /// own) is left alone. Whether anything changed.
    pub fn apply_remote_message(&self, mut remote: Message) -> Result<bool> {
        remote.fleet = Some(FleetLeg::Handed);
        let i = &self.inner;
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
        (&i.messages, &i.threads, &i.contacts, &i.recent)
            .transaction(|(messages, threads, contacts, recent)| {
                match messages.get(remote.id.as_bytes())? {
                    None => {
                        messages.insert(remote.id.as_bytes(), record.clone())?;
                        threads.insert(
                            keys::thread(&remote.contact, remote.created_at, &remote.id),
                            &[],
                        )?;
                        touch_contact(contacts, recent, &remote)?;
                        Ok(true)
                    }
                    Some(raw) => {
                        let known: Message = from_json_tx(remote.id.as_bytes(), &raw)?;
                        let newer = remote.history.len() > known.history.len()
                            || (remote.history.len() == known.history.len()
                                && remote.updated_at > known.updated_at);
                        if known.fleet != Some(FleetLeg::Handed) || !newer {
                            return Ok(false);
                        }
                        messages.insert(remote.id.as_bytes(), record.clone())?;
                        Ok(true)
                    }
                }
            })
            .map_err(unwrap_tx)
    }
}
