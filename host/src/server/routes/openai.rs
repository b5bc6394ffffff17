//! `POST /v1/embeddings`, the OpenAI embeddings API shape, for texts, so
//! existing OpenAI clients can use the CLIP text tower unchanged.
//!
//! `input` is a string or an array of strings (token arrays are refused);
//! `encoding_format` is `float` (default) or `base64` (little-endian f32, as
//! OpenAI sends it). `usage` counts CLIP tokens, start and end included.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::embed::timing_headers;
use crate::server::config::Limits;
use crate::server::error::{ApiError, Rejection};
use crate::server::input::check_texts;
use crate::server::middleware::RequestId;
use crate::server::state::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/embeddings", post(embeddings))
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
    if let Some(asked) = body.model.as_deref() {
        let ours = [model, &format!("clip/{model}"), "clip"];
        if !ours.contains(&asked) {
            return Err(ApiError::Validation(format!("model `{asked}` is not served here; use `{model}`")));
        }
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "`encoding_format` `{other}` is not supported; use float or base64"
            )))
        }
    };
    if let Some(d) = body.dimensions.filter(|d| *d != embed_dim) {
        return Err(ApiError::Validation(format!("`dimensions` {d} is not supported; {model} gives {embed_dim}")));
    }
    let texts = check_texts(inputs(body.input)?, limits)?;
    Ok(Checked { texts, base64 })
}

fn inputs(input: Value) -> Result<Vec<String>, ApiError> {
    let refuse = || {
        ApiError::Validation("`input` must be a string or an array of strings; token arrays are not supported".into())
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
