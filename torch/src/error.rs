//! libtorch errors, with their sources, and their ABI error kinds.

use switchyard_core::abi::{BackendError, ErrorCode};
use switchyard_plugin_sdk::error::{runtime_failure_code, to_backend_error};
use switchyard_plugin_sdk::PluginError;

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
    /// A failure every backend shares (bad input, unknown handle, ...).
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl From<TorchError> for BackendError {
    fn from(e: TorchError) -> Self {
        match e {
            TorchError::Plugin(inner) => inner.into(),
            e @ TorchError::DtypeNotExported { .. } => BackendError::new(ErrorCode::UNSUPPORTED, e.to_string()),
            torch @ TorchError::Torch { .. } => {
                let code = runtime_failure_code(&switchyard_core::guard::error_chain(&torch));
                to_backend_error(code, &torch)
            }
        }
    }
}
