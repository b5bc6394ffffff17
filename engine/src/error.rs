//! Engine errors, with their sources, and how they map onto the ABI's stable
//! error kinds when they cross the boundary (the failures any backend shares
//! are the SDK's [`PluginError`]).

use switchyard_core::abi::{BackendError, ErrorCode};
use switchyard_plugin_sdk::error::{runtime_failure_code, to_backend_error};
use switchyard_plugin_sdk::PluginError;

/// Everything that can go wrong inside a plugin.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A failure every backend shares (missing model, unknown handle, bad input...).
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// ort could not take the ONNX Runtime library.
    #[error("ONNX Runtime could not be loaded from `{path}`: {source}; reinstall onnxruntime with pip, or point ORT_DYLIB_PATH at libonnxruntime.so.1.31.1")]
    OrtLoad {
        path: String,
        #[source]
        source: ort::LoadDynamicError,
    },
    /// A runtime (libtorch, ONNX Runtime) was not found, or a setting naming it is wrong.
    #[error(transparent)]
    RuntimeMissing(#[from] switchyard_core::runtimes::NotFound),
    /// A runtime library was found but the loader refused it.
    #[error("{runtime} at `{}` cannot be loaded: {detail}; {hint}", path.display())]
    RuntimeLoad {
        runtime: switchyard_core::runtimes::Runtime,
        path: std::path::PathBuf,
        detail: String,
        hint: &'static str,
    },
    /// The libtorch found is not the version the companion was built for.
    #[error("libtorch {found} at `{}` (found by {rule}) is not the torch {needed} this plugin's companion was built for, and tch needs that exact version; run `pip install torch=={}` in that environment, or point LIBTORCH at a torch {needed}", dir.display(), switchyard_core::runtimes::base_version(needed))]
    TorchVersion { found: String, needed: String, dir: std::path::PathBuf, rule: String },
    /// The libtorch found says nothing of its version.
    #[error("the libtorch at `{}` has neither version.py nor build-version, so its version cannot be checked; point LIBTORCH at a pip install's site-packages/torch or an unpacked libtorch distribution", dir.display())]
    TorchVersionUnknown { dir: std::path::PathBuf },
    /// The CUDA companion found a CPU-only libtorch.
    #[error("the libtorch {version} at `{}` is a CPU-only build (no lib/libtorch_cuda), and the CUDA plugin needs CUDA; install a CUDA build of the same torch version (the default torch wheel on Linux x86_64 is one)", dir.display())]
    TorchWithoutCuda { version: String, dir: std::path::PathBuf },
    /// The ONNX Runtime found is older than the C API the plugin needs.
    #[error("ONNX Runtime {found} at `{}` (found by {rule}) is older than 1.{} whose C API this plugin needs; run `pip install onnxruntime==1.31.1`, or point ORT_DYLIB_PATH at a newer library", path.display(), crate::runtimes::ORT_API_VERSION)]
    OrtVersion { found: String, path: std::path::PathBuf, rule: String },
    /// ONNX Runtime failed.
    #[error("ONNX Runtime failed while {during} `{model}`: {source}")]
    Ort {
        during: &'static str,
        model: String,
        #[source]
        source: ort::Error,
    },
    /// The libtorch half of the plugin (its torch companion library) could
    /// not be loaded or opened; `reason` says why and how to fix it.
    #[error("{reason}")]
    TorchCompanion { reason: String, code: ErrorCode },
    /// The device is not usable.
    #[error("{0}")]
    Unavailable(String),
}

impl EngineError {
    fn code(&self) -> ErrorCode {
        match self {
            EngineError::Plugin(e) => e.code(),
            EngineError::OrtLoad { .. }
            | EngineError::RuntimeMissing(_)
            | EngineError::RuntimeLoad { .. }
            | EngineError::TorchVersion { .. }
            | EngineError::TorchVersionUnknown { .. }
            | EngineError::TorchWithoutCuda { .. }
            | EngineError::OrtVersion { .. }
            | EngineError::Unavailable(_) => ErrorCode::UNAVAILABLE,
            EngineError::TorchCompanion { code, .. } => *code,
            EngineError::Ort { source, .. } => runtime_failure_code(&source.to_string()),
        }
    }
}

impl From<EngineError> for BackendError {
    fn from(e: EngineError) -> Self {
        to_backend_error(e.code(), &e)
    }
}

/// The error and its sources as one message (for key/value reports).
pub fn describe(e: EngineError) -> String {
    BackendError::from(e).message.to_string()
}
