//! Reading a workflow file with a JavaScript parser (oxc): the `meta` literal, the
//! `export default { run }` form, no imports; and the wrapping that gives the body
//! top-level `await` and `return`.
use oxc_allocator::Allocator;
use oxc_ast::ast::{
    BindingPattern, CallExpression, Declaration, Expression, ImportExpression, ObjectExpression,
    ObjectProperty, ObjectPropertyKind, PropertyKey, PropertyKind, Statement, UnaryOperator,
};
use oxc_ast_visit::{walk, Visit};
use oxc_parser::{ParseOptions, Parser};
use oxc_span::{GetSpan, SourceType, Span};
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
    /// Tool names written as literals in `tools: [...]` options, for `baton check`.
    pub tool_names: Vec<String>,
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

/// 1-based line and column (in characters) of byte `offset` in `src`.
pub(crate) fn position(src: &str, offset: usize) -> (u32, u32) {
    let before = &src[..offset.min(src.len())];
    let line = before.bytes().filter(|c| *c == b'\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u32 + 1;
    (line, column)
}

fn forbidden(src: &str, offset: u32, message: impl Into<String>) -> ScriptError {
    let (line, column) = position(src, offset as usize);
    ScriptError::Forbidden {
        line,
        column,
        message: message.into(),
    }
}

/// A pure literal: strings, templates without substitutions, numbers (negative too),
/// booleans, null, and arrays and objects of them with plain keys.
fn check_literal(src: &str, e: &Expression) -> Result<(), String> {
    match e {
        Expression::StringLiteral(_)
        | Expression::NumericLiteral(_)
        | Expression::BooleanLiteral(_)
        | Expression::NullLiteral(_) => Ok(()),
        Expression::TemplateLiteral(t) if t.expressions.is_empty() => Ok(()),
        Expression::TemplateLiteral(_) => {
            Err("template substitutions are not allowed in meta".into())
        }
        Expression::UnaryExpression(u)
            if u.operator == UnaryOperator::UnaryNegation
                && matches!(u.argument, Expression::NumericLiteral(_)) =>
        {
            Ok(())
        }
        Expression::ArrayExpression(a) => {
            a.elements
                .iter()
                .try_for_each(|el| match el.as_expression() {
                    Some(e) => check_literal(src, e),
                    None => Err(not(src, el.span())),
                })
        }
        Expression::ObjectExpression(o) => check_object(src, o),
        other => Err(not(src, other.span())),
    }
}

fn check_object(src: &str, o: &ObjectExpression) -> Result<(), String> {
    o.properties.iter().try_for_each(|p| match p {
        ObjectPropertyKind::ObjectProperty(p)
            if !p.computed && !p.method && !p.shorthand && p.kind == PropertyKind::Init =>
        {
            check_literal(src, &p.value)
        }
        other => Err(not(src, other.span())),
    })
}

fn not(src: &str, span: Span) -> String {
    let text: String = src[span.start as usize..span.end as usize]
        .chars()
        .take(40)
        .collect();
    format!("'{text}' is not a literal; meta must be a pure literal")
}

/// Walks the whole script: refuses `import()` and `require(…)` calls, and collects the
/// phase titles it names as literals (`phase('…')`, `{ phase: '…' }`).
struct Walk<'s> {
    src: &'s str,
    refused: Option<ScriptError>,
    phases: Vec<String>,
    tools: Vec<String>,
}

impl Walk<'_> {
    fn refuse(&mut self, span: Span, message: &str) {
        if self.refused.is_none() {
            self.refused = Some(forbidden(self.src, span.start, message));
        }
    }

    fn phase(&mut self, e: Option<&Expression>) {
        let title = match e {
            Some(Expression::StringLiteral(s)) => s.value.to_string(),
            Some(Expression::TemplateLiteral(t)) if t.expressions.is_empty() => {
                t.quasis.iter().map(|q| q.value.raw.to_string()).collect()
            }
            _ => return,
        };
        if !self.phases.contains(&title) {
            self.phases.push(title);
        }
    }
}

impl<'a> Visit<'a> for Walk<'_> {
    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        self.refuse(it.span, "import() is not available in workflow scripts");
        walk::walk_import_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if let Expression::Identifier(id) = &it.callee {
            if id.name == "require" {
                self.refuse(it.span, "require() is not available in workflow scripts");
            } else if id.name == "phase" {
                self.phase(it.arguments.first().and_then(|a| a.as_expression()));
            }
        }
        walk::walk_call_expression(self, it);
    }

    fn visit_object_property(&mut self, it: &ObjectProperty<'a>) {
        let key = match &it.key {
            _ if it.computed => None,
            PropertyKey::StaticIdentifier(k) => Some(k.name.as_str()),
            PropertyKey::StringLiteral(k) => Some(k.value.as_str()),
            _ => None,
        };
        match (key, &it.value) {
            (Some("phase"), v) => self.phase(Some(v)),
            (Some("tools"), Expression::ArrayExpression(list)) => {
                for el in &list.elements {
                    if let Some(Expression::StringLiteral(t)) = el.as_expression() {
                        let name = t.value.to_string();
                        if !self.tools.contains(&name) {
                            self.tools.push(name);
                        }
                    }
                }
            }
            _ => {}
        }
        walk::walk_object_property(self, it);
    }
}

/// What `prepare` finds in a workflow file.
pub(crate) struct Prepared {
    /// The `meta` object literal as written.
    pub meta: Option<String>,
    /// The file with `export` keywords rewritten so it runs as a function body.
    pub body: String,
    pub default_export: bool,
    pub phase_calls: Vec<String>,
    pub tool_names: Vec<String>,
}

/// Parses a workflow file (as a module whose top level may `return`): refuses `import`
/// in every form, `require(…)` calls and exports other than `export const meta = {…}` and
/// `export default`, each with its line and column; reads the meta literal. Identifiers,
/// property names, strings, comments, regular expressions and templates that contain
/// those words are fine. Syntax errors the parser cannot get past are reported here;
/// the engine's own compile reports the rest.
pub(crate) fn prepare(src: &str) -> Result<Prepared, ScriptError> {
    let allocator = Allocator::default();
    let options = ParseOptions {
        allow_return_outside_function: true,
        ..ParseOptions::default()
    };
    let parsed = Parser::new(&allocator, src, SourceType::mjs())
        .with_options(options)
        .parse();
    if parsed.panicked {
        let e = parsed.diagnostics.errors().next();
        let offset = e
            .and_then(|e| e.labels.first().map(|l| l.offset()))
            .unwrap_or(0);
        let (line, column) = position(src, offset as usize);
        return Err(ScriptError::Syntax {
            line,
            column,
            message: e.map_or("the script does not parse".into(), |e| {
                e.message.to_string()
            }),
        });
    }
    let mut body = src.to_string();
    let mut meta = None;
    let mut default_export = false;
    for stmt in &parsed.program.body {
        match stmt {
            Statement::ImportDeclaration(d) => {
                return Err(forbidden(
                    src,
                    d.span.start,
                    "import is not available in workflow scripts",
                ));
            }
            Statement::ExportDeclaration(d) => {
                let Declaration::VariableDeclaration(v) = &d.declaration else {
                    return Err(forbidden(
                        src,
                        d.span.start,
                        "only `export const meta` and `export default` are allowed",
                    ));
                };
                let declarator =
                    match v.declarations.as_slice() {
                        [one] => one,
                        _ => return Err(forbidden(
                            src,
                            d.span.start,
                            "only `export const meta` may be exported (besides `export default`)",
                        )),
                    };
                let named_meta = matches!(&declarator.id,
                    BindingPattern::BindingIdentifier(id) if id.name == "meta");
                if !named_meta {
                    return Err(forbidden(
                        src,
                        d.span.start,
                        "only `export const meta` may be exported (besides `export default`)",
                    ));
                }
                let Some(Expression::ObjectExpression(obj)) = &declarator.init else {
                    return Err(ScriptError::Meta("meta must be an object literal".into()));
                };
                check_object(src, obj).map_err(ScriptError::Meta)?;
                meta = Some(src[obj.span.start as usize..obj.span.end as usize].to_string());
                // `export const meta` → `       const meta`: same length, same lines.
                let at = d.span.start as usize;
                body.replace_range(at..at + 6, "      ");
            }
            Statement::ExportDefaultDeclaration(d) => {
                default_export = true;
                let at = d.span.start as usize;
                let keyword = src[at + 6..]
                    .find("default")
                    .map(|i| at + 6 + i + 7)
                    .unwrap_or(at + 6);
                let replacement = format!(
                    "{DEFAULT_EXPORT}{}",
                    " ".repeat((keyword - at).saturating_sub(DEFAULT_EXPORT.len()))
                );
                body.replace_range(at..keyword, &replacement);
            }
            Statement::ExportNamedDeclaration(d) => {
                return Err(forbidden(
                    src,
                    d.span.start,
                    "only `export const meta` and `export default` are allowed",
                ));
            }
            Statement::ExportAllDeclaration(d) => {
                return Err(forbidden(
                    src,
                    d.span.start,
                    "only `export const meta` and `export default` are allowed",
                ));
            }
            Statement::ExportFromDeclaration(d) => {
                return Err(forbidden(
                    src,
                    d.span.start,
                    "only `export const meta` and `export default` are allowed",
                ));
            }
            _ => {}
        }
    }
    let mut walk = Walk {
        src,
        refused: None,
        phases: Vec::new(),
        tools: Vec::new(),
    };
    walk.visit_program(&parsed.program);
    if let Some(e) = walk.refused {
        return Err(e);
    }
    Ok(Prepared {
        meta,
        body,
        default_export,
        phase_calls: walk.phases,
        tool_names: walk.tools,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_of(literal: &str) -> Result<(), ScriptError> {
        prepare(&format!("export const meta = {literal}\nreturn 1")).map(|_| ())
    }

    #[test]
    fn meta_must_be_a_pure_literal() {
        assert!(meta_of(
            "{ name: 'a', phases: [{ title: \"x\" }], n: -1.5e3, ok: true, z: null, t: `plain` }"
        )
        .is_ok());
        for bad in [
            "{ a: f() }",
            "{ a: `${x}` }",
            "{ a: b }",
            "{ a: 1 + 2 }",
            "{ a: (1) }",
            "{ ...x }",
            "{ [k]: 1 }",
            "{ a() {} }",
        ] {
            assert!(matches!(meta_of(bad), Err(ScriptError::Meta(_))), "{bad}");
        }
    }

    #[test]
    fn words_in_strings_comments_regexes_and_names_are_fine() {
        let src = "let a = 'import x'; // require('fs')\n\
                   const o = { import: 1, require: 2, export: 3 }\n\
                   if (typeof require !== 'function') log('no require here')\n\
                   const re = /'import(x)\\/require/\n\
                   const t = `require(${a})`\n\
                   await agent(\"don't require anything\", { phase: 'Scan', tools: ['Read', 'WebSearch'] })\n\
                   phase(\"Go\")\nreturn o.import";
        let p = prepare(src).unwrap();
        assert_eq!(p.phase_calls, ["Scan", "Go"]);
        assert_eq!(p.tool_names, ["Read", "WebSearch"]);
    }

    #[test]
    fn refusals_name_line_and_column() {
        for (src, line, column) in [
            ("import fs from 'fs'\nreturn 1", 1, 1),
            ("const a = 1\nconst m = await import('fs')", 2, 17),
            ("return 1 +\n  require('child_process')", 2, 3),
            ("export function f() {}", 1, 1),
            ("const x = 1\nexport { x }", 2, 1),
            ("export * from 'y'", 1, 1),
            ("export const other = 1", 1, 1),
        ] {
            match prepare(src) {
                Err(ScriptError::Forbidden {
                    line: l, column: c, ..
                }) => {
                    assert_eq!((l, c), (line, column), "{src}")
                }
                Err(other) => panic!("{src}: {other:?}"),
                Ok(_) => panic!("{src}: accepted"),
            }
        }
    }

    #[test]
    fn exports_become_a_body_with_the_same_lines() {
        let src = "export const meta = { name: 'w' }\nexport default {\n  async run(args) { return 1 }\n}";
        let p = prepare(src).unwrap();
        assert_eq!(p.meta.as_deref(), Some("{ name: 'w' }"));
        assert!(p.default_export);
        assert_eq!(p.body.lines().count(), src.lines().count());
        assert!(p.body.starts_with("       const meta"), "{}", p.body);
        assert!(
            p.body.contains(&format!("{DEFAULT_EXPORT} {{")),
            "{}",
            p.body
        );
    }
}
