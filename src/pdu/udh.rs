//! The user data header (23.040 §9.2.3.24): information elements in front of the
//! text. We act on concatenation (0x00, 0x08), application ports (0x04, 0x05) and
//! the national language shifts (0x24, 0x25); every other element is kept as it
//! came and otherwise skipped.

use super::error::{PduError, Result};
use super::gsm7::LanguageTables;

/// Concatenated short messages, 8-bit reference (§9.2.3.24.1).
pub const IEI_CONCAT_8: u8 = 0x00;
/// Application port addressing, 8-bit (§9.2.3.24.3).
pub const IEI_PORTS_8: u8 = 0x04;
/// Application port addressing, 16-bit (§9.2.3.24.4).
pub const IEI_PORTS_16: u8 = 0x05;
/// Concatenated short messages, 16-bit reference (§9.2.3.24.8).
pub const IEI_CONCAT_16: u8 = 0x08;
/// National language single shift (§9.2.3.24.15).
pub const IEI_SINGLE_SHIFT: u8 = 0x24;
/// National language locking shift (§9.2.3.24.16).
pub const IEI_LOCKING_SHIFT: u8 = 0x25;

/// One information element: identifier and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InformationElement {
    pub iei: u8,
    pub data: Vec<u8>,
}

/// Where a part sits in a concatenated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concat {
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub sequence: u8,
}

/// Application port addressing (WAP push, vCard, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub destination: u16,
    pub source: u16,
}

/// A parsed user data header, in the order the elements came.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDataHeader {
    pub elements: Vec<InformationElement>,
}

impl UserDataHeader {
    /// Parse the header at the start of `user_data` (UDHL first). `offset` is the
    /// position of `user_data` in the PDU, for error messages. Returns the header
    /// and its length in octets, UDHL included.
    pub fn decode(user_data: &[u8], offset: usize) -> Result<(UserDataHeader, usize)> {
        let Some(&udhl) = user_data.first() else {
            return Err(PduError::Invalid {
                offset,
                field: "TP-UDH",
                reason: "header indicated (TP-UDHI) but the user data is empty".into(),
            });
        };
        let udhl = usize::from(udhl);
        let Some(body) = user_data.get(1..1 + udhl) else {
            return Err(PduError::Invalid {
                offset,
                field: "TP-UDH",
                reason: format!(
                    "header length {udhl} is past the end of the user data ({} octets)",
                    user_data.len().saturating_sub(1)
                ),
            });
        };
        let mut elements = Vec::new();
        let mut pos = 0;
        while pos < body.len() {
            let iei = body[pos];
            let Some(&len) = body.get(pos + 1) else {
                return Err(PduError::Invalid {
                    offset: offset + 1 + pos,
                    field: "TP-UDH",
                    reason: format!("element {iei:#04X} has no length octet"),
                });
            };
            let start = pos + 2;
            let Some(data) = body.get(start..start + usize::from(len)) else {
                return Err(PduError::Invalid {
                    offset: offset + 1 + pos,
                    field: "TP-UDH",
                    reason: format!("element {iei:#04X} of length {len} runs past the header"),
                });
            };
            elements.push(InformationElement {
                iei,
                data: data.to_vec(),
            });
            pos = start + usize::from(len);
        }
        Ok((UserDataHeader { elements }, 1 + udhl))
    }

    /// The header's octets, UDHL first.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.encoded_len().saturating_sub(1) as u8);
        for ie in &self.elements {
            out.push(ie.iei);
            out.push(ie.data.len() as u8);
            out.extend_from_slice(&ie.data);
        }
    }

    /// Length in octets, UDHL included.
    pub fn encoded_len(&self) -> usize {
        1 + self
            .elements
            .iter()
            .map(|ie| 2 + ie.data.len())
            .sum::<usize>()
    }

    /// The concatenation element, when present and well formed (the last one wins
    /// if a sender repeats it; a sequence of 0 or over the total is ignored as
    /// §9.2.3.24.1 asks).
    pub fn concat(&self) -> Option<Concat> {
        self.elements.iter().rev().find_map(|ie| {
            let (reference, total, sequence) = match (ie.iei, ie.data.as_slice()) {
                (IEI_CONCAT_8, &[r, t, s]) => (u16::from(r), t, s),
                (IEI_CONCAT_16, &[hi, lo, t, s]) => (u16::from_be_bytes([hi, lo]), t, s),
                _ => return None,
            };
            (total > 0 && sequence > 0 && sequence <= total).then_some(Concat {
                reference,
                total,
                sequence,
            })
        })
    }

    /// Application ports, when present.
    pub fn ports(&self) -> Option<Ports> {
        self.elements
            .iter()
            .find_map(|ie| match (ie.iei, ie.data.as_slice()) {
                (IEI_PORTS_8, &[d, s]) => Some(Ports {
                    destination: u16::from(d),
                    source: u16::from(s),
                }),
                (IEI_PORTS_16, &[d1, d2, s1, s2]) => Some(Ports {
                    destination: u16::from_be_bytes([d1, d2]),
                    source: u16::from_be_bytes([s1, s2]),
                }),
                _ => None,
            })
    }

    /// The national language tables the header selects (default when absent).
    pub fn language_tables(&self) -> LanguageTables {
        let mut tables = LanguageTables::default();
        for ie in &self.elements {
            match (ie.iei, ie.data.as_slice()) {
                (IEI_SINGLE_SHIFT, &[id]) => tables.single = id,
                (IEI_LOCKING_SHIFT, &[id]) => tables.locking = id,
                _ => {}
            }
        }
        tables
    }

    /// The elements an outgoing part needs: concatenation (8-bit reference when it
    /// fits, else 16-bit) and the language shifts in use.
    pub fn for_submit(concat: Option<Concat>, tables: LanguageTables) -> UserDataHeader {
        let mut elements = Vec::new();
        if let Some(c) = concat {
            elements.push(match u8::try_from(c.reference) {
                Ok(r) => InformationElement {
                    iei: IEI_CONCAT_8,
                    data: vec![r, c.total, c.sequence],
                },
                Err(_) => {
                    let [hi, lo] = c.reference.to_be_bytes();
                    InformationElement {
                        iei: IEI_CONCAT_16,
                        data: vec![hi, lo, c.total, c.sequence],
                    }
                }
            });
        }
        if tables.single != 0 {
            elements.push(InformationElement {
                iei: IEI_SINGLE_SHIFT,
                data: vec![tables.single],
            });
        }
        if tables.locking != 0 {
            elements.push(InformationElement {
                iei: IEI_LOCKING_SHIFT,
                data: vec![tables.locking],
            });
        }
        UserDataHeader { elements }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_8_and_16_bit() {
        let (udh, len) =
            UserDataHeader::decode(&[0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, 0xFF], 0).unwrap();
        assert_eq!(len, 6);
        assert_eq!(
            udh.concat(),
            Some(Concat {
                reference: 0x2A,
                total: 2,
                sequence: 1
            })
        );
        let (udh, len) =
            UserDataHeader::decode(&[0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03], 0).unwrap();
        assert_eq!(len, 7);
        assert_eq!(udh.concat().map(|c| c.reference), Some(0x1234));
        let mut out = Vec::new();
        udh.encode(&mut out);
        assert_eq!(out, [0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03]);
    }

    #[test]
    fn unknown_elements_are_kept_and_skipped() {
        // A 16-bit port element (WAP push 2948 from 9200), an unknown 0x70, then concat.
        let bytes = [
            0x0E, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x70, 0x01, 0xAA, 0x00, 0x03, 0x07, 0x02,
            0x02,
        ];
        let (udh, _) = UserDataHeader::decode(&bytes, 0).unwrap();
        assert_eq!(udh.elements.len(), 3);
        assert_eq!(
            udh.ports(),
            Some(Ports {
                destination: 2948,
                source: 9200
            })
        );
        assert_eq!(udh.concat().map(|c| c.sequence), Some(2));
    }

    #[test]
    fn broken_headers_are_errors() {
        assert!(UserDataHeader::decode(&[], 0).is_err());
        assert!(
            UserDataHeader::decode(&[0x05, 0x00, 0x03], 0).is_err(),
            "UDHL past the end"
        );
        assert!(
            UserDataHeader::decode(&[0x03, 0x00, 0x03, 0x01], 0).is_err(),
            "IE past the header"
        );
        assert!(
            UserDataHeader::decode(&[0x01, 0x00], 0).is_err(),
            "IE without length"
        );
    }

    #[test]
    fn bad_concat_values_are_ignored() {
        for data in [[1, 0, 0], [1, 2, 0], [1, 2, 3]] {
            let udh = UserDataHeader {
                elements: vec![InformationElement {
                    iei: IEI_CONCAT_8,
                    data: data.to_vec(),
                }],
            };
            assert_eq!(udh.concat(), None, "{data:?}");
        }
    }

    #[test]
    fn language_shift_elements() {
        let tables = LanguageTables {
            locking: 1,
            single: 2,
        };
        let udh = UserDataHeader::for_submit(None, tables);
        assert_eq!(udh.encoded_len(), 7);
        assert_eq!(udh.language_tables(), tables);
    }
}
