//! People who sign in to the web inbox, and their sessions.
//!
//! A user is a name, a role (agent or admin), an optional team and an
//! argon2id hash of the password as a PHC string (`$argon2id$v=19$...`):
//! the password itself is never stored or logged. A session is kept under
//! the SHA-256 of its token, so a copy of the store does not hold cookies
//! that would sign anyone in; it carries its own CSRF token and the time it
//! was last used (the idle expiry counts from there).
//!
//! Key layouts:
//! - `users`: name -> UserRecord.
//! - `sessions`: SHA-256 of the token -> SessionRecord.
//! - `user_sessions`: name, SEP, SHA-256 of the token -> (): a person's
//!   sessions, ended together when the person is removed or the password
//!   changes.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::{Transactional, Tree};

use super::keys::SEP;
use super::{from_json, from_json_tx, to_json, unwrap_tx, Result, Store};

/// The trees of this file, opened with the store.
pub(crate) struct Trees {
    /// name -> UserRecord.
    users: Tree,
    /// SHA-256 of the session token -> SessionRecord.
    sessions: Tree,
    /// name, SEP, SHA-256 of the token -> ().
    by_user: Tree,
}

impl Trees {
    pub(crate) fn open(db: &sled::Db) -> Result<Trees> {
        Ok(Trees {
            users: db.open_tree("users")?,
            sessions: db.open_tree("sessions")?,
            by_user: db.open_tree("user_sessions")?,
        })
    }
}

/// What a person may do: agents work the inbox; admins also manage users
/// and the settings pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Agent,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }

    /// `agent` or `admin`.
    pub fn parse(text: &str) -> Option<Role> {
        [Role::Agent, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == text.trim())
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The sign-in name, also the author of their notes and replies.
    pub name: String,
    pub role: Role,
    /// Their team (a `[[conversation.team]]` id): the inbox's "My team".
    #[serde(default)]
    pub team: Option<String>,
    /// argon2id PHC string.
    pub password: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Whose session it is.
    pub user: String,
    /// The CSRF token its forms carry (hex; compared in constant time).
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    /// Last request: the idle expiry counts from here.
    pub last_seen: DateTime<Utc>,
}

/// The shortest password accepted (the issue: under 10 characters is refused).
pub const PASSWORD_MIN_CHARS: usize = 10;
/// The longest password hashed (bounds the work one request can cause).
pub const PASSWORD_MAX_BYTES: usize = 1024;
/// The longest user name.
pub const NAME_MAX_CHARS: usize = 64;

/// Why a user name or password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("a user name is 1 to {NAME_MAX_CHARS} letters, digits, '.', '_' or '-'")]
    InvalidName,
    #[error("a password needs at least {PASSWORD_MIN_CHARS} characters")]
    PasswordTooShort,
    #[error("a password is at most {PASSWORD_MAX_BYTES} bytes")]
    PasswordTooLong,
    #[error("the password could not be hashed: {0}")]
    Hash(String),
}

/// A user name as stored: 1 to 64 ASCII letters, digits, `.`, `_`, `-`
/// (it appears in paths, logs and as the author of notes).
pub fn check_name(name: &str) -> std::result::Result<&str, CredentialError> {
    let name = name.trim();
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    ok.then_some(name).ok_or(CredentialError::InvalidName)
}

/// Hash `password` with argon2id (the crate's default parameters: 19 MiB,
/// 2 passes, as OWASP recommends) and a random salt. CPU-heavy: call it off
/// the async workers.
pub fn hash_password(password: &str) -> std::result::Result<String, CredentialError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(CredentialError::PasswordTooShort);
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(CredentialError::PasswordTooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CredentialError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a hash that
/// cannot be read). CPU-heavy, like [`hash_password`].
pub fn verify_password(hash: &str, password: &str) -> bool {
    if password.len() > PASSWORD_MAX_BYTES {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password matches, verified against for a name with no user so
/// an unknown name costs the same time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        hash_password(&crate::pdu::hex::encode(&secret)).unwrap_or_default()
    })
}

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    crate::pdu::hex::encode(&buf).to_ascii_lowercase()
}

/// The key a session token is kept under.
fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn by_user_key(user: &str, key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user.len() + 33);
    out.extend_from_slice(user.as_bytes());
    out.push(SEP);
    out.extend_from_slice(key);
    out
}

fn by_user_prefix(user: &str) -> Vec<u8> {
    let mut out = user.as_bytes().to_vec();
    out.push(SEP);
    out
}

impl Store {
    fn people(&self) -> &Trees {
        &self.inner.people
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<UserRecord>> {
        self.people()
            .users
            .iter()
            .map(|entry| {
                let (key, raw) = entry?;
                from_json(&key, &raw)
            })
            .collect()
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        match self.people().users.get(name.as_bytes())? {
            Some(raw) => Ok(Some(from_json(name.as_bytes(), &raw)?)),
            None => Ok(None),
        }
    }

    /// Store a new user; false (and nothing written) when the name is taken.
    /// Durable when it returns.
    pub async fn create_user(&self, user: &UserRecord) -> Result<bool> {
        let value = serde_json::to_vec(user).map_err(|e| super::StoreError::Corrupt {
            key: user.name.clone(),
            reason: e.to_string(),
        })?;
        let created = self
            .people()
            .users
            .compare_and_swap(user.name.as_bytes(), None as Option<&[u8]>, Some(value))?
            .is_ok();
        if created {
            self.sync().await?;
        }
        Ok(created)
    }

    /// Replace an existing user's record; when `end_sessions`, every session
    /// of theirs ends in the same transaction (a new password). False when
    /// there is no such user. Durable when it returns.
    pub async fn update_user(&self, user: &UserRecord, end_sessions: bool) -> Result<bool> {
        let ended = if end_sessions {
            self.session_keys_of(&user.name)?
        } else {
            Vec::new()
        };
        let p = self.people();
        let updated = (&p.users, &p.sessions, &p.by_user)
            .transaction(|(users, sessions, by_user)| {
                if users.get(user.name.as_bytes())?.is_none() {
                    return Ok(false);
                }
                users.insert(user.name.as_bytes(), to_json(user)?)?;
                for key in &ended {
                    sessions.remove(&key[..])?;
                    by_user.remove(by_user_key(&user.name, key))?;
                }
                Ok(true)
            })
            .map_err(unwrap_tx)?;
        if updated {
            self.sync().await?;
        }
        Ok(updated)
    }

    /// Remove a user and every session of theirs; false when there was none.
    /// Durable when it returns.
    pub async fn remove_user(&self, name: &str) -> Result<bool> {
        let ended = self.session_keys_of(name)?;
        let p = self.people();
        let removed = (&p.users, &p.sessions, &p.by_user)
            .transaction(|(users, sessions, by_user)| {
                let existed = users.remove(name.as_bytes())?.is_some();
                for key in &ended {
                    sessions.remove(&key[..])?;
                    by_user.remove(by_user_key(name, key))?;
                }
                Ok(existed)
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        Ok(removed)
    }

    fn session_keys_of(&self, user: &str) -> Result<Vec<[u8; 32]>> {
        let prefix = by_user_prefix(user);
        let mut keys = Vec::new();
        for entry in self.people().by_user.scan_prefix(&prefix) {
            let (key, _) = entry?;
            if let Some(Ok(digest)) = key.get(prefix.len()..).map(<[u8; 32]>::try_from) {
                keys.push(digest);
            }
        }
        Ok(keys)
    }

    /// Start a session for `user` at `now`: the token for the cookie (only
    /// its digest is kept) and the record. Durable when it returns.
    pub async fn create_session(
        &self,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, SessionRecord)> {
        let token = random_hex(32);
        let record = SessionRecord {
            user: user.to_string(),
            csrf: random_hex(32),
            created_at: now,
            last_seen: now,
        };
        let key = token_key(&token);
        let p = self.people();
        (&p.sessions, &p.by_user)
            .transaction(|(sessions, by_user)| {
                sessions.insert(&key[..], to_json(&record)?)?;
                by_user.insert(by_user_key(user, &key), &[])?;
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        Ok((token, record))
    }

    /// The session of a cookie's token, if there is one.
    pub fn session(&self, token: &str) -> Result<Option<SessionRecord>> {
        let key = token_key(token);
        match self.people().sessions.get(key)? {
            Some(raw) => Ok(Some(from_json(&key, &raw)?)),
            None => Ok(None),
        }
    }

    /// Record a session's use at `now`. Not flushed on its own: losing a
    /// touch to a crash only makes a session expire a little earlier.
    pub fn touch_session(&self, token: &str, now: DateTime<Utc>) -> Result<()> {
        let key = token_key(token);
        self.people()
            .sessions
            .transaction(|sessions| {
                if let Some(raw) = sessions.get(key)? {
                    let mut record: SessionRecord = from_json_tx(&key, &raw)?;
                    if record.last_seen < now {
                        record.last_seen = now;
                        sessions.insert(&key[..], to_json(&record)?)?;
                    }
                }
                Ok(())
            })
            .map_err(unwrap_tx)
    }

    /// End a session (sign-out, or found expired); false when it was gone
    /// already. Durable when it returns.
    pub async fn end_session(&self, token: &str) -> Result<bool> {
        let key = token_key(token);
        let p = self.people();
        let ended = (&p.sessions, &p.by_user)
            .transaction(|(sessions, by_user)| {
                let Some(raw) = sessions.remove(&key[..])? else {
                    return Ok(false);
                };
                let record: SessionRecord = from_json_tx(&key, &raw)?;
                by_user.remove(by_user_key(&record.user, &key))?;
                Ok(true)
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        Ok(ended)
    }

    /// End every session last used before `idle_since` (sessions nobody
    /// came back to); how many. Durable when it returns.
    pub async fn end_idle_sessions(&self, idle_since: DateTime<Utc>) -> Result<usize> {
        let mut stale = Vec::new();
        for entry in self.people().sessions.iter() {
            let (key, raw) = entry?;
            let record: SessionRecord = from_json(&key, &raw)?;
            if let Ok(key) = <[u8; 32]>::try_from(key.as_ref()) {
                if record.last_seen < idle_since {
                    stale.push((key, record.user));
                }
            }
        }
        if stale.is_empty() {
            return Ok(0);
        }
        let p = self.people();
        (&p.sessions, &p.by_user)
            .transaction(|(sessions, by_user)| {
                for (key, user) in &stale {
                    sessions.remove(&key[..])?;
                    by_user.remove(by_user_key(user, key))?;
                }
                Ok(())
            })
            .map_err(unwrap_tx)?;
        self.sync().await?;
        Ok(stale.len())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::super::test_support::TempStore;
    use super::*;

    fn user(name: &str, role: Role) -> UserRecord {
        let now = Utc::now();
        UserRecord {
            name: name.into(),
            role,
            team: None,
            password: hash_password("correct horse battery").unwrap(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn passwords_are_argon2id_and_checked() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password(
            "not a phc string",
            "correct horse battery"
        ));
        assert!(!verify_password(decoy_hash(), ""));
        // Two hashes of one password differ (random salt).
        assert_ne!(hash, hash_password("correct horse battery").unwrap());
        assert_eq!(
            hash_password("nine char"),
            Err(CredentialError::PasswordTooShort)
        );
        // Ten characters, not ten bytes: "ééééééééé" is 18 bytes, 9 characters.
        assert_eq!(
            hash_password("ééééééééé"),
            Err(CredentialError::PasswordTooShort)
        );
        assert!(hash_password(&"x".repeat(PASSWORD_MAX_BYTES + 1)).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(check_name(" ana.r-2_x "), Ok("ana.r-2_x"));
        for bad in ["", " ", "ana ruiz", "ana/x", "a\0b", &"a".repeat(65), "é"] {
            assert_eq!(
                check_name(bad),
                Err(CredentialError::InvalidName),
                "{bad:?}"
            );
        }
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse("root"), None);
    }

    #[tokio::test]
    async fn users_and_their_sessions() {
        let t = TempStore::new();
        let ana = user("ana", Role::Agent);
        assert!(t.store.create_user(&ana).await.unwrap());
        assert!(!t
            .store
            .create_user(&user("ana", Role::Admin))
            .await
            .unwrap());
        assert!(t
            .store
            .create_user(&user("ops", Role::Admin))
            .await
            .unwrap());
        let names: Vec<String> = t
            .store
            .users()
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["ana", "ops"]);
        assert_eq!(t.store.user("ana").unwrap().unwrap().role, Role::Agent);

        let now = Utc::now();
        let (token, session) = t.store.create_session("ana", now).await.unwrap();
        let (other, _) = t.store.create_session("ana", now).await.unwrap();
        let (ops, _) = t.store.create_session("ops", now).await.unwrap();
        assert_ne!(token, other);
        assert_eq!(token.len(), 64);
        assert_eq!(t.store.session(&token).unwrap(), Some(session.clone()));
        assert_eq!(t.store.session("nope").unwrap(), None);

        t.store
            .touch_session(&token, now + Duration::minutes(5))
            .unwrap();
        assert_eq!(
            t.store.session(&token).unwrap().unwrap().last_seen,
            now + Duration::minutes(5)
        );
        // Idle sessions end; a used one stays.
        assert_eq!(
            t.store
                .end_idle_sessions(now + Duration::minutes(1))
                .await
                .unwrap(),
            2
        );
        assert!(t.store.session(&token).unwrap().is_some());
        assert!(t.store.session(&other).unwrap().is_none());
        assert!(t.store.session(&ops).unwrap().is_none());

        // A new password ends the person's sessions.
        let (again, _) = t.store.create_session("ana", now).await.unwrap();
        let mut changed = ana.clone();
        changed.password = hash_password("another long secret").unwrap();
        assert!(t.store.update_user(&changed, true).await.unwrap());
        assert!(t.store.session(&token).unwrap().is_none());
        assert!(t.store.session(&again).unwrap().is_none());
        assert!(!t
            .store
            .update_user(&user("nobody", Role::Agent), false)
            .await
            .unwrap());

        // Sign-out ends one session; removing the person ends the rest.
        let (s1, _) = t.store.create_session("ana", now).await.unwrap();
        let (s2, _) = t.store.create_session("ana", now).await.unwrap();
        assert!(t.store.end_session(&s1).await.unwrap());
        assert!(!t.store.end_session(&s1).await.unwrap());
        assert!(t.store.remove_user("ana").await.unwrap());
        assert!(t.store.session(&s2).unwrap().is_none());
        assert!(t.store.user("ana").unwrap().is_none());
        assert!(!t.store.remove_user("ana").await.unwrap());
    }
}
