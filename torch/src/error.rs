//! libtorch errors, with their sources, and their ABI error kinds.

use switchyard_core::abi::{BackendError, ErrorCode};
use switchyard_engine::error::is_oom;
use switchyard_engine::EngineError;

/// Everything that can go wrong in the libtorch half of a plugin.
#[derive(Debug, thiserror::Error)]
pub enum TorchError {
    /// libtorch failed.
    #[error("libtorch failed while {during} `{model}`: {source}")]
    Torch {
        during: &'static str,
        model: String,
        #[source]
        source: tch::TchError,
    },
    /// The model file cannot run in the configured dtype (its export says so).
    #[error("`{path}` is exported for {exported} only, not {dtype}: {hint}")]
    DtypeNotExported { path: String, dtype: &'static str, exported: String, hint: String },
    /// A failure shared with the ONNX side (bad input, unknown handle, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<TorchError> for BackendError {
    fn from(e: TorchError) -> Self {
        match e {
            TorchError::Engine(inner) => inner.into(),
            e @ TorchError::DtypeNotExported { .. } => BackendError::new(ErrorCode::UNSUPPORTED, e.to_string()),
            torch @ TorchError::Torch { .. } => {
                let message = switchyard_core::guard::error_chain(&torch);
                let code = if is_oom(&message) { ErrorCode::OUT_OF_MEMORY } else { ErrorCode::INTERNAL };
                BackendError::new(code, message)
            }
        }
    }
}
