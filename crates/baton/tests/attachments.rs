//! Images people attach, through the real server on both backends: what an upload must be,
//! how it is kept and served (from any instance sharing the store), and how the images
//! reach the scripted model in both wire formats — or a text-only model through
//! `vision_model`'s descriptions.
mod common;

use std::io::Cursor;

use baton_mock_model::{MockModel, Reply};
use baton_testkit::Kind;
use common::{assert_error, mock_settings, TestServer};
use serde_json::{json, Value};

on_both!(
    uploads_are_sniffed_measured_and_refused_when_hostile,
    the_same_bytes_are_kept_once_and_served_with_a_thumbnail,
    images_reach_the_model_in_order_on_every_later_turn,
    a_text_only_model_refuses_images_unless_a_vision_model_describes_them,
    attachments_no_message_names_are_removed_after_their_time,
);

fn encoded(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 200]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    encoded(w, h, image::ImageFormat::Png)
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (!(crc & 1)).wrapping_add(1));
        }
    }
    !crc
}

/// A PNG whose header claims 60,000 × 60,000 pixels (3.6 billion) over a few bytes: a
/// decompression bomb's shape.
fn bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(60_000u32.to_be_bytes());
    chunk.extend(60_000u32.to_be_bytes());
    chunk.extend([8, 2, 0, 0, 0]);
    out.extend(13u32.to_be_bytes());
    out.extend(&chunk);
    out.extend(crc32(&chunk).to_be_bytes());
    let mut idat = b"IDAT".to_vec();
    idat.extend([0x78, 0x9c, 0x03, 0x00]);
    out.extend(4u32.to_be_bytes());
    out.extend(&idat);
    out.extend(crc32(&idat).to_be_bytes());
    out
}

/// A `multipart/form-data` body with one field.
fn multipart(field: &str, filename: &str, declared: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----baton-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {declared}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload_as(s: &TestServer, filename: &str, declared: &str, bytes: &[u8]) -> (u16, Value) {
    let (ct, body) = multipart("file", filename, declared, bytes);
    s.post_raw("/api/attachments", Some(&ct), body).await
}

async fn upload(s: &TestServer, bytes: &[u8]) -> Value {
    let (status, a) = upload_as(s, "shot.png", "image/png", bytes).await;
    assert_eq!(status, 201, "{a}");
    a
}

async fn uploads_are_sniffed_measured_and_refused_when_hostile(kind: Kind) {
    let s = TestServer::start_with(kind, &[("attachments.max_bytes", "200000")]).await;
    // A PNG named .jpg and declared as a JPEG is a PNG.
    let (status, a) = upload_as(&s, "photo.jpg", "image/jpeg", &png(64, 48)).await;
    assert_eq!(status, 201, "{a}");
    assert_eq!(
        (
            a["mime"].as_str(),
            a["width"].as_i64(),
            a["height"].as_i64()
        ),
        (Some("image/png"), Some(64), Some(48))
    );
    let jpeg = encoded(30, 20, image::ImageFormat::Jpeg);
    let (_, j) = upload_as(&s, "x.png", "image/png", &jpeg).await;
    assert_eq!(j["mime"], "image/jpeg");
    let (_, g) = upload_as(
        &s,
        "x",
        "application/octet-stream",
        &encoded(5, 5, image::ImageFormat::Gif),
    )
    .await;
    assert_eq!(g["mime"], "image/gif");
    let (_, w) = upload_as(&s, "x", "", &encoded(5, 5, image::ImageFormat::WebP)).await;
    assert_eq!(w["mime"], "image/webp");

    // Text named .png, an empty file, a truncated image, a bomb.
    let (status, e) = upload_as(&s, "notes.png", "image/png", b"just some notes\n").await;
    assert_error(status, &e, 400, "not_an_image");
    let (status, e) = upload_as(&s, "empty.png", "image/png", b"").await;
    assert_error(status, &e, 400, "not_an_image");
    let whole = png(120, 120);
    let (status, e) = upload_as(&s, "cut.png", "image/png", &whole[..whole.len() / 2]).await;
    assert_error(status, &e, 400, "broken_image");
    let (status, e) = upload_as(&s, "bomb.png", "image/png", &bomb()).await;
    assert_error(status, &e, 400, "image_too_large");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("60000×60000"),
        "{e}"
    );

    // Over the byte limit: 413 in the JSON shape, the whole body read first.
    let big: Vec<u8> = png(8, 8)
        .into_iter()
        .chain(std::iter::repeat_n(7u8, 300_000))
        .collect();
    let (status, e) = upload_as(&s, "big.png", "image/png", &big).await;
    assert_error(status, &e, 413, "payload_too_large");

    // Not multipart, no `file` field, two files.
    let (status, e) = s
        .post_raw("/api/attachments", Some("image/png"), png(4, 4))
        .await;
    assert_error(status, &e, 400, "bad_content_type");
    let (ct, body) = multipart("picture", "a.png", "image/png", &png(4, 4));
    let (status, e) = s.post_raw("/api/attachments", Some(&ct), body).await;
    assert_error(status, &e, 400, "missing_file");
    let (ct, mut body) = multipart("file", "a.png", "image/png", &png(4, 4));
    let (_, second) = multipart("file", "b.png", "image/png", &png(5, 5));
    body.truncate(body.len() - "--\r\n".len());
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(&second[second.iter().position(|&b| b == b'\r').unwrap() + 2..]);
    let (status, e) = s.post_raw("/api/attachments", Some(&ct), body).await;
    assert_error(status, &e, 400, "bad_multipart");

    // What was accepted before is still served, unchanged.
    let id = a["id"].as_str().unwrap();
    let r = s
        .http
        .get(s.url(&format!("/api/attachments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), png(64, 48));
    let (status, e) = s
        .get(&format!(
            "/api/attachments/{}",
            baton_core::AttachmentId::new()
        ))
        .await;
    assert_error(status, &e, 404, "not_found");
    let (status, e) = s.get("/api/attachments/not-an-id/thumbnail").await;
    assert_error(status, &e, 400, "invalid_id");
}

async fn the_same_bytes_are_kept_once_and_served_with_a_thumbnail(kind: Kind) {
    let s = TestServer::start(kind).await;
    let bytes = encoded(1024, 512, image::ImageFormat::Jpeg);
    let a = upload(&s, &bytes).await;
    let again = upload(&s, &bytes).await;
    assert_eq!(a, again, "the same bytes answer the same attachment");
    assert_eq!(a["size"].as_u64().unwrap() as usize, bytes.len());
    assert_eq!(a["sha256"].as_str().unwrap().len(), 64);
    let id = a["id"].as_str().unwrap();

    let r = s
        .http
        .get(s.url(&format!("/api/attachments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let r = s
        .http
        .get(s.url(&format!("/api/attachments/{id}")))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    let r = s
        .http
        .get(s.url(&format!("/api/attachments/{id}/thumbnail")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let thumb = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 128));

    if kind == Kind::Postgres {
        // Another instance sharing the database serves the same bytes.
        let other = TestServer::join(&s, &[]).await;
        let r = other
            .http
            .get(other.url(&format!("/api/attachments/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
        let r = other
            .http
            .get(other.url(&format!("/api/attachments/{id}/thumbnail")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

async fn ask(s: &TestServer, chat: &str, body: Value) -> Value {
    let (status, posted) = s
        .post_json(&format!("/api/chats/{chat}/messages"), &body)
        .await;
    assert_eq!(status, 202, "{posted}");
    let session = posted["session_id"].as_str().unwrap().to_string();
    s.wait_for(&format!("/api/sessions/{session}"), |v| {
        v["status"].as_str().is_some_and(|st| st != "running")
    })
    .await
}

/// The images of each user message of a recorded request, as (mime, base64) pairs.
fn images_in(flavor: &str, body: &Value) -> Vec<Vec<(String, String)>> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| {
            m["content"]
                .as_array()
                .map(|parts| {
                    parts
                        .iter()
                        .filter_map(|p| match flavor {
                            "anthropic" if p["type"] == "image" => Some((
                                p["source"]["media_type"].as_str().unwrap().to_string(),
                                p["source"]["data"].as_str().unwrap().to_string(),
                            )),
                            "openai" if p["type"] == "image_url" => {
                                let url = p["image_url"]["url"].as_str().unwrap();
                                let (head, data) = url.split_once(";base64,").unwrap();
                                Some((
                                    head.trim_start_matches("data:").to_string(),
                                    data.to_string(),
                                ))
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn images_reach_the_model_in_order_on_every_later_turn(kind: Kind) {
    for flavor in ["openai", "anthropic"] {
        let mock = MockModel::start().await;
        let mut settings = mock_settings(&mock, flavor);
        settings.push(("models.mock-1.vision".into(), "true".into()));
        let s = TestServer::start_owned(kind, settings).await;
        let first = png(40, 30);
        let second = encoded(50, 20, image::ImageFormat::Jpeg);
        let (a, b) = (upload(&s, &first).await, upload(&s, &second).await);
        let chat = s.create_chat("pictures").await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let done = ask(
            &s,
            &chat,
            json!({ "content": "what differs?", "attachments": [b["id"], a["id"]] }),
        )
        .await;
        assert_eq!(done["status"], "idle", "{flavor}: {done}");
        ask(&s, &chat, json!({ "content": "and now?" })).await;

        let reqs = mock.requests();
        assert_eq!(reqs.len(), 2, "{flavor}");
        let want = vec![
            ("image/jpeg".to_string(), b64(&second)),
            ("image/png".to_string(), b64(&first)),
        ];
        assert_eq!(
            images_in(flavor, &reqs[0].body),
            vec![want.clone()],
            "{flavor}"
        );
        // The later turn sends the history with the images, then the new question.
        assert_eq!(
            images_in(flavor, &reqs[1].body),
            vec![want, vec![]],
            "{flavor}"
        );

        // The message names its attachments; the trace keeps ids, not bytes.
        let (_, page) = s.get(&format!("/api/chats/{chat}/messages")).await;
        assert_eq!(page["items"][0]["attachments"], json!([b["id"], a["id"]]));
        let (_, traces) = s.get(&format!("/api/chats/{chat}/traces")).await;
        let llm = &traces["items"][0];
        assert!(
            !llm["input"].to_string().contains(&b64(&first)[..40]),
            "{llm}"
        );
        assert_eq!(llm["meta"]["cache"]["segments"][3]["images"], 2, "{llm}");

        // Unknown ids are refused, and nothing is stored for them.
        let ghost = baton_core::AttachmentId::new().to_string();
        let (status, e) = s
            .post_json(
                &format!("/api/chats/{chat}/messages"),
                &json!({ "content": "this?", "attachments": [ghost] }),
            )
            .await;
        assert_error(status, &e, 400, "invalid_attachment");
        assert!(e["error"]["message"].as_str().unwrap().contains(&ghost));
        let (_, page) = s.get(&format!("/api/chats/{chat}/messages")).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 4);
    }
}

async fn a_text_only_model_refuses_images_unless_a_vision_model_describes_them(kind: Kind) {
    let mock = MockModel::start().await;
    let s = TestServer::start_owned(kind, mock_settings(&mock, "openai")).await;
    let shot = upload(&s, &png(16, 16)).await;
    let chat = s.create_chat("blind").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, e) = s
        .post_json(
            &format!("/api/chats/{chat}/messages"),
            &json!({ "content": "what is this?", "attachments": [shot["id"]] }),
        )
        .await;
    assert_error(status, &e, 400, "text_only_model");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'mock-1'") && msg.contains("vision = true") && msg.contains("vision_model"),
        "{msg}"
    );
    let (_, page) = s.get(&format!("/api/chats/{chat}/messages")).await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "nothing stored: {page}"
    );
    assert_eq!(mock.count(), 0);
    drop(s);

    // With a vision model to describe images, the text-only model gets the description.
    let mock = MockModel::start().await;
    mock.rule(
        "Describe this image",
        Reply::text("A tiny gradient square labelled BATON."),
    );
    let mut settings = mock_settings(&mock, "openai");
    settings.extend([
        ("models.eyes.provider".to_string(), "mock".to_string()),
        ("models.eyes.vision".to_string(), "true".to_string()),
        ("agents.vision_model".to_string(), "eyes".to_string()),
    ]);
    let s = TestServer::start_owned(kind, settings).await;
    let shot = upload(&s, &png(16, 16)).await;
    let chat = s.create_chat("relayed").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = ask(
        &s,
        &chat,
        json!({ "content": "what is this?", "attachments": [shot["id"]] }),
    )
    .await;
    assert_eq!(done["status"], "idle", "{done}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["model"], "eyes");
    assert_eq!(
        images_in("openai", &reqs[0].body),
        vec![vec![("image/png".to_string(), b64(&png(16, 16)))]]
    );
    assert_eq!(reqs[1].body["model"], "mock-1");
    assert!(images_in("openai", &reqs[1].body).iter().all(Vec::is_empty));
    let asked = reqs[1].body["messages"].to_string();
    assert!(
        asked.contains("A tiny gradient square labelled BATON."),
        "{asked}"
    );
    // The description is its own traced call.
    let (_, traces) = s.get(&format!("/api/chats/{chat}/traces")).await;
    let names: Vec<&str> = traces["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eyes", "mock-1"]);

    // The same image in another chat is described from the store, not asked again.
    let other = s.create_chat("again").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    ask(
        &s,
        &other,
        json!({ "content": "and this?", "attachments": [shot["id"]] }),
    )
    .await;
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[2].body["model"], "mock-1");
    assert!(reqs[2].body["messages"]
        .to_string()
        .contains("labelled BATON"));
}

async fn attachments_no_message_names_are_removed_after_their_time(kind: Kind) {
    let mock = MockModel::start().await;
    let mut settings = mock_settings(&mock, "openai");
    settings.extend([
        ("models.mock-1.vision".to_string(), "true".to_string()),
        ("attachments.orphan_ttl_s".to_string(), "1".to_string()),
        ("cluster.sweep_s".to_string(), "0.2".to_string()),
    ]);
    let s = TestServer::start_owned(kind, settings).await;
    let kept = upload(&s, &png(12, 12)).await;
    let orphan = upload(&s, &png(13, 13)).await;
    let chat = s.create_chat("keeps one").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    ask(
        &s,
        &chat,
        json!({ "content": "look", "attachments": [kept["id"]] }),
    )
    .await;
    let gone = format!("/api/attachments/{}", orphan["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = s.get(&gone).await;
        if status == 404 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan is still served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = s
        .http
        .get(s.url(&format!(
            "/api/attachments/{}",
            kept["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the one a message names stays");
}
