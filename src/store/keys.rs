//! Key layouts of the sled trees. Big-endian numbers so that byte order is time
//! order; a 0x00 separator after variable-length text (numbers and ids never
//! contain it).

use chrono::{DateTime, Utc};

pub(crate) const SEP: u8 = 0x00;

/// Microseconds since the epoch, big-endian: sorts as time.
pub(crate) fn time_key(at: DateTime<Utc>) -> [u8; 8] {
    (at.timestamp_micros().max(0) as u64).to_be_bytes()
}

/// The time a key starting with [`time_key`] holds; None when it does not.
pub(crate) fn time_of(key: &[u8]) -> Option<DateTime<Utc>> {
    let micros = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    DateTime::from_timestamp_micros(i64::try_from(micros).ok()?)
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

/// `dedupe` value of a part of a multipart message: `part` and when it came
/// (milliseconds, big-endian), so old keys can be pruned. A complete
/// message's value is its id, which carries its time.
pub(crate) fn dedupe_part(at: DateTime<Utc>) -> Vec<u8> {
    let mut value = b"part".to_vec();
    value.extend_from_slice(&millis(at).to_be_bytes());
    value
}

/// When a `dedupe` value was written (see [`dedupe_part`]), in milliseconds.
pub(crate) fn dedupe_millis(value: &[u8]) -> Option<u64> {
    if let Some(ms) = value.strip_prefix(b"part") {
        return Some(u64::from_be_bytes(ms.try_into().ok()?));
    }
    parse_message_id(std::str::from_utf8(value).ok()?).map(|(ms, _)| ms)
}

/// The 32-bit FNV-1a hash of a contact, carried in message ids so that an
/// archived message can be found from its id alone (`contacts` maps the hash
/// back to the contact). Stable forever: ids on disk and in clients hold it.
pub(crate) fn contact_hash(contact: &str) -> u32 {
    contact.bytes().fold(0x811C_9DC5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// `contacts`: 0x00, hash, contact -> (): which contacts a message id's
/// hash may name (contacts never start with 0x00, so these keys stay apart
/// from the contacts' summaries). Written when a contact's first message
/// moves to the history: only archived messages are found through it.
pub(crate) fn contact_hash_key(hash: u32, contact: &str) -> Vec<u8> {
    let mut key = contact_hash_prefix(hash);
    key.extend_from_slice(contact.as_bytes());
    key
}

/// The contact of a [`contact_hash_key`] (None: another key of `contacts`,
/// a summary's).
pub(crate) fn contact_of_hash_key(key: &[u8]) -> Option<&[u8]> {
    match key.first() {
        Some(&SEP) => key.get(5..),
        _ => None,
    }
}

pub(crate) fn contact_hash_prefix(hash: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(5 + 16);
    key.push(SEP);
    key.extend_from_slice(&hash.to_be_bytes());
    key
}

/// A message id: `msg_`, 12 hex digits of milliseconds, 8 of the contact's
/// hash, 8 of process-unique salt. Ids sort by creation time.
pub(crate) fn message_id(at: DateTime<Utc>, contact: &str, salt: u32) -> String {
    format!(
        "msg_{:012x}{:08x}{salt:08x}",
        millis(at),
        contact_hash(contact)
    )
}

/// The smallest id of a message created at or after `at` (a range bound).
pub(crate) fn id_floor(at: DateTime<Utc>) -> String {
    format!("msg_{:012x}", millis(at))
}

/// Milliseconds since the epoch as ids carry them (48 bits).
pub(crate) fn millis(at: DateTime<Utc>) -> u64 {
    at.timestamp_millis().max(0) as u64 & 0xFFFF_FFFF_FFFF
}

/// The creation millisecond and contact hash an id carries; None for a
/// string that is not one of our ids.
pub(crate) fn parse_message_id(id: &str) -> Option<(u64, u32)> {
    let hex = id.strip_prefix("msg_")?;
    if hex.len() != 28 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let ms = u64::from_str_radix(hex.get(..12)?, 16).ok()?;
    let hash = u32::from_str_radix(hex.get(12..20)?, 16).ok()?;
    Some((ms, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn message_ids_carry_time_and_contact() {
        let at = Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap();
        let id = message_id(at, "+15551230000", 0xDEAD_BEEF);
        assert_eq!(id.len(), 4 + 28);
        assert_eq!(
            parse_message_id(&id),
            Some((at.timestamp_millis() as u64, contact_hash("+15551230000")))
        );
        assert!(id_floor(at).as_str() <= id.as_str());
        assert!(id.as_str() < id_floor(at + chrono::Duration::milliseconds(1)).as_str());
        for bad in [
            "",
            "msg_",
            "msg_xyz",
            "evt_0000",
            "msg_018f2a7c3b1d9e37a1c4",
        ] {
            assert_eq!(parse_message_id(bad), None, "{bad}");
        }
        // FNV-1a reference value (the hash is part of ids on disk: never change it).
        assert_eq!(contact_hash(""), 0x811C_9DC5);
        assert_eq!(contact_hash("a"), 0xE40C_292C);
    }
}
