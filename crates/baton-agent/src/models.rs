//! The models a session may use, each with its client and pricing.
use std::collections::HashMap;
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

#[derive(Default, Clone)]
pub struct ModelRegistry {
    models: HashMap<String, Arc<ModelEntry>>,
}

impl ModelRegistry {
    pub fn insert(&mut self, entry: ModelEntry) {
        self.models.insert(entry.name.clone(), Arc::new(entry));
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
}
