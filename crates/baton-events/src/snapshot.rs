use std::sync::Arc;

use async_trait::async_trait;
use baton_core::{SnapshotState, Topic};
use baton_store::{Store, StoreResult};

/// The current state of a topic, sent as the `state` of a `snapshot` frame. `None`
/// when the topic names nothing that exists.
#[async_trait]
pub trait Snapshots: Send + Sync + 'static {
    async fn snapshot(&self, topic: Topic) -> StoreResult<Option<SnapshotState>>;
}

/// Snapshots read straight from the store.
pub struct StoreSnapshots(pub Arc<dyn Store>);

#[async_trait]
impl Snapshots for StoreSnapshots {
    async fn snapshot(&self, topic: Topic) -> StoreResult<Option<SnapshotState>> {
        match topic {
            Topic::Chat(id) => Ok(self.0.get_chat(id).await?.map(|chat| SnapshotState::Chat {
                chat,
                session: None,
            })),
            Topic::Run(_) => Ok(if self.0.topic_exists(topic).await? {
                Some(SnapshotState::Run { run: None })
            } else {
                None
            }),
            Topic::Tasks => Ok(Some(SnapshotState::Tasks { tasks: vec![] })),
        }
    }
}
