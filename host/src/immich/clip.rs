//! CLIP as Immich's service runs it: its image preprocessing and its text
//! tokenization, on the ONNX towers of its model cache.
//!
//! Image (`OpenClipVisualEncoder` in `immich_ml/models/clip/visual.py`, with
//! `resize_pil`, `crop_pil`, `to_numpy`, `normalize` of `transforms.py`):
//!
//! 1. `resize_pil`: the shorter side becomes `size` and the other
//!    `int((long / short) * size)` (f64, truncated; torchvision computes
//!    `int(size * long / short)`, which can differ by one), with PIL BICUBIC
//!    whatever `interpolation` preprocess_cfg.json names: Immich reads the
//!    setting but calls `resize_pil` with its default. Pillow's resampling is
//!    reproduced bit for bit by [`crate::image::resize`];
//! 2. `crop_pil`: offsets `int(W / 2 - size / 2)`, truncated (torchvision's
//!    centre crop rounds half to even: a 227-pixel side is cut from 1 here, 2
//!    there);
//! 3. `x / 255` in float32, then `x *= 1 / std` and `x -= mean / std`, each
//!    an f32 operation (not open_clip's `(x - mean) / std`), channel-major.
//!
//! Text (`OpenClipTextualEncoder` in `textual.py`): `clean_text` (whitespace
//! runs to one space, as `" ".join(text.split())`; with
//! `text_cfg.tokenizer_kwargs.clean == "canonicalize"` also ASCII
//! punctuation removed and lowercased), then the folder's tokenizer.json
//! through Hugging Face `tokenizers` (the crate the Python package wraps),
//! padded with tokenizer_config.json's `pad_token` to
//! `text_cfg.context_length` (77 by default) and truncated to it. The ids go
//! in as the model's input dtype (int32 in Immich's exports).
//!
//! The towers' outputs are returned as they are: Immich's exports normalise
//! inside the graph. Immich exports with a fixed batch of 1, so a batch of
//! several items runs item by item there; a file with a dynamic batch axis
//! runs them together.

use std::path::Path;
use std::sync::Arc;

use abi_stable::std_types::RSlice;
use serde_json::Value;
use switchyard_core::abi::{kv, BackendBox, DType, ModelInfo, ModelSpec, TensorView};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::cache::{random_weights, read_json, TextualFiles, VisualFiles};
use super::error::ImmichError;
use crate::clip::text_clean::is_python_space;
use crate::image::resize::{resize_window, Filter, Window};
use crate::image::RgbImage;
use crate::resident::{LoadFailure, ResidentSet};

/// One ONNX tower of Immich's cache on the backend.
struct Tower {
    set: ResidentSet,
    tower: &'static str,
    name: String,
    info: ModelInfo,
}

impl Tower {
    fn load(backend: Arc<BackendBox>, tower: &'static str, name: &str, path: &Path) -> Result<Tower, ImmichError> {
        let spec = ModelSpec {
            name: format!("immich/clip/{name}/{tower}").into(),
            path: path.display().to_string().into(),
            format: "onnx".into(),
            options: kv::<&str, &str>([]),
        };
        let failed =
            |f: LoadFailure| ImmichError::Backend { during: "loading", tower, name: name.into(), source: f.source };
        let set = ResidentSet::load(backend, vec![spec]).map_err(failed)?;
        let info = set.with(|infos| infos[0].clone()).map_err(failed)?;
        crate::util::log_model_notes(&format!("immich/clip/{tower}"), &info);
        Ok(Tower { set, tower, name: name.to_string(), info })
    }

    fn bad(&self, detail: String) -> ImmichError {
        ImmichError::BadModel { tower: self.tower, name: self.name.clone(), detail }
    }

    /// Whether the first input takes any batch size (else: batch 1, Immich's exports).
    fn dynamic_batch(&self) -> bool {
        self.info.inputs.first().and_then(|i| i.shape.first()).is_some_and(|&d| d != 1)
    }

    /// Runs `inputs` (one `[batch, ...]` tensor per model input); `batch` rows of floats out.
    fn run(&self, inputs: &[TensorView<'_>], batch: usize) -> Result<Vec<Vec<f32>>, ImmichError> {
        let failed = |f: LoadFailure| ImmichError::Backend {
            during: "loading",
            tower: self.tower,
            name: self.name.clone(),
            source: f.source,
        };
        let outputs = self
            .set
            .with(|infos| self.set.backend().run(infos[0].handle, RSlice::from_slice(inputs)).into_result())
            .map_err(failed)?
            .map_err(|source| ImmichError::Backend {
                during: "running",
                tower: self.tower,
                name: self.name.clone(),
                source,
            })?;
        let out = outputs.first().ok_or_else(|| self.bad("no output".into()))?;
        let dim = match out.shape.as_slice() {
            [n, d] if *n == batch as i64 && *d > 0 && out.dtype == DType::F32.code() => *d as usize,
            other => {
                return Err(
                    self.bad(format!("output of shape {other:?} ({:?}), expected [{batch}, D] float32", out.dtype))
                )
            }
        };
        let values: Vec<f32> = out.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(values.chunks_exact(dim).map(<[f32]>::to_vec).collect())
    }
}

/// The image size, mean and std of `visual/preprocess_cfg.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisualConfig {
    pub size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl VisualConfig {
    /// Reads the file as Immich does (`size` an int or a list whose first value counts).
    pub fn read(path: &Path) -> Result<VisualConfig, ImmichError> {
        let cfg = read_json(path)?;
        let bad = |reason: &str| ImmichError::BadFile { path: path.to_path_buf(), reason: reason.into() };
        let size = match &cfg["size"] {
            Value::Array(v) => v.first().and_then(Value::as_u64),
            v => v.as_u64(),
        }
        .filter(|&s| s > 0 && s <= 4096)
        .ok_or_else(|| bad("`size` must be a positive image size (or a list of them)"))? as u32;
        let three = |key: &str| -> Result<[f32; 3], ImmichError> {
            let v: Vec<f32> = cfg[key]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).map(|x| x as f32).collect())
                .unwrap_or_default();
            <[f32; 3]>::try_from(v).map_err(|_| bad(&format!("`{key}` must be three numbers")))
        };
        let (mean, std) = (three("mean")?, three("std")?);
        if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(bad("`std` must be non-zero"));
        }
        Ok(VisualConfig { size, mean, std })
    }
}

/// `resize_pil` then `crop_pil`: the `size` x `size` RGB pixels Immich feeds the model.
pub fn resize_and_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let s = f64::from(size);
    let (new_w, new_h) = if w < h {
        (size, ((f64::from(h) / f64::from(w)) * s) as u32)
    } else {
        (((f64::from(w) / f64::from(h)) * s) as u32, size)
    };
    let (new_w, new_h) = (new_w.max(size), new_h.max(size));
    let start = |side: u32| ((f64::from(side) / 2.0) - (s / 2.0)) as u32;
    let window = Window { left: start(new_w), top: start(new_h), width: size, height: size };
    resize_window(img, new_w, new_h, Filter::Bicubic, window)
}

/// `to_numpy` then `normalize`, channel-major: `(x / 255) * (1 / std) - mean / std`, each step in f32.
pub fn normalize(img: &RgbImage, cfg: &VisualConfig) -> Vec<f32> {
    let plane = (img.width() * img.height()) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for c in 0..3 {
        let scale = 1.0f32 / cfg.std[c];
        let shift = cfg.mean[c] / cfg.std[c];
        for (o, px) in out[c * plane..(c + 1) * plane].iter_mut().zip(img.pixels().chunks_exact(3)) {
            *o = (f32::from(px[c]) / 255.0f32) * scale - shift;
        }
    }
    out
}

/// An image tower of Immich's cache.
pub struct Visual {
    tower: Tower,
    pub config: VisualConfig,
    pub random_weights: bool,
}

impl Visual {
    /// Loads `clip/<name>/visual/model.onnx` on `backend` and runs it once.
    pub fn load(backend: Arc<BackendBox>, files: &VisualFiles) -> Result<Visual, ImmichError> {
        let config = VisualConfig::read(&files.preprocess_cfg)?;
        let tower = Tower::load(backend, "visual", &files.name, &files.model)?;
        if tower.info.inputs.len() != 1 {
            return Err(tower.bad(format!("{} inputs, expected 1 (`image`)", tower.info.inputs.len())));
        }
        let random_weights = random_weights(&files.folder);
        if random_weights {
            tracing::warn!(model = %files.name, "serving RANDOM Immich CLIP weights (tools/make_immich_models.py): embeddings are meaningless");
        }
        let visual = Visual { tower, config, random_weights };
        let s = config.size as usize;
        visual.embed(&[&vec![0.0; 3 * s * s]])?;
        Ok(visual)
    }

    /// The model's input for one decoded image, `[3, size, size]`. Thread-safe.
    pub fn preprocess(&self, img: &RgbImage) -> Vec<f32> {
        normalize(&resize_and_crop(img, self.config.size), &self.config)
    }

    /// Embeds preprocessed images, together where the model takes a batch, else one by one.
    pub fn embed(&self, images: &[&[f32]]) -> Result<Vec<Vec<f32>>, ImmichError> {
        let s = i64::from(self.config.size);
        let run = |chunk: &[&[f32]]| {
            let data: Vec<f32> = chunk.iter().flat_map(|i| i.iter().copied()).collect();
            let shape = [chunk.len() as i64, 3, s, s];
            let view = TensorView {
                dtype: DType::F32.code(),
                shape: RSlice::from_slice(&shape),
                data: RSlice::from_slice(bytemuck::cast_slice(&data)),
            };
            self.tower.run(&[view], chunk.len())
        };
        batched(images, self.tower.dynamic_batch(), run)
    }

    /// Where the tower runs, as the backend said at load.
    pub fn device(&self) -> &str {
        &self.tower.info.device
    }

    pub fn resident(&self) -> &ResidentSet {
        &self.tower.set
    }
}

fn batched<T, F>(items: &[T], together: bool, run: F) -> Result<Vec<Vec<f32>>, ImmichError>
where
    F: Fn(&[T]) -> Result<Vec<Vec<f32>>, ImmichError>,
{
    if together || items.len() <= 1 {
        return if items.is_empty() { Ok(Vec::new()) } else { run(items) };
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items.chunks(1) {
        out.extend(run(item)?);
    }
    Ok(out)
}

/// `clean_text` of `immich_ml/models/transforms.py`.
pub fn clean_text(text: &str, canonicalize: bool) -> String {
    let joined = text.split(is_python_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    if canonicalize {
        joined.chars().filter(|c| !c.is_ascii_punctuation()).collect::<String>().to_lowercase()
    } else {
        joined
    }
}

/// One tokenized text: ids and attention mask, `context_length` each.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
}

/// How the text model takes its tokens.
#[derive(Debug, Clone, Copy)]
enum Feed {
    /// open_clip exports: `text` only.
    Ids(DType),
    /// Multilingual CLIP (M-CLIP) exports: `input_ids` and `attention_mask`.
    IdsAndMask(DType),
}

/// A text tower of Immich's cache with its tokenizer.
pub struct Textual {
    tower: Tower,
    tokenizer: Tokenizer,
    pub context_length: usize,
    pub canonicalize: bool,
    feed: Feed,
    pub random_weights: bool,
}

impl Textual {
    /// Loads `clip/<name>/textual/model.onnx` and the tokenizer on `backend`, and runs it once.
    pub fn load(backend: Arc<BackendBox>, files: &TextualFiles) -> Result<Textual, ImmichError> {
        if files.name.starts_with("nllb") {
            let reason = "NLLB models prefix the text with a language code Immich maps from the user's locale, which switchyard does not do yet; use another CLIP model or Immich's own service".into();
            return Err(ImmichError::Unsupported { name: files.name.clone(), reason });
        }
        let config = read_json(&files.config)?;
        let text_cfg = &config["text_cfg"];
        if !text_cfg.is_object() {
            return Err(ImmichError::BadFile {
                path: files.config.clone(),
                reason: "it has no `text_cfg` object".into(),
            });
        }
        let context_length = match text_cfg.get("context_length") {
            None => 77,
            Some(v) => v.as_u64().filter(|&n| n > 1 && n <= 4096).ok_or_else(|| ImmichError::BadFile {
                path: files.config.clone(),
                reason: "`text_cfg.context_length` must be a positive integer".into(),
            })? as usize,
        };
        let canonicalize = text_cfg["tokenizer_kwargs"]["clean"].as_str() == Some("canonicalize");
        let tokenizer_config = read_json(&files.tokenizer_config)?;
        let pad_token = tokenizer_config["pad_token"].as_str().map(str::to_string).ok_or_else(|| {
            ImmichError::BadFile { path: files.tokenizer_config.clone(), reason: "it has no string `pad_token`".into() }
        })?;
        let tokenizer = tokenizer(&files.tokenizer, &pad_token, context_length)?;
        let tower = Tower::load(backend, "textual", &files.name, &files.model)?;
        let dtype = |i: usize| tower.info.inputs[i].dtype.dtype();
        let feed = match tower.info.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().as_slice() {
            ["text"] => Feed::Ids(int_dtype(&tower, dtype(0))?),
            ["input_ids", "attention_mask"] => Feed::IdsAndMask(int_dtype(&tower, dtype(0))?),
            other => {
                return Err(tower.bad(format!(
                    "inputs {other:?}, expected `text` (open_clip) or `input_ids`, `attention_mask` (M-CLIP)"
                )))
            }
        };
        let random_weights = random_weights(&files.folder);
        let textual = Textual { tower, tokenizer, context_length, canonicalize, feed, random_weights };
        let warm = textual.tokenize("a photo")?;
        textual.embed(&[&warm])?;
        Ok(textual)
    }

    /// Cleans and tokenizes one text as Immich does. Thread-safe.
    pub fn tokenize(&self, text: &str) -> Result<Tokens, ImmichError> {
        let text = clean_text(text, self.canonicalize);
        let enc = self.tokenizer.encode(text, true).map_err(|e| ImmichError::Tokenize { reason: e.to_string() })?;
        Ok(Tokens { ids: enc.get_ids().to_vec(), mask: enc.get_attention_mask().to_vec() })
    }

    /// Embeds tokenized texts, together where the model takes a batch, else one by one.
    pub fn embed(&self, texts: &[&Tokens]) -> Result<Vec<Vec<f32>>, ImmichError> {
        let len = self.context_length as i64;
        let run = |chunk: &[&Tokens]| {
            let shape = [chunk.len() as i64, len];
            let (dtype, with_mask) = match self.feed {
                Feed::Ids(d) => (d, false),
                Feed::IdsAndMask(d) => (d, true),
            };
            let ids = ints(chunk.iter().flat_map(|t| t.ids.iter().copied()), dtype);
            let mask = ints(chunk.iter().flat_map(|t| t.mask.iter().copied()), dtype);
            let ids_view =
                TensorView { dtype: dtype.code(), shape: RSlice::from_slice(&shape), data: RSlice::from_slice(&ids) };
            let mask_view = TensorView { data: RSlice::from_slice(&mask), ..ids_view };
            if with_mask {
                self.tower.run(&[ids_view, mask_view], chunk.len())
            } else {
                self.tower.run(&[ids_view], chunk.len())
            }
        };
        batched(texts, self.tower.dynamic_batch(), run)
    }

    pub fn device(&self) -> &str {
        &self.tower.info.device
    }

    pub fn resident(&self) -> &ResidentSet {
        &self.tower.set
    }
}

fn int_dtype(tower: &Tower, dtype: Option<DType>) -> Result<DType, ImmichError> {
    match dtype {
        Some(d @ (DType::I32 | DType::I64)) => Ok(d),
        other => Err(tower.bad(format!("token input of dtype {other:?}, expected int32 or int64"))),
    }
}

/// Little-endian bytes of the ids in `dtype` (int32 or int64).
fn ints(values: impl Iterator<Item = u32>, dtype: DType) -> Vec<u8> {
    match dtype {
        DType::I32 => values.flat_map(|v| (v as i32).to_le_bytes()).collect(),
        _ => values.flat_map(|v| i64::from(v).to_le_bytes()).collect(),
    }
}

/// `Tokenizer.from_file` with `enable_padding(length, pad_token, pad_id)` and
/// `enable_truncation(max_length)`, as `OpenClipTextualEncoder._load_tokenizer`.
fn tokenizer(path: &Path, pad_token: &str, context_length: usize) -> Result<Tokenizer, ImmichError> {
    let failed = |reason: String| ImmichError::Tokenizer { path: path.to_path_buf(), reason };
    let mut tok = Tokenizer::from_file(path).map_err(|e| failed(e.to_string()))?;
    let pad_id = tok
        .token_to_id(pad_token)
        .ok_or_else(|| failed(format!("the pad token `{pad_token}` is not in its vocabulary")))?;
    tok.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::Fixed(context_length),
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id,
        pad_type_id: 0,
        pad_token: pad_token.to_string(),
    }));
    tok.with_truncation(Some(TruncationParams { max_length: context_length, ..TruncationParams::default() }))
        .map_err(|e| failed(e.to_string()))?;
    Ok(tok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cleaned_as_immich_cleans_it() {
        assert_eq!(clean_text("  a\tphoto\n\u{3000}of  a\u{1c}cat ", false), "a photo of a cat");
        assert_eq!(clean_text("A Photo, of: a CAT!", true), "a photo of a cat");
        assert_eq!(clean_text("A Photo, of: a CAT!", false), "A Photo, of: a CAT!");
    }

    #[test]
    fn the_crop_truncates_where_torchvision_rounds() {
        // 227 x 100 -> resize_pil keeps 227*224/100 = 508.48 -> 508 wide; int(508/2 - 112) = 142.
        let img = RgbImage::from_raw(227, 100, (0..227 * 100 * 3).map(|i| (i % 251) as u8).collect()).unwrap();
        let out = resize_and_crop(&img, 224);
        assert_eq!((out.width(), out.height()), (224, 224));
        // An image already 224 high and 227 wide is only cropped, from column int(113.5 - 112) = 1.
        let img = RgbImage::from_raw(227, 224, (0..227 * 224 * 3).map(|i| (i % 253) as u8).collect()).unwrap();
        let out = resize_and_crop(&img, 224);
        assert_eq!(&out.pixels()[..3], &img.pixels()[3..6]);
    }
}
