//! Policy decisions on an injected clock: reactions to keywords, consent
//! checks, quiet hours across zones and DST, rate limits that defer and
//! release.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::config::Config;
use crate::modem::Gate;
use crate::store::test_support::TempStore;
use crate::store::{ConsentChange, ContactProfile, PartStatus, ProfileWrite};

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn policy() -> Policy {
    let mut config = Config::default();
    config.consent.program_name = "Acme Dental".into();
    config.consent.help_contact = "+1 555 0100".into();
    config.rate_limits.per_contact_per_hour = 2;
    config.rate_limits.marketing_per_day = 1;
    Policy::from_config(&config)
}

fn inbound(body: &str) -> Message {
    let store = TempStore::new();
    let mut m =
        store
            .store
            .new_outbound("", "+15551230000", body, 1, "gsm7", false, None, Utc::now());
    m.direction = Direction::Inbound;
    m
}

#[test]
fn keywords_react_once_and_help_answers_anyone() {
    let p = policy();
    let unknown = ConsentRecord::default();
    let r = p.react(&inbound("Stop texting me"), &unknown);
    assert_eq!(r.consent, Some((ConsentStatus::OptedOut, "opt_out".into())));
    let ExemptReply { text, why, within } = r.reply.unwrap();
    assert!(text.starts_with("Acme Dental: you are unsubscribed"));
    assert_eq!(why, "opt_out_confirmation");
    assert_eq!(within, Some(Duration::minutes(5)));

    let opted_out = ConsentRecord {
        status: ConsentStatus::OptedOut,
        ..ConsentRecord::default()
    };
    let again = p.react(&inbound("STOP"), &opted_out);
    assert_eq!(
        again.consent,
        Some((ConsentStatus::OptedOut, "repeat_opt_out".into()))
    );
    assert_eq!(again.reply, None, "no second confirmation");

    let help = p.react(&inbound("HELP"), &opted_out);
    let ExemptReply { text, why, .. } = help.reply.unwrap();
    assert_eq!(why, "help");
    for needed in [
        "Acme Dental",
        "+1 555 0100",
        "Msg&data rates may apply",
        "Reply STOP to opt out",
        "frequency",
    ] {
        assert!(text.contains(needed), "{text}");
    }
    assert_eq!(help.consent, None);

    assert_eq!(
        p.react(&inbound("YES"), &unknown),
        Decision::default(),
        "YES only while opted out"
    );
    assert_eq!(
        p.react(&inbound("YES"), &opted_out).consent,
        Some((ConsentStatus::OptedIn, "opt_in".into()))
    );
    assert_eq!(
        p.react(&inbound("START"), &unknown).consent,
        Some((ConsentStatus::OptedIn, "opt_in".into()))
    );
    assert_eq!(
        p.react(&inbound("I'll stop by at 3"), &unknown),
        Decision::default()
    );
}

#[tokio::test]
async fn consent_and_marketing_evidence() {
    let t = TempStore::new();
    let p = policy();
    let now = Utc::now();
    let mut m = t
        .store
        .new_outbound("", "+15551230001", "x", 1, "gsm7", false, None, now);
    assert_eq!(
        p.consent_check(&t.store, &m, None),
        Ok(()),
        "transactional to unknown consent"
    );
    m.category = Category::Marketing;
    assert_eq!(
        p.consent_check(&t.store, &m, None),
        Err(Refusal::ConsentRequired)
    );
    t.store
        .change_consent(ConsentChange {
            contact: m.contact.clone(),
            status: ConsentStatus::OptedIn,
            action: "opt_in".into(),
            reason: None,
            evidence: Some(crate::store::Evidence {
                source: "web_form".into(),
                evidence: "form 42".into(),
                captured_at: now,
            }),
            number: None,
        })
        .await
        .unwrap();
    assert_eq!(p.consent_check(&t.store, &m, None), Ok(()));
    t.store
        .change_consent(ConsentChange {
            contact: m.contact.clone(),
            status: ConsentStatus::OptedOut,
            action: "manual_opt_out".into(),
            reason: Some("called in".into()),
            evidence: None,
            number: None,
        })
        .await
        .unwrap();
    assert_eq!(p.consent_check(&t.store, &m, None), Err(Refusal::OptedOut));
    m.category = Category::Transactional;
    assert_eq!(p.consent_check(&t.store, &m, None), Err(Refusal::OptedOut));
    m.exempt = Some("opt_out_confirmation".into());
    assert_eq!(
        p.consent_check(&t.store, &m, None),
        Ok(()),
        "the confirmation itself is exempt"
    );
}

#[tokio::test]
async fn marketing_waits_out_quiet_hours_in_the_contacts_zone() {
    let t = TempStore::new();
    let p = policy();
    // 03:00 UTC in January: 22:00 in New York (the default zone), 04:00 in Berlin.
    let now = utc("2026-01-15T03:00:00Z");
    let mut us = t
        .store
        .new_outbound("", "+15551230002", "sale", 1, "gsm7", false, None, now);
    us.category = Category::Marketing;
    let hold = p.hold(&t.store, &us, now).unwrap();
    assert_eq!(hold.until, utc("2026-01-15T13:00:00Z"), "08:00 EST");
    assert!(hold.reason.contains("America/New_York"));
    // A German number: inferred Europe/Berlin, 04:00 there, quiet until 08:00 CET.
    let mut de = t
        .store
        .new_outbound("", "+4915112345678", "sale", 1, "gsm7", false, None, now);
    de.category = Category::Marketing;
    assert_eq!(
        p.hold(&t.store, &de, now).unwrap().until,
        utc("2026-01-15T07:00:00Z")
    );
    // The contact's own zone wins: Tokyo is at 12:00, not quiet.
    let written = t
        .store
        .set_profile(
            &us.contact,
            &ContactProfile {
                time_zone: Some("Asia/Tokyo".into()),
                ..ContactProfile::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written, ProfileWrite::Created);
    assert_eq!(p.hold(&t.store, &us, now), None);
    // Transactional messages are not held by default.
    let tx = t.store.new_outbound(
        "",
        "+15551230003",
        "appointment",
        1,
        "gsm7",
        false,
        None,
        now,
    );
    assert_eq!(p.hold(&t.store, &tx, now), None);
    // Across the spring DST change in New York: held until 08:00 EDT = 12:00 UTC.
    let spring = utc("2026-03-08T04:00:00Z");
    let mut ny = t
        .store
        .new_outbound("", "+15551230004", "sale", 1, "gsm7", false, None, spring);
    ny.category = Category::Marketing;
    assert_eq!(
        p.hold(&t.store, &ny, spring).unwrap().until,
        utc("2026-03-08T12:00:00Z")
    );
}

async fn sent_at(t: &TempStore, contact: &str, category: Category, at: DateTime<Utc>) {
    let mut m = t
        .store
        .new_outbound("", contact, "x", 1, "gsm7", false, None, at);
    m.category = category;
    t.store.accept(m.clone(), None).await.unwrap();
    t.store
        .update(&m.id, |m| {
            m.part_status[0].status = PartStatus::Sent;
            m.transition(at, MessageStatus::Sending);
            m.transition(at, MessageStatus::Sent);
            true
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn rate_limits_defer_and_release() {
    let t = TempStore::new();
    let p = policy();
    let contact = "+15551230005";
    // A fixed clock: the marketing check below reads "noon of the same day",
    // which depends on the time of day t0 falls at.
    let t0 = utc("2026-03-10T09:00:00Z");
    sent_at(&t, contact, Category::Transactional, t0).await;
    sent_at(
        &t,
        contact,
        Category::Transactional,
        t0 + Duration::minutes(10),
    )
    .await;
    let next = t
        .store
        .new_outbound("", contact, "third", 1, "gsm7", false, None, t0);
    let now = t0 + Duration::minutes(20);
    let hold = p.hold(&t.store, &next, now).unwrap();
    // The send log keeps microseconds.
    let close = |a: DateTime<Utc>, b: DateTime<Utc>| (a - b).num_microseconds().unwrap().abs() <= 1;
    assert!(
        close(hold.until, t0 + Duration::hours(1)),
        "free once the first send is an hour old"
    );
    assert!(hold.reason.contains("per contact per hour"));
    // Released when the window has moved on.
    assert_eq!(p.hold(&t.store, &next, t0 + Duration::minutes(61)), None);
    // Marketing: one a day here.
    let other = "+15551230006";
    sent_at(&t, other, Category::Marketing, t0).await;
    let mut promo = t
        .store
        .new_outbound("", other, "promo", 1, "gsm7", false, None, t0);
    promo.category = Category::Marketing;
    let written = t
        .store
        .set_profile(
            other,
            &ContactProfile {
                time_zone: Some("UTC".into()),
                ..ContactProfile::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(written, ProfileWrite::Created);
    // Noon the same day: three hours after the one marketing text of the day.
    let later = utc("2026-03-10T12:00:00Z");
    let hold = p.hold(&t.store, &promo, later).unwrap();
    assert!(hold.reason.contains("marketing"), "{hold:?}");
    assert!(close(hold.until, t0 + Duration::hours(24)), "{hold:?}");
}

#[tokio::test]
async fn the_gate_drops_a_late_confirmation_and_refuses_opted_out() {
    let t = TempStore::new();
    let p = Arc::new(policy());
    let now = Utc::now();
    let mut late = t
        .store
        .new_outbound("", "+15551230007", "bye", 1, "gsm7", false, None, now);
    late.exempt = Some("opt_out_confirmation".into());
    late.send_by = Some(now - Duration::seconds(1));
    assert!(matches!(p.check(&t.store, &late, None, now), Gate::Refuse(e) if e.code == "too_late"));
    late.send_by = Some(now + Duration::minutes(5));
    assert_eq!(p.check(&t.store, &late, None, now), Gate::Send);
}

#[tokio::test]
async fn the_ledger_survives_a_restart_unchanged() {
    let mut t = TempStore::new();
    for (status, action) in [
        (ConsentStatus::OptedOut, "manual_opt_out"),
        (ConsentStatus::OptedIn, "opt_in"),
        (ConsentStatus::OptedOut, "manual_opt_out"),
    ] {
        t.store
            .change_consent(ConsentChange {
                contact: "+15551230008".into(),
                status,
                action: action.into(),
                reason: None,
                evidence: (status == ConsentStatus::OptedIn).then(|| crate::store::Evidence {
                    source: "paper".into(),
                    evidence: "signed form".into(),
                    captured_at: Utc::now(),
                }),
                number: None,
            })
            .await
            .unwrap();
    }
    let before = t.store.ledger("+15551230008").unwrap();
    let record = t.store.consent("+15551230008", None).unwrap();
    assert_eq!(before.len(), 3);
    t.restart();
    assert_eq!(t.store.ledger("+15551230008").unwrap(), before);
    assert_eq!(t.store.consent("+15551230008", None).unwrap(), record);
    let kinds: Vec<_> = t
        .store
        .events_after(None, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["consent.changed"; 3]);
}

#[tokio::test]
async fn erasure_keeps_only_a_hashed_opt_out() {
    let t = TempStore::new();
    let contact = "+15551230009";
    let m = t
        .store
        .new_outbound("", contact, "hello", 1, "gsm7", false, None, Utc::now());
    t.store.accept(m, None).await.unwrap();
    t.store
        .change_consent(ConsentChange {
            contact: contact.into(),
            status: ConsentStatus::OptedOut,
            action: "manual_opt_out".into(),
            reason: None,
            evidence: None,
            number: None,
        })
        .await
        .unwrap();
    assert_eq!(t.store.erase_contact(contact).await.unwrap(), 1);
    assert!(t.store.thread(contact, None, 10).unwrap().items.is_empty());
    assert!(t.store.thread_summary(contact).unwrap().is_none());
    assert!(
        t.store.ledger(contact).unwrap().is_empty(),
        "no entry names the number"
    );
    assert_eq!(
        t.store.consent(contact, None).unwrap().status,
        ConsentStatus::OptedOut,
        "STOP still holds"
    );
    let csv: Vec<_> = t
        .store
        .ledger_all()
        .collect::<crate::store::Result<_>>()
        .unwrap();
    assert_eq!(csv.len(), 1);
    assert!(csv[0].contact.starts_with("sha256:"));
}

#[test]
fn replies_are_composed_and_none_go_to_a_sender_that_cannot_be_texted() {
    let t = TempStore::new();
    let p = policy();
    let unknown = ConsentRecord::default();
    let mut from_a_name = inbound("HELP");
    from_a_name.contact = "ACMEBANK".into();
    from_a_name.from = "ACMEBANK".into();
    let r = p.reaction(&t.store, &from_a_name, &unknown);
    assert_eq!(r.reply, None, "an alphanumeric sender cannot be answered");
    // A STOP from it still counts.
    from_a_name.body = "STOP".into();
    let r = p.reaction(&t.store, &from_a_name, &unknown);
    assert_eq!(r.consent, Some((ConsentStatus::OptedOut, "opt_out".into())));
    assert_eq!(r.reply, None);

    let mut from_a_number = inbound("STOP");
    from_a_number.to = "+15550000001".into();
    let reply = p
        .reaction(&t.store, &from_a_number, &unknown)
        .reply
        .expect("a confirmation");
    assert_eq!(reply.exempt.as_deref(), Some("opt_out_confirmation"));
    assert_eq!(reply.to, from_a_number.contact);
    assert_eq!(reply.from, "+15550000001");
    assert_eq!(
        reply.send_by,
        Some(from_a_number.created_at + Duration::minutes(CONFIRMATION_WITHIN_MINUTES))
    );
    // Counted as the modem will send it, with the reply's own reference.
    let composed = crate::compose::compose(&reply.body, reply.reference, 255).unwrap();
    assert_eq!(reply.parts, composed.parts);
    assert_eq!(usize::from(reply.parts), reply.part_status.len());
    assert_eq!(
        usize::from(reply.parts),
        crate::compose::encode(&reply, None, 0).unwrap().parts.len()
    );
}

#[test]
fn help_is_answered_once_per_window() {
    let p = policy();
    let help = inbound("HELP");
    let answered = |minutes_ago: i64| ConsentRecord {
        help_answered_at: Some(help.created_at - Duration::minutes(minutes_ago)),
        ..ConsentRecord::default()
    };
    assert!(p.react(&help, &ConsentRecord::default()).reply.is_some());
    assert_eq!(p.react(&help, &answered(0)).reply, None);
    assert_eq!(
        p.react(&help, &answered(HELP_REPLY_WINDOW_MINUTES - 1))
            .reply,
        None
    );
    assert!(p
        .react(&help, &answered(HELP_REPLY_WINDOW_MINUTES))
        .reply
        .is_some());
    // A STOP right after a HELP is still confirmed.
    assert!(p.react(&inbound("STOP"), &answered(0)).reply.is_some());
}

#[tokio::test]
async fn in_a_fleet_a_stale_replica_defers_all_but_contacts_seen_here() {
    let t = TempStore::new();
    let freshness = Arc::new(crate::fleet::Freshness::new(
        std::time::Duration::from_secs(600),
    ));
    let p = Arc::new(policy().with_freshness(freshness.clone()));
    // Before any date the tests run at (libfaketime), so that a change
    // recorded now is always later than the sync.
    let t0 = utc("2025-01-10T09:00:00Z");
    let m = t
        .store
        .new_outbound("", "+15551230020", "hi", 1, "gsm7", false, None, t0);
    // Never synced: the gate defers, with the reason.
    match p.check(&t.store, &m, None, t0) {
        Gate::Defer { until, reason } => {
            assert_eq!(until, t0 + Duration::seconds(30));
            assert!(reason.contains("never synced"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    freshness.synced(t0);
    assert_eq!(
        p.check(&t.store, &m, None, t0 + Duration::minutes(10)),
        Gate::Send
    );
    // The replica 11 minutes old: deferred again ...
    let later = t0 + Duration::minutes(11);
    assert!(matches!(
        p.check(&t.store, &m, None, later),
        Gate::Defer { .. }
    ));
    // ... but not a contact whose consent was just recorded (the API's
    // clock is the system's: `later` is taken from the change).
    let (record, _) = t
        .store
        .change_consent(ConsentChange {
            contact: "+15551230021".into(),
            status: ConsentStatus::OptedIn,
            action: "opt_in".into(),
            reason: None,
            evidence: Some(crate::store::Evidence {
                source: "paper".into(),
                evidence: "form 7".into(),
                captured_at: t0,
            }),
            number: None,
        })
        .await
        .unwrap();
    let changed = record.updated_at.unwrap();
    let seen = t
        .store
        .new_outbound("", "+15551230021", "hi", 1, "gsm7", false, None, changed);
    assert_eq!(
        p.check(&t.store, &seen, None, changed + Duration::minutes(1)),
        Gate::Send
    );
    assert!(matches!(
        p.check(&t.store, &m, None, changed + Duration::minutes(1)),
        Gate::Defer { .. }
    ));
    // An opt-out confirmation is never held.
    let mut exempt = m.clone();
    exempt.exempt = Some("opt_out_confirmation".into());
    assert_eq!(p.check(&t.store, &exempt, None, later), Gate::Send);
}
