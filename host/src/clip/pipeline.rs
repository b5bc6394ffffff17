//! The CLIP pipeline: bytes or text in, L2-normalized embeddings out.
//!
//! Decoding and preprocessing ([`ClipPipeline::prepare_image`]) are pure CPU
//! work, safe to call from many threads at once, so callers can overlap them
//! with inference; [`ClipPipeline::embed_prepared`] then runs one batch on the
//! device.

use std::path::Path;
use std::sync::Arc;

use switchyard_core::abi::BackendBox;

use crate::clip::model::{ClipEngine, ClipError, ClipModel};
use crate::clip::preprocess::{preprocess, PreprocessConfig};
use crate::clip::tokenizer::{ClipTokenizer, TokenizerError};
use crate::image::decode::{decode_rgb, decode_rgb_scaled, DecodeError, DecodeLimits};

/// How much larger than the model's input (224 px for ViT-B-32) the shorter
/// side of a JPEG decoded at reduced DCT scale must stay. At 2x, a 12 MP
/// camera JPEG decodes at 1/4 scale (1000x750 instead of 4000x3000), and the
/// embeddings stay at cosine >= 0.9999 to open_clip's full PIL decode on the
/// parity images (docs/benchmarks.md, `tests/tests/clip_embed.rs`).
pub const SCALED_DECODE_MARGIN: u32 = 2;

/// Why the pipeline could not be built or an input embedded.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Clip(#[from] ClipError),
    #[error("the CLIP tokenizer could not be loaded")]
    Tokenizer(#[from] TokenizerError),
    #[error("the image could not be decoded")]
    Decode(#[from] DecodeError),
    #[error("the model's preprocessing settings are invalid")]
    Preprocess(#[from] crate::clip::preprocess::ConfigError),
    #[error("`{}` has pretrained weights `{found}`, but CLIP_PRETRAINED={wanted}; export the wanted weights with `python tools/export_clip.py --model {model} --pretrained {wanted}`", dir.display())]
    PretrainedMismatch { dir: std::path::PathBuf, model: String, found: String, wanted: String },
}

/// A CLIP model with its tokenizer and preprocessing.
pub struct ClipPipeline {
    pub model: ClipModel,
    tokenizer: ClipTokenizer,
    preprocess: PreprocessConfig,
    limits: DecodeLimits,
    /// Shorter side a reduced-scale JPEG decode must keep; `None`: decode at full size.
    scaled_side: Option<u32>,
}

impl ClipPipeline {
    /// Loads the model in `dir` (config.json, towers, tokenizer) on `backend`.
    pub fn load(
        backend: Arc<BackendBox>,
        dir: &Path,
        engine: ClipEngine,
        pretrained: Option<&str>,
        limits: DecodeLimits,
    ) -> Result<Self, PipelineError> {
        let config = ClipModel::read_config(dir)?;
        if let Some(wanted) = pretrained.filter(|p| !p.is_empty()) {
            let found = config.pretrained.clone().unwrap_or_else(|| "none".into());
            if found != wanted {
                return Err(PipelineError::PretrainedMismatch {
                    dir: dir.to_path_buf(),
                    model: config.model.clone(),
                    found,
                    wanted: wanted.to_string(),
                });
            }
        }
        let tokenizer = ClipTokenizer::from_file(dir.join(&config.tokenizer))?;
        let preprocess = PreprocessConfig {
            image_size: config.image_size as u32,
            mean: config.mean,
            std: config.std,
            interpolation: config.interpolation.clone(),
            resize_mode: config.resize_mode.clone(),
        };
        preprocess.validate()?;
        let model = ClipModel::load(backend, dir, engine)?;
        Ok(ClipPipeline { model, tokenizer, preprocess, limits, scaled_side: None })
    }

    /// Lets [`ClipPipeline::prepare_image`] decode large JPEGs at a reduced DCT
    /// scale (see [`SCALED_DECODE_MARGIN`]): several times faster for camera
    /// photos, at the price of pixels that are no longer PIL's exactly.
    pub fn with_scaled_decode(mut self, on: bool) -> Self {
        self.scaled_side = on.then(|| self.preprocess.image_size * SCALED_DECODE_MARGIN);
        self
    }

    /// Decodes and preprocesses one image: `[3, S, S]` floats. Thread-safe.
    pub fn prepare_image(&self, bytes: &[u8]) -> Result<Vec<f32>, PipelineError> {
        Ok(self.prepare_image_sized(bytes)?.0)
    }

    /// Decodes an image with this pipeline's limits, at full size.
    pub fn decode(&self, bytes: &[u8]) -> Result<crate::image::decode::RgbImage, PipelineError> {
        Ok(decode_rgb(bytes, &self.limits)?)
    }

    /// Decodes an image for CLIP alone: at reduced scale where
    /// [`ClipPipeline::with_scaled_decode`] allows it.
    pub fn decode_for_clip(&self, bytes: &[u8]) -> Result<crate::image::decode::RgbImage, PipelineError> {
        Ok(decode_rgb_scaled(bytes, &self.limits, self.scaled_side)?)
    }

    /// Preprocesses an already decoded image: `[3, S, S]` floats.
    pub fn prepare_decoded(&self, rgb: &crate::image::decode::RgbImage) -> Vec<f32> {
        preprocess(rgb, &self.preprocess)
    }

    /// [`ClipPipeline::prepare_image`], also returning the file's (width, height).
    pub fn prepare_image_sized(&self, bytes: &[u8]) -> Result<(Vec<f32>, (u32, u32)), PipelineError> {
        let rgb = self.decode_for_clip(bytes)?;
        let size = rgb.source_size();
        Ok((preprocess(&rgb, &self.preprocess), size))
    }

    /// Embeds prepared images as one batch.
    pub fn embed_prepared(&self, images: &[&[f32]]) -> Result<Vec<Vec<f32>>, PipelineError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(images.iter().map(|i| i.len()).sum());
        for image in images {
            batch.extend_from_slice(image);
        }
        Ok(self.model.embed_pixels(&batch, images.len())?)
    }

    /// Tokenizes texts as open_clip does (77 tokens, truncated).
    pub fn tokenize(&self, texts: &[&str]) -> Vec<i64> {
        self.tokenizer.tokenize_batch(texts, self.model.config.context_length)
    }

    /// Embeds texts as one batch.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, PipelineError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tokens = self.tokenize(texts);
        Ok(self.model.embed_tokens(&tokens, texts.len())?)
    }
}
