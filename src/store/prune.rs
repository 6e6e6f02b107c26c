//! Pruning of the indexes that grow with traffic but are only needed for a
//! while: the per-contact send log (rate limits look back a day at most),
//! inbound dedupe keys (an SMS is re-read from a modem within minutes of
//! arriving, by a sweep after a crash) and idempotency keys (clients retry
//! within hours). sled keeps some 200-300 bytes of memory per page whatever
//! the entries, so an index that only ever grows would grow the daemon's
//! memory with it (the messages themselves move to the history files).

use chrono::{DateTime, Duration, Utc};

use super::keys;
use super::{Result, Store};

/// How long a send stays in the send log: the longest rate-limit window
/// (marketing per day) with a day to spare.
pub const SEND_LOG_KEEP: Duration = Duration::days(2);
/// How long an inbound PDU is remembered as stored.
pub const DEDUPE_KEEP: Duration = Duration::days(7);
/// How long an `Idempotency-Key` returns its original message.
pub const IDEMPOTENCY_KEEP: Duration = Duration::days(7);
/// How long events (and their delivered webhook deliveries) stay for
/// `GET /v1/events` catch-up and stream resumes; events with deliveries still
/// open or dead stay until those are settled.
pub const EVENTS_KEEP: Duration = Duration::days(7);

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sends: usize,
    pub dedupe: usize,
    pub idempotency: usize,
    /// Marks of other gateways' events counted in the metrics (a fleet).
    pub remote_marks: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.sends + self.dedupe + self.idempotency + self.remote_marks
    }
}

impl Store {
    /// Note a housekeeping step that failed (expiry, moves to the history,
    /// retention, pruning, compaction): the caller logs it, this counts it.
    pub fn count_housekeeping_error(&self) {
        self.inner
            .housekeeping_errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Housekeeping steps that failed since the store opened (a counter for
    /// `/metrics`: `smsgate_housekeeping_errors_total`).
    pub fn housekeeping_errors(&self) -> u64 {
        self.inner
            .housekeeping_errors
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Remove send-log entries, dedupe keys and idempotency keys past their
    /// time (the constants above) as of `now`; durable when it returns.
    /// Entries whose time cannot be read are kept.
    pub async fn prune_indexes(&self, now: DateTime<Utc>) -> Result<Pruned> {
        let i = &self.inner;
        let mut pruned = Pruned::default();

        // Send log: contact, SEP, time, id.
        let before = keys::time_key(now - SEND_LOG_KEEP);
        for entry in i.sends.iter() {
            let (key, _) = entry?;
            let time = key
                .iter()
                .position(|b| *b == keys::SEP)
                .and_then(|sep| key.get(sep + 1..sep + 9));
            if time.is_some_and(|t| t < before.as_slice()) {
                i.sends.remove(&key)?;
                pruned.sends += 1;
            }
        }

        // Dedupe: the value is the message id or `part` and a time.
        let before = keys::millis(now - DEDUPE_KEEP);
        for entry in i.dedupe.iter() {
            let (key, value) = entry?;
            if keys::dedupe_millis(&value).is_some_and(|ms| ms < before) {
                i.dedupe.remove(&key)?;
                pruned.dedupe += 1;
            }
        }

        // Idempotency keys: the record names the message, whose id carries
        // its time.
        let before = keys::millis(now - IDEMPOTENCY_KEEP);
        for entry in i.idempotency.iter() {
            let (key, value) = entry?;
            let made = serde_json::from_slice::<serde_json::Value>(&value)
                .ok()
                .and_then(|v| v.get("id")?.as_str().and_then(keys::parse_message_id))
                .map(|(ms, _)| ms);
            if made.is_some_and(|ms| ms < before) {
                i.idempotency.remove(&key)?;
                pruned.idempotency += 1;
            }
        }

        // Marks of other gateways' events: their logs keep events as long
        // as this one does, a day more for their clocks.
        pruned.remote_marks = self.prune_remote_marks(now - EVENTS_KEEP - Duration::days(1))?;

        if pruned.total() > 0 {
            self.sync().await?;
        }
        Ok(pruned)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::TempStore;
    use super::super::*;
    use super::*;

    fn inbound<'a>(
        pdu: &'a [u8],
        text: &'a str,
        concat: Option<crate::pdu::Concat>,
    ) -> InboundPart<'a> {
        InboundPart {
            modem: "m1",
            own_number: "+15550000000",
            raw_pdu: pdu,
            sender: "+15557770000",
            text,
            alphabet: "gsm7",
            network_time: Utc::now(),
            concat,
            error: None,
        }
    }

    #[tokio::test]
    async fn old_send_log_dedupe_and_idempotency_entries_go() {
        let t = TempStore::new();
        let now = Utc::now();
        // A keyed accept, then its first move to `sending` (a send-log entry).
        let m = t
            .store
            .new_outbound("", "+15557770000", "hi", 1, "gsm7", false, None, now);
        let key = IdempotencyKey {
            key: "k-1".into(),
            fingerprint: "f".into(),
        };
        t.store.accept(m.clone(), Some(key.clone())).await.unwrap();
        t.store
            .update(&m.id, |m| {
                m.transition(Utc::now(), MessageStatus::Sending);
                true
            })
            .await
            .unwrap();
        assert_eq!(
            t.store
                .sends_since("+15557770000", now - Duration::hours(1))
                .unwrap()
                .len(),
            1
        );
        // A single SMS and one part of a multipart one.
        t.store
            .receive(inbound(b"pdu-1", "one", None))
            .await
            .unwrap();
        let part = Some(crate::pdu::Concat {
            reference: 9,
            total: 2,
            sequence: 1,
        });
        t.store
            .receive(inbound(b"pdu-2", "half", part))
            .await
            .unwrap();

        // Nothing is old yet.
        assert_eq!(t.store.prune_indexes(now).await.unwrap(), Pruned::default());
        assert!(matches!(
            t.store
                .receive(inbound(b"pdu-1", "one", None))
                .await
                .unwrap(),
            ReceiveOutcome::Duplicate
        ));

        // Two days on, the send log entry goes; a week on, the rest.
        let pruned = t
            .store
            .prune_indexes(now + Duration::days(2) + Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!((pruned.sends, pruned.dedupe, pruned.idempotency), (1, 0, 0));
        let pruned = t
            .store
            .prune_indexes(now + Duration::days(8))
            .await
            .unwrap();
        assert_eq!((pruned.sends, pruned.dedupe, pruned.idempotency), (0, 2, 1));
        assert_eq!(
            t.store
                .prune_indexes(now + Duration::days(8))
                .await
                .unwrap()
                .total(),
            0
        );

        // The key no longer replays: a new message with it is accepted anew.
        let again =
            t.store
                .new_outbound("", "+15557770000", "hi", 1, "gsm7", false, None, Utc::now());
        assert!(matches!(
            t.store.accept(again, Some(key)).await.unwrap(),
            Accepted::New(_)
        ));
    }

    #[test]
    fn dedupe_values_carry_their_time() {
        let at = Utc::now();
        let ms = at.timestamp_millis() as u64;
        assert_eq!(keys::dedupe_millis(&keys::dedupe_part(at)), Some(ms));
        let id = keys::message_id(at, "+1555", 1);
        assert_eq!(keys::dedupe_millis(id.as_bytes()), Some(ms));
        for bad in [&b"part"[..], b"part123", b"", b"\xff\xfe"] {
            assert_eq!(keys::dedupe_millis(bad), None);
        }
    }
}
