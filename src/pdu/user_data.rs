//! TP-UDL and TP-UD (23.040 §9.2.3.16, §9.2.3.24): the header, if any, and the
//! body in the alphabet TP-DCS names.

use super::dcs::{Alphabet, DataCoding};
use super::error::{PduError, Reader, Result};
use super::gsm7;
use super::udh::UserDataHeader;

/// Most septets in one TPDU's user data.
pub const MAX_SEPTETS: usize = 160;
/// Most octets in one TPDU's user data.
pub const MAX_OCTETS: usize = 140;

/// What the user data carries after its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// GSM 7-bit or UCS-2 text.
    Text(String),
    /// 8-bit (or compressed) data.
    Data(Vec<u8>),
}

/// A decoded TP-UD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    pub header: Option<UserDataHeader>,
    pub body: Body,
}

/// Septets a GSM 7-bit header of `header_len` octets occupies, fill bits included
/// (23.040 §9.2.3.24: the text starts on a septet boundary).
pub fn header_septets(header_len: usize) -> usize {
    (header_len * 8).div_ceil(7)
}

impl UserData {
    /// Read TP-UDL and TP-UD. `udhi` is the first octet's TP-UDHI bit.
    pub(crate) fn decode(
        reader: &mut Reader<'_>,
        udhi: bool,
        dcs: &DataCoding,
    ) -> Result<UserData> {
        let udl_offset = reader.offset();
        let udl = usize::from(reader.u8("TP-UDL")?);
        let septets = dcs.alphabet == Alphabet::Gsm7 && !dcs.compressed;
        let (limit, octets) = if septets {
            (MAX_SEPTETS, (udl * 7).div_ceil(8))
        } else {
            (MAX_OCTETS, udl)
        };
        if udl > limit {
            let unit = if septets { "septet" } else { "octet" };
            return Err(PduError::Invalid {
                offset: udl_offset,
                field: "TP-UDL",
                reason: format!("{unit} count {udl} is over the {limit} a TPDU can carry"),
            });
        }
        let data_offset = reader.offset();
        let data = reader.take(octets, "TP-UD")?;
        // A header flag with no user data at all (seen from real modems, e.g.
        // gammu's at-sms/20.dump) carries nothing to read: an empty message.
        let (header, header_len) = if udhi && udl > 0 {
            let (header, len) = UserDataHeader::decode(data, data_offset)?;
            (Some(header), len)
        } else {
            (None, 0)
        };
        let too_long = || PduError::Invalid {
            offset: data_offset,
            field: "TP-UDH",
            reason: format!("header of {header_len} octets is longer than TP-UDL {udl}"),
        };
        let tables = header
            .as_ref()
            .map(UserDataHeader::language_tables)
            .unwrap_or_default();
        let rest = data.get(header_len..).ok_or_else(too_long)?;
        let body = if septets {
            let skip = if header_len == 0 {
                0
            } else {
                header_septets(header_len)
            };
            let count = udl.checked_sub(skip).ok_or_else(too_long)?;
            let fill = (skip * 7 - header_len * 8) as u8;
            let text = gsm7::unpack(rest, count, fill).ok_or_else(too_long)?;
            Body::Text(tables.decode(&text))
        } else if dcs.alphabet == Alphabet::Ucs2 && !dcs.compressed {
            if rest.len() % 2 != 0 {
                return Err(PduError::Invalid {
                    offset: data_offset + header_len,
                    field: "TP-UD",
                    reason: format!(
                        "UCS-2 text of {} octets is not whole 16-bit units",
                        rest.len()
                    ),
                });
            }
            Body::Text(decode_utf16(rest))
        } else {
            Body::Data(rest.to_vec())
        };
        Ok(UserData { header, body })
    }

    /// Write TP-UDL and TP-UD as `dcs` says: as [`UserData::encode`] for its
    /// alphabet, except that compressed user data (23.038 §4, bit 5), which
    /// [`UserData::decode`] keeps as [`Body::Data`], goes out as the octets it
    /// came in, TP-UDL counting octets (23.040 §9.2.3.16). Without this a
    /// received compressed message could not be re-encoded.
    pub fn encode_for(&self, dcs: &DataCoding, out: &mut Vec<u8>) -> Result<()> {
        let alphabet = if dcs.compressed {
            Alphabet::EightBit
        } else {
            dcs.alphabet
        };
        self.encode(alphabet, out)
    }

    /// Write TP-UDL and TP-UD for `alphabet`.
    pub fn encode(&self, alphabet: Alphabet, out: &mut Vec<u8>) -> Result<()> {
        let mut header = Vec::new();
        if let Some(h) = &self.header {
            h.encode(&mut header);
        }
        let tables = self
            .header
            .as_ref()
            .map(UserDataHeader::language_tables)
            .unwrap_or_default();
        let over = |what: &str| PduError::Option(format!("user data is over one TPDU: {what}"));
        match (alphabet, &self.body) {
            (Alphabet::Gsm7, Body::Text(text)) => {
                let septets = tables.encode(text).map_err(PduError::NotGsm7)?;
                let skip = if header.is_empty() {
                    0
                } else {
                    header_septets(header.len())
                };
                let udl = skip + septets.len();
                if udl > MAX_SEPTETS {
                    return Err(over(&format!("{udl} septets")));
                }
                out.push(udl as u8);
                out.extend_from_slice(&header);
                gsm7::pack(&septets, (skip * 7 - header.len() * 8) as u8, out);
            }
            (Alphabet::Ucs2, Body::Text(text)) => {
                let udl = header.len() + 2 * text.encode_utf16().count();
                if udl > MAX_OCTETS {
                    return Err(over(&format!("{udl} octets")));
                }
                out.push(udl as u8);
                out.extend_from_slice(&header);
                out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            }
            (Alphabet::EightBit, Body::Data(data)) => {
                let udl = header.len() + data.len();
                if udl > MAX_OCTETS {
                    return Err(over(&format!("{udl} octets")));
                }
                out.push(udl as u8);
                out.extend_from_slice(&header);
                out.extend_from_slice(data);
            }
            (alphabet, _) => {
                return Err(PduError::Option(format!(
                    "a {} body does not match the {} alphabet",
                    match self.body {
                        Body::Text(_) => "text",
                        Body::Data(_) => "data",
                    },
                    alphabet.as_str()
                )))
            }
        }
        Ok(())
    }
}

/// UTF-16 big-endian to text; an unpaired surrogate (a pair split across parts
/// by some senders) shows as U+FFFD rather than failing the whole message.
pub fn decode_utf16(octets: &[u8]) -> String {
    let units = octets
        .chunks_exact(2)
        .map(|p| u16::from_be_bytes([p[0], p[1]]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_user_data_round_trips_as_octets() {
        // 23.038 §4: DCS 0x28 is UCS-2 with bit 5 (compressed) set, 0x20 GSM
        // 7-bit compressed; 23.040 §9.2.3.16: TP-UDL then counts octets.
        for raw in [0x20, 0x28, 0x24] {
            let dcs = DataCoding::from_octet(raw);
            let octets = [0x03, 0xAA, 0xBB, 0xCC];
            let decoded = UserData::decode(&mut Reader::new(&octets), false, &dcs).unwrap();
            assert_eq!(
                decoded.body,
                Body::Data(vec![0xAA, 0xBB, 0xCC]),
                "{raw:02X}"
            );
            let mut out = Vec::new();
            decoded.encode_for(&dcs, &mut out).unwrap();
            assert_eq!(out, octets, "{raw:02X}");
        }
    }
}
