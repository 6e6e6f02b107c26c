//! Property tests of the PDU codec (STYLE.md habit 4: a value or an error,
//! never a panic).
//!
//! - `encode_submit` / `encode_deliver` then `decode`: every part decodes, the
//!   concatenation fields agree, the joined texts give the input back, GSM
//!   7-bit is chosen exactly when every character fits, and the TPDU length is
//!   the PDU less its SMSC field.
//! - `decode` of arbitrary octets (with and without the SMSC field) and
//!   `decode_hex` of arbitrary text return a value or an error.
//! - A decoded PDU re-encoded with `Pdu::encode` decodes to the same value.
//!   Not to the same octets: fill bits, octets after the TPDU, semi-octets
//!   after the filler, a missing bit 7 in the SMSC type-of-address, reserved
//!   TP-PI bits and non-canonical escapes (ESC ESC, an undefined escape, a
//!   trailing ESC) are all read leniently and written canonically.

use chrono::{DateTime, FixedOffset, TimeZone};
use proptest::prelude::*;
use smsgate::pdu::{
    self, Address, Alphabet, AlphabetChoice, Body, Concat, DeliverOptions, EncodedMessage,
    LanguageTables, Pdu, SubmitOptions, Tpdu, UserData, ValidityPeriod,
};

/// 23.038 §6.2.1 (without ESC) and §6.2.1.1, written out independently of the codec.
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM_EXTENSION: &str = "^{}\\[~]|€\u{0C}";

fn fits_gsm(text: &str) -> bool {
    text.chars()
        .all(|c| GSM_BASIC.contains(c) || GSM_EXTENSION.contains(c))
}

fn pick(pool: &'static str) -> impl Strategy<Value = char> {
    let chars: Vec<char> = pool.chars().collect();
    prop::sample::select(chars)
}

fn gsm_char() -> impl Strategy<Value = char> {
    prop_oneof![6 => pick(GSM_BASIC), 1 => pick(GSM_EXTENSION)]
}

fn any_text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => gsm_char(),
        2 => prop::char::range('\u{0410}', '\u{044F}'), // Cyrillic
        1 => prop::char::range('\u{4E00}', '\u{9FA5}'), // CJK
        2 => prop::char::range('\u{1F300}', '\u{1F64F}'), // emoji: surrogate pairs
        1 => any::<char>(),
    ]
}

/// Texts of 0 to about 1600 characters, GSM-only in half the cases; those that
/// need more than 10 parts are cut to the first 10 (see `within_ten_parts`).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(gsm_char(), 0..1600),
        prop::collection::vec(any_text_char(), 0..700),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

/// Cut `text` to what fits in 10 parts, so every case exercises 1 to 10 parts.
fn within_ten_parts(text: String, reference: u16) -> String {
    match pdu::segment(
        &text,
        AlphabetChoice::Auto,
        LanguageTables::default(),
        reference,
        255,
    ) {
        Ok(s) if s.parts.len() > 10 => s.parts[..10].concat(),
        _ => text,
    }
}

fn number() -> impl Strategy<Value = Address> {
    prop_oneof![
        "[1-9][0-9]{0,14}".prop_map(|d| format!("+{d}")),
        "[0-9*#]{1,20}",
    ]
    .prop_map(|n| Address::parse_number(&n).expect("generated numbers parse"))
}

fn time() -> impl Strategy<Value = DateTime<FixedOffset>> {
    (
        2000..2100i32,
        1..=12u32,
        1..=28u32,
        0..24u32,
        0..60u32,
        0..60u32,
        -79..=79i32,
    )
        .prop_map(|(y, mo, d, h, mi, s, quarters)| {
            FixedOffset::east_opt(quarters * 900)
                .expect("zone in range")
                .with_ymd_and_hms(y, mo, d, h, mi, s)
                .single()
                .expect("valid time")
        })
}

/// The length of the SMSC field at the start of `pdu` (length octet included).
fn smsc_field_len(pdu: &[u8]) -> usize {
    1 + usize::from(pdu[0])
}

/// Checks shared by SMS-SUBMIT and SMS-DELIVER; returns the decoded parts.
fn check_parts(
    message: &EncodedMessage,
    text: &str,
    reference: u16,
    smsc: Option<&Address>,
) -> Result<Vec<Pdu>, TestCaseError> {
    let total = message.parts.len();
    prop_assert!((1..=10).contains(&total), "{total} parts");
    let expected_alphabet = if fits_gsm(text) {
        Alphabet::Gsm7
    } else {
        Alphabet::Ucs2
    };
    prop_assert_eq!(message.alphabet, expected_alphabet);
    let mut joined = String::new();
    let mut decoded_parts = Vec::new();
    for (i, part) in message.parts.iter().enumerate() {
        let smsc_len = smsc_field_len(&part.pdu);
        prop_assert_eq!(part.tpdu_length, part.pdu.len() - smsc_len);
        let decoded = pdu::decode(&part.pdu, true);
        prop_assert!(decoded.is_ok(), "part {}: {:?}", i + 1, decoded);
        let decoded = decoded.expect("checked");
        let bare = pdu::decode(&part.pdu[smsc_len..], false).expect("the bare TPDU decodes");
        prop_assert_eq!(&bare.tpdu, &decoded.tpdu);
        prop_assert_eq!(bare.smsc, None);
        prop_assert_eq!(decoded.smsc.as_ref(), smsc);
        // What the codec wrote it writes again, octet for octet.
        let reencoded = decoded.encode();
        prop_assert_eq!(reencoded.as_deref(), Ok(&part.pdu[..]));
        let user_data = decoded
            .user_data()
            .expect("submit and deliver carry user data");
        let Body::Text(part_text) = &user_data.body else {
            return Err(TestCaseError::fail("a text body"));
        };
        joined.push_str(part_text);
        let concat = user_data.header.as_ref().and_then(|h| h.concat());
        if total == 1 {
            prop_assert!(user_data.header.is_none(), "a single part has no header");
        } else {
            prop_assert_eq!(
                concat,
                Some(Concat {
                    reference,
                    total: total as u8,
                    sequence: (i + 1) as u8,
                })
            );
            let iei = user_data
                .header
                .as_ref()
                .and_then(|h| h.elements.first())
                .map(|e| e.iei);
            // 23.040 §9.2.3.24.1 (8-bit reference) and §9.2.3.24.8 (16-bit).
            prop_assert_eq!(iei, Some(if reference > 255 { 0x08 } else { 0x00 }));
        }
        decoded_parts.push(decoded);
    }
    prop_assert_eq!(joined, text);
    Ok(decoded_parts)
}

fn user_data(pdu: &Pdu) -> &UserData {
    pdu.user_data().expect("user data")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn submit_round_trip(
        text in text(),
        to in number(),
        smsc in prop::option::of(number().prop_filter("an SMSC is international", |a| a.value.starts_with('+'))),
        status_report in any::<bool>(),
        validity in prop::option::of(any::<u8>().prop_map(ValidityPeriod::Relative)),
        class in prop::option::of(0..4u8),
        reference in any::<u16>(),
        message_reference in any::<u8>(),
    ) {
        let text = within_ten_parts(text, reference);
        let options = SubmitOptions {
            smsc: smsc.clone(),
            status_report,
            validity,
            class,
            alphabet: AlphabetChoice::Auto,
            tables: LanguageTables::default(),
            reference,
            message_reference,
            max_parts: 10,
        };
        let message = pdu::encode_submit(&to, &text, &options);
        prop_assert!(message.is_ok(), "{:?}", message);
        let message = message.expect("checked");
        let parts = check_parts(&message, &text, reference, smsc.as_ref())?;
        for (i, decoded) in parts.iter().enumerate() {
            let Tpdu::Submit(s) = &decoded.tpdu else {
                return Err(TestCaseError::fail("not a submit"));
            };
            prop_assert_eq!(&s.destination, &to);
            prop_assert_eq!(s.status_report_request, status_report);
            prop_assert_eq!(s.validity, validity);
            prop_assert_eq!(s.dcs.class, class);
            prop_assert_eq!(s.dcs.alphabet, message.alphabet);
            prop_assert_eq!(s.message_reference, message_reference.wrapping_add(i as u8));
            prop_assert!(user_data(decoded).header.is_none() || message.parts.len() > 1);
        }
    }

    #[test]
    fn deliver_round_trip(
        text in text(),
        from in number(),
        smsc in prop::option::of(number().prop_filter("an SMSC is international", |a| a.value.starts_with('+'))),
        time in time(),
        status_report_indication in any::<bool>(),
        class in prop::option::of(0..4u8),
        reference in any::<u16>(),
    ) {
        let text = within_ten_parts(text, reference);
        let options = DeliverOptions {
            smsc: smsc.clone(),
            alphabet: AlphabetChoice::Auto,
            class,
            reference,
            status_report_indication,
            max_parts: 10,
        };
        let message = pdu::encode_deliver(&from, &text, time, &options);
        prop_assert!(message.is_ok(), "{:?}", message);
        let message = message.expect("checked");
        let parts = check_parts(&message, &text, reference, smsc.as_ref())?;
        for decoded in &parts {
            let Tpdu::Deliver(d) = &decoded.tpdu else {
                return Err(TestCaseError::fail("not a deliver"));
            };
            prop_assert_eq!(&d.originator, &from);
            prop_assert_eq!(d.status_report_indication, status_report_indication);
            prop_assert_eq!(d.dcs.class, class);
            prop_assert_eq!(d.dcs.alphabet, message.alphabet);
            prop_assert_eq!(d.service_centre_time, time);
            prop_assert_eq!(d.service_centre_time.offset(), time.offset());
        }
    }
}

/// Decode, and when that succeeds, re-encode and decode again: the value must
/// come back (see the module docs for what need not).
fn decode_reencode(bytes: &[u8], with_smsc: bool) -> Result<(), TestCaseError> {
    let Ok(first) = pdu::decode(bytes, with_smsc) else {
        return Ok(());
    };
    let encoded = first.encode();
    prop_assert!(
        encoded.is_ok(),
        "{:?} does not re-encode: {:?}",
        first,
        encoded
    );
    let encoded = encoded.expect("checked");
    let second = pdu::decode(&encoded, true);
    prop_assert_eq!(
        second.as_ref(),
        Ok(&first),
        "re-encoded as {}",
        pdu::hex::encode(&encoded)
    );
    Ok(())
}

/// Octets shaped like a PDU often enough to get past the first fields: an SMSC
/// field of plausible length, a first octet with each TP-MTI, then noise.
fn pdu_like() -> impl Strategy<Value = Vec<u8>> {
    (
        0..4u8,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(mti, first, mut rest)| {
            let mut bytes = vec![0x00, (first & 0xFC) | mti];
            bytes.append(&mut rest);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_octets_decode_to_a_value_or_an_error(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        decode_reencode(&bytes, true)?;
        decode_reencode(&bytes, false)?;
    }

    #[test]
    fn pdu_shaped_octets_decode_to_a_value_or_an_error(bytes in pdu_like()) {
        decode_reencode(&bytes, true)?;
        decode_reencode(&bytes[1..], false)?;
    }

    #[test]
    fn arbitrary_text_through_decode_hex_never_panics(text in any::<String>(), with_smsc in any::<bool>()) {
        let _ = pdu::decode_hex(&text, with_smsc);
    }

    #[test]
    fn hex_like_text_through_decode_hex_never_panics(
        text in "[\" \t0-9A-Fa-f]{0,120}[^0-9A-F]?",
        with_smsc in any::<bool>(),
    ) {
        if let Ok(first) = pdu::decode_hex(&text, with_smsc) {
            prop_assert!(first.encode().is_ok());
        }
    }
}
