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
    /// The semaphore's permits when nothing is held.
    whole_kib: u32,
}

impl BodyBudget {
    pub fn new(limit_bytes: usize) -> Self {
        let whole_kib = u32::try_from(limit_bytes / 1024).unwrap_or(u32::MAX).max(1);
        let permits = (limit_bytes > 0).then(|| Arc::new(Semaphore::new(whole_kib as usize)));
        Self { permits, limit_bytes, whole_kib }
    }

    /// Bytes reserved now.
    pub fn held_bytes(&self) -> usize {
        self.permits.as_ref().map_or(0, |p| (self.whole_kib as usize - p.available_permits()) * 1024)
    }

    /// Reserves `req`'s body until the returned permit is dropped (`None`: no
    /// body, or no budget); [`ApiError::BodiesBuffered`] when it does not fit now.
    pub fn reserve(&self, req: &Request, body_limit: usize) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(permits) = &self.permits else { return Ok(None) };
        let Some(bytes) = reservation(req, body_limit) else { return Ok(None) };
        // A body larger than the whole budget takes all of it, so it still runs when nothing else does.
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX).min(self.whole_kib);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method("POST").uri("/v1/embed/text");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn a_request_reserves_its_declared_length_or_the_body_limit() {
        assert_eq!(reservation(&request(&[]), 1000), None);
        assert_eq!(reservation(&request(&[("content-length", "0")]), 1000), None);
        assert_eq!(reservation(&request(&[("content-length", "300")]), 1000), Some(300));
        assert_eq!(reservation(&request(&[("content-length", "99999999999")]), 1000), Some(1000));
        assert_eq!(reservation(&request(&[("transfer-encoding", "chunked")]), 1000), Some(1000));
    }

    #[test]
    fn the_budget_refuses_what_does_not_fit_and_takes_back_what_is_answered() {
        let budget = BodyBudget::new(10 * 1024);
        let six = request(&[("content-length", "6144")]);
        let held = budget.reserve(&six, 1 << 20).unwrap().expect("a permit");
        assert_eq!(budget.held_bytes(), 6144);
        let refused = budget.reserve(&six, 1 << 20).unwrap_err();
        assert!(matches!(refused, ApiError::BodiesBuffered { held: 6144, asked: 6144, .. }), "{refused:?}");
        drop(held);
        assert_eq!(budget.held_bytes(), 0);
        // A body over the whole budget takes all of it, so it runs when nothing else does.
        let big = request(&[("content-length", "50000")]);
        let all = budget.reserve(&big, 1 << 20).unwrap().expect("the whole budget");
        assert_eq!(budget.held_bytes(), 10 * 1024);
        assert!(budget.reserve(&request(&[("content-length", "1")]), 1 << 20).is_err());
        drop(all);
        assert!(BodyBudget::new(0).reserve(&big, 1 << 20).unwrap().is_none(), "0: no budget");
    }
}
