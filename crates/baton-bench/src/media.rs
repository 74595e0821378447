//! Images and the prompt cache. (1) A 16-agent fan-out whose agents share a request
//! prefix, against the scripted model with a prefix cache that holds a prompt only once
//! it has been processed (150 ms after it arrived): the share of the siblings' input
//! tokens read from the cache, with Baton holding siblings for the first one's cache and
//! without (the baseline, `[limits] prefix_stagger_ms = 0`). (2) Uploading a 10 MB JPEG
//! through `POST /api/attachments` (sniffed, measured, decoded once for the thumbnail,
//! stored in SQLite), beside a baseline of posting the same bytes to an endpoint that
//! reads and drops them.
use std::io::Cursor;
use std::time::{Duration, Instant};

use baton_mock_model::MockModel;
use baton_store::TraceScope;
use baton_testkit::{Kind, TestDb};
use baton_workflow::StartRequest;
use serde_json::json;

const SIBLINGS: usize = 16;
const PREFILL: Duration = Duration::from_millis(150);

async fn cached_share(hold: bool) -> anyhow::Result<(f64, Duration)> {
    let db = TestDb::new(Kind::Sqlite).await;
    let ws = tempfile_dir()?;
    let mock = MockModel::start().await;
    mock.set_prefill(PREFILL);
    let engine = crate::workflow::engine_with(db.store(), &mock, &ws, 1, 100, |c| {
        if !hold {
            c.prefix_stagger = Duration::ZERO;
        }
    })
    .await?;
    let script = format!(
        "return (await parallel(Array.from({{ length: {SIBLINGS} }}, (_, i) => () => agent(`review part ${{i}} of the change`)))).length"
    );
    let started = Instant::now();
    let run = engine
        .start_inline(
            &script,
            StartRequest {
                concurrency: Some(SIBLINGS),
                auto_approve: true,
                ..StartRequest::default()
            },
        )
        .await?;
    loop {
        let r = engine.get_run(run.id).await?;
        if r.status.is_finished() {
            anyhow::ensure!(
                r.result == Some(json!(SIBLINGS)),
                "run ended {:?}",
                r.status
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let (mut input, mut cached) = (0i64, 0i64);
    for e in engine.journal(run.id).await? {
        let Some(session) = e.session_id else {
            continue;
        };
        for t in db
            .store()
            .list_traces(TraceScope::Session(session), 100, None)
            .await?
        {
            input += t.input_tokens.unwrap_or(0);
            cached += t.cache_tokens.unwrap_or(0);
        }
    }
    engine.shutdown(Duration::from_secs(5)).await;
    Ok((cached as f64 / input.max(1) as f64, took))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("baton-bench-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A photo-like JPEG of about `bytes` bytes (noise compresses poorly, as photos do).
fn big_jpeg(bytes: usize) -> Vec<u8> {
    let mut side = 2000u32;
    loop {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let img = image::RgbImage::from_fn(side, side, |_, _| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .expect("encodes");
        let out = out.into_inner();
        if out.len() >= bytes || side >= 8000 {
            return out;
        }
        side = (f64::from(side) * (bytes as f64 / out.len() as f64).sqrt() * 1.05) as u32;
    }
}

fn multipart(bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----baton-bench-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A server that reads a body and drops it: the baseline for moving the bytes.
async fn sink() -> anyhow::Result<String> {
    let app = axum::Router::new()
        .route(
            "/sink",
            axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/sink"))
}

async fn upload() -> anyhow::Result<()> {
    let jpeg = big_jpeg(10 << 20);
    let (ct, body) = multipart(&jpeg);
    let http = reqwest::Client::new();
    let sink = sink().await?;
    let mut base = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        http.post(&sink)
            .header("content-type", &ct)
            .body(body.clone())
            .send()
            .await?
            .error_for_status()?;
        base.push(t.elapsed());
    }
    let server = crate::server::start(Kind::Sqlite).await?;
    let url = server
        .ws_url
        .replace("ws://", "http://")
        .replace("/ws", "/api/attachments");
    let mut ours = Vec::new();
    let mut first = None;
    for i in 0..3 {
        // Distinct bytes each time, so no upload is answered from the deduplication.
        let mut body = body.clone();
        let at = body.len() - jpeg.len() / 2;
        body[at] ^= (i + 1) as u8;
        let t = Instant::now();
        let r = http
            .post(&url)
            .header("content-type", &ct)
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            r.status() == 201,
            "upload answered {}: {}",
            r.status(),
            r.text().await?
        );
        ours.push(t.elapsed());
        if first.is_none() {
            first = Some(r.json::<serde_json::Value>().await?);
        }
    }
    let a = first.expect("one upload");
    let thumb = format!("{url}/{}/thumbnail", a["id"].as_str().unwrap_or_default());
    let t = Instant::now();
    let r = http.get(&thumb).send().await?;
    let thumb_bytes = r.bytes().await?.len();
    let serve_thumb = t.elapsed();
    // The thumbnail is made at upload: what that step alone costs, in this process.
    let t = Instant::now();
    let img = baton_media::inspect(&jpeg, u64::MAX)?;
    baton_media::thumbnail(&jpeg, &img, 256)?;
    let make_thumb = t.elapsed();
    server.stop.cancel();
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (b, o) = (med(&mut base), med(&mut ours));
    let mb = jpeg.len() as f64 / (1 << 20) as f64;
    println!(
        "## Uploading a {mb:.1} MB JPEG ({}×{} pixels), median of 3\n",
        a["width"], a["height"]
    );
    println!("| path | time | MB/s | vs baseline |");
    println!("|---|---|---|---|");
    println!("| baseline: the same multipart body posted to an axum handler that reads and drops it | {:.0} ms | {:.0} | 1.00 |", b.as_secs_f64() * 1e3, mb / b.as_secs_f64());
    println!("| Baton `POST /api/attachments` (sniff, measure, decode + thumbnail, SHA-256, store in SQLite) | {:.0} ms | {:.0} | {:.2} |", o.as_secs_f64() * 1e3, mb / o.as_secs_f64(), b.as_secs_f64() / o.as_secs_f64());
    println!(
        "| of which: decoding the JPEG and making the 256 px thumbnail | {:.0} ms | | |",
        make_thumb.as_secs_f64() * 1e3
    );
    println!(
        "| serving the stored thumbnail ({thumb_bytes} bytes) | {:.1} ms | | |\n",
        serve_thumb.as_secs_f64() * 1e3
    );
    Ok(())
}

pub async fn run() -> anyhow::Result<()> {
    println!("## Cache-aware fan-out: {SIBLINGS} sibling agents with one request prefix, the model caching a prompt {} ms after it arrives\n", PREFILL.as_millis());
    let (without, t0) = cached_share(false).await?;
    let (with, t1) = cached_share(true).await?;
    println!("| path | input tokens read from cache | run time |");
    println!("|---|---|---|");
    println!(
        "| baseline: siblings start together (`prefix_stagger_ms = 0`) | {:.0} % | {:.0} ms |",
        without * 100.0,
        t0.as_secs_f64() * 1e3
    );
    println!(
        "| Baton: siblings wait for the first one's response to start | {:.0} % | {:.0} ms |\n",
        with * 100.0,
        t1.as_secs_f64() * 1e3
    );
    upload().await
}
