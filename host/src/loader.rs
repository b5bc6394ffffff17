//! What `switchyard embed` and `switchyard serve` load, and loading it: one
//! path for both commands.
//!
//! A [`LoadPlan`] is read from the flags shared by the two commands (device,
//! plugins, models). [`LoadPlan::start`] selects the device and opens its
//! plugin; [`LoadPlan::load_clip`] and [`LoadPlan::load_faces`] load and warm
//! up the pipelines on a backend (the selected one, or the CPU fallback's).
//! What each command does around them (the server's queues, fallback and
//! missing-model tolerance; the batch job's output) stays with the command.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use switchyard_core::abi::BackendBox;
use switchyard_core::DeviceKind;

use crate::clip::model::{default_engine, ClipEngine};
use crate::clip::pipeline::{ClipPipeline, PipelineError};
use crate::config::{DeviceArgs, DeviceSettings, FaceDetectArgs, ModelArgs, PluginArgs};
use crate::faces::{FaceError, FaceOptions, FacePipeline};
use crate::image::decode::DecodeLimits;
use crate::runtime::{Runtime, RuntimeError, RuntimeOptions};

/// What to load at startup.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub settings: DeviceSettings,
    pub runtime: RuntimeOptions,
    pub clip_dir: PathBuf,
    /// `None`: the default engine for the selected device.
    pub clip_engine: Option<ClipEngine>,
    pub clip_pretrained: Option<String>,
    /// `MODEL_DIR/faces/FACE_MODEL_NAME`.
    pub face_dir: PathBuf,
    pub face_model_name: String,
    /// `FALLBACK=cpu`: retry batches the selected device fails on the CPU plugin.
    pub fallback: bool,
}

/// How CLIP decodes the images it is given.
#[derive(Debug, Clone, Copy)]
pub struct ClipDecode {
    pub limits: DecodeLimits,
    /// Reduced-scale JPEG decode (`SWITCHYARD_SCALED_DECODE`).
    pub scaled: bool,
}

/// The face detector's settings in effect (`/info` lists them).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FaceDetect {
    pub det_size: (usize, usize),
    pub det_threshold: f32,
    pub nms_threshold: f32,
    pub max_num: usize,
}

impl From<&FaceDetectArgs> for FaceDetect {
    fn from(a: &FaceDetectArgs) -> Self {
        FaceDetect {
            det_size: a.face_det_size,
            det_threshold: a.face_det_threshold,
            nms_threshold: a.face_nms_threshold,
            max_num: a.face_max_num,
        }
    }
}

impl FaceDetect {
    /// The pipeline's options: these settings, `limits`, the rest insightface's defaults.
    pub fn options(self, limits: DecodeLimits) -> FaceOptions {
        FaceOptions {
            det_size: self.det_size,
            det_threshold: self.det_threshold,
            nms_threshold: self.nms_threshold,
            max_num: self.max_num,
            limits,
            ..FaceOptions::default()
        }
    }
}

impl LoadPlan {
    /// The plan from the flags `embed` and `serve` share; every value is
    /// validated here, so a wrong one stops the command before anything loads.
    pub fn from_args(
        device: &DeviceArgs,
        plugins: &PluginArgs,
        models: &ModelArgs,
        fallback: bool,
    ) -> anyhow::Result<LoadPlan> {
        Ok(LoadPlan {
            settings: device.resolve()?,
            runtime: RuntimeOptions {
                folder: plugins.folder(),
                explicit: plugins.plugins.clone(),
                inspect_exe: std::env::current_exe().ok(),
            },
            clip_dir: models.clip_dir(),
            clip_engine: models.engine()?,
            clip_pretrained: Some(models.clip_pretrained.clone()),
            face_dir: models.face_dir(),
            face_model_name: models.face_model_name.clone(),
            fallback,
        })
    }

    /// Selects the device, loads its plugin and opens the backend (blocking).
    pub fn start(&self) -> Result<Runtime, RuntimeError> {
        Runtime::start(&self.settings, &self.runtime)
    }

    /// The CLIP engine on a device of `kind`: the one asked for, else the device's default.
    pub fn clip_engine_on(&self, kind: DeviceKind) -> ClipEngine {
        self.clip_engine.unwrap_or_else(|| default_engine(kind))
    }

    /// Loads and warms up CLIP on `backend`, a device of `kind`.
    pub fn load_clip(
        &self,
        backend: &Arc<BackendBox>,
        kind: DeviceKind,
        decode: ClipDecode,
    ) -> Result<ClipPipeline, PipelineError> {
        let engine = self.clip_engine_on(kind);
        let pretrained = self.clip_pretrained.as_deref();
        let clip = ClipPipeline::load(backend.clone(), &self.clip_dir, engine, pretrained, decode.limits)?;
        Ok(clip.with_scaled_decode(decode.scaled))
    }

    /// Loads and warms up the face models on `backend`.
    pub fn load_faces(&self, backend: &Arc<BackendBox>, options: FaceOptions) -> Result<FacePipeline, FaceError> {
        FacePipeline::load(backend.clone(), &self.face_dir, options)
    }
}
