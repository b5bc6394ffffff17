//! The server's face models: the buffalo_l pipeline behind its own queue and
//! worker, or the reason it is not there.
//!
//! Faces are optional in a CLIP server: when the model folder is missing the
//! server still starts, logs a warning saying how to make the models, lists
//! them as `missing` in `/info`, and `POST /v1/faces` answers 503
//! `faces_unavailable` with the same advice. `--no-faces` skips loading on
//! purpose (`disabled`). Any other failure (a broken model file, a backend
//! error) stops startup: files that are present but wrong are a deployment
//! mistake that should be loud.
//!
//! The queue carries decoded images (full size, since `norm_crop` aligns
//! from the original pixels); the worker runs `detect_and_embed` on a batch
//! of them, which embeds the faces of all its images together.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use switchyard_core::abi::BackendBox;

use super::batcher::Batcher;
use super::config::FaceConfig;
use super::devices::Devices;
use super::error::ApiError;
use super::metrics::{Metrics, Queue};
use crate::faces::pipeline::{DETECTOR_FILE, RECOGNIZER_FILE};
use crate::faces::{Face, FaceError, FacePipeline};
use crate::image::decode::DecodeLimits;
use crate::image::RgbImage;
use crate::loader::LoadPlan;

/// Why face models that are there could not be loaded (startup stops).
#[derive(Debug, thiserror::Error)]
pub enum FaceLoadError {
    #[error("the face models could not be loaded (start with --no-faces to serve CLIP alone)")]
    Models(#[from] FaceError),
    #[error("cannot start a model worker thread")]
    Worker(#[source] std::io::Error),
}

/// The loaded face models and their queue.
pub struct FaceModels {
    pub name: String,
    pub pipeline: Arc<FacePipeline>,
    /// The pipeline on the selected device and on the CPU fallback.
    pub devices: Arc<Devices<FacePipeline>>,
    pub queue: Batcher<RgbImage, Vec<Face>>,
}

/// Faces on this server: loaded, or why not.
pub enum FaceService {
    Ready(FaceModels),
    Unavailable { status: &'static str, dir: PathBuf, reason: String },
}

/// One model file and the execution provider it runs on.
#[derive(Debug, Clone, Serialize)]
pub struct FaceModelFile {
    pub file: &'static str,
    pub provider: String,
}

/// The face entry of `/info`'s `models`.
#[derive(Debug, Clone, Serialize)]
pub struct FaceModelReport {
    pub name: String,
    pub kind: &'static str,
    /// `loaded`, `missing` or `disabled`.
    pub status: &'static str,
    pub dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detector: Option<FaceModelFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recognizer: Option<FaceModelFile>,
    /// Offline stand-ins (tools/make_face_models.py): boxes follow skin colour, embeddings are meaningless.
    pub random_weights: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<FaceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl FaceService {
    /// Loads and warms up the face models of `plan` on `backend` (with its
    /// device label), also on the CPU `fallback` if given, and starts their
    /// worker; blocking.
    pub fn load(
        plan: &LoadPlan,
        (backend, label): (Arc<BackendBox>, String),
        fallback: Option<(Arc<BackendBox>, String)>,
        config: &FaceConfig,
        limits: DecodeLimits,
        metrics: &Arc<Metrics>,
    ) -> Result<FaceService, FaceLoadError> {
        let (dir, name) = (plan.face_dir.as_path(), plan.face_model_name.as_str());
        if !config.enabled {
            let reason = "the server was started with --no-faces (SWITCHYARD_FACES=false); restart without it".into();
            tracing::info!("face models not loaded (--no-faces)");
            return Ok(FaceService::Unavailable { status: "disabled", dir: dir.to_path_buf(), reason });
        }
        let options = config.detect.options(limits);
        let pipeline = match plan.load_faces(&backend, options.clone()) {
            Ok(p) => Arc::new(p),
            Err(e @ FaceError::MissingModel { .. }) => {
                let reason = e.to_string();
                tracing::warn!(dir = %dir.display(), "face models missing; POST /v1/faces will answer 503: {reason}");
                return Ok(FaceService::Unavailable { status: "missing", dir: dir.to_path_buf(), reason });
            }
            Err(e) => return Err(FaceLoadError::Models(e)),
        };
        let device = pipeline.info().detector_device.clone();
        let fallback = match fallback {
            Some((backend, label)) => Some((Arc::new(plan.load_faces(&backend, options)?), label)),
            None => None,
        };
        let devices = Arc::new(Devices::new("faces", pipeline.clone(), &label, fallback));
        let queue = {
            let devices = devices.clone();
            Batcher::start(
                Queue::Faces,
                config.batch,
                device,
                metrics.clone(),
                Box::new(move |images: Vec<RgbImage>| {
                    let refs: Vec<&RgbImage> = images.iter().collect();
                    devices.run(|p| p.detect_and_embed(&refs))
                }),
            )
            .map_err(FaceLoadError::Worker)?
        };
        Ok(FaceService::Ready(FaceModels { name: name.to_string(), pipeline, devices, queue }))
    }

    /// The models, or 503 `faces_unavailable` saying why.
    pub fn ready(&self) -> Result<&FaceModels, ApiError> {
        match self {
            FaceService::Ready(m) => Ok(m),
            FaceService::Unavailable { reason, .. } => Err(ApiError::FacesUnavailable(reason.clone())),
        }
    }

    /// What `/info` says about the face models.
    pub fn report(&self, name: &str, config: &FaceConfig) -> FaceModelReport {
        match self {
            FaceService::Ready(m) => {
                let info = m.pipeline.info();
                FaceModelReport {
                    name: m.name.clone(),
                    kind: "faces",
                    status: "loaded",
                    dir: info.dir.clone(),
                    detector: Some(FaceModelFile { file: DETECTOR_FILE, provider: info.detector_device.clone() }),
                    recognizer: Some(FaceModelFile { file: RECOGNIZER_FILE, provider: info.recognizer_device.clone() }),
                    random_weights: info.random_weights,
                    options: Some(*config),
                    reason: None,
                }
            }
            FaceService::Unavailable { status, dir, reason } => FaceModelReport {
                name: name.to_string(),
                kind: "faces",
                status,
                dir: dir.clone(),
                detector: None,
                recognizer: None,
                random_weights: false,
                options: None,
                reason: Some(reason.clone()),
            },
        }
    }

    /// Stops the worker after it finishes what is queued.
    pub fn close(&self) {
        if let FaceService::Ready(m) = self {
            m.queue.close();
        }
    }
}
