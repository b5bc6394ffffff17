//! Image decoding and preprocessing for the model routes, off the async
//! runtime: each file of a request goes to tokio's blocking pool (at most
//! `preprocess_workers` at once across all requests), so decoding overlaps
//! the batch a model worker is running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::error::ApiError;
use super::metrics::Queue;
use super::state::AppState;

/// Runs `prepare(index, bytes)` on every file in parallel; the results in
/// input order and the wall time, or the error of the first file that failed.
pub async fn prepare_all<T, F>(
    state: &Arc<AppState>,
    queue: Queue,
    files: Vec<Bytes>,
    prepare: F,
) -> Result<(Vec<T>, Duration), ApiError>
where
    T: Send + 'static,
    F: Fn(usize, &[u8]) -> Result<T, ApiError> + Send + Sync + 'static,
{
    let started = Instant::now();
    let prepare = Arc::new(prepare);
    let mut tasks = Vec::with_capacity(files.len());
    for (index, bytes) in files.into_iter().enumerate() {
        let prepare = prepare.clone();
        let state = state.clone();
        let span = tracing::Span::current();
        tasks.push(tokio::spawn(async move {
            let _permit = state.preprocess.acquire().await.map_err(|_| ApiError::ShuttingDown)?;
            let metrics = state.metrics.clone();
            tokio::task::spawn_blocking(move || {
                let _entered = span.enter();
                let t = Instant::now();
                let prepared = prepare(index, &bytes);
                metrics.preprocess(queue, t.elapsed());
                prepared
            })
            .await
            .map_err(|e| ApiError::Internal(format!("image preprocessing stopped: {e}")))
        }));
    }
    let mut prepared = Vec::with_capacity(tasks.len());
    for task in tasks {
        let result = task.await.map_err(|e| ApiError::Internal(format!("image preprocessing stopped: {e}")))??;
        prepared.push(result?);
    }
    Ok((prepared, started.elapsed()))
}
