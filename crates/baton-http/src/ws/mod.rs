//! `GET /ws`: subscribe to topics, catch up (snapshot or replay from `since`), then
//! receive live frames. Protocol in SPEC section 3.
mod connection;
pub(crate) mod protocol;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

pub async fn upgrade(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rej) => {
            return ApiError::bad(
                "websocket_required",
                format!(
                    "/ws speaks WebSocket only: {}",
                    rej.body_text().to_lowercase()
                ),
            )
            .into_response()
        }
    };
    let max = state.config.ws_max_message_bytes;
    let tasks = state.tasks.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| tasks.track_future(connection::run(socket, state)))
}
