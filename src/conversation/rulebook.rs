//! The rules in effect: `[[conversation.rule]]` from the config file, or a
//! list an administrator stored (`PUT /v1/rules`, the rules page), which
//! replaces the file's whole until it is removed (`DELETE /v1/rules`). A
//! stored list is checked exactly as the file's is at load
//! ([`crate::config::check_rules`]), kept in the store (`aux_settings`,
//! key `rules`: the list as JSON) so a restart keeps it, and put in effect
//! at once: the engine's decider reads [`LiveRules`] for each inbound text.
//! `default_rules` and the teams always come from the file.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::rules::{LiveRules, RuleConfig, RuleSet};
use super::settings::ConversationConfig;
use crate::config::Problem;
use crate::store::{Store, StoreError};

/// The store's aux tree for settings changed while the daemon runs.
pub const SETTINGS_TREE: &str = "settings";
const RULES_KEY: &[u8] = b"rules";

/// Where the rules in effect come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RulesSource {
    /// `[[conversation.rule]]` in the config file.
    Config,
    /// A list stored through the API or the rules page.
    Store,
}

impl RulesSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RulesSource::Config => "config",
            RulesSource::Store => "store",
        }
    }
}

/// The rules in effect, as written, and where they come from.
#[derive(Debug, Clone)]
pub struct InEffect {
    pub rules: Vec<RuleConfig>,
    pub source: RulesSource,
}

/// Why a list was not stored.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// What config load would refuse, every problem, keyed `rule[N]...`.
    #[error("the rules have {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rules in effect and the way to change them (one per daemon, shared by
/// the API, the pages and the engine).
pub struct RuleBook {
    store: Store,
    /// `[conversation]`: the file's rules, `default_rules`, the teams.
    conversation: ConversationConfig,
    /// The file's rules, compiled.
    config_set: RuleSet,
    live: Arc<LiveRules>,
    in_effect: RwLock<InEffect>,
    /// One change at a time: the store and the set in effect agree.
    writing: tokio::sync::Mutex<()>,
}

impl RuleBook {
    /// The rules of `conversation` (checked at load), replaced by a list in
    /// `store` if there is one. A stored list that no longer passes the
    /// checks (a team taken out of the file since) is logged and left in
    /// the store, and the file's rules apply.
    pub fn open(store: &Store, conversation: &ConversationConfig) -> RuleBook {
        let config_set = match RuleSet::from_config(&conversation.rule, conversation.default_rules)
        {
            Ok(set) => set,
            Err(problems) => {
                // Unreachable for a config that went through
                // `Config::validate`; the daemon stops before this.
                tracing::error!(?problems, "conversation rules do not build; none apply");
                RuleSet::from_config(&[], conversation.default_rules).unwrap_or_default()
            }
        };
        let mut in_effect = InEffect {
            rules: conversation.rule.clone(),
            source: RulesSource::Config,
        };
        let mut set = config_set.clone();
        match stored(store) {
            Ok(None) => {}
            Ok(Some(value)) => match root(value).and_then(|r| check(r, conversation)) {
                Ok((rules, compiled)) => {
                    in_effect = InEffect {
                        rules,
                        source: RulesSource::Store,
                    };
                    set = compiled;
                }
                Err(problems) => tracing::error!(
                    ?problems,
                    "the stored rules do not pass the checks any more; the config file's apply (PUT or DELETE /v1/rules to fix)"
                ),
            },
            Err(e) => tracing::error!(error = %e, "stored rules unreadable; the config file's apply"),
        }
        RuleBook {
            store: store.clone(),
            conversation: conversation.clone(),
            config_set,
            live: Arc::new(LiveRules::new(set)),
            in_effect: RwLock::new(in_effect),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// What the engine's decider reads.
    pub fn live(&self) -> Arc<LiveRules> {
        self.live.clone()
    }

    /// The rules in effect now.
    pub fn in_effect(&self) -> InEffect {
        match self.in_effect.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn put_in_effect(&self, now: InEffect, set: RuleSet) {
        self.live.replace(set);
        match self.in_effect.write() {
            Ok(mut e) => *e = now,
            Err(poisoned) => *poisoned.into_inner() = now,
        }
    }

    /// Store `rules` (JSON, `RuleConfig`'s form) in place of the file's and
    /// put them in effect; nothing changes when any is refused.
    pub async fn set_json(&self, rules: Vec<serde_json::Value>) -> Result<InEffect, RulesError> {
        self.set(root(serde_json::Value::Array(rules)).map_err(RulesError::Invalid)?)
            .await
    }

    /// The same for TOML text of `[[rule]]` tables (the rules page).
    pub async fn set_toml(&self, text: &str) -> Result<InEffect, RulesError> {
        self.set(crate::config::rules_toml(text).map_err(RulesError::Invalid)?)
            .await
    }

    async fn set(&self, root: config::Value) -> Result<InEffect, RulesError> {
        let (rules, set) = check(root, &self.conversation).map_err(RulesError::Invalid)?;
        let _one = self.writing.lock().await;
        let list: Vec<serde_json::Value> = rules.iter().map(RuleConfig::to_json).collect();
        let bytes = serde_json::to_vec(&list).map_err(|e| StoreError::Corrupt {
            key: "rules".into(),
            reason: e.to_string(),
        })?;
        self.store
            .aux_tree(SETTINGS_TREE)?
            .insert(RULES_KEY, bytes)
            .map_err(StoreError::from)?;
        self.store.sync().await?;
        let now = InEffect {
            rules,
            source: RulesSource::Store,
        };
        self.put_in_effect(now.clone(), set);
        tracing::info!(
            rules = now.rules.len(),
            "conversation rules stored and in effect"
        );
        Ok(now)
    }

    /// Remove the stored list: the file's rules apply again.
    pub async fn revert(&self) -> Result<InEffect, StoreError> {
        let _one = self.writing.lock().await;
        self.store.aux_tree(SETTINGS_TREE)?.remove(RULES_KEY)?;
        self.store.sync().await?;
        let now = InEffect {
            rules: self.conversation.rule.clone(),
            source: RulesSource::Config,
        };
        self.put_in_effect(now.clone(), self.config_set.clone());
        tracing::info!("stored conversation rules removed; the config file's apply");
        Ok(now)
    }
}

fn stored(store: &Store) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(raw) = store.aux_tree(SETTINGS_TREE)?.get(RULES_KEY)? else {
        return Ok(None);
    };
    serde_json::from_slice(&raw)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            key: "aux_settings/rules".into(),
            reason: e.to_string(),
        })
}

/// A JSON list of rules as the table `{ rule = [...] }` the config's reader
/// takes.
fn root(list: serde_json::Value) -> Result<config::Value, Vec<Problem>> {
    serde_json::from_value(serde_json::json!({ "rule": list })).map_err(|e| {
        vec![Problem {
            key: "rule".into(),
            message: e.to_string(),
        }]
    })
}

fn check(
    root: config::Value,
    conversation: &ConversationConfig,
) -> Result<(Vec<RuleConfig>, RuleSet), Vec<Problem>> {
    crate::config::check_rules(root, conversation)
}

/// `rules` as TOML `[[rule]]` tables (the rules page's form): read back by
/// [`RuleBook::set_toml`], they are the same rules.
pub fn to_toml(rules: &[RuleConfig]) -> String {
    let mut out = String::new();
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("[[rule]]\n");
        if let serde_json::Value::Object(fields) = rule.to_json() {
            for (key, value) in &fields {
                out.push_str(&format!("{key} = {}\n", toml_value(value)));
            }
        }
    }
    out
}

/// One value in TOML: strings as basic strings (JSON's escapes are TOML's),
/// tables inline.
fn toml_value(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_value).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_value(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::TempStore;

    fn conversation(toml: &str) -> ConversationConfig {
        crate::config::Config::from_toml(toml, std::iter::empty())
            .unwrap()
            .conversation
    }

    #[tokio::test]
    async fn a_stored_list_replaces_the_files_survives_a_reopen_and_reverts() {
        let mut dir = TempStore::new();
        let conv = conversation(
            "[[conversation.rule]]\nname = \"file\"\nwhen = { keywords = [\"invoice\"] }\nthen = { tag = \"billing\" }",
        );
        let book = RuleBook::open(&dir.store, &conv);
        assert_eq!(book.in_effect().source, RulesSource::Config);
        let text = "[[rule]]\nname = \"mine\"\nwhen = { keywords = [\"Café au lait\"], regex = '(?i)\\d+\"x' }\nthen = { reply = \"Hi {{name}}\", close = true }\n";
        let now = book.set_toml(text).await.unwrap();
        assert_eq!(now.source, RulesSource::Store);
        // Written back as TOML, it reads as the same rules.
        let again = to_toml(&now.rules);
        assert_eq!(
            crate::config::check_rules(crate::config::rules_toml(&again).unwrap(), &conv)
                .unwrap()
                .0[0]
                .to_json(),
            now.rules[0].to_json()
        );
        assert_eq!(
            now.rules[0].to_json()["when"]["keywords"][0],
            "Café au lait"
        );
        drop(book);
        dir.restart();
        let book = RuleBook::open(&dir.store, &conv);
        let kept = book.in_effect();
        assert_eq!(kept.source, RulesSource::Store);
        assert_eq!(kept.rules[0].name.as_deref(), Some("mine"));
        book.revert().await.unwrap();
        drop(book);
        dir.restart();
        let book = RuleBook::open(&dir.store, &conv);
        assert_eq!(book.in_effect().source, RulesSource::Config);
        assert_eq!(book.in_effect().rules[0].name.as_deref(), Some("file"));
    }

    #[tokio::test]
    async fn a_refused_list_reports_every_problem_and_changes_nothing() {
        let dir = TempStore::new();
        let conv = conversation(
            "[[conversation.team]]\nid = \"support\"\n[[conversation.team]]\nid = \"sales\"\n[[conversation.team]]\nid = \"scheduling\"",
        );
        let book = RuleBook::open(&dir.store, &conv);
        let bad = vec![
            serde_json::json!({"when": {"regex": "("}, "then": {"tag": "x"}}),
            serde_json::json!({"when": {"keywords": ["ok"]}, "then": {"route": "billing"}}),
            serde_json::json!({"when": {}, "then": {"tag": "y"}}),
        ];
        let Err(RulesError::Invalid(problems)) = book.set_json(bad).await else {
            panic!("accepted");
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["rule[0].when.regex", "rule[1].then.route", "rule[2].when"],
            "{problems:?}"
        );
        assert_eq!(book.in_effect().source, RulesSource::Config);
        assert!(stored(&dir.store).unwrap().is_none());
    }
}
