//! One budget for the request bodies the server holds at once, over every
//! connection and HTTP/2 stream.
//!
//! The per-request limit (`SWITCHYARD_MAX_BODY_BYTES`) bounds one body, and
//! the connection cap bounds connections, but their product does not bound
//! memory: clients that each send most of a large body and then stall hold it
//! until the request deadline, and one HTTP/2 connection carries up to 200
//! such streams. Each request with a body reserves its `Content-Length` (the
//! body limit when it declares none, capped at it) from one budget,
//! `SWITCHYARD_MAX_BUFFERED_BODY_BYTES`, before anything reads the body, and
//! gives it back when it is answered. A request that does not fit is answered
//! 429 at once, without reading its body: waiting would let stalled clients
//! hold everyone else for the request deadline. The layer that does it is
//! `middleware::reserve_body`.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// The budget, in KiB (a semaphore's permits); `None`: no limit.
pub struct BodyBudget {
    permits: Option<Arc<Semaphore>>,
    limit_bytes: usize,
}

impl BodyBudget {
    pub fn new(limit_bytes: usize) -> Self {
        let permits = (limit_bytes > 0).then(|| Arc::new(Semaphore::new(limit_bytes / 1024)));
        Self { permits, limit_bytes }
    }

    /// Bytes reserved now.
    pub fn held_bytes(&self) -> usize {
        self.permits.as_ref().map_or(0, |p| (self.limit_bytes / 1024 - p.available_permits()) * 1024)
    }

    /// Reserves `req`'s body until the returned permit is dropped (`None`: no
    /// body, or no budget); [`ApiError::BodiesBuffered`] when it does not fit now.
    pub fn reserve(&self, req: &Request, body_limit: usize) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(permits) = &self.permits else { return Ok(None) };
        let Some(bytes) = reservation(req, body_limit) else { return Ok(None) };
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        match permits.clone().try_acquire_many_owned(kib) {
            Ok(held) => Ok(Some(held)),
            Err(_) => Err(ApiError::BodiesBuffered { limit: self.limit_bytes, held: self.held_bytes(), asked: bytes }),
        }
    }
}

/// How many bytes a request reserves: its declared length, or `body_limit`
/// when it has a body of unknown length; `None` when it has no body.
fn reservation(req: &Request, body_limit: usize) -> Option<usize> {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    match declared {
        Some(0) => None,
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX).min(body_limit)),
        None if req.headers().contains_key(header::TRANSFER_ENCODING) => Some(body_limit),
        // HTTP/2 may send a body without either header: reserve as for chunked.
        None if req.version() == axum::http::Version::HTTP_2 && !req.method().is_safe() => Some(body_limit),
        None => None,
    }
}
