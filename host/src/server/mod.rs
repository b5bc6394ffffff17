//! `switchyard serve`: the HTTP service (axum on tokio).
//!
//! - [`config`]: flags and env, the effective configuration;
//! - [`accept`]: the accept loop, with the header read timeout and the connection cap;
//! - [`routes`]: the router, one module per group of routes;
//! - [`input`]: request bodies to model inputs, with the limits;
//! - [`prepare`]: image decoding on the blocking pool, in parallel;
//! - [`batcher`]: one queue and one worker thread per model (dynamic batching);
//! - [`devices`]: the selected device and the CPU fallback behind each queue;
//! - [`face_service`]: the face models behind their queue, or why they are absent;
//! - [`immich_service`]: the models of Immich's protocol, loaded from its cache on first use;
//! - [`error`]: the one error type and its status table;
//! - [`middleware`]: request id, tracing span, metrics, API key;
//! - [`metrics`]: the Prometheus counters and histograms;
//! - [`state`]: what handlers share, and loading the models;
//! - [`timing`]: the timing headers every model answer carries;
//! - [`swap`] / [`handoff`]: plugin swaps (SIGHUP, `POST /admin/reload`): validate,
//!   drain, re-execute in place with the listening socket.
//!
//! The socket is bound first and the models load in the background, so that
//! `/health` answers at once and `/ready` turns 200 when the models are
//! warm. On SIGINT or SIGTERM the server stops accepting, finishes the
//! requests in flight, then lets the model workers drain their queues. After
//! a validated swap it drains the same way (bounded), then re-executes; the
//! next image adopts the socket and loads the models before it accepts, so
//! connections wait in the backlog meanwhile.

pub mod accept;
pub mod batcher;
pub mod bodies;
pub mod config;
pub mod devices;
pub mod error;
pub mod face_service;
pub mod handoff;
pub mod immich_service;
pub mod input;
pub mod listener;
pub mod metrics;
pub mod middleware;
pub mod prepare;
pub mod routes;
pub mod state;
pub mod swap;
pub mod timing;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use crate::loader::LoadPlan;
pub use config::{ServeArgs, ServerConfig};
pub use state::LoadError;
pub use swap::Replan;

use handoff::{HandoffError, Inherited, KeptSocket};
use listener::Phase;
use state::{AppState, Models};
use swap::SwapControl;

/// How long responses carry `Connection: close` before a swap closes idle
/// keep-alive connections (it stops accepting at once: [`listener`]): a
/// client in a request loop gets one such answer and moves to a new
/// connection, which waits in the backlog for the new image.
const KEEP_ALIVE_GRACE: Duration = Duration::from_secs(1);
/// The drain bound when the request deadline is off.
const DEFAULT_DRAIN_BOUND: Duration = Duration::from_secs(60);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}; is another server using the port? (set SWITCHYARD_PORT)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the model loader stopped unexpectedly")]
    LoaderPanicked,
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error(transparent)]
    Handoff(#[from] HandoffError),
}

/// Runs the server until SIGINT/SIGTERM (blocking), re-executing in place on
/// a plugin swap. `replan` reads the settings again for a swap's check.
pub fn serve(config: ServerConfig, plan: LoadPlan, replan: Replan) -> Result<(), ServeError> {
    // Before any thread starts: it removes the handoff variables from the environment.
    let inherited = handoff::take_inherited()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()
        .map_err(ServeError::Runtime)?
        .block_on(run(config, plan, replan, inherited))
}

async fn listen(
    addr: SocketAddr,
    inherited: Option<std::net::TcpListener>,
) -> Result<tokio::net::TcpListener, ServeError> {
    match inherited {
        Some(l) => tokio::net::TcpListener::from_std(l).map_err(ServeError::Serve),
        None => tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source }),
    }
}

async fn run(config: ServerConfig, plan: LoadPlan, replan: Replan, inherited: Inherited) -> Result<(), ServeError> {
    let effective = serde_json::to_string(&config).unwrap_or_else(|e| format!("unprintable: {e}"));
    tracing::info!(config = %effective, plan = ?plan, "serve: effective configuration");
    let swapped = inherited.listener.is_some();
    let listener = listen(config.addr, inherited.listener).await?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    // Keeps the socket open (and its backlog queuing) when axum drops its listener at a swap.
    let kept = KeptSocket::keep(&listener)?;
    let history = inherited.history;
    if swapped {
        tracing::info!(%local, swap = history.count, from = ?history.previous_plugin_path, from_sha256 = ?history.previous_plugin_sha256, "plugin swap: adopted the listening socket; connections wait in its backlog until the models are loaded");
    } else {
        tracing::info!(%local, "listening");
        if !crate::logging::json_lines() {
            eprintln!("switchyard serve: listening on http://{local}");
        }
    }
    // Serving until a signal, a failed load (the server must not stay up unready forever) or a swap.
    let (phase_tx, phase_rx) = watch::channel(Phase::Serving);
    let state = Arc::new(AppState::new(config, SwapControl::new(replan, history, phase_tx.clone())));
    #[cfg(unix)]
    hangups(state.clone());

    let loader = {
        let state = state.clone();
        let phase_tx = phase_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = Models::load(&plan, &state.config, &state.metrics);
            match result {
                Ok(models) => {
                    tracing::info!(device = %models.runtime.report.device, "ready");
                    let _ = state.models.set(Arc::new(models));
                    Ok(())
                }
                Err(e) => {
                    tracing::error!(error = %crate::util::error_chain(&e), "loading failed; stopping");
                    let _ = phase_tx.send(Phase::Shutdown);
                    Err(e)
                }
            }
        })
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing requests in flight");
        let _ = phase_tx.send(Phase::Shutdown);
    });
    let mut loader = Some(loader);
    if swapped {
        // After a swap nothing is accepted before the models are warm: clients wait, not fail.
        let loaded = loader.take().expect("not awaited yet").await.map_err(|_| ServeError::LoaderPanicked)?;
        loaded?;
        if let Some(models) = state.models.get() {
            let r = &models.runtime.report;
            tracing::info!(swap = state.swap.history.count, from_sha256 = ?state.swap.history.previous_plugin_sha256, to_sha256 = r.plugin_sha256.as_deref().unwrap_or("unreadable"), plugin = %r.plugin_path.display(), "plugin swap complete; accepting connections");
        }
    }

    serve_until_stopped(listener, state.clone(), phase_rx.clone()).await?;

    if *phase_rx.borrow() == Phase::Swap {
        if let Some(models) = state.models.get() {
            let models = models.clone();
            let _ = tokio::task::spawn_blocking(move || models.close()).await;
        }
        let next = state.swap.next_history().unwrap_or_default();
        tracing::info!(swap = next.count, "drained; re-executing with the listening socket");
        let e = handoff::exec(&kept, &next);
        tracing::error!(error = %crate::util::error_chain(&e), "plugin swap failed");
        return Err(e.into());
    }
    let loaded = match loader {
        Some(loader) => loader.await.map_err(|_| ServeError::LoaderPanicked)?,
        None => Ok(()),
    };
    if let Some(models) = state.models.get() {
        let models = models.clone();
        let _ = tokio::task::spawn_blocking(move || models.close()).await;
    }
    tracing::info!("stopped");
    loaded.map_err(ServeError::from)
}

/// Serves until the phase leaves `Serving`, then drains: all requests in
/// flight on a shutdown; on a swap, those that finish within the bound.
async fn serve_until_stopped(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    phase: watch::Receiver<Phase>,
) -> Result<(), ServeError> {
    let drain_bound = state.config.batch.request_timeout.unwrap_or(DEFAULT_DRAIN_BOUND) + KEEP_ALIVE_GRACE;
    let (limits, metrics) = (state.config.connections, state.metrics.clone());
    let app = routes::router(state);
    let mut graceful = phase.clone();
    let listener = listener::PhasedListener::new(listener, phase.clone());
    let server = accept::serve(listener, app, limits, metrics, async move {
        let _ = graceful.wait_for(|p| *p != Phase::Serving).await;
        if *graceful.borrow() == Phase::Swap {
            tokio::time::sleep(KEEP_ALIVE_GRACE).await;
        }
    });
    let mut bound = phase;
    let bound = async move {
        let _ = bound.wait_for(|p| *p == Phase::Swap).await;
        tokio::time::sleep(drain_bound).await;
    };
    tokio::select! {
        _ = server => Ok(()),
        _ = bound => {
            tracing::warn!(bound_ms = drain_bound.as_millis() as u64, "requests still in flight after the drain bound; the swap cuts them");
            Ok(())
        }
    }
}

/// SIGHUP: a plugin swap (registered at once, so that a SIGHUP no longer kills the process).
#[cfg(unix)]
fn hangups(state: Arc<AppState>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; plugin swaps only through POST /admin/reload");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            // Refusals are logged by the swap itself.
            let _ = state.request_swap("SIGHUP").await;
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
