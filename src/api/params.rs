//! Query strings and path segments: contacts in them, paging, filters. Every
//! refusal is a 422 with a code naming what was wrong, never axum's plain text.

use chrono::{DateTime, Utc};

use super::problem::ApiError;
use crate::phone;
use crate::store::{Direction, MessageFilter, MessageStatus};

/// `limit` when the caller gives none, and the most one page holds.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// A contact from a path or query. Contacts are E.164 and should arrive
/// percent-encoded (`%2B1555…`); a raw `+` in a query string decodes as a
/// space (form encoding), so a leading space is read back as the `+` it was.
pub fn contact(raw: &str, default_country: &str) -> Result<String, phone::PhoneError> {
    let restored = match raw.strip_prefix(' ') {
        Some(rest) => format!("+{}", rest.trim_start()),
        None => raw.to_string(),
    };
    phone::normalize(&restored, default_country)
}

/// A sender as the store keeps it when it is not a number: an alphanumeric
/// sender (23.040 §9.1.2.5: up to 11 characters of the GSM 7-bit default
/// alphabet, e.g. `InfoSMS`) or a short code. None when `raw` cannot be one.
pub fn sender(raw: &str) -> Option<&str> {
    crate::pdu::Address::alphanumeric(raw).ok().map(|_| raw)
}

/// RFC 3339 time; a `+` offset decoded as a space is read back as `+`.
pub fn time(raw: &str) -> Option<DateTime<Utc>> {
    let parse = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    parse(raw).or_else(|| parse(&raw.replace(' ', "+")))
}

/// `limit` and `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub limit: usize,
    pub cursor: Option<String>,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

impl Paging {
    /// Take `limit` or `cursor`; false when `key` is neither.
    fn take(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key {
            "limit" => {
                self.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid_query(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "cursor" => {
                // Cursors are the hex the store hands out; anything else is
                // refused here, before it reaches a tree.
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ApiError::invalid_query(
                        "cursor is not one this gateway handed out",
                    ));
                }
                self.cursor = Some(value.to_string());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn check_once(seen: &mut Vec<String>, key: &str) -> Result<(), ApiError> {
    if seen.iter().any(|k| k == key) {
        return Err(ApiError::invalid_query(format!("{key} is given twice")));
    }
    seen.push(key.to_string());
    Ok(())
}

/// Only `limit` and `cursor` (thread lists).
pub fn paging(pairs: &[(String, String)]) -> Result<Paging, ApiError> {
    let mut paging = Paging::default();
    let mut seen = Vec::new();
    for (key, value) in pairs {
        check_once(&mut seen, key)?;
        if !paging.take(key, value)? {
            return Err(ApiError::invalid_query(format!(
                "unknown query parameter {key:?} (limit, cursor)"
            )));
        }
    }
    Ok(paging)
}

/// `GET /v1/messages`: `contact`, `direction`, `status`, `since`, `limit`,
/// `cursor`. Unknown parameters are refused, so a typo does not silently
/// widen a filter.
pub fn message_query(
    pairs: &[(String, String)],
    default_country: &str,
) -> Result<(MessageFilter, Paging), ApiError> {
    let mut filter = MessageFilter::default();
    let mut paging = Paging::default();
    let mut seen = Vec::new();
    for (key, value) in pairs {
        check_once(&mut seen, key)?;
        match key.as_str() {
            "contact" => {
                // A number, else a sender as stored (an alphanumeric name).
                let c = match contact(value, default_country) {
                    Ok(number) => number,
                    Err(e) => sender(value).map(str::to_string).ok_or_else(|| {
                        ApiError::invalid_query(format!(
                            "contact: {e}, nor a sender name of 1 to 11 GSM characters"
                        ))
                    })?,
                };
                filter.contact = Some(c);
            }
            "direction" => {
                filter.direction = Some(match value.as_str() {
                    "inbound" => Direction::Inbound,
                    "outbound" => Direction::Outbound,
                    _ => {
                        return Err(ApiError::invalid_query(
                            "direction must be inbound or outbound",
                        ))
                    }
                });
            }
            "status" => {
                filter.status = Some(MessageStatus::parse(value).ok_or_else(|| {
                    ApiError::invalid_query(format!("status {value:?} is not a message status"))
                })?);
            }
            "since" => {
                filter.since =
                    Some(time(value).ok_or_else(|| {
                        ApiError::invalid_query("since must be an RFC 3339 time")
                    })?);
            }
            other => {
                if !paging.take(other, value)? {
                    return Err(ApiError::invalid_query(format!(
                        "unknown query parameter {other:?} (contact, direction, status, since, limit, cursor)"
                    )));
                }
            }
        }
    }
    Ok((filter, paging))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn contact_forms() {
        assert_eq!(contact("+15551234567", "US").unwrap(), "+15551234567");
        assert_eq!(contact(" 15551234567", "US").unwrap(), "+15551234567");
        assert_eq!(contact("07911123456", "GB").unwrap(), "+447911123456");
        assert!(contact("hello", "US").is_err());
    }

    #[test]
    fn message_query_reads_every_filter() {
        let (filter, paging) = message_query(
            &pairs(&[
                ("contact", " 15551234567"),
                ("direction", "inbound"),
                ("status", "received"),
                ("since", "2024-05-01T10:00:00 02:00"),
                ("limit", "10"),
                ("cursor", "00ff"),
            ]),
            "US",
        )
        .unwrap();
        assert_eq!(filter.contact.as_deref(), Some("+15551234567"));
        assert_eq!(filter.direction, Some(Direction::Inbound));
        assert_eq!(filter.status, Some(MessageStatus::Received));
        assert_eq!(
            filter.since.unwrap().to_rfc3339(),
            "2024-05-01T08:00:00+00:00"
        );
        assert_eq!(paging.limit, 10);
        assert_eq!(paging.cursor.as_deref(), Some("00ff"));
        let (_, paging) = message_query(&[], "US").unwrap();
        assert_eq!(paging, Paging::default());
    }

    #[test]
    fn alphanumeric_senders_filter_as_stored() {
        let (filter, _) = message_query(&pairs(&[("contact", "InfoSMS")]), "US").unwrap();
        assert_eq!(filter.contact.as_deref(), Some("InfoSMS"));
        assert_eq!(sender("My Bank"), Some("My Bank"));
        assert_eq!(sender("72404"), Some("72404"));
        assert_eq!(sender("TwelveChars!"), None);
        assert_eq!(sender(""), None);
    }

    #[test]
    fn bad_queries_are_invalid_query() {
        for bad in [
            vec![("limit", "0")],
            vec![("limit", "501")],
            vec![("limit", "ten")],
            vec![("cursor", "zz")],
            vec![("cursor", "")],
            vec![("status", "lost")],
            vec![("direction", "sideways")],
            vec![("since", "yesterday")],
            vec![("contact", "not-a-sender-name")],
            vec![("contact", "😀")],
            vec![("limt", "5")],
            vec![("limit", "5"), ("limit", "6")],
        ] {
            let e = message_query(&pairs(&bad), "US").unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (422, "invalid_query"),
                "{bad:?}"
            );
        }
        assert!(paging(&pairs(&[("status", "queued")])).is_err());
        assert_eq!(paging(&pairs(&[("limit", "500")])).unwrap().limit, 500);
    }
}
