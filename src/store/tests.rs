//! Store behaviour: accept and idempotency, state changes and what follows from
//! them, inbound dedupe and reassembly, reads with cursors, restarts.

use chrono::{Duration, Utc};

use super::test_support::TempStore;
use super::*;
use crate::pdu::Concat;

fn outbound(store: &Store, to: &str, body: &str) -> Message {
    store.new_outbound("", to, body, 1, "gsm7", true, None, Utc::now())
}

fn part<'a>(
    pdu: &'a [u8],
    sender: &'a str,
    text: &'a str,
    concat: Option<Concat>,
) -> InboundPart<'a> {
    InboundPart {
        modem: "m1",
        own_number: "+15550000000",
        raw_pdu: pdu,
        sender,
        text,
        alphabet: "gsm7",
        network_time: Utc::now(),
        concat,
        error: None,
    }
}

fn concat(sequence: u8, total: u8) -> Option<Concat> {
    Some(Concat {
        reference: 42,
        total,
        sequence,
    })
}

#[tokio::test]
async fn accept_is_replayed_by_key_and_refused_with_another_body() {
    let t = TempStore::new();
    let key = |fingerprint: &str| {
        Some(IdempotencyKey {
            key: "k1".into(),
            fingerprint: fingerprint.into(),
        })
    };
    let first = outbound(&t.store, "+15551230001", "hello");
    let Accepted::New(stored) = t.store.accept(first.clone(), key("a")).await.unwrap() else {
        panic!("not new")
    };
    assert_eq!(stored.status, MessageStatus::Queued);
    let second = outbound(&t.store, "+15551230001", "hello");
    assert_eq!(
        t.store.accept(second, key("a")).await.unwrap(),
        Accepted::Replay(first.clone())
    );
    let third = outbound(&t.store, "+15551230001", "other");
    assert_eq!(
        t.store.accept(third, key("b")).await.unwrap(),
        Accepted::KeyReused
    );
    assert_eq!(
        t.store.outbox_len(),
        1,
        "replays and refusals store nothing"
    );
    assert_eq!(t.store.get(&first.id).unwrap(), Some(first));
}

#[tokio::test]
async fn state_changes_keep_outbox_mrs_sticky_and_events_in_step() {
    let t = TempStore::new();
    let m = outbound(&t.store, "+15551230002", "hi");
    t.store.accept(m.clone(), None).await.unwrap();
    assert_eq!(t.store.due(Utc::now(), 10).unwrap().len(), 1);

    let now = Utc::now();
    let (sending, events) = t
        .store
        .update(&m.id, |m| {
            m.modem = Some("m1".into());
            m.part_status[0].status = PartStatus::Sending;
            m.transition(now, MessageStatus::Sending);
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert!(events.is_empty(), "sending announces nothing");
    assert_eq!(sending.status, MessageStatus::Sending);
    assert!(
        t.store.due(Utc::now(), 10).unwrap().is_empty(),
        "left the outbox"
    );

    let (_, events) = t
        .store
        .update(&m.id, |m| {
            m.part_status[0].status = PartStatus::Sent;
            m.part_status[0].mr = Some(7);
            m.report_deadline = Some(now + Duration::hours(25));
            m.transition(now, MessageStatus::Sent);
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "message.sent");
    assert_eq!(events[0].data["id"], m.id.as_str());
    let (found, seq) = t
        .store
        .find_by_reference("m1", 7, "5551230002")
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.id.as_str(), seq),
        (m.id.as_str(), 1),
        "national form matches"
    );
    assert!(t
        .store
        .find_by_reference("m1", 7, "+15559999999")
        .unwrap()
        .is_none());
    assert!(t
        .store
        .find_by_reference("m2", 7, "+15551230002")
        .unwrap()
        .is_none());
    assert_eq!(
        t.store.sticky_modem("+15551230002").unwrap().as_deref(),
        Some("m1")
    );
    assert!(t.store.past_deadline(now).unwrap().is_empty());
    assert_eq!(
        t.store.past_deadline(now + Duration::hours(26)).unwrap(),
        vec![m.id.clone()]
    );

    let (delivered, events) = t
        .store
        .update(&m.id, |m| {
            m.transition(now, MessageStatus::Delivered);
            true
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events[0].kind, "message.delivered");
    assert_eq!(delivered.history.len(), 4);
    assert!(t
        .store
        .past_deadline(now + Duration::hours(26))
        .unwrap()
        .is_empty());
    let all = t.store.events_after(None, 10).unwrap();
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["message.sent", "message.delivered"]
    );
    assert_eq!(
        t.store.events_after(Some(&all[0].id), 10).unwrap(),
        vec![all[1].clone()]
    );
    assert!(t
        .store
        .update("msg_missing", |_| true)
        .await
        .unwrap()
        .is_none());
}

/// A message whose callback asks for every status announces each step (and
/// an interim status report), in the transaction of the step; one without
/// pays for none of them.
#[tokio::test]
async fn a_callback_that_hears_every_status_gets_an_event_per_step() {
    let t = TempStore::new();
    let now = Utc::now();
    let every = |every_status| Callback {
        every_status,
        target: serde_json::json!({"url": "http://app.lan/status"}),
    };
    let mut watched = outbound(&t.store, "+15551230010", "watched");
    watched.callback = Some(every(true));
    let mut settled_only = outbound(&t.store, "+15551230011", "settled only");
    settled_only.callback = Some(every(false));
    let plain = outbound(&t.store, "+15551230012", "plain");
    let mut later = t.store.new_outbound(
        "",
        "+15551230013",
        "later",
        1,
        "gsm7",
        true,
        Some(now + Duration::hours(1)),
        now,
    );
    later.callback = Some(every(true));
    for m in [&watched, &settled_only, &plain, &later] {
        assert!(matches!(
            t.store.accept(m.clone(), None).await.unwrap(),
            Accepted::New(_)
        ));
    }
    // A keyed accept takes the other transaction: the same event.
    let mut keyed = outbound(&t.store, "+15551230014", "keyed");
    keyed.callback = Some(every(true));
    let key = IdempotencyKey {
        key: "k-every".into(),
        fingerprint: "f".into(),
    };
    t.store
        .accept(keyed.clone(), Some(key.clone()))
        .await
        .unwrap();
    let replay = outbound(&t.store, "+15551230014", "keyed");
    assert!(matches!(
        t.store.accept(replay, Some(key)).await.unwrap(),
        Accepted::Replay(_)
    ));
    for m in [&watched, &settled_only, &plain] {
        let step = |status: MessageStatus| {
            move |m: &mut Message| {
                m.transition(now, status);
                true
            }
        };
        t.store
            .update(&m.id, step(MessageStatus::Sending))
            .await
            .unwrap();
        t.store
            .update(&m.id, step(MessageStatus::Sent))
            .await
            .unwrap();
        // The service centre is still trying (TP-ST 0x21), then delivers.
        t.store
            .update(&m.id, |m| {
                m.part_status[0].report_status = Some(0x21);
                true
            })
            .await
            .unwrap();
        // The same report again is no news.
        t.store
            .update(&m.id, |m| {
                m.part_status[0].report_status = Some(0x21);
                true
            })
            .await
            .unwrap();
        t.store
            .update(&m.id, step(MessageStatus::Delivered))
            .await
            .unwrap();
    }
    t.store
        .cancel_waiting(&later.id, now, "cancelled by API")
        .await
        .unwrap();
    let events = t.store.events_after(None, 100).unwrap();
    let of = |id: &str| -> Vec<&str> {
        events
            .iter()
            .filter(|e| e.data["id"] == id)
            .map(|e| e.kind.as_str())
            .collect()
    };
    assert_eq!(
        of(&watched.id),
        [
            "message.queued",
            "message.sending",
            "message.sent",
            "message.buffered",
            "message.delivered"
        ]
    );
    assert_eq!(of(&settled_only.id), ["message.sent", "message.delivered"]);
    assert_eq!(of(&plain.id), ["message.sent", "message.delivered"]);
    assert_eq!(of(&later.id), ["message.scheduled", "message.cancelled"]);
    assert_eq!(of(&keyed.id), ["message.queued"], "once, not on the replay");
    // Each event carries the callback as the message had it.
    let first = events.iter().find(|e| e.data["id"] == watched.id.as_str());
    assert_eq!(
        first.map(|e| e.data["callback"]["target"]["url"].clone()),
        Some(serde_json::json!("http://app.lan/status"))
    );
}

#[tokio::test]
async fn scheduled_messages_wait_for_their_time() {
    let t = TempStore::new();
    let now = Utc::now();
    let later = now + Duration::minutes(10);
    let m = t.store.new_outbound(
        "",
        "+15551230003",
        "later",
        1,
        "gsm7",
        false,
        Some(later),
        now,
    );
    assert_eq!(m.status, MessageStatus::Scheduled);
    t.store.accept(m, None).await.unwrap();
    assert!(t.store.due(now, 10).unwrap().is_empty());
    assert_eq!(t.store.due(later, 10).unwrap().len(), 1);
    let next = t.store.next_due().unwrap().unwrap();
    assert!((next - later).num_milliseconds().abs() <= 1);
}

#[tokio::test]
async fn restart_turns_in_flight_parts_into_unknown_and_resumes_the_rest() {
    let mut t = TempStore::new();
    let in_flight = outbound(&t.store, "+15551230004", "a");
    let between = t
        .store
        .new_outbound("", "+15551230005", "b", 2, "gsm7", false, None, Utc::now());
    for m in [&in_flight, &between] {
        t.store.accept(m.clone(), None).await.unwrap();
    }
    let now = Utc::now();
    t.store
        .update(&in_flight.id, |m| {
            m.part_status[0].status = PartStatus::Sending;
            m.transition(now, MessageStatus::Sending);
            true
        })
        .await
        .unwrap();
    t.store
        .update(&between.id, |m| {
            m.part_status[0].status = PartStatus::Sent;
            m.part_status[0].mr = Some(1);
            m.transition(now, MessageStatus::Sending);
            true
        })
        .await
        .unwrap();
    t.restart();
    let store = &t.store;
    let unknown = store.recover_in_flight().await.unwrap();
    assert_eq!(unknown, vec![in_flight.id.clone()]);
    assert_eq!(
        store.get(&in_flight.id).unwrap().unwrap().status,
        MessageStatus::Unknown
    );
    let resumed = store.get(&between.id).unwrap().unwrap();
    assert_eq!(resumed.status, MessageStatus::Queued);
    assert_eq!(store.due(Utc::now(), 10).unwrap()[0].id, between.id);
}

#[tokio::test]
async fn inbound_single_is_stored_once() {
    let t = TempStore::new();
    let pdu = [1, 2, 3];
    let outcome = t
        .store
        .receive(part(&pdu, "+15551230006", "C", None))
        .await
        .unwrap();
    let ReceiveOutcome::Complete(message, events) = outcome else {
        panic!("not complete")
    };
    assert_eq!(message.body, "C");
    assert_eq!(message.direction, Direction::Inbound);
    assert_eq!(events[0].kind, "message.received");
    assert_eq!(
        t.store
            .receive(part(&pdu, "+15551230006", "C", None))
            .await
            .unwrap(),
        ReceiveOutcome::Duplicate
    );
    let thread = t.store.thread("+15551230006", None, 50).unwrap();
    assert_eq!(thread.items.len(), 1);
    assert_eq!(
        t.store.sticky_modem("+15551230006").unwrap().as_deref(),
        Some("m1")
    );
    let summary = t.store.thread_summary("+15551230006").unwrap().unwrap();
    assert_eq!((summary.unread, summary.total), (1, 1));
}

#[tokio::test]
async fn multipart_out_of_order_with_duplicates() {
    let t = TempStore::new();
    let sender = "+15551230007";
    let r = |pdu: &'static [u8], text: &'static str, seq| part(pdu, sender, text, concat(seq, 3));
    assert_eq!(
        t.store.receive(r(b"p3", "!", 3)).await.unwrap(),
        ReceiveOutcome::Partial { have: 1, total: 3 }
    );
    assert_eq!(
        t.store.receive(r(b"p3", "!", 3)).await.unwrap(),
        ReceiveOutcome::Duplicate
    );
    // Same part again with other bytes (a resend): kept once.
    assert_eq!(
        t.store.receive(r(b"p3-again", "!", 3)).await.unwrap(),
        ReceiveOutcome::Partial { have: 1, total: 3 }
    );
    t.store.receive(r(b"p1", "Hello, ", 1)).await.unwrap();
    let ReceiveOutcome::Complete(message, _) = t.store.receive(r(b"p2", "world", 2)).await.unwrap()
    else {
        panic!("not complete")
    };
    assert_eq!(message.body, "Hello, world!");
    assert_eq!(message.parts, 3);
    assert!(!message.incomplete);
}

#[tokio::test]
async fn incomplete_sets_are_delivered_after_the_timeout() {
    let t = TempStore::new();
    t.store
        .receive(part(b"q1", "+15551230008", "first half", concat(1, 2)))
        .await
        .unwrap();
    assert!(t
        .store
        .expire_partials(Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    let delivered = t.store.expire_partials(Duration::zero()).await.unwrap();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].incomplete);
    assert_eq!(delivered[0].body, "first half[…]");
    assert!(delivered[0].history[0]
        .note
        .as_deref()
        .unwrap()
        .contains("2"));
    assert!(t
        .store
        .expire_partials(Duration::zero())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn thread_pages_go_back_in_time_and_lists_filter() {
    let t = TempStore::new();
    let contact = "+15551230009";
    let mut ids = Vec::new();
    for n in 0..7 {
        let mut m = outbound(&t.store, contact, &format!("m{n}"));
        m.created_at += Duration::milliseconds(n);
        ids.push(m.id.clone());
        t.store.accept(m, None).await.unwrap();
    }
    let mut other = outbound(&t.store, "+15559999999", "other");
    other.created_at += Duration::seconds(1);
    t.store.accept(other, None).await.unwrap();
    let page = t.store.thread(contact, None, 3).unwrap();
    let bodies: Vec<_> = page.items.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["m4", "m5", "m6"], "the last three, oldest first");
    let page2 = t
        .store
        .thread(contact, page.next_cursor.as_deref(), 3)
        .unwrap();
    assert_eq!(
        page2
            .items
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        ["m1", "m2", "m3"]
    );
    let page3 = t
        .store
        .thread(contact, page2.next_cursor.as_deref(), 3)
        .unwrap();
    assert_eq!(page3.items.len(), 1);
    assert_eq!(page3.next_cursor, None);
    assert!(t.store.thread(contact, Some("zz"), 3).is_err());

    let filter = MessageFilter {
        contact: Some(contact.into()),
        ..MessageFilter::default()
    };
    let listed = t.store.list(&filter, None, 5).unwrap();
    assert_eq!(listed.items.len(), 5);
    assert_eq!(listed.items[0].body, "m6", "newest first");
    let rest = t
        .store
        .list(&filter, listed.next_cursor.as_deref(), 5)
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    let all = t.store.list(&MessageFilter::default(), None, 100).unwrap();
    assert_eq!(all.items.len(), 8);
    let inbound = MessageFilter {
        direction: Some(Direction::Inbound),
        ..MessageFilter::default()
    };
    assert!(t.store.list(&inbound, None, 100).unwrap().items.is_empty());

    let threads = t.store.threads(None, 10).unwrap();
    assert_eq!(threads.items.len(), 2);
    assert_eq!(
        threads.items[0].contact, "+15559999999",
        "most recent first"
    );
    assert_eq!(threads.items[1].total, 7);
}

#[tokio::test]
async fn a_deferred_update_is_seen_at_once_and_carried_to_disk_by_the_next_durable_write() {
    let mut t = TempStore::new();
    let a = outbound(&t.store, "+15551230101", "first");
    let b = outbound(&t.store, "+15551230102", "second");
    for m in [&a, &b] {
        t.store.accept(m.clone(), None).await.unwrap();
    }
    let now = Utc::now();
    let (outcome, durability) = t
        .store
        .update_deferred(&a.id, |m| {
            m.transition(now, MessageStatus::Sending);
            true
        })
        .unwrap();
    assert_eq!(outcome.unwrap().0.status, MessageStatus::Sending);
    assert_eq!(
        t.store.get(&a.id).unwrap().unwrap().status,
        MessageStatus::Sending,
        "readers see it before it is durable"
    );
    // A durable write of another message flushes the deferred one with it;
    // waiting afterwards returns without another flush.
    t.store
        .update(&b.id, |m| {
            m.transition(now, MessageStatus::Sending);
            true
        })
        .await
        .unwrap();
    durability.wait().await.unwrap();
    // An update that changes nothing still answers its wait.
    let (_, nothing) = t.store.update_deferred(&a.id, |_| false).unwrap();
    nothing.wait().await.unwrap();
    t.restart();
    for id in [&a.id, &b.id] {
        assert_eq!(
            t.store.get(id).unwrap().unwrap().status,
            MessageStatus::Sending
        );
    }
}

/// A reply made in reaction to a message sorts after it: the opt-out
/// confirmation is queued in the STOP's own transaction with the STOP's
/// time, so only the ids order them. Read live, half archived and archived,
/// in the thread and in the message list. Many contacts: an order left to
/// chance would come out wrong for some of them.
#[tokio::test]
async fn an_opt_out_confirmation_sorts_after_the_stop_that_caused_it() {
    let t = TempStore::new();
    let policy = std::sync::Arc::new(crate::policy::Policy::from_config(
        &crate::config::Config::default(),
    ));
    t.store.set_reactor(policy.reactor(), policy.per_number());
    let contacts: Vec<String> = (0..24).map(|k| format!("+1555777{k:04}")).collect();
    for (k, contact) in contacts.iter().enumerate() {
        let pdu = format!("stop-pdu-{k}");
        let outcome = t
            .store
            .receive(part(pdu.as_bytes(), contact, "STOP", None))
            .await
            .unwrap();
        assert!(matches!(outcome, ReceiveOutcome::Complete(..)));
    }
    // (direction, body starts with STOP) of a contact's thread, oldest first.
    let thread_shape = |contact: &str| -> Vec<(Direction, bool)> {
        t.store
            .thread(contact, None, 50)
            .unwrap()
            .items
            .iter()
            .map(|m| (m.direction, m.body == "STOP"))
            .collect()
    };
    let causal = vec![(Direction::Inbound, true), (Direction::Outbound, false)];
    let check = |stage: &str| {
        for contact in &contacts {
            assert_eq!(thread_shape(contact), causal, "{stage}: {contact}");
            let filter = MessageFilter {
                contact: Some(contact.clone()),
                ..Default::default()
            };
            // The list is newest first.
            let listed: Vec<Direction> = t
                .store
                .list(&filter, None, 50)
                .unwrap()
                .items
                .iter()
                .map(|m| m.direction)
                .collect();
            assert_eq!(
                listed,
                [Direction::Outbound, Direction::Inbound],
                "{stage}: {contact}"
            );
        }
        // The global list, newest first: each confirmation before its STOP.
        let all = t.store.list(&MessageFilter::default(), None, 500).unwrap();
        assert_eq!(all.items.len(), 2 * contacts.len(), "{stage}");
        for contact in &contacts {
            let of: Vec<Direction> = all
                .items
                .iter()
                .filter(|m| &m.contact == contact)
                .map(|m| m.direction)
                .collect();
            assert_eq!(of, [Direction::Outbound, Direction::Inbound], "{stage}");
        }
    };
    let stops_and_replies: Vec<(Message, Message)> = contacts
        .iter()
        .map(|c| {
            let items = t.store.thread(c, None, 50).unwrap().items;
            (items[0].clone(), items[1].clone())
        })
        .collect();
    for (stop, reply) in &stops_and_replies {
        assert_eq!(
            stop.created_at, reply.created_at,
            "one transaction, one time"
        );
        assert_eq!(reply.exempt.as_deref(), Some("opt_out_confirmation"));
    }
    check("live");

    // The STOPs are final and move; the queued confirmations stay live.
    let moved = t.store.archive_all_settled(Duration::zero()).await.unwrap();
    assert_eq!(moved, contacts.len());
    check("STOP archived, confirmation live");

    // The confirmations are delivered and move too.
    for (_, reply) in &stops_and_replies {
        t.store
            .update(&reply.id, |m| {
                let at = m.created_at;
                m.transition(at, MessageStatus::Sending);
                m.transition(at, MessageStatus::Sent);
                m.transition(at, MessageStatus::Delivered);
                true
            })
            .await
            .unwrap();
    }
    let moved = t.store.archive_all_settled(Duration::zero()).await.unwrap();
    assert_eq!(moved, contacts.len());
    check("both archived");
}

/// A read that overlaps a move to the history every time it runs does not
/// give up with what it has: after three tries it runs once more with
/// moves held off (the history writers' lock), which nothing can overlap.
#[test]
fn a_read_that_keeps_overlapping_moves_runs_once_more_with_moves_held_off() {
    let t = TempStore::new();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let outcome = t
        .store
        .consistent(|| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let moves_held = t.store.inner.history_lock.try_lock().is_err();
            if !moves_held {
                // A move committed while this read ran.
                t.store
                    .inner
                    .history_moves
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Ok((n, moves_held))
        })
        .unwrap();
    assert_eq!(outcome, (3, true));
    // A read nothing overlapped runs once.
    calls.store(0, std::sync::atomic::Ordering::SeqCst);
    let once = t
        .store
        .consistent(|| Ok(calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst)))
        .unwrap();
    assert_eq!(
        (once, calls.load(std::sync::atomic::Ordering::SeqCst)),
        (0, 1)
    );
}

/// With consent kept per gateway number, a STOP texted to one number opts
/// the contact out of that number only: the others, and the contact's
/// consent for every number, are untouched. Erased, the contact keeps the
/// opt-out (a tombstone), as for an opt-out of every number.
#[tokio::test]
async fn a_stop_to_one_number_opts_out_of_that_number_only() {
    let t = TempStore::new();
    let mut config = crate::config::Config::default();
    config.consent.scope = crate::config::ConsentScope::Number;
    let policy = std::sync::Arc::new(crate::policy::Policy::from_config(&config));
    assert!(policy.per_number());
    t.store.set_reactor(policy.reactor(), policy.per_number());
    let contact = "+15551238000";
    let outcome = t
        .store
        .receive(part(b"stop-one-number", contact, "STOP", None))
        .await
        .unwrap();
    assert!(matches!(outcome, ReceiveOutcome::Complete(..)));
    let status = |number: Option<&str>| t.store.consent(contact, number).unwrap().status;
    assert_eq!(status(Some("+15550000000")), ConsentStatus::OptedOut);
    assert_eq!(status(Some("+15550009999")), ConsentStatus::Unknown);
    assert_eq!(status(None), ConsentStatus::Unknown);
    // In a fleet the erasure names the numbers with a consent of their own
    // (the bucket's keys for them are forgotten too).
    t.store.set_fleet_threads(true);
    t.store.erase_contact(contact).await.unwrap();
    assert_eq!(status(Some("+15550009999")), ConsentStatus::OptedOut);
    assert_eq!(status(None), ConsentStatus::OptedOut);
    let announced: Vec<_> = t
        .store
        .events_from(0, 100)
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e.kind == crate::store::FLEET_CONTACT_ERASED)
        .collect();
    assert_eq!(announced.len(), 1);
    assert_eq!(
        announced[0].1.data["numbers"],
        serde_json::json!(["+15550000000"])
    );
    assert_eq!(announced[0].1.data["opt_out_kept"], true);
}

/// A consent change from another gateway of the fleet is stored like one
/// made here (record, ledger entry with its site, event), cancels what
/// waits for the contact, and is applied once: again, or older than what
/// the store holds, it changes nothing.
#[tokio::test]
async fn a_consent_change_from_another_site_is_applied_once() {
    let t = TempStore::new();
    let contact = "+15551239000";
    let waiting = outbound(&t.store, contact, "reminder");
    t.store.accept(waiting.clone(), None).await.unwrap();
    let at = Utc::now();
    let entry = LedgerEntry {
        id: "led_remote".into(),
        at,
        contact: contact.into(),
        action: "opt_out".into(),
        status: ConsentStatus::OptedOut,
        source: "sms".into(),
        inbound_message_id: Some("msg_at_the_other_site".into()),
        matched: Some("stop".into()),
        gateway_number: Some("+15550001111".into()),
        reason: None,
        evidence: None,
        site: Some("north".into()),
    };
    let record = t
        .store
        .apply_remote_consent(entry.clone(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, ConsentStatus::OptedOut);
    assert_eq!(record.updated_at, Some(at));
    let ledger = t.store.ledger(contact).unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0].site.as_deref(), Some("north"));
    assert_eq!(ledger[0].matched.as_deref(), Some("stop"));
    let events = t.store.events_after(None, 100).unwrap();
    let changed = events
        .iter()
        .find(|e| e.kind == "consent.changed")
        .expect("a consent.changed event");
    assert_eq!(changed.data["ledger_entry"]["site"], "north");
    let m = t.store.get(&waiting.id).unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.error.unwrap().code, "recipient_opted_out");
    // The same entry again (a watch delivers it after a reconnect), and an
    // older one: nothing changes.
    assert_eq!(
        t.store
            .apply_remote_consent(entry.clone(), None)
            .await
            .unwrap(),
        None
    );
    let older = LedgerEntry {
        at: at - Duration::minutes(5),
        status: ConsentStatus::OptedIn,
        action: "opt_in".into(),
        ..entry
    };
    assert_eq!(
        t.store.apply_remote_consent(older, None).await.unwrap(),
        None
    );
    assert_eq!(t.store.ledger(contact).unwrap().len(), 1);
    assert_eq!(
        t.store.consent(contact, None).unwrap().status,
        ConsentStatus::OptedOut
    );
}

/// Changes handed to the grouped writer at the same time (the modem actors'
/// marks) are applied each once, in their callers' order for one message,
/// with their indexes and events, as one by one; an unreadable record fails
/// its own change only.
#[tokio::test]
async fn grouped_updates_apply_each_change_and_fail_only_the_unreadable() {
    let t = TempStore::new();
    let mut ids = Vec::new();
    for n in 0..20 {
        let m = outbound(&t.store, &format!("+155512340{n:02}"), "hi");
        t.store.accept(m.clone(), None).await.unwrap();
        ids.push(m.id);
    }
    t.store
        .corrupt_for_test("broken", Utc::now() + Duration::hours(1));
    let now = Utc::now();
    let sending = |modem: &'static str| {
        move |m: &mut Message| {
            m.modem = Some(modem.into());
            m.part_status[0].status = PartStatus::Sending;
            m.transition(now, MessageStatus::Sending);
            true
        }
    };
    let sent = move |m: &mut Message| {
        m.part_status[0].status = PartStatus::Sent;
        m.part_status[0].mr = Some(9);
        m.transition(now, MessageStatus::Sent);
        true
    };
    // All at once: the writer takes what is waiting together.
    let marks = futures_util::future::join_all(
        ids.iter()
            .map(|id| t.store.update_grouped(id, sending("m1"))),
    );
    let broken = t.store.update_grouped("broken", sending("m1"));
    let missing = t.store.update_grouped("no-such-message", sending("m1"));
    let (marks, broken, missing) = tokio::join!(marks, broken, missing);
    assert!(
        matches!(broken, Err(StoreError::Corrupt { .. })),
        "{:?}",
        broken.map(|(m, _)| m)
    );
    assert!(missing.unwrap().0.is_none());
    for mark in marks {
        let (marked, durability) = mark.unwrap();
        durability.wait().await.unwrap();
        assert_eq!(marked.unwrap().0.status, MessageStatus::Sending);
    }
    assert_eq!(t.store.outbox_len(), 0, "every one left the outbox");
    let sent_marks =
        futures_util::future::join_all(ids.iter().map(|id| t.store.update_grouped(id, sent)));
    for mark in sent_marks.await {
        let ((m, events), durability) = mark.map(|(m, d)| (m.unwrap(), d)).unwrap();
        durability.wait().await.unwrap();
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "message.sent");
        assert_eq!(events[0].data["id"], m.id.as_str());
        assert_eq!(
            t.store.sticky_modem(&m.contact).unwrap().as_deref(),
            Some("m1")
        );
    }
    // Two changes of one message, in their order.
    let id = &ids[0];
    let first = t.store.update_grouped(id, |m: &mut Message| {
        m.error = None;
        m.attempts = 5;
        true
    });
    let second = t.store.update_grouped(id, |m: &mut Message| {
        m.attempts += 1;
        true
    });
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.unwrap().0.unwrap().0.attempts, 5);
    assert_eq!(second.unwrap().0.unwrap().0.attempts, 6);
    assert_eq!(t.store.get(id).unwrap().unwrap().attempts, 6);
}
