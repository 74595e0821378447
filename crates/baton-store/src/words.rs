//! How both backends' word indexes see a trace and a query: runs of letters and digits,
//! lower-cased, each at most `MAX_WORD` characters.
use std::collections::HashSet;

use baton_core::{Trace, TraceFinish};
use serde_json::Value;

/// Most words a search takes.
pub const MAX_SEARCH_WORDS: usize = 8;

/// Longest word kept, in characters; a longer one is found by its start.
const MAX_WORD: usize = 64;

/// Longest words text of one trace, in bytes: a tool that returns megabytes of text keeps
/// the words of its start, and stays writable (Postgres refuses a word vector over 1 MiB).
const MAX_TEXT: usize = 256 * 1024;

fn split(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(MAX_WORD).collect::<String>().to_lowercase())
}

/// The words of a search query: at most `MAX_SEARCH_WORDS`.
pub fn search_words(query: &str) -> Vec<String> {
    split(query).take(MAX_SEARCH_WORDS).collect()
}

/// The words a trace is found by, as a store keeps them: those of its tool name, of the
/// string and number values of its input and output (not their keys, which every call of
/// a tool shares) and of its error, each once, separated by spaces.
pub fn trace_words(t: &Trace) -> String {
    let mut w = Words::default();
    w.text(&t.tool_name);
    w.json(&t.input);
    w.outcome(t.output.as_ref(), t.error.as_deref());
    w.text
}

/// The words a finish adds to its trace's: those of its output and error.
pub fn finish_words(f: &TraceFinish) -> String {
    let mut w = Words::default();
    w.outcome(f.output.as_ref(), f.error.as_deref());
    w.text
}

/// The words of a plain text, as `trace_words` takes them (a closing reason, say).
pub fn text_words(s: &str) -> String {
    let mut w = Words::default();
    w.text(s);
    w.text
}

/// `a`'s words followed by `b`'s, as a finish appends its words to its trace's.
pub fn join_words(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_string(),
        (true, false) => b.to_string(),
        (false, false) => format!("{a} {b}"),
    }
}

#[derive(Default)]
struct Words {
    seen: HashSet<String>,
    text: String,
}

impl Words {
    fn text(&mut self, s: &str) {
        for word in split(s) {
            if self.text.len() + word.len() + 1 > MAX_TEXT {
                return;
            }
            if self.seen.insert(word.clone()) {
                if !self.text.is_empty() {
                    self.text.push(' ');
                }
                self.text.push_str(&word);
            }
        }
    }

    /// A call's output and error, as its start or its finish brings them.
    fn outcome(&mut self, output: Option<&Value>, error: Option<&str>) {
        if let Some(o) = output {
            self.json(o);
        }
        if let Some(e) = error {
            self.text(e);
        }
    }

    fn json(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.text(s),
            Value::Number(n) => self.text(&n.to_string()),
            Value::Array(a) => a.iter().for_each(|v| self.json(v)),
            Value::Object(o) => o.values().for_each(|v| self.json(v)),
            Value::Bool(_) | Value::Null => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_query_is_split_as_the_index_splits() {
        assert_eq!(
            search_words("a'); DROP TABLE x; --"),
            ["a", "drop", "table", "x"]
        );
        assert_eq!(search_words(&"w ".repeat(20)).len(), MAX_SEARCH_WORDS);
        assert_eq!(search_words(&"é".repeat(100))[0].chars().count(), MAX_WORD);
    }

    #[test]
    fn values_count_keys_do_not_and_each_word_is_kept_once() {
        let words = |v: Value| {
            let mut w = Words::default();
            w.json(&v);
            w.text
        };
        assert_eq!(
            words(json!({"path": "src/Main.rs", "line": 17, "again": ["main", true, null]})),
            "main 17 src rs"
        );
        assert_eq!(
            words(json!("first line\nsecond\tThird")),
            "first line second third"
        );
    }

    #[test]
    fn a_huge_output_keeps_the_words_that_fit() {
        let text: String = (0..100_000).map(|i| format!("w{i} ")).collect();
        let mut w = Words::default();
        w.text(&text);
        assert!(w.text.len() <= MAX_TEXT && w.text.len() > MAX_TEXT - 16);
        assert!(w.text.starts_with("w0 w1 w2"));
    }

    #[test]
    fn a_finish_appends_its_words() {
        assert_eq!(join_words("a b", "c"), "a b c");
        assert_eq!(join_words("", "c"), "c");
        assert_eq!(join_words("a", ""), "a");
    }
}
