//! The failures every backend shares (a missing model file, an unknown
//! handle, a malformed input...), and how an error becomes the ABI's
//! [`BackendError`]: a stable kind plus the whole message.

use switchyard_core::abi::{BackendError, ErrorCode};

/// What can go wrong in any backend, whatever runs its models.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A model file is missing.
    #[error("model file `{path}` does not exist; run ci/setup.sh to make the default models or check MODEL_DIR")]
    ModelNotFound { path: String },
    /// The format string is not one the backend knows.
    #[error("model format `{format}` is not supported; use torchscript or onnx")]
    UnknownFormat { format: String },
    /// No model has this handle.
    #[error("no model is loaded with handle {handle}; it was never loaded or has been unloaded")]
    UnknownHandle { handle: u64 },
    /// An input tensor is malformed.
    #[error("input {index} is invalid: {reason}")]
    BadInput { index: usize, reason: String },
    /// The model produced something the backend cannot return.
    #[error(
        "model `{model}` returned {what}, which cannot cross the plugin boundary; return tensors or tuples of tensors"
    )]
    UnsupportedOutput { model: String, what: String },
}

impl PluginError {
    /// The ABI kind of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            PluginError::ModelNotFound { .. } | PluginError::UnknownHandle { .. } => ErrorCode::NOT_FOUND,
            PluginError::UnknownFormat { .. } | PluginError::UnsupportedOutput { .. } => ErrorCode::UNSUPPORTED,
            PluginError::BadInput { .. } => ErrorCode::INVALID_INPUT,
        }
    }
}

impl From<PluginError> for BackendError {
    fn from(e: PluginError) -> Self {
        to_backend_error(e.code(), &e)
    }
}

/// An error as it crosses the ABI: `code` and the error with its sources as
/// one message. The chain is flattened only because it crosses the C ABI;
/// the host keeps the kind and the full message.
pub fn to_backend_error(code: ErrorCode, e: &dyn std::error::Error) -> BackendError {
    BackendError::new(code, switchyard_core::guard::error_chain(e))
}

/// Whether a runtime's message means it ran out of memory.
pub fn is_oom(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("failed to allocate")
}

/// The kind for a runtime's own failure: out of memory when its message says
/// so, else internal.
pub fn runtime_failure_code(message: &str) -> ErrorCode {
    if is_oom(message) {
        ErrorCode::OUT_OF_MEMORY
    } else {
        ErrorCode::INTERNAL
    }
}
