//! Engine errors, with their sources, and how they map onto the ABI's stable
//! error kinds when they cross the boundary.

use switchyard_core::abi::{BackendError, ErrorCode};

/// Everything that can go wrong inside a plugin.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A model file is missing.
    #[error("model file `{path}` does not exist; run ci/setup.sh to make the default models or check MODEL_DIR")]
    ModelNotFound { path: String },
    /// The format string is not one the engine knows.
    #[error("model format `{format}` is not supported; use torchscript or onnx")]
    UnknownFormat { format: String },
    /// No model has this handle.
    #[error("no model is loaded with handle {handle}; it was never loaded or has been unloaded")]
    UnknownHandle { handle: u64 },
    /// An input tensor is malformed.
    #[error("input {index} is invalid: {reason}")]
    BadInput { index: usize, reason: String },
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
    /// The model produced something the engine cannot return.
    #[error(
        "model `{model}` returned {what}, which cannot cross the plugin boundary; return tensors or tuples of tensors"
    )]
    UnsupportedOutput { model: String, what: String },
}

impl EngineError {
    fn code(&self) -> ErrorCode {
        match self {
            EngineError::ModelNotFound { .. } | EngineError::UnknownHandle { .. } => ErrorCode::NOT_FOUND,
            EngineError::UnknownFormat { .. } | EngineError::UnsupportedOutput { .. } => ErrorCode::UNSUPPORTED,
            EngineError::BadInput { .. } => ErrorCode::INVALID_INPUT,
            EngineError::OrtLoad { .. }
            | EngineError::RuntimeMissing(_)
            | EngineError::RuntimeLoad { .. }
            | EngineError::TorchVersion { .. }
            | EngineError::TorchVersionUnknown { .. }
            | EngineError::TorchWithoutCuda { .. }
            | EngineError::OrtVersion { .. }
            | EngineError::Unavailable(_) => ErrorCode::UNAVAILABLE,
            EngineError::TorchCompanion { code, .. } => *code,
            EngineError::Ort { source, .. } if is_oom(&source.to_string()) => ErrorCode::OUT_OF_MEMORY,
            EngineError::Ort { .. } => ErrorCode::INTERNAL,
        }
    }
}

/// Whether a runtime's message means it ran out of memory.
pub fn is_oom(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("failed to allocate")
}

impl From<EngineError> for BackendError {
    fn from(e: EngineError) -> Self {
        // The chain is flattened here only because it crosses the C ABI; the
        // host keeps the kind and the full message.
        let message = switchyard_core::guard::error_chain(&e);
        BackendError::new(e.code(), message)
    }
}

/// The error and its sources as one message (for key/value reports).
pub fn describe(e: EngineError) -> String {
    BackendError::from(e).message.to_string()
}
