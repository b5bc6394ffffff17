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
    /// oneDNN's float32 precision switch could not be set.
    #[error("libtorch could not set oneDNN's float32 precision for `{model}`: {source}")]
    Precision {
        model: String,
        #[source]
        source: cxx::Exception,
    },
    /// `fp32_matmul=bf16` asked of a model on a GPU.
    #[error("`{model}`: bf16 matmul inputs (CLIP_ENGINE=torchscript-bf16) are a CPU setting; on {device} use CLIP_ENGINE=auto or torchscript (GPUs run the towers in float16 by DTYPE)")]
    Bf16MatmulOnGpu { model: String, device: String },
    /// A failure every backend shares (bad input, unknown handle, ...).
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

impl From<TorchError> for BackendError {
    fn from(e: TorchError) -> Self {
        match e {
            TorchError::Plugin(inner) => inner.into(),
            e @ (TorchError::DtypeNotExported { .. } | TorchError::Bf16MatmulOnGpu { .. }) => {
                BackendError::new(ErrorCode::UNSUPPORTED, e.to_string())
            }
            torch @ (TorchError::Torch { .. } | TorchError::Precision { .. }) => {
                let code = runtime_failure_code(&switchyard_core::guard::error_chain(&torch));
                to_backend_error(code, &torch)
            }
        }
    }
}
