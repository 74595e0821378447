//! Reading a workflow file: the `meta` literal, the `export default { run }` form, no
//! imports; and the wrapping that gives the body top-level `await` and `return`.
use serde::{Deserialize, Serialize};

use crate::ScriptError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseMeta {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "whenToUse")]
    pub when_to_use: Option<String>,
    #[serde(default)]
    pub phases: Vec<PhaseMeta>,
}

/// A parsed workflow script, ready to run.
#[derive(Debug, Clone)]
pub struct Script {
    pub meta: Meta,
    /// The `meta` literal as written (evaluated in the sandbox so the body can use it).
    pub(crate) meta_json: String,
    /// The body wrapped in an async function expression (not yet called).
    pub(crate) wrapped: String,
    /// Phase titles passed to `phase()` as string literals, for `baton check`.
    pub phase_calls: Vec<String>,
}

/// Prefix put on line 1, so every line keeps its number; columns on line 1 shift by
/// its length.
pub(crate) const PREFIX: &str = "(async function (args) {";
pub(crate) const DEFAULT_EXPORT: &str = "const __baton_default =";

pub(crate) fn wrap(body: &str, default_export: bool) -> String {
    let call = if default_export {
        "\n;if (!__baton_default || typeof __baton_default.run !== 'function') throw new TypeError('export default must be an object with a run(args) method');\nreturn await __baton_default.run(args);"
    } else {
        ""
    };
    format!("{PREFIX}{body}{call}\n}})")
}

/// Blanks comments and string contents (keeping line breaks and offsets) so that
/// keyword searches only see code.
pub(crate) fn code_only(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in out.iter_mut().take(to).skip(from) {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..]
                    .iter()
                    .position(|c| *c == b'\n')
                    .map_or(b.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
                blank(&mut out, i, end);
                i = end;
            }
            q @ (b'"' | b'\'' | b'`') => {
                let mut j = i + 1;
                while j < b.len() && b[j] != q {
                    if b[j] == b'\\' {
                        j += 1;
                    }
                    j += 1;
                }
                blank(&mut out, i + 1, j.min(b.len()));
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

pub(crate) fn line_of(src: &str, offset: usize) -> u32 {
    src[..offset.min(src.len())]
        .bytes()
        .filter(|c| *c == b'\n')
        .count() as u32
        + 1
}

fn find_word(code: &[u8], word: &str, from: usize) -> Option<usize> {
    let w = word.as_bytes();
    let mut i = from;
    while i + w.len() <= code.len() {
        if &code[i..i + w.len()] == w {
            let before = i == 0
                || !(code[i - 1].is_ascii_alphanumeric()
                    || code[i - 1] == b'_'
                    || code[i - 1] == b'$'
                    || code[i - 1] == b'.');
            let after = code
                .get(i + w.len())
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$'));
            if before && after {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn skip_ws(code: &[u8], mut i: usize) -> usize {
    while i < code.len() && code[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The end (exclusive) of the balanced `{…}` starting at `open`, in code-only text.
fn matching_brace(code: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Checks that the meta text is a pure literal: objects, arrays, strings (templates
/// without `${`), numbers, booleans, null, and plain keys. Returns it as JSON-ready JS.
fn check_literal(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b'[' | b']' | b':' | b',' => i += 1,
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..]
                    .find("*/")
                    .map(|p| i + 2 + p + 2)
                    .ok_or("unterminated comment")?;
            }
            q @ (b'"' | b'\'' | b'`') => {
                let mut j = i + 1;
                while j < b.len() && b[j] != q {
                    if b[j] == b'\\' {
                        j += 1;
                    } else if q == b'`' && b[j] == b'$' && b.get(j + 1) == Some(&b'{') {
                        return Err("template substitutions are not allowed in meta".into());
                    }
                    j += 1;
                }
                if j >= b.len() {
                    return Err("unterminated string".into());
                }
                i = j + 1;
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < b.len() {
                    let exp_sign = matches!(b[i], b'+' | b'-') && matches!(b[i - 1], b'e' | b'E');
                    if b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'_') || exp_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                let word = &text[start..i];
                let next = skip_ws(b, i);
                let is_key = b.get(next) == Some(&b':');
                if !is_key && !matches!(word, "true" | "false" | "null") {
                    return Err(format!(
                        "'{word}' is not a literal; meta must be a pure literal"
                    ));
                }
            }
            other => {
                return Err(format!(
                    "'{}' is not allowed in meta; it must be a pure literal",
                    other as char
                ))
            }
        }
    }
    Ok(())
}

/// Splits a workflow file into its meta literal and runnable body.
pub(crate) fn prepare(
    src: &str,
) -> Result<(Option<String>, String, bool, Vec<String>), ScriptError> {
    let code = code_only(src);
    let mut body = src.to_string();
    // import statements and import() are refused before anything runs.
    if let Some(at) = find_word(&code, "import", 0) {
        return Err(ScriptError::Forbidden {
            line: line_of(src, at),
            message: "import is not available in workflow scripts".into(),
        });
    }
    let mut meta_text = None;
    let mut default_export = false;
    let mut from = 0;
    while let Some(at) = find_word(&code, "export", from) {
        let rest = skip_ws(&code, at + 6);
        if code[rest..].starts_with(b"const")
            || code[rest..].starts_with(b"let")
            || code[rest..].starts_with(b"var")
        {
            let kw = if code[rest..].starts_with(b"const") {
                5
            } else {
                3
            };
            let name_at = skip_ws(&code, rest + kw);
            if !code[name_at..].starts_with(b"meta") {
                return Err(ScriptError::Forbidden {
                    line: line_of(src, at),
                    message: "only `export const meta` may be exported (besides `export default`)"
                        .into(),
                });
            }
            let eq = skip_ws(&code, name_at + 4);
            if code.get(eq) != Some(&b'=') {
                return Err(ScriptError::Meta(
                    "expected `export const meta = { … }`".into(),
                ));
            }
            let open = skip_ws(&code, eq + 1);
            if code.get(open) != Some(&b'{') {
                return Err(ScriptError::Meta("meta must be an object literal".into()));
            }
            let close = matching_brace(&code, open)
                .ok_or_else(|| ScriptError::Meta("meta's braces do not balance".into()))?;
            let literal = &src[open..close];
            check_literal(literal).map_err(ScriptError::Meta)?;
            meta_text = Some(literal.to_string());
            // `export const meta` → `       const meta`: same length, same lines.
            body.replace_range(at..at + 6, "      ");
        } else if code[rest..].starts_with(b"default") {
            default_export = true;
            let end = rest + 7;
            let replacement = format!(
                "{DEFAULT_EXPORT}{}",
                " ".repeat((end - at).saturating_sub(DEFAULT_EXPORT.len()))
            );
            body.replace_range(at..end, &replacement);
        } else {
            return Err(ScriptError::Forbidden {
                line: line_of(src, at),
                message: "only `export const meta` and `export default` are allowed".into(),
            });
        }
        from = at + 6;
    }
    for word in ["require"] {
        if let Some(at) = find_word(&code, word, 0) {
            return Err(ScriptError::Forbidden {
                line: line_of(src, at),
                message: format!("{word} is not available in workflow scripts"),
            });
        }
    }
    let phase_calls = phase_literals(src, &code);
    Ok((meta_text, body, default_export, phase_calls))
}

/// `phase('…')` calls with a literal title.
fn phase_literals(src: &str, code: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = find_word(code, "phase", from) {
        from = at + 5;
        let open = skip_ws(code, at + 5);
        if code.get(open) != Some(&b'(') {
            continue;
        }
        let q = skip_ws(code, open + 1);
        let quote = src.as_bytes().get(q).copied();
        if let Some(quote @ (b'\'' | b'"' | b'`')) = quote {
            if let Some(end) = src[q + 1..].find(quote as char) {
                let title = &src[q + 1..q + 1 + end];
                if !title.contains("${") && !out.iter().any(|t| t == title) {
                    out.push(title.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_must_be_a_pure_literal() {
        assert!(check_literal(
            "{ name: 'a', phases: [{ title: \"x\" }], n: -1.5e3, ok: true, z: null }"
        )
        .is_ok());
        for bad in [
            "{ a: f() }",
            "{ a: `${x}` }",
            "{ a: b }",
            "{ a: 1 + 2 }",
            "{ a: (1) }",
            "{ ...x }",
        ] {
            assert!(check_literal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn code_only_hides_strings_and_comments() {
        let src = "let a = 'import x'; // require('fs')\nphase(\"Go\")";
        let code = String::from_utf8(code_only(src)).unwrap();
        assert!(!code.contains("import") && !code.contains("require"));
        assert_eq!(code.len(), src.len());
        assert_eq!(phase_literals(src, code.as_bytes()), ["Go"]);
    }
}
