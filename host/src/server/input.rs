//! Request bodies to model inputs, with the limits checked: texts from JSON,
//! images from a raw body, a multipart form, or JSON with base64.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header;
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use super::config::Limits;
use super::error::{ApiError, Rejection};

/// `POST /v1/embed/text`: one text or several.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextRequest {
    pub text: Option<String>,
    pub texts: Option<Vec<String>>,
}

impl TextRequest {
    /// The texts, checked against the limits.
    pub fn into_texts(self, limits: &Limits) -> Result<Vec<String>, ApiError> {
        let texts = match (self.text, self.texts) {
            (Some(t), None) => vec![t],
            (None, Some(ts)) => ts,
            _ => {
                return Err(ApiError::Validation(
                    "send exactly one of `text` (a string) or `texts` (an array of strings)".into(),
                ))
            }
        };
        check_texts(texts, limits)
    }
}

/// Checks the count and each text's length.
pub fn check_texts(texts: Vec<String>, limits: &Limits) -> Result<Vec<String>, ApiError> {
    if texts.is_empty() {
        return Err(ApiError::Validation("there is no text to embed; send at least one".into()));
    }
    if texts.len() > limits.max_items {
        return Err(ApiError::TooManyItems { what: "texts", got: texts.len(), limit: limits.max_items });
    }
    for (i, t) in texts.iter().enumerate() {
        if t.trim().is_empty() {
            return Err(ApiError::Validation(format!("text {i} is empty; send some words")));
        }
        let chars = t.chars().count();
        if chars > limits.max_text_chars {
            return Err(ApiError::Validation(format!(
                "text {i} has {chars} characters, over the limit of {}; shorten it (CLIP reads only the first 77 tokens)",
                limits.max_text_chars
            )));
        }
    }
    Ok(texts)
}

/// `POST /v1/embed/image` as JSON: base64 images (plain or `data:` URLs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageJson {
    image: Option<String>,
    images: Option<Vec<String>>,
}

fn media_type(req: &Request) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The image files of a request, in order, by content type.
pub async fn read_images(req: Request, limits: &Limits) -> Result<Vec<Bytes>, ApiError> {
    let body_limit = limits.max_body_bytes;
    let kind = media_type(&req);
    let images = if kind.starts_with("image/") || kind == "application/octet-stream" {
        let body = Bytes::from_request(req, &()).await.map_err(|e| e.into_api_error(body_limit))?;
        vec![body]
    } else if kind == "multipart/form-data" {
        let mut form = Multipart::from_request(req, &()).await.map_err(|e| e.into_api_error(body_limit))?;
        let mut files = Vec::new();
        while let Some(field) = form.next_field().await.map_err(|e| e.into_api_error(body_limit))? {
            if files.len() >= limits.max_items {
                return Err(ApiError::TooManyItems { what: "images", got: files.len() + 1, limit: limits.max_items });
            }
            files.push(field.bytes().await.map_err(|e| e.into_api_error(body_limit))?);
        }
        files
    } else if kind == "application/json" {
        let Json(body) = Json::<ImageJson>::from_request(req, &()).await.map_err(|e| e.into_api_error(body_limit))?;
        let encoded = match (body.image, body.images) {
            (Some(one), None) => vec![one],
            (None, Some(many)) => many,
            _ => {
                return Err(ApiError::Validation(
                    "send exactly one of `image` (base64) or `images` (an array of base64 strings)".into(),
                ))
            }
        };
        if encoded.len() > limits.max_items {
            return Err(ApiError::TooManyItems { what: "images", got: encoded.len(), limit: limits.max_items });
        }
        encoded.iter().enumerate().map(|(i, s)| decode_base64(i, s)).collect::<Result<_, _>>()?
    } else {
        let shown = if kind.is_empty() { "none".to_string() } else { format!("`{kind}`") };
        return Err(ApiError::UnsupportedMediaType(format!(
            "content type {shown} is not accepted here; send an image body (`image/jpeg`, `image/png`, ...), `multipart/form-data` with image files, or `application/json` with base64 `images`"
        )));
    };
    if images.is_empty() {
        return Err(ApiError::Validation("there is no image to embed; send at least one".into()));
    }
    if images.len() > limits.max_items {
        return Err(ApiError::TooManyItems { what: "images", got: images.len(), limit: limits.max_items });
    }
    Ok(images)
}

fn decode_base64(index: usize, s: &str) -> Result<Bytes, ApiError> {
    let data = match s.strip_prefix("data:") {
        Some(url) => url.split_once(";base64,").map(|(_, d)| d).ok_or_else(|| {
            ApiError::Validation(format!("image {index}: a `data:` URL must be base64 (`data:image/png;base64,...`)"))
        })?,
        None => s,
    };
    base64::engine::general_purpose::STANDARD.decode(data.trim()).map(Bytes::from).map_err(|e| {
        ApiError::Validation(format!("image {index} is not valid base64 ({e}); encode the file with standard base64"))
    })
}
