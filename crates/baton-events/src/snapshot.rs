use std::sync::Arc;

use async_trait::async_trait;
use baton_core::Topic;
use baton_store::{Store, StoreResult};
use serde_json::{json, Value};

/// The current state of a topic, sent as the `state` of a `snapshot` frame. `None`
/// when the topic names nothing that exists.
#[async_trait]
pub trait Snapshots: Send + Sync + 'static {
    async fn snapshot(&self, topic: Topic) -> StoreResult<Option<Value>>;
}

/// Snapshots read straight from the store.
pub struct StoreSnapshots(pub Arc<dyn Store>);

#[async_trait]
impl Snapshots for StoreSnapshots {
    async fn snapshot(&self, topic: Topic) -> StoreResult<Option<Value>> {
        match topic {
            Topic::Chat(id) => Ok(self
                .0
                .get_chat(id)
                .await?
                .map(|chat| json!({ "chat": chat, "session": null }))),
            Topic::Run(_) => Ok(if self.0.topic_exists(topic).await? {
                Some(json!({ "run": null }))
            } else {
                None
            }),
            Topic::Tasks => Ok(Some(json!({ "tasks": [] }))),
        }
    }
}
