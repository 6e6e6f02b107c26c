//! The routing corpus (tests/fixtures/routing_corpus.tsv): every inbound
//! text through `RuleSet::decide` with the default rules, every mismatch
//! reported at once before failing, and the invariant that nothing urgent is
//! answered by automation.

use chrono::{TimeZone, Utc};
use serde_json::json;
use smsgate::conversation::rules::{Decision, Inbound, RuleSet};
use smsgate::conversation::{flows, Action, FlowState, Priority, ThreadState};

const CORPUS: &str = include_str!("fixtures/routing_corpus.tsv");

fn flow(spec: &str, now: chrono::DateTime<Utc>) -> Option<FlowState> {
    if spec.is_empty() {
        return None;
    }
    let (name, step) = match spec.split_once(':') {
        Some((name, step)) => (name, Some(step)),
        None => (spec, None),
    };
    let context = match name {
        "appointment" => json!({
            "time": "Tue 3 Mar 10:00",
            "slots": ["Wed 4 Mar 10:00", "Thu 5 Mar 14:30", "Fri 6 Mar 09:15"]
        }),
        "payment" => json!({"url": "https://pay.example.com/i/8812"}),
        "lead" => json!({"questions": ["How big is the house?", "When do you want to start?"]}),
        _ => json!({}),
    };
    let mut state = flows::start(name, &context, Some("msg_out".into()), now)
        .unwrap_or_else(|e| panic!("flow {spec:?}: {e}"));
    if let Some(step) = step {
        state.step = step.to_string();
    }
    Some(state)
}

/// What a decision amounts to, in the corpus's words.
fn route(d: &Decision) -> String {
    let urgent = d.actions.contains(&Action::SetPriority(Priority::Urgent));
    let replied = d.actions.iter().any(|a| matches!(a, Action::Reply(_)));
    let team = d.actions.iter().find_map(|a| match a {
        Action::Route(t) => Some(t.as_str()),
        _ => None,
    });
    let outcome = d
        .actions
        .iter()
        .any(|a| matches!(a, Action::Outcome { .. }));
    match (d.to_person, urgent, team) {
        (true, true, _) if !replied => "urgent".into(),
        (true, false, Some(team)) if !replied => format!("team:{team}"),
        (true, false, None) if !replied => "person".into(),
        (false, false, _) if replied || outcome => "automation".into(),
        _ => format!("inconsistent {:?}", d.actions),
    }
}

#[test]
fn every_text_in_the_corpus_is_routed_as_expected() {
    let rules = RuleSet::from_config(&[], true).expect("the defaults");
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap();
    let no_fields = |_: &str| None;
    let mut mismatches = Vec::new();
    let mut answered_urgent = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut lines = 0;
    for (n, line) in CORPUS.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [text, flow_spec, expected] = cols[..] else {
            panic!("line {}: want text, flow, expected: {line:?}", n + 1);
        };
        lines += 1;
        let state = flow(flow_spec, now);
        let d = rules.decide(&Inbound {
            text,
            thread_state: ThreadState::WaitingOnCustomer,
            flow: state.as_ref(),
            contact_tags: &[],
            contact_fields: &no_fields,
            business_hours: true,
            now,
            message_id: "msg_in",
        });
        let got = route(&d);
        *counts
            .entry(expected.split(':').next().unwrap_or("").into())
            .or_default() += 1;
        if got != expected {
            mismatches.push(format!(
                "line {}: {text:?} [{flow_spec}] expected {expected}, got {got} ({:?})",
                n + 1,
                d.matched
            ));
        }
        let urgent = d.actions.contains(&Action::SetPriority(Priority::Urgent));
        if urgent
            && d.actions
                .iter()
                .any(|a| matches!(a, Action::Reply(_) | Action::Close))
        {
            answered_urgent.push(format!("line {}: {text:?}: {:?}", n + 1, d.actions));
        }
    }
    println!("{lines} texts: {counts:?}");
    assert!(
        lines >= 150,
        "the corpus has {lines} texts, want at least 150"
    );
    assert!(
        answered_urgent.is_empty(),
        "urgent texts answered by automation:\n{}",
        answered_urgent.join("\n")
    );
    assert!(
        mismatches.is_empty(),
        "{} of {lines} texts routed wrong:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
