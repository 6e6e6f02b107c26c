//! Consent and compliance: STOP/START/HELP keywords, the consent ledger's
//! rules, quiet hours and rate limits.

pub mod keywords;
