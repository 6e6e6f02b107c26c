//! Consent keywords: STOP, START, HELP and the ways people actually say them.
//!
//! A text is normalised (trimmed, lower-cased, accents folded, punctuation and
//! emoji dropped, spaces collapsed). The whole text equal to a keyword acts. A
//! short text that clearly revokes consent also acts ("Stop texting me",
//! "STOP please", "remove me from your list", "don't text me anymore"): every
//! word must be a revoking word or filler, so "I'll stop by at 3" and "can't
//! stop smiling" do not. The FCC's 2025 rule asks that consent revoked "by
//! any reasonable means" be honoured; the rules err towards acting on a text
//! that is nothing but a request to stop.

use serde::{Deserialize, Serialize};

/// What an inbound text asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    OptOut,
    OptIn,
    /// "YES": an opt-in only from someone who is opted out.
    Yes,
    Help,
    None,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::OptOut => "opt_out",
            Intent::OptIn => "opt_in",
            Intent::Yes => "yes",
            Intent::Help => "help",
            Intent::None => "none",
        }
    }
}

/// The decision and what matched (kept in the consent ledger).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub intent: Intent,
    /// The normalised text or phrase that decided.
    pub matched: String,
}

/// Default opt-out keywords (CTIA's list, plus common non-English ones).
pub const DEFAULT_OPT_OUT: &[&str] = &[
    "stop",
    "stopall",
    "stop all",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "revoke",
    "optout",
    "opt out",
    "opt-out", // French, Spanish, Portuguese, German, Italian
    "arret",
    "arrete",
    "alto",
    "parar",
    "pare",
    "baja",
    "cancelar",
    "stopp",
    "abmelden",
    "basta",
];
/// Default opt-in keywords.
pub const DEFAULT_OPT_IN: &[&str] = &["start", "unstop", "subscribe", "resubscribe"];
/// Default help keywords.
pub const DEFAULT_HELP: &[&str] = &["help", "info", "aide", "ayuda", "hilfe"];

/// Words that revoke on their own inside a short text.
const REVOKING_VERBS: &[&str] = &["stop", "unsubscribe", "stopall", "optout", "quit", "revoke"];

/// Multi-word phrases that revoke consent.
const REVOKING_PHRASES: &[&[&str]] = &[
    &["remove", "me"],
    &["take", "me", "off"],
    &["opt", "me", "out"],
    &["opt", "out"],
    &["dont", "text", "me"],
    &["dont", "message", "me"],
    &["dont", "contact", "me"],
    &["dont", "send", "me"],
    &["do", "not", "text", "me"],
    &["do", "not", "message", "me"],
    &["do", "not", "contact", "me"],
    &["do", "not", "send", "me"],
    &["no", "more", "texts"],
    &["no", "more", "messages"],
    &["no", "more", "text"],
    &["no", "more", "sms"],
    &["leave", "me", "alone"],
    &["stop", "contacting", "me"],
    &["quit", "texting", "me"],
    &["quit", "messaging", "me"],
    &["no", "mas", "mensajes"],
];

/// Words that may surround a revoking word or phrase without changing what
/// the text means.
const FILLER: &[&str] = &[
    "please",
    "pls",
    "plz",
    "plse",
    "now",
    "thanks",
    "thank",
    "you",
    "thx",
    "ty",
    "it",
    "all",
    "me",
    "us",
    "my",
    "texting",
    "texts",
    "text",
    "txt",
    "txts",
    "messaging",
    "messages",
    "message",
    "msgs",
    "msg",
    "sending",
    "sms",
    "contacting",
    "calling",
    "emailing",
    "from",
    "this",
    "these",
    "those",
    "the",
    "your",
    "ur",
    "number",
    "numbers",
    "list",
    "lists",
    "mailing",
    "contact",
    "contacts",
    "database",
    "system",
    "immediately",
    "asap",
    "already",
    "ok",
    "okay",
    "anymore",
    "again",
    "ever",
    "right",
    "away",
    "just",
    "i",
    "said",
    "want",
    "to",
    "would",
    "like",
    "wish",
    "hey",
    "hi",
    "hello",
    "guys",
    "seriously",
    "and",
    "off",
    "of",
    "any",
    "more",
    "for",
    "good",
    "forever",
    "permanently",
    "a",
    "at",
    "once",
    "with",
    "sir",
    "maam",
    "its",
    "im",
    "done",
    "no",
    "unsubscribe",
    "stop",
];

/// The most words a text may have for the phrase rules to apply.
const SHORT_TEXT_WORDS: usize = 10;

/// Fold the accents of Latin letters (ARRÊT -> arret).
fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' => 'u',
        'ý' | 'ÿ' => 'y',
        other => other,
    }
}

/// Lower-case, fold accents, drop apostrophes (don't -> dont), turn other
/// punctuation and emoji into spaces, collapse spaces.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = fold(c);
        if c.is_alphanumeric() {
            out.push(c);
        } else if matches!(c, '\'' | '’' | '‘' | '`' | '´') {
            // An apostrophe joins: "don't" is one word.
        } else {
            out.push(' ');
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Configured keyword lists, normalised once.
#[derive(Debug, Clone)]
pub struct Keywords {
    opt_out: Vec<String>,
    opt_in: Vec<String>,
    help: Vec<String>,
}

impl Default for Keywords {
    fn default() -> Self {
        Keywords::new(DEFAULT_OPT_OUT, DEFAULT_OPT_IN, DEFAULT_HELP)
    }
}

impl Keywords {
    pub fn new<S: AsRef<str>>(opt_out: &[S], opt_in: &[S], help: &[S]) -> Keywords {
        let norm = |list: &[S]| {
            list.iter()
                .map(|s| normalize(s.as_ref()))
                .filter(|s| !s.is_empty())
                .collect()
        };
        Keywords {
            opt_out: norm(opt_out),
            opt_in: norm(opt_in),
            help: norm(help),
        }
    }

    /// What `text` asks for.
    pub fn classify(&self, text: &str) -> Classification {
        let n = normalize(text);
        let decide = |intent| Classification {
            intent,
            matched: n.clone(),
        };
        if n.is_empty() {
            return decide(Intent::None);
        }
        if self.opt_out.contains(&n) {
            return decide(Intent::OptOut);
        }
        if self.help.contains(&n) {
            return decide(Intent::Help);
        }
        if self.opt_in.contains(&n) {
            return decide(Intent::OptIn);
        }
        if n == "yes" || n == "y" || n == "si" || n == "oui" {
            return decide(Intent::Yes);
        }
        let words: Vec<&str> = n.split(' ').collect();
        if words.len() > SHORT_TEXT_WORDS {
            return decide(Intent::None);
        }
        if let Some(phrase) = revoking_span(&words, &self.opt_out) {
            return Classification {
                intent: Intent::OptOut,
                matched: phrase,
            };
        }
        decide(Intent::None)
    }
}

/// A revoking word or phrase in `words` with nothing but filler around it.
fn revoking_span(words: &[&str], opt_out: &[String]) -> Option<String> {
    let is_filler = |w: &str| FILLER.contains(&w);
    // Multi-word phrases first (they are more specific).
    for phrase in REVOKING_PHRASES {
        for start in 0..words.len() {
            let end = start + phrase.len();
            if end > words.len() || &words[start..end] != *phrase {
                continue;
            }
            if words[..start]
                .iter()
                .chain(&words[end..])
                .all(|w| is_filler(w))
            {
                return Some(phrase.join(" "));
            }
        }
    }
    // A single revoking word (or configured one-word keyword) among filler.
    let revoking =
        |w: &str| REVOKING_VERBS.contains(&w) || opt_out.iter().any(|k| k == w && !k.contains(' '));
    let position = words.iter().position(|w| revoking(w))?;
    let others_are_filler = words
        .iter()
        .enumerate()
        .all(|(i, w)| i == position || is_filler(w) || revoking(w));
    // "cancel", "end" and the like are keywords only when they stand alone:
    // "cancel my appointment" is a booking request.
    let strong = REVOKING_VERBS.contains(&words[position]);
    (others_are_filler && strong).then(|| words[position].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(normalize("  STOP!!! 🛑 "), "stop");
        assert_eq!(normalize("Don't   text me."), "dont text me");
        assert_eq!(normalize("ARRÊT"), "arret");
        assert_eq!(normalize("Opt-Out"), "opt out");
        assert_eq!(normalize("ＳＴＯＰ"), "ｓｔｏｐ".to_string());
    }

    /// The corpus: tests/fixtures/consent_corpus.tsv, one `decision<TAB>text`
    /// per line, at least 80 phrases.
    #[test]
    fn the_corpus_decides_as_written() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/consent_corpus.tsv");
        let text = std::fs::read_to_string(path).unwrap();
        let keywords = Keywords::default();
        let mut count = 0;
        let mut wrong = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (expected, phrase) = line.split_once('\t').unwrap();
            let got = keywords.classify(phrase).intent;
            if got.as_str() != expected {
                wrong.push(format!(
                    "{phrase:?}: expected {expected}, got {}",
                    got.as_str()
                ));
            }
            count += 1;
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(count >= 80, "only {count} phrases");
    }

    #[test]
    fn configured_lists_replace_the_defaults() {
        let k = Keywords::new(&["halt"], &["go"], &["sos"]);
        assert_eq!(k.classify("HALT").intent, Intent::OptOut);
        assert_eq!(k.classify("go").intent, Intent::OptIn);
        assert_eq!(k.classify("SOS!").intent, Intent::Help);
        // The built-in revoking phrases still apply.
        assert_eq!(k.classify("stop texting me").intent, Intent::OptOut);
        assert_eq!(k.classify("start").intent, Intent::None);
    }
}
