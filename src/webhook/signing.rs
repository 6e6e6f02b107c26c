//! Standard Webhooks signing (<https://www.standardwebhooks.com>, "Signature
//! scheme"): `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`,
//! one `v1,` entry per secret separated by single spaces, so a receiver that
//! knows either the old or the new secret accepts while a secret is rotated.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix the spec gives secrets, so they are recognisable in configs and
/// secret scanners.
pub const SECRET_PREFIX: &str = "whsec_";

/// Standard base64, padding optional: secrets are pasted by hand and some
/// generators drop the `=`.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    #[error("the part after whsec_ is not base64")]
    Base64,
    #[error("the key is too short ({0} octets; use at least 16)")]
    Short(usize),
}

/// A signing key: the base64-decoded part after `whsec_`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = LENIENT
            .decode(encoded.trim())
            .map_err(|_| SecretError::Base64)?;
        // The spec recommends 24 to 64 random octets; 16 is the floor that
        // still makes guessing hopeless.
        if key.len() < 16 {
            return Err(SecretError::Short(key.len()));
        }
        Ok(Secret(key))
    }

    /// `v1,<base64 signature>` of one delivery attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let tag = mac.finalize().into_bytes();
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(tag)
        )
    }
}

/// The `webhook-signature` header value: one signature per secret.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three Standard Webhooks headers of one attempt.
pub fn headers(
    secrets: &[Secret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            signature_header(secrets, id, timestamp, body),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specs_published_example() {
        // The example of the standard-webhooks reference libraries
        // (libraries/python/tests: test_webhook.py and the spec's README).
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign(id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn one_signature_per_secret_separated_by_a_space() {
        let a = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let header = signature_header(&[a.clone(), b.clone()], "evt_1", 5, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [a.sign("evt_1", 5, b"{}"), b.sign("evt_1", 5, b"{}")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn refuses_bad_secrets() {
        assert_eq!(Secret::parse("MfKQ9r8GKYqrTwjU"), Err(SecretError::Prefix));
        assert_eq!(Secret::parse("whsec_!!!!****"), Err(SecretError::Base64));
        assert_eq!(Secret::parse("whsec_AAAA"), Err(SecretError::Short(3)));
        // Padding is optional.
        assert!(Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA==").is_ok());
    }
}
