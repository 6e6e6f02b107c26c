//! Service centre time stamps and discharge times (23.040 §9.2.3.11, §9.2.3.13):
//! seven semi-octet pairs, the last one the zone in quarter hours.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike};

use super::address::swapped_bcd;
use super::error::{Reader, Result};

/// Decode a seven-octet time stamp.
pub(crate) fn decode(
    reader: &mut Reader<'_>,
    field: &'static str,
) -> Result<DateTime<FixedOffset>> {
    let start = reader.offset();
    let octets = reader.take(7, field)?;
    let invalid = |reason: String| super::PduError::Invalid {
        offset: start,
        field,
        reason,
    };
    let mut parts = [0u8; 6];
    for (i, (slot, &octet)) in parts.iter_mut().zip(octets).enumerate() {
        *slot = swapped_bcd(octet).ok_or_else(|| {
            invalid(format!(
                "octet {} ({octet:02X}) is not two decimal digits",
                start + i
            ))
        })?;
    }
    // The zone: bit 3 of the first (tens) semi-octet is the sign (§9.2.3.11).
    let zone = octets[6];
    let tens = zone & 0x07;
    let units = zone >> 4;
    if units > 9 {
        return Err(invalid(format!(
            "time zone octet {zone:02X} is not decimal"
        )));
    }
    let quarters = i32::from(tens * 10 + units);
    let seconds = if zone & 0x08 != 0 {
        -quarters
    } else {
        quarters
    } * 15
        * 60;
    let offset = FixedOffset::east_opt(seconds).ok_or_else(|| {
        invalid(format!(
            "time zone of {quarters} quarter hours is out of range"
        ))
    })?;
    let [year, month, day, hour, minute, second] = parts;
    let date = NaiveDate::from_ymd_opt(2000 + i32::from(year), u32::from(month), u32::from(day))
        .ok_or_else(|| invalid(format!("no such date: 20{year:02}-{month:02}-{day:02}")))?;
    let local = date
        .and_hms_opt(u32::from(hour), u32::from(minute), u32::from(second))
        .ok_or_else(|| invalid(format!("no such time: {hour:02}:{minute:02}:{second:02}")))?;
    local
        .and_local_timezone(offset)
        .single()
        .ok_or_else(|| invalid("time stamp does not map to an instant".to_string()))
}

/// Encode a time stamp; the zone is rounded to quarter hours, years are 2000-2099.
pub(crate) fn encode(time: &DateTime<FixedOffset>, out: &mut Vec<u8>) {
    let swap = |v: u32| -> u8 {
        let v = (v % 100) as u8;
        (v % 10) << 4 | (v / 10)
    };
    out.push(swap(time.year().rem_euclid(100) as u32));
    out.push(swap(time.month()));
    out.push(swap(time.day()));
    out.push(swap(time.hour()));
    out.push(swap(time.minute()));
    out.push(swap(time.second().min(59)));
    let offset = time.offset().local_minus_utc();
    let quarters = (offset.unsigned_abs() / 900).min(79);
    let mut zone = swap(quarters);
    if offset < 0 {
        zone |= 0x08;
    }
    out.push(zone);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_hex(hex: &str) -> Result<DateTime<FixedOffset>> {
        let bytes = crate::pdu::hex::decode(hex).unwrap();
        decode(&mut Reader::new(&bytes), "TP-SCTS")
    }

    #[test]
    fn negative_and_positive_zones() {
        // pdu1 of ModemManager's test-sms-part-3gpp.c: 2011-02-28 11:50:50 -05:00.
        let t = decode_hex("1120821105050A").unwrap();
        assert_eq!(t.to_rfc3339(), "2011-02-28T11:50:50-05:00");
        // 23.040 §9.2.3.11 example zones: +04:00 is 16 quarters, "61".
        let t = decode_hex("11309291024061").unwrap();
        assert_eq!(t.to_rfc3339(), "2011-03-29T19:20:04+04:00");
        // India, +05:30 = 22 quarters; Newfoundland, -03:30 = 14 quarters.
        assert_eq!(
            decode_hex("24010112000022")
                .unwrap()
                .offset()
                .local_minus_utc(),
            19800
        );
        assert_eq!(
            decode_hex("24010112000049")
                .unwrap()
                .offset()
                .local_minus_utc(),
            -12600
        );
    }

    #[test]
    fn round_trip() {
        for hex in [
            "1120821105050A",
            "11309291024061",
            "99211332959500",
            "24010112000049",
        ] {
            let t = decode_hex(hex).unwrap();
            let mut out = Vec::new();
            encode(&t, &mut out);
            assert_eq!(crate::pdu::hex::encode(&out), hex);
        }
    }

    #[test]
    fn impossible_dates_are_errors() {
        assert!(decode_hex("11200311050500").is_err(), "February 30th");
        assert!(decode_hex("1A208211050500").is_err(), "non-decimal year");
        assert!(decode_hex("112082110505").is_err(), "truncated");
        assert!(
            decode_hex("112082110505F0").is_err(),
            "zone units semi-octet F"
        );
        // The tens semi-octet is 3 bits and a sign: 0F is -17:30, a valid zone.
        assert_eq!(
            decode_hex("1120821105050F")
                .unwrap()
                .offset()
                .local_minus_utc(),
            -63000
        );
    }
}
