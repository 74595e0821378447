//! One WebSocket connection: a single task reads client messages, performs catch-up and
//! writes queued live frames in batches (feed many, flush once).
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use baton_core::Topic;
use baton_events::{plan, Catchup, ConnHandle, Delivery};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::protocol::{self, ClientMessage};
use crate::state::AppState;

type Sink = SplitSink<WebSocket, Message>;
type SendResult = Result<(), axum::Error>;

/// Live frames written per flush.
const BATCH: usize = 256;
/// Stored frames read per replay query.
const REPLAY_PAGE: u32 = 1_000;
const MAX_TOPICS_PER_CONNECTION: usize = 256;

const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_TRY_AGAIN: u16 = 1013;

pub async fn run(socket: WebSocket, state: AppState) {
    let (conn, rx) = state.hub.connect(state.config.ws_queue_frames);
    let span = tracing::info_span!("ws", conn = conn.id);
    Connection {
        state,
        conn,
        subs: HashMap::new(),
    }
    .serve(socket, rx)
    .instrument(span)
    .await;
}

struct Connection {
    state: AppState,
    conn: ConnHandle,
    /// Subscribed topics and the last seq written for each: a live frame at or below
    /// it was already sent by the catch-up and is dropped.
    subs: HashMap<Topic, i64>,
}

impl Connection {
    async fn serve(mut self, socket: WebSocket, mut rx: mpsc::Receiver<Arc<Delivery>>) {
        let (mut sink, mut stream) = socket.split();
        tracing::debug!("connected");
        // Created once: a fresh waiter per loop turn would lock the shared shutdown
        // token for every frame on every connection.
        let shutdown = self.state.shutdown.clone();
        let cut = self.conn.cut_off().clone();
        let shutdown = shutdown.cancelled();
        let cut = cut.cancelled();
        tokio::pin!(shutdown, cut);
        // A client that has sent nothing (not even a pong) for two ping intervals is
        // gone or stuck; so is one that cannot take a batch of frames in that time.
        let every = self.state.config.ws_ping;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = tokio::time::Instant::now();
        let close: Option<(u16, String)> = loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    break Some((CLOSE_GOING_AWAY, "server shutting down".into()));
                }
                _ = &mut cut => {
                    break Some((CLOSE_TRY_AGAIN,
                        "slow consumer: send queue overflowed; reconnect and subscribe with since".into()));
                }
                _ = ping.tick() => {
                    if heard.elapsed() >= every * 2 {
                        break Some((CLOSE_GOING_AWAY, "no answer to pings".into()));
                    }
                    let sent = tokio::time::timeout(every, sink.send(Message::Ping(Default::default()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break None;
                    }
                }
                msg = stream.next() => {
                    heard = tokio::time::Instant::now();
                    match msg {
                    None | Some(Ok(Message::Close(_))) => break None,
                    Some(Err(e)) => break Some(self.read_error(e)),
                    Some(Ok(Message::Text(text))) => {
                        if self.on_text(&mut sink, text.as_str()).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let frame = protocol::error_frame(None, "binary_not_supported",
                            "binary messages are not supported; send JSON text");
                        if send(&mut sink, frame).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(_)) => {}
                    }
                }
                Some(first) = rx.recv() => {
                    let written = tokio::time::timeout(every * 2, self.write_live(&mut sink, first, &mut rx)).await;
                    if !matches!(written, Ok(Ok(()))) {
                        break None;
                    }
                }
            }
        };
        for topic in self.subs.keys() {
            self.state.hub.unsubscribe(*topic, self.conn.id);
        }
        if let Some((code, reason)) = close {
            tracing::debug!(code, %reason, "closing");
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }));
            let _ = tokio::time::timeout(every, sink.send(frame)).await;
        }
        let _ = tokio::time::timeout(every, sink.close()).await;
    }

    fn read_error(&self, e: axum::Error) -> (u16, String) {
        let text = e.to_string();
        if text.contains("too long") || text.contains("Space limit") {
            let limit = self.state.config.ws_max_message_bytes;
            (
                CLOSE_TOO_BIG,
                format!("message too big: the limit is {limit} bytes"),
            )
        } else {
            tracing::debug!(error = %text, "read failed");
            (1002, "protocol error".into())
        }
    }

    async fn write_live(
        &mut self,
        sink: &mut Sink,
        first: Arc<Delivery>,
        rx: &mut mpsc::Receiver<Arc<Delivery>>,
    ) -> SendResult {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(d) = next {
            if let Some(last) = self.subs.get_mut(&d.topic) {
                if d.seq > *last {
                    *last = d.seq;
                    sink.feed(text_message(&d.text)).await?;
                }
            }
            taken += 1;
            next = if taken < BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        sink.flush().await
    }

    async fn on_text(&mut self, sink: &mut Sink, text: &str) -> SendResult {
        match protocol::parse(text) {
            Err((code, message)) => send(sink, protocol::error_frame(None, code, &message)).await,
            Ok(ClientMessage::Ping) => {
                send(
                    sink,
                    protocol::local_frame(None, baton_core::FrameBody::Pong),
                )
                .await
            }
            Ok(ClientMessage::Unsubscribe { topic }) => {
                if let Ok(t) = topic.parse::<Topic>() {
                    if self.subs.remove(&t).is_some() {
                        self.state.hub.unsubscribe(t, self.conn.id);
                    }
                }
                Ok(())
            }
            Ok(ClientMessage::Subscribe { topic, since }) => {
                self.subscribe(sink, &topic, since).await
            }
        }
    }

    async fn subscribe(&mut self, sink: &mut Sink, raw: &str, since: Option<i64>) -> SendResult {
        let topic: Topic = match raw.parse() {
            Ok(t) => t,
            Err(e) => {
                let shown: String = raw.chars().take(80).collect();
                return send(
                    sink,
                    protocol::error_frame(Some(&shown), "invalid_topic", &e.to_string()),
                )
                .await;
            }
        };
        let name = topic.to_string();
        if !self.subs.contains_key(&topic) && self.subs.len() >= MAX_TOPICS_PER_CONNECTION {
            let msg = format!("at most {MAX_TOPICS_PER_CONNECTION} topics per connection");
            return send(
                sink,
                protocol::error_frame(Some(&name), "too_many_subscriptions", &msg),
            )
            .await;
        }
        match self.state.store.topic_exists(topic).await {
            Ok(true) => {}
            Ok(false) => {
                let msg = format!("{name} does not exist");
                return send(
                    sink,
                    protocol::error_frame(Some(&name), "topic_not_found", &msg),
                )
                .await;
            }
            Err(e) => {
                tracing::error!(error = %e, topic = %name, "subscribe failed");
                return send(
                    sink,
                    protocol::error_frame(Some(&name), "internal", "internal error"),
                )
                .await;
            }
        }
        // Registered before reading the log, so no frame can fall between the two.
        if let Err(e) = self.state.hub.subscribe(topic, &self.conn).await {
            tracing::error!(error = %e, topic = %name, "subscribe failed");
            return send(
                sink,
                protocol::error_frame(Some(&name), "internal", "internal error"),
            )
            .await;
        }
        match self.catch_up(sink, topic, since).await {
            Ok(Some(last)) => {
                self.subs.insert(topic, last);
                Ok(())
            }
            Ok(None) => {
                self.drop_sub(topic);
                Ok(())
            }
            Err(CatchupError::Send(e)) => Err(e),
            Err(CatchupError::Store(e)) => {
                tracing::error!(error = %e, topic = %name, "catch-up failed");
                self.drop_sub(topic);
                send(
                    sink,
                    protocol::error_frame(Some(&name), "internal", "internal error"),
                )
                .await
            }
        }
    }

    fn drop_sub(&mut self, topic: Topic) {
        self.subs.remove(&topic);
        self.state.hub.unsubscribe(topic, self.conn.id);
    }

    /// Sends the snapshot or the replay; returns the last seq the client now has, or
    /// `None` if the topic vanished meanwhile.
    async fn catch_up(
        &mut self,
        sink: &mut Sink,
        topic: Topic,
        since: Option<i64>,
    ) -> Result<Option<i64>, CatchupError> {
        let hub = &self.state.hub;
        let bounds = hub.bounds(topic).await?;
        match plan(bounds, since) {
            Catchup::Replay { after } => {
                let mut last = after;
                loop {
                    let page = hub.replay_page(topic, last, REPLAY_PAGE).await?;
                    for frame in &page {
                        last = frame.seq;
                        sink.feed(text_message(&Delivery::from_frame(frame).text))
                            .await?;
                    }
                    sink.flush().await?;
                    if page.len() < REPLAY_PAGE as usize {
                        break;
                    }
                }
                Ok(Some(last))
            }
            Catchup::Snapshot { seq, reset } => {
                let Some(state) = self.state.snapshots.snapshot(topic).await? else {
                    let name = topic.to_string();
                    let msg = format!("{name} does not exist");
                    send(
                        sink,
                        protocol::error_frame(Some(&name), "topic_not_found", &msg),
                    )
                    .await?;
                    return Ok(None);
                };
                send(
                    sink,
                    protocol::snapshot_frame(&topic.to_string(), seq, reset, state),
                )
                .await?;
                Ok(Some(seq))
            }
        }
    }
}

enum CatchupError {
    Send(axum::Error),
    Store(baton_store::StoreError),
}

impl From<axum::Error> for CatchupError {
    fn from(e: axum::Error) -> Self {
        CatchupError::Send(e)
    }
}

impl From<baton_store::StoreError> for CatchupError {
    fn from(e: baton_store::StoreError) -> Self {
        CatchupError::Store(e)
    }
}

/// Shares the delivery's buffer; the UTF-8 check cannot fail for JSON we serialized.
fn text_message(text: &bytes::Bytes) -> Message {
    match Utf8Bytes::try_from(text.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Text(String::from_utf8_lossy(text).into_owned().into()),
    }
}

async fn send(sink: &mut Sink, text: String) -> SendResult {
    sink.send(Message::Text(text.into())).await
}
