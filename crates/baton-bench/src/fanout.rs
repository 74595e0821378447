//! WebSocket fan-out: `subscribers` real WebSocket clients on loopback receive every
//! frame published to one topic through Baton's publish path (event-log append, then
//! fan-out). Baseline: the same clients and frames through a bare axum WebSocket
//! server fed by a `tokio::sync::broadcast` channel.
use std::time::{Duration, Instant};

use baton_core::{NewFrame, Topic};
use baton_testkit::Kind;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::Message;

const PAD: usize = 150;

struct Outcome {
    deliveries: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summarize(mut latencies: Vec<u64>, secs: f64) -> Outcome {
    latencies.sort_unstable();
    Outcome {
        deliveries: latencies.len(),
        secs,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
    }
}

pub async fn run(subscribers: usize, frames: usize) -> anyhow::Result<()> {
    println!("## WebSocket fan-out ({subscribers} subscribers × {frames} frames of ~200 bytes)\n");
    let base = baseline(subscribers, frames).await?;
    println!("| path | deliveries/s | p50 publish→receive | p99 publish→receive | throughput vs baseline |");
    println!("|---|---|---|---|---|");
    println!(
        "| baseline: bare axum WebSocket + `tokio::sync::broadcast`, one `send()` per frame, no event log | {} | {} µs | {} µs | 1.00 |",
        crate::rate(base.deliveries, base.secs),
        base.p50_us,
        base.p99_us
    );
    for (kind, publishers) in [
        (Kind::Sqlite, 1),
        (Kind::Sqlite, 16),
        (Kind::Postgres, 1),
        (Kind::Postgres, 16),
    ] {
        let ours = baton(kind, subscribers, frames, publishers).await?;
        println!(
            "| Baton, {kind:?} event log, {publishers} concurrent publisher(s), real WebSockets | {} | {} µs | {} µs | {:.2} |",
            crate::rate(ours.deliveries, ours.secs),
            ours.p50_us,
            ours.p99_us,
            (ours.deliveries as f64 / ours.secs) / (base.deliveries as f64 / base.secs)
        );
    }
    println!();
    Ok(())
}

/// The same clients against a bare axum WebSocket server that forwards a tokio
/// broadcast channel to each socket with one `send()` per frame: no event log, no
/// replay, no per-topic routing.
async fn baseline(subscribers: usize, frames: usize) -> anyhow::Result<Outcome> {
    use axum::extract::ws::{Message as AxMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
    use axum::extract::State;

    let (tx, _) = broadcast::channel::<Utf8Bytes>(frames + 1);
    async fn serve_socket(mut socket: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>) {
        if socket
            .send(AxMessage::Text("{\"type\":\"snapshot\"}".into()))
            .await
            .is_err()
        {
            return;
        }
        while let Ok(text) = rx.recv().await {
            if socket.send(AxMessage::Text(text)).await.is_err() {
                return;
            }
        }
    }
    let app = axum::Router::new()
        .route(
            "/ws",
            axum::routing::get(
                |State(tx): State<broadcast::Sender<Utf8Bytes>>, ws: WebSocketUpgrade| async move {
                    let rx = tx.subscribe();
                    ws.on_upgrade(move |socket| serve_socket(socket, rx))
                },
            ),
        )
        .with_state(tx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let server_stop = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await
    });
    let origin = Instant::now();
    let done = clients(&url, "tasks", subscribers, frames, origin).await;
    let pad = "x".repeat(PAD - 20);
    let start = Instant::now();
    for i in 0..frames {
        let sent = origin.elapsed().as_micros() as u64;
        let text = json!({"type": "message", "i": i, "sent_us": sent, "pad": pad}).to_string();
        tx.send(text.into()).unwrap();
        if i % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let out = collect(done, subscribers, start).await;
    stop.cancel();
    out
}

/// Connects and subscribes `n` clients; returns once all have their snapshot. Each
/// sends its publish→receive latencies on the channel when it has `frames` frames.
async fn clients(
    url: &str,
    topic: &str,
    n: usize,
    frames: usize,
    origin: Instant,
) -> mpsc::Receiver<Vec<u64>> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(n);
    let (done_tx, done_rx) = mpsc::channel::<Vec<u64>>(n);
    for _ in 0..n {
        let url = url.to_string();
        let topic = topic.to_string();
        let ready = ready_tx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            let sub = json!({"type": "subscribe", "topic": topic, "since": null});
            ws.send(Message::Text(sub.to_string().into()))
                .await
                .unwrap();
            ws.next().await.unwrap().unwrap(); // snapshot
            ready.send(()).await.unwrap();
            let mut lat = Vec::with_capacity(frames);
            while lat.len() < frames {
                if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                    let now = origin.elapsed().as_micros() as u64;
                    lat.push(now - sent_us(&t));
                }
            }
            done.send(lat).await.unwrap();
        });
    }
    for _ in 0..n {
        ready_rx.recv().await.unwrap();
    }
    done_rx
}

async fn collect(
    mut done: mpsc::Receiver<Vec<u64>>,
    n: usize,
    start: Instant,
) -> anyhow::Result<Outcome> {
    let mut all = Vec::new();
    for _ in 0..n {
        all.extend(
            tokio::time::timeout(Duration::from_secs(120), done.recv())
                .await?
                .unwrap(),
        );
    }
    Ok(summarize(all, start.elapsed().as_secs_f64()))
}

async fn baton(
    kind: Kind,
    subscribers: usize,
    frames: usize,
    publishers: usize,
) -> anyhow::Result<Outcome> {
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
    let origin = Instant::now();
    let done = clients(
        &server.ws_url,
        &topic.to_string(),
        subscribers,
        frames,
        origin,
    )
    .await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let hub = server.state.hub.clone();
        tasks.push(tokio::spawn(async move {
            let pad = "x".repeat(PAD - 20);
            for i in (p..frames).step_by(publishers) {
                let sent = origin.elapsed().as_micros() as u64;
                let frame = NewFrame::new("message", json!({"i": i, "sent_us": sent, "pad": pad}));
                hub.publish(topic, frame).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let out = collect(done, subscribers, start).await;
    server.stop.cancel();
    out
}

/// The publish time carried in a frame, found without parsing the whole frame so that
/// the 1,000 in-process clients cost as little CPU as possible.
fn sent_us(text: &str) -> u64 {
    let at = text.find("\"sent_us\":").expect("frame carries sent_us") + 10;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}
