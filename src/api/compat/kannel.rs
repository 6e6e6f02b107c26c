//! Kannel's HTTP `sendsms` (`/cgi-bin/sendsms`, Kannel's user guide,
//! "Sending SMS messages"; the answer texts are smsbox's, gw/smsbox.c):
//! `GET` with the fields in the query, or `POST` with them form-encoded
//! (and/or in the query). Each receiver in `to` (separated by spaces) goes
//! through the gateway's one send path; one refused by consent or with a
//! malformed number is "denied" as Kannel's white- and black-lists deny.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::Value;

use super::{Callback, KannelUser};
use crate::api::messages::{self, SendRequest};
use crate::api::{ApiState, Scope};

/// Kannel's answer: a status and one line of text (`text/html`, as smsbox
/// sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub text: String,
}

impl Answer {
    fn new(status: StatusCode, text: impl Into<String>) -> Answer {
        Answer {
            status,
            text: text.into(),
        }
    }

    fn rejected(text: &str) -> Answer {
        Answer::new(StatusCode::BAD_REQUEST, text)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/html")],
            self.text,
        )
            .into_response()
    }
}

/// smsbox's texts.
pub const ACCEPTED: &str = "0: Accepted for delivery";
pub const AUTH_FAILED: &str = "Authorization failed for sendsms";
pub const MISSING_TO: &str = "Missing receiver number, rejected";
pub const DENIED: &str = "Number(s) has/have been denied by white- and/or black-lists.";

/// Percent-decoding of one form component to bytes (`+` is a space): the
/// text may be in a charset other than UTF-8.
fn decode(component: &str) -> Vec<u8> {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// `name=value&...` as (name, raw value bytes).
pub fn pairs(raw: &str) -> Vec<(String, Vec<u8>)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (String::from_utf8_lossy(&decode(k)).into_owned(), decode(v))
        })
        .collect()
}

/// The text of `bytes` in `charset` (Kannel's default: UTF-8); None: not
/// text in that charset, or a charset this gateway does not read.
pub fn text_in(bytes: &[u8], charset: Option<&str>) -> Option<String> {
    let charset = charset.map(|c| c.trim().to_ascii_uppercase());
    match charset.as_deref().unwrap_or("UTF-8") {
        "UTF-8" | "UTF8" => String::from_utf8(bytes.to_vec()).ok(),
        // UCS-2 is UTF-16 without surrogates: reading it as UTF-16BE is exact.
        "UTF-16BE" | "UTF-16" | "UCS-2" | "UCS-2BE" | "UCS2" => {
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" => {
            Some(bytes.iter().map(|&b| char::from(b)).collect())
        }
        _ => None,
    }
}

/// The user a username and password are, compared by SHA-256 in constant
/// time against every user.
fn authorise<'a>(users: &'a [KannelUser], user: &str, password: &str) -> Option<&'a KannelUser> {
    let presented = crate::api::auth::digest(password);
    let mut found = None;
    for u in users {
        let ok = crate::api::auth::constant_time_eq(&u.password_sha256, &presented);
        if ok && u.username == user && found.is_none() {
            found = Some(u);
        }
    }
    found.filter(|u| u.scope == Scope::Send || u.scope == Scope::Admin)
}

/// `GET|POST /cgi-bin/sendsms`.
pub async fn sendsms(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let mut fields = pairs(query.as_deref().unwrap_or(""));
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if form {
        fields.extend(pairs(&String::from_utf8_lossy(&body)));
    }
    handle(&state, &fields).await
}

/// One field's raw value (the last, if repeated; `alias` is Kannel's older name).
fn raw<'a>(fields: &'a [(String, Vec<u8>)], name: &str, alias: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == name || k == alias)
        .map(|(_, v)| v.as_slice())
}

fn text<'a>(fields: &'a [(String, Vec<u8>)], name: &str, alias: &str) -> Option<&'a str> {
    raw(fields, name, alias).and_then(|v| std::str::from_utf8(v).ok())
}

/// A number field as smsbox reads it (`%d`); None when absent; Err when
/// present but not a number.
fn number(fields: &[(String, Vec<u8>)], name: &str, alias: &str) -> Result<Option<i64>, ()> {
    match text(fields, name, alias).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ()),
    }
}

async fn handle(state: &ApiState, fields: &[(String, Vec<u8>)]) -> Answer {
    let user = text(fields, "username", "user").unwrap_or("");
    let password = text(fields, "password", "pass").unwrap_or("");
    if authorise(&state.compat.kannel, user, password).is_none() {
        return Answer::new(StatusCode::FORBIDDEN, AUTH_FAILED);
    }
    let Some(to) = text(fields, "to", "to").filter(|t| !t.trim().is_empty()) else {
        return Answer::rejected(MISSING_TO);
    };
    let dlr_mask = match number(fields, "dlr-mask", "dlrmask") {
        Ok(m) if m.is_none_or(|m| (0..=63).contains(&m)) => m.unwrap_or(0) as u8,
        _ => return Answer::rejected("DLR-Mask field misformed, rejected"),
    };
    let dlr_url = text(fields, "dlr-url", "dlrurl").filter(|u| !u.is_empty());
    if let Some(url) = dlr_url {
        // https is refused: the gateway posts plain HTTP on the LAN.
        if !url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
            || url.len() < 8
        {
            return Answer::rejected("DLR-URL field misformed, rejected");
        }
    }
    let coding = match number(fields, "coding", "coding") {
        Ok(c) if c.is_none_or(|c| (0..=2).contains(&c)) => c,
        _ => return Answer::rejected("Coding field misformed, rejected"),
    };
    if coding == Some(1) {
        // 8-bit data is not text: the gateway composes text only.
        return Answer::rejected("Coding field misformed, rejected");
    }
    // Kannel's validity and deferred are minutes.
    let validity = match number(fields, "validity", "validity") {
        Ok(v) if v.is_none_or(|v| v >= 0) => v.filter(|&v| v > 0),
        _ => return Answer::rejected("Validity field misformed, rejected"),
    };
    let deferred = match number(fields, "deferred", "deferred") {
        Ok(d) if d.is_none_or(|d| d >= 0) => d.filter(|&d| d > 0),
        _ => return Answer::rejected("Deferred field misformed, rejected"),
    };
    let charset = text(fields, "charset", "charset");
    let Some(body) = text_in(raw(fields, "text", "text").unwrap_or(b""), charset) else {
        return Answer::rejected("Charset or body misformed, rejected");
    };
    let modem = match text(fields, "from", "from")
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        None => None,
        Some(from) => {
            let number = crate::phone::normalize(from, &state.sms.default_country).ok();
            let found = state
                .dispatcher
                .statuses()
                .into_iter()
                .find(|s| s.own_number.is_some() && s.own_number == number)
                .map(|s| s.id);
            match found {
                Some(id) => Some(id),
                None => return Answer::rejected("Sender missing and no global set, rejected"),
            }
        }
    };
    let callback = dlr_url
        .filter(|_| dlr_mask != 0)
        .map(|url| Callback::Kannel {
            url: url.to_string(),
            mask: dlr_mask,
        });
    let send_at =
        deferred.map(|d| Value::String((Utc::now() + chrono::Duration::minutes(d)).to_rfc3339()));
    let mut denied = Vec::new();
    let mut accepted = 0;
    for receiver in to.split_whitespace() {
        let request = SendRequest {
            to: receiver.to_string(),
            body: body.clone(),
            modem: modem.clone(),
            // What the handset's side reports (delivered, failed, buffered)
            // comes in status reports: ask for them (TP-SRR), as Kannel does.
            status_report: (dlr_mask
                & (super::callbacks::DLR_DELIVERED
                    | super::callbacks::DLR_FAILED
                    | super::callbacks::DLR_BUFFERED)
                != 0)
                .then_some(true),
            validity: validity.map(|v| Value::from(v.saturating_mul(60))),
            send_at: send_at.clone(),
            category: None,
            flow: None,
            context: None,
        };
        let outcome = messages::submit(state, request, None, |m| match &callback {
            Some(c) => c.attach(m).map_err(crate::api::ApiError::from),
            None => Ok(()),
        })
        .await;
        match outcome {
            Ok(_) => accepted += 1,
            Err(e) => match e.code {
                "invalid_number"
                | "recipient_opted_out"
                | "consent_required"
                | "not_conversational" => denied.push(receiver.to_string()),
                "body_empty" | "body_too_long" => {
                    return Answer::rejected("Charset or body misformed, rejected")
                }
                "invalid_validity" => {
                    return Answer::rejected("Validity field misformed, rejected")
                }
                _ if e.status.is_server_error() => {
                    return Answer::new(StatusCode::INTERNAL_SERVER_ERROR, "Sending failed.")
                }
                _ => denied.push(receiver.to_string()),
            },
        }
    }
    if accepted == 0 {
        return Answer::rejected(DENIED);
    }
    let mut text = ACCEPTED.to_string();
    if !denied.is_empty() {
        text.push_str(" Denied receivers are:");
        for d in &denied {
            text.push(' ');
            text.push_str(d);
        }
    }
    Answer::new(StatusCode::ACCEPTED, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_components_decode_to_bytes() {
        let p = pairs("to=%2B1555+1&text=%04%1F%04%40&x&=v&bad=%zz%4");
        assert_eq!(p[0], ("to".into(), b"+1555 1".to_vec()));
        assert_eq!(p[1], ("text".into(), vec![0x04, 0x1F, 0x04, 0x40]));
        assert_eq!(p[2], ("x".into(), Vec::new()));
        assert_eq!(p[3], ("".into(), b"v".to_vec()));
        assert_eq!(p[4], ("bad".into(), b"%zz%4".to_vec()));
    }

    #[test]
    fn charsets() {
        assert_eq!(
            text_in(&[0x04, 0x1F, 0x04, 0x40], Some("UTF-16BE")).as_deref(),
            Some("Пр")
        );
        assert_eq!(text_in(&[0x04, 0x1F, 0x04], Some("UCS-2")), None);
        assert_eq!(
            text_in(b"caf\xe9", Some("iso-8859-1")).as_deref(),
            Some("café")
        );
        assert_eq!(text_in("café".as_bytes(), None).as_deref(), Some("café"));
        assert_eq!(text_in(b"caf\xe9", None), None);
        assert_eq!(text_in(b"x", Some("EBCDIC")), None);
    }

    proptest::proptest! {
        #[test]
        fn any_query_decodes(raw in ".{0,100}") {
            for (_, v) in pairs(&raw) {
                let _ = text_in(&v, Some("UTF-16BE"));
            }
        }
    }
}
