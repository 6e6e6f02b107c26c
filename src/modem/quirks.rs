//! Vendor quirks, in one place (STYLE.md: ModemManager's plugins/<vendor>).

/// Extra init commands for a manufacturer (from `AT+CGMI`), sent after the
/// standard sequence; failures are ignored.
pub fn extra_init(manufacturer: Option<&str>) -> &'static [&'static str] {
    let m = manufacturer.unwrap_or("").to_ascii_lowercase();
    if m.contains("huawei") {
        // ^CURC=0 stops the periodic ^RSSI/^HCSQ/^BOOT/^MODE reports, which
        // otherwise arrive every few seconds and cost wake-ups and bytes.
        &["AT^CURC=0"]
    } else {
        &[]
    }
}

/// Storages to try for `AT+CPMS`, best first: the configured one, then ME
/// (modem memory holds more than a SIM and survives SIM swaps), then SM.
pub fn storage_preference(configured: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(c) = configured {
        out.push(c.to_ascii_uppercase());
    }
    for s in ["ME", "SM", "MT"] {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_order() {
        assert_eq!(storage_preference(None), ["ME", "SM", "MT"]);
        assert_eq!(storage_preference(Some("sm")), ["SM", "ME", "MT"]);
    }

    #[test]
    fn huawei_silences_periodic_reports() {
        assert_eq!(extra_init(Some("huawei")), ["AT^CURC=0"]);
        assert!(extra_init(Some("SIMCOM_Ltd")).is_empty());
        assert!(extra_init(None).is_empty());
    }
}
