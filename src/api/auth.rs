//! Bearer tokens and scopes. Only SHA-256 digests of the secrets are held, and
//! a presented secret is compared by digest in constant time against every
//! configured token, so neither timing nor the token count's early exit tells
//! a LAN attacker how much of a guess was right.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::problem::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send, cancel and resend messages.
    Send,
    /// Read messages, threads and modems; mark threads read.
    Read,
    /// Everything.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// A scope as the config writes it (`"send"`, `"read"`, `"admin"`).
    pub fn parse(text: &str) -> Option<Scope> {
        [Scope::Send, Scope::Read, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// A configured API token (config `[[api.tokens]]`, deserialized directly:
/// the digest and scopes are typed when the file is read).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    /// Who holds it (logs name the caller, never the secret).
    pub name: String,
    /// SHA-256 of the secret: the config keeps digests, not secrets
    /// (`printf %s SECRET | sha256sum`, 64 hex digits).
    #[serde(deserialize_with = "sha256_hex")]
    pub sha256: [u8; 32],
    /// Any of "send", "read", "admin".
    pub scopes: Vec<Scope>,
}

pub(crate) fn sha256_hex<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = String::deserialize(d)?;
    ApiToken::from_sha256_hex("", &text, Vec::new())
        .map(|t| t.sha256)
        .ok_or_else(|| {
            serde::de::Error::custom("must be 64 hex digits (the SHA-256 of the secret)")
        })
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ApiToken {
    /// A token from its plain secret (the demo, `SMSGATE_API_TOKEN`).
    pub fn from_secret(name: &str, secret: &str, scopes: Vec<Scope>) -> ApiToken {
        ApiToken {
            name: name.to_string(),
            sha256: digest(secret),
            scopes,
        }
    }

    /// A token from the config's hex SHA-256 of the secret (64 hex digits).
    pub fn from_sha256_hex(name: &str, hex: &str, scopes: Vec<Scope>) -> Option<ApiToken> {
        let bytes = crate::pdu::hex::decode(hex.trim()).ok()?;
        Some(ApiToken {
            name: name.to_string(),
            sha256: <[u8; 32]>::try_from(bytes.as_slice()).ok()?,
            scopes,
        })
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|&s| s == scope || s == Scope::Admin)
    }
}

/// SHA-256 of a secret.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// The token a secret belongs to. Every token is compared, match or not.
pub fn find<'a>(tokens: &'a [ApiToken], secret: &str) -> Option<&'a ApiToken> {
    let presented = digest(secret);
    let mut found = None;
    for token in tokens {
        if constant_time_eq(&token.sha256, &presented) && found.is_none() {
            found = Some(token);
        }
    }
    found
}

/// The secret of an `Authorization: Bearer <secret>` header (RFC 6750 §2.1;
/// the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, secret) = value.trim().split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// Check a request's token against the scope its route needs.
pub fn authorize<'a>(
    tokens: &'a [ApiToken],
    authorization: Option<&str>,
    scope: Scope,
) -> Result<&'a ApiToken, ApiError> {
    let Some(value) = authorization else {
        return Err(ApiError::unauthorized(
            "send an API token as Authorization: Bearer <token>",
        ));
    };
    let Some(secret) = bearer(value) else {
        return Err(ApiError::unauthorized(
            "Authorization must be: Bearer <token>",
        ));
    };
    let Some(token) = find(tokens, secret) else {
        return Err(ApiError::unauthorized("the API token is not valid"));
    };
    if !token.allows(scope) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token lacks the {} scope", scope.as_str()),
        ));
    }
    Ok(token)
}

/// What the auth layer of one route needs.
#[derive(Clone)]
pub struct Guard {
    pub tokens: Arc<Vec<ApiToken>>,
    pub scope: Scope,
}

/// The name of the token a request was authorized with (a request
/// extension set by [`require`]): what a handler signs the caller's work
/// with (`api:<name>` on a message sent through `POST /v1/messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

/// Middleware: refuse the request unless its token has the route's scope.
/// Runs before the handler's extractors, so an unauthenticated caller learns
/// nothing about body validation.
pub async fn require(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    match authorize(&guard.tokens, authorization, guard.scope) {
        Ok(token) => {
            tracing::debug!(token = %token.name, method = %request.method(), path = %request.uri().path(), "API request");
            let caller = Caller(token.name.clone());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Vec<ApiToken> {
        vec![
            ApiToken::from_secret("crm", "s3cret-send", vec![Scope::Send]),
            ApiToken::from_secret("dash", "s3cret-read", vec![Scope::Read]),
            ApiToken::from_secret("ops", "s3cret-admin", vec![Scope::Admin]),
        ]
    }

    #[test]
    fn digest_is_sha256() {
        // FIPS 180-2 test vector "abc".
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(crate::pdu::hex::encode(&digest("abc")).to_lowercase(), want);
    }

    #[test]
    fn tokens_from_config_digests() {
        // printf %s test | sha256sum
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let token = ApiToken::from_sha256_hex("cfg", hex, vec![Scope::Read]).unwrap();
        assert_eq!(
            token,
            ApiToken::from_secret("cfg", "test", vec![Scope::Read])
        );
        assert!(ApiToken::from_sha256_hex("cfg", "12", vec![]).is_none());
        assert!(ApiToken::from_sha256_hex("cfg", &"zz".repeat(32), vec![]).is_none());
        assert_eq!(Scope::parse("admin"), Some(Scope::Admin));
        assert_eq!(Scope::parse("root"), None);
    }

    #[test]
    fn constant_time_equality() {
        let a = digest("a");
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!constant_time_eq(&a, &b));
    }

    #[test]
    fn scopes_and_admin() {
        let t = tokens();
        let code = |auth: Option<&str>, scope| authorize(&t, auth, scope).map_err(|e| e.code);
        assert_eq!(
            code(Some("Bearer s3cret-send"), Scope::Send).map(|t| t.name.as_str()),
            Ok("crm")
        );
        assert_eq!(
            code(Some("bearer  s3cret-read "), Scope::Read).map(|t| t.name.as_str()),
            Ok("dash")
        );
        assert!(code(Some("Bearer s3cret-admin"), Scope::Send).is_ok());
        assert!(code(Some("Bearer s3cret-admin"), Scope::Read).is_ok());
        assert_eq!(
            code(Some("Bearer s3cret-read"), Scope::Send).err(),
            Some("forbidden")
        );
        assert_eq!(
            code(Some("Bearer s3cret-send"), Scope::Read).err(),
            Some("forbidden")
        );
        assert_eq!(code(None, Scope::Read).err(), Some("unauthorized"));
        assert_eq!(
            code(Some("Bearer wrong"), Scope::Read).err(),
            Some("unauthorized")
        );
        assert_eq!(
            code(Some("Basic czNjcmV0"), Scope::Read).err(),
            Some("unauthorized")
        );
        assert_eq!(
            code(Some("Bearer "), Scope::Read).err(),
            Some("unauthorized")
        );
        assert_eq!(code(Some(""), Scope::Read).err(), Some("unauthorized"));
    }

    #[test]
    fn debug_hides_the_digest() {
        let shown = format!("{:?}", tokens()[0]);
        assert!(shown.contains("crm") && !shown.contains("sha256"));
    }
}
