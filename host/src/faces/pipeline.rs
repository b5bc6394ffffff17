//! [`FacePipeline`]: the buffalo_l pair on the selected backend. Images in,
//! per image the faces found (box, score, 5 landmarks, L2-normalised
//! embedding) out.
//!
//! Detection runs one image at a time (det_10g's input has batch 1, as in
//! insightface); the aligned crops of all faces of all images in a call are
//! then embedded together in batches of [`FaceOptions::rec_batch`], which is
//! where a GPU earns its keep. Decoding ([`FacePipeline::prepare_image`]) is
//! pure CPU work and thread-safe, so callers can overlap it with inference.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::std_types::RSlice;
use serde::Serialize;
use switchyard_core::abi::{kv, BackendBox, BackendError, DType, ModelSpec, Tensor, TensorView};

use super::align::{norm_crop, CROP_SIZE};
use super::arcface;
use super::scrfd::{self, Detection, StrideOutput, ANCHORS, STRIDES};
use crate::image::decode::{decode_rgb, DecodeError, DecodeLimits};
use crate::image::RgbImage;
use crate::resident::{LoadFailure, ResidentSet};

/// The detector file inside the model folder.
pub const DETECTOR_FILE: &str = "det_10g.onnx";
/// The recognizer file inside the model folder.
pub const RECOGNIZER_FILE: &str = "w600k_r50.onnx";

/// One face: where it is and who it looks like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Face {
    /// `[x1, y1, x2, y2]` in image pixels.
    pub bbox: [f32; 4],
    /// Detection score in `[0, 1]`.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corners, `[x, y]`.
    pub landmarks: [[f32; 2]; 5],
    /// The ArcFace embedding, unit length (512 values for buffalo_l).
    pub embedding: Vec<f32>,
}

/// Settings, with insightface's `FaceAnalysis.prepare(det_size=(640, 640))` defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceOptions {
    /// Detector input `(width, height)`; multiples of 32.
    pub det_size: (usize, usize),
    /// Minimum detection score (insightface `det_thresh`).
    pub det_threshold: f32,
    /// NMS IoU above which the lower-scored box is dropped.
    pub nms_threshold: f32,
    /// Keep at most this many faces per image (0: all), ranked as insightface ranks them.
    pub max_num: usize,
    /// Faces per recognition batch. 8: on the CPU larger batches are no
    /// faster per face, and ONNX Runtime's arena keeps the largest batch's
    /// activations for good (32 cost 40 MB more peak RSS in `embed --faces`).
    pub rec_batch: usize,
    /// Recognition input mean and std (buffalo_l's w600k_r50: 127.5 and 127.5).
    pub rec_mean: f32,
    pub rec_std: f32,
    /// Limits for [`FacePipeline::prepare_image`].
    pub limits: DecodeLimits,
}

impl Default for FaceOptions {
    fn default() -> Self {
        FaceOptions {
            det_size: (640, 640),
            det_threshold: 0.5,
            nms_threshold: 0.4,
            max_num: 0,
            rec_batch: 8,
            rec_mean: 127.5,
            rec_std: 127.5,
            limits: DecodeLimits::default(),
        }
    }
}

/// The largest detector side accepted: a 4096x4096 input is a 201 MB blob
/// and a 2.1 M-candidate decode; beyond that a setting is a mistake.
pub const MAX_DET_SIDE: usize = 4096;

impl FaceOptions {
    /// Checks the settings: a detector size in multiples of 32 up to
    /// [`MAX_DET_SIDE`], thresholds in `[0, 1]`, a recognition batch of at
    /// least 1, finite recognition normalisation with a non-zero std.
    pub fn validate(&self) -> Result<(), FaceError> {
        let bad = |name, value: String, hint| Err(FaceError::BadOption { name, value, hint });
        let (w, h) = self.det_size;
        if w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0 || w > MAX_DET_SIDE || h > MAX_DET_SIDE {
            return bad("det_size", format!("{w}x{h}"), "use multiples of 32 up to 4096, such as 640x640");
        }
        for (name, value) in [("det_threshold", self.det_threshold), ("nms_threshold", self.nms_threshold)] {
            if !(0.0..=1.0).contains(&value) {
                return bad(name, value.to_string(), "use a number from 0 to 1");
            }
        }
        if self.rec_batch == 0 {
            return bad("rec_batch", "0".into(), "use at least 1");
        }
        if !self.rec_mean.is_finite() || !self.rec_std.is_finite() || self.rec_std == 0.0 {
            return bad("rec_mean/rec_std", format!("{}/{}", self.rec_mean, self.rec_std), "use 127.5/127.5");
        }
        Ok(())
    }
}

/// What can go wrong loading the face models or running them.
#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("`{}` is missing; make offline stand-ins with `python tools/make_face_models.py --out {}` (ci/setup.sh does), or unzip InsightFace's buffalo_l.zip there", path.display(), dir.display())]
    MissingModel { path: PathBuf, dir: PathBuf },
    #[error("face option `{name}` = {value} is invalid; {hint}")]
    BadOption { name: &'static str, value: String, hint: &'static str },
    #[error("the backend failed while {during} the {model} model")]
    Backend {
        during: &'static str,
        model: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("the {model} model does not have buffalo_l's signature: {detail}; use det_10g.onnx / w600k_r50.onnx from buffalo_l or tools/make_face_models.py")]
    BadModel { model: &'static str, detail: String },
    #[error("the image could not be decoded")]
    Decode(#[from] DecodeError),
}

/// Where each model runs, for probe output and results' metadata.
#[derive(Debug, Clone, Serialize)]
pub struct FaceModelInfo {
    pub dir: PathBuf,
    /// e.g. `CPUExecutionProvider`, as the backend reports it.
    pub detector_device: String,
    pub recognizer_device: String,
    /// The offline stand-ins (tools/make_face_models.py wrote meta.json).
    pub random_weights: bool,
}

/// The loaded detector and recognizer.
pub struct FacePipeline {
    /// The detector (0) and recognizer (1); see [`crate::resident`].
    models: ResidentSet,
    options: FaceOptions,
    info: FaceModelInfo,
    /// Faces per recognition call: [`FaceOptions::rec_batch`], or 1 for a recognizer with a fixed batch of 1.
    rec_batch: usize,
}

const MODELS: [&str; 2] = ["detector", "recognizer"];

fn loading(f: LoadFailure) -> FaceError {
    FaceError::Backend { during: "loading", model: MODELS[f.index], source: f.source }
}

impl FacePipeline {
    /// Loads `dir/det_10g.onnx` and `dir/w600k_r50.onnx` on `backend`, checks
    /// their signatures and warms them up.
    pub fn load(backend: Arc<BackendBox>, dir: &Path, options: FaceOptions) -> Result<Self, FaceError> {
        Self::load_files(backend, dir, [&dir.join(DETECTOR_FILE), &dir.join(RECOGNIZER_FILE)], options)
    }

    /// [`FacePipeline::load`] with the two files named (Immich's cache keeps
    /// them as `detection/model.onnx` and `recognition/model.onnx`); `dir` is
    /// the model folder (`meta.json` there marks stand-ins).
    pub fn load_files(
        backend: Arc<BackendBox>,
        dir: &Path,
        [detector, recognizer]: [&Path; 2],
        options: FaceOptions,
    ) -> Result<Self, FaceError> {
        options.validate()?;
        let mut specs = Vec::new();
        for (path, model) in [(detector, MODELS[0]), (recognizer, MODELS[1])] {
            if !path.is_file() {
                return Err(FaceError::MissingModel { path: path.to_path_buf(), dir: dir.to_path_buf() });
            }
            specs.push(ModelSpec {
                name: format!("faces/{model}").into(),
                path: path.display().to_string().into(),
                format: "onnx".into(),
                options: kv::<&str, &str>([]),
            });
        }
        let models = ResidentSet::load(backend, specs).map_err(loading)?;
        let (det, rec) = models.with(|infos| (infos[0].clone(), infos[1].clone())).map_err(loading)?;
        crate::util::log_model_notes("faces/detector", &det);
        crate::util::log_model_notes("faces/recognizer", &rec);
        if det.inputs.len() != 1 || det.outputs.len() != 9 {
            let detail = format!("{} inputs and {} outputs, expected 1 and 9", det.inputs.len(), det.outputs.len());
            return Err(FaceError::BadModel { model: "detector", detail });
        }
        if rec.inputs.len() != 1 || rec.outputs.len() != 1 {
            let detail = format!("{} inputs and {} outputs, expected 1 and 1", rec.inputs.len(), rec.outputs.len());
            return Err(FaceError::BadModel { model: "recognizer", detail });
        }
        let rec_batch = match rec.inputs[0].shape.first() {
            Some(1) => 1,
            _ => options.rec_batch,
        };
        let random_weights = dir.join("meta.json").is_file();
        if random_weights {
            tracing::warn!(dir = %dir.display(), "serving STAND-IN face models (tools/make_face_models.py): detections follow skin colour and embeddings are meaningless; unzip buffalo_l.zip there for real ones");
        }
        let info = FaceModelInfo {
            dir: dir.to_path_buf(),
            detector_device: det.device.to_string(),
            recognizer_device: rec.device.to_string(),
            random_weights,
        };
        let pipeline = FacePipeline { models, options, info, rec_batch };
        let blank = RgbImage::from_raw(32, 32, vec![0; 32 * 32 * 3]).expect("32x32");
        pipeline.detect(&blank)?;
        pipeline.embed_crops(&[&norm_crop(&blank, &super::align::ARCFACE_TEMPLATE)])?;
        Ok(pipeline)
    }

    /// Where the models run and whether they are stand-ins.
    pub fn info(&self) -> &FaceModelInfo {
        &self.info
    }

    /// The settings in use.
    pub fn options(&self) -> &FaceOptions {
        &self.options
    }

    /// Decodes an image file's bytes (PIL semantics, see [`crate::image::decode`]). Thread-safe.
    pub fn prepare_image(&self, bytes: &[u8]) -> Result<RgbImage, FaceError> {
        Ok(decode_rgb(bytes, &self.options.limits)?)
    }

    /// Detects faces in one image: boxes, scores, landmarks, best first.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<Detection>, FaceError> {
        self.detect_over(img, self.options.det_threshold)
    }

    /// [`FacePipeline::detect`] with another minimum score for this call (Immich's per-request `minScore`).
    pub fn detect_over(&self, img: &RgbImage, threshold: f32) -> Result<Vec<Detection>, FaceError> {
        let (w, h) = self.options.det_size;
        let letterbox = scrfd::preprocess(img, w, h);
        let shape = [1i64, 3, h as i64, w as i64];
        let view = TensorView {
            dtype: DType::F32.code(),
            shape: RSlice::from_slice(&shape),
            data: RSlice::from_slice(bytemuck::cast_slice(&letterbox.blob)),
        };
        let outputs = self.run(0, view)?;
        let options = FaceOptions { det_threshold: threshold, ..self.options.clone() };
        detections(&options, &outputs, letterbox.det_scale, (img.width(), img.height()))
    }

    /// The aligned 112x112 crop of a detected face (`norm_crop`).
    pub fn align(&self, img: &RgbImage, face: &Detection) -> RgbImage {
        norm_crop(img, &face.landmarks)
    }

    /// Embeds aligned crops (each 112x112) in batches; unit-length rows.
    pub fn embed_crops(&self, crops: &[&RgbImage]) -> Result<Vec<Vec<f32>>, FaceError> {
        Ok(self.embed_crops_raw(crops)?.iter().map(|e| arcface::l2_normalize(e)).collect())
    }

    /// [`FacePipeline::embed_crops`] without the normalisation: the
    /// recognizer's output rows as they are (insightface's `get_feat`).
    pub fn embed_crops_raw(&self, crops: &[&RgbImage]) -> Result<Vec<Vec<f32>>, FaceError> {
        let mut out = Vec::with_capacity(crops.len());
        let mut blob = Vec::new();
        for chunk in crops.chunks(self.rec_batch) {
            if let Some(bad) =
                chunk.iter().find(|c| c.width() as usize != CROP_SIZE || c.height() as usize != CROP_SIZE)
            {
                let value = format!("{}x{}", bad.width(), bad.height());
                return Err(FaceError::BadOption {
                    name: "crop size",
                    value,
                    hint: "crops must be 112x112 (norm_crop)",
                });
            }
            arcface::blob(chunk, self.options.rec_mean, self.options.rec_std, &mut blob);
            let shape = [chunk.len() as i64, 3, CROP_SIZE as i64, CROP_SIZE as i64];
            let view = TensorView {
                dtype: DType::F32.code(),
                shape: RSlice::from_slice(&shape),
                data: RSlice::from_slice(bytemuck::cast_slice(&blob)),
            };
            let outputs = self.run(1, view)?;
            let first = outputs
                .first()
                .ok_or_else(|| FaceError::BadModel { model: "recognizer", detail: "no output".into() })?;
            let dim = match first.shape.as_slice() {
                [n, d] if *n == chunk.len() as i64 && *d > 0 => *d as usize,
                other => {
                    let detail = format!("output shape {other:?}, expected [{}, 512]", chunk.len());
                    return Err(FaceError::BadModel { model: "recognizer", detail });
                }
            };
            let values = floats(first, chunk.len() * dim, "recognizer", 0)?;
            out.extend(values.chunks_exact(dim).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Detects, aligns and embeds the faces of a batch of images; the
    /// recognition runs batched over all their faces.
    pub fn detect_and_embed(&self, images: &[&RgbImage]) -> Result<Vec<Vec<Face>>, FaceError> {
        let mut detections = Vec::with_capacity(images.len());
        let mut crops = Vec::new();
        for img in images {
            let dets = self.detect(img)?;
            crops.extend(dets.iter().map(|d| self.align(img, d)));
            detections.push(dets);
        }
        let crop_refs: Vec<&RgbImage> = crops.iter().collect();
        let mut embeddings = self.embed_crops(&crop_refs)?.into_iter();
        Ok(detections
            .into_iter()
            .map(|dets| {
                dets.into_iter()
                    .map(|d| Face {
                        bbox: d.bbox,
                        score: d.score,
                        landmarks: d.landmarks,
                        embedding: embeddings.next().unwrap_or_default(),
                    })
                    .collect()
            })
            .collect())
    }

    /// The models' residency (idle unload, reloads).
    pub fn resident(&self) -> &ResidentSet {
        &self.models
    }

    fn run(&self, index: usize, input: TensorView<'_>) -> Result<Vec<Tensor>, FaceError> {
        let model = MODELS[index];
        let outputs = self
            .models
            .with(|infos| self.models.backend().run(infos[index].handle, RSlice::from_slice(&[input])).into_result())
            .map_err(loading)?
            .map_err(|source| FaceError::Backend { during: "running", model, source })?;
        Ok(outputs.into_iter().collect())
    }
}

/// The detector's nine outputs for one image turned into its faces: the
/// anchor decode over `options.det_threshold`, NMS, then `max_num` (ranked
/// against the centre of the `(width, height)` image). Pure (what the
/// `face_detect` fuzz target runs): outputs of the wrong dtype, count or size
/// are a `BadModel` error, and candidates whose box, landmarks or score are
/// not finite are no faces.
pub fn detections(
    options: &FaceOptions,
    outputs: &[Tensor],
    det_scale: f64,
    image: (u32, u32),
) -> Result<Vec<Detection>, FaceError> {
    let (w, h) = options.det_size;
    if outputs.len() != 9 {
        let detail = format!("{} outputs, expected 9", outputs.len());
        return Err(FaceError::BadModel { model: "detector", detail });
    }
    let mut values = Vec::with_capacity(9);
    for (i, out) in outputs.iter().enumerate() {
        let stride = STRIDES[i % 3];
        let width = [1, 4, 10][i / 3];
        let n = (w / stride) * (h / stride) * ANCHORS;
        values.push(floats(out, n * width, "detector", i)?);
    }
    let per_stride: Vec<StrideOutput<'_>> = (0..3)
        .map(|i| StrideOutput { stride: STRIDES[i], scores: &values[i], boxes: &values[i + 3], kps: &values[i + 6] })
        .collect();
    let candidates = scrfd::decode(&per_stride, w, options.det_threshold, det_scale);
    let kept = scrfd::nms(&candidates, options.nms_threshold);
    Ok(scrfd::select_max(kept, options.max_num, image.0, image.1))
}

/// The f32 values of an output, checked for dtype and element count.
fn floats(t: &Tensor, expected: usize, model: &'static str, index: usize) -> Result<Vec<f32>, FaceError> {
    if t.dtype != DType::F32.code() || t.data.len() != expected * 4 {
        let detail = format!(
            "output {index} has shape {:?} ({} bytes, dtype {:?}); expected {expected} float32 values",
            t.shape.as_slice(),
            t.data.len(),
            t.dtype
        );
        return Err(FaceError::BadModel { model, detail });
    }
    Ok(t.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(change: impl FnOnce(&mut FaceOptions)) -> &'static str {
        let mut o = FaceOptions::default();
        change(&mut o);
        match o.validate() {
            Err(FaceError::BadOption { name, .. }) => name,
            other => panic!("{o:?} gave {other:?}"),
        }
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        assert!(FaceOptions::default().validate().is_ok());
        assert_eq!(refused(|o| o.det_size = (640, 650)), "det_size");
        assert_eq!(refused(|o| o.det_size = (MAX_DET_SIDE + 32, 640)), "det_size");
        assert_eq!(refused(|o| o.det_threshold = f32::NAN), "det_threshold");
        assert_eq!(refused(|o| o.det_threshold = 1.5), "det_threshold");
        assert_eq!(refused(|o| o.nms_threshold = -0.1), "nms_threshold");
        assert_eq!(refused(|o| o.rec_batch = 0), "rec_batch");
    }

    #[test]
    fn misshapen_detector_outputs_are_a_model_error() {
        let options = FaceOptions { det_size: (32, 32), ..FaceOptions::default() };
        let zeros =
            |n: usize| Tensor { dtype: DType::F32.code(), shape: vec![n as i64].into(), data: vec![0u8; n * 4].into() };
        // 32x32: 4x4, 2x2 and 1x1 cells at strides 8, 16, 32, two anchors each.
        let rows = [32, 8, 2];
        let mut outputs: Vec<Tensor> = (0..9).map(|i| zeros(rows[i % 3] * [1, 4, 10][i / 3])).collect();
        assert!(detections(&options, &outputs, 1.0, (32, 32)).expect("well-shaped").is_empty());
        outputs[4] = zeros(3);
        assert!(matches!(detections(&options, &outputs, 1.0, (32, 32)), Err(FaceError::BadModel { .. })));
        outputs.truncate(8);
        assert!(matches!(detections(&options, &outputs, 1.0, (32, 32)), Err(FaceError::BadModel { .. })));
    }
}
