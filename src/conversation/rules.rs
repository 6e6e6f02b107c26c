//! Routing and automation: `[[conversation.rule]]` and the shipped defaults.
//!
//! The engine calls [`RuleSet::decide`] for each inbound text after the
//! consent policy (STOP, START and HELP never reach it). It is pure: no
//! store, no clock but the one in [`Inbound::now`]. The order:
//!
//! 1. A flow past its `expires_at` is left (`Action::Flow(None)`) and the
//!    text is read as if there were none.
//! 2. With the defaults on, a text that is urgent, emotional, a complaint,
//!    a refund or payment dispute or a legal threat goes to a person, marked
//!    urgent, and nothing automated answers it: not a flow (an angry "yes"
//!    confirms nothing), not a rule's reply. A flow's reading that answers
//!    nothing (a rating's comment) is still kept, and the first configured
//!    rule that matches still routes, assigns, tags and records its outcome
//!    (its reply and close are dropped).
//! 3. An active flow reads the text in its step ([`super::flows`]).
//! 4. The configured rules, in order: the first whose `when` holds (every
//!    condition in it) decides; at most one rule applies.
//! 5. The defaults: support, sales and scheduling words route to the team
//!    of that name (in that order when several match); a text in the
//!    appointment flow that nothing placed goes to `scheduling`; a short
//!    acknowledgement ("thanks", "ok", "see you") or a comment a flow kept
//!    goes to a person at normal priority; anything else is unclear and goes
//!    to a person marked urgent.
//!
//! Keywords, configured and default, are matched as whole words after the
//! consent keywords' normalisation ([`crate::policy::keywords::normalize`]:
//! case, accents, punctuation; full-width forms are folded here first).

use std::collections::HashSet;

use regex::Regex;
use serde::{Deserialize, Deserializer};

use super::flows;
use super::template;
use super::{Action, FlowState, Priority, ThreadState};

/// One `[[conversation.rule]]`: when every condition of `when` holds, do
/// everything in `then`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule's name in the timeline (`matched`); default
    /// `conversation.rule[N]`.
    #[serde(default, deserialize_with = "nonblank_opt")]
    pub name: Option<String>,
    pub when: When,
    pub then: Then,
}

/// The conditions of a rule; all given ones must hold, at least one given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct When {
    /// Words or phrases, any of which, as whole words, matches.
    #[serde(deserialize_with = "keywords")]
    pub keywords: Option<Phrases>,
    /// A pattern searched in the text as received (`(?i)` for any case).
    #[serde(deserialize_with = "regex")]
    pub regex: Option<Regex>,
    /// `"appointment"` (any step) or `"appointment:offered_slots"`.
    pub flow_state: Option<FlowMatch>,
    #[serde(deserialize_with = "thread_state")]
    pub thread_state: Option<ThreadState>,
    /// The contact has this tag (ASCII case ignored).
    #[serde(deserialize_with = "nonblank_opt")]
    pub contact_tag: Option<String>,
    /// Within (true) or outside (false) the team's business hours.
    pub business_hours: Option<bool>,
}

impl RuleConfig {
    /// The rule as it is written (`[[conversation.rule]]`, `PUT /v1/rules`):
    /// read back, it is the same rule.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let w = &self.when;
        let mut when = Map::new();
        if let Some(k) = &w.keywords {
            when.insert("keywords".into(), json!(k.source()));
        }
        if let Some(r) = &w.regex {
            when.insert("regex".into(), json!(r.as_str()));
        }
        if let Some(f) = &w.flow_state {
            let text = match &f.step {
                Some(step) => format!("{}:{step}", f.flow),
                None => f.flow.clone(),
            };
            when.insert("flow_state".into(), json!(text));
        }
        if let Some(s) = w.thread_state {
            when.insert("thread_state".into(), json!(s.as_str()));
        }
        if let Some(t) = &w.contact_tag {
            when.insert("contact_tag".into(), json!(t));
        }
        if let Some(b) = w.business_hours {
            when.insert("business_hours".into(), json!(b));
        }
        let t = &self.then;
        let mut then = Map::new();
        let texts = [
            ("reply", &t.reply),
            ("route", &t.route),
            ("assign", &t.assign),
            ("outcome", &t.outcome),
            ("tag", &t.tag),
        ];
        for (key, value) in texts {
            if let Some(v) = value {
                then.insert(key.into(), json!(v));
            }
        }
        if let Some(p) = t.priority {
            then.insert("priority".into(), json!(p.as_str()));
        }
        if t.close {
            then.insert("close".into(), json!(true));
        }
        let mut rule = Map::new();
        if let Some(name) = &self.name {
            rule.insert("name".into(), json!(name));
        }
        rule.insert("when".into(), Value::Object(when));
        rule.insert("then".into(), Value::Object(then));
        Value::Object(rule)
    }
}

/// With teams configured, a rule that routes to no team of them is a typo
/// that would leave its threads with no SLA and no team's view: one
/// (`conversation.rule[N].then.route`, message) per such rule.
pub fn unknown_routes(
    rules: &[RuleConfig],
    teams: &[super::hours::TeamConfig],
) -> Vec<(String, String)> {
    if teams.is_empty() {
        return Vec::new();
    }
    let known: Vec<&str> = teams.iter().map(|t| t.id.as_str()).collect();
    let mut out = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        if let Some(team) = &rule.then.route {
            if !known.contains(&team.as_str()) {
                out.push((
                    format!("conversation.rule[{i}].then.route"),
                    format!(
                        "{team:?} is not a [[conversation.team]] id (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    out
}

/// The rule set in effect, swapped whole while the daemon runs (`PUT
/// /v1/rules`): the engine's decider reads it for each inbound text, so a
/// new list applies from the next one, and a decision in progress keeps the
/// set it started with.
#[derive(Debug, Default)]
pub struct LiveRules(std::sync::RwLock<std::sync::Arc<RuleSet>>);

impl LiveRules {
    pub fn new(rules: RuleSet) -> LiveRules {
        LiveRules(std::sync::RwLock::new(std::sync::Arc::new(rules)))
    }

    /// The set in effect now.
    pub fn current(&self) -> std::sync::Arc<RuleSet> {
        // A writer never panics while holding the lock (it only assigns),
        // so a poisoned lock still holds a whole set.
        match self.0.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put `rules` in effect for the next decision.
    pub fn replace(&self, rules: RuleSet) {
        let rules = std::sync::Arc::new(rules);
        match self.0.write() {
            Ok(mut set) => *set = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
    }
}

impl When {
    fn check(&self) -> Result<(), String> {
        let any = self.keywords.is_some()
            || self.regex.is_some()
            || self.flow_state.is_some()
            || self.thread_state.is_some()
            || self.contact_tag.is_some()
            || self.business_hours.is_some();
        if any {
            Ok(())
        } else {
            Err("needs at least one condition: keywords, regex, flow_state, thread_state, contact_tag or business_hours".into())
        }
    }
}

/// What a rule does; at least one given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Then {
    /// A template (`{{name}}`, `{{field}}` from the contact, the flow's
    /// context values) sent as a `conversational` reply by automation.
    #[serde(deserialize_with = "reply")]
    pub reply: Option<String>,
    /// A team id.
    #[serde(deserialize_with = "nonblank_opt")]
    pub route: Option<String>,
    /// A person.
    #[serde(deserialize_with = "nonblank_opt")]
    pub assign: Option<String>,
    #[serde(deserialize_with = "priority")]
    pub priority: Option<Priority>,
    /// An outcome to record (one of [`super::OUTCOMES`] or a custom name).
    #[serde(deserialize_with = "nonblank_opt")]
    pub outcome: Option<String>,
    #[serde(deserialize_with = "nonblank_opt")]
    pub tag: Option<String>,
    pub close: bool,
}

impl Then {
    fn check(&self) -> Result<(), String> {
        let any = self.reply.is_some()
            || self.route.is_some()
            || self.assign.is_some()
            || self.priority.is_some()
            || self.outcome.is_some()
            || self.tag.is_some()
            || self.close;
        if !any {
            return Err(
                "needs at least one action: reply, route, assign, priority, outcome, tag or close"
                    .into(),
            );
        }
        if self.reply.is_some() && self.priority == Some(Priority::Urgent) {
            return Err(
                "an urgent thread is answered by a person, not automation: drop reply or priority"
                    .into(),
            );
        }
        Ok(())
    }
}

fn thread_state<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ThreadState>, D::Error> {
    let text = String::deserialize(d)?;
    ThreadState::parse(text.trim()).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?}: one of open, waiting_on_customer, snoozed, closed"
        ))
    })
}

fn priority<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Priority>, D::Error> {
    let text = String::deserialize(d)?;
    Priority::parse(text.trim())
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("{text:?}: normal or urgent")))
}

/// `flow_state = "flow"` or `"flow:step"`, of a shipped flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMatch {
    pub flow: String,
    pub step: Option<String>,
}

impl<'de> Deserialize<'de> for FlowMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        FlowMatch::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FlowMatch {
    pub fn parse(text: &str) -> Result<FlowMatch, String> {
        let (flow, step) = match text.split_once(':') {
            Some((flow, step)) => (flow.trim(), Some(step.trim())),
            None => (text.trim(), None),
        };
        let Some(steps) = flows::steps(flow) else {
            let names: Vec<&str> = flows::FLOWS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown flow {flow:?}: one of {}",
                names.join(", ")
            ));
        };
        if let Some(step) = step {
            if !steps.contains(&step) {
                return Err(format!(
                    "the {flow} flow has no step {step:?}: one of {}",
                    steps.join(", ")
                ));
            }
        }
        Ok(FlowMatch {
            flow: flow.to_string(),
            step: step.map(str::to_string),
        })
    }

    fn holds(&self, state: &FlowState) -> bool {
        state.name == self.flow && self.step.as_ref().is_none_or(|s| *s == state.step)
    }
}

fn nonblank_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Err(serde::de::Error::custom("must not be empty"));
    }
    Ok(Some(text.trim().to_string()))
}

fn keywords<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Phrases>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    if list.is_empty() {
        return Err(serde::de::Error::custom(
            "needs at least one word or phrase",
        ));
    }
    if let Some(bad) = list.iter().find(|k| words(k).is_empty()) {
        return Err(serde::de::Error::custom(format!(
            "{bad:?} has no letters or digits"
        )));
    }
    Ok(Some(Phrases::new(&list)))
}

fn regex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
    let text = String::deserialize(d)?;
    // The size limit keeps a pasted monster from eating memory at startup.
    regex::RegexBuilder::new(&text)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("not a valid pattern: {e}")))
}

fn reply<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    check_reply(&text).map_err(serde::de::Error::custom)?;
    Ok(Some(text))
}

/// A reply template's syntax, and its fixed text within two parts.
fn check_reply(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let names = template::placeholders(text).map_err(|e| e.to_string())?;
    let fixed = template::render(text, |_| Some(String::from("-"))).map_err(|e| e.to_string())?;
    if flows::fit(&[fixed]).is_none() {
        return Err(format!(
            "longer than {} SMS parts before its placeholders ({}) are filled",
            flows::MAX_REPLY_PARTS,
            names.len()
        ));
    }
    Ok(())
}

/// The text of an inbound message as the rules read it: full-width forms
/// folded, then the consent keywords' normalisation, cut into words.
pub fn words(text: &str) -> Vec<String> {
    let folded: String = text
        .chars()
        .map(|c| match c {
            // Full-width ASCII (U+FF01..U+FF5E) and the ideographic space.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect();
    crate::policy::keywords::normalize(&folded)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// A list of words and phrases, normalised like the texts they are looked
/// for in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phrases(Vec<Vec<String>>, Vec<String>);

impl Phrases {
    pub fn new<S: AsRef<str>>(list: &[S]) -> Phrases {
        Phrases(
            list.iter()
                .map(|p| words(p.as_ref()))
                .filter(|p| !p.is_empty())
                .collect(),
            // As written, so a rule is shown and stored as it was given.
            list.iter().map(|p| p.as_ref().to_string()).collect(),
        )
    }

    /// The words and phrases as they were written.
    pub fn source(&self) -> &[String] {
        &self.1
    }

    /// Where the earliest phrase occurs in `text` as whole words: (start,
    /// length in words).
    pub fn find(&self, text: &[String]) -> Option<(usize, usize)> {
        self.find_where(text, |_| true)
    }

    /// Like [`Phrases::find`], skipping an occurrence right after a negation
    /// ("not urgent", "no problem", "pas urgent", "nicht dringend").
    pub fn find_affirmed(&self, text: &[String]) -> Option<(usize, usize)> {
        self.find_where(text, |start| {
            let before = &text[start.saturating_sub(2)..start];
            !before.iter().any(|w| NEGATIONS.contains(&w.as_str()))
        })
    }

    fn find_where(&self, text: &[String], keep: impl Fn(usize) -> bool) -> Option<(usize, usize)> {
        (0..text.len()).find_map(|start| {
            self.0
                .iter()
                .filter(|p| text[start..].starts_with(p))
                .map(|p| (start, p.len()))
                .max_by_key(|(_, len)| *len)
                .filter(|_| keep(start))
        })
    }

    /// Every word of `text` belongs to one of these phrases or to `filler`,
    /// and at least one phrase is there.
    pub fn covers(&self, text: &[String], filler: &Phrases) -> bool {
        // reach[i]: text[..i] is covered; seen[i]: with a phrase of ours.
        let n = text.len();
        let mut reach = vec![None::<bool>; n + 1];
        reach[0] = Some(false);
        for i in 0..n {
            let Some(seen) = reach[i] else { continue };
            for (list, ours) in [(self, true), (filler, false)] {
                for p in &list.0 {
                    if text[i..].starts_with(p) {
                        let j = i + p.len();
                        let now = seen || ours;
                        if reach[j] != Some(true) {
                            reach[j] = Some(now);
                        }
                    }
                }
            }
        }
        reach[n] == Some(true)
    }

    /// `word` is one of the one-word entries.
    pub fn contains_word(&self, word: &str) -> bool {
        self.0.iter().any(|p| p.len() == 1 && p[0] == word)
    }
}

/// Words that negate the next one or two ("not urgent", "no rush").
const NEGATIONS: &[&str] = &[
    "not", "no", "nothing", "never", "isnt", "wasnt", "dont", "doesnt", "nicht", "kein", "keine",
    "pas", "nao", "nada", "non", "nunca", "sin", "sem", "ohne", "aucun", "aucune",
];

/// An inbound text and what the rules may look at (the engine fills it from
/// the thread and the contact).
pub struct Inbound<'a> {
    /// The text as received (after multipart assembly).
    pub text: &'a str,
    pub thread_state: ThreadState,
    /// The thread's flow, if any (expired or not: `decide` checks).
    pub flow: Option<&'a FlowState>,
    pub contact_tags: &'a [String],
    /// The contact's `name` and `fields`, for reply templates.
    pub contact_fields: &'a dyn Fn(&str) -> Option<String>,
    /// Whether it is within the thread's team's business hours now.
    pub business_hours: bool,
    pub now: chrono::DateTime<chrono::Utc>,
    /// The inbound message (the engine links outcomes and answers to it).
    pub message_id: &'a str,
}

/// What to do with an inbound text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// In order; the engine applies them in one store change.
    pub actions: Vec<Action>,
    /// The rule (its name), flow step (`flow:appointment:offered_slots:booked`)
    /// or default (`default:sales`, `default:urgent:legal`) that decided,
    /// for the timeline; None when nothing did.
    pub matched: Option<String>,
    /// No automation answered: a person must.
    pub to_person: bool,
    /// What was not done and why (a reply template with no value for a
    /// field), for the timeline and the log.
    pub notes: Vec<String>,
}

/// The configured rules, compiled, and whether the defaults follow them.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    defaults: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    when: When,
    then: Then,
}

impl RuleSet {
    /// The rules of `[[conversation.rule]]` (already typed: patterns
    /// compiled, templates checked) and, with `default_rules`, the shipped
    /// ones. What a type cannot say (a rule built in code with an empty
    /// `when`, two rules of one name) comes back as (key, message) pairs,
    /// every one at once.
    pub fn from_config(
        rules: &[RuleConfig],
        default_rules: bool,
    ) -> Result<RuleSet, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let key = format!("conversation.rule[{i}]");
            if let Err(e) = r.when.check() {
                problems.push((format!("{key}.when"), e));
            }
            if let Err(e) = r.then.check() {
                problems.push((format!("{key}.then"), e));
            }
            if let Some(Err(e)) = r.then.reply.as_deref().map(check_reply) {
                problems.push((format!("{key}.then.reply"), e));
            }
            let name = r.name.clone().unwrap_or_else(|| key.clone());
            if !names.insert(name.clone()) {
                problems.push((format!("{key}.name"), format!("{name:?} is used twice")));
            }
            out.push(Rule {
                name,
                when: r.when.clone(),
                then: r.then.clone(),
            });
        }
        if problems.is_empty() {
            Ok(RuleSet {
                rules: out,
                defaults: default_rules,
            })
        } else {
            Err(problems)
        }
    }

    /// What to do with `inbound` (see the module's documentation for the
    /// order).
    pub fn decide(&self, inbound: &Inbound) -> Decision {
        let mut d = Decision::default();
        let w = words(inbound.text);
        let mut flow = inbound.flow;
        if let Some(f) = flow {
            if flows::expired(f, inbound.now) {
                d.actions.push(Action::Flow(None));
                flow = None;
            }
        }
        let reading = flow.and_then(|f| flows::read(f, inbound.text));
        let rule = self.rules.iter().find(|r| r.holds(inbound, flow, &w));

        if let Some(reason) = self
            .defaults
            .then(|| defaults::urgency(inbound.text, &w))
            .flatten()
        {
            let mut matched = vec![format!("default:urgent:{reason}")];
            if let Some(r) = reading.filter(|r| !answers(&r.actions)) {
                d.actions.extend(r.actions);
                matched.push(r.matched);
            }
            if let Some(rule) = rule {
                let kept = rule.actions(inbound, flow, &mut d.notes);
                if kept.iter().any(answers_one) {
                    d.notes.push(format!(
                        "{}: reply and close not applied to an urgent text",
                        rule.name
                    ));
                }
                d.actions.extend(
                    kept.into_iter()
                        .filter(|a| !answers_one(a) && !matches!(a, Action::SetPriority(_))),
                );
                matched.push(rule.name.clone());
            }
            if !d.actions.iter().any(|a| matches!(a, Action::Route(_))) {
                if let Some(team) =
                    defaults::team(&w).or_else(|| flow.and_then(flows::fallback_team))
                {
                    d.actions.push(Action::Route(team.into()));
                }
            }
            d.actions.retain(|a| !matches!(a, Action::SetPriority(_)));
            d.actions.push(Action::SetPriority(Priority::Urgent));
            d.matched = Some(matched.join("; "));
            d.to_person = true;
            return d;
        }

        let mut passive = None;
        if let Some(r) = reading {
            d.actions.extend(r.actions);
            if !r.passive {
                d.matched = Some(r.matched);
                d.to_person = r.to_person;
                return d;
            }
            passive = Some(r.matched);
        }

        if let Some(rule) = rule {
            let actions = rule.actions(inbound, flow, &mut d.notes);
            d.to_person = !actions.iter().any(answers_one);
            d.actions.extend(actions);
            d.matched = Some(rule.name.clone());
            return d;
        }

        d.to_person = true;
        if !self.defaults {
            if let Some(team) = flow.and_then(flows::fallback_team) {
                d.actions.push(Action::Route(team.into()));
            }
            d.matched = passive;
            return d;
        }
        if let Some(team) = defaults::team(&w) {
            d.actions.push(Action::Route(team.into()));
            d.matched = Some(format!("default:{team}"));
        } else if let Some(team) = flow.and_then(flows::fallback_team) {
            d.actions.push(Action::Route(team.into()));
            d.matched = Some(format!("default:{team}"));
        } else if defaults::acknowledgement(inbound.text, &w) {
            d.matched = Some("default:acknowledgement".into());
        } else if let Some(matched) = passive {
            // A comment the flow kept: read by a person, not urgent.
            d.matched = Some(matched);
        } else {
            d.actions.push(Action::SetPriority(Priority::Urgent));
            d.matched = Some("default:urgent:unclear".into());
        }
        d
    }
}

/// The contact gets an automated answer, or the thread is closed by it.
fn answers_one(a: &Action) -> bool {
    matches!(a, Action::Reply(_) | Action::Close)
}

fn answers(actions: &[Action]) -> bool {
    actions.iter().any(answers_one)
}

impl Rule {
    fn holds(&self, inbound: &Inbound, flow: Option<&FlowState>, w: &[String]) -> bool {
        let when = &self.when;
        when.keywords.as_ref().is_none_or(|k| k.find(w).is_some())
            && when.regex.as_ref().is_none_or(|r| r.is_match(inbound.text))
            && when
                .flow_state
                .as_ref()
                .is_none_or(|m| flow.is_some_and(|f| m.holds(f)))
            && when.thread_state.is_none_or(|s| s == inbound.thread_state)
            && when.contact_tag.as_ref().is_none_or(|t| {
                inbound
                    .contact_tags
                    .iter()
                    .any(|c| c.trim().eq_ignore_ascii_case(t))
            })
            && when
                .business_hours
                .is_none_or(|b| b == inbound.business_hours)
    }

    /// The rule's actions for this text: the reply rendered (or, when a
    /// value is missing or the result is too long, left out with a note).
    fn actions(
        &self,
        inbound: &Inbound,
        flow: Option<&FlowState>,
        notes: &mut Vec<String>,
    ) -> Vec<Action> {
        let then = &self.then;
        let mut out = Vec::new();
        if let Some(t) = &then.reply {
            let lookup = |name: &str| {
                (inbound.contact_fields)(name).or_else(|| {
                    flow.and_then(|f| f.context.get(name))
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                })
            };
            match template::render(t, lookup) {
                Ok(text) => match flows::fit(&[text]) {
                    Some(text) => out.push(Action::Reply(text)),
                    None => notes.push(format!(
                        "{}: reply not sent: longer than {} parts",
                        self.name,
                        flows::MAX_REPLY_PARTS
                    )),
                },
                Err(e) => notes.push(format!("{}: reply not sent: {e}", self.name)),
            }
        }
        if let Some(team) = &then.route {
            out.push(Action::Route(team.clone()));
        }
        if let Some(person) = &then.assign {
            out.push(Action::Assign(person.clone()));
        }
        if let Some(p) = then.priority {
            out.push(Action::SetPriority(p));
        }
        if let Some(name) = &then.outcome {
            out.push(Action::Outcome {
                name: name.clone(),
                value: None,
            });
        }
        if let Some(tag) = &then.tag {
            out.push(Action::Tag(tag.clone()));
        }
        // A close that was to follow a reply that could not be sent would
        // hide the text from everyone.
        let reply_lost = then.reply.is_some() && !out.iter().any(|a| matches!(a, Action::Reply(_)));
        if then.close && !reply_lost {
            out.push(Action::Close);
        }
        out
    }
}

/// The shipped rules: what is urgent, which team a text is for, what is a
/// mere acknowledgement. English, Spanish, French, German, Portuguese;
/// written normalised (lower case, no accents, apostrophes dropped).
pub(crate) mod defaults {
    use super::Phrases;
    use std::sync::OnceLock;

    /// Reasons a text goes to a person marked urgent, with their words.
    const URGENT: &[(&str, &[&str])] = &[
        (
            "urgent",
            &[
                "urgent",
                "urgently",
                "asap",
                "as soon as possible",
                "emergency",
                "right away",
                "immediately",
                "911",
                "urgente",
                "urgencia",
                "emergencia",
                "lo antes posible",
                "cuanto antes",
                "urgence",
                "au plus vite",
                "des que possible",
                "dringend",
                "notfall",
                "sofort",
                "so schnell wie moglich",
                "o mais rapido possivel",
                "quanto antes",
            ],
        ),
        (
            "distress",
            &[
                "in pain",
                "severe pain",
                "a lot of pain",
                "bleeding",
                "swollen",
                "swelling",
                "hospital",
                "ambulance",
                "accident",
                "flooding",
                "flooded",
                "on fire",
                "caught fire",
                "smoke",
                "gas leak",
                "scared",
                "dolor",
                "sangrando",
                "douleur",
                "saigne",
                "schmerzen",
                "blutet",
                "dor",
                "sangrando",
            ],
        ),
        (
            "complaint",
            &[
                "complaint",
                "complain",
                "complaining",
                "unacceptable",
                "disappointed",
                "disappointing",
                "terrible",
                "horrible",
                "awful",
                "worst",
                "ridiculous",
                "this is ridiculous",
                "rude",
                "disgusting",
                "furious",
                "angry",
                "pissed",
                "fed up",
                "scam",
                "fraud",
                "never again",
                "waste of time",
                "waste of money",
                "not happy",
                "unhappy",
                "very upset",
                "so upset",
                "im upset",
                "frustrated",
                "frustrating",
                "still waiting",
                "no one showed up",
                "nobody showed up",
                "no show",
                "never showed",
                "thanks for nothing",
                "a joke",
                "incompetent",
                "to a manager",
                "to your manager",
                "to the manager",
                "with a manager",
                "with your manager",
                "to a supervisor",
                "to your supervisor",
                "with a supervisor",
                "wtf",
                "queja",
                "reclamo",
                "reclamacion",
                "inaceptable",
                "pesimo",
                "pesima",
                "verguenza",
                "estafa",
                "harto",
                "harta",
                "enojado",
                "enojada",
                "molesto",
                "molesta",
                "el peor",
                "la peor",
                "plainte",
                "inacceptable",
                "honteux",
                "honte",
                "arnaque",
                "furieux",
                "furieuse",
                "decu",
                "decue",
                "nul",
                "le pire",
                "pas content",
                "pas contente",
                "beschwerde",
                "unverschamt",
                "inakzeptabel",
                "schrecklich",
                "enttauscht",
                "betrug",
                "frechheit",
                "katastrophe",
                "sauer",
                "reclamacao",
                "inaceitavel",
                "pessimo",
                "pessima",
                "horrivel",
                "absurdo",
                "vergonha",
                "golpe",
                "decepcionado",
                "decepcionada",
                "o pior",
                "a pior",
                "irritado",
                "irritada",
            ],
        ),
        (
            "refund",
            &[
                "refund",
                "refunded",
                "money back",
                "charged twice",
                "double charged",
                "charged me twice",
                "overcharged",
                "wrong charge",
                "chargeback",
                "dispute",
                "disputing",
                "already paid",
                "didnt authorize",
                "unauthorized charge",
                "reembolso",
                "devolucion",
                "devuelvan mi dinero",
                "me cobraron dos veces",
                "cobro indebido",
                "remboursement",
                "rembourser",
                "remboursez",
                "rembourse",
                "remboursee",
                "debite deux fois",
                "erstattung",
                "ruckerstattung",
                "geld zuruck",
                "doppelt abgebucht",
                "devolucao",
                "estorno",
                "cobrado duas vezes",
                "cobraram duas vezes",
                "meu dinheiro de volta",
            ],
        ),
        (
            "legal",
            &[
                "lawyer",
                "attorney",
                "lawsuit",
                "legal action",
                "sue you",
                "sue your",
                "will sue",
                "going to sue",
                "gonna sue",
                "suing",
                "see you in court",
                "take you to court",
                "small claims",
                "report you",
                "better business bureau",
                "bbb",
                "abogado",
                "demanda",
                "demandar",
                "denunciar",
                "avocat",
                "poursuivre",
                "porter plainte",
                "tribunal",
                "anwalt",
                "rechtsanwalt",
                "klage",
                "verklagen",
                "vor gericht",
                "advogado",
                "processar",
                "processo judicial",
                "procon",
            ],
        ),
    ];

    /// Words that make capitals and "!!!" read as joy, not anger.
    const POSITIVE: &[&str] = &[
        "thanks",
        "thank",
        "thx",
        "ty",
        "great",
        "perfect",
        "awesome",
        "amazing",
        "love",
        "excellent",
        "wonderful",
        "yay",
        "yes",
        "yeah",
        "confirm",
        "confirmed",
        "happy",
        "see you",
        "best",
        "gracias",
        "genial",
        "perfecto",
        "merci",
        "parfait",
        "super",
        "danke",
        "toll",
        "wunderbar",
        "obrigado",
        "obrigada",
        "perfeito",
        "si",
        "oui",
        "ja",
        "sim",
        "ok",
    ];

    const TEAMS: &[(&str, &[&str])] = &[
        (
            "support",
            &[
                "broken",
                "not working",
                "doesnt work",
                "dont work",
                "isnt working",
                "stopped working",
                "wont start",
                "wont turn on",
                "help with",
                "need help",
                "problem",
                "problems",
                "issue",
                "issues",
                "error",
                "fix",
                "repair",
                "leaking",
                "leak",
                "cant log in",
                "cant login",
                "password",
                "crashed",
                "defective",
                "damaged",
                "noise",
                "weird noise",
                "strange noise",
                "come look at",
                "take a look at",
                "keeps dropping",
                "keeps crashing",
                "wont connect",
                "cant connect",
                "roto",
                "rota",
                "no funciona",
                "problema",
                "ayuda con",
                "averia",
                "falla",
                "en panne",
                "ne marche pas",
                "ne fonctionne pas",
                "probleme",
                "casse",
                "cassee",
                "kaputt",
                "funktioniert nicht",
                "defekt",
                "fehler",
                "hilfe bei",
                "quebrado",
                "quebrada",
                "nao funciona",
                "defeito",
                "avaria",
                "ajuda com",
            ],
        ),
        (
            "sales",
            &[
                "price",
                "prices",
                "pricing",
                "quote",
                "estimate",
                "cost",
                "costs",
                "how much",
                "buy",
                "purchase",
                "interested",
                "demo",
                "discount",
                "offer",
                "deal",
                "promo",
                "do you sell",
                "do you offer",
                "do you do",
                "packages",
                "package",
                "cheapest",
                "cheap",
                "payment plan",
                "payment plans",
                "installments",
                "gift card",
                "gift cards",
                "price list",
                "me interesa",
                "plans",
                "precio",
                "precios",
                "cuanto cuesta",
                "cuanto vale",
                "cotizacion",
                "presupuesto",
                "comprar",
                "interesado",
                "interesada",
                "descuento",
                "prix",
                "devis",
                "tarif",
                "tarifs",
                "combien",
                "acheter",
                "interesse",
                "interessee",
                "preis",
                "preise",
                "angebot",
                "kosten",
                "kostet",
                "kaufen",
                "interessiert",
                "rabatt",
                "preco",
                "precos",
                "orcamento",
                "quanto custa",
                "interessado",
                "interessada",
                "desconto",
            ],
        ),
        (
            "scheduling",
            &[
                "reschedule",
                "appointment",
                "appt",
                "book",
                "booking",
                "schedule",
                "cancel my appointment",
                "what time",
                "availability",
                "available",
                "are you open",
                "opening hours",
                "open on",
                "open today",
                "open tomorrow",
                "open now",
                "guys open",
                "come in at",
                "instead of",
                "cancel",
                "running late",
                "late",
                "be late",
                "slot",
                "cita",
                "reprogramar",
                "reservar",
                "agendar",
                "a que hora",
                "horario",
                "llego tarde",
                "rendez vous",
                "rdv",
                "reserver",
                "quelle heure",
                "en retard",
                "termin",
                "verschieben",
                "buchen",
                "wann",
                "um wie viel uhr",
                "verspatung",
                "agendamento",
                "consulta",
                "marcar",
                "remarcar",
                "reagendar",
                "que horas",
                "atrasado",
                "atrasada",
            ],
        ),
    ];

    const ACKNOWLEDGEMENTS: &[&str] = &[
        "thanks",
        "thank you",
        "thank u",
        "thanks so much",
        "thank you so much",
        "many thanks",
        "thx",
        "ty",
        "tks",
        "ok",
        "okay",
        "k",
        "kk",
        "great",
        "perfect",
        "awesome",
        "cool",
        "nice",
        "good",
        "got it",
        "sounds good",
        "see you",
        "see you then",
        "see you soon",
        "will do",
        "noted",
        "alright",
        "all good",
        "yes",
        "no",
        "yep",
        "nope",
        "no problem",
        "no worries",
        "paid",
        "i paid",
        "just paid",
        "done",
        "all done",
        "happy new year",
        "merry christmas",
        "happy holidays",
        "sure",
        "bye",
        "have a nice day",
        "gracias",
        "muchas gracias",
        "vale",
        "perfecto",
        "de acuerdo",
        "si",
        "hasta luego",
        "merci",
        "merci beaucoup",
        "parfait",
        "daccord",
        "oui",
        "non",
        "a bientot",
        "danke",
        "danke schon",
        "vielen dank",
        "alles klar",
        "super",
        "ja",
        "nein",
        "bis dann",
        "obrigado",
        "obrigada",
        "muito obrigado",
        "muito obrigada",
        "perfeito",
        "combinado",
        "beleza",
        "tudo bem",
        "sim",
        "nao",
        "ate logo",
    ];

    const GREETINGS: &[&str] = &[
        "hi",
        "hello",
        "hey",
        "hola",
        "bonjour",
        "salut",
        "hallo",
        "ola",
        "oi",
        "again",
        "a lot",
        "very much",
        "so much",
        "you",
        "guys",
        "team",
        "all",
        "for",
        "the",
        "info",
        "reminder",
        "and",
        "y",
        "et",
        "und",
        "tomorrow",
        "today",
        "later",
        "on",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "e",
    ];

    const ANGRY_EMOJI: &[char] = &[
        '\u{1F621}',
        '\u{1F620}',
        '\u{1F92C}',
        '\u{1F4A2}',
        '\u{1F44E}',
    ];
    const KIND_EMOJI: &[char] = &[
        '\u{1F44D}',
        '\u{1F64F}',
        '\u{1F60A}',
        '\u{1F642}',
        '\u{1F600}',
        '\u{1F603}',
        '\u{1F604}',
        '\u{2764}',
        '\u{2665}',
        '\u{1F44C}',
        '\u{2705}',
        '\u{1F60D}',
        '\u{1F389}',
        '\u{263A}',
    ];

    fn lists(
        table: &'static [(&'static str, &'static [&'static str])],
    ) -> Vec<(&'static str, Phrases)> {
        table
            .iter()
            .map(|(name, list)| (*name, Phrases::new(list)))
            .collect()
    }

    fn urgent_lists() -> &'static [(&'static str, Phrases)] {
        static P: OnceLock<Vec<(&str, Phrases)>> = OnceLock::new();
        P.get_or_init(|| lists(URGENT))
    }

    fn team_lists() -> &'static [(&'static str, Phrases)] {
        static P: OnceLock<Vec<(&str, Phrases)>> = OnceLock::new();
        P.get_or_init(|| lists(TEAMS))
    }

    fn positive() -> &'static Phrases {
        static P: OnceLock<Phrases> = OnceLock::new();
        P.get_or_init(|| Phrases::new(POSITIVE))
    }

    /// Why `text` must go to a person now, if it must.
    pub(crate) fn urgency(text: &str, w: &[String]) -> Option<&'static str> {
        if let Some((reason, _)) = urgent_lists()
            .iter()
            .find(|(_, p)| p.find_affirmed(w).is_some())
        {
            return Some(reason);
        }
        if text.chars().any(|c| ANGRY_EMOJI.contains(&c)) {
            return Some("anger");
        }
        let kind = positive().find(w).is_some() || text.chars().any(|c| KIND_EMOJI.contains(&c));
        if kind {
            return None;
        }
        let marks: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let emphatic = ["!!!", "???", "?!", "!?", "¡¡"]
            .iter()
            .any(|m| marks.contains(m));
        if emphatic || shouting(text) {
            return Some("anger");
        }
        None
    }

    /// Mostly capitals over several words: "WHERE IS MY TECHNICIAN".
    fn shouting(text: &str) -> bool {
        let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
        let upper = letters.iter().filter(|c| c.is_uppercase()).count();
        let loud_words = text
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() >= 3 && w.chars().all(char::is_uppercase))
            .count();
        letters.len() >= 12 && upper * 10 >= letters.len() * 8 && loud_words >= 2
    }

    /// The team whose words `w` holds; when several do, support (something
    /// is wrong) before sales ("book a demo") before scheduling.
    pub(crate) fn team(w: &[String]) -> Option<&'static str> {
        team_lists()
            .iter()
            .find(|(_, p)| p.find_affirmed(w).is_some())
            .map(|(team, _)| *team)
    }

    /// Nothing but thanks, ok, yes or no and greetings (or kind emoji).
    pub(crate) fn acknowledgement(text: &str, w: &[String]) -> bool {
        static ACK: OnceLock<Phrases> = OnceLock::new();
        static FILL: OnceLock<Phrases> = OnceLock::new();
        let ack = ACK.get_or_init(|| Phrases::new(ACKNOWLEDGEMENTS));
        let fill = FILL.get_or_init(|| Phrases::new(GREETINGS));
        if w.is_empty() {
            return text.chars().any(|c| KIND_EMOJI.contains(&c));
        }
        ack.covers(w, fill)
    }

    #[cfg(test)]
    pub(crate) fn all_phrases() -> Vec<&'static str> {
        URGENT
            .iter()
            .chain(TEAMS)
            .flat_map(|(_, l)| l.iter().copied())
            .chain(ACKNOWLEDGEMENTS.iter().copied())
            .chain(POSITIVE.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap()
    }

    fn fields(name: &str) -> Option<String> {
        match name {
            "name" => Some("Ana".into()),
            "plan" => Some("Gold".into()),
            _ => None,
        }
    }

    struct Ctx {
        thread_state: ThreadState,
        flow: Option<FlowState>,
        tags: Vec<String>,
        business_hours: bool,
        now: DateTime<Utc>,
    }

    impl Default for Ctx {
        fn default() -> Self {
            Ctx {
                thread_state: ThreadState::Open,
                flow: None,
                tags: Vec::new(),
                business_hours: true,
                now: now(),
            }
        }
    }

    fn decide_in(set: &RuleSet, text: &str, ctx: &Ctx) -> Decision {
        set.decide(&Inbound {
            text,
            thread_state: ctx.thread_state,
            flow: ctx.flow.as_ref(),
            contact_tags: &ctx.tags,
            contact_fields: &fields,
            business_hours: ctx.business_hours,
            now: ctx.now,
            message_id: "msg_in",
        })
    }

    fn rules(toml: &str) -> Result<RuleSet, Vec<(String, String)>> {
        let config = Config::from_toml(toml, std::iter::empty()).map_err(|e| {
            e.problems
                .into_iter()
                .map(|p| (p.key, p.message))
                .collect::<Vec<_>>()
        })?;
        RuleSet::from_config(&config.conversation.rule, config.conversation.default_rules)
    }

    fn problems(toml: &str) -> Vec<(String, String)> {
        match rules(toml) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(p) => p,
        }
    }

    fn appointment() -> FlowState {
        flows::start(
            "appointment",
            &json!({"time": "Tue 10:00", "slots": ["Wed 10:00", "Thu 14:30"]}),
            None,
            now(),
        )
        .unwrap()
    }

    fn replies(d: &Decision) -> Vec<&str> {
        d.actions
            .iter()
            .filter_map(|a| match a {
                Action::Reply(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn config_errors_name_their_key() {
        let base = r#"
            [[conversation.rule]]
            when = { keywords = ["hours"] }
            then = { reply = "We are open 9-5" }
            [[conversation.rule]]
            when = { keywords = ["parking"] }
            then = { reply = "Park behind the building" }
        "#;
        assert!(rules(base).is_ok());
        let cases = [
            (
                r#"when = { regex = "(unclosed" }
                then = { close = true }"#,
                "conversation.rule[2].when.regex",
                "not a valid pattern",
            ),
            (
                r#"when = { keyword = ["x"] }
                then = { close = true }"#,
                "conversation.rule[2].when.keyword",
                "unknown field",
            ),
            (
                r#"when = {}
                then = { close = true }"#,
                "conversation.rule[2].when",
                "at least one condition",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = {}"#,
                "conversation.rule[2].then",
                "at least one action",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = { close = false }"#,
                "conversation.rule[2].then",
                "at least one action",
            ),
            (
                r#"when = { keywords = [] }
                then = { close = true }"#,
                "conversation.rule[2].when.keywords",
                "at least one",
            ),
            (
                r#"when = { keywords = ["!!"] }
                then = { close = true }"#,
                "conversation.rule[2].when.keywords",
                "no letters",
            ),
            (
                r#"when = { flow_state = "survey" }
                then = { close = true }"#,
                "conversation.rule[2].when.flow_state",
                "unknown flow",
            ),
            (
                r#"when = { flow_state = "appointment:waiting" }
                then = { close = true }"#,
                "conversation.rule[2].when.flow_state",
                "no step",
            ),
            (
                r#"when = { thread_state = "pending" }
                then = { close = true }"#,
                "conversation.rule[2].when.thread_state",
                "one of open",
            ),
            (
                r#"when = { business_hours = "maybe" }
                then = { close = true }"#,
                "conversation.rule[2].when.business_hours",
                "",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = { reply = "Hi {{name" }"#,
                "conversation.rule[2].then.reply",
                "closing",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = { reply = "Hi", priority = "urgent" }"#,
                "conversation.rule[2].then",
                "answered by a person",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = { priority = "high" }"#,
                "conversation.rule[2].then.priority",
                "normal or urgent",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = { route = " " }"#,
                "conversation.rule[2].then.route",
                "must not be empty",
            ),
            (
                r#"when = { keywords = ["x"] }
                then = { close = true, typo = 1 }"#,
                "conversation.rule[2].then.typo",
                "unknown field",
            ),
        ];
        for (rule, key, message) in cases {
            let text = format!("{base}\n[[conversation.rule]]\n{rule}\n");
            let p = problems(&text);
            assert!(
                p.iter().any(|(k, m)| k == key && m.contains(message)),
                "{rule}: wanted {key}: {message}, got {p:?}"
            );
        }
        // A reply too long before its placeholders are even filled.
        let long = "x".repeat(400);
        let p = problems(&format!(
            "[[conversation.rule]]\nwhen = {{ keywords = [\"x\"] }}\nthen = {{ reply = \"{long}\" }}\n"
        ));
        assert_eq!(p[0].0, "conversation.rule[0].then.reply", "{p:?}");
        // Every problem at once, and a name used twice.
        let p = problems(
            r#"
            [[conversation.rule]]
            name = "a"
            when = { regex = "(" }
            then = { close = true }
            [[conversation.rule]]
            name = "b"
            when = { keywords = ["y"] }
            then = {}
        "#,
        );
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "conversation.rule[0].when.regex",
                "conversation.rule[1].then"
            ]
        );
        let p = problems(
            r#"
            [[conversation.rule]]
            name = "a"
            when = { keywords = ["x"] }
            then = { close = true }
            [[conversation.rule]]
            name = "a"
            when = { keywords = ["y"] }
            then = { close = true }
        "#,
        );
        assert_eq!(
            p,
            [(
                "conversation.rule[1].name".to_string(),
                "\"a\" is used twice".to_string()
            )]
        );
    }

    #[test]
    fn rules_built_in_code_are_checked_too() {
        let bad = RuleConfig {
            name: None,
            when: When::default(),
            then: Then {
                reply: Some("Hi {{".into()),
                priority: Some(Priority::Urgent),
                ..Then::default()
            },
        };
        let p = RuleSet::from_config(&[bad], true).unwrap_err();
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "conversation.rule[0].when",
                "conversation.rule[0].then",
                "conversation.rule[0].then.reply"
            ]
        );
    }

    #[test]
    fn conditions_all_hold_and_the_first_rule_wins() {
        let set = rules(
            r#"
            [conversation]
            default_rules = false
            [[conversation.rule]]
            name = "vip hours"
            when = { keywords = ["opening hours", "hours"], contact_tag = "VIP", business_hours = false }
            then = { reply = "Hi {{name}}, our {{plan}} line is open 24/7", tag = "vip" }
            [[conversation.rule]]
            name = "hours"
            when = { keywords = ["opening hours", "hours"] }
            then = { reply = "We are open 9-5", close = true }
            [[conversation.rule]]
            name = "order number"
            when = { regex = "(?i)\\border\\s*#?\\d{4,}", thread_state = "open" }
            then = { route = "support", outcome = "ticket_opened" }
            [[conversation.rule]]
            name = "slots"
            when = { flow_state = "appointment:offered_slots", keywords = ["none"] }
            then = { route = "scheduling", assign = "maria" }
        "#,
        )
        .unwrap();
        let vip = Ctx {
            tags: vec!["vip".into()],
            business_hours: false,
            ..Ctx::default()
        };
        let d = decide_in(&set, "What are your HOURS?", &vip);
        assert_eq!(d.matched.as_deref(), Some("vip hours"));
        assert_eq!(
            d.actions,
            vec![
                Action::Reply("Hi Ana, our Gold line is open 24/7".into()),
                Action::Tag("vip".into())
            ]
        );
        assert!(!d.to_person);
        // One condition fails (in business hours): the next rule.
        let d = decide_in(
            &set,
            "what are your opening hours",
            &Ctx {
                business_hours: true,
                ..vip
            },
        );
        assert_eq!(d.matched.as_deref(), Some("hours"));
        assert_eq!(
            d.actions,
            vec![Action::Reply("We are open 9-5".into()), Action::Close]
        );
        // Whole words: "hourses" is not "hours"; full-width forms fold.
        assert_eq!(decide_in(&set, "hourses", &Ctx::default()).matched, None);
        assert_eq!(
            decide_in(&set, "ＨＯＵＲＳ?", &Ctx::default())
                .matched
                .as_deref(),
            Some("hours")
        );
        let d = decide_in(&set, "Where is ORDER #88120", &Ctx::default());
        assert_eq!(d.matched.as_deref(), Some("order number"));
        assert!(d.to_person);
        let closed = Ctx {
            thread_state: ThreadState::Closed,
            ..Ctx::default()
        };
        assert_eq!(decide_in(&set, "order 88120", &closed).matched, None);
        // flow_state: the step must match.
        let mut offered = appointment();
        offered.step = "offered_slots".into();
        let in_flow = Ctx {
            flow: Some(offered),
            ..Ctx::default()
        };
        let d = decide_in(&set, "none of those work", &in_flow);
        assert_eq!(d.matched.as_deref(), Some("slots"));
        assert_eq!(
            d.actions,
            vec![
                Action::Route("scheduling".into()),
                Action::Assign("maria".into())
            ]
        );
        let first_step = Ctx {
            flow: Some(appointment()),
            ..Ctx::default()
        };
        // Without defaults, what nothing placed in the appointment flow goes
        // to scheduling.
        let d = decide_in(&set, "none of those work", &first_step);
        assert_eq!(d.matched, None);
        assert_eq!(d.actions, vec![Action::Route("scheduling".into())]);
        assert!(d.to_person);
    }

    #[test]
    fn a_reply_with_a_missing_field_is_not_sent_and_a_person_gets_the_text() {
        let set = rules(
            r#"
            [[conversation.rule]]
            name = "greet"
            when = { keywords = ["hello there"] }
            then = { reply = "Hi {{first_name}}!", close = true }
        "#,
        )
        .unwrap();
        let d = decide_in(&set, "Hello there", &Ctx::default());
        assert_eq!(d.matched.as_deref(), Some("greet"));
        assert!(d.actions.is_empty(), "{d:?}");
        assert!(d.to_person);
        assert_eq!(
            d.notes,
            ["greet: reply not sent: no value for {{first_name}}"]
        );
    }

    #[test]
    fn the_flow_reads_first_then_the_rules() {
        let set = rules(
            r#"
            [[conversation.rule]]
            name = "yes"
            when = { keywords = ["yes"] }
            then = { reply = "Noted" }
        "#,
        )
        .unwrap();
        let ctx = Ctx {
            flow: Some(appointment()),
            ..Ctx::default()
        };
        let d = decide_in(&set, "Yes", &ctx);
        assert_eq!(
            d.matched.as_deref(),
            Some("flow:appointment:awaiting_confirmation:confirmed")
        );
        assert!(d.actions.contains(&Action::Close));
        // Without the flow the rule answers.
        let d = decide_in(&set, "Yes", &Ctx::default());
        assert_eq!(d.matched.as_deref(), Some("yes"));
    }

    #[test]
    fn an_expired_flow_is_left_and_the_text_read_without_it() {
        let set = RuleSet::from_config(&[], true).unwrap();
        let flow = appointment();
        let late = Ctx {
            now: flow.expires_at,
            flow: Some(flow.clone()),
            ..Ctx::default()
        };
        let d = decide_in(&set, "C", &late);
        assert_eq!(d.actions.first(), Some(&Action::Flow(None)));
        assert!(!d
            .actions
            .iter()
            .any(|a| matches!(a, Action::Outcome { .. })));
        assert!(d.to_person);
        let in_time = Ctx {
            now: flow.expires_at - chrono::Duration::seconds(1),
            flow: Some(flow),
            ..Ctx::default()
        };
        let d = decide_in(&set, "C", &in_time);
        assert!(d
            .actions
            .iter()
            .any(|a| matches!(a, Action::Outcome { name, .. } if name == "appointment_confirmed")));
    }

    #[test]
    fn urgency_wins_over_flows_and_rules_but_keeps_their_routing() {
        let set = rules(
            r#"
            [[conversation.rule]]
            name = "billing"
            when = { keywords = ["refund", "invoice"] }
            then = { reply = "Our billing team will reply", route = "billing", tag = "billing", close = true }
        "#,
        )
        .unwrap();
        let ctx = Ctx {
            flow: Some(appointment()),
            ..Ctx::default()
        };
        // An angry "yes" in the appointment flow confirms nothing.
        let d = decide_in(
            &set,
            "Yes but this is ridiculous, I waited an hour last time",
            &ctx,
        );
        assert!(replies(&d).is_empty());
        assert!(!d
            .actions
            .iter()
            .any(|a| matches!(a, Action::Outcome { .. } | Action::Flow(_))));
        assert_eq!(
            d.actions,
            vec![
                Action::Route("scheduling".into()),
                Action::SetPriority(Priority::Urgent)
            ]
        );
        assert!(d.to_person);
        assert_eq!(d.matched.as_deref(), Some("default:urgent:complaint"));
        // The rule routes and tags, but neither answers nor closes.
        let d = decide_in(&set, "I want a refund NOW", &Ctx::default());
        assert_eq!(
            d.actions,
            vec![
                Action::Route("billing".into()),
                Action::Tag("billing".into()),
                Action::SetPriority(Priority::Urgent)
            ]
        );
        assert_eq!(d.matched.as_deref(), Some("default:urgent:refund; billing"));
        assert_eq!(d.notes.len(), 1);
        // A rating's comment is kept even when it is a complaint.
        let mut rated = flows::start("rating", &json!({}), None, now()).unwrap();
        rated.step = "rated".into();
        let d = decide_in(
            &set,
            "Rude receptionist, never again",
            &Ctx {
                flow: Some(rated),
                ..Ctx::default()
            },
        );
        assert_eq!(
            d.actions,
            vec![
                Action::Answer {
                    key: "comment".into(),
                    value: "Rude receptionist, never again".into()
                },
                Action::Flow(None),
                Action::SetPriority(Priority::Urgent)
            ]
        );
    }

    #[test]
    fn negation_and_form_signals() {
        use defaults::urgency;
        let u = |t: &str| urgency(t, &words(t));
        assert_eq!(u("not urgent, whenever you can"), None);
        assert_eq!(u("no rush, it's not an emergency"), None);
        assert_eq!(u("No es urgente"), None);
        assert_eq!(u("This is urgent"), Some("urgent"));
        assert_eq!(u("WHERE IS MY TECHNICIAN"), Some("anger"));
        assert_eq!(u("Where is my technician?!"), Some("anger"));
        assert_eq!(u("Hello???"), Some("anger"));
        assert_eq!(u("Thank you so much!!!"), None);
        assert_eq!(u("YES I WILL BE THERE"), None);
        assert_eq!(u("OK"), None);
        assert_eq!(u("😡"), Some("anger"));
        assert_eq!(u("Hi, this is Sue from the office"), None);
        assert_eq!(u("I will sue you"), Some("legal"));
    }

    #[test]
    fn the_documented_examples_load() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/smsgate.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# [[conversation.rule]]").expect("examples");
        let example: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.strip_prefix("# ").unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let set = rules(&example).unwrap_or_else(|p| panic!("{p:?}\n{example}"));
        assert_eq!(set.rules.len(), 3);
        let d = decide_in(&set, "What are your opening hours?", &Ctx::default());
        assert_eq!(
            d.actions,
            vec![
                Action::Reply("Hi Ana, we are open Mon-Fri 8:00-18:00 and Sat 9:00-13:00.".into()),
                Action::Close
            ]
        );
        let d = decide_in(&set, "About invoice #4471", &Ctx::default());
        assert_eq!(d.matched.as_deref(), Some("billing"));
    }

    #[test]
    fn every_default_phrase_is_written_normalised() {
        for p in defaults::all_phrases() {
            assert_eq!(words(p).join(" "), p, "{p:?}");
        }
    }

    #[test]
    fn phrases_cover_and_find() {
        let p = Phrases::new(&["see you", "yes"]);
        let f = Phrases::new(&["thanks"]);
        assert!(p.covers(&words("Yes, see you! Thanks"), &f));
        assert!(!p.covers(&words("thanks"), &f));
        assert!(!p.covers(&words("yes maybe"), &f));
        assert!(!p.covers(&[], &f));
        assert_eq!(p.find(&words("well see you")), Some((1, 2)));
        assert_eq!(p.find_affirmed(&words("no yes")), None);
    }

    proptest::proptest! {
        /// Outside input: a decision, never a panic; an urgent decision
        /// never answers.
        #[test]
        fn any_text_gets_a_decision(text in "\\PC{0,160}", step in 0usize..3) {
            let set = RuleSet::from_config(&[], true).unwrap();
            let mut flow = appointment();
            flow.step = flows::steps("appointment").unwrap()[step].into();
            let d = decide_in(&set, &text, &Ctx { flow: Some(flow), ..Ctx::default() });
            let urgent = d.actions.contains(&Action::SetPriority(Priority::Urgent));
            proptest::prop_assert!(!(urgent && d.actions.iter().any(answers_one)));
            proptest::prop_assert!(d.to_person || d.actions.iter().any(answers_one));
        }
    }
}
