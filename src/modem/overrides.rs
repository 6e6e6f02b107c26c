//! A modem's pool settings changed while the daemon runs (`PUT
//! /v1/modems/{id}/settings`, the modem settings page): `daily_limit`,
//! `sends_per_minute`, `rest_after_failures` over the config's values, and
//! `paused` (no new sends; its queue goes to the others as a resting
//! modem's does; it still receives). Kept in the store (`aux_modem_settings`,
//! modem id -> JSON) so a restart keeps them; the dispatcher holds them and
//! its actors read them each time they decide (`Dispatcher::overrides`).

use serde::{Deserialize, Serialize};

use super::ModemSettings;

/// The store's aux tree of the overrides.
pub const TREE: &str = "modem_settings";

/// What was changed at run time; a value left out is the config's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sends_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_after_failures: Option<u32>,
    pub paused: bool,
}

/// The config's values of a modem (`[[modem]]`): what an override falls
/// back to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Defaults {
    pub daily_limit: Option<u32>,
    pub sends_per_minute: Option<u32>,
    pub rest_after_failures: Option<u32>,
}

impl From<&ModemSettings> for Defaults {
    fn from(m: &ModemSettings) -> Defaults {
        Defaults {
            daily_limit: m.daily_limit,
            sends_per_minute: m.sends_per_minute,
            rest_after_failures: m.rest_after_failures,
        }
    }
}

/// The settings that can change at run time, by name, as config and API
/// spell them.
pub const LIMITS: [&str; 3] = ["daily_limit", "sends_per_minute", "rest_after_failures"];

/// The one check of a limit's value, for `[[modem]]` and the API alike.
pub fn check_limit(name: &str, value: u32) -> Result<(), String> {
    if value > 0 {
        return Ok(());
    }
    Err(match name {
        "rest_after_failures" => "must be at least 1 (the default is 3)".into(),
        _ => "must be at least 1 (omit it for no limit)".into(),
    })
}

impl Overrides {
    /// The override of limit `name` (one of [`LIMITS`]).
    pub fn limit_mut(&mut self, name: &str) -> Option<&mut Option<u32>> {
        match name {
            "daily_limit" => Some(&mut self.daily_limit),
            "sends_per_minute" => Some(&mut self.sends_per_minute),
            "rest_after_failures" => Some(&mut self.rest_after_failures),
            _ => None,
        }
    }
}
