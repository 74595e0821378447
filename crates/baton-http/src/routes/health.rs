use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// Always `ok` when the answer is 200.
    pub status: &'static str,
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// This instance's id (stable for the life of its process).
    pub instance: String,
    /// The instances whose heartbeat is live in the store, this one included.
    pub instances: Vec<baton_core::Instance>,
}

pub async fn health(State(state): State<AppState>) -> ApiResult<axum::Json<Health>> {
    state.store.ping().await.map_err(ApiError::Unavailable)?;
    Ok(axum::Json(Health {
        status: "ok",
        version: state.config.version,
        database: state.store.backend().as_str(),
        instance: state.workflows.instance().to_string(),
        instances: state
            .store
            .live_instances()
            .await
            .map_err(ApiError::Unavailable)?,
    }))
}
