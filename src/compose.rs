//! The one way to turn an outbound text into SMS parts.
//!
//! Every send path (`POST /v1/messages`, a reply by webhook response, the
//! consent and HELP replies, and whatever comes later) builds its message with
//! [`outbound`], and the modem actor encodes it with [`encode`]. Both split the
//! body with the same alphabet choice, the same tables and the message's own
//! concatenation reference, so the part count stored at accept time (and the
//! `part_status` entries made from it) is the number of `AT+CMGS` the modem
//! sends. Two copies once disagreed: consent replies were counted with an 8-bit
//! reference while the modem encoded with the message's 16-bit one (152
//! septets a part instead of 153), and the extra part's status report was lost.

use chrono::{DateTime, Utc};

use crate::pdu::{
    self, Address, Alphabet, AlphabetChoice, EncodedMessage, LanguageTables, PduError,
    SubmitOptions, ValidityPeriod,
};
use crate::store::{Message, Store};

/// The SMS settings every send path composes and fills requests with
/// (`[sms]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPolicy {
    /// ISO 3166-1 alpha-2 country national numbers are read in.
    pub default_country: String,
    /// The most parts one message may take (longer bodies: `body_too_long`).
    pub max_parts: usize,
    /// Whether a message asks for a status report when the request does not say.
    pub status_reports: bool,
    /// Validity in seconds when the request gives none (None: the network's).
    pub validity: Option<u32>,
}

/// The same defaults as `[sms]` in config/smsgate.toml.
impl Default for SmsPolicy {
    fn default() -> Self {
        SmsPolicy {
            default_country: "US".into(),
            max_parts: pdu::DEFAULT_MAX_PARTS,
            status_reports: true,
            validity: Some(24 * 3600),
        }
    }
}

/// The most parts a message can have at all (the concatenation header counts
/// parts in one octet, 23.040 §9.2.3.24.1).
pub const PART_LIMIT: usize = 255;

/// What a body becomes on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Composition {
    pub parts: u8,
    pub alphabet: Alphabet,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComposeError {
    #[error("body is empty")]
    Empty,
    #[error("body needs {parts} SMS parts; the limit is {max}")]
    TooLong { parts: usize, max: usize },
    #[error("body cannot be encoded: {0}")]
    Encoding(PduError),
}

impl ComposeError {
    /// The API's problem code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ComposeError::Empty => "body_empty",
            ComposeError::TooLong { .. } => "body_too_long",
            ComposeError::Encoding(_) => "body_unencodable",
        }
    }
}

/// GSM 7-bit when every character has a septet in the default tables, else
/// UCS-2. National language shift tables are not used for outbound texts:
/// each costs header octets in every part and not every handset has them.
const ALPHABET: AlphabetChoice = AlphabetChoice::Auto;

fn tables() -> LanguageTables {
    LanguageTables::default()
}

/// Split `body` as the modem will send it with concatenation `reference`
/// (8-bit when it fits in one octet, else 16-bit: one septet less a part).
pub fn compose(body: &str, reference: u16, max_parts: usize) -> Result<Composition, ComposeError> {
    if body.trim().is_empty() {
        return Err(ComposeError::Empty);
    }
    let max = max_parts.min(PART_LIMIT);
    let segments = pdu::segment(body, ALPHABET, tables(), reference, max).map_err(|e| match e {
        PduError::TooManyParts { parts, max } => ComposeError::TooLong { parts, max },
        other => ComposeError::Encoding(other),
    })?;
    let parts = u8::try_from(segments.parts.len()).map_err(|_| ComposeError::TooLong {
        parts: segments.parts.len(),
        max,
    })?;
    Ok(Composition {
        parts,
        alphabet: segments.alphabet,
    })
}

/// What a new outbound message is made of, before composition.
#[derive(Debug, Clone, Copy)]
pub struct Draft<'a> {
    /// Our number the contact should see (empty: any modem).
    pub from: &'a str,
    /// The contact, already normalised.
    pub to: &'a str,
    pub body: &'a str,
    pub status_report: bool,
    pub send_at: Option<DateTime<Utc>>,
    /// The most parts this path allows ([`SmsPolicy::max_parts`] for requests).
    pub max_parts: usize,
}

/// A new outbound message with its id, concatenation reference, alphabet and
/// parts: the one constructor every send path uses.
pub fn outbound(
    store: &Store,
    draft: Draft<'_>,
    now: DateTime<Utc>,
) -> Result<Message, ComposeError> {
    let mut message = store.new_outbound(
        draft.from,
        draft.to,
        draft.body,
        0,
        "",
        draft.status_report,
        draft.send_at,
        now,
    );
    let composition = compose(draft.body, message.reference, draft.max_parts)?;
    message.set_parts(composition.parts, composition.alphabet.as_str());
    Ok(message)
}

/// The SMS-SUBMIT PDUs for `message`, one per part, as [`compose`] counted
/// them; `validity` is the message's own or the modem's default, in seconds.
pub fn encode(
    message: &Message,
    validity: Option<u32>,
    message_reference: u8,
) -> Result<EncodedMessage, PduError> {
    let to = Address::parse_number(&message.to)?;
    let options = SubmitOptions {
        status_report: message.status_report,
        validity: validity.map(|s| ValidityPeriod::relative_at_least(u64::from(s))),
        alphabet: ALPHABET,
        tables: tables(),
        reference: message.reference,
        message_reference,
        max_parts: PART_LIMIT,
        ..SubmitOptions::default()
    };
    pdu::encode_submit(&to, &message.body, &options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;

    fn parts(body: &str, reference: u16) -> u8 {
        compose(body, reference, PART_LIMIT).unwrap().parts
    }

    /// Encoded as the modem actor does, for a message with this reference.
    fn sent(body: &str, reference: u16) -> usize {
        let t = TempStore::new();
        let mut m = outbound(
            &t.store,
            Draft {
                from: "",
                to: "+15551230000",
                body,
                status_report: true,
                send_at: None,
                max_parts: PART_LIMIT,
            },
            Utc::now(),
        )
        .unwrap();
        m.reference = reference;
        encode(&m, None, 0).unwrap().parts.len()
    }

    /// Every boundary of both alphabets and both reference widths: the count
    /// stored at accept time is the count the modem sends.
    #[test]
    fn parts_at_every_boundary_match_what_the_modem_sends() {
        let cases: &[(&str, usize, u16, u8)] = &[
            // (character, repeats, reference, parts)
            ("a", 160, 7, 1),
            ("a", 161, 7, 2),
            ("a", 306, 7, 2),
            ("a", 307, 7, 3),
            ("a", 459, 7, 3),
            ("a", 460, 7, 4),
            // A 16-bit reference costs one septet a part: 152, not 153.
            ("a", 160, 300, 1),
            ("a", 304, 300, 2),
            ("a", 305, 300, 3),
            ("a", 306, 300, 3),
            ("a", 456, 300, 3),
            ("a", 457, 300, 4),
            // UCS-2: 70 alone, 67 or 66 a part.
            ("é\u{3b1}", 35, 7, 1),
            ("\u{3b1}", 70, 7, 1),
            ("\u{3b1}", 71, 7, 2),
            ("\u{3b1}", 134, 7, 2),
            ("\u{3b1}", 135, 7, 3),
            ("\u{3b1}", 132, 300, 2),
            ("\u{3b1}", 133, 300, 3),
            // Extension characters cost two septets and are never split.
            ("€", 80, 7, 1),
            ("€", 81, 7, 2),
        ];
        for &(c, n, reference, expected) in cases {
            let body = c.repeat(n);
            assert_eq!(
                parts(&body, reference),
                expected,
                "{n} x {c:?} with reference {reference}"
            );
            assert_eq!(
                sent(&body, reference),
                usize::from(expected),
                "the modem sends what was counted: {n} x {c:?} with reference {reference}"
            );
        }
        // An escape pair at a part edge moves whole into the next part.
        let edge = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        assert_eq!(parts(&edge, 7), 2);
        assert_eq!(sent(&edge, 7), 2);
        // One emoji turns a 1-part GSM text into a 3-part UCS-2 one.
        let emoji = format!("{}\u{1f600}", "a".repeat(150));
        let c = compose(&emoji, 7, PART_LIMIT).unwrap();
        assert_eq!((c.parts, c.alphabet), (3, Alphabet::Ucs2));
        assert_eq!(sent(&emoji, 7), 3);
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(compose("  \n", 1, 10), Err(ComposeError::Empty));
        assert_eq!(
            compose(&"a".repeat(161), 1, 1),
            Err(ComposeError::TooLong { parts: 2, max: 1 })
        );
        assert_eq!(ComposeError::Empty.code(), "body_empty");
        assert_eq!(
            ComposeError::TooLong { parts: 2, max: 1 }.code(),
            "body_too_long"
        );
    }

    #[test]
    fn a_message_gets_one_pending_part_status_per_part() {
        let t = TempStore::new();
        let m = outbound(
            &t.store,
            Draft {
                from: "+15550000001",
                to: "+15551230000",
                body: &"a".repeat(400),
                status_report: true,
                send_at: None,
                max_parts: 10,
            },
            Utc::now(),
        )
        .unwrap();
        assert_eq!(m.parts as usize, m.part_status.len());
        assert_eq!(m.alphabet, "gsm7");
        assert_eq!(
            usize::from(m.parts),
            encode(&m, None, 0).unwrap().parts.len()
        );
    }
}
