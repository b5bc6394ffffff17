//! What can go wrong finding, loading or running a model of Immich's cache.
//! Every message names the file or the name and says what to do.

use std::path::PathBuf;

use switchyard_core::abi::BackendError;

use crate::faces::FaceError;

/// Why an Immich model could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ImmichError {
    /// The name maps to a folder that is not in the cache (or lacks a file).
    #[error("the {task} model `{name}` is not in the Immich model cache: `{}` is missing. Mount Immich's model cache (its `model-cache` volume, /cache in Immich's container) at `{}` or point SWITCHYARD_IMMICH_MODELS at it; switchyard reads the cache and never downloads (let Immich's own service download the model once, or make offline stand-ins with `python tools/make_immich_models.py --out {}`)", path.display(), cache.display(), cache.display())]
    ModelMissing { task: &'static str, name: String, path: PathBuf, cache: PathBuf },
    /// Nothing is left of the name after Immich's clean-up.
    #[error("`{name}` is not a model name (nothing is left after Immich's clean-up: the part after the last `/`, without `.`); send a name such as `ViT-B-32__openai` or `buffalo_l`")]
    BadName { name: String },
    /// A model the cache holds but switchyard does not run the way Immich does.
    #[error("the model `{name}` is not served: {reason}")]
    Unsupported { name: String, reason: String },
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A config file that does not say what Immich's service reads from it.
    #[error("`{}` is not a valid Immich model file: {reason}; replace it with the file from Immich's model repository", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("the tokenizer `{}` could not be set up: {reason}", path.display())]
    Tokenizer { path: PathBuf, reason: String },
    #[error("the text could not be tokenized: {reason}")]
    Tokenize { reason: String },
    #[error("the backend failed while {during} the {tower} model `{name}`")]
    Backend {
        during: &'static str,
        tower: &'static str,
        name: String,
        #[source]
        source: BackendError,
    },
    /// The ONNX file does not have the inputs or outputs of Immich's exports.
    #[error("the {tower} model `{name}` does not have the signature of Immich's exports: {detail}")]
    BadModel { tower: &'static str, name: String, detail: String },
    #[error(transparent)]
    Faces(#[from] FaceError),
}
