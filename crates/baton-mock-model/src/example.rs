//! A value that satisfies a JSON schema, for the demo server's answers to structured
//! requests: an agent asked for `{angles: [...]}` gets two plausible angles instead of a
//! text reply it would have to reject.
use serde_json::{json, Map, Value};

/// The `parameters` (OpenAI) or `input_schema` (Anthropic) of the request's tool `name`.
pub fn tool_schema(body: &Value, name: &str) -> Option<Value> {
    body.get("tools")?.as_array()?.iter().find_map(|t| {
        let f = t.get("function").unwrap_or(t);
        (f.get("name")?.as_str()? == name)
            .then(|| {
                f.get("parameters")
                    .or_else(|| f.get("input_schema"))
                    .cloned()
            })
            .flatten()
    })
}

pub fn example(schema: &Value, name: &str, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return example(first, name, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, s) in props {
                    out.insert(k.clone(), example(s, k, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            let max = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let n = 2u64.max(min).min(max);
            let items = schema.get("items").cloned().unwrap_or(json!({}));
            let singular = name.strip_suffix('s').unwrap_or(name);
            Value::Array(
                (0..n)
                    .map(|i| match example(&items, singular, depth + 1) {
                        Value::String(s) => Value::String(format!("{s} {}", i + 1)),
                        v => v,
                    })
                    .collect(),
            )
        }
        "integer" => json!(schema
            .get("minimum")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(1)),
        "number" => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(0.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => {
            if schema.get("format").and_then(Value::as_str) == Some("uri") {
                return json!("https://example.com/");
            }
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let mut s = format!("Example {}", name.replace('_', " "));
            while s.len() < min {
                s.push_str(" and more");
            }
            Value::String(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_satisfy_their_schemas() {
        let schema = json!({
            "type": "object",
            "required": ["angles", "depth", "done", "kind"],
            "properties": {
                "angles": { "type": "array", "minItems": 3, "items": { "type": "string", "minLength": 20 } },
                "depth": { "type": "integer", "minimum": 2 },
                "done": { "type": "boolean" },
                "kind": { "enum": ["bug", "style"] },
                "note": { "type": ["string", "null"] },
                "source": { "type": "string", "format": "uri" }
            }
        });
        let v = example(&schema, "answer", 0);
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&v), "{v}");
        assert_eq!(v["angles"].as_array().unwrap().len(), 3);
        assert_eq!(v["kind"], "bug");
    }

    #[test]
    fn finds_the_tool_in_either_protocol() {
        let openai = json!({"tools": [{"type": "function", "function": {"name": "StructuredOutput", "parameters": {"type": "object"}}}]});
        let anthropic =
            json!({"tools": [{"name": "StructuredOutput", "input_schema": {"type": "object"}}]});
        assert!(tool_schema(&openai, "StructuredOutput").is_some());
        assert!(tool_schema(&anthropic, "StructuredOutput").is_some());
        assert!(tool_schema(&anthropic, "other").is_none());
    }
}
