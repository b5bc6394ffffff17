//! The router: which path goes to which handler, and which layers wrap them.
//!
//! Model routes are grouped in [`api`], behind the API key; `/health` and
//! `/ready` stay open for orchestrators' probes; `/admin/*` is behind its own
//! admin key. A model route is a module
//! here with a `routes()` function merged in [`api`]; its queue lives in
//! [`Models`](super::state::Models).

mod admin;
mod embed;
mod faces;
pub mod immich;
pub mod openai;
mod ops;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Uri;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::ApiError;
use super::middleware::{observe, require_admin_key, require_key, reserve_body};
use super::state::AppState;

/// Every route of the service.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .merge(api(state.clone()))
        .merge(admin(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(from_fn_with_state(state.clone(), reserve_body))
        .layer(axum::middleware::from_fn(openai::openai_errors))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The routes behind the API key.
fn api(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/info", get(ops::info))
        .route("/metrics", get(ops::metrics))
        .merge(embed::routes())
        .merge(faces::routes())
        .merge(immich::routes())
        .merge(openai::routes())
        .route_layer(from_fn_with_state(state, require_key))
}

/// The routes behind the admin key (not the API key).
fn admin(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new().route("/admin/reload", post(admin::reload)).route_layer(from_fn_with_state(state, require_admin_key))
}

async fn not_found(uri: Uri) -> Response {
    ApiError::NotFound(uri.path().to_string()).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::MethodNotAllowed { method: req.method().to_string(), path: req.uri().path().to_string() }.into_response()
}
