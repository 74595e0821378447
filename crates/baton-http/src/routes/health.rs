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
}

pub async fn health(State(state): State<AppState>) -> ApiResult<axum::Json<Health>> {
    state.store.ping().await.map_err(ApiError::Unavailable)?;
    Ok(axum::Json(Health {
        status: "ok",
        version: state.config.version,
        database: state.store.backend().as_str(),
    }))
}
