//! `POST /v1/embed/text` and `POST /v1/embed/image`.
//!
//! Images are decoded and preprocessed on tokio's blocking pool (at most
//! `preprocess_workers` at once), so decoding overlaps the batch the model
//! worker is running; texts are tokenized by the worker, with the batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::server::batcher::Done;
use crate::server::error::{ApiError, Rejection};
use crate::server::input::{read_images, TextRequest};
use crate::server::middleware::RequestId;
use crate::server::state::{AppState, Models};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/embed/text", post(embed_text)).route("/v1/embed/image", post(embed_image))
}

/// The answer of both routes.
#[derive(Debug, Serialize)]
struct EmbedResponse {
    model: String,
    dim: usize,
    embeddings: Vec<Vec<f32>>,
}

/// `x-queue-ms`, `x-inference-ms`, `x-batch-size` (and `x-preprocess-ms` for images).
pub fn timing_headers<O>(done: &Done<O>, preprocess: Option<Duration>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let ms = |d: Duration| format!("{:.3}", d.as_secs_f64() * 1e3);
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = value.parse() {
            h.insert(name, v);
        }
    };
    put("x-queue-ms", ms(done.queue));
    put("x-inference-ms", ms(done.inference));
    put("x-batch-size", done.batch_size.to_string());
    if let Some(p) = preprocess {
        put("x-preprocess-ms", ms(p));
    }
    h
}

fn respond(models: &Models, done: Done<Vec<f32>>, preprocess: Option<Duration>) -> impl IntoResponse {
    let headers = timing_headers(&done, preprocess);
    let c = &models.clip.model.config;
    (headers, Json(EmbedResponse { model: c.model.clone(), dim: c.embed_dim, embeddings: done.outputs }))
}

async fn embed_text(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    body: Result<Json<TextRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let models = state.models()?;
    let Json(body) = body.map_err(|e| e.into_api_error(state.config.limits.max_body_bytes))?;
    let texts = body.into_texts(&state.config.limits)?;
    let done = models.text.submit(texts, &id.0).await?;
    Ok(respond(models, done, None))
}

async fn embed_image(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    let models = state.models()?;
    let files = read_images(req, &state.config.limits).await?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(files.len());
    for bytes in files {
        let clip = models.clip.clone();
        let state = state.clone();
        let span = tracing::Span::current();
        tasks.push(tokio::spawn(async move {
            let _permit = state.preprocess.acquire().await.map_err(|_| ApiError::ShuttingDown)?;
            let metrics = state.metrics.clone();
            tokio::task::spawn_blocking(move || {
                let _entered = span.enter();
                let t = Instant::now();
                let prepared = clip.prepare_image(&bytes);
                metrics.preprocess(t.elapsed());
                prepared
            })
            .await
            .map_err(|e| ApiError::Internal(format!("image preprocessing stopped: {e}")))
        }));
    }
    let mut prepared = Vec::with_capacity(tasks.len());
    for (index, task) in tasks.into_iter().enumerate() {
        let result = task.await.map_err(|e| ApiError::Internal(format!("image preprocessing stopped: {e}")))??;
        prepared.push(result.map_err(|e| ApiError::from_pipeline(index, e))?);
    }
    let preprocess = started.elapsed();
    let done = models.image.submit(prepared, &id.0).await?;
    Ok(respond(models, done, Some(preprocess)))
}
