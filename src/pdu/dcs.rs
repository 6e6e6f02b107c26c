//! TP-DCS, the data coding scheme (23.038 §4): which alphabet the user data is
//! in, and the message class.

/// The character set of the user data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    EightBit,
    Ucs2,
}

impl Alphabet {
    pub fn as_str(self) -> &'static str {
        match self {
            Alphabet::Gsm7 => "gsm7",
            Alphabet::EightBit => "8bit",
            Alphabet::Ucs2 => "ucs2",
        }
    }
}

/// A decoded TP-DCS octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataCoding {
    pub alphabet: Alphabet,
    /// Message class 0-3 (0: flash, shown and not stored; 2: SIM specific).
    pub class: Option<u8>,
    /// Compressed user data (23.042): the body is kept as data, never decoded as text.
    pub compressed: bool,
    /// The raw octet, kept so a re-encoded PDU carries exactly what was received.
    pub raw: u8,
}

impl DataCoding {
    /// 23.038 §4: coding groups by the high nibble. Reserved alphabets and the
    /// reserved groups 1000-1011 are read as the GSM 7-bit default alphabet,
    /// as the spec asks of a receiver.
    pub fn from_octet(raw: u8) -> DataCoding {
        let general = |raw: u8| {
            let alphabet = match (raw >> 2) & 0x03 {
                1 => Alphabet::EightBit,
                2 => Alphabet::Ucs2,
                _ => Alphabet::Gsm7,
            };
            DataCoding {
                alphabet,
                class: (raw & 0x10 != 0).then_some(raw & 0x03),
                compressed: raw & 0x20 != 0,
                raw,
            }
        };
        let plain = |alphabet| DataCoding {
            alphabet,
            class: None,
            compressed: false,
            raw,
        };
        match raw >> 4 {
            // 00xx: general data coding; 01xx: the same, marked for automatic deletion.
            0x0..=0x7 => general(raw),
            // 1100 / 1101: message waiting indication, discard or store, GSM 7-bit.
            0xC | 0xD => plain(Alphabet::Gsm7),
            // 1110: message waiting indication, store, UCS-2.
            0xE => plain(Alphabet::Ucs2),
            // 1111: data coding / message class; bit 2 picks 8-bit, the class is always given.
            0xF => DataCoding {
                alphabet: if raw & 0x04 != 0 {
                    Alphabet::EightBit
                } else {
                    Alphabet::Gsm7
                },
                class: Some(raw & 0x03),
                compressed: false,
                raw,
            },
            // 1000-1011: reserved coding groups.
            _ => plain(Alphabet::Gsm7),
        }
    }

    /// The octet for an outgoing message: general data coding group, with the class
    /// when one is asked for.
    pub fn for_submit(alphabet: Alphabet, class: Option<u8>) -> DataCoding {
        let mut raw = match alphabet {
            Alphabet::Gsm7 => 0x00,
            Alphabet::EightBit => 0x04,
            Alphabet::Ucs2 => 0x08,
        };
        if let Some(class) = class {
            raw |= 0x10 | (class & 0x03);
        }
        DataCoding::from_octet(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coding_groups() {
        // (octet, alphabet, class) per 23.038 §4.
        let cases = [
            (0x00, Alphabet::Gsm7, None),
            (0x04, Alphabet::EightBit, None),
            (0x08, Alphabet::Ucs2, None),
            (0x10, Alphabet::Gsm7, Some(0)),
            (0x18, Alphabet::Ucs2, Some(0)),
            (0x4B, Alphabet::Ucs2, None), // class bits without bit 4
            (0x5B, Alphabet::Ucs2, Some(3)),
            (0x0C, Alphabet::Gsm7, None), // reserved alphabet
            (0x80, Alphabet::Gsm7, None), // reserved group
            (0xC8, Alphabet::Gsm7, None), // MWI discard
            (0xD1, Alphabet::Gsm7, None), // MWI store
            (0xE0, Alphabet::Ucs2, None), // MWI store UCS-2
            (0xF0, Alphabet::Gsm7, Some(0)),
            (0xF1, Alphabet::Gsm7, Some(1)),
            (0xF6, Alphabet::EightBit, Some(2)),
        ];
        for (raw, alphabet, class) in cases {
            let dcs = DataCoding::from_octet(raw);
            assert_eq!((dcs.alphabet, dcs.class), (alphabet, class), "{raw:02X}");
        }
        assert!(DataCoding::from_octet(0x20).compressed);
    }

    #[test]
    fn submit_octets() {
        assert_eq!(DataCoding::for_submit(Alphabet::Gsm7, None).raw, 0x00);
        assert_eq!(DataCoding::for_submit(Alphabet::Ucs2, None).raw, 0x08);
        assert_eq!(DataCoding::for_submit(Alphabet::Gsm7, Some(0)).raw, 0x10);
        assert_eq!(DataCoding::for_submit(Alphabet::Ucs2, Some(1)).raw, 0x19);
    }
}
