//! Durations as people write them in the config, the API and the CLI:
//! "90s", "5m", "24h", "7d", "2w". The one parser of them.

use std::time::Duration;

/// A whole number and one unit (s, m, h, d, w); None for anything else or
/// an overflow.
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn durations() {
        assert_eq!(parse("90s").map(|d| d.as_secs()), Some(90));
        assert_eq!(parse(" 10m ").map(|d| d.as_secs()), Some(600));
        assert_eq!(parse("2w").map(|d| d.as_secs()), Some(1_209_600));
        assert_eq!(parse("5"), None);
        assert_eq!(parse("m"), None);
        assert_eq!(parse("5 m"), None);
        assert_eq!(parse("99999999999999999999w"), None);
    }
}
