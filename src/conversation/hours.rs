//! Business hours and SLA due times (placeholder).

use serde::Deserialize;

/// One `[[conversation.team]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {}
