//! Immich's machine-learning protocol and model cache, so that an Immich
//! server can use `switchyard serve` as its machine-learning URL.
//!
//! Immich's server calls a Python service (immich-app/immich,
//! `machine-learning/immich_ml`) with `POST /predict`: a multipart form whose
//! `entries` field names the tasks (CLIP `visual` / `textual`,
//! `facial-recognition` `detection` + `recognition`), with an `image` file or
//! a `text` field. An existing Immich index stays valid only if the vectors
//! are the ones Immich's service computes, so everything here follows that
//! service's code rather than open_clip's or insightface's defaults:
//!
//! - [`protocol`]: the `entries` JSON to a [`protocol::Plan`], with Immich's
//!   rules for what is a bad request, and the answer's JSON-array strings;
//! - [`cache`]: Immich's model cache layout (`<cache>/clip/<name>/visual/model.onnx`, ...)
//!   and its model-name clean-up; read-only, nothing is downloaded;
//! - [`clip`]: its image preprocessing (`resize_pil` / `crop_pil` rounding,
//!   float32 normalisation in its order of operations) and its text
//!   tokenization (Hugging Face `tokenizers` on the folder's tokenizer.json,
//!   the same library Immich's service uses);
//! - [`faces`]: buffalo_l through [`crate::faces::FacePipeline`] on Immich's
//!   files, with a per-request `minScore`, boxes rounded as numpy rounds, and
//!   the recognizer's raw (unnormalised) embeddings, as Immich stores them.
//!
//! The HTTP glue (queues, lazy loading, routes) is in `server`
//! (`server::immich_service`, `server::routes::immich`); docs/immich.md says
//! how to point Immich at it and what is decided where.

pub mod cache;
pub mod clip;
pub mod config;
pub mod error;
pub mod faces;
pub mod protocol;

pub use cache::{clean_name, ModelCache};
pub use config::ImmichArgs;
pub use error::ImmichError;
