//! Hex as modems print PDUs: either case accepted, uppercase written.

use super::error::{PduError, Result};

/// Parse hex digits (either case, surrounding whitespace ignored) into octets.
pub fn decode(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(PduError::OddHexLength(digits.len()));
    }
    let nibble = |position: usize| -> Result<u8> {
        let b = digits[position];
        match b {
            b'0'..=b'9' => Ok(b - b'0'),
            b'a'..=b'f' => Ok(b - b'a' + 10),
            b'A'..=b'F' => Ok(b - b'A' + 10),
            _ => Err(PduError::NonHex {
                position,
                found: text
                    .get(position..)
                    .and_then(|t| t.chars().next())
                    .unwrap_or('?'),
            }),
        }
    };
    (0..digits.len() / 2)
        .map(|i| Ok(nibble(2 * i)? << 4 | nibble(2 * i + 1)?))
        .collect()
}

/// Uppercase hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0F)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_either_case() {
        assert_eq!(decode("0aFf").unwrap(), vec![0x0A, 0xFF]);
        assert_eq!(encode(&[0x0A, 0xFF]), "0AFF");
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(decode("ABC"), Err(PduError::OddHexLength(3)));
        assert_eq!(
            decode("0G"),
            Err(PduError::NonHex {
                position: 1,
                found: 'G'
            })
        );
        // A multi-byte character must not split a UTF-8 sequence when reported.
        assert!(matches!(
            decode("0é0"),
            Err(PduError::NonHex {
                position: 1,
                found: 'é'
            })
        ));
    }
}
