//! Phone numbers to E.164 (ITU-T E.164: `+`, country code, national
//! significant number, at most 15 digits), the one form the store, the modems
//! and the API's answers use (ARCHITECTURE.md, "Contracts").
//!
//! International input (`+…`, `00…`, `011…` in NANP) keeps its digits. National
//! input is read with the configured default country's trunk prefix (the digit a
//! caller dials before an area code inside the country: `0` in most places, `8`
//! in Russia, `06` in Hungary, `1` or nothing in NANP) and prefixed with that
//! country's calling code. Where a country has no trunk prefix, a bare number of
//! the national length is national. A national number without the trunk prefix
//! where one is required is refused rather than guessed at: `447911123456` with
//! default GB could be either `+44 7911 123456` or a mistyped national number.

/// Why a number is not a usable E.164 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number contains {0:?}: only digits, +, spaces, dashes, dots and parentheses")]
    InvalidCharacter(char),
    #[error("phone number has {0} digits; E.164 numbers have 8 to 15")]
    Length(usize),
    #[error("country calling codes never start with 0")]
    CountryCode,
    #[error("default country {0:?} is not one this gateway knows: write the number with + and its country code")]
    UnknownCountry(String),
    #[error("{0}")]
    NotNational(String),
}

/// How a country writes national numbers.
#[derive(Debug, Clone, Copy)]
enum Trunk {
    /// A trunk prefix comes first and is dropped in E.164.
    Prefix(&'static str),
    /// No trunk prefix: a bare number of this many digits (national significant
    /// number lengths, inclusive) is national.
    None(usize, usize),
    /// Italy (and its enclaves): the leading 0 of fixed lines is part of the
    /// number and stays in E.164 (`+39 06 …`); mobiles start with 3.
    Kept,
    /// NANP: ten digits, optionally after the trunk `1`.
    Nanp,
}

/// ISO 3166-1 alpha-2 -> calling code and national style.
const COUNTRIES: &[(&str, &str, Trunk)] = &[
    ("US", "1", Trunk::Nanp),
    ("CA", "1", Trunk::Nanp),
    ("PR", "1", Trunk::Nanp),
    ("GB", "44", Trunk::Prefix("0")),
    ("DE", "49", Trunk::Prefix("0")),
    ("FR", "33", Trunk::Prefix("0")),
    ("ES", "34", Trunk::None(9, 9)),
    ("IT", "39", Trunk::Kept),
    ("NL", "31", Trunk::Prefix("0")),
    ("BE", "32", Trunk::Prefix("0")),
    ("LU", "352", Trunk::None(4, 11)),
    ("PT", "351", Trunk::None(9, 9)),
    ("IE", "353", Trunk::Prefix("0")),
    ("AT", "43", Trunk::Prefix("0")),
    ("CH", "41", Trunk::Prefix("0")),
    ("SE", "46", Trunk::Prefix("0")),
    ("NO", "47", Trunk::None(8, 8)),
    ("DK", "45", Trunk::None(8, 8)),
    ("FI", "358", Trunk::Prefix("0")),
    ("IS", "354", Trunk::None(7, 7)),
    ("EE", "372", Trunk::None(7, 8)),
    ("LV", "371", Trunk::None(8, 8)),
    ("PL", "48", Trunk::None(9, 9)),
    ("CZ", "420", Trunk::None(9, 9)),
    ("SK", "421", Trunk::Prefix("0")),
    ("HU", "36", Trunk::Prefix("06")),
    ("RO", "40", Trunk::Prefix("0")),
    ("BG", "359", Trunk::Prefix("0")),
    ("GR", "30", Trunk::None(10, 10)),
    ("HR", "385", Trunk::Prefix("0")),
    ("SI", "386", Trunk::Prefix("0")),
    ("RS", "381", Trunk::Prefix("0")),
    ("MT", "356", Trunk::None(8, 8)),
    ("CY", "357", Trunk::None(8, 8)),
    ("TR", "90", Trunk::Prefix("0")),
    ("RU", "7", Trunk::Prefix("8")),
    ("KZ", "7", Trunk::Prefix("8")),
    ("UA", "380", Trunk::Prefix("0")),
    ("IN", "91", Trunk::Prefix("0")),
    ("PK", "92", Trunk::Prefix("0")),
    ("BD", "880", Trunk::Prefix("0")),
    ("LK", "94", Trunk::Prefix("0")),
    ("ID", "62", Trunk::Prefix("0")),
    ("PH", "63", Trunk::Prefix("0")),
    ("VN", "84", Trunk::Prefix("0")),
    ("TH", "66", Trunk::Prefix("0")),
    ("MY", "60", Trunk::Prefix("0")),
    ("SG", "65", Trunk::None(8, 8)),
    ("HK", "852", Trunk::None(8, 8)),
    ("TW", "886", Trunk::Prefix("0")),
    ("CN", "86", Trunk::Prefix("0")),
    ("JP", "81", Trunk::Prefix("0")),
    ("KR", "82", Trunk::Prefix("0")),
    ("AU", "61", Trunk::Prefix("0")),
    ("NZ", "64", Trunk::Prefix("0")),
    ("ZA", "27", Trunk::Prefix("0")),
    ("NG", "234", Trunk::Prefix("0")),
    ("KE", "254", Trunk::Prefix("0")),
    ("GH", "233", Trunk::Prefix("0")),
    ("TZ", "255", Trunk::Prefix("0")),
    ("UG", "256", Trunk::Prefix("0")),
    ("ET", "251", Trunk::Prefix("0")),
    ("EG", "20", Trunk::Prefix("0")),
    ("MA", "212", Trunk::Prefix("0")),
    ("DZ", "213", Trunk::Prefix("0")),
    ("TN", "216", Trunk::None(8, 8)),
    ("BR", "55", Trunk::Prefix("0")),
    ("MX", "52", Trunk::None(10, 10)),
    ("AR", "54", Trunk::Prefix("0")),
    ("CL", "56", Trunk::None(9, 9)),
    ("CO", "57", Trunk::None(10, 10)),
    ("PE", "51", Trunk::Prefix("0")),
    ("VE", "58", Trunk::Prefix("0")),
    ("EC", "593", Trunk::Prefix("0")),
    ("SA", "966", Trunk::Prefix("0")),
    ("AE", "971", Trunk::Prefix("0")),
    ("QA", "974", Trunk::None(8, 8)),
    ("KW", "965", Trunk::None(8, 8)),
    ("JO", "962", Trunk::Prefix("0")),
    ("LB", "961", Trunk::Prefix("0")),
    ("IQ", "964", Trunk::Prefix("0")),
    ("IR", "98", Trunk::Prefix("0")),
    ("IL", "972", Trunk::Prefix("0")),
];

/// E.164 bounds on the digits after `+` (the 8 leaves out only a few
/// tiny numbering plans, and catches most truncated input).
const MIN_DIGITS: usize = 8;
const MAX_DIGITS: usize = 15;

/// The calling code of an ISO 3166-1 alpha-2 country, if known.
pub fn calling_code(country: &str) -> Option<&'static str> {
    lookup(country).map(|(code, _)| code)
}

/// The country of an E.164 number by its calling code: `preferred` when
/// its code fits (+1 is the US and Canada alike), else the longest code that
/// fits, first in the table. None for a number no listed code starts.
pub fn country_of(number: &str, preferred: &str) -> Option<&'static str> {
    let digits = number.strip_prefix('+')?;
    let fits: Vec<&(&'static str, &'static str, Trunk)> = COUNTRIES
        .iter()
        .filter(|(_, code, _)| digits.starts_with(code))
        .collect();
    if let Some((iso, _, _)) = fits
        .iter()
        .find(|(iso, _, _)| iso.eq_ignore_ascii_case(preferred))
    {
        return Some(iso);
    }
    fits.iter()
        .max_by_key(|(_, code, _)| code.len())
        .map(|(iso, _, _)| *iso)
}

fn lookup(country: &str) -> Option<(&'static str, Trunk)> {
    COUNTRIES
        .iter()
        .find(|(iso, _, _)| iso.eq_ignore_ascii_case(country.trim()))
        .map(|&(_, code, trunk)| (code, trunk))
}

/// Normalise `input` to E.164 (`+<digits>`), reading national numbers as
/// numbers of `default_country` (ISO 3166-1 alpha-2).
pub fn normalize(input: &str, default_country: &str) -> Result<String, PhoneError> {
    let text = input.trim();
    if text.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut digits = String::with_capacity(text.len());
    let mut plus = false;
    for (i, c) in text.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            // Only a leading + means "international".
            '+' if i == 0 => plus = true,
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            other => return Err(PhoneError::InvalidCharacter(other)),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::Empty);
    }
    let international = if plus {
        Some(digits.as_str())
    } else {
        digits.strip_prefix("00")
    };
    let e164 = match international {
        Some(rest) => rest.to_string(),
        None => national(&digits, default_country)?,
    };
    if e164.starts_with('0') {
        return Err(PhoneError::CountryCode);
    }
    if !(MIN_DIGITS..=MAX_DIGITS).contains(&e164.len()) {
        return Err(PhoneError::Length(e164.len()));
    }
    Ok(format!("+{e164}"))
}

/// The E.164 digits (no `+`) of a national number of `country`.
fn national(digits: &str, country: &str) -> Result<String, PhoneError> {
    let (code, trunk) =
        lookup(country).ok_or_else(|| PhoneError::UnknownCountry(country.to_string()))?;
    let significant = match trunk {
        Trunk::Nanp => {
            if let Some(rest) = digits.strip_prefix("011") {
                // NANP's own international prefix.
                return Ok(rest.to_string());
            }
            match digits.len() {
                10 => digits,
                11 if digits.starts_with('1') => &digits[1..],
                n => {
                    return Err(PhoneError::NotNational(format!(
                        "{n} digits is not a {country} number (10 digits, or 1 and 10 digits); \
                         write international numbers with + or 011"
                    )))
                }
            }
        }
        Trunk::Prefix(prefix) => digits.strip_prefix(prefix).ok_or_else(|| {
            PhoneError::NotNational(format!(
                "national numbers in {country} start with {prefix}; write international \
                 numbers with + or 00"
            ))
        })?,
        Trunk::None(min, max) => {
            if !(min..=max).contains(&digits.len()) {
                return Err(PhoneError::NotNational(format!(
                    "{} digits is not a {country} national number ({}); write international \
                     numbers with + or 00",
                    digits.len(),
                    if min == max {
                        format!("{min} digits")
                    } else {
                        format!("{min} to {max} digits")
                    }
                )));
            }
            digits
        }
        Trunk::Kept => digits,
    };
    if significant.is_empty() {
        return Err(PhoneError::Length(code.len()));
    }
    Ok(format!("{code}{significant}"))
}

/// A contact as `info` logs show it: its last four characters after `***`
/// (`+15551234567` -> `***4567`), so a log read over a shoulder or shipped
/// to a collector does not carry whole numbers. A contact of four characters
/// or fewer is shown as `***` alone.
pub fn masked(contact: &str) -> String {
    let count = contact.chars().count();
    if count <= 4 {
        return "***".to_string();
    }
    let tail: String = contact.chars().skip(count - 4).collect();
    format!("***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_of_numbers() {
        assert_eq!(country_of("+15551234567", "US"), Some("US"));
        assert_eq!(country_of("+15551234567", "CA"), Some("CA"));
        assert_eq!(country_of("+4915112345678", "US"), Some("DE"));
        assert_eq!(country_of("+2348012345678", "US"), Some("NG"));
        assert_eq!(country_of("5551234", "US"), None);
    }

    fn ok(input: &str, country: &str, want: &str) {
        assert_eq!(
            normalize(input, country).as_deref(),
            Ok(want),
            "{input:?} in {country}"
        );
    }

    #[test]
    fn international_forms_keep_their_digits() {
        ok("+1 (555) 123-4567", "DE", "+15551234567");
        ok("+44 7911 123456", "US", "+447911123456");
        ok("0044 7911 123456", "US", "+447911123456");
        ok("+49.30.1234567", "GB", "+49301234567");
        ok("  +33 6 12 34 56 78 ", "FR", "+33612345678");
    }

    #[test]
    fn nanp_ten_digits_or_trunk_one() {
        ok("(555) 123-4567", "US", "+15551234567");
        ok("555.123.4567", "ca", "+15551234567");
        ok("1-555-123-4567", "US", "+15551234567");
        ok("011 44 7911 123456", "US", "+447911123456");
        assert!(matches!(
            normalize("123-4567", "US"),
            Err(PhoneError::NotNational(_))
        ));
    }

    #[test]
    fn trunk_zero_countries() {
        ok("07911 123456", "GB", "+447911123456");
        ok("030 1234567", "DE", "+49301234567");
        ok("06 12 34 56 78", "FR", "+33612345678");
        ok("020-555 1234", "NL", "+31205551234");
        ok("0470 12 34 56", "BE", "+32470123456");
        ok("087 123 4567", "IE", "+353871234567");
        ok("0664 1234567", "AT", "+436641234567");
        ok("079 123 45 67", "CH", "+41791234567");
        ok("070-123 45 67", "SE", "+46701234567");
        ok("040 1234567", "FI", "+358401234567");
        ok("0532 123 45 67", "TR", "+905321234567");
        ok("098765 43210", "IN", "+919876543210");
        ok("0300 1234567", "PK", "+923001234567");
        ok("01712 345678", "BD", "+8801712345678");
        ok("071 234 5678", "LK", "+94712345678");
        ok("0812-3456-7890", "ID", "+6281234567890");
        ok("0917 123 4567", "PH", "+639171234567");
        ok("091 234 56 78", "VN", "+84912345678");
        ok("081 234 5678", "TH", "+66812345678");
        ok("012-345 6789", "MY", "+60123456789");
        ok("0138 0013 8000", "CN", "+8613800138000");
        ok("090-1234-5678", "JP", "+819012345678");
        ok("010-1234-5678", "KR", "+821012345678");
        ok("0412 345 678", "AU", "+61412345678");
        ok("021 123 4567", "NZ", "+64211234567");
        ok("082 123 4567", "ZA", "+27821234567");
        ok("0803 123 4567", "NG", "+2348031234567");
        ok("0712 345678", "KE", "+254712345678");
        ok("010 1234 5678", "EG", "+201012345678");
        ok("0612-345678", "MA", "+212612345678");
        ok("(011) 91234-5678", "BR", "+5511912345678");
        ok("011 1234-5678", "AR", "+541112345678");
        ok("01 234 5678", "PE", "+5112345678");
        ok("050 123 4567", "UA", "+380501234567");
        ok("050 123 4567", "SA", "+966501234567");
        ok("050 123 4567", "AE", "+971501234567");
        ok("050-123-4567", "IL", "+972501234567");
    }

    #[test]
    fn other_trunk_prefixes() {
        ok("8 (912) 345-67-89", "RU", "+79123456789");
        ok("06 30 123 4567", "HU", "+36301234567");
    }

    #[test]
    fn countries_without_trunk_prefix() {
        ok("612 34 56 78", "ES", "+34612345678");
        ok("912 345 678", "PT", "+351912345678");
        ok("20 12 34 56", "DK", "+4520123456");
        ok("412 34 567", "NO", "+4741234567");
        ok("512 345 678", "PL", "+48512345678");
        ok("601 123 456", "CZ", "+420601123456");
        ok("9123 4567", "SG", "+6591234567");
        ok("55 1234 5678", "MX", "+525512345678");
        ok("9 6123 4567", "CL", "+56961234567");
        ok("300 123 4567", "CO", "+573001234567");
        // The country code typed without + is not mistaken for a national number.
        assert!(normalize("34612345678", "ES").is_err());
    }

    #[test]
    fn italy_keeps_the_leading_zero() {
        ok("06 1234 5678", "IT", "+390612345678");
        ok("347 123 4567", "IT", "+393471234567");
        ok("+39 06 1234 5678", "US", "+390612345678");
    }

    #[test]
    fn refusals() {
        assert_eq!(normalize("", "US"), Err(PhoneError::Empty));
        assert_eq!(normalize(" - ", "US"), Err(PhoneError::Empty));
        assert_eq!(
            normalize("+1 555 CALL NOW", "US"),
            Err(PhoneError::InvalidCharacter('C'))
        );
        assert_eq!(
            normalize("555+1234567", "US"),
            Err(PhoneError::InvalidCharacter('+'))
        );
        assert_eq!(normalize("+1234567", "US"), Err(PhoneError::Length(7)));
        assert_eq!(
            normalize("+1234567890123456", "US"),
            Err(PhoneError::Length(16))
        );
        assert_eq!(normalize("+0123456789", "US"), Err(PhoneError::CountryCode));
        assert!(matches!(
            normalize("7911 123456", "GB"),
            Err(PhoneError::NotNational(_))
        ));
        assert!(matches!(
            normalize("07911 123456", "XX"),
            Err(PhoneError::UnknownCountry(_))
        ));
        // An unknown default country is fine for international input.
        ok("+447911123456", "", "+447911123456");
    }

    proptest::proptest! {
        /// Outside input: a value or an error, never a panic; every value is E.164.
        #[test]
        fn any_input_is_e164_or_an_error(input in "\\PC{0,24}", country in "[A-Za-z]{0,3}") {
            if let Ok(n) = normalize(&input, &country) {
                let digits = &n[1..];
                proptest::prop_assert!(n.starts_with('+'));
                proptest::prop_assert!((8..=15).contains(&digits.len()));
                proptest::prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0'));
            }
        }

        #[test]
        fn formatting_does_not_change_the_number(n in "[1-9][0-9]{7,14}") {
            let spaced: String = n.chars().flat_map(|c| [c, ' ']).collect();
            proptest::prop_assert_eq!(normalize(&format!("+{spaced}"), "US"), Ok(format!("+{n}")));
            proptest::prop_assert_eq!(normalize(&format!("00{n}"), "DE"), Ok(format!("+{n}")));
        }
    }

    #[test]
    fn every_country_has_a_code_and_iso_codes_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (iso, code, _) in COUNTRIES {
            assert!(seen.insert(*iso), "{iso} twice");
            assert_eq!(iso.len(), 2);
            assert!(code.chars().all(|c| c.is_ascii_digit()) && !code.starts_with('0'));
        }
        assert!(COUNTRIES.len() >= 60);
        assert_eq!(calling_code("gb"), Some("44"));
    }
}
