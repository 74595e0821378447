//! Routes are declared once, here, with what they take and return; the same
//! declaration builds the axum router and the OpenAPI document, so the document cannot
//! drift from the code.
use axum::handler::Handler;
use axum::routing::{get, patch, post, MethodRouter};
use axum::Router;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// Routes are nested under `/api`; the document names their full paths.
const DOC_PREFIX: &str = "/api";

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

pub fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// What the document says of one operation.
pub struct Op {
    pub summary: &'static str,
    pub tag: &'static str,
    pub body: Option<SchemaFn>,
    pub query: Option<SchemaFn>,
    pub ok_status: u16,
    pub ok: SchemaFn,
    /// Error statuses this operation can answer with, besides those every operation
    /// can (403, 500; 401 with a token) and those of every body (400, 408, 413).
    pub errors: &'static [u16],
}

pub struct Api {
    /// Whether the server has a bearer token: then every operation needs it.
    token: bool,
    router: Router<AppState>,
    /// What the server sends: a field it always writes is required, even when null.
    generator: SchemaGenerator,
    /// What the server reads: a field with a default may be left out.
    inputs: SchemaGenerator,
    paths: Map<String, Value>,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

impl Api {
    pub fn new() -> Self {
        Self::with_token(false)
    }

    pub fn with_token(token: bool) -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
        });
        let inputs = settings.clone().for_deserialize().into_generator();
        Self {
            token,
            router: Router::new(),
            generator: settings.for_serialize().into_generator(),
            inputs,
            paths: Map::new(),
        }
    }

    pub fn get<H, T>(self, path: &'static str, op: Op, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("get", path, op, get(handler))
    }

    pub fn post<H, T>(self, path: &'static str, op: Op, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("post", path, op, post(handler))
    }

    pub fn patch<H, T>(self, path: &'static str, op: Op, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add("patch", path, op, patch(handler))
    }

    /// A POST taking one file as `multipart/form-data` (the field `file`), with no JSON
    /// body limit: the handler enforces its own.
    pub fn upload<H, T>(self, path: &'static str, op: Op, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let route = post(handler).layer(axum::extract::DefaultBodyLimit::disable());
        let mut api = self.add("post", path, op, route);
        api.paths[&format!("{DOC_PREFIX}{path}")]["post"]["requestBody"] = json!({
            "required": true,
            "content": { "multipart/form-data": { "schema": {
                "type": "object",
                "required": ["file"],
                "properties": { "file": { "type": "string", "contentMediaType": "application/octet-stream" } }
            } } }
        });
        api
    }

    /// A GET answering the bytes of one of `media` types (304 when `If-None-Match` names
    /// them).
    pub fn get_bytes<H, T>(self, path: &'static str, op: Op, media: &[&str], handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let status = op.ok_status.to_string();
        let mut api = self.add("get", path, op, get(handler));
        let responses = &mut api.paths[&format!("{DOC_PREFIX}{path}")]["get"]["responses"];
        let content: Map<String, Value> = media
            .iter()
            .map(|m| {
                (
                    m.to_string(),
                    json!({ "schema": { "type": "string", "contentMediaType": m } }),
                )
            })
            .collect();
        responses[&status] = json!({ "description": "the bytes", "content": content });
        responses["304"] =
            json!({ "description": "not modified (If-None-Match named these bytes)" });
        api
    }

    fn add(
        mut self,
        method: &str,
        path: &'static str,
        op: Op,
        route: MethodRouter<AppState>,
    ) -> Self {
        let operation = self.operation(path, &op);
        self.paths
            .entry(format!("{DOC_PREFIX}{path}"))
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path item is an object")
            .insert(method.to_string(), operation);
        self.router = self.router.route(path, route);
        self
    }

    fn operation(&mut self, path: &str, op: &Op) -> Value {
        let mut params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = if name == "id" {
                    json!({ "type": "string", "format": "uuid" })
                } else {
                    json!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9-_:]*$" })
                };
                json!({ "name": name, "in": "path", "required": true, "schema": schema })
            })
            .collect();
        if let Some(query) = op.query {
            // A query struct's properties become one parameter each.
            let s = query(&mut self.inputs).to_value();
            let s = self.resolve(&s);
            let required: Vec<&str> = s["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = s["properties"].as_object() {
                for (name, schema) in props {
                    let mut p = json!({ "name": name, "in": "query",
                                        "required": required.contains(&name.as_str()),
                                        "schema": schema });
                    if let Some(d) = schema.get("description") {
                        p["description"] = d.clone();
                    }
                    params.push(p);
                }
            }
        }
        let mut responses = Map::new();
        let ok = (op.ok)(&mut self.generator).to_value();
        responses.insert(
            op.ok_status.to_string(),
            json!({ "description": "success", "content": { "application/json": { "schema": ok } } }),
        );
        let mut statuses: Vec<u16> = op.errors.iter().copied().chain([403, 500]).collect();
        if op.body.is_some() {
            statuses.extend([400, 408, 413]);
        }
        if self.token {
            statuses.push(401);
        }
        statuses.sort_unstable();
        statuses.dedup();
        for status in &statuses {
            responses.insert(
                status.to_string(),
                json!({ "description": error_description(*status),
                        "content": { "application/json": {
                            "schema": { "$ref": "#/components/schemas/Error" } } } }),
            );
        }
        let mut operation = json!({
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": params,
            "responses": responses,
        });
        if let Some(body) = op.body {
            let s = body(&mut self.inputs).to_value();
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": s } }
            });
        }
        operation
    }

    /// Follows one `$ref` into the generator's definitions.
    fn resolve(&self, s: &Value) -> Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                self.inputs
                    .definitions()
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| s.clone())
            }
            None => s.clone(),
        }
    }

    /// The router and the document, which also lists `extra` paths served outside this
    /// table (the WebSocket).
    /// `types` are schemas no route names (the WebSocket's frames and messages): the
    /// document lists them too, for clients to be generated from.
    pub fn finish(
        mut self,
        version: &str,
        extra: Value,
        types: &[SchemaFn],
    ) -> (Router<AppState>, Value) {
        for (path, item) in extra.as_object().cloned().unwrap_or_default() {
            self.paths.insert(path, item);
        }
        for t in types {
            t(&mut self.generator);
        }
        let mut schemas: Map<String, Value> =
            self.generator.take_definitions(true).into_iter().collect();
        // A type both read and sent whose two forms differ (a defaulted field is
        // optional in, always present out) is listed twice; the read form as `…Input`.
        let inputs: Map<String, Value> = self.inputs.take_definitions(true).into_iter().collect();
        let renamed: Vec<String> = inputs
            .iter()
            .filter(|(name, s)| schemas.get(*name).is_some_and(|out| out != *s))
            .map(|(name, _)| name.clone())
            .collect();
        for (name, mut s) in inputs {
            rename_refs(&mut s, &renamed);
            let name = if renamed.contains(&name) {
                format!("{name}Input")
            } else {
                name
            };
            schemas.insert(name, s);
        }
        for item in self.paths.values_mut() {
            for op in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(body) = op.get_mut("requestBody") {
                    rename_refs(body, &renamed);
                }
                if let Some(params) = op.get_mut("parameters") {
                    rename_refs(params, &renamed);
                }
            }
        }
        for s in schemas.values_mut() {
            split_ref_siblings(s);
        }
        schemas.insert(
            "Error".into(),
            json!({
                "type": "object",
                "required": ["error"],
                "properties": { "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string" },
                        "message": { "type": "string" }
                    }
                } }
            }),
        );
        let doc = json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Baton",
                "version": version,
                "description": "Durable AI agents and multi-agent workflows, traced and streamed live."
            },
            "paths": self.paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": { "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Required when the server has auth.token set (always when it binds a non-loopback address)"
                } }
            },
        });
        let mut doc = doc;
        if self.token {
            doc["security"] = json!([{ "bearer": [] }]);
        }
        (self.router, doc)
    }
}

/// `{$ref, properties…}` as `{allOf: [{$ref}, {properties…}]}`: the same schema in JSON
/// Schema 2020-12, in the form OpenAPI tools read (most ignore a `$ref`'s siblings, and
/// would drop the `type` that tags a frame whose fields come from another schema).
fn split_ref_siblings(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let shapes = ["properties", "required", "type", "additionalProperties"];
            if map.contains_key("$ref") && shapes.iter().any(|k| map.contains_key(*k)) {
                let mut rest = Map::new();
                for k in shapes {
                    if let Some(x) = map.remove(k) {
                        rest.insert(k.to_string(), x);
                    }
                }
                let r = map.remove("$ref").expect("checked above");
                map.insert("allOf".into(), json!([{ "$ref": r }, Value::Object(rest)]));
            }
            map.values_mut().for_each(split_ref_siblings);
        }
        Value::Array(items) => items.iter_mut().for_each(split_ref_siblings),
        _ => {}
    }
}

/// Points `$ref`s to the `…Input` form of the `renamed` schemas.
fn rename_refs(v: &mut Value, renamed: &[String]) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(r) if key == "$ref" => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            if renamed.iter().any(|n| n == name) {
                                *r = format!("{r}Input");
                            }
                        }
                    }
                    _ => rename_refs(child, renamed),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, renamed)),
        _ => {}
    }
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "bad input",
        401 => "missing or wrong bearer token",
        403 => "refused: a Host name this server does not answer to, another web page's origin, or a capability not allowed for the workspace",
        408 => "the request body did not arrive in time",
        404 => "not found",
        409 => "conflict with the current state",
        413 => "request body too large",
        422 => "invalid script or schema",
        429 => "too many requests",
        503 => "database unavailable",
        _ => "internal error (details are logged, never returned)",
    }
}
