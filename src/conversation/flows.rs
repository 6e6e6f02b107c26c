//! The shipped automation flows: `appointment`, `payment`, `rating`, `lead`.
//!
//! A message sent with `flow` and `context` puts its thread in a flow
//! ([`start`] checks the context and builds the [`FlowState`]); the contact's
//! next texts are read in the flow's step by [`super::rules::RuleSet::decide`]
//! (which calls [`read`] after the urgency check). Everything here is pure:
//! the clock is passed in and the engine applies the [`Action`]s.
//!
//! Steps (what `flow_state = "name:step"` in a rule refers to):
//! - `appointment`: `awaiting_confirmation` -> (C/confirm/yes/1, sí, oui, ja,
//!   sim ...) outcome `appointment_confirmed`, a confirmation, Close, flow
//!   left; (R/reschedule/change ...) the slots numbered 1..n, step
//!   `offered_slots`; there a slot number books it (outcome
//!   `appointment_booked`, the slot as its value, a confirmation naming it,
//!   Close, flow left). A number out of range is answered once by offering
//!   the slots again (step `reoffered_slots`); a second one goes to the
//!   `scheduling` team. "1" means confirm in the first step and slot 1
//!   after the offer. Anything else is not read by the flow: the rules and
//!   the defaults place it, and the `scheduling` team gets what they do not.
//! - `payment`: `offered` -> (1/pay ...) the link from `context.url`,
//!   outcome `payment_link_sent`, step `link_sent` (asking again resends
//!   it). The flow stays until the billing system records
//!   `payment_completed` ([`on_outcome`] closes it).
//! - `rating`: `asked` -> a digit 1-5 (outcome `rating_received`); 3-5 are
//!   thanked, 1-2 go to a person on the `support` team, marked urgent, with
//!   no automated answer. A text after the digit, in the same message or the
//!   next one (step `rated`), is kept as the comment (`answers.comment`).
//! - `lead`: `q1` (the first of `context.questions` was in the message that
//!   started the flow) -> the answer is kept as `q1` and the second question
//!   sent, step `q2`; after the last answer: outcome `lead_qualified`, routed
//!   to `sales`, flow left, and no automated reply, so that the thread stays
//!   open in the sales team's inbox.
//!
//! Replies are short, plain GSM-7 (no curly quotes, no emoji) and at most
//! two parts: [`fit`] checks each with [`crate::compose::compose`], and the
//! slots offered are cut to what fits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::rules::{words, Phrases};
use super::{Action, FlowState, Priority};

/// The flows shipped, with their steps (the first is where [`start`] puts a
/// thread).
pub const FLOWS: [(&str, &[&str]); 4] = [
    (
        "appointment",
        &["awaiting_confirmation", "offered_slots", "reoffered_slots"],
    ),
    ("payment", &["offered", "link_sent"]),
    ("rating", &["asked", "rated"]),
    ("lead", &["q1", "q2"]),
];

/// How long a flow waits for the contact when `context.expires` is not given.
pub const DEFAULT_EXPIRY: std::time::Duration = std::time::Duration::from_secs(3 * 86_400);

/// The most parts an automated reply may take.
pub const MAX_REPLY_PARTS: usize = 2;

/// The most slots an appointment may offer (one digit answers).
pub const MAX_SLOTS: usize = 9;

/// The team that gets an appointment text the flow and the rules could not
/// place.
pub const SCHEDULING: &str = "scheduling";
pub const SALES: &str = "sales";
pub const SUPPORT: &str = "support";

/// The steps of flow `name`, None for a flow that is not shipped.
pub fn steps(name: &str) -> Option<&'static [&'static str]> {
    FLOWS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Why a flow cannot start with this context (the API answers 422 with
/// [`FlowError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("unknown flow {0:?}: use appointment, payment, rating or lead")]
    UnknownFlow(String),
    #[error("context must be a JSON object")]
    NotAnObject,
    #[error("the {flow} flow needs context.{field}")]
    Missing { flow: String, field: String },
    #[error("context.{field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl FlowError {
    /// The API's problem code.
    pub fn code(&self) -> &'static str {
        match self {
            FlowError::UnknownFlow(_) => "unknown_flow",
            _ => "invalid_flow_context",
        }
    }
}

/// A thread entering flow `name` with the `context` of the message that
/// starts it. Checks what the flow's steps will read (appointment: `time`,
/// optional `slots`; payment: `url`; lead: `questions`, one or two; any:
/// `expires`, a duration such as "3d").
pub fn start(
    name: &str,
    context: &Value,
    started_by: Option<String>,
    now: DateTime<Utc>,
) -> Result<FlowState, FlowError> {
    let Some(steps) = steps(name) else {
        return Err(FlowError::UnknownFlow(name.to_string()));
    };
    let Some(object) = context.as_object() else {
        return Err(FlowError::NotAnObject);
    };
    let missing = |field: &str| FlowError::Missing {
        flow: name.to_string(),
        field: field.to_string(),
    };
    let invalid = |field: &str, reason: &str| FlowError::Invalid {
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let text = |field: &str| -> Result<Option<&str>, FlowError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(field, "must be a non-empty string")),
        }
    };
    let list = |field: &str| -> Result<Option<Vec<&str>>, FlowError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Ok(s.as_str()),
                    _ => Err(invalid(field, "must be a list of non-empty strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid(field, "must be a list of non-empty strings")),
        }
    };
    match name {
        "appointment" => {
            // The confirmation names it (or says less when it is too long).
            text("time")?.ok_or_else(|| missing("time"))?;
            if let Some(slots) = list("slots")? {
                if slots.is_empty() || slots.len() > MAX_SLOTS {
                    return Err(invalid("slots", "1 to 9 times to offer"));
                }
                if offer_text(&slots, false).is_none() {
                    return Err(invalid(
                        "slots",
                        "even one slot does not fit in a two-part reply",
                    ));
                }
            }
        }
        "payment" => {
            let url = text("url")?.ok_or_else(|| missing("url"))?;
            let web = url.starts_with("https://") || url.starts_with("http://");
            if !web || url.chars().any(char::is_whitespace) {
                return Err(invalid("url", "an http:// or https:// link"));
            }
            if fit(&[link_reply(url)]).is_none() {
                return Err(invalid("url", "too long for a two-part reply"));
            }
        }
        "lead" => {
            let questions = list("questions")?.ok_or_else(|| missing("questions"))?;
            if questions.is_empty() || questions.len() > 2 {
                return Err(invalid("questions", "one or two questions"));
            }
            if questions.iter().any(|q| fit(&[q.to_string()]).is_none()) {
                return Err(invalid("questions", "each must fit in a two-part reply"));
            }
        }
        _ => {}
    }
    let expiry = match text("expires")? {
        None => DEFAULT_EXPIRY,
        Some(s) => crate::duration::parse(s)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| invalid("expires", "a duration such as 3d, 12h or 90m"))?,
    };
    let expires_at = chrono::Duration::from_std(expiry)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| invalid("expires", "too far in the future"))?;
    Ok(FlowState {
        name: name.to_string(),
        step: steps[0].to_string(),
        context: context.clone(),
        started_by,
        started_at: now,
        expires_at,
        answers: BTreeMap::new(),
    })
}

/// The flow has waited its time: the thread leaves it.
pub fn expired(state: &FlowState, now: DateTime<Utc>) -> bool {
    now >= state.expires_at
}

/// What the engine does when an outcome is recorded on a thread in a flow
/// from outside (`POST /v1/threads/{contact}/outcomes`): the billing
/// system's `payment_completed` ends the payment flow and closes the thread.
pub fn on_outcome(state: &FlowState, outcome: &str) -> Vec<Action> {
    match (state.name.as_str(), outcome) {
        ("payment", "payment_completed") => vec![Action::Close, Action::Flow(None)],
        _ => Vec::new(),
    }
}

/// What a flow made of a text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reading {
    pub actions: Vec<Action>,
    /// The flow and step that read it, for the timeline.
    pub matched: String,
    /// A person must act (the rating of 1 or 2, the lead's last answer).
    pub to_person: bool,
    /// The flow kept something (a comment) but did not answer: the text is
    /// placed by the rules and defaults as well.
    pub passive: bool,
}

/// The text read in the flow's step; None when the step does not read it
/// (the rules and defaults place it).
pub(crate) fn read(state: &FlowState, text: &str) -> Option<Reading> {
    let w = words(text);
    let at = |what: &str| format!("flow:{}:{}:{what}", state.name, state.step);
    let reading = |actions: Vec<Action>, what: &str| Reading {
        actions,
        matched: at(what),
        to_person: false,
        passive: false,
    };
    let moved = |step: &str| {
        let mut next = state.clone();
        next.step = step.to_string();
        next
    };
    let context_text = |field: &str| state.context.get(field).and_then(Value::as_str);
    match (state.name.as_str(), state.step.as_str()) {
        ("appointment", "awaiting_confirmation") => {
            if answers::confirm().covers(&w) {
                let time = context_text("time");
                let reply = fit(&[
                    time.map(|t| format!("Confirmed: {t}. See you then!"))
                        .unwrap_or_default(),
                    "Confirmed. See you then!".into(),
                ])?;
                return Some(reading(
                    vec![
                        Action::Outcome {
                            name: "appointment_confirmed".into(),
                            value: time.map(str::to_string),
                        },
                        Action::Reply(reply),
                        Action::Close,
                        Action::Flow(None),
                    ],
                    "confirmed",
                ));
            }
            if answers::reschedule().covers(&w) {
                let slots = slots(state);
                return match offer_text(&slots, false) {
                    Some((reply, _)) => Some(reading(
                        vec![
                            Action::Reply(reply),
                            Action::Flow(Some(moved("offered_slots"))),
                        ],
                        "reschedule",
                    )),
                    // No times to offer: a person finds one.
                    None => Some(Reading {
                        to_person: true,
                        ..reading(
                            vec![Action::Route(SCHEDULING.into()), Action::Flow(None)],
                            "reschedule_without_slots",
                        )
                    }),
                };
            }
            None
        }
        ("appointment", "offered_slots" | "reoffered_slots") => {
            let slots = slots(state);
            let offered = offer_text(&slots, false).map_or(0, |(_, n)| n);
            let n = answers::number(&w)?;
            if (1..=offered).contains(&n) {
                let slot = slots[n - 1];
                let reply = fit(&[
                    format!("Booked: {slot}. See you then!"),
                    "Booked. See you then!".into(),
                ])?;
                return Some(reading(
                    vec![
                        Action::Outcome {
                            name: "appointment_booked".into(),
                            value: Some(slot.to_string()),
                        },
                        Action::Reply(reply),
                        Action::Close,
                        Action::Flow(None),
                    ],
                    "booked",
                ));
            }
            if state.step == "offered_slots" {
                let (reply, _) = offer_text(&slots, true)?;
                return Some(reading(
                    vec![
                        Action::Reply(reply),
                        Action::Flow(Some(moved("reoffered_slots"))),
                    ],
                    "out_of_range",
                ));
            }
            Some(Reading {
                to_person: true,
                ..reading(
                    vec![Action::Route(SCHEDULING.into()), Action::Flow(None)],
                    "out_of_range_again",
                )
            })
        }
        ("payment", "offered" | "link_sent") => {
            if !answers::pay().covers(&w) {
                return None;
            }
            let reply = fit(&[link_reply(context_text("url")?)])?;
            let mut actions = Vec::new();
            if state.step == "offered" {
                actions.push(Action::Outcome {
                    name: "payment_link_sent".into(),
                    value: None,
                });
            }
            actions.push(Action::Reply(reply));
            if state.step == "offered" {
                actions.push(Action::Flow(Some(moved("link_sent"))));
            }
            Some(reading(actions, "link"))
        }
        ("rating", "asked") => {
            let Some((score, comment)) = answers::rating(text) else {
                // Words instead of a digit ("Great service"): kept as the
                // comment, and placed by the rules like any text. A number
                // out of range ("10") is neither.
                if text.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
                    return None;
                }
                return self::comment(text);
            };
            let mut actions = vec![Action::Outcome {
                name: "rating_received".into(),
                value: Some(score.to_string()),
            }];
            let low = score <= 2;
            if let Some(comment) = &comment {
                actions.push(Action::Answer {
                    key: "comment".into(),
                    value: comment.clone(),
                });
            }
            if low {
                actions.push(Action::SetPriority(Priority::Urgent));
                actions.push(Action::Route(SUPPORT.into()));
            } else if comment.is_none() {
                actions.push(Action::Reply(
                    "Thank you for your rating! Reply with a comment if you like.".into(),
                ));
            } else {
                actions.push(Action::Reply("Thank you for your feedback!".into()));
            }
            if comment.is_some() {
                actions.push(Action::Flow(None));
            } else {
                let mut next = moved("rated");
                next.answers.insert("rating".into(), score.to_string());
                actions.push(Action::Flow(Some(next)));
            }
            Some(Reading {
                to_person: low,
                ..reading(actions, if low { "low_rating" } else { "rating" })
            })
        }
        ("rating", "rated") => comment(text),
        ("lead", step @ ("q1" | "q2")) => {
            let answer = text.trim();
            if answer.is_empty() {
                return None;
            }
            let questions: Vec<&str> = state
                .context
                .get("questions")
                .and_then(Value::as_array)
                .map(|q| q.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut actions = vec![Action::Answer {
                key: step.to_string(),
                value: answer.to_string(),
            }];
            if step == "q1" && questions.len() == 2 {
                let mut next = moved("q2");
                next.answers.insert("q1".into(), answer.to_string());
                actions.push(Action::Reply(fit(&[questions[1].to_string()])?));
                actions.push(Action::Flow(Some(next)));
                return Some(reading(actions, "answer"));
            }
            actions.push(Action::Outcome {
                name: "lead_qualified".into(),
                value: None,
            });
            actions.push(Action::Route(SALES.into()));
            actions.push(Action::Flow(None));
            Some(Reading {
                to_person: true,
                ..reading(actions, "qualified")
            })
        }
        _ => None,
    }
}

/// A rating's comment: kept, the flow left, the text placed by the rules
/// and defaults as well (a comment may ask something).
fn comment(text: &str) -> Option<Reading> {
    let comment = text.trim();
    if words(comment).is_empty() {
        return None;
    }
    Some(Reading {
        actions: vec![
            Action::Answer {
                key: "comment".into(),
                value: comment.to_string(),
            },
            Action::Flow(None),
        ],
        matched: "flow:rating:comment".into(),
        to_person: false,
        passive: true,
    })
}

/// The team that gets a text in this flow that nothing else placed.
pub(crate) fn fallback_team(state: &FlowState) -> Option<&'static str> {
    match state.name.as_str() {
        "appointment" => Some(SCHEDULING),
        _ => None,
    }
}

fn slots(state: &FlowState) -> Vec<&str> {
    state
        .context
        .get("slots")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn link_reply(url: &str) -> String {
    format!("Here is your payment link: {url}")
}

/// The reply offering the slots, numbered, and how many it offers: as many
/// as fit in two parts (at least one, else None).
fn offer_text(slots: &[&str], again: bool) -> Option<(String, usize)> {
    let head = |n: usize| {
        if again {
            format!("Please reply with a number from 1 to {n}:")
        } else {
            "Reply with the number of a new time:".to_string()
        }
    };
    (1..=slots.len().min(MAX_SLOTS)).rev().find_map(|n| {
        let mut text = head(n);
        for (i, slot) in slots[..n].iter().enumerate() {
            text.push_str(&format!("\n{}) {slot}", i + 1));
        }
        fit(&[text]).map(|t| (t, n))
    })
}

/// The first candidate that is not blank and fits in two parts (worst case:
/// a 16-bit concatenation reference). The texts written here are GSM-7; a
/// slot or time from the context may need UCS-2, and naming it is worth
/// more than the cheaper alphabet.
pub(crate) fn fit(candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .find(|text| {
            !text.trim().is_empty()
                && crate::compose::compose(text, 0x1234, MAX_REPLY_PARTS).is_ok()
        })
        .cloned()
}

/// How contacts answer a flow, in English, Spanish, French, German,
/// Portuguese (normalised: lower case, accents folded, apostrophes joined).
mod answers {
    use super::{words, Phrases};
    use std::sync::OnceLock;

    /// Words around an answer that do not change it ("Yes please, thanks").
    const FILLER: &[&str] = &[
        "please",
        "pls",
        "plz",
        "thanks",
        "thank",
        "you",
        "thx",
        "ty",
        "ok",
        "okay",
        "hi",
        "hello",
        "hey",
        "sure",
        "can",
        "could",
        "we",
        "do",
        "i",
        "we",
        "it",
        "that",
        "the",
        "a",
        "to",
        "for",
        "me",
        "us",
        "my",
        "appointment",
        "por favor",
        "gracias",
        "hola",
        "merci",
        "svp",
        "stp",
        "bonjour",
        "bitte",
        "danke",
        "hallo",
        "obrigado",
        "obrigada",
        "ola",
        "de",
        "la",
        "le",
        "el",
        "o",
    ];

    pub(super) fn filler() -> &'static Phrases {
        static P: OnceLock<Phrases> = OnceLock::new();
        P.get_or_init(|| Phrases::new(FILLER))
    }

    pub(super) fn confirm() -> &'static Answer {
        static P: OnceLock<Answer> = OnceLock::new();
        P.get_or_init(|| {
            Answer::new(&[
                "c",
                "1",
                "confirm",
                "confirmed",
                "confirming",
                "i confirm",
                "yes",
                "y",
                "yep",
                "yeah",
                "yup",
                "yes confirm",
                "will be there",
                "ill be there",
                "see you then",
                "see you",
                "see you there",
                "sounds good",
                "works for me",
                "that works",
                // Spanish.
                "si",
                "claro",
                "confirmo",
                "confirmado",
                "confirmada",
                "vale",
                "de acuerdo",
                "alli estare",
                "nos vemos",
                // French.
                "oui",
                "je confirme",
                "confirme",
                "daccord",
                "a bientot",
                "je serai la",
                "jy serai",
                "serai la",
                // German.
                "ja",
                "bestatigt",
                "ich bestatige",
                "bestatige",
                "passt",
                "jawohl",
                "bis dann",
                // Portuguese.
                "sim",
                "confirmo",
                "confirmado",
                "combinado",
                "estarei la",
                "ate la",
            ])
        })
    }

    pub(super) fn reschedule() -> &'static Answer {
        static P: OnceLock<Answer> = OnceLock::new();
        P.get_or_init(|| {
            Answer::new(&[
                "r",
                "reschedule",
                "change",
                "change it",
                "can we reschedule",
                "need to reschedule",
                "i need to reschedule",
                "can i reschedule",
                "another time",
                "different time",
                "another day",
                "new time",
                "move it",
                // Spanish.
                "cambiar",
                "reprogramar",
                "cambiar la cita",
                "otro dia",
                "otra hora",
                "otro horario",
                // French.
                "changer",
                "reporter",
                "decaler",
                "modifier",
                "un autre jour",
                "une autre heure",
                // German.
                "verschieben",
                "andern",
                "umbuchen",
                "anderer termin",
                "termin verschieben",
                // Portuguese.
                "remarcar",
                "reagendar",
                "mudar",
                "trocar",
                "outro horario",
                "outro dia",
            ])
        })
    }

    pub(super) fn pay() -> &'static Answer {
        static P: OnceLock<Answer> = OnceLock::new();
        P.get_or_init(|| {
            Answer::new(&[
                "1",
                "pay",
                "pay now",
                "link",
                "send link",
                "send the link",
                "send me the link",
                "payment link",
                "pagar",
                "pago",
                "payer",
                "paiement",
                "lien",
                "bezahlen",
                "zahlen",
                "jetzt bezahlen",
                "pagamento",
            ])
        })
    }

    /// A whole answer: one of its phrases, with nothing but other phrases
    /// of it and filler around.
    pub(super) struct Answer(Phrases);

    impl Answer {
        fn new(list: &[&str]) -> Answer {
            Answer(Phrases::new(list))
        }

        pub(super) fn covers(&self, words: &[String]) -> bool {
            self.0.covers(words, filler())
        }
    }

    /// A slot number: "2", "2 please", "option 2", "#2", "the 2nd one",
    /// "second", "dos", "deux", "zwei", "dois".
    pub(super) fn number(words: &[String]) -> Option<usize> {
        const AROUND: &[&str] = &[
            "option", "opcion", "opcao", "slot", "number", "numero", "nummer", "nr", "no", "one",
            "the", "time", "el", "la", "le", "o", "a", "die", "works", "is", "fine", "good",
            "great", "perfect",
        ];
        const NAMED: [(&str, usize); 30] = [
            ("one", 1),
            ("first", 1),
            ("two", 2),
            ("second", 2),
            ("three", 3),
            ("third", 3),
            ("four", 4),
            ("fourth", 4),
            ("five", 5),
            ("fifth", 5),
            ("uno", 1),
            ("primero", 1),
            ("dos", 2),
            ("segundo", 2),
            ("tres", 3),
            ("tercero", 3),
            ("un", 1),
            ("une", 1),
            ("premier", 1),
            ("deux", 2),
            ("trois", 3),
            ("eins", 1),
            ("zwei", 2),
            ("drei", 3),
            ("um", 1),
            ("uma", 1),
            ("dois", 2),
            ("duas", 2),
            ("terceiro", 3),
            ("vier", 4),
        ];
        let value = |w: &str| -> Option<usize> {
            let digits = w
                .strip_suffix("st")
                .or_else(|| w.strip_suffix("nd"))
                .or_else(|| w.strip_suffix("rd"))
                .or_else(|| w.strip_suffix("th"))
                .unwrap_or(w);
            if !digits.is_empty() && digits.len() <= 2 && digits.bytes().all(|b| b.is_ascii_digit())
            {
                return digits.parse().ok();
            }
            NAMED.iter().find(|(n, _)| *n == w).map(|(_, v)| *v)
        };
        let rest: Vec<&String> = words
            .iter()
            .filter(|w| !AROUND.contains(&w.as_str()) && !filler().contains_word(w))
            .collect();
        // "the second one": "one" is filler here unless it is the only word.
        match rest.as_slice() {
            [only] => value(only),
            [] if words.iter().any(|w| w == "one") => Some(1),
            _ => None,
        }
    }

    /// A rating: a digit 1-5 first ("4", "5!", "2 - slow service", "4/5"),
    /// then the comment, if any.
    pub(super) fn rating(text: &str) -> Option<(u8, Option<String>)> {
        let t = text.trim();
        let mut chars = t.chars();
        let digit = chars.next()?.to_digit(10)?;
        let rest = chars.as_str();
        // "10", "45": not a rating.
        if rest.starts_with(|c: char| c.is_ascii_digit()) || !(1..=5).contains(&digit) {
            return None;
        }
        let rest = rest
            .trim_start_matches("/5")
            .trim_start_matches("/ 5")
            .trim_start();
        let rest = strip_stars(rest);
        let comment = rest.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, '-' | ':' | ',' | '.' | '!' | '*')
        });
        let comment = comment.trim();
        let kept = (!words(comment).is_empty()).then(|| comment.to_string());
        Some((digit as u8, kept))
    }

    /// "4 stars", "5 estrellas", "3 etoiles": the unit is not a comment.
    fn strip_stars(rest: &str) -> &str {
        for unit in [
            "stars",
            "star",
            "estrellas",
            "estrella",
            "étoiles",
            "etoiles",
            "sterne",
            "estrelas",
        ] {
            if let Some(after) = rest.strip_prefix(unit) {
                return after;
            }
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap()
    }

    fn appointment() -> FlowState {
        start(
            "appointment",
            &json!({"time": "Tue 3 Mar 10:00", "slots": ["Wed 10:00", "Thu 14:30", "Fri 09:15"]}),
            Some("msg_1".into()),
            now(),
        )
        .unwrap()
    }

    fn at_step(mut state: FlowState, step: &str) -> FlowState {
        state.step = step.into();
        state
    }

    fn replies(r: &Reading) -> Vec<&str> {
        r.actions
            .iter()
            .filter_map(|a| match a {
                Action::Reply(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    fn outcome(r: &Reading) -> Option<(String, Option<String>)> {
        r.actions.iter().find_map(|a| match a {
            Action::Outcome { name, value } => Some((name.clone(), value.clone())),
            _ => None,
        })
    }

    fn next_step(r: &Reading) -> Option<Option<String>> {
        r.actions.iter().find_map(|a| match a {
            Action::Flow(f) => Some(f.as_ref().map(|s| s.step.clone())),
            _ => None,
        })
    }

    #[test]
    fn start_checks_the_context() {
        let s = appointment();
        assert_eq!(s.step, "awaiting_confirmation");
        assert_eq!(s.expires_at - s.started_at, chrono::Duration::days(3));
        assert_eq!(s.started_by.as_deref(), Some("msg_1"));
        let e = start("appointment", &json!({"slots": ["a"]}), None, now()).unwrap_err();
        assert_eq!(e.to_string(), "the appointment flow needs context.time");
        assert!(matches!(
            start("appointment", &json!({"time": "x", "slots": "Wed"}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "slots"
        ));
        assert!(matches!(
            start("appointment", &json!({"time": "x", "slots": []}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "slots"
        ));
        assert!(matches!(
            start("payment", &json!({}), None, now()),
            Err(FlowError::Missing { field, .. }) if field == "url"
        ));
        assert!(matches!(
            start("payment", &json!({"url": "javascript:alert(1)"}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "url"
        ));
        assert!(matches!(
            start("lead", &json!({"questions": ["a", "b", "c"]}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "questions"
        ));
        assert!(matches!(
            start("lead", &json!({"questions": [""]}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "questions"
        ));
        assert_eq!(
            start("survey", &json!({}), None, now()).unwrap_err().code(),
            "unknown_flow"
        );
        assert_eq!(
            start("rating", &json!([1]), None, now()).unwrap_err(),
            FlowError::NotAnObject
        );
        let r = start("rating", &json!({"expires": "12h"}), None, now()).unwrap();
        assert_eq!(r.expires_at - r.started_at, chrono::Duration::hours(12));
        for bad in ["0h", "soon", "12"] {
            assert!(matches!(
                start("rating", &json!({"expires": bad}), None, now()),
                Err(FlowError::Invalid { field, .. }) if field == "expires"
            ));
        }
        assert!(matches!(
            start("rating", &json!({"expires": "9999999999w"}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "expires"
        ));
        assert!(expired(&r, r.expires_at));
        assert!(!expired(&r, r.expires_at - chrono::Duration::seconds(1)));
    }

    #[test]
    fn appointment_confirm_in_each_language() {
        let s = appointment();
        for text in [
            "C",
            "c",
            "1",
            "Yes",
            "YES!",
            "confirm",
            "Confirmed, thanks",
            "Yes please",
            "Yes, I'll be there",
            "Sí",
            "si gracias",
            "Oui",
            "Oui merci",
            "Ja",
            "Ja, bitte",
            "Sim",
            "Confirmo",
            "je confirme",
            "👍 yes",
        ] {
            let r = read(&s, text).unwrap_or_else(|| panic!("{text:?} not read"));
            assert_eq!(
                outcome(&r),
                Some((
                    "appointment_confirmed".into(),
                    Some("Tue 3 Mar 10:00".into())
                )),
                "{text:?}"
            );
            assert_eq!(replies(&r), ["Confirmed: Tue 3 Mar 10:00. See you then!"]);
            assert!(r.actions.contains(&Action::Close));
            assert_eq!(next_step(&r), Some(None));
            assert!(!r.to_person);
        }
        // Not a confirmation: the rules place these.
        for text in [
            "Yes but can we make it later?",
            "No",
            "2",
            "what time is it again?",
            "C you there? who is this",
            "",
        ] {
            assert_eq!(read(&s, text), None, "{text:?}");
        }
    }

    #[test]
    fn appointment_reschedule_then_a_slot() {
        let s = appointment();
        for text in [
            "R",
            "reschedule",
            "Change",
            "Can we reschedule?",
            "Cambiar",
            "verschieben",
            "remarcar",
        ] {
            let r = read(&s, text).unwrap_or_else(|| panic!("{text:?} not read"));
            assert_eq!(
                replies(&r),
                ["Reply with the number of a new time:\n1) Wed 10:00\n2) Thu 14:30\n3) Fri 09:15"]
            );
            assert_eq!(next_step(&r), Some(Some("offered_slots".into())));
            assert_eq!(outcome(&r), None);
        }
        let offered = at_step(s.clone(), "offered_slots");
        // After the offer, "1" is slot 1, not a confirmation.
        for (text, slot) in [
            ("1", "Wed 10:00"),
            ("2", "Thu 14:30"),
            ("2 please", "Thu 14:30"),
            ("Option 3", "Fri 09:15"),
            ("#2", "Thu 14:30"),
            ("the second one", "Thu 14:30"),
            ("3rd", "Fri 09:15"),
            ("dos", "Thu 14:30"),
        ] {
            let r = read(&offered, text).unwrap_or_else(|| panic!("{text:?} not read"));
            assert_eq!(
                outcome(&r),
                Some(("appointment_booked".into(), Some(slot.into()))),
                "{text:?}"
            );
            assert_eq!(replies(&r), [format!("Booked: {slot}. See you then!")]);
            assert!(r.actions.contains(&Action::Close));
            assert_eq!(next_step(&r), Some(None));
        }
        // Out of range: offered once more, then a person.
        let r = read(&offered, "5").unwrap();
        assert_eq!(
            replies(&r),
            ["Please reply with a number from 1 to 3:\n1) Wed 10:00\n2) Thu 14:30\n3) Fri 09:15"]
        );
        assert_eq!(next_step(&r), Some(Some("reoffered_slots".into())));
        let again = at_step(s.clone(), "reoffered_slots");
        let r = read(&again, "0").unwrap();
        assert!(r.to_person);
        assert!(replies(&r).is_empty());
        assert!(r.actions.contains(&Action::Route("scheduling".into())));
        assert_eq!(next_step(&r), Some(None));
        // In range after the re-offer books it.
        let r = read(&again, "2").unwrap();
        assert_eq!(outcome(&r).unwrap().0, "appointment_booked");
        // Not a number: not read ("2pm works" is a time, not slot 2).
        for text in ["2pm works", "none of these", "C", "1 or 2"] {
            assert_eq!(read(&offered, text), None, "{text:?}");
        }
    }

    #[test]
    fn appointment_without_slots_hands_a_reschedule_to_scheduling() {
        let s = start("appointment", &json!({"time": "Mon 9:00"}), None, now()).unwrap();
        let r = read(&s, "R").unwrap();
        assert!(r.to_person);
        assert!(replies(&r).is_empty());
        assert_eq!(
            r.actions,
            vec![Action::Route("scheduling".into()), Action::Flow(None)]
        );
    }

    #[test]
    fn long_slot_lists_are_cut_to_two_parts() {
        let slots: Vec<String> = (1..=9)
            .map(|i| format!("Wednesday {i} September 2026 between 10:00 and 10:45 with Dr Smith"))
            .collect();
        let s = start(
            "appointment",
            &json!({"time": "x", "slots": slots}),
            None,
            now(),
        )
        .unwrap();
        let r = read(&s, "R").unwrap();
        let reply = replies(&r)[0].to_string();
        let c = crate::compose::compose(&reply, 0x1234, 2).unwrap();
        assert!(c.parts <= 2);
        assert_eq!(c.alphabet, crate::pdu::Alphabet::Gsm7);
        let offered = reply.lines().count() - 1;
        assert!((1..9).contains(&offered), "{offered} offered");
        // A number past what was offered is out of range, even if a slot exists.
        let o = at_step(s.clone(), "offered_slots");
        let r = read(&o, &(offered + 1).to_string()).unwrap();
        assert_eq!(next_step(&r), Some(Some("reoffered_slots".into())));
        let r = read(&o, &offered.to_string()).unwrap();
        assert_eq!(outcome(&r).unwrap().1, Some(slots[offered - 1].clone()));
        // One slot that cannot fit at all is refused at start.
        let huge = "x".repeat(400);
        assert!(matches!(
            start("appointment", &json!({"time": "x", "slots": [huge]}), None, now()),
            Err(FlowError::Invalid { field, .. }) if field == "slots"
        ));
        // A time too long to name is confirmed without it.
        let long = start(
            "appointment",
            &json!({"time": "y".repeat(400)}),
            None,
            now(),
        )
        .unwrap();
        let r = read(&long, "C").unwrap();
        assert_eq!(replies(&r), ["Confirmed. See you then!"]);
    }

    #[test]
    fn payment_sends_the_link_and_waits_for_the_billing_system() {
        let s = start(
            "payment",
            &json!({"url": "https://pay.example.com/i/8812"}),
            None,
            now(),
        )
        .unwrap();
        assert_eq!(s.step, "offered");
        for text in [
            "1",
            "pay",
            "PAY NOW",
            "Pagar",
            "bezahlen",
            "send me the link please",
        ] {
            let r = read(&s, text).unwrap_or_else(|| panic!("{text:?} not read"));
            assert_eq!(outcome(&r), Some(("payment_link_sent".into(), None)));
            assert_eq!(
                replies(&r),
                ["Here is your payment link: https://pay.example.com/i/8812"]
            );
            assert_eq!(next_step(&r), Some(Some("link_sent".into())));
            assert!(!r.actions.contains(&Action::Close));
        }
        // Asked again: the link again, no second outcome; the flow stays.
        let sent = at_step(s.clone(), "link_sent");
        let r = read(&sent, "pay").unwrap();
        assert_eq!(outcome(&r), None);
        assert_eq!(replies(&r).len(), 1);
        assert_eq!(next_step(&r), None);
        assert_eq!(read(&sent, "I already paid yesterday"), None);
        assert_eq!(
            on_outcome(&sent, "payment_completed"),
            vec![Action::Close, Action::Flow(None)]
        );
        assert!(on_outcome(&sent, "rating_received").is_empty());
        assert!(on_outcome(&appointment(), "payment_completed").is_empty());
    }

    #[test]
    fn rating_scores_comments_and_low_scores() {
        let s = start("rating", &json!({}), None, now()).unwrap();
        let r = read(&s, "5").unwrap();
        assert_eq!(
            outcome(&r),
            Some(("rating_received".into(), Some("5".into())))
        );
        assert_eq!(replies(&r).len(), 1);
        assert!(!r.to_person);
        assert_eq!(next_step(&r), Some(Some("rated".into())));
        // A comment in the same message is kept and ends the flow.
        let r = read(&s, "4 stars - quick and friendly").unwrap();
        assert_eq!(outcome(&r).unwrap().1.as_deref(), Some("4"));
        assert!(r.actions.contains(&Action::Answer {
            key: "comment".into(),
            value: "quick and friendly".into()
        }));
        assert_eq!(next_step(&r), Some(None));
        // 1 or 2: a person on support, urgent, no automated answer.
        for text in ["1", "2", "2/5 waited 40 minutes"] {
            let r = read(&s, text).unwrap();
            assert!(r.to_person, "{text:?}");
            assert!(replies(&r).is_empty(), "{text:?}");
            assert!(r.actions.contains(&Action::SetPriority(Priority::Urgent)));
            assert!(r.actions.contains(&Action::Route("support".into())));
        }
        for text in ["0", "6", "10", "45", " ", "!!"] {
            assert_eq!(read(&s, text), None, "{text:?}");
        }
        // Words instead of a digit: the comment.
        let r = read(&s, "Great service").unwrap();
        assert!(r.passive);
        assert_eq!(r.matched, "flow:rating:comment");
        // The text after a rating is the comment; it does not answer.
        let rated = at_step(s.clone(), "rated");
        let r = read(&rated, "The hygienist was lovely").unwrap();
        assert!(r.passive);
        assert_eq!(
            r.actions,
            vec![
                Action::Answer {
                    key: "comment".into(),
                    value: "The hygienist was lovely".into()
                },
                Action::Flow(None)
            ]
        );
    }

    #[test]
    fn lead_asks_its_questions_then_routes_to_sales() {
        let s = start(
            "lead",
            &json!({"questions": ["How many rooms?", "When do you want to start?"]}),
            None,
            now(),
        )
        .unwrap();
        assert_eq!(s.step, "q1");
        let r = read(&s, "3 bedrooms").unwrap();
        assert_eq!(replies(&r), ["When do you want to start?"]);
        assert!(r.actions.contains(&Action::Answer {
            key: "q1".into(),
            value: "3 bedrooms".into()
        }));
        let Some(Action::Flow(Some(next))) = r.actions.last().cloned() else {
            panic!("{r:?}");
        };
        assert_eq!(next.step, "q2");
        assert_eq!(
            next.answers.get("q1").map(String::as_str),
            Some("3 bedrooms")
        );
        let r = read(&next, "next month").unwrap();
        assert!(r.to_person);
        assert!(replies(&r).is_empty());
        assert_eq!(
            r.actions,
            vec![
                Action::Answer {
                    key: "q2".into(),
                    value: "next month".into()
                },
                Action::Outcome {
                    name: "lead_qualified".into(),
                    value: None
                },
                Action::Route("sales".into()),
                Action::Flow(None)
            ]
        );
        // One question: qualified after the first answer.
        let one = start("lead", &json!({"questions": ["Budget?"]}), None, now()).unwrap();
        let r = read(&one, "about 5k").unwrap();
        assert_eq!(outcome(&r).unwrap().0, "lead_qualified");
        assert_eq!(read(&one, "   "), None);
    }

    #[test]
    fn every_shipped_reply_is_gsm7_in_at_most_two_parts() {
        let mut texts: Vec<String> = vec![
            "Confirmed. See you then!".into(),
            "Booked. See you then!".into(),
            "Thank you for your rating! Reply with a comment if you like.".into(),
            "Thank you for your feedback!".into(),
            link_reply("https://pay.example.com/i/8812"),
        ];
        let s = appointment();
        for (state, text) in [
            (s.clone(), "C"),
            (s.clone(), "R"),
            (at_step(s.clone(), "offered_slots"), "2"),
            (at_step(s.clone(), "offered_slots"), "7"),
        ] {
            let r = read(&state, text).unwrap();
            texts.extend(replies(&r).into_iter().map(str::to_string));
        }
        for text in texts {
            let c = crate::compose::compose(&text, 0x1234, 255).unwrap();
            assert!(c.parts <= 2, "{text:?}: {} parts", c.parts);
            assert_eq!(c.alphabet, crate::pdu::Alphabet::Gsm7, "{text:?}");
            assert!(!text.contains(['\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}']));
        }
    }

    #[test]
    fn fit_refuses_blank_or_long() {
        assert_eq!(fit(&["".into(), "ok".into()]), Some("ok".into()));
        assert_eq!(fit(&["x".repeat(400)]), None);
        // A slot in UCS-2 is still named (Portuguese "sáb": GSM-7 has no á).
        assert_eq!(
            fit(&["Booked: Sáb 10:00".into(), "Booked.".into()]),
            Some("Booked: Sáb 10:00".into())
        );
    }

    proptest::proptest! {
        /// A context from the API and a text from a customer: a flow or an
        /// error, a reading or none, never a panic; and every reply a flow
        /// sends fits in two parts, whatever the context held.
        #[test]
        fn any_context_and_text(
            flow in 0usize..4,
            time in "\\PC{0,200}",
            slots in proptest::collection::vec("\\PC{0,120}", 0..12),
            url in "(https://)?[a-z./0-9é]{0,300}",
            questions in proptest::collection::vec("\\PC{0,200}", 0..4),
            expires in "[0-9]{0,12}[smhdwx]?",
            step in 0usize..3,
            text in "\\PC{0,80}|[0-9]{1,2}|[CR1-9]",
        ) {
            let (name, steps) = FLOWS[flow];
            let context = json!({
                "time": time, "slots": slots, "url": url,
                "questions": questions, "expires": expires,
            });
            if let Ok(mut state) = start(name, &context, None, now()) {
                state.step = steps[step % steps.len()].to_string();
                if let Some(r) = read(&state, &text) {
                    for reply in replies(&r) {
                        let c = crate::compose::compose(reply, 0x1234, 255);
                        proptest::prop_assert!(c.is_ok_and(|c| c.parts <= 2), "{reply:?}");
                    }
                }
            }
        }
    }
}
