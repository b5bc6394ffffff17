//! What the handlers share: the settings, the metrics, and the models once
//! they are loaded.
//!
//! The server listens before the models are loaded, so that `/health`
//! answers and `/ready` says 503 while the plugin is selected and the towers
//! and the face models load and warm up (seconds). [`Models`] is set exactly once, when all of it
//! is done; every model route answers 503 `not_ready` until then.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use super::batcher::{Batcher, QueueError};
use super::config::ServerConfig;
use super::devices::Devices;
use super::error::ApiError;
use super::face_service::{FaceLoadError, FaceModelReport, FaceService};
use super::metrics::{Metrics, Queue};
use super::swap::{Planned, PluginId, SwapControl, SwapError};
use crate::clip::model::ClipEngine;
use crate::clip::pipeline::{ClipPipeline, PipelineError};
use crate::image::decode::DecodeLimits;
use crate::loader::{ClipDecode, LoadPlan};
use crate::runtime::fallback::{Fallback, FallbackError};
use crate::runtime::{Runtime, RuntimeError};
use switchyard_core::DeviceKind;

/// Why the models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no device could be started")]
    Runtime(#[from] RuntimeError),
    #[error("the CLIP model could not be loaded")]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Faces(#[from] FaceLoadError),
    #[error(transparent)]
    Fallback(#[from] FallbackError),
    #[error("the CLIP model could not be loaded on the CPU fallback")]
    FallbackPipeline(#[source] PipelineError),
    #[error("cannot start a model worker thread")]
    Worker(#[source] std::io::Error),
}

/// Unloads the models after `ttl` without use (see [`crate::resident`]); the
/// thread ends when the models are dropped.
fn start_janitor(
    ttl: Duration,
    clip: Weak<ClipPipeline>,
    faces: Option<Weak<crate::faces::FacePipeline>>,
) -> std::io::Result<()> {
    let tick = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    std::thread::Builder::new().name("model-janitor".into()).spawn(move || loop {
        std::thread::sleep(tick);
        let Some(clip) = clip.upgrade() else { return };
        clip.model.resident().unload_if_idle(ttl);
        if let Some(faces) = faces.as_ref().and_then(Weak::upgrade) {
            faces.resident().unload_if_idle(ttl);
        }
    })?;
    Ok(())
}

/// A model as `/info` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ModelEntry {
    Clip(ModelReport),
    Faces(FaceModelReport),
}

impl ModelEntry {
    /// Whether it runs offline stand-in weights.
    pub fn random_weights(&self) -> bool {
        match self {
            ModelEntry::Clip(m) => m.random_weights,
            ModelEntry::Faces(m) => m.random_weights,
        }
    }
}

/// The loaded CLIP model, as `/info` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub name: String,
    pub kind: &'static str,
    pub engine: ClipEngine,
    pub device: String,
    pub embed_dim: usize,
    pub image_size: usize,
    pub context_length: usize,
    pub pretrained: Option<String>,
    pub random_weights: bool,
    pub dir: PathBuf,
}

/// The loaded models and their queues.
pub struct Models {
    pub clip: Arc<ClipPipeline>,
    /// CLIP on the selected device and on the CPU fallback.
    pub clip_devices: Arc<Devices<ClipPipeline>>,
    pub text: Batcher<String, Vec<f32>>,
    pub image: Batcher<Vec<f32>, Vec<f32>>,
    /// The face pipeline and its queue, or why it is absent.
    pub faces: FaceService,
    /// The models of Immich's protocol (`POST /predict`), loaded on first use.
    pub immich: Arc<super::immich_service::ImmichService>,
    pub report: Vec<ModelEntry>,
    /// The CPU plugin behind `FALLBACK=cpu`; outlives the pipelines on it.
    pub fallback: Option<Fallback>,
    /// Kept last: the plugin must outlive the pipelines and workers.
    pub runtime: Runtime,
}

impl Models {
    /// Selects the device, loads and warms up CLIP and the face models, starts
    /// the workers. Blocking (seconds).
    pub fn load(plan: &LoadPlan, config: &ServerConfig, metrics: &Arc<Metrics>) -> Result<Models, LoadError> {
        let runtime = plan.start()?;
        let engine = plan.clip_engine_on(runtime.selection.kind);
        let limits = DecodeLimits { max_pixels: config.limits.max_pixels };
        let decode = ClipDecode { limits, scaled: config.limits.scaled_decode };
        let clip = Arc::new(plan.load_clip(&runtime.backend, runtime.selection.kind, decode)?);
        let device = clip.model.device().to_string();
        metrics.set_device(&runtime.report.device, &runtime.report.plugin.name, &format!("{engine:?}").to_lowercase());
        let fallback = if plan.fallback { Fallback::start(&runtime, &plan.settings, &plan.runtime)? } else { None };
        let fallback_clip = match &fallback {
            Some(fb) => {
                let clip = plan.load_clip(&fb.backend, DeviceKind::Cpu, decode).map_err(LoadError::FallbackPipeline)?;
                Some((Arc::new(clip), fb.report.device.clone()))
            }
            None => None,
        };
        let clip_devices = Arc::new(Devices::new("clip", clip.clone(), &runtime.report.device, fallback_clip));
        let text = {
            let clip = clip_devices.clone();
            Batcher::start(
                Queue::Text,
                config.batch,
                device.clone(),
                metrics.clone(),
                Box::new(move |texts: Vec<String>| {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    clip.run(|p| p.embed_texts(&refs))
                }),
            )
            .map_err(LoadError::Worker)?
        };
        let image = {
            let clip = clip_devices.clone();
            Batcher::start(
                Queue::Image,
                config.batch,
                device.clone(),
                metrics.clone(),
                Box::new(move |images: Vec<Vec<f32>>| {
                    let refs: Vec<&[f32]> = images.iter().map(Vec::as_slice).collect();
                    clip.run(|p| p.embed_prepared(&refs))
                }),
            )
            .map_err(LoadError::Worker)?
        };
        let c = &clip.model.config;
        let faces = FaceService::load(
            plan,
            (runtime.backend.clone(), runtime.report.device.clone()),
            fallback.as_ref().map(|fb| (fb.backend.clone(), fb.report.device.clone())),
            &config.faces,
            limits,
            metrics,
        )?;
        let clip_report = ModelReport {
            name: c.model.clone(),
            kind: "clip",
            engine,
            device,
            embed_dim: c.embed_dim,
            image_size: c.image_size,
            context_length: c.context_length,
            pretrained: c.pretrained.clone(),
            random_weights: c.random_weights,
            dir: clip.model.dir.clone(),
        };
        let report =
            vec![ModelEntry::Clip(clip_report), ModelEntry::Faces(faces.report(&plan.face_model_name, &config.faces))];
        let immich = super::immich_service::ImmichService::new(
            crate::immich::ModelCache::new(&config.immich_models),
            (runtime.backend.clone(), runtime.report.device.clone()),
            fallback.as_ref().map(|fb| (fb.backend.clone(), fb.report.device.clone())),
            config.batch,
            metrics.clone(),
            (config.model_idle_ttl_s > 0).then(|| Duration::from_secs(config.model_idle_ttl_s)),
        )
        .map_err(LoadError::Worker)?;
        if config.model_idle_ttl_s > 0 {
            let faces = match &faces {
                FaceService::Ready(f) => Some(Arc::downgrade(&f.pipeline)),
                _ => None,
            };
            start_janitor(Duration::from_secs(config.model_idle_ttl_s), Arc::downgrade(&clip), faces)
                .map_err(LoadError::Worker)?;
        }
        Ok(Models { clip, clip_devices, text, image, faces, immich, report, fallback, runtime })
    }

    /// Whether each model is on the device now, and how often it came back after an idle unload.
    pub fn residency(&self) -> serde_json::Value {
        let entry =
            |r: &crate::resident::ResidentSet| serde_json::json!({"loaded": r.is_loaded(), "reloads": r.reloads()});
        let mut out = serde_json::json!({"clip": entry(self.clip.model.resident())});
        if let FaceService::Ready(f) = &self.faces {
            out["faces"] = entry(f.pipeline.resident());
        }
        out
    }

    /// [`QueueError::Stuck`] (503 `backend_stuck`) when a model worker is stuck in a device call.
    pub fn check_healthy(&self) -> Result<(), QueueError> {
        self.text.check_healthy()?;
        self.image.check_healthy()?;
        if let FaceService::Ready(f) = &self.faces {
            f.queue.check_healthy()?;
        }
        self.immich.check_healthy()
    }

    /// Stops the workers after they finish what is queued.
    pub fn close(&self) {
        self.text.close();
        self.image.close();
        self.faces.close();
        self.immich.close();
    }
}

/// Shared by every handler.
pub struct AppState {
    pub config: ServerConfig,
    pub metrics: Arc<Metrics>,
    pub models: OnceLock<Arc<Models>>,
    /// Bounds the images decoded at once on the blocking pool.
    pub preprocess: Semaphore,
    /// Bounds the request bodies held at once (`SWITCHYARD_MAX_BUFFERED_BODY_BYTES`).
    pub bodies: super::bodies::BodyBudget,
    /// Plugin swaps (SIGHUP, `POST /admin/reload`).
    pub swap: SwapControl,
}

impl AppState {
    pub fn new(config: ServerConfig, swap: SwapControl) -> Self {
        let permits = config.limits.preprocess_workers;
        let bodies = super::bodies::BodyBudget::new(config.limits.max_buffered_body_bytes);
        Self {
            config,
            metrics: Arc::new(Metrics::default()),
            models: OnceLock::new(),
            preprocess: Semaphore::new(permits),
            bodies,
            swap,
        }
    }

    /// Validates a plugin swap away from the plugin serving now and starts it
    /// ([`SwapControl::request`]); refused while the models load.
    pub async fn request_swap(&self, trigger: &'static str) -> Result<Planned, SwapError> {
        let current = self.models.get().map(|m| PluginId {
            plugin_path: m.runtime.report.plugin_path.clone(),
            plugin_sha256: m.runtime.report.plugin_sha256.clone(),
        });
        self.swap.request(current, trigger).await
    }

    /// The models, or 503 while they load.
    pub fn models(&self) -> Result<&Arc<Models>, ApiError> {
        self.models.get().ok_or(ApiError::NotReady)
    }
}
