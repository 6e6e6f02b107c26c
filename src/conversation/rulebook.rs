//! The rules in effect: `[[conversation.rule]]` from the config file, or a
//! list an administrator stored (`PUT /v1/rules`, the rules page), which
//! replaces the file's whole until it is removed (`DELETE /v1/rules`). A
//! stored list is checked exactly as the file's is at load
//! ([`crate::config::check_rules`]), kept in the store (`aux_settings`,
//! key `rules`: the list as JSON) so a restart keeps it, and put in effect
//! at once: the engine's decider reads [`LiveRules`] for each inbound text.
//! `default_rules` and the teams always come from the file.
//!
//! In a fleet (`[cluster]`) a change made at one gateway is shared with the
//! others ([`RuleBook::last_change`], [`RuleBook::apply_shared`]): the
//! latest change, by the time it was made, is in effect everywhere it
//! passes the checks.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::{LiveRules, RuleConfig, RuleSet};
use super::settings::ConversationConfig;
use crate::config::Problem;
use crate::store::{Store, StoreError};

/// The store's aux tree for settings changed while the daemon runs.
pub const SETTINGS_TREE: &str = "settings";
const RULES_KEY: &[u8] = b"rules";
/// When the stored list last changed (a store or a revert) and where:
/// JSON of [`Changed`].
const RULES_CHANGED_KEY: &[u8] = b"rules_changed";

/// When and where the stored list last changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Changed {
    at: DateTime<Utc>,
    /// Another gateway's site (None: here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    site: Option<String>,
}

/// A change of the rules as a fleet shares it: the stored list (None: the
/// list was removed, the file's rules apply), when and where it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesChange {
    pub at: DateTime<Utc>,
    /// Where it was made (None: at this gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub rules: Option<Vec<serde_json::Value>>,
}

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
    /// Counts the changes made here (not those applied from another
    /// gateway): what a fleet shares.
    changed_here: tokio::sync::watch::Sender<u64>,
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
            changed_here: tokio::sync::watch::channel(0).0,
        }
    }

    /// Ticks at each change made at this gateway (`PUT` or `DELETE
    /// /v1/rules`, the rules page).
    pub fn changes_here(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed_here.subscribe()
    }

    /// The last change of the stored list (None: never changed here, nor
    /// applied from another gateway).
    pub fn last_change(&self) -> Result<Option<RulesChange>, StoreError> {
        let tree = self.store.aux_tree(SETTINGS_TREE)?;
        let Some(raw) = tree.get(RULES_CHANGED_KEY)? else {
            return Ok(None);
        };
        let changed: Changed = serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            key: "aux_settings/rules_changed".into(),
            reason: e.to_string(),
        })?;
        let rules = match stored(&self.store)? {
            Some(serde_json::Value::Array(list)) => Some(list),
            Some(_) | None => None,
        };
        Ok(Some(RulesChange {
            at: changed.at,
            site: changed.site,
            rules,
        }))
    }

    /// Another gateway's change (`change.site` set): in effect here if it
    /// is newer than the last change here and passes this gateway's checks
    /// (its teams); a refused one is logged and changes nothing. Whether
    /// it was applied.
    pub async fn apply_shared(&self, change: RulesChange) -> Result<bool, StoreError> {
        let _one = self.writing.lock().await;
        if self.last_change()?.is_some_and(|last| last.at >= change.at) {
            return Ok(false);
        }
        let site = change.site.clone().unwrap_or_default();
        let now = match change.rules {
            Some(list) => {
                let checked = root(serde_json::Value::Array(list))
                    .and_then(|root| check(root, &self.conversation));
                match checked {
                    Ok(checked) => Some(checked),
                    Err(problems) => {
                        tracing::error!(%site, ?problems, "the rules changed at another gateway do not pass this gateway's checks (its teams?); not in effect here");
                        return Ok(false);
                    }
                }
            }
            None => None,
        };
        let changed = Changed {
            at: change.at,
            site: change.site,
        };
        let (in_effect, set) = match now {
            Some((rules, set)) => {
                self.write(Some(&rules), &changed).await?;
                let source = RulesSource::Store;
                (InEffect { rules, source }, set)
            }
            None => {
                self.write(None, &changed).await?;
                let rules = self.conversation.rule.clone();
                let source = RulesSource::Config;
                (InEffect { rules, source }, self.config_set.clone())
            }
        };
        tracing::info!(%site, source = in_effect.source.as_str(), rules = in_effect.rules.len(), "conversation rules changed at another gateway are in effect here");
        self.put_in_effect(in_effect, set);
        Ok(true)
    }

    /// Store `rules` (None: remove the stored list) with when and where
    /// the change was made, durably.
    async fn write(
        &self,
        rules: Option<&[RuleConfig]>,
        changed: &Changed,
    ) -> Result<(), StoreError> {
        let corrupt = |e: serde_json::Error| StoreError::Corrupt {
            key: "rules".into(),
            reason: e.to_string(),
        };
        let mut batch = sled::Batch::default();
        match rules {
            Some(rules) => {
                let list: Vec<serde_json::Value> = rules.iter().map(RuleConfig::to_json).collect();
                batch.insert(RULES_KEY, serde_json::to_vec(&list).map_err(corrupt)?);
            }
            None => batch.remove(RULES_KEY),
        }
        batch.insert(
            RULES_CHANGED_KEY,
            serde_json::to_vec(changed).map_err(corrupt)?,
        );
        self.store.aux_tree(SETTINGS_TREE)?.apply_batch(batch)?;
        self.store.sync().await
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
        self.write(Some(&rules), &Changed::here()).await?;
        self.changed_here.send_modify(|n| *n += 1);
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
        self.write(None, &Changed::here()).await?;
        self.changed_here.send_modify(|n| *n += 1);
        let now = InEffect {
            rules: self.conversation.rule.clone(),
            source: RulesSource::Config,
        };
        self.put_in_effect(now.clone(), self.config_set.clone());
        tracing::info!("stored conversation rules removed; the config file's apply");
        Ok(now)
    }
}

impl Changed {
    /// A change made here, now.
    fn here() -> Changed {
        Changed {
            at: Utc::now(),
            site: None,
        }
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

    /// In a fleet: a change made here ticks `changes_here` and is the last
    /// change; another gateway's newer change is put in effect (and kept
    /// across a reopen) without a tick (it is not shared again); an older
    /// one, or one this gateway's teams refuse, changes nothing.
    #[tokio::test]
    async fn another_gateways_newer_change_is_in_effect_an_older_or_refused_one_is_not() {
        use serde_json::json;
        let mut dir = TempStore::new();
        let conv = conversation(
            "[[conversation.team]]\nid = \"support\"\n[[conversation.team]]\nid = \"sales\"\n[[conversation.team]]\nid = \"scheduling\"",
        );
        let book = RuleBook::open(&dir.store, &conv);
        assert_eq!(book.last_change().unwrap(), None);
        let mut ticks = book.changes_here();
        let rule = |name: &str, then: serde_json::Value| json!({"name": name, "when": {"keywords": [name]}, "then": then});
        book.set_json(vec![rule("here", json!({"reply": "9-5"}))])
            .await
            .unwrap();
        assert!(ticks.has_changed().unwrap());
        ticks.borrow_and_update();
        let mine = book.last_change().unwrap().unwrap();
        assert_eq!(mine.site, None);
        assert_eq!(mine.rules.as_ref().unwrap()[0]["name"], "here");
        let theirs = |minutes: i64, rules: Option<Vec<serde_json::Value>>| RulesChange {
            at: mine.at + chrono::Duration::minutes(minutes),
            site: Some("north".into()),
            rules,
        };
        let name = |book: &RuleBook| book.in_effect().rules[0].name.clone();
        // Older than the change made here: nothing.
        let old = theirs(-1, Some(vec![rule("old", json!({"tag": "x"}))]));
        assert!(!book.apply_shared(old).await.unwrap());
        assert_eq!(name(&book).as_deref(), Some("here"));
        // A team this gateway does not have: nothing.
        let billing = theirs(1, Some(vec![rule("bill", json!({"route": "billing"}))]));
        assert!(!book.apply_shared(billing).await.unwrap());
        assert_eq!(name(&book).as_deref(), Some("here"));
        // Newer: in effect, not a change made here, kept across a reopen.
        let north = theirs(2, Some(vec![rule("north", json!({"route": "sales"}))]));
        assert!(book.apply_shared(north.clone()).await.unwrap());
        assert_eq!(name(&book).as_deref(), Some("north"));
        assert!(!ticks.has_changed().unwrap());
        assert_eq!(book.last_change().unwrap(), Some(north));
        drop(book);
        dir.restart();
        let book = RuleBook::open(&dir.store, &conv);
        assert_eq!(book.in_effect().source, RulesSource::Store);
        assert_eq!(name(&book).as_deref(), Some("north"));
        // A newer removal: the file's rules again.
        assert!(book.apply_shared(theirs(3, None)).await.unwrap());
        assert_eq!(book.in_effect().source, RulesSource::Config);
        assert_eq!(book.last_change().unwrap().unwrap().rules, None);
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
