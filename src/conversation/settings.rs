//! `[conversation]`: rules, teams, conversions, currency, reply window,
//! typed at deserialization like the rest of the config.

use serde::Deserialize;

/// `[conversation]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversationConfig {
    /// `[[conversation.rule]]`: tried in order after the consent keywords.
    pub rule: Vec<super::rules::RuleConfig>,
    /// `[[conversation.team]]`: teams, their response standard and hours.
    pub team: Vec<super::hours::TeamConfig>,
    /// The outcomes that count as conversion.
    pub conversions: Vec<String>,
    /// The currency of `[[modem]] cost_per_part`.
    pub currency: String,
    /// Append the shipped rules (sales, support, scheduling words; urgent and
    /// emotional texts to a person) after the configured ones.
    pub default_rules: bool,
    /// How long after an outbound a reply or an opt-out counts towards it
    /// (reply rate, opt-out rate).
    #[serde(deserialize_with = "crate::config::duration_value")]
    pub reply_window: std::time::Duration,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            rule: Vec::new(),
            team: Vec::new(),
            conversions: super::DEFAULT_CONVERSIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            currency: "USD".into(),
            default_rules: true,
            reply_window: std::time::Duration::from_secs(24 * 3600),
        }
    }
}
