use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::{Frame, NewFrame, Topic};
use baton_store::{Store, StoreResult, TopicBounds};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A frame ready for the wire, serialized once however many sockets receive it.
#[derive(Debug)]
pub struct Delivery {
    pub topic: Topic,
    pub seq: i64,
    pub text: Arc<str>,
}

impl Delivery {
    pub fn from_frame(frame: &Frame) -> Self {
        Self {
            topic: frame.topic,
            seq: frame.seq,
            text: frame.to_json().to_string().into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Frames kept per topic for replay; older ones are pruned.
    pub retain_per_topic: i64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            retain_per_topic: 100_000,
        }
    }
}

/// Why a connection was cut off by the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    QueueFull,
}

/// The hub's side of one WebSocket connection: its bounded queue and the token the hub
/// cancels when that queue overflows.
#[derive(Clone)]
pub struct ConnHandle {
    pub id: u64,
    tx: mpsc::Sender<Arc<Delivery>>,
    cut: CancellationToken,
}

impl ConnHandle {
    /// Cancelled when the hub gave up on this connection (its queue overflowed).
    pub fn cut_off(&self) -> &CancellationToken {
        &self.cut
    }
}

#[derive(Default)]
struct TopicEntry {
    /// Held across append and fan-out so subscribers see a topic's frames in seq order.
    publish: Arc<tokio::sync::Mutex<()>>,
    subscribers: Vec<ConnHandle>,
}

pub struct EventHub {
    store: Arc<dyn Store>,
    topics: Mutex<HashMap<Topic, TopicEntry>>,
    next_conn: AtomicU64,
    config: HubConfig,
}

/// Prune at most once per this many frames of a topic.
const PRUNE_EVERY: i64 = 1_024;

impl EventHub {
    pub fn new(store: Arc<dyn Store>, config: HubConfig) -> Self {
        Self {
            store,
            topics: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            config,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A new connection: its handle (for the hub) and its queue (for its writer).
    pub fn connect(&self, queue_frames: usize) -> (ConnHandle, mpsc::Receiver<Arc<Delivery>>) {
        let (tx, rx) = mpsc::channel(queue_frames.max(1));
        let handle = ConnHandle {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            tx,
            cut: CancellationToken::new(),
        };
        (handle, rx)
    }

    pub async fn publish(&self, topic: Topic, frame: NewFrame) -> StoreResult<Frame> {
        let mut frames = self.publish_many(topic, vec![frame]).await?;
        Ok(frames.pop().expect("one frame in, one out"))
    }

    /// Appends frames to `topic` in one transaction, then delivers them live.
    pub async fn publish_many(
        &self,
        topic: Topic,
        frames: Vec<NewFrame>,
    ) -> StoreResult<Vec<Frame>> {
        let lock = self.lock_for(topic);
        let stored = {
            let _guard = lock.lock().await;
            let stored = self.store.append_frames(topic, &frames).await?;
            let deliveries: Vec<Arc<Delivery>> = stored
                .iter()
                .map(|f| Arc::new(Delivery::from_frame(f)))
                .collect();
            self.fan_out(topic, &deliveries);
            stored
        };
        if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
            self.maybe_prune(topic, first.seq, last.seq);
        }
        Ok(stored)
    }

    fn lock_for(&self, topic: Topic) -> Arc<tokio::sync::Mutex<()>> {
        let mut topics = self.topics.lock().expect("hub lock");
        topics.entry(topic).or_default().publish.clone()
    }

    fn fan_out(&self, topic: Topic, deliveries: &[Arc<Delivery>]) {
        let mut topics = self.topics.lock().expect("hub lock");
        let Some(entry) = topics.get_mut(&topic) else {
            return;
        };
        entry.subscribers.retain(|sub| {
            for d in deliveries {
                match sub.tx.try_send(d.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(conn = sub.id, %topic, "subscriber queue full; cutting it off");
                        sub.cut.cancel();
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            !sub.cut.is_cancelled()
        });
    }

    fn maybe_prune(&self, topic: Topic, first: i64, last: i64) {
        let retain = self.config.retain_per_topic;
        let crossed = first / PRUNE_EVERY != last / PRUNE_EVERY || last % PRUNE_EVERY == 0;
        if last <= retain || !crossed {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.prune_frames(topic, last - retain).await {
                tracing::warn!(%topic, error = %e, "pruning the event log failed");
            }
        });
    }

    /// Registers `conn` for live frames of `topic`. Call this before reading what to
    /// replay: a frame published in between then arrives both ways, and the reader
    /// drops the copy whose seq it has already sent, so nothing is missed.
    pub fn subscribe(&self, topic: Topic, conn: &ConnHandle) {
        let mut topics = self.topics.lock().expect("hub lock");
        let entry = topics.entry(topic).or_default();
        if !entry.subscribers.iter().any(|s| s.id == conn.id) {
            entry.subscribers.push(conn.clone());
        }
    }

    pub fn unsubscribe(&self, topic: Topic, conn_id: u64) {
        let mut topics = self.topics.lock().expect("hub lock");
        if let Some(entry) = topics.get_mut(&topic) {
            entry.subscribers.retain(|s| s.id != conn_id);
            if entry.subscribers.is_empty() && Arc::strong_count(&entry.publish) == 1 {
                topics.remove(&topic);
            }
        }
    }

    pub fn subscriber_count(&self, topic: Topic) -> usize {
        let topics = self.topics.lock().expect("hub lock");
        topics.get(&topic).map_or(0, |e| e.subscribers.len())
    }

    pub async fn bounds(&self, topic: Topic) -> StoreResult<TopicBounds> {
        self.store.topic_bounds(topic).await
    }

    pub async fn replay_page(
        &self,
        topic: Topic,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Frame>> {
        self.store.frames_since(topic, after, limit).await
    }
}
