//! Drop-in APIs that apps already speak: Twilio's Messaging API and
//! Kannel's `sendsms` (placeholder).

use serde::Deserialize;

/// `[compat]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatConfig {}
