//! Reconnect replay: a client that missed 10,000 frames subscribes with `since: 0`;
//! time until the last one arrives over the WebSocket. Baseline: reading the same
//! frames straight from the store, in the same pages, with no socket.
use std::time::Instant;

use baton_core::{NewFrame, Topic};
use baton_testkit::Kind;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const MISSED: i64 = 10_000;

pub async fn run() -> anyhow::Result<()> {
    println!("## Reconnect replay of {MISSED} missed frames\n");
    println!("| backend | until the last frame arrives (WebSocket) | baseline: read from the store | WebSocket / baseline |");
    println!("|---|---|---|---|");
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let server = crate::server::start(kind).await?;
        let chat = server
            .state
            .store
            .create_chat(baton_core::NewChat {
                title: "bench".into(),
                workspace: None,
                capabilities: Default::default(),
                auto_continue: true,
            })
            .await?;
        let topic = Topic::Chat(chat.id);
        let pad = "x".repeat(150);
        for _ in 0..(MISSED / 1000) {
            let frames = (0..1000)
                .map(|i| NewFrame::new("tool_trace", json!({"i": i, "pad": pad})))
                .collect();
            server.state.hub.publish_many(topic, frames).await?;
        }

        // Best of three for each, so neither side pays for a cold cache alone.
        let mut base = f64::MAX;
        let mut ours = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut after = 0;
            loop {
                let page = server.state.store.frames_since(topic, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for f in &page {
                    std::hint::black_box(f.wire_text());
                }
            }
            base = base.min(t.elapsed().as_secs_f64() * 1000.0);

            let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url.clone()).await?;
            let t = Instant::now();
            let sub = json!({"type": "subscribe", "topic": topic.to_string(), "since": 0});
            ws.send(Message::Text(sub.to_string().into())).await?;
            let last = format!("\"seq\":{MISSED},");
            loop {
                if let Some(Ok(Message::Text(text))) = ws.next().await {
                    if text.contains(&last) {
                        break;
                    }
                }
            }
            ours = ours.min(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| {kind:?} | {ours:.1} ms | {base:.1} ms | {:.2} |",
            ours / base
        );
        server.stop.cancel();
    }
    println!();
    Ok(())
}
