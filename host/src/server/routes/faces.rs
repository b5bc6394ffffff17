//! `POST /v1/faces`: detect the faces of one or several images and embed
//! each (InsightFace buffalo_l: SCRFD boxes, scores, 5 landmarks, ArcFace
//! 512-d unit vectors).
//!
//! The image inputs, limits and errors are those of `/v1/embed/image`;
//! images are decoded on the blocking pool and then queued, whole, on the
//! face queue, whose worker runs several images per batch.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::faces::Face;
use crate::server::error::ApiError;
use crate::server::input::read_images;
use crate::server::metrics::Queue;
use crate::server::middleware::RequestId;
use crate::server::prepare::prepare_all;
use crate::server::state::AppState;
use crate::server::timing::timing_headers;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/faces", post(faces))
}

/// Execution providers of the two models.
#[derive(Debug, Serialize)]
struct Providers {
    detection: String,
    recognition: String,
}

/// The faces of one image, with its size (boxes and landmarks are in its pixels).
#[derive(Debug, Serialize)]
struct ImageFaces {
    width: u32,
    height: u32,
    faces: Vec<Face>,
}

#[derive(Debug, Serialize)]
struct FacesResponse {
    model: String,
    providers: Providers,
    /// Offline stand-in models: the boxes follow skin colour and the embeddings mean nothing.
    random_weights: bool,
    /// One entry per image, in input order.
    images: Vec<ImageFaces>,
}

async fn faces(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    let models = state.models()?;
    let faces = models.faces.ready()?;
    let files = read_images(req, &state.config.limits).await?;
    let pipeline = faces.pipeline.clone();
    let (images, preprocess) = prepare_all(&state, Queue::Faces, files, move |index, bytes| {
        pipeline.prepare_image(bytes).map_err(|e| ApiError::from_face(index, e))
    })
    .await?;
    let sizes: Vec<(u32, u32)> = images.iter().map(|i| (i.width(), i.height())).collect();
    let done = faces.queue.submit(images, &id.0).await?;
    let headers = timing_headers(&done, Some(preprocess));
    let info = faces.pipeline.info();
    let images = sizes
        .into_iter()
        .zip(done.outputs)
        .map(|((width, height), faces)| ImageFaces { width, height, faces })
        .collect();
    let body = FacesResponse {
        model: faces.name.clone(),
        providers: Providers { detection: info.detector_device.clone(), recognition: info.recognizer_device.clone() },
        random_weights: info.random_weights,
        images,
    };
    Ok((headers, Json(body)))
}
