//! The `request_parse` fuzz target: the HTTP request parsing of the three model routes, on the
//! server's own code — `read_images` (raw body, multipart, JSON with base64)
//! for `/v1/embed/image` and `/v1/faces`, axum's `Json` extractor +
//! `TextRequest::into_texts` for `/v1/embed/text` (what its handler does),
//! and `Json` + `openai::check_request` for `/v1/embeddings`.
//!
//! An input is `<path>\n<content-type>\n<body>`: the path picks the route (an
//! unknown one picks by its length), the second line is the `Content-Type`.
//! Then the body is wrapped three ways that must give it back unchanged: a
//! raw `image/*` body, two multipart files, and two base64 JSON strings (one
//! plain, one a `data:` URL); and the body as text in `{"texts": [...]}`.
//!
//! Invariants: nothing panics; an accepted request has 1..=max_items items
//! within the limits; every refusal is a 4xx [`ApiError`] of the kinds a
//! client can cause (never `internal`, never a 5xx); the wrappings round-trip.

use crate::multipart_form;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::Json;
use base64::Engine;
use switchyard::server::config::Limits;
use switchyard::server::error::{ApiError, Rejection};
use switchyard::server::input::{read_images, TextRequest};
use switchyard::server::routes::openai::{check_request, EmbeddingsRequest};

pub(crate) const LIMITS: Limits = Limits {
    max_body_bytes: 1 << 20,
    max_buffered_body_bytes: 1 << 24,
    max_items: 4,
    max_text_chars: 300,
    max_pixels: 1 << 20,
    scaled_decode: false,
    preprocess_workers: 1,
};
pub(crate) const MODEL: &str = "ViT-B-32";
pub(crate) const EMBED_DIM: usize = 512;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().build().expect("a current-thread runtime");
}

pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(f))
}

pub(crate) fn request(content_type: Option<&[u8]>, body: Vec<u8>) -> Request {
    let mut req = Request::new(Body::from(body));
    if let Some(v) = content_type.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        req.headers_mut().insert(CONTENT_TYPE, v);
    }
    req
}

/// A refusal must be one a client can cause with a body, with a 4xx status and a message.
pub(crate) fn check_refusal(e: &ApiError) {
    let status = e.status().as_u16();
    let allowed = matches!(
        e,
        ApiError::BadRequest(_)
            | ApiError::BodyTooLarge { .. }
            | ApiError::TooManyItems { .. }
            | ApiError::UnsupportedMediaType(_)
            | ApiError::InvalidJson(_)
            | ApiError::Validation(_)
            | ApiError::Param { .. }
            | ApiError::ModelNotFound { .. }
    );
    assert!(allowed && (400..500).contains(&status), "parsing gave HTTP {status} {}: {e}", e.error_type());
    assert!(!e.to_string().is_empty(), "empty message for {e:?}");
}

pub(crate) fn check_texts(texts: &[String]) {
    assert!((1..=LIMITS.max_items).contains(&texts.len()), "{} texts accepted", texts.len());
    for t in texts {
        assert!(!t.trim().is_empty(), "an empty text was accepted");
        assert!(t.chars().count() <= LIMITS.max_text_chars, "a text over the limit was accepted");
    }
}

fn images(content_type: Option<&[u8]>, body: Vec<u8>) -> Result<Vec<Bytes>, ApiError> {
    let result = block_on(read_images(request(content_type, body), &LIMITS));
    match &result {
        Ok(files) => assert!((1..=LIMITS.max_items).contains(&files.len()), "{} images accepted", files.len()),
        Err(e) => check_refusal(e),
    }
    result
}

fn texts(content_type: Option<&[u8]>, body: Vec<u8>) -> Result<Vec<String>, ApiError> {
    let result = block_on(async {
        let Json(body) = Json::<TextRequest>::from_request(request(content_type, body), &())
            .await
            .map_err(|e| e.into_api_error(LIMITS.max_body_bytes))?;
        body.into_texts(&LIMITS)
    });
    match &result {
        Ok(t) => check_texts(t),
        Err(e) => check_refusal(e),
    }
    result
}

fn openai(content_type: Option<&[u8]>, body: Vec<u8>) {
    let result = block_on(async {
        let Json(body) = Json::<EmbeddingsRequest>::from_request(request(content_type, body), &())
            .await
            .map_err(|e| e.into_api_error(LIMITS.max_body_bytes))?;
        check_request(body, MODEL, EMBED_DIM, &LIMITS)
    });
    match &result {
        Ok(c) => check_texts(&c.texts),
        Err(e) => check_refusal(e),
    }
}

/// The body as a raw image, as two multipart files and as two base64 strings: all give it back.
fn round_trips(body: &[u8]) {
    let raw = images(Some(b"image/png"), body.to_vec()).expect("a raw image body is accepted");
    assert_eq!(raw, [body], "raw body changed");

    let mut boundary = String::from("fuzzBoundary");
    while body.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
        boundary.push('x');
    }
    let form = multipart_form(&boundary, &[("images", Some("a.jpg"), body), ("images", Some("b.png"), body)]);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let parts = images(Some(content_type.as_bytes()), form).expect("a well-formed multipart body is accepted");
    assert_eq!(parts, [body, body], "multipart files changed");

    let b64 = base64::engine::general_purpose::STANDARD.encode(body);
    let json = serde_json::json!({"images": [b64, format!("data:image/png;base64,{b64}")]}).to_string();
    let decoded = images(Some(b"application/json"), json.into_bytes()).expect("valid base64 JSON is accepted");
    assert_eq!(decoded, [body, body], "base64 images changed");

    let text = String::from_utf8_lossy(body);
    let json = serde_json::json!({ "texts": [text] }).to_string();
    let result = texts(Some(b"application/json"), json.into_bytes());
    let valid = !text.trim().is_empty() && text.chars().count() <= LIMITS.max_text_chars;
    match result {
        Ok(t) => assert!(valid && t == [text.as_ref()], "text changed or wrongly accepted"),
        Err(e) => assert!(!valid && matches!(e, ApiError::Validation(_)), "valid text refused: {e}"),
    }
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let path = lines.next().unwrap_or_default();
    let content_type = lines.next();
    let body = lines.next().unwrap_or_default().to_vec();
    let route = match path {
        b"/v1/embed/image" | b"/v1/faces" => 0,
        b"/v1/embed/text" => 1,
        b"/v1/embeddings" => 2,
        other => other.len() % 3,
    };
    match route {
        0 => drop(images(content_type, body.clone())),
        1 => drop(texts(content_type, body.clone())),
        _ => openai(content_type, body.clone()),
    }
    round_trips(&body);
}
