//! `POST /v1/embed/text` and `POST /v1/embed/image`.
//!
//! Images are decoded and preprocessed on tokio's blocking pool
//! ([`prepare_all`]), so decoding overlaps the batch the model worker is
//! running; texts are tokenized by the worker, with the batch.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::server::batcher::Done;
use crate::server::error::{ApiError, Rejection};
use crate::server::input::{read_images, TextRequest};
use crate::server::metrics::Queue;
use crate::server::middleware::RequestId;
use crate::server::prepare::prepare_all;
use crate::server::state::{AppState, Models};
use crate::server::timing::timing_headers;

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
    let clip = models.clip.clone();
    let (prepared, preprocess) = prepare_all(&state, Queue::Image, files, move |index, bytes| {
        clip.prepare_image(bytes).map_err(|e| ApiError::from_pipeline(index, e))
    })
    .await?;
    let done = models.image.submit(prepared, &id.0).await?;
    Ok(respond(models, done, Some(preprocess)))
}
