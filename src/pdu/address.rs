//! Addresses (23.040 §9.1.2.5) and the semi-octet representation (§9.1.2.3).

use super::error::{PduError, Reader, Result};
use super::gsm7::{self, LanguageTables};

/// Type of number, bits 6-4 of the type-of-address octet (23.040 §9.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeOfNumber {
    Unknown,
    International,
    National,
    NetworkSpecific,
    Subscriber,
    /// Coded in the GSM 7-bit default alphabet (e.g. a sender "InternetSMS").
    Alphanumeric,
    Abbreviated,
    Reserved,
}

impl TypeOfNumber {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x07 {
            0 => Self::Unknown,
            1 => Self::International,
            2 => Self::National,
            3 => Self::NetworkSpecific,
            4 => Self::Subscriber,
            5 => Self::Alphanumeric,
            6 => Self::Abbreviated,
            _ => Self::Reserved,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::International => 1,
            Self::National => 2,
            Self::NetworkSpecific => 3,
            Self::Subscriber => 4,
            Self::Alphanumeric => 5,
            Self::Abbreviated => 6,
            Self::Reserved => 7,
        }
    }

    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::International => "international",
            Self::National => "national",
            Self::NetworkSpecific => "network_specific",
            Self::Subscriber => "subscriber",
            Self::Alphanumeric => "alphanumeric",
            Self::Abbreviated => "abbreviated",
            Self::Reserved => "reserved",
        }
    }
}

/// Numbering plan "ISDN/telephone" (E.164), the one every mobile number uses.
pub const NPI_ISDN: u8 = 0x01;

/// Longest address value: 10 octets of semi-octets (23.040 §9.1.2.5).
const MAX_DIGITS: usize = 20;

/// A phone number or alphanumeric sender as carried in a PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub ton: TypeOfNumber,
    /// Numbering plan identification, bits 3-0 of the type-of-address octet.
    pub npi: u8,
    /// Digits (with `*`, `#`, `a`, `b`, `c` for the semi-octets A-E), prefixed by
    /// `+` when international; the text for an alphanumeric address.
    pub value: String,
}

impl Address {
    /// A number as a user writes it: `+` and digits is international, digits
    /// alone are kept as "unknown" type (the network applies its own rules).
    /// Spaces, dashes, dots and parentheses are ignored.
    pub fn parse_number(input: &str) -> Result<Address> {
        let invalid = |reason| PduError::InvalidNumber {
            number: input.to_string(),
            reason,
        };
        let cleaned: String = input
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let (ton, digits) = match cleaned.strip_prefix('+') {
            Some(rest) => (TypeOfNumber::International, rest),
            None => (TypeOfNumber::Unknown, cleaned.as_str()),
        };
        if digits.is_empty() {
            return Err(invalid("no digits"));
        }
        if digits.len() > MAX_DIGITS {
            return Err(invalid("more than 20 digits"));
        }
        if ton == TypeOfNumber::International && !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("an international number is digits only after '+'"));
        }
        if !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#')
        {
            return Err(invalid("only digits, '*' and '#' are allowed"));
        }
        let value = if ton == TypeOfNumber::International {
            format!("+{digits}")
        } else {
            digits.to_string()
        };
        Ok(Address {
            ton,
            npi: NPI_ISDN,
            value,
        })
    }

    /// An alphanumeric sender ("MyShop"): at most 11 GSM 7-bit characters.
    pub fn alphanumeric(text: &str) -> Result<Address> {
        let septets =
            LanguageTables::default()
                .encode(text)
                .map_err(|_| PduError::InvalidNumber {
                    number: text.to_string(),
                    reason: "an alphanumeric address must be GSM 7-bit text",
                })?;
        if septets.is_empty() || septets.len() * 7 > MAX_DIGITS * 4 {
            return Err(PduError::InvalidNumber {
                number: text.to_string(),
                reason: "an alphanumeric address holds 1 to 11 characters",
            });
        }
        Ok(Address {
            ton: TypeOfNumber::Alphanumeric,
            npi: 0,
            value: text.to_string(),
        })
    }

    fn type_octet(&self) -> u8 {
        0x80 | self.ton.bits() << 4 | (self.npi & 0x0F)
    }

    fn digits(&self) -> &str {
        self.value.strip_prefix('+').unwrap_or(&self.value)
    }

    /// Encode as TP-OA / TP-DA / TP-RA: the length octet counts useful semi-octets.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.ton == TypeOfNumber::Alphanumeric {
            let septets = LanguageTables::default()
                .encode(&self.value)
                .map_err(PduError::NotGsm7)?;
            let mut packed = Vec::with_capacity(10);
            gsm7::pack(&septets, 0, &mut packed);
            out.push((septets.len() * 7).div_ceil(4) as u8);
            out.push(self.type_octet());
            out.extend_from_slice(&packed);
            return Ok(());
        }
        let digits = self.digits();
        out.push(digits.len() as u8);
        out.push(self.type_octet());
        push_semi_octets(digits, out)
    }

    /// Encode as the SMSC field of a PDU: the length octet counts octets
    /// (type-of-address included); `None` is the single octet 00.
    pub fn encode_smsc(smsc: Option<&Address>, out: &mut Vec<u8>) -> Result<()> {
        let Some(smsc) = smsc else {
            out.push(0);
            return Ok(());
        };
        let digits = smsc.digits();
        out.push(1 + digits.len().div_ceil(2) as u8);
        out.push(smsc.type_octet());
        push_semi_octets(digits, out)
    }

    /// Decode TP-OA / TP-DA / TP-RA.
    pub(crate) fn decode(reader: &mut Reader<'_>, field: &'static str) -> Result<Address> {
        let start = reader.offset();
        let length = usize::from(reader.u8(field)?);
        if length > MAX_DIGITS {
            return Err(PduError::Invalid {
                offset: start,
                field,
                reason: format!("address length {length} is over {MAX_DIGITS} semi-octets"),
            });
        }
        let type_octet = reader.u8(field)?;
        check_type_octet(reader, type_octet, field)?;
        let octets = reader.take(length.div_ceil(2), field)?;
        let ton = TypeOfNumber::from_bits(type_octet >> 4);
        let value = if ton == TypeOfNumber::Alphanumeric {
            let septets = gsm7::unpack(octets, length * 4 / 7, 0).unwrap_or_default();
            LanguageTables::default().decode(&septets)
        } else {
            read_semi_octets(octets, length, ton)
        };
        Ok(Address {
            ton,
            npi: type_octet & 0x0F,
            value,
        })
    }

    /// Decode the SMSC field; `None` when its length is zero or it holds no digit.
    pub(crate) fn decode_smsc(reader: &mut Reader<'_>) -> Result<Option<Address>> {
        let start = reader.offset();
        let length = usize::from(reader.u8("SMSC length")?);
        if length == 0 {
            return Ok(None);
        }
        if length > 1 + MAX_DIGITS / 2 {
            return Err(PduError::Invalid {
                offset: start,
                field: "SMSC length",
                reason: format!("{length} octets is over the 11 an address can use"),
            });
        }
        let type_octet = reader.u8("SMSC type of address")?;
        let octets = reader.take(length - 1, "SMSC address")?;
        let ton = TypeOfNumber::from_bits(type_octet >> 4);
        let value = read_semi_octets(octets, octets.len() * 2, ton);
        // A type-of-address octet with no digits after it (`01 81`, what gammu
        // writes for "no SMSC") names no service centre: the same as length 0,
        // which 27.005 §3.1 reads as "use the one in +CSCA". The address value is
        // a called party BCD number (24.011 §8.2.5.2, 24.008 §10.5.4.7) and a
        // number of zero digits is no number.
        if value.trim_start_matches('+').is_empty() {
            return Ok(None);
        }
        Ok(Some(Address {
            ton,
            npi: type_octet & 0x0F,
            value,
        }))
    }
}

/// 23.040 §9.1.2.5: bit 7 of the type-of-address octet is always 1. A zero there
/// means the decoder is reading something that is not an address (a length off
/// by some octets), so the PDU is refused rather than read as nonsense.
fn check_type_octet(reader: &Reader<'_>, type_octet: u8, field: &'static str) -> Result<()> {
    if type_octet & 0x80 == 0 {
        return Err(PduError::Invalid {
            offset: reader.offset() - 1,
            field,
            reason: format!("type-of-address octet {type_octet:02X} lacks bit 7"),
        });
    }
    Ok(())
}

/// 23.040 §9.1.2.3: digit pairs with the first digit in the low nibble; an odd
/// count ends with the filler F.
fn push_semi_octets(digits: &str, out: &mut Vec<u8>) -> Result<()> {
    let nibble = |c: u8| -> Result<u8> {
        Ok(match c {
            b'0'..=b'9' => c - b'0',
            b'*' => 0x0A,
            b'#' => 0x0B,
            b'a' | b'A' => 0x0C,
            b'b' | b'B' => 0x0D,
            b'c' | b'C' => 0x0E,
            _ => {
                return Err(PduError::InvalidNumber {
                    number: digits.to_string(),
                    reason: "only digits, '*', '#', 'a', 'b' and 'c' fit in semi-octets",
                })
            }
        })
    };
    for pair in digits.as_bytes().chunks(2) {
        let low = nibble(pair[0])?;
        let high = match pair.get(1) {
            Some(&c) => nibble(c)?,
            None => 0x0F,
        };
        out.push(high << 4 | low);
    }
    Ok(())
}

fn read_semi_octets(octets: &[u8], count: usize, ton: TypeOfNumber) -> String {
    let mut out = String::with_capacity(count + 1);
    if ton == TypeOfNumber::International {
        out.push('+');
    }
    let nibbles = octets.iter().flat_map(|b| [b & 0x0F, b >> 4]).take(count);
    for n in nibbles {
        out.push(match n {
            0..=9 => char::from(b'0' + n),
            0x0A => '*',
            0x0B => '#',
            0x0C => 'a',
            0x0D => 'b',
            0x0E => 'c',
            _ => break, // the filler F ends the number
        });
    }
    out
}

/// The semi-octet pairs of a timestamp (23.040 §9.2.3.11): `None` if either
/// nibble is not a decimal digit.
pub(crate) fn swapped_bcd(octet: u8) -> Option<u8> {
    let (tens, units) = (octet & 0x0F, octet >> 4);
    (tens <= 9 && units <= 9).then_some(tens * 10 + units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_from_user_input() {
        let intl = Address::parse_number("+1 (903) 702-9920").unwrap();
        assert_eq!(intl.value, "+19037029920");
        assert_eq!(intl.ton, TypeOfNumber::International);
        assert_eq!(
            Address::parse_number("112").unwrap().ton,
            TypeOfNumber::Unknown
        );
        for bad in ["", "+", "+12a", "12x", "+123456789012345678901", "++1"] {
            assert!(Address::parse_number(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn alphanumeric_round_trip() {
        // pdu2 of ModemManager's test-sms-part-3gpp.c: "InternetSMS" is 14 D0 49 37 BD 2C 77 97 E9 D3 E6 14.
        let addr = Address::alphanumeric("InternetSMS").unwrap();
        let mut out = Vec::new();
        addr.encode(&mut out).unwrap();
        assert_eq!(
            out,
            [0x14, 0xD0, 0x49, 0x37, 0xBD, 0x2C, 0x77, 0x97, 0xE9, 0xD3, 0xE6, 0x14]
        );
        let decoded = Address::decode(&mut Reader::new(&out), "TP-OA").unwrap();
        assert_eq!(decoded.value, "InternetSMS");
        assert!(Address::alphanumeric("TwelveChars!").is_err());
        assert!(Address::alphanumeric("Ω😀").is_err());
    }

    #[test]
    fn odd_digit_counts_use_the_filler() {
        let mut out = Vec::new();
        Address::parse_number("+123")
            .unwrap()
            .encode(&mut out)
            .unwrap();
        assert_eq!(out, [0x03, 0x91, 0x21, 0xF3]);
        let decoded = Address::decode(&mut Reader::new(&out), "TP-DA").unwrap();
        assert_eq!(decoded.value, "+123");
    }

    #[test]
    fn smsc_field_without_digits_is_no_smsc() {
        // 27.005 §3.1: length 0 is "no SMSC"; a lone type-of-address octet
        // (gammu's EncodePDU with an empty SMSC number) or filler only says the same.
        for field in [
            &[0x00][..],
            &[0x01, 0x81],
            &[0x01, 0x91],
            &[0x02, 0x91, 0xFF],
        ] {
            let mut reader = Reader::new(field);
            assert_eq!(Address::decode_smsc(&mut reader), Ok(None), "{field:02X?}");
            assert!(reader.is_empty(), "the whole field is consumed");
        }
        let smsc = Address::decode_smsc(&mut Reader::new(&[0x02, 0x91, 0xF1])).unwrap();
        assert_eq!(smsc.map(|a| a.value), Some("+1".to_string()));
    }

    #[test]
    fn oversized_or_truncated_addresses_are_errors() {
        assert!(matches!(
            Address::decode(&mut Reader::new(&[0x15, 0x91]), "TP-OA"),
            Err(PduError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            Address::decode(&mut Reader::new(&[0x04, 0x91, 0x21]), "TP-OA"),
            Err(PduError::Truncated {
                offset: 2,
                needed: 2,
                available: 1,
                ..
            })
        ));
    }
}
