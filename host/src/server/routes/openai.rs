//! The OpenAI-compatible routes, so existing OpenAI clients (the openai SDK,
//! LangChain, LlamaIndex) can use the CLIP text tower unchanged:
//! `POST /v1/embeddings` and `GET /v1/models` (`/v1/models/{id}`).
//!
//! `input` is a string or an array of strings (token arrays are refused);
//! `encoding_format` is `float` (default) or `base64` (little-endian f32, as
//! OpenAI sends it). `usage` counts CLIP tokens, start and end included.
//! Their errors have OpenAI's shape, `{"error": {"message", "type", "param",
//! "code"}}` ([`openai_errors`]; `code` is switchyard's `error_type`), so the
//! SDKs show the message; the rest of the API keeps its own shape.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::server::config::Limits;
use crate::server::error::{ApiError, ErrorDetails, ErrorType, Rejection};
use crate::server::input::check_texts;
use crate::server::middleware::RequestId;
use crate::server::state::AppState;
use crate::server::timing::timing_headers;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(one_model))
}

/// Whether a path is one of the OpenAI-compatible routes, whose errors take OpenAI's shape.
pub fn is_openai_path(path: &str) -> bool {
    path == "/v1/embeddings" || path == "/v1/models" || path.starts_with("/v1/models/")
}

/// OpenAI's error `type` for a status.
fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "server_error",
    }
}

/// Rewrites the errors of the OpenAI-compatible routes into OpenAI's shape,
/// whichever layer made them (the API key check, the body limit, the
/// handler), keeping the status and the headers (`Retry-After`,
/// `WWW-Authenticate`, `x-request-id`).
pub async fn openai_errors(req: Request, next: Next) -> Response {
    if !is_openai_path(req.uri().path()) {
        return next.run(req).await;
    }
    let response = next.run(req).await;
    let (Some(code), Some(details)) =
        (response.extensions().get::<ErrorType>().copied(), response.extensions().get::<ErrorDetails>().cloned())
    else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let body = serde_json::json!({"error": {
        "message": details.message,
        "type": openai_type(parts.status.as_u16()),
        "param": details.param,
        "code": code.0,
    }});
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

/// One entry of `GET /v1/models`.
#[derive(Debug, Serialize)]
struct ModelCard {
    id: String,
    object: &'static str,
    /// When the model folder was exported (its config.json's time), in Unix seconds.
    created: u64,
    owned_by: &'static str,
}

fn served_model(state: &AppState) -> Result<ModelCard, ApiError> {
    let models = state.models()?;
    let model = &models.clip.model;
    let created = std::fs::metadata(model.dir.join("config.json"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    Ok(ModelCard { id: model.config.model.clone(), object: "model", created, owned_by: "switchyard" })
}

/// `GET /v1/models`: the served embedding model (the CLIP text tower behind `/v1/embeddings`).
async fn list_models(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let card = served_model(&state)?;
    Ok(Json(serde_json::json!({"object": "list", "data": [card]})))
}

/// `GET /v1/models/{id}`: the model if it is served here (under any name `/v1/embeddings` accepts).
async fn one_model(State(state): State<Arc<AppState>>, Path(asked): Path<String>) -> Result<Json<Value>, ApiError> {
    let card = served_model(&state)?;
    if !accepted_names(&card.id).contains(&asked) {
        return Err(ApiError::ModelNotFound { asked, served: card.id });
    }
    Ok(Json(serde_json::to_value(card).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// The names a request may give the served `model`.
fn accepted_names(model: &str) -> [String; 3] {
    [model.to_string(), format!("clip/{model}"), "clip".to_string()]
}

/// The request body, as JSON; [`check_request`] validates it.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest {
    input: Value,
    model: Option<String>,
    encoding_format: Option<String>,
    /// Accepted for compatibility; CLIP has one output size.
    dimensions: Option<usize>,
    #[allow(dead_code)]
    user: Option<String>,
}

#[derive(Debug, Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: Value,
}

#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Debug, Serialize)]
struct EmbeddingsResponse {
    object: &'static str,
    data: Vec<Embedding>,
    model: String,
    usage: Usage,
}

/// A valid request: the texts to embed, and whether to answer in base64.
#[derive(Debug)]
pub struct Checked {
    pub texts: Vec<String>,
    pub base64: bool,
}

/// Everything the route checks before running the model, against the served
/// `model` name and `embed_dim`: the model name, `encoding_format`,
/// `dimensions`, then `input` (strings only) and the text limits.
pub fn check_request(
    body: EmbeddingsRequest,
    model: &str,
    embed_dim: usize,
    limits: &Limits,
) -> Result<Checked, ApiError> {
    if let Some(asked) = body.model {
        if !accepted_names(model).contains(&asked) {
            return Err(ApiError::ModelNotFound { asked, served: model.to_string() });
        }
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::Param {
                param: "encoding_format",
                message: format!("`encoding_format` `{other}` is not supported; use float or base64"),
            })
        }
    };
    if let Some(d) = body.dimensions.filter(|d| *d != embed_dim) {
        return Err(ApiError::Param {
            param: "dimensions",
            message: format!("`dimensions` {d} is not supported; {model} gives {embed_dim}"),
        });
    }
    let texts = check_texts(inputs(body.input)?, limits).map_err(|e| match e {
        ApiError::Validation(message) => ApiError::Param { param: "input", message },
        other => other,
    })?;
    Ok(Checked { texts, base64 })
}

fn inputs(input: Value) -> Result<Vec<String>, ApiError> {
    let refuse = || ApiError::Param {
        param: "input",
        message: "`input` must be a string or an array of strings; token arrays are not supported".into(),
    };
    match input {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => {
            items.into_iter().map(|v| if let Value::String(s) = v { Ok(s) } else { Err(refuse()) }).collect()
        }
        _ => Err(refuse()),
    }
}

/// CLIP tokens per row up to and including the end token (padding is 0, but so is `!`).
fn count_tokens(rows: &[i64], context_length: usize) -> usize {
    const END: i64 = 49407;
    rows.chunks(context_length.max(1)).map(|row| row.iter().position(|t| *t == END).map_or(row.len(), |p| p + 1)).sum()
}

async fn embeddings(
    State(state): State<Arc<AppState>>,
    Extension(id): Extension<RequestId>,
    body: Result<Json<EmbeddingsRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let models = state.models()?;
    let Json(body) = body.map_err(|e| e.into_api_error(state.config.limits.max_body_bytes))?;
    let config = &models.clip.model.config;
    let Checked { texts, base64 } = check_request(body, &config.model, config.embed_dim, &state.config.limits)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let tokens = count_tokens(&models.clip.tokenize(&refs), config.context_length);
    let done = models.text.submit(texts, &id.0).await?;
    let headers = timing_headers(&done, None);
    let data = done
        .outputs
        .into_iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(v)
            };
            Embedding { object: "embedding", index, embedding }
        })
        .collect();
    let usage = Usage { prompt_tokens: tokens, total_tokens: tokens };
    Ok((headers, Json(EmbeddingsResponse { object: "list", data, model: config.model.clone(), usage })))
}
