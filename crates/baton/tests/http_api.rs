//! The REST API over a real listener, on both backends.
mod common;

use baton_core::{time, ChatId};
use baton_testkit::{fixtures, Kind};
use common::{assert_error, TestServer};
use serde_json::{json, Value};

on_both!(
    health_names_the_backend,
    chats_are_created_listed_and_fetched,
    bad_chat_input_is_rejected_and_nothing_is_lost,
    oversized_bodies_get_413,
    ids_must_be_uuids_and_exist,
    traces_page_through_the_cursor_in_order,
    bad_limits_and_forged_cursors_are_400,
    messages_list_oldest_first,
    messages_page_from_the_newest_back_and_forward,
    unknown_api_paths_and_methods_use_the_error_shape,
    other_paths_serve_the_web_app,
    openapi_lists_every_route,
    bearer_token_guards_api_and_ws,
);

async fn health_names_the_backend(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (status, body) = s.get("/api/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let want = match kind {
        Kind::Sqlite => "sqlite",
        Kind::Postgres => "postgres",
    };
    assert_eq!(body["database"], want);
}

async fn chats_are_created_listed_and_fetched(kind: Kind) {
    let s = TestServer::start(kind).await;
    let dir = std::env::temp_dir();
    let (status, chat) = s
        .post_json(
            "/api/chats",
            &json!({ "title": "  audit  ", "workspace": dir.to_str().unwrap() }),
        )
        .await;
    assert_eq!(status, 201, "{chat}");
    assert_eq!(chat["title"], "audit");
    assert_eq!(
        chat["workspace"],
        dir.canonicalize().unwrap().to_str().unwrap()
    );
    // An empty object is a chat with the default title.
    let (status, untitled) = s.post_json("/api/chats", &json!({})).await;
    assert_eq!(status, 201, "{untitled}");
    assert_eq!(untitled["title"], "New chat");
    assert!(untitled["workspace"].is_null());

    let (status, got) = s
        .get(&format!("/api/chats/{}", chat["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(got, chat);

    for i in 0..3 {
        s.create_chat(&format!("c{i}")).await;
    }
    let (_, page1) = s.get("/api/chats?limit=2").await;
    assert_eq!(titles(&page1), ["c2", "c1"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = s.get(&format!("/api/chats?limit=2&cursor={cursor}")).await;
    assert_eq!(titles(&page2), ["c0", "New chat"]);
    let cursor = page2["next_cursor"].as_str().unwrap();
    let (_, page3) = s.get(&format!("/api/chats?limit=2&cursor={cursor}")).await;
    assert_eq!(titles(&page3), ["audit"]);
    assert!(page3["next_cursor"].is_null());
}

fn titles(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect()
}

async fn bad_chat_input_is_rejected_and_nothing_is_lost(kind: Kind) {
    let s = TestServer::start(kind).await;
    let keep = s.create_chat("keep").await;
    let json_ct = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (json_ct, b"{\"title\": ".to_vec(), "invalid_json"),
        (json_ct, b"not json".to_vec(), "invalid_json"),
        (json_ct, b"[1,2]".to_vec(), "invalid_body"),
        (json_ct, br#"{"title": 5}"#.to_vec(), "invalid_body"),
        (
            json_ct,
            br#"{"title": "x", "extra": true}"#.to_vec(),
            "invalid_body",
        ),
        (
            json_ct,
            br#"{"title": "bell\u0007"}"#.to_vec(),
            "invalid_title",
        ),
        (
            json_ct,
            br#"{"title": "nul\u0000"}"#.to_vec(),
            "invalid_title",
        ),
        (
            json_ct,
            format!(r#"{{"title": "{}"}}"#, "x".repeat(201)).into_bytes(),
            "invalid_title",
        ),
        (
            json_ct,
            br#"{"workspace": "/definitely/not/here"}"#.to_vec(),
            "invalid_workspace",
        ),
        (
            json_ct,
            br#"{"workspace": "/etc/hostname"}"#.to_vec(),
            "invalid_workspace",
        ),
        (json_ct, vec![0xff, 0xfe, 0x00], "invalid_json"),
        (json_ct, b"{\xff}".to_vec(), "invalid_json"),
        (
            Some("text/plain"),
            br#"{"title": "x"}"#.to_vec(),
            "bad_content_type",
        ),
        (None, br#"{"title": "x"}"#.to_vec(), "bad_content_type"),
        // What a plain HTML form on another site can send.
        (None, vec![], "bad_content_type"),
        (
            Some("application/x-www-form-urlencoded"),
            b"title=x".to_vec(),
            "bad_content_type",
        ),
        (
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
            "bad_content_type",
        ),
        (json_ct, vec![], "missing_body"),
        (json_ct, b"  \n".to_vec(), "missing_body"),
        (json_ct, b"[null, null]".to_vec(), "invalid_body"),
        (json_ct, b"null".to_vec(), "invalid_body"),
        (json_ct, b"{} {}".to_vec(), "invalid_json"),
        (
            json_ct,
            br#"{"title": "a"} trailing"#.to_vec(),
            "invalid_json",
        ),
    ];
    for (ct, body, code) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let (status, err) = s.post_raw("/api/chats", ct, body).await;
        assert_eq!(status, 400, "{shown}: {err}");
        assert_eq!(err["error"]["code"], code, "{shown}: {err}");
    }
    let (_, list) = s.get("/api/chats").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0], keep);
}

async fn oversized_bodies_get_413(kind: Kind) {
    let s = TestServer::start_with(kind, &[("server.max_body_bytes", "4096")]).await;
    let big = json!({ "title": "x".repeat(10_000) });
    let (status, err) = s.post_json("/api/chats", &big).await;
    assert_error(status, &err, 413, "payload_too_large");
    // Without a Content-Length: a chunked body that grows past the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..10).map(|_| Ok(vec![b' '; 1000])).collect();
    let r = s
        .http
        .post(s.url("/api/chats"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let (_, list) = s.get("/api/chats").await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

async fn ids_must_be_uuids_and_exist(kind: Kind) {
    let s = TestServer::start(kind).await;
    for path in [
        "/api/chats/42",
        "/api/chats/not-a-uuid/messages",
        "/api/chats/%00/traces",
    ] {
        let (status, err) = s.get(path).await;
        assert_error(status, &err, 400, "invalid_id");
    }
    // One id, one spelling: the braced, URN and unhyphenated forms of a real chat's id
    // do not name it.
    let chat = s.create_chat("spelled once").await;
    let id = chat["id"].as_str().unwrap();
    for other in [
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        id.replace('-', ""),
    ] {
        let (status, err) = s.get(&format!("/api/chats/{other}")).await;
        assert_error(status, &err, 400, "invalid_id");
    }
    let missing = ChatId::new();
    for path in [
        format!("/api/chats/{missing}"),
        format!("/api/chats/{missing}/messages"),
        format!("/api/chats/{missing}/traces"),
    ] {
        let (status, err) = s.get(&path).await;
        assert_error(status, &err, 404, "not_found");
    }
}

async fn traces_page_through_the_cursor_in_order(kind: Kind) {
    let s = TestServer::start(kind).await;
    let chat = s.create_chat("traced").await;
    let chat_id: ChatId = chat["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/chats/{chat_id}/traces");
    let (status, empty) = s.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(empty, json!({ "items": [], "next_cursor": null }));

    let base = time::now();
    let mut traces: Vec<_> = (0..250i64)
        .map(|i| {
            fixtures::trace(
                chat_id,
                (i * 3) % 4,
                base + chrono::Duration::microseconds(i % 5),
            )
        })
        .collect();
    traces.push(fixtures::running_llm_trace(chat_id, 4));
    s.state.store.insert_traces(&traces).await.unwrap();
    traces.sort_by_key(|t| (t.turn_number, t.started_at, t.id));

    let mut seen = Vec::new();
    let mut next = format!("{path}?limit=60");
    loop {
        let (status, page) = s.get(&next).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => next = format!("{path}?limit=60&cursor={c}"),
            None => break,
        }
    }
    let want: Vec<String> = traces.iter().map(|t| t.id.to_string()).collect();
    assert_eq!(seen, want);
    // The default page is 100 and a page that ends exactly at the end says so.
    let (_, page) = s.get(&path).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    let (_, all) = s.get(&format!("{path}?limit=251")).await;
    assert!(all["next_cursor"].is_null());
    let running = all["items"].as_array().unwrap().last().unwrap();
    assert_eq!(running["outcome"], "running");
    assert!(running["finished_at"].is_null());
}

async fn bad_limits_and_forged_cursors_are_400(kind: Kind) {
    let s = TestServer::start(kind).await;
    let chat = s.create_chat("c").await;
    let path = format!("/api/chats/{}/traces", chat["id"].as_str().unwrap());
    for q in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=99999999999",
    ] {
        let (status, err) = s.get(&format!("{path}?{q}")).await;
        assert_eq!(status, 400, "{q}: {err}");
        assert!(
            ["invalid_limit", "invalid_query"].contains(&err["error"]["code"].as_str().unwrap()),
            "{q}: {err}"
        );
    }
    let (status, err) = s.get(&format!("{path}?bogus=1")).await;
    assert_error(status, &err, 400, "invalid_query");
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for cursor in [
        "garbage".to_string(),
        "%F0%9F%92%A9".to_string(),
        b64("{}"),
        b64(r#"{"v":1,"t":0,"s":-999999999999999999,"i":"00000000-0000-0000-0000-000000000000"}"#),
        b64(r#"{"v":1,"t":-5,"s":0,"i":"00000000-0000-0000-0000-000000000000"}"#),
        "A".repeat(5000),
    ] {
        let (status, err) = s.get(&format!("{path}?cursor={cursor}")).await;
        assert_error(status, &err, 400, "invalid_cursor");
    }
    let (status, err) = s.get("/api/chats?cursor=nope").await;
    assert_error(status, &err, 400, "invalid_cursor");
}

async fn messages_list_oldest_first(kind: Kind) {
    let s = TestServer::start(kind).await;
    let chat = s.create_chat("m").await;
    let id: ChatId = chat["id"].as_str().unwrap().parse().unwrap();
    for (i, content) in ["first", "second"].iter().enumerate() {
        s.state
            .store
            .insert_message(baton_core::NewMessage {
                chat_id: id,
                role: baton_core::Role::User,
                content: content.to_string(),
                attachments: vec![],
                turn_number: i as i64,
            })
            .await
            .unwrap();
    }
    let (status, page) = s.get(&format!("/api/chats/{id}/messages")).await;
    assert_eq!(status, 200);
    let contents: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["first", "second"]);
    assert_eq!(page["items"][0]["role"], "user");
}

async fn messages_page_from_the_newest_back_and_forward(kind: Kind) {
    let s = TestServer::start(kind).await;
    let chat = s.create_chat("long").await;
    let id: ChatId = chat["id"].as_str().unwrap().parse().unwrap();
    let mut ids = Vec::new();
    for i in 1..=7 {
        let m = s
            .state
            .store
            .insert_message(baton_core::NewMessage {
                chat_id: id,
                role: baton_core::Role::User,
                content: format!("m{i}"),
                attachments: vec![],
                turn_number: i,
            })
            .await
            .unwrap();
        ids.push(m.id.to_string());
    }
    let page = |q: String| {
        let s = &s;
        async move {
            let (status, page) = s.get(&format!("/api/chats/{id}/messages{q}")).await;
            assert_eq!(status, 200, "{page}");
            let contents: Vec<String> = page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["content"].as_str().unwrap().to_string())
                .collect();
            (contents, page["next_cursor"].as_str().map(str::to_string))
        }
    };
    // Opening at the newest, then scrolling up.
    let (newest, older) = page("?limit=3".into()).await;
    assert_eq!(newest, ["m5", "m6", "m7"]);
    assert_eq!(older.as_deref(), Some(ids[4].as_str()));
    let (before, older) = page(format!("?limit=3&before={}", older.unwrap())).await;
    assert_eq!(before, ["m2", "m3", "m4"]);
    let (first, older) = page(format!("?limit=3&before={}", older.unwrap())).await;
    assert_eq!((first, older), (vec!["m1".to_string()], None));
    // Forwards from a message.
    let (after, next) = page(format!("?limit=3&cursor={}", ids[0])).await;
    assert_eq!(after, ["m2", "m3", "m4"]);
    let (rest, next) = page(format!("?limit=3&cursor={}", next.unwrap())).await;
    assert_eq!(
        (rest, next),
        (vec!["m5".into(), "m6".into(), "m7".into()], None)
    );
    // Unpaged, as before.
    let (all, none) = page(String::new()).await;
    assert_eq!((all.len(), none), (7, None));

    // Bad anchors are refused; nothing changes.
    let other = s.create_chat("other").await;
    let other_id = other["id"].as_str().unwrap();
    for (q, code) in [
        ("?cursor=nope".to_string(), "invalid_cursor"),
        (
            format!("?before={}", baton_core::MessageId::new()),
            "invalid_cursor",
        ),
        (
            format!("?cursor={}&before={}", ids[0], ids[1]),
            "invalid_cursor",
        ),
        ("?limit=0".to_string(), "invalid_limit"),
        ("?limit=501".to_string(), "invalid_limit"),
        ("?page=2".to_string(), "invalid_query"),
    ] {
        let (status, err) = s.get(&format!("/api/chats/{id}/messages{q}")).await;
        assert_error(status, &err, 400, code);
    }
    let (status, err) = s
        .get(&format!("/api/chats/{other_id}/messages?cursor={}", ids[0]))
        .await;
    assert_error(status, &err, 400, "invalid_cursor");
    assert_eq!(page(String::new()).await.0.len(), 7);
}

async fn unknown_api_paths_and_methods_use_the_error_shape(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (status, err) = s.get("/api/nope").await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.get("/api").await;
    assert_error(status, &err, 404, "not_found");
    let r = s.http.delete(s.url("/api/chats")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

async fn other_paths_serve_the_web_app(kind: Kind) {
    let s = TestServer::start(kind).await;
    for path in ["/", "/chats/123", "/runs/abc/agents"] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains("<title>Baton</title>"));
        assert!(page.contains("<div id=\"app\">"));
    }
    // The page's own bundle is served, cacheable forever since its name carries a hash.
    let page = s
        .http
        .get(s.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let r = s.http.get(s.url(&script)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // A missing bundle is a 404, not the page: a stale tab must not run HTML as script.
    let r = s
        .http
        .get(s.url("/assets/index-gone.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = s.http.post(s.url("/chats/123")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
}

async fn openapi_lists_every_route(kind: Kind) {
    let s = TestServer::start(kind).await;
    let (status, doc) = s.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/health", "get"),
        ("/api/chats", "post"),
        ("/api/chats", "get"),
        ("/api/chats/{id}", "get"),
        ("/api/chats/{id}/messages", "get"),
        ("/api/chats/{id}/traces", "get"),
        ("/api/sessions/{id}/traces", "get"),
        ("/api/sessions/{id}/turns", "get"),
        ("/api/attachments", "post"),
        ("/api/attachments/{id}", "get"),
        ("/api/attachments/{id}/thumbnail", "get"),
        ("/api/openapi.json", "get"),
        ("/ws", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let traces = &paths["/api/chats/{id}/traces"]["get"];
    let params: Vec<&str> = traces["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        ["id", "cursor", "kind", "limit", "min_ms", "q", "status", "tool"]
    );
    // Every $ref resolves inside the document.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    assert!(doc["components"]["schemas"]["Trace"]["properties"]["cache_write_tokens"].is_object());
}

async fn bearer_token_guards_api_and_ws(kind: Kind) {
    let s = TestServer::start_with(kind, &[("auth.token", "s3cret-token")]).await;
    // The scheme is case-insensitive.
    for scheme in ["BEARER", "bearer", "Bearer", "bEaReR"] {
        let r = s
            .http
            .get(s.url("/api/health"))
            .header("authorization", format!("{scheme} s3cret-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    let (status, err) = s.get("/api/health").await;
    assert_error(status, &err, 401, "unauthorized");
    let r = s
        .http
        .get(s.url("/api/health"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = s
        .http
        .get(s.url("/api/health"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The token in a query string is only for the WebSocket.
    let r = s
        .http
        .get(s.url("/api/health?token=s3cret-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The web app itself is public.
    let r = s.http.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);

    assert!(common::Ws::connect(&s.ws_url, None).await.is_err());
    assert!(
        common::Ws::connect(&format!("{}?token=wrong", s.ws_url), None)
            .await
            .is_err()
    );
    let mut ws = common::Ws::connect(&format!("{}?token=s3cret-token", s.ws_url), None)
        .await
        .unwrap();
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");
    let mut ws = common::Ws::connect(&s.ws_url, Some("s3cret-token"))
        .await
        .unwrap();
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");

    // A token with `+`, `/` and `=`, as the web app sends it (encodeURIComponent).
    let token = "a+b/c=d+e/f=g+h/i==";
    let s = TestServer::start_with(kind, &[("auth.token", token)]).await;
    let encoded = "a%2Bb%2Fc%3Dd%2Be%2Ff%3Dg%2Bh%2Fi%3D%3D";
    let mut ws = common::Ws::connect(&format!("{}?token={encoded}", s.ws_url), None)
        .await
        .expect("a percent-encoded token is decoded");
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.next().await["type"], "pong");
    assert!(
        common::Ws::connect(&format!("{}?token={}", s.ws_url, &encoded[..20]), None)
            .await
            .is_err()
    );
}

/// The web app's types are generated from `web/src/generated/openapi.json`
/// (`scripts/gen-types`): a change to a type the API or a frame carries must come with
/// the regenerated document, or the web app would be checked against an old contract.
#[test]
fn the_web_apps_contract_is_the_servers_document() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../web/src/generated/openapi.json");
    let checked_in = std::fs::read_to_string(&path).expect("web/src/generated/openapi.json");
    assert!(
        checked_in == baton::openapi_document(),
        "web/src/generated/openapi.json differs from the server's document: run scripts/gen-types and commit the result"
    );
}
