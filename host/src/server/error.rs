//! The one error type of the HTTP API: every failure, whether a handler's own
//! or an axum extractor's rejection, becomes `{"error": "...", "error_type":
//! "..."}` with the status from the table in [`ApiError::status`].
//!
//! Messages are sentences that say what to change; `error_type` is a stable
//! snake_case code for programs.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::batcher::{BatchFailure, FailureKind, QueueError};
use crate::clip::pipeline::PipelineError;
use crate::faces::FaceError;
use crate::image::decode::DecodeError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid as sent (broken multipart, bad base64 framing).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong bearer token.
    #[error("a valid API key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// Missing or wrong admin token on an admin route.
    #[error("a valid admin key is required: send `Authorization: Bearer <SWITCHYARD_ADMIN_KEY>`")]
    AdminUnauthorized,
    /// An admin route while no admin key is configured.
    #[error("the admin routes are off because SWITCHYARD_ADMIN_KEY (--admin-key) is not set; set it and restart, or send the process SIGHUP to swap plugins")]
    AdminDisabled,
    /// A plugin swap was refused; the old plugin keeps serving.
    #[error("{0}")]
    SwapRefused(String),
    /// A plugin swap could not be checked.
    #[error("{0}")]
    SwapFailed(String),
    #[error("there is no route `{0}`; see docs/api.md for the routes")]
    NotFound(String),
    #[error("`{method}` is not allowed on `{path}`")]
    MethodNotAllowed { method: String, path: String },
    /// The body is over the byte limit.
    #[error("the request body is larger than the limit of {limit} bytes; send fewer or smaller items")]
    BodyTooLarge { limit: usize },
    #[error("the request has {got} {what}, over the limit of {limit} per request; split it into several requests")]
    TooManyItems { what: &'static str, got: usize, limit: usize },
    /// An image over the pixel limit (a decompression bomb, or simply too big).
    #[error("image {index}: {source}")]
    ImageTooLarge { index: usize, source: DecodeError },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("image {index}: {source}")]
    UnsupportedImage { index: usize, source: DecodeError },
    /// The JSON could not be parsed or has the wrong shape.
    #[error("the JSON body is invalid: {0}")]
    InvalidJson(String),
    /// Well-formed, but a value is not acceptable (empty text, too long, nothing to embed).
    #[error("{0}")]
    Validation(String),
    #[error("image {index}: {source}")]
    InvalidImage { index: usize, source: DecodeError },
    /// The model queue is full.
    #[error("the {model} queue is full ({capacity} items waiting); retry later with backoff")]
    Overloaded { model: &'static str, capacity: usize },
    /// The request bodies held at once would go over their budget.
    #[error("the server already holds {held} bytes of request bodies and this one declares {asked}, over the budget of {limit} bytes (SWITCHYARD_MAX_BUFFERED_BODY_BYTES); retry later with backoff, or raise the budget")]
    BodiesBuffered { limit: usize, held: usize, asked: usize },
    #[error("the models are still loading; poll /ready and retry")]
    NotReady,
    /// The face models were not loaded (missing, or switched off); the message says how to fix it.
    #[error("face detection is not available on this server: {0}")]
    FacesUnavailable(String),
    #[error("the server is shutting down; retry on another instance")]
    ShuttingDown,
    /// The model did not answer within the request deadline.
    #[error("the {model} model did not answer within {} ms (SWITCHYARD_REQUEST_TIMEOUT_MS); the device may be stuck, see /ready", after.as_millis())]
    Timeout { model: &'static str, after: std::time::Duration },
    /// The model's worker has been inside one backend call for longer than the deadline.
    #[error("the {model} model has been stuck in one device call for {:.0} s, so its requests are refused; the other models still serve. Restart the server to recover, and check the device and its driver", running.as_secs_f64())]
    BackendStuck { model: &'static str, running: std::time::Duration },
    /// The model failed while running a batch.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The device ran out of memory running the batch this request was in.
    #[error("the device ran out of memory running this request's batch ({0}); retry later, or send fewer or smaller items (batches hold up to SWITCHYARD_MAX_BATCH_SIZE items)")]
    DeviceOutOfMemory(String),
    /// The model refused the input of the batch (retrying will not help).
    #[error("the model refused the input: {0}")]
    ModelRefusedInput(String),
    /// A request field has a value that is not acceptable; `param` names it.
    #[error("{message}")]
    Param { param: &'static str, message: String },
    /// The request names a model this server does not serve.
    #[error("the model `{asked}` is not served here; use `{served}` (GET /v1/models lists what is served)")]
    ModelNotFound { asked: String, served: String },
    /// `POST /predict` names a model its Immich model cache does not hold; the message says where it looked.
    #[error("{0}")]
    ModelUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The JSON body of every error.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub error: String,
    pub error_type: &'static str,
}

/// The error type of a failed response, for the metrics middleware.
#[derive(Debug, Clone, Copy)]
pub struct ErrorType(pub &'static str);

/// The whole error of a failed response, for routes that answer in another
/// shape (the OpenAI-compatible ones).
#[derive(Debug, Clone)]
pub struct ErrorDetails {
    pub message: String,
    pub param: Option<&'static str>,
}

impl ApiError {
    /// The status table: the one place that maps failures to HTTP.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::SwapRefused(_) => StatusCode::CONFLICT,
            ApiError::SwapFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } | ApiError::TooManyItems { .. } | ApiError::ImageTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::UnsupportedMediaType(_) | ApiError::UnsupportedImage { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::InvalidJson(_)
            | ApiError::Validation(_)
            | ApiError::Param { .. }
            | ApiError::InvalidImage { .. }
            | ApiError::ModelRefusedInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ModelNotFound { .. } | ApiError::ModelUnavailable(_) => StatusCode::NOT_FOUND,
            ApiError::DeviceOutOfMemory(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Overloaded { .. } | ApiError::BodiesBuffered { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotReady
            | ApiError::ShuttingDown
            | ApiError::FacesUnavailable(_)
            | ApiError::BackendStuck { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Inference(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in `error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized | ApiError::AdminUnauthorized => "unauthorized",
            ApiError::AdminDisabled => "admin_disabled",
            ApiError::SwapRefused(_) => "swap_refused",
            ApiError::SwapFailed(_) => "swap_failed",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::TooManyItems { .. } => "too_many_items",
            ApiError::ImageTooLarge { .. } => "image_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::UnsupportedImage { .. } => "unsupported_image_format",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Validation(_) | ApiError::Param { .. } => "validation",
            ApiError::ModelNotFound { .. } | ApiError::ModelUnavailable(_) => "model_not_found",
            ApiError::DeviceOutOfMemory(_) => "device_out_of_memory",
            ApiError::ModelRefusedInput(_) => "invalid_input",
            ApiError::InvalidImage { .. } => "invalid_image",
            ApiError::Overloaded { .. } | ApiError::BodiesBuffered { .. } => "overloaded",
            ApiError::NotReady => "not_ready",
            ApiError::FacesUnavailable(_) => "faces_unavailable",
            ApiError::ShuttingDown => "shutting_down",
            ApiError::Timeout { .. } => "timeout",
            ApiError::BackendStuck { .. } => "backend_stuck",
            ApiError::Inference(_) => "inference_failed",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Maps a failed batch by its kind: out of memory 503 (with `Retry-After`),
    /// a refused input 422, anything else 500; the message is kept.
    pub fn from_batch(failure: BatchFailure) -> Self {
        match failure.kind {
            FailureKind::OutOfMemory => ApiError::DeviceOutOfMemory(failure.message),
            FailureKind::InvalidInput => ApiError::ModelRefusedInput(failure.message),
            FailureKind::Other => ApiError::Inference(failure.message),
        }
    }
}

/// A model queue's answer, in the table: full 429, closed or stuck 503,
/// timed out 504, a failed batch by its kind ([`ApiError::from_batch`]).
impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Full { model, capacity } => ApiError::Overloaded { model, capacity },
            QueueError::Closed { .. } => ApiError::ShuttingDown,
            QueueError::Timeout { model, after } => ApiError::Timeout { model, after },
            QueueError::Stuck { model, running } => ApiError::BackendStuck { model, running },
            QueueError::WorkerGone { .. } => ApiError::Internal("the model worker stopped before answering".into()),
            QueueError::Failed(failure) => ApiError::from_batch(failure),
        }
    }
}

impl ApiError {
    /// The request field an error is about, where there is one.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            ApiError::Param { param, .. } => Some(param),
            ApiError::ModelNotFound { .. } => Some("model"),
            _ => None,
        }
    }

    /// Maps a decode failure of the `index`-th image of a request.
    pub fn from_decode(index: usize, source: DecodeError) -> Self {
        match source {
            DecodeError::TooManyPixels { .. } => ApiError::ImageTooLarge { index, source },
            DecodeError::UnsupportedFormat { .. } => ApiError::UnsupportedImage { index, source },
            source => ApiError::InvalidImage { index, source },
        }
    }

    /// Maps a pipeline failure while preparing the `index`-th image.
    pub fn from_pipeline(index: usize, e: PipelineError) -> Self {
        match e {
            PipelineError::Decode(d) => ApiError::from_decode(index, d),
            other => ApiError::Internal(crate::util::error_chain(&other)),
        }
    }

    /// Maps a face pipeline failure while decoding the `index`-th image.
    pub fn from_face(index: usize, e: FaceError) -> Self {
        match e {
            FaceError::Decode(d) => ApiError::from_decode(index, d),
            other => ApiError::Internal(crate::util::error_chain(&other)),
        }
    }

    fn from_status(status: StatusCode, text: String, limit: usize) -> Self {
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge { limit },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(text),
            StatusCode::UNPROCESSABLE_ENTITY => ApiError::InvalidJson(text),
            s if s.is_server_error() => ApiError::Internal(text),
            _ => ApiError::BadRequest(text),
        }
    }
}

/// Extractor rejections carry their own status; the body limit they hit is
/// not in them, so the caller passes it for the message.
pub trait Rejection {
    fn into_api_error(self, body_limit: usize) -> ApiError;
}

impl Rejection for JsonRejection {
    fn into_api_error(self, limit: usize) -> ApiError {
        match self {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                "expected `Content-Type: application/json`; send the request as JSON".into(),
            ),
            // Syntax errors are 400 in axum; here every unparsable body is 422.
            JsonRejection::JsonSyntaxError(e) => ApiError::InvalidJson(e.body_text()),
            JsonRejection::JsonDataError(e) => ApiError::InvalidJson(e.body_text()),
            other => ApiError::from_status(other.status(), other.body_text(), limit),
        }
    }
}

impl Rejection for BytesRejection {
    fn into_api_error(self, limit: usize) -> ApiError {
        ApiError::from_status(self.status(), self.body_text(), limit)
    }
}

impl Rejection for MultipartRejection {
    fn into_api_error(self, limit: usize) -> ApiError {
        ApiError::from_status(self.status(), self.body_text(), limit)
    }
}

impl Rejection for MultipartError {
    fn into_api_error(self, limit: usize) -> ApiError {
        let status = self.status();
        ApiError::from_status(status, format!("the multipart body is malformed: {}", self.body_text()), limit)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error_type = self.error_type();
        let expected = matches!(self, ApiError::NotReady | ApiError::ShuttingDown | ApiError::FacesUnavailable(_));
        if status.is_server_error() && !expected {
            tracing::error!(error = %self, error_type, "request failed");
        } else {
            tracing::debug!(error = %self, error_type, status = status.as_u16(), "request refused");
        }
        let details = ErrorDetails { message: self.to_string(), param: self.param() };
        let body = ErrorBody { error: details.message.clone(), error_type };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // Retrying helps when the server is busy or loading, not when the face models are absent
        // or a device call is stuck (that needs a restart).
        let transient = !matches!(self, ApiError::FacesUnavailable(_) | ApiError::BackendStuck { .. });
        if transient && (status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(ErrorType(error_type));
        response.extensions_mut().insert(details);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_one_shape() {
        let response = ApiError::Overloaded { model: "text", capacity: 4 }.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn a_batch_failure_answers_by_its_kind() {
        let failure = |kind| BatchFailure { kind, message: "CUDA out of memory".into() };
        let oom = ApiError::from_batch(failure(FailureKind::OutOfMemory)).into_response();
        assert_eq!(oom.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(oom.headers()[header::RETRY_AFTER], "1");
        let bad = ApiError::from_batch(failure(FailureKind::InvalidInput)).into_response();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(bad.headers().get(header::RETRY_AFTER).is_none());
        let other = ApiError::from_batch(failure(FailureKind::Other));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(other.to_string().contains("CUDA out of memory"), "the message is kept: {other}");
    }

    #[test]
    fn pixel_bombs_are_413_and_heic_is_415() {
        let bomb = DecodeError::TooManyPixels {
            format: crate::image::decode::ImageFormat::Png,
            width: 100_000,
            height: 100_000,
            pixels: 10_000_000_000,
            max_pixels: 10,
        };
        assert_eq!(ApiError::from_decode(0, bomb).status(), StatusCode::PAYLOAD_TOO_LARGE);
        let heic = DecodeError::UnsupportedFormat { format: "HEIC".into() };
        assert_eq!(ApiError::from_decode(1, heic).status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(ApiError::from_decode(2, DecodeError::Empty).status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
