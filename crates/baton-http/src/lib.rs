//! Baton's HTTP and WebSocket interface. Handlers parse and validate input, call the
//! layers below and shape the answer; no SQL and no orchestration live here.
#![forbid(unsafe_code)]

pub mod api;
mod auth;
pub mod error;
pub mod extract;
mod guard;
pub mod routes;
pub mod serve;
pub mod state;
mod ws;

use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use baton_core::{Chat, Message, Page, Trace};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use api::{schema, Api, Op};
pub use error::{ApiError, ApiResult};
pub use serve::{serve, ServeConfig};
pub use state::{Access, AppState, HttpConfig};

/// The API routes and their OpenAPI document, from one declaration.
pub fn api(version: &str, token: bool) -> (Router<AppState>, serde_json::Value) {
    use routes::{attachments, chats, health, sessions, tasks, traces, workflows, PageQuery};
    Api::with_token(token)
        .get(
            "/health",
            Op {
                summary: "Server and database status",
                tag: "server",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<health::Health>,
                errors: &[503],
            },
            health::health,
        )
        .post(
            "/chats",
            Op {
                summary: "Create a chat",
                tag: "chats",
                body: Some(schema::<chats::CreateChat>),
                query: None,
                ok_status: 201,
                ok: schema::<Chat>,
                errors: &[400, 413],
            },
            chats::create,
        )
        .get(
            "/chats",
            Op {
                summary: "List chats, newest first",
                tag: "chats",
                body: None,
                query: Some(schema::<PageQuery>),
                ok_status: 200,
                ok: schema::<Page<Chat>>,
                errors: &[400],
            },
            chats::list,
        )
        .get(
            "/chats/{id}",
            Op {
                summary: "One chat",
                tag: "chats",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<Chat>,
                errors: &[400, 404],
            },
            chats::get,
        )
        .patch(
            "/chats/{id}",
            Op {
                summary: "Change a chat's title or whether finished background tasks wake its agent",
                tag: "chats",
                body: Some(schema::<chats::UpdateChat>),
                query: None,
                ok_status: 200,
                ok: schema::<Chat>,
                errors: &[400, 404, 413],
            },
            chats::update,
        )
        .get(
            "/chats/{id}/messages",
            Op {
                summary: "A chat's messages, oldest first; paged with limit, and cursor (newer) or before (older)",
                tag: "chats",
                body: None,
                query: Some(schema::<chats::MessagesQuery>),
                ok_status: 200,
                ok: schema::<Page<Message>>,
                errors: &[400, 404],
            },
            chats::messages,
        )
        .post(
            "/chats/{id}/messages",
            Op {
                summary: "Store a user message and start (or continue) the chat's agent session; answers at once",
                tag: "chats",
                body: Some(schema::<sessions::PostMessage>),
                query: None,
                ok_status: 202,
                ok: schema::<baton_agent::PostedMessage>,
                errors: &[400, 404, 409, 413],
            },
            sessions::post_message,
        )
        .upload(
            "/attachments",
            Op {
                summary: "Upload an image (PNG, JPEG, GIF or WebP, read from its bytes) as the multipart field 'file'; the same bytes answer the same attachment",
                tag: "attachments",
                body: None,
                query: None,
                ok_status: 201,
                ok: schema::<baton_core::Attachment>,
                errors: &[400, 408, 413],
            },
            attachments::upload,
        )
        .get_bytes(
            "/attachments/{id}",
            Op {
                summary: "An attachment's bytes, with its type; cacheable for ever",
                tag: "attachments",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<String>,
                errors: &[400, 404],
            },
            &["image/png", "image/jpeg", "image/gif", "image/webp"],
            attachments::content,
        )
        .get_bytes(
            "/attachments/{id}/thumbnail",
            Op {
                summary: "A PNG of the image at most 256 pixels on a side, made at upload",
                tag: "attachments",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<String>,
                errors: &[400, 404],
            },
            &["image/png"],
            attachments::thumbnail,
        )
        .get(
            "/chats/{id}/sessions",
            Op {
                summary: "A chat's agent sessions, oldest first, with their totals (turns: GET /api/sessions/{id}/turns)",
                tag: "sessions",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<Page<baton_agent::SessionView>>,
                errors: &[400, 404],
            },
            sessions::chat_sessions,
        )
        .get(
            "/sessions/{id}",
            Op {
                summary: "A session: status, model, lease and its totals so far (tokens, cost, tool calls), without its history",
                tag: "sessions",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_agent::SessionView>,
                errors: &[400, 404],
            },
            sessions::get,
        )
        .get(
            "/sessions/{id}/turns",
            Op {
                summary: "A session's timeline, oldest turn first: start, tool count, tokens, cache hit rate, cost per turn; paged with limit and cursor",
                tag: "sessions",
                body: None,
                query: Some(schema::<PageQuery>),
                ok_status: 200,
                ok: schema::<Page<baton_core::TurnSummary>>,
                errors: &[400, 404],
            },
            sessions::turns,
        )
        .post(
            "/sessions/{id}/cancel",
            Op {
                summary: "Stop a running agent session",
                tag: "sessions",
                body: None,
                query: None,
                ok_status: 202,
                ok: schema::<sessions::Cancelling>,
                errors: &[400, 404, 409],
            },
            sessions::cancel,
        )
        .get(
            "/chats/{id}/traces",
            Op {
                summary:
                    "A chat's traces ordered by (turn_number, started_at, id), keyset-paginated; kind, tool, status, min_ms and q (words) narrow it, served by indexes",
                tag: "traces",
                body: None,
                query: Some(schema::<traces::TraceQuery>),
                ok_status: 200,
                ok: schema::<Page<Trace>>,
                errors: &[400, 404],
            },
            traces::list,
        )
        .get(
            "/sessions/{id}/traces",
            Op {
                summary: "One agent session's traces (for example an agent of a workflow run), keyset-paginated like a chat's",
                tag: "traces",
                body: None,
                query: Some(schema::<traces::TraceQuery>),
                ok_status: 200,
                ok: schema::<Page<Trace>>,
                errors: &[400, 404],
            },
            traces::of_session,
        )
        .get(
            "/workflows",
            Op {
                summary: "Workflow definitions: project (.baton/.claude), personal (~/.baton) and built-in",
                tag: "workflows",
                body: None,
                query: Some(schema::<workflows::WorkspaceQuery>),
                ok_status: 200,
                ok: schema::<Page<baton_workflow::Definition>>,
                errors: &[400],
            },
            workflows::list,
        )
        .get(
            "/agents",
            Op {
                summary: "Agent types for agent(prompt, { agentType }): project (.baton/agents, .claude/agents) and personal (~/.claude/agents), with what is wrong with any that cannot be used",
                tag: "workflows",
                body: None,
                query: Some(schema::<workflows::WorkspaceQuery>),
                ok_status: 200,
                ok: schema::<Page<baton_workflow::AgentType>>,
                errors: &[400],
            },
            workflows::agent_types,
        )
        .post(
            "/workflows/runs",
            Op {
                summary: "Start a run of an inline script",
                tag: "runs",
                body: Some(schema::<workflows::StartInline>),
                query: None,
                ok_status: 201,
                ok: schema::<workflows::Started>,
                errors: &[400, 413, 422],
            },
            workflows::start_inline,
        )
        .get(
            "/workflows/{name}",
            Op {
                summary: "One workflow definition, with its script",
                tag: "workflows",
                body: None,
                query: Some(schema::<workflows::WorkspaceQuery>),
                ok_status: 200,
                ok: schema::<baton_workflow::Definition>,
                errors: &[400, 404],
            },
            workflows::get,
        )
        .post(
            "/workflows/{name}/runs",
            Op {
                summary: "Start a run; large runs start in awaiting_approval unless auto_approve",
                tag: "runs",
                body: Some(schema::<workflows::StartRun>),
                query: None,
                ok_status: 201,
                ok: schema::<workflows::Started>,
                errors: &[400, 404, 413, 422],
            },
            workflows::start,
        )
        .get(
            "/runs",
            Op {
                summary: "Runs, newest first",
                tag: "runs",
                body: None,
                query: Some(schema::<workflows::RunsQuery>),
                ok_status: 200,
                ok: schema::<Page<baton_core::Run>>,
                errors: &[400],
            },
            workflows::runs,
        )
        .get(
            "/runs/{id}",
            Op {
                summary: "A run: status, phases with agent counts, tokens, cost and elapsed time over all its agents, its first 200 agents (agents_next pages the rest), log, result, totals",
                tag: "runs",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_workflow::RunView>,
                errors: &[400, 404],
            },
            workflows::run,
        )
        .get(
            "/runs/{id}/agents",
            Op {
                summary: "A run's agents in start order, keyset-paged (the cursor is a start order: agents_next of the run, then next_cursor)",
                tag: "runs",
                body: None,
                query: Some(schema::<PageQuery>),
                ok_status: 200,
                ok: schema::<Page<baton_core::AgentView>>,
                errors: &[400, 404],
            },
            workflows::agents,
        )
        .get(
            "/runs/{id}/log",
            Op {
                summary: "A run's log lines, oldest first within a page, pages going back in time (the view holds the newest 200; its log_next is the first cursor)",
                tag: "runs",
                body: None,
                query: Some(schema::<PageQuery>),
                ok_status: 200,
                ok: schema::<Page<String>>,
                errors: &[400, 404],
            },
            workflows::log,
        )
        .post(
            "/runs/{id}/approve",
            Op {
                summary: "Approve a run awaiting approval",
                tag: "runs",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_core::Run>,
                errors: &[400, 404, 409],
            },
            workflows::approve,
        )
        .post(
            "/runs/{id}/cancel",
            Op {
                summary: "Cancel a run: everything it runs stops",
                tag: "runs",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_core::Run>,
                errors: &[400, 404, 409],
            },
            workflows::cancel,
        )
        .post(
            "/runs/{id}/pause",
            Op {
                summary: "Pause a run: no new agents start, running ones finish",
                tag: "runs",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_core::Run>,
                errors: &[400, 404, 409],
            },
            workflows::pause,
        )
        .post(
            "/runs/{id}/resume",
            Op {
                summary: "Resume a paused run, or run a stopped one again (optionally an edited script) with its journal",
                tag: "runs",
                body: Some(schema::<workflows::ResumeRun>),
                query: None,
                ok_status: 200,
                ok: schema::<baton_core::Run>,
                errors: &[400, 404, 409, 422],
            },
            workflows::resume,
        )
        .post(
            "/tasks",
            Op {
                summary: "Start a background agent on a task; answers at once with the queued task",
                tag: "tasks",
                body: Some(schema::<tasks::StartTask>),
                query: None,
                ok_status: 201,
                ok: schema::<baton_core::Task>,
                errors: &[400],
            },
            tasks::start,
        )
        .get(
            "/tasks",
            Op {
                summary: "Background tasks, newest first",
                tag: "tasks",
                body: None,
                query: Some(schema::<tasks::TasksQuery>),
                ok_status: 200,
                ok: schema::<Page<baton_core::Task>>,
                errors: &[400],
            },
            tasks::list,
        )
        .get(
            "/tasks/{id}",
            Op {
                summary: "One task: status, progress, result or error, and its agent session (for its traces)",
                tag: "tasks",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_core::Task>,
                errors: &[400, 404],
            },
            tasks::get,
        )
        .post(
            "/tasks/{id}/cancel",
            Op {
                summary: "Stop a task wherever it runs (a queued one ends at once); 409 when it already ended",
                tag: "tasks",
                body: None,
                query: None,
                ok_status: 200,
                ok: schema::<baton_core::Task>,
                errors: &[400, 404, 409],
            },
            tasks::cancel,
        )
        .finish(
            version,
            extra_doc(),
            &[
                schema::<baton_core::WireFrame>,
                schema::<ws::protocol::ClientMessage>,
            ],
        )
}

/// Paths served outside the route table: the document itself and the WebSocket.
fn extra_doc() -> serde_json::Value {
    json!({
        "/api/openapi.json": { "get": {
            "summary": "This document",
            "tags": ["server"],
            "responses": { "200": { "description": "the OpenAPI 3.1 document" } }
        } },
        "/ws": { "get": {
            "summary": "WebSocket: subscribe to chat:<id>, run:<id> or tasks; snapshot or replay with since, then live frames",
            "tags": ["live"],
            "description": "Client messages are #/components/schemas/ClientMessage: {\"type\":\"subscribe\",\"topic\":T,\"since\":N|null}, {\"type\":\"unsubscribe\",\"topic\":T}, {\"type\":\"ping\"}. Every server frame is #/components/schemas/WireFrame: {type, topic, seq, at, ...}. With a token configured, pass Authorization: Bearer or ?token=.",
            "responses": {
                "101": { "description": "switching protocols" },
                "400": { "description": "not a WebSocket upgrade request",
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "401": { "description": "missing or wrong token (when the server has one)",
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
                "403": { "description": "a Host name this server does not answer to, or another web page's origin",
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }
            }
        } }
    })
}

/// The whole application: `/api`, `/ws` and the web app.
pub fn app(state: AppState) -> Router {
    let (api_routes, doc) = api(state.config.version, state.config.auth_token.is_some());
    let doc = std::sync::Arc::new(doc);
    let api_routes = api_routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json((*doc).clone()) }
            }),
        )
        .fallback(api_fallback)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    let limit = state.config.max_body_bytes;
    let cors = cors(state.config.access.extra_origins());
    Router::new()
        .nest("/api", api_routes)
        .route("/ws", get(ws::upgrade))
        .fallback(web_app)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::check))
        .layer(DefaultBodyLimit::max(limit))
        .layer(cors)
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Closed unless `server.allowed_origins` names other origins: then pages there may
/// call the API (a separately served front end, for example).
fn cors(origins: &[String]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(Duration::from_secs(600)),
    )
}

async fn api_fallback() -> ApiError {
    ApiError::NoRoute
}

/// Any path outside `/api` and `/ws` is the web app's (client-side routes included).
/// Built files by path; any other path is a client-side route and gets the app's page,
/// except under `/assets/`, where a missing file is a real 404 (a stale page asking for an
/// old bundle should fail loudly, not receive HTML).
async fn web_app(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let path = uri.path();
    let asset = match baton_web::file(path) {
        Some(asset) => asset,
        None if path.starts_with("/assets/") => return ApiError::NotFound("file").into_response(),
        None => baton_web::index(),
    };
    let cache = if asset.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}

/// How long shutdown waits for WebSocket tasks to send their close frames.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
