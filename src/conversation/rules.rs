//! `[[conversation.rule]]`: routing and automation rules (placeholder).

use serde::Deserialize;

/// One `[[conversation.rule]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {}
