use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::{Frame, NewFrame, Topic};
use baton_store::{FrameNotice, Store, StoreError, StoreResult, TopicBounds};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A frame ready for the wire, serialized once however many sockets receive it: `text`
/// is UTF-8 JSON in a reference-counted buffer that every socket shares.
#[derive(Debug)]
pub struct Delivery {
    pub topic: Topic,
    pub seq: i64,
    pub text: Bytes,
}

impl Delivery {
    pub fn from_frame(frame: &Frame) -> Self {
        Self {
            topic: frame.topic,
            seq: frame.seq,
            text: Bytes::from(frame.wire_text()),
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

/// One `publish_many` call waiting for the writer.
struct Pending {
    topic: Topic,
    frames: Vec<NewFrame>,
    /// How many frames it sent, once they have moved to the store.
    sent: usize,
    reply: oneshot::Sender<StoreResult<Vec<Frame>>>,
}

impl Pending {
    /// A frame whose sender does not wait for the answer.
    fn detached(topic: Topic, frame: NewFrame) -> Self {
        let (reply, _) = oneshot::channel();
        Self {
            topic,
            frames: vec![frame],
            sent: 0,
            reply,
        }
    }
}

/// A topic's local subscribers, and the seq up to which every frame has been handed to
/// them in order. Frames reach a hub from its own writer and, with several instances on
/// one Postgres, from the others; either path first reads from the log whatever lies
/// between the mark and its own frames (already committed: appends to a topic are
/// serialized by its counter's row lock), so subscribers get every seq once, in order.
struct TopicSubs {
    conns: Vec<ConnHandle>,
    high: i64,
}

struct Shared {
    store: Arc<dyn Store>,
    subscribers: Mutex<HashMap<Topic, TopicSubs>>,
    config: HubConfig,
}

/// Publishes frames through a single writer task that commits whatever has queued up
/// meanwhile in one transaction per topic (group commit), then fans the whole group
/// out. Under load, each commit and each socket flush then carries many frames
/// instead of one.
pub struct EventHub {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Pending>,
    next_conn: AtomicU64,
}

/// Frames gathered into one group at most.
const MAX_GROUP: usize = 4_096;
/// Prune at most once per this many frames of a topic.
const PRUNE_EVERY: i64 = 1_024;

impl EventHub {
    /// Must be called inside a tokio runtime: it starts the writer task.
    pub fn new(store: Arc<dyn Store>, config: HubConfig) -> Self {
        let shared = Arc::new(Shared {
            store,
            subscribers: Mutex::new(HashMap::new()),
            config,
        });
        let (tx, rx) = mpsc::channel(1_024);
        tokio::spawn(write_loop(shared.clone(), rx));
        tokio::spawn(listen_loop(shared.clone()));
        Self {
            shared,
            writer: tx,
            next_conn: AtomicU64::new(1),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
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

    /// Queues a frame for the log and its subscribers without waiting for the commit: for
    /// callers that go on working (an agent mid-answer). Frames keep their call order per
    /// topic; a failed append is logged by the writer. Waits only if the queue is full.
    pub async fn enqueue(&self, topic: Topic, frame: NewFrame) {
        if self
            .writer
            .send(Pending::detached(topic, frame))
            .await
            .is_err()
        {
            tracing::warn!(%topic, "event hub stopped; a frame was dropped");
        }
    }

    /// `enqueue` for callers that cannot wait: the frame comes back, unqueued, when the
    /// queue is full or the hub stopped.
    pub fn try_enqueue(&self, topic: Topic, frame: NewFrame) -> Result<(), NewFrame> {
        self.writer
            .try_send(Pending::detached(topic, frame))
            .map_err(|e| {
                let mut pending = e.into_inner();
                pending.frames.pop().expect("one frame queued")
            })
    }

    /// Appends frames to `topic` atomically with consecutive seqs, then delivers them
    /// live. Returns once they are stored and handed to every subscriber's queue.
    pub async fn publish_many(
        &self,
        topic: Topic,
        frames: Vec<NewFrame>,
    ) -> StoreResult<Vec<Frame>> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::database(std::io::Error::other("event hub stopped"));
        self.writer
            .send(Pending {
                topic,
                frames,
                sent: 0,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Returns once every frame queued before the call is stored (for a clean stop).
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        let marker = Pending {
            topic: Topic::Tasks,
            frames: Vec::new(),
            sent: 0,
            reply,
        };
        if self.writer.send(marker).await.is_ok() {
            let _ = answer.await;
        }
    }

    /// Registers `conn` for live frames of `topic`. Call this before reading what to
    /// replay: a frame published in between then arrives both ways, and the reader
    /// drops the copy whose seq it has already sent, so nothing is missed.
    ///
    /// A topic new to this hub first gets its mark from the log (its last seq now), so
    /// frames committed from then on reach its subscribers in order whichever path
    /// brings one first. Without it, a frame from this instance's writer could overtake
    /// an earlier one another instance committed and whose notice had not come yet, and
    /// the earlier one would then be dropped as already seen.
    pub async fn subscribe(&self, topic: Topic, conn: &ConnHandle) -> StoreResult<()> {
        let last = self.shared.store.topic_bounds(topic).await?.last_seq;
        let mut subs = self.shared.subscribers.lock().expect("hub lock");
        let entry = subs.entry(topic).or_insert_with(|| TopicSubs {
            conns: Vec::new(),
            high: last,
        });
        if !entry.conns.iter().any(|s| s.id == conn.id) {
            entry.conns.push(conn.clone());
        }
        Ok(())
    }

    pub fn unsubscribe(&self, topic: Topic, conn_id: u64) {
        let mut subs = self.shared.subscribers.lock().expect("hub lock");
        if let Some(entry) = subs.get_mut(&topic) {
            entry.conns.retain(|s| s.id != conn_id);
            if entry.conns.is_empty() {
                subs.remove(&topic);
            }
        }
    }

    pub fn subscriber_count(&self, topic: Topic) -> usize {
        let subs = self.shared.subscribers.lock().expect("hub lock");
        subs.get(&topic).map_or(0, |e| e.conns.len())
    }

    pub async fn bounds(&self, topic: Topic) -> StoreResult<TopicBounds> {
        self.shared.store.topic_bounds(topic).await
    }

    pub async fn replay_page(
        &self,
        topic: Topic,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Frame>> {
        self.shared.store.frames_since(topic, after, limit).await
    }
}

async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        let mut count = group[0].frames.len();
        while count < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => {
                    count += p.frames.len();
                    group.push(p);
                }
                Err(_) => break,
            }
        }
        // Topics in the order they first appear; within a topic, arrival order. The
        // topics go to the store in one call (one statement pair on SQLite) instead of
        // one commit after another; the next group waits for this one, which keeps
        // every topic's order across groups.
        let mut by_topic: Vec<(Topic, Vec<Pending>)> = Vec::new();
        for p in group {
            match by_topic.iter_mut().find(|(t, _)| *t == p.topic) {
                Some((_, list)) => list.push(p),
                None => by_topic.push((p.topic, vec![p])),
            }
        }
        // The frames move to the store; each sender keeps only how many it sent.
        let batches: Vec<(Topic, Vec<NewFrame>)> = by_topic
            .iter_mut()
            .map(|(topic, mine)| {
                let frames = mine
                    .iter_mut()
                    .flat_map(|p| {
                        p.sent = p.frames.len();
                        std::mem::take(&mut p.frames)
                    })
                    .collect();
                (*topic, frames)
            })
            .collect();
        let results = shared.store.append_frames_to_topics(batches).await;
        futures_util::future::join_all(
            by_topic
                .into_iter()
                .zip(results)
                .map(|((topic, mine), r)| committed(&shared, topic, mine, r)),
        )
        .await;
    }
}

/// Delivers a topic's newly stored frames and answers their senders.
async fn committed(
    shared: &Shared,
    topic: Topic,
    pending: Vec<Pending>,
    result: StoreResult<Vec<Frame>>,
) {
    match result {
        Ok(stored) => {
            deliver(shared, topic, &stored).await;
            if let (Some(first), Some(last)) = (stored.first(), stored.last()) {
                maybe_prune(shared, topic, first.seq, last.seq);
            }
            let mut stored = stored.into_iter();
            for p in pending {
                let mine: Vec<Frame> = stored.by_ref().take(p.sent).collect();
                let _ = p.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            tracing::error!(%topic, error = %e, "appending to the event log failed");
            for p in pending {
                let _ = p.reply.send(Err(e.duplicate()));
            }
        }
    }
}

fn fan_out(shared: &Shared, topic: Topic, deliveries: &[Arc<Delivery>]) {
    let mut subs = shared.subscribers.lock().expect("hub lock");
    let Some(entry) = subs.get_mut(&topic) else {
        return;
    };
    let above = entry.high;
    let fresh: Vec<&Arc<Delivery>> = deliveries.iter().filter(|d| d.seq > above).collect();
    if let Some(top) = fresh.iter().map(|d| d.seq).max() {
        entry.high = top;
    }
    entry.conns.retain(|sub| {
        for d in &fresh {
            match sub.tx.try_send(Arc::clone(d)) {
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

fn maybe_prune(shared: &Shared, topic: Topic, first: i64, last: i64) {
    let retain = shared.config.retain_per_topic;
    let crossed = first / PRUNE_EVERY != last / PRUNE_EVERY || last % PRUNE_EVERY == 0;
    if last <= retain || !crossed {
        return;
    }
    let store = shared.store.clone();
    tokio::spawn(async move {
        if let Err(e) = store.prune_frames(topic, last - retain).await {
            tracing::warn!(%topic, error = %e, "pruning the event log failed");
        }
    });
}

/// Frames other instances append (Postgres `LISTEN`), fanned out to this hub's
/// subscribers. Reads from the topic's high-water mark, so a local frame still on its
/// way cannot be skipped by a remote one that overtook it.
async fn listen_loop(shared: Arc<Shared>) {
    let mut stream = match shared.store.frame_notifications().await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for frames from other instances");
            return;
        }
    };
    use futures_util::StreamExt;
    while let Some(notice) = stream.next().await {
        let (topic, first, last) = match notice {
            FrameNotice::Appended { topic, first, last } => (topic, first, last),
            FrameNotice::Reconnected => {
                catch_up_all(&shared).await;
                continue;
            }
        };
        let wanted = {
            let subs = shared.subscribers.lock().expect("hub lock");
            subs.get(&topic).is_some_and(|e| e.high < last)
        };
        if !wanted {
            continue;
        }
        let limit = (last - first + 1).clamp(1, 100_000) as u32;
        read_and_deliver(&shared, topic, first - 1, limit).await;
    }
}

/// After the listening connection was lost, notices of what other instances appended
/// meanwhile are gone: every followed topic is read from the log past its mark (sockets
/// drop seqs they already sent).
async fn catch_up_all(shared: &Shared) {
    let marks: Vec<(Topic, i64)> = {
        let subs = shared.subscribers.lock().expect("hub lock");
        subs.iter()
            .filter(|(_, e)| !e.conns.is_empty())
            .map(|(t, e)| (*t, e.high))
            .collect()
    };
    for (topic, high) in marks {
        read_and_deliver(shared, topic, high, 100_000).await;
    }
}

/// Frames another instance appended past `after`, read from the log and delivered.
async fn read_and_deliver(shared: &Shared, topic: Topic, after: i64, limit: u32) {
    match shared.store.frames_since(topic, after, limit).await {
        Ok(frames) => deliver(shared, topic, &frames).await,
        Err(e) => {
            tracing::warn!(%topic, error = %e, "reading frames from another instance failed")
        }
    }
}

/// Hands `stored` (consecutive seqs) to the topic's local subscribers, if it has any,
/// after whatever lies between the topic's mark and it, read from the log. A frame is
/// serialized for the wire only when someone will receive it.
async fn deliver(shared: &Shared, topic: Topic, stored: &[Frame]) {
    let (Some(first), Some(last)) = (stored.first().map(|f| f.seq), stored.last().map(|f| f.seq))
    else {
        return;
    };
    let gap_after = {
        let subs = shared.subscribers.lock().expect("hub lock");
        match subs.get(&topic) {
            None => return,
            Some(e) if e.high >= last => return,
            Some(e) if first > e.high + 1 => Some(e.high),
            Some(_) => None,
        }
    };
    let mut batch: Vec<Arc<Delivery>> = stored
        .iter()
        .map(|f| Arc::new(Delivery::from_frame(f)))
        .collect();
    if let Some(h) = gap_after {
        match shared
            .store
            .frames_since(topic, h, (first - 1 - h).clamp(1, 100_000) as u32)
            .await
        {
            Ok(missing) => {
                let mut all: Vec<Arc<Delivery>> = missing
                    .iter()
                    .filter(|f| f.seq < first)
                    .map(|f| Arc::new(Delivery::from_frame(f)))
                    .collect();
                all.append(&mut batch);
                batch = all;
            }
            Err(e) => tracing::warn!(%topic, error = %e, "reading frames between instances failed"),
        }
    }
    fan_out(shared, topic, &batch);
}
