use std::sync::Arc;

use async_trait::async_trait;
use baton_core::{SnapshotState, Topic};
use baton_events::{Snapshots, StoreSnapshots};
use baton_store::{Store, StoreResult};

use crate::shared::session_view;

/// Topic snapshots that include the chat's current session.
pub struct AgentSnapshots(pub Arc<dyn Store>);

#[async_trait]
impl Snapshots for AgentSnapshots {
    async fn snapshot(&self, topic: Topic) -> StoreResult<Option<SnapshotState>> {
        match topic {
            Topic::Chat(id) => {
                let Some(chat) = self.0.get_chat(id).await? else {
                    return Ok(None);
                };
                let session = self.0.list_sessions(id).await?.pop();
                Ok(Some(SnapshotState::Chat {
                    chat,
                    session: session.as_ref().map(session_view),
                }))
            }
            // The newest tasks; older ones page in over `GET /api/tasks`.
            Topic::Tasks => Ok(Some(SnapshotState::Tasks {
                tasks: self.0.list_tasks(None, 100, None).await?,
            })),
            other => StoreSnapshots(self.0.clone()).snapshot(other).await,
        }
    }
}
