//! Key layouts of the sled trees. Big-endian numbers so that byte order is time
//! order; a 0x00 separator after variable-length text (numbers and ids never
//! contain it).

use chrono::{DateTime, Utc};

pub(crate) const SEP: u8 = 0x00;

/// Microseconds since the epoch, big-endian: sorts as time.
pub(crate) fn time_key(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp_micros().max(0) as u64).to_be_bytes()
}

/// `threads`: contact, time, id -> ().
pub(crate) fn thread(contact: &str, at: DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut key = thread_prefix(contact);
    key.extend_from_slice(&time_key(at));
    key.extend_from_slice(id.as_bytes());
    key
}

pub(crate) fn thread_prefix(contact: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(contact.len() + 1 + 8 + 24);
    key.extend_from_slice(contact.as_bytes());
    key.push(SEP);
    key
}

/// `sends`: contact, time, id -> category: when messages started going out.
pub(crate) fn send(contact: &str, at: DateTime<Utc>, id: &str) -> Vec<u8> {
    thread(contact, at, id)
}

/// `outbox`: due time, id -> ().
pub(crate) fn outbox(due: DateTime<Utc>, id: &str) -> Vec<u8> {
    let mut key = time_key(due).to_vec();
    key.extend_from_slice(id.as_bytes());
    key
}

/// `recent`: last activity, contact -> () (threads most recent first).
pub(crate) fn recent(at: DateTime<Utc>, contact: &str) -> Vec<u8> {
    let mut key = time_key(at).to_vec();
    key.extend_from_slice(contact.as_bytes());
    key
}

/// `mrs`: modem, TP-MR -> (part, id). The recipient is checked against the
/// message on look-up, loosely: a network may quote it in another format.
pub(crate) fn message_reference(modem: &str, mr: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(modem.len() + 2);
    key.extend_from_slice(modem.as_bytes());
    key.push(SEP);
    key.push(mr);
    key
}

/// `parts`: sender, reference, total -> prefix of the parts of one message.
pub(crate) fn concat_prefix(modem: &str, sender: &str, reference: u16, total: u8) -> Vec<u8> {
    let mut key = Vec::with_capacity(modem.len() + sender.len() + 5);
    key.extend_from_slice(modem.as_bytes());
    key.push(SEP);
    key.extend_from_slice(sender.as_bytes());
    key.push(SEP);
    key.extend_from_slice(&reference.to_be_bytes());
    key.push(total);
    key
}
