//! Journal keys: SHA-256 of the canonical JSON of `{prompt, schema, model, tools,
//! occurrence}`. serde_json objects keep their keys sorted, so equal content always
//! serializes the same way.
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub(crate) fn content(prompt: &str, opts: &Value) -> Value {
    json!({
        "prompt": prompt,
        "schema": opts.get("schema").cloned().unwrap_or(Value::Null),
        "model": opts.get("model").cloned().unwrap_or(Value::Null),
        "tools": opts.get("tools").cloned().unwrap_or(Value::Null),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key of the `occurrence`-th call (0-based) with this content in a run.
pub(crate) fn key(content: &Value, occurrence: u64) -> String {
    let mut v = content.clone();
    v["occurrence"] = json!(occurrence);
    hex(&Sha256::digest(v.to_string().as_bytes()))
}

/// Identifies equal content, to count occurrences.
pub(crate) fn content_id(content: &Value) -> String {
    hex(&Sha256::digest(content.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_content_and_occurrence_only() {
        let a = content("p", &json!({ "label": "x", "schema": { "b": 1, "a": 2 } }));
        let b = content(
            "p",
            &json!({ "schema": { "a": 2, "b": 1 }, "label": "other", "phase": "P" }),
        );
        assert_eq!(key(&a, 0), key(&b, 0), "labels and key order do not matter");
        assert_ne!(key(&a, 0), key(&a, 1));
        assert_ne!(key(&a, 0), key(&content("q", &json!({})), 0));
        assert_eq!(key(&a, 0).len(), 64);
    }
}
