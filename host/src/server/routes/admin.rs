//! Admin routes, behind their own bearer token (`SWITCHYARD_ADMIN_KEY`), not
//! the API key: switching the plugin of a running service is an operator's
//! act, and an API key handed to clients must not allow it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::server::swap::{Planned, SwapError};

/// `POST /admin/reload`: validate a plugin swap and start it (202), or say why not (409).
pub async fn reload(State(state): State<Arc<AppState>>) -> Result<(StatusCode, Json<Planned>), ApiError> {
    match state.request_swap("POST /admin/reload").await {
        Ok(planned) => Ok((StatusCode::ACCEPTED, Json(planned))),
        Err(e @ (SwapError::Panicked | SwapError::NoExecutable | SwapError::Unsupported)) => {
            Err(ApiError::SwapFailed(e.to_string()))
        }
        Err(e) => Err(ApiError::SwapRefused(e.to_string())),
    }
}
