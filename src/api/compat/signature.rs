//! `X-Twilio-Signature`, as Twilio signs its requests to apps
//! (<https://www.twilio.com/docs/usage/security#validating-requests>): the
//! full URL, then each POST parameter's name and value, sorted by name,
//! concatenated; HMAC-SHA1 keyed with the account's auth token; base64.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header's name.
pub const HEADER: &str = "x-twilio-signature";

/// The signature of a POST of `params` to `url` with `auth_token`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, then value: Twilio's validators sort the pairs.
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    // An HMAC takes a key of any length: new_from_slice cannot fail here.
    let mut mac = match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Twilio's security page: its token, URL and parameters
    /// give its published signature.
    #[test]
    fn twilio_documented_example() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            sign(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
