//! The GSM 7-bit alphabets of 23.038 §6.2.1: the default table, its extension
//! table (reached by ESC 0x1B), the national language shift tables of Annex A,
//! and the packing of septets into octets (23.038 §6.1.2.1).

use super::national;

/// The escape septet: the next septet is read in the single shift table.
pub const ESC: u8 = 0x1B;

/// Which national language tables are in force (identifiers per 23.038
/// §6.2.1.2.4; 0 is the default alphabet and its extension table). Set by the
/// UDH information elements 0x25 (locking shift) and 0x24 (single shift).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LanguageTables {
    pub locking: u8,
    pub single: u8,
}

/// 23.038 §6.2.1: the default alphabet, in septet order. Position 0x1B is the
/// escape to the extension table, never a character of its own.
pub(crate) const DEFAULT: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// 23.038 §6.2.1.1: the default extension table (after ESC).
fn default_extension(code: u8) -> Option<char> {
    Some(match code {
        0x0A => '\u{0C}', // form feed ("page break")
        0x14 => '^',
        0x28 => '{',
        0x29 => '}',
        0x2F => '\\',
        0x3C => '[',
        0x3D => '~',
        0x3E => ']',
        0x40 => '|',
        0x65 => '€',
        _ => return None,
    })
}

fn default_extension_code(c: char) -> Option<u8> {
    Some(match c {
        '\u{0C}' => 0x0A,
        '^' => 0x14,
        '{' => 0x28,
        '}' => 0x29,
        '\\' => 0x2F,
        '[' => 0x3C,
        '~' => 0x3D,
        ']' => 0x3E,
        '|' => 0x40,
        '€' => 0x65,
        _ => return None,
    })
}

/// ASCII characters to default-table septets (0xFF: not in the table), built once
/// at compile time so the common case of encoding is a table look-up.
const ASCII_TO_DEFAULT: [u8; 128] = {
    let mut map = [0xFF_u8; 128];
    let mut code = 0;
    while code < 128 {
        let c = DEFAULT[code] as u32;
        if c < 128 && code != ESC as usize {
            map[c as usize] = code as u8;
        }
        code += 1;
    }
    map
};

fn default_code(c: char) -> Option<u8> {
    if c.is_ascii() {
        let code = ASCII_TO_DEFAULT[c as usize];
        return (code != 0xFF).then_some(code);
    }
    DEFAULT.iter().position(|&d| d == c).map(|p| p as u8)
}

/// The locking table in force: an unknown identifier falls back to the default
/// table (issue text and 23.038 §6.2.1.2.4: not an error).
fn locking_table(id: u8) -> &'static [char; 128] {
    if id == 0 {
        &DEFAULT
    } else {
        national::locking_shift(id).unwrap_or(&DEFAULT)
    }
}

fn single_shift_char(id: u8, code: u8) -> Option<char> {
    if id != 0 {
        if let Some(table) = national::single_shift(id) {
            return table.get(usize::from(code)).copied().flatten();
        }
    }
    default_extension(code)
}

impl LanguageTables {
    /// Septets for one character: `[code]`, or `[ESC, code]` from the single shift
    /// table; `None` when the character is in neither.
    #[inline]
    pub fn encode_char(&self, c: char) -> Option<([u8; 2], usize)> {
        // Fast path: ASCII in the default table, most of what businesses send.
        if self.locking == 0 && c.is_ascii() {
            let code = ASCII_TO_DEFAULT[c as usize];
            if code != 0xFF {
                return Some(([code, 0], 1));
            }
        }
        if c == '\u{1B}' {
            return None;
        }
        let locking = if self.locking == 0 {
            default_code(c)
        } else {
            locking_table(self.locking)
                .iter()
                .position(|&d| d == c)
                .map(|p| p as u8)
        };
        if let Some(code) = locking {
            return Some(([code, 0], 1));
        }
        let single = if self.single == 0 {
            default_extension_code(c)
        } else {
            match national::single_shift(self.single) {
                Some(table) => table.iter().position(|&d| d == Some(c)).map(|p| p as u8),
                None => default_extension_code(c),
            }
        };
        single.map(|code| ([ESC, code], 2))
    }

    /// How many septets `c` costs (1, or 2 for an escape pair), if it fits at all.
    #[inline]
    pub fn septet_cost(&self, c: char) -> Option<usize> {
        self.encode_char(c).map(|(_, n)| n)
    }

    /// Encode `text` to septets (unpacked), or the first character that does not fit.
    pub fn encode(&self, text: &str) -> Result<Vec<u8>, char> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            let (septets, n) = self.encode_char(c).ok_or(c)?;
            out.extend_from_slice(&septets[..n]);
        }
        Ok(out)
    }

    /// Decode unpacked septets to text. Never fails: an escape code the single
    /// shift table does not define shows the locking table's character
    /// (23.038 §6.2.1.1), ESC ESC (reserved for a further extension) shows a
    /// space, and a lone trailing ESC shows nothing.
    pub fn decode(&self, septets: &[u8]) -> String {
        let table = locking_table(self.locking);
        let mut out = String::with_capacity(septets.len());
        let mut iter = septets.iter();
        while let Some(&s) = iter.next() {
            let s = s & 0x7F;
            if s != ESC {
                out.push(table[usize::from(s)]);
                continue;
            }
            match iter.next().map(|n| n & 0x7F) {
                Some(ESC) => out.push(' '),
                Some(n) => {
                    out.push(single_shift_char(self.single, n).unwrap_or(table[usize::from(n)]))
                }
                None => {}
            }
        }
        out
    }
}

/// Pack septets into octets, least significant bit first (23.038 §6.1.2.1),
/// after `fill_bits` zero bits that align them behind a user data header.
pub fn pack(septets: &[u8], fill_bits: u8, out: &mut Vec<u8>) {
    let fill = usize::from(fill_bits);
    let start = out.len();
    out.resize(start + (fill + 7 * septets.len()).div_ceil(8), 0);
    let packed = &mut out[start..];
    for (i, &s) in septets.iter().enumerate() {
        let bit = fill + 7 * i;
        let (idx, shift) = (bit / 8, bit % 8);
        let s = u16::from(s & 0x7F) << shift;
        packed[idx] |= s as u8;
        if shift > 1 {
            packed[idx + 1] |= (s >> 8) as u8;
        }
    }
}

/// Unpack `count` septets that start after `fill_bits` bits; `None` when `octets`
/// holds fewer bits than that.
pub fn unpack(octets: &[u8], count: usize, fill_bits: u8) -> Option<Vec<u8>> {
    let fill = usize::from(fill_bits);
    if fill + 7 * count > 8 * octets.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let bit = fill + 7 * i;
        let (idx, shift) = (bit / 8, bit % 8);
        let low = u16::from(*octets.get(idx)?);
        let high = u16::from(octets.get(idx + 1).copied().unwrap_or(0));
        out.push((((high << 8 | low) >> shift) & 0x7F) as u8);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_TABLES: LanguageTables = LanguageTables {
        locking: 0,
        single: 0,
    };

    #[test]
    fn hello_packs_as_in_23_038() {
        // "hellohello" is the classic example of 23.038 §6.1.2.1.1 / GSM 03.38:
        // E8 32 9B FD 46 97 D9 EC 37.
        let septets = DEFAULT_TABLES.encode("hellohello").unwrap();
        let mut packed = Vec::new();
        pack(&septets, 0, &mut packed);
        assert_eq!(
            packed,
            [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        assert_eq!(unpack(&packed, 10, 0).unwrap(), septets);
    }

    #[test]
    fn every_default_character_round_trips() {
        for (code, &c) in DEFAULT.iter().enumerate() {
            if code == usize::from(ESC) {
                assert_eq!(DEFAULT_TABLES.encode_char(c), None);
                continue;
            }
            assert_eq!(
                DEFAULT_TABLES.encode_char(c),
                Some(([code as u8, 0], 1)),
                "{c:?}"
            );
            assert_eq!(DEFAULT_TABLES.decode(&[code as u8]), c.to_string());
        }
    }

    #[test]
    fn extension_characters_cost_two_septets() {
        for c in ['^', '{', '}', '\\', '[', '~', ']', '|', '€', '\u{0C}'] {
            assert_eq!(DEFAULT_TABLES.septet_cost(c), Some(2), "{c:?}");
            let septets = DEFAULT_TABLES.encode(&c.to_string()).unwrap();
            assert_eq!(septets[0], ESC);
            assert_eq!(DEFAULT_TABLES.decode(&septets), c.to_string());
        }
        assert_eq!(DEFAULT_TABLES.encode("€").unwrap(), [0x1B, 0x65]);
    }

    #[test]
    fn characters_outside_the_alphabet_are_reported() {
        assert_eq!(DEFAULT_TABLES.encode("Ça va? ç"), Err('ç'));
        assert_eq!(DEFAULT_TABLES.encode("😀"), Err('😀'));
        assert_eq!(DEFAULT_TABLES.encode("\u{1B}"), Err('\u{1B}'));
    }

    #[test]
    fn unknown_escapes_fall_back_to_the_main_table() {
        // 23.038 §6.2.1.1: an undefined extension code shows the main table's character.
        assert_eq!(DEFAULT_TABLES.decode(&[ESC, 0x41]), "A");
        assert_eq!(DEFAULT_TABLES.decode(&[ESC, ESC]), " ");
        assert_eq!(DEFAULT_TABLES.decode(&[0x41, ESC]), "A");
    }

    #[test]
    fn unknown_table_identifiers_fall_back_to_the_default() {
        let unknown = LanguageTables {
            locking: 99,
            single: 99,
        };
        assert_eq!(unknown.decode(&[0x07, ESC, 0x65]), "ì€");
        assert_eq!(unknown.encode("ì€").unwrap(), [0x07, ESC, 0x65]);
    }

    #[test]
    fn fill_bits_shift_the_septets() {
        let septets = [0x41, 0x42, 0x43];
        for fill in 0..7 {
            let mut packed = Vec::new();
            pack(&septets, fill, &mut packed);
            assert_eq!(packed[0] & ((1 << fill) - 1), 0, "fill bits are zero");
            assert_eq!(unpack(&packed, 3, fill).unwrap(), septets);
        }
        assert_eq!(unpack(&[0xFF], 2, 0), None);
        assert_eq!(unpack(&[0xFF], 1, 2), None);
    }

    #[test]
    fn turkish_spanish_portuguese_tables() {
        // 23.038 A.3.1 / A.2.1: Turkish locking and single shift.
        let turkish = LanguageTables {
            locking: 1,
            single: 1,
        };
        let text = "Güle güle, İstanbul: ĞğŞşıç €";
        let septets = turkish.encode(text).unwrap();
        assert_eq!(turkish.decode(&septets), text);
        assert!(DEFAULT_TABLES.encode("ğ").is_err());
        // 23.038 A.2.2: Spanish has a single shift table only ('á' is ESC 0x61).
        let spanish = LanguageTables {
            locking: 0,
            single: 2,
        };
        assert_eq!(spanish.encode("á").unwrap(), [ESC, 0x61]);
        assert_eq!(spanish.decode(&[0x48, 0x6F, 0x6C, ESC, 0x61]), "Holá");
        // 23.038 A.3.3 / A.2.3: Portuguese.
        let portuguese = LanguageTables {
            locking: 3,
            single: 3,
        };
        let text = "Atenção, não é fácil";
        assert_eq!(portuguese.decode(&portuguese.encode(text).unwrap()), text);
    }
}
