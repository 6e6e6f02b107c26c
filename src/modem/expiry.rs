//! Time-driven state changes: a sent message with no final status report by
//! its validity plus one hour becomes `expired`; a multipart inbound message
//! with parts still missing after the reassembly timeout is delivered marked
//! incomplete.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::store::{MessageStatus, Store};

/// How often the checks run.
pub const PERIOD: Duration = Duration::from_secs(30);

/// A housekeeping step that failed: logged at `error` and counted
/// ([`Store::housekeeping_errors`], shown by `/metrics`), never dropped.
fn failed(store: &Store, step: &str, error: &crate::store::StoreError) {
    store.count_housekeeping_error();
    tracing::error!(step, %error, "housekeeping step failed");
}

/// One pass: returns (expired, incomplete) counts. A step that fails is
/// logged and counted; the others still run.
pub async fn run_once(store: &Store, reassembly_timeout: Duration) -> (usize, usize) {
    let now = Utc::now();
    let mut expired = 0;
    let due = store.past_deadline(now).unwrap_or_else(|e| {
        failed(
            store,
            "listing sent messages past their report deadline",
            &e,
        );
        Vec::new()
    });
    for id in due {
        let changed = store
            .update(&id, |m| {
                if m.status != MessageStatus::Sent {
                    return false;
                }
                m.report_deadline = None;
                m.settle_with_error(
                    now,
                    MessageStatus::Expired,
                    "expired",
                    "no final status report by the validity period plus one hour",
                );
                true
            })
            .await;
        match changed {
            Ok(Some((m, _))) if m.status == MessageStatus::Expired => expired += 1,
            Ok(_) => {}
            Err(e) => failed(store, "expiring a sent message", &e),
        }
    }
    let timeout = chrono::Duration::from_std(reassembly_timeout).unwrap_or(chrono::Duration::MAX);
    let incomplete = match store.expire_partials(timeout).await {
        Ok(v) => v.len(),
        Err(e) => {
            failed(store, "delivering incomplete multipart messages", &e);
            0
        }
    };
    (expired, incomplete)
}

/// Retention: bodies of settled messages older than `days` are blanked.
pub async fn purge(store: &Store, days: u32) -> usize {
    let before = Utc::now() - chrono::Duration::days(i64::from(days));
    match store.purge_bodies_before(before).await {
        Ok(n) => n,
        Err(e) => {
            failed(store, "retention", &e);
            0
        }
    }
}

/// Run the checks every [`PERIOD`] (retention, index pruning and the
/// compaction of history files once an hour; settled messages quiet for
/// `archive_after` move to the history files) until `stop` turns true.
pub async fn run(
    store: Store,
    reassembly_timeout: Duration,
    retention_days: Option<u32>,
    archive_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let archive_after = chrono::Duration::from_std(archive_after).unwrap_or(chrono::Duration::MAX);
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (expired, incomplete) = run_once(&store, reassembly_timeout).await;
                if expired + incomplete > 0 {
                    tracing::info!(expired, incomplete, "housekeeping");
                }
                match store.archive_all_settled(archive_after).await {
                    Ok(0) => {}
                    Ok(moved) => tracing::debug!(moved, "settled messages moved to the history files"),
                    Err(e) => failed(&store, "moving settled messages to the history files", &e),
                }
                if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                    last_purge = Some(tokio::time::Instant::now());
                    hourly(&store, retention_days).await;
                }
                // Last: what this tick, a burst before it and sled's
                // delayed reclamation freed.
                if let Some(freed) = crate::memory::give_back_freed_memory(crate::memory::TRIM_ABOVE) {
                    tracing::debug!(freed, "freed memory given back to the system");
                }
                // For /metrics, which reads it rather than walk the heap.
                crate::memory::measure_heap();
            }
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

/// The hourly steps: retention, index and event pruning, compaction.
async fn hourly(store: &Store, retention_days: Option<u32>) {
    if let Some(days) = retention_days {
        let purged = purge(store, days).await;
        if purged > 0 {
            tracing::info!(purged, days, "retention: message bodies blanked");
        }
    }
    match store.prune_indexes(Utc::now()).await {
        Ok(p) if p.total() > 0 => tracing::info!(
            sends = p.sends,
            dedupe = p.dedupe,
            idempotency = p.idempotency,
            "pruned indexes past their time"
        ),
        Ok(_) => {}
        Err(e) => failed(store, "pruning indexes", &e),
    }
    match store
        .prune_events_before(Utc::now() - crate::store::EVENTS_KEEP)
        .await
    {
        Ok((0, 0)) => {}
        Ok((events, deliveries)) => {
            tracing::info!(events, deliveries, "pruned events past their time")
        }
        Err(e) => failed(store, "pruning events", &e),
    }
    // After retention: what it zeroed this hour is given back now.
    if let Err(e) = store.compact_history_now().await {
        failed(store, "compacting the history files", &e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;
    use crate::store::PartStatus;

    /// A sent message to `to` whose status report is overdue at `now`.
    async fn sent_past_its_deadline(
        t: &TempStore,
        to: &str,
        now: chrono::DateTime<Utc>,
    ) -> crate::store::Message {
        let m = t
            .store
            .new_outbound("", to, "x", 1, "gsm7", true, None, now);
        t.store.accept(m.clone(), None).await.unwrap();
        t.store
            .update(&m.id, |m| {
                m.part_status[0].status = PartStatus::Sent;
                m.report_deadline = Some(now - chrono::Duration::seconds(1));
                m.transition(now, MessageStatus::Sent);
                true
            })
            .await
            .unwrap();
        m
    }

    #[tokio::test]
    async fn a_sent_message_without_a_final_report_expires() {
        let t = TempStore::new();
        let now = Utc::now();
        let m = sent_past_its_deadline(&t, "+15550000001", now).await;
        assert_eq!(run_once(&t.store, Duration::from_secs(600)).await, (1, 0));
        let m = t.store.get(&m.id).unwrap().unwrap();
        assert_eq!(m.status, MessageStatus::Expired);
        assert_eq!(m.error.unwrap().code, "expired");
        let kinds: Vec<_> = t
            .store
            .events_after(None, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert!(kinds.contains(&"message.expired".to_string()));
        assert_eq!(run_once(&t.store, Duration::from_secs(600)).await, (0, 0));
    }

    #[tokio::test]
    async fn retention_blanks_old_settled_bodies_only() {
        let t = TempStore::new();
        let old = Utc::now() - chrono::Duration::days(40);
        let settled = t.store.new_outbound(
            "",
            "+15550000002",
            "old and done",
            1,
            "gsm7",
            false,
            None,
            old,
        );
        let waiting = t.store.new_outbound(
            "",
            "+15550000002",
            "old but queued",
            1,
            "gsm7",
            false,
            None,
            old,
        );
        let fresh = t.store.new_outbound(
            "",
            "+15550000002",
            "new",
            1,
            "gsm7",
            false,
            None,
            Utc::now(),
        );
        for m in [&settled, &waiting, &fresh] {
            t.store.accept(m.clone(), None).await.unwrap();
        }
        t.store
            .update(&settled.id, |m| {
                m.transition(old, MessageStatus::Cancelled);
                true
            })
            .await
            .unwrap();
        assert_eq!(purge(&t.store, 30).await, 1);
        assert_eq!(t.store.get(&settled.id).unwrap().unwrap().body, "");
        assert_eq!(
            t.store.get(&waiting.id).unwrap().unwrap().body,
            "old but queued"
        );
        assert_eq!(t.store.get(&fresh.id).unwrap().unwrap().body, "new");
        assert_eq!(
            t.store
                .thread_summary("+15550000002")
                .unwrap()
                .unwrap()
                .total,
            3,
            "counts stay"
        );
    }

    /// A step that fails is counted (for `/metrics`) and the pass goes on.
    #[tokio::test]
    async fn a_failing_step_is_counted_and_the_others_still_run() {
        let t = TempStore::new();
        let now = Utc::now();
        // A sent message past its deadline, and a record nobody can read
        // that the deadline index also names.
        let m = sent_past_its_deadline(&t, "+15550000003", now).await;
        let broken = t
            .store
            .new_id("+15550000004", now - chrono::Duration::hours(1));
        t.store
            .corrupt_for_test(&broken, now - chrono::Duration::hours(1));
        assert_eq!(t.store.housekeeping_errors(), 0);
        assert_eq!(run_once(&t.store, Duration::from_secs(600)).await, (1, 0));
        assert_eq!(t.store.housekeeping_errors(), 1);
        assert_eq!(
            t.store.get(&m.id).unwrap().unwrap().status,
            MessageStatus::Expired
        );
    }

    /// The hourly pass gives back what erasure zeroed (housekeeping's own
    /// thresholds: under half live, at least a MiB back).
    #[tokio::test]
    async fn the_hourly_pass_compacts_the_history_files() {
        let t = TempStore::new();
        let at = Utc::now() - chrono::Duration::hours(2);
        let body = "y".repeat(1000);
        let messages: Vec<_> = (0..1500)
            .map(|k| {
                let contact = if k % 4 == 0 {
                    "+15550000005"
                } else {
                    "+15550000006"
                };
                let mut m = t
                    .store
                    .new_outbound("", contact, &body, 1, "gsm7", false, None, at);
                m.transition(at, MessageStatus::Cancelled);
                m.updated_at = at;
                m
            })
            .collect();
        for chunk in messages.chunks(250) {
            let accepts = chunk.iter().map(|m| t.store.accept(m.clone(), None));
            for outcome in futures_util::future::join_all(accepts).await {
                outcome.unwrap();
            }
        }
        assert_eq!(
            t.store
                .archive_all_settled(chrono::Duration::minutes(10))
                .await
                .unwrap(),
            1500
        );
        let history = || -> u64 {
            std::fs::read_dir(t.dir.join("history"))
                .unwrap()
                .map(|f| f.unwrap().metadata().unwrap().len())
                .sum()
        };
        let filled = history();
        assert_eq!(t.store.erase_contact("+15550000006").await.unwrap(), 1125);
        // Erasure zeroes in place: nothing given back yet.
        assert_eq!(history(), filled);
        hourly(&t.store, None).await;
        assert_eq!(t.store.housekeeping_errors(), 0);
        // A quarter of the records are left (all about one size), copied as
        // they were.
        let left = history();
        assert!(
            left * 4 < filled + filled / 50 && left * 4 > filled - filled / 50,
            "{left} of {filled} bytes"
        );
        let kept = t.store.thread("+15550000005", None, 500).unwrap();
        assert_eq!(kept.items.len(), 375);
        assert!(kept.items.iter().all(|m| m.body == body));
    }
}
