//! Cache-aware fan-out. Sibling agents whose requests begin the same way (model, system
//! prompt, tools, schema, workspace) would each write that prefix to the provider's cache
//! if they started together; instead the first goes, and the others wait until its
//! response has started (its prompt is then cached), at most a configured time, and read
//! it. A lone agent, or one whose prefix is cached already, never waits.
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use baton_agent::AgentSpec;
use tokio_util::sync::CancellationToken;

/// How long a prefix counts as cached after its first response started (providers keep
/// a prompt cache for about five minutes).
const WARM: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(crate) struct PrefixGate {
    prefixes: Mutex<HashMap<u64, Prefix>>,
}

struct Prefix {
    /// Cancelled when the first agent's response started.
    started: CancellationToken,
    since: Instant,
}

/// What an agent does at the gate.
pub(crate) enum Turn {
    /// Goes first: cancel the token once its response starts.
    Lead(CancellationToken),
    /// Waits for the one that went first.
    Follow(CancellationToken),
    /// The prefix is cached already.
    Go,
}

/// The request prefix of an agent, as far as the spec decides it (`model` resolved).
pub(crate) fn prefix_key(model: &str, spec: &AgentSpec) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    model.hash(&mut h);
    spec.system.hash(&mut h);
    spec.tools.hash(&mut h);
    spec.schema.as_ref().map(|s| s.to_string()).hash(&mut h);
    (spec.caps.write, spec.caps.exec).hash(&mut h);
    spec.workspace.hash(&mut h);
    spec.effort.map(|e| e.as_str()).hash(&mut h);
    h.finish()
}

impl PrefixGate {
    pub fn enter(&self, key: u64) -> Turn {
        let mut prefixes = self.prefixes.lock().expect("prefix gate lock");
        match prefixes.get(&key) {
            Some(p) if !p.started.is_cancelled() => Turn::Follow(p.started.clone()),
            Some(p) if p.since.elapsed() < WARM => Turn::Go,
            _ => {
                let started = CancellationToken::new();
                prefixes.insert(
                    key,
                    Prefix {
                        started: started.clone(),
                        since: Instant::now(),
                    },
                );
                Turn::Lead(started)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_leads_the_rest_follow_until_it_started_then_go() {
        let gate = PrefixGate::default();
        let Turn::Lead(first) = gate.enter(1) else {
            panic!("a lone agent leads")
        };
        assert!(matches!(gate.enter(1), Turn::Follow(_)));
        assert!(
            matches!(gate.enter(2), Turn::Lead(_)),
            "another prefix leads its own"
        );
        first.cancel();
        assert!(matches!(gate.enter(1), Turn::Go));
    }

    #[test]
    fn prefixes_differ_by_what_the_request_begins_with() {
        let base = AgentSpec {
            prompt: "one".into(),
            ..Default::default()
        };
        let other_prompt = AgentSpec {
            prompt: "two".into(),
            ..Default::default()
        };
        let with_system = AgentSpec {
            system: Some("you review code".into()),
            ..Default::default()
        };
        assert_eq!(prefix_key("m", &base), prefix_key("m", &other_prompt));
        assert_ne!(prefix_key("m", &base), prefix_key("m", &with_system));
        assert_ne!(prefix_key("m", &base), prefix_key("n", &base));
    }
}
