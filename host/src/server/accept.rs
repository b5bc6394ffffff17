//! The accept loop: connections from the listener to hyper, with the two
//! limits a slow or hostile client must not get around.
//!
//! - A header read timeout (`SWITCHYARD_HEADER_READ_TIMEOUT_S`, 30 s): a
//!   connection that has not sent a whole request head within it is closed
//!   (hyper's HTTP/1 timer, which runs from the connection's start and again
//!   while a kept-alive connection waits for its next request). axum's own
//!   `serve` sets no timer, so half-sent requests stayed open for ever.
//!   Before hyper sees a byte (while it tells HTTP/1 from HTTP/2) the same
//!   limit applies to the first bytes, and an HTTP/2 preface must arrive
//!   whole within it.
//! - A cap on open connections (`SWITCHYARD_MAX_CONNECTIONS`; default the
//!   open-file limit less a reserve for models, plugins and logs). At the cap
//!   the loop stops accepting: new connections wait in the socket's listen
//!   backlog (the kernel holds up to its `somaxconn`, then drops SYNs, which
//!   clients retry) until a connection closes. Nothing is refused with an
//!   error, and the process never runs out of descriptors.
//!
//! Graceful shutdown is axum's: stop accepting, let each connection finish
//! its request in flight, then wait for all of them to close.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::listener::PhasedListener;
use super::metrics::Metrics;

/// Descriptors kept free of connections at the default cap (models, plugins, logs, the runtimes' own).
const FD_RESERVE: u64 = 256;

/// The connection limits in effect.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ConnectionLimits {
    /// `None`: no limit.
    #[serde(rename = "header_read_timeout_s", serialize_with = "optional_secs")]
    pub header_read_timeout: Option<Duration>,
    pub max_connections: usize,
}

fn optional_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_secs()),
        None => s.serialize_none(),
    }
}

/// The default cap: the open-file limit less [`FD_RESERVE`] (at least 64).
/// Raises the soft limit to the hard one first (as Go's runtime and nginx
/// do), so that a host's default of 1,024 does not cap the server at 768.
pub fn default_max_connections() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit with a valid resource and a pointer to a live struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1024 - FD_RESERVE as usize;
            }
            let wanted = limit.rlim_max.min(1 << 20);
            if limit.rlim_cur < wanted {
                let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = wanted;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
        let current = limit.rlim_cur as u64;
        current.saturating_sub(FD_RESERVE).max(64) as usize
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    mut listener: PhasedListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    // HTTP/2: pings find dead peers; a stalled stream is bounded by the request deadline.
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol()
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout.unwrap_or(Duration::from_secs(20)));
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                metrics.connections_capped();
                tracing::warn!(max_connections = limits.max_connections, "the connection cap is reached; new connections wait in the listen backlog until one closes (SWITCHYARD_MAX_CONNECTIONS)");
                tokio::select! {
                    _ = &mut shutdown => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<Incoming>| app.clone().oneshot(req.map(Body::new)));
        let (builder, watcher, metrics, mut stopping) =
            (builder.clone(), graceful.watcher(), metrics.clone(), stop_rx.clone());
        metrics.connection_opened();
        tokio::spawn(async move {
            let _slot = slot;
            // Until the first bytes arrive hyper runs no timer (it is still telling HTTP/1 from
            // an HTTP/2 preface): a connection that sends nothing, or half a preface, ends here.
            if let Some(limit) = limits.header_read_timeout {
                let started = tokio::select! {
                    started = tokio::time::timeout(limit, first_bytes(&stream)) => started,
                    _ = stopping.wait_for(|stop| *stop) => Ok(false),
                };
                match started {
                    Ok(true) => {}
                    Ok(false) => return metrics.connection_closed(false),
                    Err(_) => return metrics.connection_closed(true),
                }
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let outcome = watcher.watch(connection).await;
            metrics.connection_closed(outcome.as_ref().err().map(|e| closed_by_timeout(e.as_ref())).unwrap_or(false));
        });
    }
    let _ = stop_tx.send(true);
    drop(listener);
    graceful.shutdown().await;
}

/// Waits for a connection's first bytes: false if it closed first. A possible
/// HTTP/2 preface (`PRI * HTTP/2.0...`) must arrive whole (24 bytes), since
/// hyper's HTTP/2 side has no header timer of its own.
async fn first_bytes(stream: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 24];
    loop {
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if buf[0] != b'P' || n >= buf.len() => return true,
            // A partial preface: peek answers at once while those bytes wait, so poll.
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Whether a connection ended because its client did not send a request head in time.
fn closed_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<hyper::Error>().is_some_and(|h| h.is_timeout()) {
            return true;
        }
        source = s.source();
    }
    false
}
