//! Splitting a text into the parts of a concatenated message (23.040 §9.2.3.24.1)
//! and turning them into ready-to-send PDUs.
//!
//! GSM 7-bit when every character fits (an extension character costs two
//! septets), else UCS-2 as UTF-16. One part holds 160 septets or 70 UTF-16 units;
//! parts of a longer text hold 153 / 67 (152 / 66 with a 16-bit reference), less
//! for national language shift elements. A part never ends inside an escape pair
//! or a surrogate pair: the split is by characters.

use chrono::{DateTime, FixedOffset};

use super::address::Address;
use super::dcs::{Alphabet, DataCoding};
use super::error::{PduError, Result};
use super::gsm7::LanguageTables;
use super::tpdu::{SmsDeliver, SmsSubmit};
use super::udh::{Concat, UserDataHeader};
use super::user_data::{header_septets, Body, UserData, MAX_OCTETS, MAX_SEPTETS};
use super::validity::ValidityPeriod;

/// Which alphabet to encode in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlphabetChoice {
    /// GSM 7-bit when the text fits in it, else UCS-2.
    #[default]
    Auto,
    Gsm7,
    Ucs2,
}

/// The default limit on parts of one message: past it a text is refused rather
/// than sent as a costly stream of parts.
pub const DEFAULT_MAX_PARTS: usize = 10;

/// How a text is split: its alphabet and the text of each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    pub alphabet: Alphabet,
    /// Language tables the parts are encoded with (only with GSM 7-bit).
    pub tables: LanguageTables,
    pub parts: Vec<String>,
}

/// One part ready for `AT+CMGS=<tpdu_length>` in PDU mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPart {
    /// The SMSC field (`00` when none) followed by the TPDU.
    pub pdu: Vec<u8>,
    /// Octets of the TPDU alone: the length `AT+CMGS` takes.
    pub tpdu_length: usize,
}

/// A whole message, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedMessage {
    pub alphabet: Alphabet,
    pub parts: Vec<EncodedPart>,
}

/// Split `text` for sending. `tables` are national language tables to use (each
/// table in use costs 3 header octets per part); `reference` above 255 selects
/// the 16-bit concatenation element.
pub fn segment(
    text: &str,
    choice: AlphabetChoice,
    tables: LanguageTables,
    reference: u16,
    max_parts: usize,
) -> Result<Segments> {
    // One pass: the GSM 7-bit cost, or the first character that does not fit.
    let mut septets = 0;
    let mut misfit = None;
    for c in text.chars() {
        match tables.septet_cost(c) {
            Some(n) => septets += n,
            None => {
                misfit = Some(c);
                break;
            }
        }
    }
    let alphabet = match (choice, misfit) {
        (AlphabetChoice::Ucs2, _) | (AlphabetChoice::Auto, Some(_)) => Alphabet::Ucs2,
        (AlphabetChoice::Gsm7, Some(c)) => return Err(PduError::NotGsm7(c)),
        (_, None) => Alphabet::Gsm7,
    };
    let tables = if alphabet == Alphabet::Gsm7 {
        tables
    } else {
        LanguageTables::default()
    };
    let cost = |c: char| -> usize {
        match alphabet {
            Alphabet::Gsm7 => tables.septet_cost(c).unwrap_or(1),
            _ => c.len_utf16(),
        }
    };
    let language_octets = 3 * (usize::from(tables.single != 0) + usize::from(tables.locking != 0));
    let capacity = |header_octets: usize| -> usize {
        // header_octets counts the elements; the UDHL octet is added when any.
        let header = if header_octets == 0 {
            0
        } else {
            1 + header_octets
        };
        match alphabet {
            Alphabet::Gsm7 => {
                MAX_SEPTETS
                    - if header == 0 {
                        0
                    } else {
                        header_septets(header)
                    }
            }
            _ => (MAX_OCTETS - header) / 2,
        }
    };
    let total = match alphabet {
        Alphabet::Gsm7 => septets,
        _ => text.encode_utf16().count(),
    };
    if total <= capacity(language_octets) {
        return Ok(Segments {
            alphabet,
            tables,
            parts: vec![text.to_string()],
        });
    }
    let concat_octets = if reference > 255 { 6 } else { 5 };
    let per_part = capacity(concat_octets + language_octets);
    let mut parts = Vec::with_capacity(total.div_ceil(per_part));
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        let n = cost(c);
        if used + n > per_part {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        current.push(c);
        used += n;
    }
    parts.push(current);
    let max = max_parts.min(255);
    if parts.len() > max {
        return Err(PduError::TooManyParts {
            parts: parts.len(),
            max,
        });
    }
    Ok(Segments {
        alphabet,
        tables,
        parts,
    })
}

impl Segments {
    /// The user data of each part, headers included.
    pub fn user_data(&self, reference: u16) -> Vec<UserData> {
        let total = self.parts.len();
        self.parts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let concat = (total > 1).then(|| Concat {
                    reference,
                    total: total as u8,
                    sequence: (i + 1) as u8,
                });
                let header = UserDataHeader::for_submit(concat, self.tables);
                UserData {
                    header: (!header.elements.is_empty()).then_some(header),
                    body: Body::Text(text.clone()),
                }
            })
            .collect()
    }
}

/// Options for an outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOptions {
    /// SMSC to put in the PDU; `None` lets the modem use its configured one.
    pub smsc: Option<Address>,
    /// TP-SRR: ask for a status report.
    pub status_report: bool,
    /// TP-VP; the default is 24 hours relative.
    pub validity: Option<ValidityPeriod>,
    pub class: Option<u8>,
    pub alphabet: AlphabetChoice,
    /// National language tables to encode with (only when asked: each costs 3
    /// header octets per part).
    pub tables: LanguageTables,
    /// Concatenation reference shared by the parts.
    pub reference: u16,
    /// TP-MR of the first part; later parts count up from it.
    pub message_reference: u8,
    pub max_parts: usize,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions {
            smsc: None,
            status_report: false,
            validity: Some(ValidityPeriod::relative_at_least(24 * 3600)),
            class: None,
            alphabet: AlphabetChoice::Auto,
            tables: LanguageTables::default(),
            reference: 0,
            message_reference: 0,
            max_parts: DEFAULT_MAX_PARTS,
        }
    }
}

fn with_smsc(
    smsc: Option<&Address>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
) -> Result<EncodedPart> {
    let mut pdu = Vec::with_capacity(176);
    Address::encode_smsc(smsc, &mut pdu)?;
    let smsc_len = pdu.len();
    encode(&mut pdu)?;
    Ok(EncodedPart {
        tpdu_length: pdu.len() - smsc_len,
        pdu,
    })
}

/// Encode `text` to `to` as one SMS-SUBMIT per part.
pub fn encode_submit(to: &Address, text: &str, options: &SubmitOptions) -> Result<EncodedMessage> {
    let segments = segment(
        text,
        options.alphabet,
        options.tables,
        options.reference,
        options.max_parts,
    )?;
    let dcs = DataCoding::for_submit(segments.alphabet, options.class);
    let parts = segments
        .user_data(options.reference)
        .into_iter()
        .enumerate()
        .map(|(i, user_data)| {
            let submit = SmsSubmit {
                reject_duplicates: false,
                reply_path: false,
                status_report_request: options.status_report,
                message_reference: options.message_reference.wrapping_add(i as u8),
                destination: to.clone(),
                pid: 0,
                dcs,
                validity: options.validity,
                user_data,
            };
            with_smsc(options.smsc.as_ref(), |out| submit.encode(out))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EncodedMessage {
        alphabet: segments.alphabet,
        parts,
    })
}

/// Options for an SMS-DELIVER (what the simulator's network hands a modem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverOptions {
    pub smsc: Option<Address>,
    pub alphabet: AlphabetChoice,
    pub class: Option<u8>,
    pub reference: u16,
    pub status_report_indication: bool,
    pub max_parts: usize,
}

impl Default for DeliverOptions {
    fn default() -> Self {
        DeliverOptions {
            smsc: None,
            alphabet: AlphabetChoice::Auto,
            class: None,
            reference: 0,
            status_report_indication: false,
            max_parts: 255,
        }
    }
}

/// Encode `text` from `from` as one SMS-DELIVER per part.
pub fn encode_deliver(
    from: &Address,
    text: &str,
    time: DateTime<FixedOffset>,
    options: &DeliverOptions,
) -> Result<EncodedMessage> {
    let segments = segment(
        text,
        options.alphabet,
        LanguageTables::default(),
        options.reference,
        options.max_parts,
    )?;
    let dcs = DataCoding::for_submit(segments.alphabet, options.class);
    let parts = segments
        .user_data(options.reference)
        .into_iter()
        .map(|user_data| {
            let deliver = SmsDeliver {
                more_messages: false,
                loop_prevention: false,
                reply_path: false,
                status_report_indication: options.status_report_indication,
                originator: from.clone(),
                pid: 0,
                dcs,
                service_centre_time: time,
                user_data,
            };
            with_smsc(options.smsc.as_ref(), |out| deliver.encode(out))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EncodedMessage {
        alphabet: segments.alphabet,
        parts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Segments {
        segment(
            text,
            AlphabetChoice::Auto,
            LanguageTables::default(),
            7,
            255,
        )
        .unwrap()
    }

    #[test]
    fn single_part_limits() {
        assert_eq!(split(&"a".repeat(160)).parts.len(), 1);
        assert_eq!(split(&"a".repeat(161)).parts.len(), 2);
        assert_eq!(
            split(&"€".repeat(80)).parts.len(),
            1,
            "80 escape pairs = 160 septets"
        );
        assert_eq!(split(&"€".repeat(81)).parts.len(), 2);
        assert_eq!(split(&"ж".repeat(70)).parts.len(), 1);
        assert_eq!(split(&"ж".repeat(71)).parts.len(), 2);
        assert_eq!(
            split(&"😀".repeat(35)).parts.len(),
            1,
            "35 surrogate pairs = 70 units"
        );
        assert_eq!(split(&"😀".repeat(36)).parts.len(), 2);
    }

    #[test]
    fn multipart_capacities() {
        let s = split(&"a".repeat(153 * 3));
        assert_eq!(
            s.parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [153, 153, 153]
        );
        let s = split(&"ж".repeat(67 * 2 + 1));
        assert_eq!(s.alphabet, Alphabet::Ucs2);
        assert_eq!(
            s.parts
                .iter()
                .map(|p| p.chars().count())
                .collect::<Vec<_>>(),
            [67, 67, 1]
        );
        let s = segment(
            &"a".repeat(161),
            AlphabetChoice::Auto,
            LanguageTables::default(),
            300,
            10,
        )
        .unwrap();
        assert_eq!(s.parts[0].len(), 152, "16-bit reference");
    }

    #[test]
    fn pairs_are_never_split() {
        // 152 'a' then '€': the escape pair would straddle septet 153.
        let s = split(&format!("{}€{}", "a".repeat(152), "b".repeat(10)));
        assert_eq!(s.parts[0], "a".repeat(152));
        assert_eq!(s.parts[1], format!("€{}", "b".repeat(10)));
        // 66 units then an emoji: the surrogate pair goes whole to part two.
        let s = split(&format!("{}😀{}", "ж".repeat(66), "x".repeat(5)));
        assert_eq!(s.parts[0].chars().count(), 66);
        assert_eq!(s.parts[1], "😀xxxxx");
    }

    #[test]
    fn part_limit() {
        let err = segment(
            &"a".repeat(153 * 10 + 1),
            AlphabetChoice::Auto,
            LanguageTables::default(),
            0,
            10,
        );
        assert_eq!(err, Err(PduError::TooManyParts { parts: 11, max: 10 }));
        assert!(segment(
            &"a".repeat(153 * 10),
            AlphabetChoice::Auto,
            LanguageTables::default(),
            0,
            10
        )
        .is_ok());
    }

    #[test]
    fn forced_alphabets() {
        assert_eq!(
            segment("ж", AlphabetChoice::Gsm7, LanguageTables::default(), 0, 10),
            Err(PduError::NotGsm7('ж'))
        );
        let s = segment(
            "abc",
            AlphabetChoice::Ucs2,
            LanguageTables::default(),
            0,
            10,
        )
        .unwrap();
        assert_eq!(s.alphabet, Alphabet::Ucs2);
    }

    #[test]
    fn tpdu_length_excludes_the_smsc() {
        let to = Address::parse_number("+15555551234").unwrap();
        let options = SubmitOptions {
            smsc: Some(Address::parse_number("+19037029920").unwrap()),
            ..SubmitOptions::default()
        };
        let message = encode_submit(&to, "hi", &options).unwrap();
        let part = &message.parts[0];
        assert_eq!(
            part.pdu[0], 7,
            "SMSC field: length, type, 6 octets of digits"
        );
        assert_eq!(part.tpdu_length, part.pdu.len() - 8);
    }

    #[test]
    fn national_tables_cost_header_octets_and_round_trip() {
        let turkish = LanguageTables {
            locking: 1,
            single: 1,
        };
        // Two shift elements: UDH of 1 + 3 + 3 = 7 octets = 8 septets.
        let s = segment(&"ş".repeat(152), AlphabetChoice::Auto, turkish, 0, 10).unwrap();
        assert_eq!((s.alphabet, s.parts.len()), (Alphabet::Gsm7, 1));
        let s = segment(&"ş".repeat(153), AlphabetChoice::Auto, turkish, 0, 10).unwrap();
        assert_eq!(s.parts.len(), 2);
        // With concatenation too: 1 + 5 + 6 = 12 octets = 14 septets, 146 left.
        assert_eq!(s.parts[0].chars().count(), 146);

        let to = Address::parse_number("+905321234567").unwrap();
        let options = SubmitOptions {
            tables: turkish,
            ..SubmitOptions::default()
        };
        let text = "Şimdi ödeme yapın: ğüşıöç";
        let message = encode_submit(&to, text, &options).unwrap();
        let decoded = crate::pdu::decode(&message.parts[0].pdu, true).unwrap();
        let ud = decoded.user_data().unwrap();
        assert_eq!(
            ud.header.as_ref().map(|h| h.language_tables()),
            Some(turkish)
        );
        assert_eq!(ud.body, Body::Text(text.into()));
    }
}
