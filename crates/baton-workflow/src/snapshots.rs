use async_trait::async_trait;
use baton_agent::AgentSnapshots;
use baton_core::{SnapshotState, Topic};
use baton_events::Snapshots;
use baton_store::StoreResult;

use crate::{WorkflowEngine, WorkflowError};

/// Snapshots of every topic: runs as `GET /api/runs/:id` shows them, the rest as the
/// agent runtime does.
pub struct WorkflowSnapshots {
    pub agents: AgentSnapshots,
    pub engine: WorkflowEngine,
}

#[async_trait]
impl Snapshots for WorkflowSnapshots {
    async fn snapshot(&self, topic: Topic) -> StoreResult<Option<SnapshotState>> {
        match topic {
            Topic::Run(id) => match self.engine.view(id).await {
                Ok(view) => Ok(Some(SnapshotState::Run {
                    run: Some(Box::new(view)),
                })),
                Err(WorkflowError::NotFound(_)) => Ok(None),
                Err(WorkflowError::Store(e)) => Err(e),
                Err(e) => Err(baton_store::StoreError::database(std::io::Error::other(
                    e.to_string(),
                ))),
            },
            other => self.agents.snapshot(other).await,
        }
    }
}
