//! TP-VP, the validity period of an SMS-SUBMIT (23.040 §9.2.3.12): how long the
//! service centre keeps trying before it gives up.

use chrono::{DateTime, FixedOffset};

/// A validity period in one of its three formats (TP-VPF 10, 11, 01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityPeriod {
    /// §9.2.3.12.1: one octet on a stepped scale from 5 minutes to 63 weeks.
    Relative(u8),
    /// §9.2.3.12.2: a time stamp.
    Absolute(DateTime<FixedOffset>),
    /// §9.2.3.12.3: seven octets, a functionality indicator first.
    Enhanced([u8; 7]),
}

/// TP-VPF values, bits 4-3 of an SMS-SUBMIT's first octet.
pub const VPF_NONE: u8 = 0b00;
pub const VPF_ENHANCED: u8 = 0b01;
pub const VPF_RELATIVE: u8 = 0b10;
pub const VPF_ABSOLUTE: u8 = 0b11;

/// Seconds a relative TP-VP octet stands for.
pub fn relative_seconds(v: u8) -> u64 {
    let v = u64::from(v);
    match v {
        0..=143 => (v + 1) * 5 * 60,
        144..=167 => 12 * 3600 + (v - 143) * 30 * 60,
        168..=196 => (v - 166) * 86_400,
        _ => (v - 192) * 7 * 86_400,
    }
}

impl ValidityPeriod {
    /// The shortest relative period that lasts at least `seconds` (so a message
    /// never expires sooner than asked), capped at 63 weeks.
    pub fn relative_at_least(seconds: u64) -> ValidityPeriod {
        let v = (0..=255u8)
            .find(|&v| relative_seconds(v) >= seconds)
            .unwrap_or(255);
        ValidityPeriod::Relative(v)
    }

    pub fn format(&self) -> u8 {
        match self {
            ValidityPeriod::Relative(_) => VPF_RELATIVE,
            ValidityPeriod::Absolute(_) => VPF_ABSOLUTE,
            ValidityPeriod::Enhanced(_) => VPF_ENHANCED,
        }
    }

    /// The period in seconds, where the format says it as a duration.
    pub fn seconds(&self) -> Option<u64> {
        match *self {
            ValidityPeriod::Relative(v) => Some(relative_seconds(v)),
            ValidityPeriod::Absolute(_) => None,
            // §9.2.3.12.3: bits 2-0 of the functionality indicator give the format.
            ValidityPeriod::Enhanced(octets) => match octets[0] & 0x07 {
                1 => Some(relative_seconds(octets[1])),
                2 => Some(u64::from(octets[1])),
                3 => {
                    let bcd = |o: u8| super::address::swapped_bcd(o).map(u64::from);
                    Some(bcd(octets[1])? * 3600 + bcd(octets[2])? * 60 + bcd(octets[3])?)
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_scale_boundaries() {
        // 23.040 §9.2.3.12.1 table.
        assert_eq!(relative_seconds(0), 300);
        assert_eq!(relative_seconds(143), 12 * 3600);
        assert_eq!(relative_seconds(144), 12 * 3600 + 1800);
        assert_eq!(relative_seconds(167), 24 * 3600);
        assert_eq!(relative_seconds(168), 2 * 86_400);
        assert_eq!(relative_seconds(196), 30 * 86_400);
        assert_eq!(relative_seconds(197), 5 * 7 * 86_400);
        assert_eq!(relative_seconds(255), 63 * 7 * 86_400);
    }

    #[test]
    fn relative_rounds_up() {
        assert_eq!(
            ValidityPeriod::relative_at_least(300),
            ValidityPeriod::Relative(0)
        );
        assert_eq!(
            ValidityPeriod::relative_at_least(301),
            ValidityPeriod::Relative(1)
        );
        assert_eq!(
            ValidityPeriod::relative_at_least(86_400),
            ValidityPeriod::Relative(167)
        );
        assert_eq!(
            ValidityPeriod::relative_at_least(u64::MAX),
            ValidityPeriod::Relative(255)
        );
    }

    #[test]
    fn enhanced_formats() {
        assert_eq!(
            ValidityPeriod::Enhanced([0x01, 167, 0, 0, 0, 0, 0]).seconds(),
            Some(86_400)
        );
        assert_eq!(
            ValidityPeriod::Enhanced([0x02, 90, 0, 0, 0, 0, 0]).seconds(),
            Some(90)
        );
        // 01:30:15 in semi-octets.
        assert_eq!(
            ValidityPeriod::Enhanced([0x03, 0x10, 0x03, 0x51, 0, 0, 0]).seconds(),
            Some(5415)
        );
        assert_eq!(ValidityPeriod::Enhanced([0x00; 7]).seconds(), None);
    }
}
