//! The models a session may use, each with its client and pricing, and the names scripts
//! written for Claude Code use for them (`haiku`, `sonnet`, `opus`, `inherit`, Claude model
//! ids, `provider/model`).
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use baton_llm::{Client, Pricing};

pub struct ModelEntry {
    /// The name sessions use and the model id sent to the provider.
    pub name: String,
    pub provider: String,
    pub client: Client,
    pub pricing: Pricing,
    /// Whether image parts may be sent to it.
    pub vision: bool,
}

/// Names that mean "the default model" unless `[model_aliases]` says otherwise: Claude
/// Code's aliases, and any Claude model id.
const CLAUDE_ALIASES: [&str; 4] = ["haiku", "sonnet", "opus", "inherit"];

fn is_claude_name(name: &str) -> bool {
    CLAUDE_ALIASES.contains(&name) || name.starts_with("claude-")
}

#[derive(Default, Clone)]
pub struct ModelRegistry {
    models: HashMap<String, Arc<ModelEntry>>,
    /// `[model_aliases]`: a name scripts use → a configured model.
    aliases: BTreeMap<String, String>,
}

impl ModelRegistry {
    pub fn insert(&mut self, entry: ModelEntry) {
        self.models.insert(entry.name.clone(), Arc::new(entry));
    }

    /// Adds `[model_aliases]`; each target must be a configured model.
    pub fn with_aliases(mut self, aliases: BTreeMap<String, String>) -> Self {
        self.aliases = aliases;
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<ModelEntry>> {
        self.models.get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.models.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models.keys().cloned().collect();
        names.sort();
        names
    }

    /// The configured model `name` stands for, where `default` is the model used when a
    /// script names none: a configured name; an alias from `[model_aliases]`; `haiku`,
    /// `sonnet`, `opus`, `inherit` or a `claude-…` id (the default model, unless aliased);
    /// or `provider/model` for a configured model of that provider. The error says what
    /// to configure.
    pub fn resolve(&self, name: &str, default: &str) -> Result<String, String> {
        if self.models.contains_key(name) {
            return Ok(name.to_string());
        }
        if let Some(target) = self.aliases.get(name) {
            return Ok(target.clone());
        }
        if is_claude_name(name) {
            return Ok(default.to_string());
        }
        if let Some((provider, model)) = name.split_once('/') {
            if self
                .models
                .get(model)
                .is_some_and(|m| m.provider == provider)
            {
                return Ok(model.to_string());
            }
            return Err(format!(
                "model '{name}' is not configured: add [models.\"{model}\"] with provider = \"{provider}\", or map the name with model_aliases.\"{name}\" = \"<a configured model>\" (configured: {})",
                self.listed()
            ));
        }
        Err(format!(
            "model '{name}' is not configured: add [models.\"{name}\"] with a provider, or map the name with model_aliases.\"{name}\" = \"<a configured model>\" (configured: {})",
            self.listed()
        ))
    }

    fn listed(&self) -> String {
        let names = self.names();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ModelRegistry {
        let mut r = ModelRegistry::default();
        let client = Client::new(
            Arc::new(baton_llm::CommandProvider::new(vec!["true".into()]).unwrap()),
            Default::default(),
        );
        for (name, provider) in [("deepseek-chat", "deepseek"), ("big", "anthropic")] {
            r.insert(ModelEntry {
                name: name.into(),
                provider: provider.into(),
                client: client.clone(),
                pricing: Default::default(),
                vision: false,
            });
        }
        r.with_aliases(BTreeMap::from([("opus".into(), "big".into())]))
    }

    #[test]
    fn scripts_names_for_models_resolve_or_say_what_to_configure() {
        let r = registry();
        let d = "deepseek-chat";
        assert_eq!(r.resolve("big", d).unwrap(), "big");
        assert_eq!(r.resolve("haiku", d).unwrap(), d);
        assert_eq!(r.resolve("sonnet", d).unwrap(), d);
        assert_eq!(r.resolve("inherit", d).unwrap(), d);
        assert_eq!(r.resolve("claude-sonnet-4-5-20250929", d).unwrap(), d);
        assert_eq!(r.resolve("opus", d).unwrap(), "big", "an alias wins");
        assert_eq!(r.resolve("deepseek/deepseek-chat", d).unwrap(), d);
        let e = r.resolve("anthropic/deepseek-chat", d).unwrap_err();
        assert!(e.contains("provider = \"anthropic\""), "{e}");
        let e = r.resolve("gpt-9", d).unwrap_err();
        assert!(
            e.contains("[models.\"gpt-9\"]") && e.contains("model_aliases"),
            "{e}"
        );
        assert!(e.contains("big, deepseek-chat"), "{e}");
    }
}
