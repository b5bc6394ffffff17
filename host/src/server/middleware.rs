//! Per-request plumbing: a request id, a tracing span, the metrics of every
//! answer, the optional bearer API key, and the request-body budget
//! ([`super::bodies`]).
//!
//! During a plugin swap's drain every response carries `Connection: close`,
//! so keep-alive clients open a new connection (queued for the next image)
//! instead of reusing one that is about to close.
//!
//! The span (`request{id, method, route}`) is entered for the whole handler,
//! and the batcher captures it, so a batch's span has the request's as parent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::error::{ApiError, ErrorType};
use super::state::AppState;

/// The id of the current request (from `x-request-id`, or made here).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn request_id(req: &Request) -> String {
    let given = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).filter(|v| {
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    });
    match given {
        Some(id) => id.to_string(),
        None => format!("{:08x}-{}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed)),
    }
}

/// Outermost layer: id, span, timing and metrics.
pub async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    // Unmatched paths share one label, so scanners cannot grow the metrics without bound.
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", id = %id, method = %req.method(), route = %route);
    req.extensions_mut().insert(RequestId(id.clone()));
    let has_body = req.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let mut response = next.run(req).instrument(span.clone()).await;
    // A request refused before its body was read (wrong content type, unknown route, bad key,
    // too large) leaves that body unread, and hyper then closes the connection after the answer,
    // without saying so: a client that reuses it for its next request gets EOF (seen once in
    // 12,138 soak requests). Saying `Connection: close` makes such clients reconnect instead.
    // During a swap's drain, too: the client must not send another request on this connection.
    let refused_unread = has_body && (response.status().is_client_error() || response.status().is_server_error());
    if refused_unread || state.swap.draining.load(Ordering::SeqCst) {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let took = start.elapsed();
    let status = response.status().as_u16();
    let error_type = response.extensions().get::<ErrorType>().map(|e| e.0);
    state.metrics.request(&route, status, error_type, took);
    span.in_scope(|| tracing::debug!(status, ms = took.as_secs_f64() * 1e3, "request done"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Holds the request's body in the budget while it is handled; 429 at once,
/// body unread, when it does not fit.
pub async fn reserve_body(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match state.bodies.reserve(&req, state.config.limits.max_body_bytes) {
        Ok(_held) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

/// Checks `Authorization: Bearer <key>` when a key is configured; constant-time.
pub async fn require_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        if !bearer_matches(&req, key) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// Whether `Authorization: Bearer <token>` carries `key`, compared in constant time.
fn bearer_matches(req: &Request, key: &super::config::Secret) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    bool::from(given.ct_eq(key.expose()))
}

/// Checks `Authorization: Bearer <SWITCHYARD_ADMIN_KEY>` for the admin routes;
/// constant-time. Without a configured admin key they are off (403).
pub async fn require_admin_key(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = &state.config.admin_key else { return ApiError::AdminDisabled.into_response() };
    if !bearer_matches(&req, key) {
        return ApiError::AdminUnauthorized.into_response();
    }
    next.run(req).await
}
