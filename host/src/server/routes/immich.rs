//! `GET /ping` and `POST /predict`: the routes of Immich's machine-learning
//! service, so that an Immich server can use switchyard as its ML URL.
//!
//! The form is what Immich's server sends (`machine-learning.repository.ts`,
//! `getFormData`): `entries` (the JSON text of the tasks, see
//! [`crate::immich::protocol`]) and either an `image` file or a `text` field;
//! other fields are ignored, as FastAPI ignores them. As in Immich's service,
//! an image wins when both are sent, neither is 400, a missing or malformed
//! `entries` is 422. The answer has Immich's shapes:
//!
//! ```text
//! {"clip": "[0.01, ...]", "imageHeight": 480, "imageWidth": 640}
//! {"clip": "[0.01, ...]"}
//! {"facial-recognition": [{"boundingBox": {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 140.0},
//!                          "embedding": "[...]", "score": 0.83}], "imageHeight": 480, "imageWidth": 640}
//! ```
//!
//! Errors keep switchyard's `{error, error_type}` shape (Immich's server reads
//! only the status). The image is decoded once, at full size with PIL's
//! semantics (no reduced-scale JPEG decode: Immich's pixels), on the blocking
//! pool; CLIP and faces of one image run on their queues at the same time.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Serialize;

use crate::image::decode::{decode_rgb, DecodeLimits};
use crate::immich::protocol::{embedding_string, EntriesError, Input, Plan};
use crate::server::batcher::Done;
use crate::server::config::Limits;
use crate::server::error::{ApiError, Rejection};
use crate::server::immich_service::api_error;
use crate::server::metrics::Queue;
use crate::server::middleware::RequestId;
use crate::server::prepare::prepare_all;
use crate::server::state::AppState;
use crate::server::timing::timing_headers;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/ping", get(ping)).route("/predict", post(predict))
}

/// Immich's server checks `/ping` for the text `pong`.
async fn ping() -> &'static str {
    "pong"
}

/// The fields of the form that matter.
#[derive(Default)]
struct Form {
    entries: Option<String>,
    image: Option<Bytes>,
    text: Option<String>,
}

async fn read_form(req: Request, body_limit: usize) -> Result<Form, ApiError> {
    let mut multipart = Multipart::from_request(req, &()).await.map_err(|e| e.into_api_error(body_limit))?;
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(|e| e.into_api_error(body_limit))? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "image" => form.image = Some(field.bytes().await.map_err(|e| e.into_api_error(body_limit))?),
            "entries" | "text" => {
                let value = field.text().await.map_err(|e| e.into_api_error(body_limit))?;
                if name == "entries" {
                    form.entries = Some(value);
                } else {
                    form.text = Some(value);
                }
            }
            _ => {}
        }
    }
    Ok(form)
}

/// Immich's `BoundingBox`.
#[derive(Debug, Serialize)]
struct BoundingBox {
    x1: f32,
    y1: f32,
    x2: f32,
    y2: f32,
}

/// Immich's `DetectedFace`.
#[derive(Debug, Serialize)]
struct DetectedFace {
    #[serde(rename = "boundingBox")]
    bounding_box: BoundingBox,
    /// The JSON text of the embedding.
    embedding: String,
    score: f32,
}

/// The answer: the tasks' outputs by task, and the image's size for an image.
/// f32 values are written as the shortest decimal that reads back as the
/// same f32, as orjson writes numpy's float32.
#[derive(Debug, Default, Serialize)]
struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    clip: Option<String>,
    #[serde(rename = "facial-recognition", skip_serializing_if = "Option::is_none")]
    faces: Option<Vec<DetectedFace>>,
    #[serde(rename = "imageHeight", skip_serializing_if = "Option::is_none")]
    image_height: Option<u32>,
    #[serde(rename = "imageWidth", skip_serializing_if = "Option::is_none")]
    image_width: Option<u32>,
}

fn entries_error(e: EntriesError) -> ApiError {
    if e.is_bad_request() {
        ApiError::BadRequest(e.to_string())
    } else {
        ApiError::Param { param: "entries", message: e.to_string() }
    }
}

fn first<O>(done: Done<O>) -> Result<O, ApiError> {
    done.outputs.into_iter().next().ok_or_else(|| ApiError::Internal("the model returned no output".into()))
}

/// What a `POST /predict` asks for: its plan, and the input it works on.
#[derive(Debug)]
pub struct Predict {
    pub plan: Plan,
    pub input: PredictInput,
}

/// The input of a request, checked against its plan.
#[derive(Debug)]
pub enum PredictInput {
    /// The `image` file's bytes, not decoded yet (an image wins over a `text`).
    Image(Bytes),
    /// The `text` field, within `max_text_chars`.
    Text(String),
}

/// Everything `POST /predict` checks before a model is needed: the form,
/// `entries` (missing or malformed: 422; `recognition` without `detection`:
/// 400), an `image` or a `text` (neither: 400), the input against the tasks
/// (422) and the text's length (422). The `immich_entries` fuzz target calls it.
pub async fn read_request(req: Request, limits: &Limits) -> Result<Predict, ApiError> {
    let form = read_form(req, limits.max_body_bytes).await?;
    let entries = form.entries.ok_or_else(|| ApiError::Param {
        param: "entries",
        message: "the form has no `entries` field; send the JSON text of the tasks, e.g. {\"clip\": {\"visual\": {\"modelName\": \"ViT-B-32__openai\"}}}, as Immich's server does".into(),
    })?;
    let plan = Plan::parse(&entries).map_err(entries_error)?;
    let input = match (form.image, form.text) {
        (Some(bytes), _) => {
            plan.check_input(Input::Image).map_err(entries_error)?;
            PredictInput::Image(bytes)
        }
        (None, Some(text)) => {
            plan.check_input(Input::Text).map_err(entries_error)?;
            let limit = limits.max_text_chars;
            let chars = text.chars().count();
            if chars > limit {
                return Err(ApiError::Validation(format!(
                    "`text` has {chars} characters, over the limit of {limit} (SWITCHYARD_MAX_TEXT_CHARS); shorten it (CLIP reads only the first tokens)"
                )));
            }
            PredictInput::Text(text)
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "either `image` (a file) or `text` must be sent with `entries`, as Immich's server does".into(),
            ))
        }
    };
    Ok(Predict { plan, input })
}

async fn predict(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    req: Request,
) -> Result<impl IntoResponse, ApiError> {
    let models = state.models()?.clone();
    let Predict { plan, input } = read_request(req, &state.config.limits).await?;
    let immich = &models.immich;
    let mut body = Answer::default();
    let bytes = match input {
        PredictInput::Image(bytes) => bytes,
        PredictInput::Text(text) => {
            let entry = plan.textual.as_ref().ok_or_else(|| ApiError::Internal("no text task".into()))?;
            let served = immich.textual(&entry.name).await?;
            let tokens = served.model.tokenize(&text).map_err(api_error)?;
            let done = served.queue.submit(vec![tokens], &id.0).await?;
            let h = timing_headers(&done, None);
            body.clip = Some(embedding_string(&first(done)?));
            return Ok((h, Json(body)));
        }
    };
    let visual = match &plan.visual {
        Some(name) => Some(immich.visual(name).await?),
        None => None,
    };
    let faces = match &plan.faces {
        Some(f) => Some((immich.faces(&f.detection, &f.recognition).await?, f.min_score)),
        None => None,
    };
    let limits = DecodeLimits { max_pixels: state.config.limits.max_pixels };
    let visual_model = visual.as_ref().map(|v| v.model.clone());
    let queue = if visual.is_some() { Queue::ImmichVisual } else { Queue::ImmichFaces };
    let (mut prepared, preprocess) = prepare_all(&state, queue, vec![bytes], move |index, bytes| {
        let img = decode_rgb(bytes, &limits).map_err(|e| ApiError::from_decode(index, e))?;
        let pixels = visual_model.as_ref().map(|v| v.preprocess(&img));
        Ok((Arc::new(img), pixels))
    })
    .await?;
    let (img, pixels) = prepared.pop().ok_or_else(|| ApiError::Internal("no image was prepared".into()))?;
    let (width, height) = (img.width(), img.height());
    let clip_run = async {
        match (&visual, pixels) {
            (Some(v), Some(p)) => v.queue.submit(vec![p], &id.0).await.map(Some),
            _ => Ok(None),
        }
    };
    let faces_run = async {
        match &faces {
            Some((f, min_score)) => f.queue.submit(vec![(img.clone(), *min_score)], &id.0).await.map(Some),
            None => Ok(None),
        }
    };
    let (clip_done, faces_done) = tokio::join!(clip_run, faces_run);
    let (clip_done, faces_done) = (clip_done?, faces_done?);
    let h = match (&clip_done, &faces_done) {
        (Some(d), _) => timing_headers(d, Some(preprocess)),
        (None, Some(d)) => timing_headers(d, Some(preprocess)),
        (None, None) => HeaderMap::new(),
    };
    if let Some(done) = clip_done {
        body.clip = Some(embedding_string(&first(done)?));
    }
    if let Some(done) = faces_done {
        let found = first(done)?
            .into_iter()
            .map(|f| {
                let [x1, y1, x2, y2] = f.bounding_box;
                DetectedFace {
                    bounding_box: BoundingBox { x1, y1, x2, y2 },
                    embedding: embedding_string(&f.embedding),
                    score: f.score,
                }
            })
            .collect();
        body.faces = Some(found);
    }
    body.image_height = Some(height);
    body.image_width = Some(width);
    Ok((h, Json(body)))
}
