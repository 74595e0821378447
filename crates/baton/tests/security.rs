//! Safe defaults on a developer's machine: no web page may drive Baton on loopback (DNS
//! rebinding, cross-site forms and fetches, foreign WebSockets), no client may hold it
//! open (slow or silent connections, too many of them), every rejection is JSON, and
//! write/exec are granted only inside the workspace roots. On both backends, over real
//! sockets.
mod common;

use std::time::Duration;

use baton_testkit::Kind;
use common::{assert_error, TestServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both!(
    rebound_host_names_are_refused,
    foreign_origins_cannot_change_anything,
    websockets_from_foreign_origins_are_refused,
    listed_origins_get_cors_access,
    slow_and_silent_clients_are_dropped_on_time,
    connections_beyond_the_cap_get_503,
    every_rejection_is_json,
    write_and_exec_only_inside_workspace_roots,
    websockets_that_stop_answering_are_closed,
    extreme_numbers_are_stored_and_read_back,
    openapi_tells_the_truth,
);

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Sends `request` as is on a fresh connection and reads the answer to its end.
async fn raw(addr: &str, request: &[u8]) -> (u16, Value, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .ok();
    parse(&out)
}

fn parse(out: &[u8]) -> (u16, Value, String) {
    let text = String::from_utf8_lossy(out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        head.to_ascii_lowercase(),
    )
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

async fn chat_count(s: &TestServer) -> usize {
    let (_, list) = s.get("/api/chats").await;
    list["items"].as_array().unwrap().len()
}

async fn rebound_host_names_are_refused(kind: Kind) {
    let s = TestServer::start(kind).await;
    let a = addr(&s);
    let port = a.rsplit(':').next().unwrap();
    let evil_host = format!("attacker.example:{port}");
    let evil_origin = format!("http://{evil_host}");
    // What a page on attacker.example sends once its name resolves to 127.0.0.1.
    let body = r#"{"workspace":"/","capabilities":{"write":true,"exec":true}}"#;
    let (status, err, _) = raw(
        &a,
        &request(
            "POST",
            "/api/chats",
            &[
                ("host", &evil_host),
                ("origin", &evil_origin),
                ("content-type", "application/json"),
            ],
            body,
        ),
    )
    .await;
    assert_error(status, &err, 403, "forbidden_host");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.allowed_hosts"),
        "{err}"
    );
    // Reading is refused too, and so is the page itself.
    for path in ["/api/chats", "/api/health", "/"] {
        let (status, err, _) = raw(&a, &request("GET", path, &[("host", &evil_host)], "")).await;
        assert_error(status, &err, 403, "forbidden_host");
    }
    assert_eq!(chat_count(&s).await, 0);
    // Its own names work, with or without the port.
    for host in [a.clone(), format!("localhost:{port}"), "127.0.0.1".into()] {
        let (status, _, _) = raw(&a, &request("GET", "/api/health", &[("host", &host)], "")).await;
        assert_eq!(status, 200, "{host}");
    }
    // A name the user lists is accepted.
    let s =
        TestServer::start_with(kind, &[("server.allowed_hosts", r#"["baton.internal"]"#)]).await;
    let (status, _, _) = raw(
        &addr(&s),
        &request("GET", "/api/health", &[("host", "baton.internal:7777")], ""),
    )
    .await;
    assert_eq!(status, 200);
}

async fn foreign_origins_cannot_change_anything(kind: Kind) {
    let s = TestServer::start(kind).await;
    let a = addr(&s);
    let json_ct = ("content-type", "application/json");
    for origin in ["http://localhost:8080", "http://evil.example", "null"] {
        let (status, err, _) = raw(
            &a,
            &request(
                "POST",
                "/api/chats",
                &[("host", &a), ("origin", origin), json_ct],
                "{}",
            ),
        )
        .await;
        assert_error(status, &err, 403, "forbidden_origin");
    }
    // A plain form on another site: no body, no JSON type. Refused for its origin, and
    // for its missing body even without one, so no run starts and no token is spent.
    let (status, err, _) = raw(
        &a,
        &request(
            "POST",
            "/api/workflows/find-issues/runs",
            &[("host", &a), ("origin", "http://evil.example")],
            "",
        ),
    )
    .await;
    assert_error(status, &err, 403, "forbidden_origin");
    for ct in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let (status, err) = s
            .post_raw("/api/workflows/find-issues/runs", ct, vec![])
            .await;
        assert_error(status, &err, 400, "bad_content_type");
    }
    let (_, runs) = s.get("/api/runs").await;
    assert!(runs["items"].as_array().unwrap().is_empty(), "{runs}");
    // Browsers that send Sec-Fetch-Site but no Origin are judged by it.
    let (status, err, _) = raw(
        &a,
        &request(
            "POST",
            "/api/chats",
            &[("host", &a), ("sec-fetch-site", "cross-site"), json_ct],
            "{}",
        ),
    )
    .await;
    assert_error(status, &err, 403, "forbidden_origin");
    // Cancelling takes no body: the origin check is what protects it.
    let (status, err, _) = raw(
        &a,
        &request(
            "POST",
            &format!("/api/runs/{}/cancel", baton_core::RunId::new()),
            &[("host", &a), ("origin", "http://evil.example")],
            "",
        ),
    )
    .await;
    assert_error(status, &err, 403, "forbidden_origin");
    assert_eq!(chat_count(&s).await, 0);
    // The web app's own origin, and clients without one (CLI, curl), work.
    let own = format!("http://{a}");
    let (status, chat, _) = raw(
        &a,
        &request(
            "POST",
            "/api/chats",
            &[("host", &a), ("origin", &own), json_ct],
            "{}",
        ),
    )
    .await;
    assert_eq!(status, 201, "{chat}");
    let (status, _) = s.post_json("/api/chats", &json!({})).await;
    assert_eq!(status, 201);
    // Another origin's page may send a GET, but gets no CORS header, so cannot read it.
    let (status, _, head) = raw(
        &a,
        &request(
            "GET",
            "/api/chats",
            &[("host", &a), ("origin", "http://evil.example")],
            "",
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    assert_eq!(chat_count(&s).await, 2);
}

async fn websockets_from_foreign_origins_are_refused(kind: Kind) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = TestServer::start(kind).await;
    let a = addr(&s);
    let connect = |origin: Option<String>| {
        let mut req = s.ws_url.as_str().into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    match connect(Some("http://evil.example".into())).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 403);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "forbidden_origin");
        }
        other => panic!(
            "a foreign origin's WebSocket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    assert!(connect(Some("http://localhost:5173".into())).await.is_err());
    assert!(connect(Some(format!("http://{a}"))).await.is_ok());
    assert!(connect(None).await.is_ok());
}

async fn listed_origins_get_cors_access(kind: Kind) {
    let s = TestServer::start_with(
        kind,
        &[("server.allowed_origins", r#"["http://localhost:5173"]"#)],
    )
    .await;
    let a = addr(&s);
    let dev = "http://localhost:5173";
    let (status, _, head) = raw(
        &a,
        &request(
            "OPTIONS",
            "/api/chats",
            &[
                ("host", &a),
                ("origin", dev),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            "",
        ),
    )
    .await;
    assert!(status == 200 || status == 204, "{status} {head}");
    assert!(
        head.contains("access-control-allow-origin: http://localhost:5173"),
        "{head}"
    );
    let (status, _, head) = raw(
        &a,
        &request(
            "POST",
            "/api/chats",
            &[
                ("host", &a),
                ("origin", dev),
                ("content-type", "application/json"),
            ],
            "{}",
        ),
    )
    .await;
    assert_eq!(status, 201);
    assert!(
        head.contains("access-control-allow-origin: http://localhost:5173"),
        "{head}"
    );
    // Others still get nothing.
    let (status, err, head) = raw(
        &a,
        &request(
            "POST",
            "/api/chats",
            &[
                ("host", &a),
                ("origin", "http://localhost:5174"),
                ("content-type", "application/json"),
            ],
            "{}",
        ),
    )
    .await;
    assert_error(status, &err, 403, "forbidden_origin");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
}

/// Waits until the server closes `tcp` (EOF or reset), returning what it sent.
async fn closed_within(tcp: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {limit:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn slow_and_silent_clients_are_dropped_on_time(kind: Kind) {
    let s = TestServer::start_with(
        kind,
        &[
            ("server.header_timeout_s", "1"),
            ("server.body_timeout_s", "1"),
        ],
    )
    .await;
    let a = addr(&s);
    let mut silent = Vec::new();
    let mut partial = Vec::new();
    let mut stalled = Vec::new();
    let mut idle = Vec::new();
    for _ in 0..25 {
        silent.push(TcpStream::connect(&a).await.unwrap());
        let mut p = TcpStream::connect(&a).await.unwrap();
        p.write_all(b"GET /api/health HTTP/1.1\r\nhost: localhost\r\nx-slow: ")
            .await
            .unwrap();
        partial.push(p);
        let mut b = TcpStream::connect(&a).await.unwrap();
        b.write_all(
            b"POST /api/chats HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{",
        )
        .await
        .unwrap();
        stalled.push(b);
        let mut k = TcpStream::connect(&a).await.unwrap();
        k.write_all(b"GET /api/health HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 2048];
        let n = k.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        idle.push(k);
    }
    // With a hundred of them open, the server answers others at once.
    let (status, _) = s.get("/api/health").await;
    assert_eq!(status, 200);
    let limit = Duration::from_secs(6);
    for (what, conns) in [
        ("silent", &mut silent),
        ("partial headers", &mut partial),
        ("idle keep-alive", &mut idle),
    ] {
        for c in conns.iter_mut() {
            closed_within(c, limit)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
    for c in stalled.iter_mut() {
        let out = closed_within(c, limit).await.expect("stalled body");
        let (status, err, _) = parse(&out);
        assert_error(status, &err, 408, "request_timeout");
    }
    assert_eq!(chat_count(&s).await, 0);
    let (status, _) = s.get("/api/health").await;
    assert_eq!(status, 200);
}

async fn connections_beyond_the_cap_get_503(kind: Kind) {
    let s = TestServer::start_with(
        kind,
        &[
            ("server.max_connections", "4"),
            ("server.header_timeout_s", "30"),
        ],
    )
    .await;
    let a = addr(&s);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&a).await.unwrap());
    }
    // Accepted in order: give the server a moment to take the four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, err, _) = raw(&a, &request("GET", "/api/health", &[("host", &a)], "")).await;
    assert_error(status, &err, 503, "too_many_connections");
    drop(held);
    let mut ok = false;
    for _ in 0..50 {
        let (status, _, _) = raw(&a, &request("GET", "/api/health", &[("host", &a)], "")).await;
        if status == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "connections are accepted again once others close");
}

async fn every_rejection_is_json(kind: Kind) {
    let s = TestServer::start(kind).await;
    let a = addr(&s);
    let mut bad_byte = b"GET /api/chats/\xff HTTP/1.1\r\nhost: localhost\r\n\r\n".to_vec();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (std::mem::take(&mut bad_byte), 400, "bad_request"),
        (
            b"GET /api/health HTTP/1.1\r\nhost: localhost\r\nbad header\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            format!(
                "GET /api/chats?x={} HTTP/1.1\r\nhost: localhost\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            format!(
                "GET /api/health HTTP/1.1\r\nhost: localhost\r\nx-big: {}\r\n\r\n",
                "a".repeat(600_000)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            request("PUT", "/api/chats", &[("host", "localhost")], "{}"),
            405,
            "method_not_allowed",
        ),
        (
            request("DELETE", "/chats/123", &[("host", "localhost")], ""),
            405,
            "method_not_allowed",
        ),
        (
            request("POST", "/ws", &[("host", "localhost")], ""),
            405,
            "method_not_allowed",
        ),
        (
            request("GET", "/ws", &[("host", "localhost")], ""),
            400,
            "websocket_required",
        ),
        (
            request("GET", "/assets/gone.js", &[("host", "localhost")], ""),
            404,
            "not_found",
        ),
    ];
    for (req, want, code) in cases {
        let shown = String::from_utf8_lossy(&req[..req.len().min(40)]).to_string();
        let (status, body, head) = raw(&a, &req).await;
        assert_eq!(status, want, "{shown}: {head}");
        assert!(
            head.contains("content-type: application/json"),
            "{shown}: {head}"
        );
        assert_eq!(body["error"]["code"], code, "{shown}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{shown}"
        );
    }
    // The server is unharmed.
    let (status, _) = s.get("/api/health").await;
    assert_eq!(status, 200);
}

async fn write_and_exec_only_inside_workspace_roots(kind: Kind) {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let roots = format!("[{:?}]", root.path().display().to_string());
    let s = TestServer::start_with(kind, &[("agents.workspace_roots", roots.as_str())]).await;
    let ws = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (status, chat) = s
        .post_json(
            "/api/chats",
            &json!({ "workspace": ws(&project), "capabilities": { "write": true, "exec": true } }),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    for (workspace, caps) in [
        (ws(elsewhere.path()), json!({ "write": true })),
        (ws(elsewhere.path()), json!({ "exec": true })),
        ("/".to_string(), json!({ "write": true, "exec": true })),
        // `..` out of the root resolves outside it.
        (format!("{}/..", ws(root.path())), json!({ "write": true })),
    ] {
        let (status, err) = s
            .post_json(
                "/api/chats",
                &json!({ "workspace": workspace, "capabilities": caps }),
            )
            .await;
        assert_error(status, &err, 403, "capability_not_allowed");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("agents.workspace_roots"),
            "{err}"
        );
        let (status, err) = s
            .post_json(
                "/api/workflows/runs",
                &json!({ "script": "export default async () => 1", "workspace": workspace, "capabilities": caps }),
            )
            .await;
        assert_error(status, &err, 403, "capability_not_allowed");
    }
    // Reading elsewhere stays allowed.
    let (status, _) = s
        .post_json("/api/chats", &json!({ "workspace": ws(elsewhere.path()) }))
        .await;
    assert_eq!(status, 201);
    assert_eq!(chat_count(&s).await, 2);
    let (_, runs) = s.get("/api/runs").await;
    assert!(runs["items"].as_array().unwrap().is_empty());
    // A workspace is checked the same way everywhere it is named.
    for path in [
        "/api/workflows?workspace=/etc/passwd",
        "/api/workflows/x?workspace=/nope",
    ] {
        let (status, err) = s.get(path).await;
        assert_error(status, &err, 400, "invalid_workspace");
    }
}

async fn websockets_that_stop_answering_are_closed(kind: Kind) {
    let s = TestServer::start_with(kind, &[("server.ws_ping_s", "0.3")]).await;
    let a = addr(&s);
    // Completes the handshake, then never reads or answers a ping.
    let mut tcp = TcpStream::connect(&a).await.unwrap();
    tcp.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nhost: {a}\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let seen = closed_within(&mut tcp, Duration::from_secs(5))
        .await
        .expect("a silent WebSocket is closed");
    // It was pinged (opcode 0x9) before being given up on.
    assert!(seen.contains(&0x89), "{seen:?}");
    // A client that keeps talking stays connected past several intervals.
    let mut ws = s.ws().await;
    for _ in 0..8 {
        ws.send(json!({ "type": "ping" })).await;
        assert_eq!(ws.next().await["type"], "pong");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[test]
fn a_short_token_on_a_public_bind_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for token in ["short", "                    "] {
        let out = common::baton_command(dir.path())
            .args(["serve", "--bind", "0.0.0.0:0"])
            .env("BATON_AUTH__TOKEN", token)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{token:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("auth.token") && err.contains("baton token"),
            "{err}"
        );
    }
    let fresh = |()| {
        let out = common::baton_command(dir.path())
            .arg("token")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (one, two) = (fresh(()), fresh(()));
    assert_ne!(one, two);
    assert!(one.len() >= 40, "{one}");
    assert!(
        one.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{one}"
    );
    // And a fresh one is accepted there.
    let mut child = common::baton_command(dir.path())
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--database-url",
            "sqlite://t.db",
        ])
        .env("BATON_AUTH__TOKEN", &one)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server runs with a good token"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Postgres keeps JSON numbers as `numeric` and writes the largest doubles back as
/// 309-digit integers; they must still read back, or one run's args would make every
/// listing of runs fail (found by the fuzzing step).
async fn extreme_numbers_are_stored_and_read_back(kind: Kind) {
    let s = TestServer::start(kind).await;
    let args =
        json!({ "max": f64::MAX, "min": -f64::MAX, "tiny": 5e-324, "big": 1.7976931348623155e308 });
    let (status, started) = s
        .post_json(
            "/api/workflows/runs",
            &json!({ "script": "return args", "args": args }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["run_id"].as_str().unwrap();
    let (status, list) = s.get("/api/runs").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["args"], args);
    let run = s
        .wait_for(&format!("/api/runs/{id}"), |v| v["status"] == "completed")
        .await;
    assert_eq!(run["result"], args);
}

/// The component schema a `$ref` names, or the schema itself.
fn deref<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => s,
    }
}

/// What the document declares is what the server enforces, checked at each boundary.
async fn openapi_tells_the_truth(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (_, doc) = s.get("/api/openapi.json").await;
    let op = |path: &str, method: &str| doc["paths"][path][method].clone();
    // Paging limits: declared 1..=500, enforced 1..=500.
    for path in ["/api/chats", "/api/runs"] {
        let limit = op(path, "get")["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()["schema"]
            .clone();
        assert_eq!(
            (limit["minimum"].as_u64(), limit["maximum"].as_u64()),
            (Some(1), Some(500)),
            "{path}: {limit}"
        );
        for (n, ok) in [(0, false), (1, true), (500, true), (501, false)] {
            let (status, _) = s.get(&format!("{path}?limit={n}")).await;
            assert_eq!(status == 200, ok, "{path}?limit={n}");
        }
    }
    // Body constraints.
    let body_schema = |path: &str| {
        let s = &op(path, "post")["requestBody"];
        assert_eq!(s["required"], true, "{path}");
        deref(&doc, &s["content"]["application/json"]["schema"]).clone()
    };
    let chat = body_schema("/api/chats");
    assert_eq!(chat["properties"]["title"]["maxLength"], 200, "{chat}");
    assert!(chat["properties"]["title"]["pattern"].is_string(), "{chat}");
    for (title, want) in [
        ("x".repeat(200), 201),
        ("x".repeat(201), 400),
        ("a\u{7}b".into(), 400),
    ] {
        let (status, _) = s.post_json("/api/chats", &json!({ "title": title })).await;
        assert_eq!(status, want, "title of {} chars", title.chars().count());
    }
    let message = body_schema("/api/chats/{id}/messages");
    let content = &message["properties"]["content"];
    assert_eq!(
        (content["minLength"].as_u64(), content["maxLength"].as_u64()),
        (Some(1), Some(200_000))
    );
    assert_eq!(message["required"], json!(["content"]));
    let chat_id = s.create_chat("truth").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The longest message fits in a body however its JSON escapes it (6 bytes a char
    // here); one character more is refused for its length, not its size.
    for (n, want) in [(200_001, 400), (200_000, 202)] {
        let body = format!(r#"{{"content":"{}"}}"#, "\\u0093".repeat(n)).into_bytes();
        let (status, err) = s
            .post_raw(
                &format!("/api/chats/{chat_id}/messages"),
                Some("application/json"),
                body,
            )
            .await;
        assert_eq!(status, want, "{n} escaped characters: {err}");
    }
    for content in ["".to_string(), "   ".into(), "x".repeat(200_001)] {
        let (status, err) = s
            .post_json(
                &format!("/api/chats/{chat_id}/messages"),
                &json!({ "content": content }),
            )
            .await;
        assert_error(status, &err, 400, "invalid_content");
    }
    for path in ["/api/workflows/runs", "/api/workflows/{name}/runs"] {
        let b = body_schema(path);
        let c = &b["properties"]["concurrency"];
        assert_eq!(
            (c["minimum"].as_u64(), c["maximum"].as_u64()),
            (Some(1), Some(256)),
            "{path}: {b}"
        );
    }
    assert_eq!(
        body_schema("/api/workflows/runs")["required"],
        json!(["script"])
    );
    for conc in [0, 257] {
        let (status, _) = s
            .post_json(
                "/api/workflows/runs",
                &json!({ "script": "return 1", "concurrency": conc }),
            )
            .await;
        assert_eq!(status, 400, "concurrency {conc}");
    }
    let (status, _) = s.post_json("/api/workflows/runs", &json!({})).await;
    assert_eq!(status, 400, "script is required");
    // Every body is required, and every operation lists 403 (Host and Origin checks).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, o) in item.as_object().unwrap() {
            if path == "/ws" || path == "/api/openapi.json" {
                continue;
            }
            assert!(
                o["responses"]["403"].is_object(),
                "{method} {path} lists no 403"
            );
            assert!(
                o["responses"]["401"].is_null(),
                "{method} {path}: no token, no 401"
            );
            if o["requestBody"].is_object() {
                for code in ["400", "408", "413"] {
                    assert!(
                        o["responses"][code].is_object(),
                        "{method} {path} lists no {code}"
                    );
                }
            }
        }
    }
    // The WebSocket's refusals are documented and happen.
    for code in ["101", "400", "401", "403"] {
        assert!(
            doc["paths"]["/ws"]["get"]["responses"][code].is_object(),
            "/ws {code}"
        );
    }
    let (status, _) = s.get("/ws").await;
    assert_eq!(status, 400);
    // Without a token nothing asks for one; with one, every operation does.
    assert!(doc["security"].is_null());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let t = TestServer::start_with(kind, &[("auth.token", "truth-token-0123456789")]).await;
    let r = t
        .http
        .get(t.url("/api/openapi.json"))
        .bearer_auth("truth-token-0123456789")
        .send()
        .await
        .unwrap();
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["security"], json!([{ "bearer": [] }]));
    assert!(doc["paths"]["/api/chats"]["get"]["responses"]["401"].is_object());
    let (status, _) = t.get("/api/chats").await;
    assert_eq!(status, 401);
}
