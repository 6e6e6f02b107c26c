//! What the reply box's counter needs to count as the gateway will send:
//! which characters GSM 7-bit has (one septet, or two through the
//! extension table) and how much one part holds, both taken from `pdu` and
//! `compose` (never typed in by hand), written into the script as JSON.
//!
//! The part sizes are those of a message with a 16-bit concatenation
//! reference (152 septets, 66 UCS-2 units a part), which is what 255 of
//! every 256 messages get (`Store::new_outbound`); one with an 8-bit
//! reference holds one more septet a part, so at a boundary the counter may
//! say one part more than is sent, never fewer.

use std::sync::OnceLock;

use serde_json::json;

use crate::compose::{compose, PART_LIMIT};
use crate::pdu::{Alphabet, LanguageTables};

/// A 16-bit concatenation reference (above 255).
const REFERENCE: u16 = 0x1234;

/// How much one part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacities {
    /// Septets of a text sent as one part.
    pub gsm7_single: usize,
    /// Septets of each part of a longer text.
    pub gsm7_part: usize,
    /// UTF-16 units of a UCS-2 text sent as one part.
    pub ucs2_single: usize,
    /// UTF-16 units of each part of a longer UCS-2 text.
    pub ucs2_part: usize,
}

/// The longest run of `c` that `compose` sends in `parts` parts.
fn longest(c: char, parts: u8) -> usize {
    let mut n = 1;
    loop {
        let text: String = std::iter::repeat_n(c, n + 1).collect();
        match compose(&text, REFERENCE, PART_LIMIT) {
            Ok(k) if k.parts <= parts => n += 1,
            _ => return n,
        }
    }
}

/// The part sizes, measured by composing texts as every send path does.
pub fn capacities() -> Capacities {
    static CAPACITIES: OnceLock<Capacities> = OnceLock::new();
    *CAPACITIES.get_or_init(|| {
        // 'Ж' is not in GSM 7-bit and is one UTF-16 unit.
        debug_assert_eq!(
            compose("Ж", REFERENCE, 1).map(|c| c.alphabet),
            Ok(Alphabet::Ucs2)
        );
        Capacities {
            gsm7_single: longest('a', 1),
            gsm7_part: longest('a', 2) / 2,
            ucs2_single: longest('Ж', 1),
            ucs2_part: longest('Ж', 2) / 2,
        }
    })
}

/// The characters of GSM 7-bit as `pdu` encodes them: those that cost one
/// septet, and those that cost two (the extension table), in code point
/// order. Every table character is in the Basic Multilingual Plane.
pub fn gsm7_table() -> &'static (String, String) {
    static TABLE: OnceLock<(String, String)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let tables = LanguageTables::default();
        let mut basic = String::new();
        let mut extended = String::new();
        for c in (0..=0xFFFFu32).filter_map(char::from_u32) {
            match tables.septet_cost(c) {
                Some(1) => basic.push(c),
                Some(_) => extended.push(c),
                None => {}
            }
        }
        (basic, extended)
    })
}

/// The table and part sizes as the script reads them.
pub fn table_json() -> String {
    let (basic, extended) = gsm7_table();
    let c = capacities();
    json!({
        "basic": basic,
        "extended": extended,
        "gsm7": {"single": c.gsm7_single, "part": c.gsm7_part},
        "ucs2": {"single": c.ucs2_single, "part": c.ucs2_part},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The counter's model, as the script runs it (`assets/app.js`,
    /// `countParts`): GSM 7-bit if every character is in the table, parts
    /// filled greedily by whole characters. Kept beside the table it reads
    /// so the test below holds the two to `compose`.
    fn count(text: &str) -> (bool, usize) {
        let (basic, extended) = gsm7_table();
        let c = capacities();
        let gsm = text
            .chars()
            .all(|ch| basic.contains(ch) || extended.contains(ch));
        let cost = |ch: char| {
            if !gsm {
                ch.len_utf16()
            } else if extended.contains(ch) {
                2
            } else {
                1
            }
        };
        let total: usize = text.chars().map(cost).sum();
        let (single, part) = if gsm {
            (c.gsm7_single, c.gsm7_part)
        } else {
            (c.ucs2_single, c.ucs2_part)
        };
        if total <= single {
            return (gsm, 1);
        }
        let (mut parts, mut used) = (1, 0);
        for ch in text.chars() {
            let n = cost(ch);
            if used + n > part {
                parts += 1;
                used = 0;
            }
            used += n;
        }
        (gsm, parts)
    }

    #[test]
    fn the_table_is_pdus_own() {
        let (basic, extended) = gsm7_table();
        let tables = LanguageTables::default();
        assert_eq!(basic.chars().count(), 127, "128 codes less the escape");
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let want = tables.septet_cost(c);
            let got = if basic.contains(c) {
                Some(1)
            } else if extended.contains(c) {
                Some(2)
            } else {
                None
            };
            assert_eq!(got, want, "{c:?}");
        }
        assert!(extended.contains('€') && extended.contains('{') && !basic.contains('€'));
        assert!(basic.contains('é') && basic.contains('\n') && !basic.contains('\u{1B}'));
    }

    #[test]
    fn part_sizes_are_composes() {
        assert_eq!(
            capacities(),
            Capacities {
                gsm7_single: 160,
                gsm7_part: 152,
                ucs2_single: 70,
                ucs2_part: 66,
            }
        );
    }

    #[test]
    fn the_counters_model_agrees_with_compose_at_every_boundary() {
        let mut texts: Vec<String> = Vec::new();
        for unit in ["a", "€", "Ж", "😀", "a€", "aЖ", "€a", "a😀"] {
            for n in 1..=330 {
                texts.push(unit.repeat(n));
            }
        }
        // One emoji turns a one-part text into three (the example).
        texts.push(format!("{}😀", "a".repeat(150)));
        for text in &texts {
            let composed = compose(text, REFERENCE, PART_LIMIT).unwrap();
            let (gsm, parts) = count(text);
            assert_eq!(gsm, composed.alphabet == Alphabet::Gsm7, "{text}");
            assert_eq!(parts, usize::from(composed.parts), "{text:?}");
        }
        assert_eq!(count(&format!("{}😀", "a".repeat(150))), (false, 3));
        assert_eq!(count(&"a".repeat(150)), (true, 1));
    }

    #[test]
    fn the_script_carries_the_table() {
        let script = super::super::script();
        assert!(script.contains(&table_json()));
        assert!(!script.contains("/*GSM7*/null"));
    }
}
