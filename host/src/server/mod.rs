//! `switchyard serve`: the HTTP service (axum on tokio).
//!
//! - [`config`]: flags and env, the effective configuration;
//! - [`routes`]: the router, one module per group of routes;
//! - [`input`]: request bodies to model inputs, with the limits;
//! - [`prepare`]: image decoding on the blocking pool, in parallel;
//! - [`batcher`]: one queue and one worker thread per model (dynamic batching);
//! - [`devices`]: the selected device and the CPU fallback behind each queue;
//! - [`face_service`]: the face models behind their queue, or why they are absent;
//! - [`error`]: the one error type and its status table;
//! - [`middleware`]: request id, tracing span, metrics, API key;
//! - [`metrics`]: the Prometheus counters and histograms;
//! - [`state`]: what handlers share, and loading the models.
//!
//! The socket is bound first and the models load in the background, so that
//! `/health` answers at once and `/ready` turns 200 when the models are
//! warm. On SIGINT or SIGTERM the server stops accepting, finishes the
//! requests in flight, then lets the model workers drain their queues.

pub mod batcher;
pub mod config;
pub mod devices;
pub mod error;
pub mod face_service;
pub mod input;
pub mod metrics;
pub mod middleware;
pub mod prepare;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

pub use config::{ServeArgs, ServerConfig};
pub use state::{LoadError, LoadPlan};

use state::{AppState, Models};

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
}

/// Runs the server until SIGINT/SIGTERM (blocking).
pub fn serve(config: ServerConfig, plan: LoadPlan) -> Result<(), ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serve")
        .build()
        .map_err(ServeError::Runtime)?
        .block_on(run(config, plan))
}

async fn run(config: ServerConfig, plan: LoadPlan) -> Result<(), ServeError> {
    tracing::info!(config = ?config, plan = ?plan, "serve: effective configuration");
    let addr = config.addr;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(%local, "listening");
    eprintln!("switchyard serve: listening on http://{local}");
    let state = Arc::new(AppState::new(config));
    // Fires on a signal, or when loading fails (the server must not stay up unready forever).
    let (stop_tx, mut stop_rx) = watch::channel(false);

    let loader = {
        let state = state.clone();
        let stop_tx = stop_tx.clone();
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
                    let _ = stop_tx.send(true);
                    Err(e)
                }
            }
        })
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing requests in flight");
        let _ = stop_tx.send(true);
    });

    let app = routes::router(state.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(ServeError::Serve)?;

    let loaded = loader.await.map_err(|_| ServeError::LoaderPanicked)?;
    if let Some(models) = state.models.get() {
        let models = models.clone();
        let _ = tokio::task::spawn_blocking(move || models.close()).await;
    }
    tracing::info!("stopped");
    loaded.map_err(ServeError::from)
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
