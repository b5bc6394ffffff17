//! CLIP image preprocessing equal to open_clip's eval transform, so the
//! host's image embeddings match the Python service's to float precision.
//!
//! open_clip (`open_clip.transform.image_transform(size, is_train=False)`) on
//! the RGB image the service decoded does, for `resize_mode = "shortest"` (the
//! default, used by ViT-B-32):
//!
//! 1. torchvision `Resize(size)`: the shortest side becomes `size`, the long
//!    side `int(size * long / short)` (truncated, not rounded); nothing happens
//!    when the size is already right. On a PIL image this is Pillow's
//!    `resize(.., BICUBIC)`, reproduced bit-exactly by [`crate::image::resize`];
//! 2. torchvision `CenterCrop(size)`: offsets `int(round((H - size) / 2))` with
//!    Python's round-half-to-even, so a 229-pixel side is cropped from 2, not 3;
//! 3. `convert("RGB")` (a no-op on RGB), `ToTensor` (`u8 as f32 / 255` in f32)
//!    and `Normalize` (`(x - mean) / std` in f32), channel-major (CHW).
//!
//! The float steps are the same f32 operations torch performs, so an image
//! whose resized pixels equal Pillow's gives a bit-identical tensor. The
//! `longest` (resize the long side, pad with black, crop) and `squash`
//! (resize to the exact size) modes follow open_clip's `ResizeKeepRatio` /
//! `CenterCropOrPad` the same way.
//!
//! Decoding (bytes to RGB with PIL's semantics) lives in [`crate::image`].

use serde::Deserialize;

use crate::image::resize::{resize, resize_window, Filter, Window};
use crate::image::RgbImage;

/// OpenAI CLIP's normalisation mean (open_clip `OPENAI_DATASET_MEAN`).
// The digits are open_clip's, rounded to f32 as torch does.
#[allow(clippy::excessive_precision)]
pub const OPENAI_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's normalisation std (open_clip `OPENAI_DATASET_STD`).
#[allow(clippy::excessive_precision)]
pub const OPENAI_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

/// Resampling filter of the resize step (open_clip's `interpolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// `bicubic` (and `random`, which open_clip treats as bicubic at inference).
    #[default]
    Bicubic,
    /// `bilinear`.
    Bilinear,
}

impl std::str::FromStr for Interpolation {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "bicubic" | "random" => Ok(Self::Bicubic),
            "bilinear" => Ok(Self::Bilinear),
            other => Err(ConfigError::Interpolation(other.to_owned())),
        }
    }
}

/// How the image is brought to the input size (open_clip's `resize_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeMode {
    /// `shortest`: shortest side to the size, then centre crop (the default).
    #[default]
    Shortest,
    /// `longest`: longest side to the size, then pad with black and centre crop.
    Longest,
    /// `squash`: resize to the exact size, ignoring the aspect ratio.
    Squash,
}

impl std::str::FromStr for ResizeMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "shortest" => Ok(Self::Shortest),
            "longest" => Ok(Self::Longest),
            "squash" => Ok(Self::Squash),
            other => Err(ConfigError::ResizeMode(other.to_owned())),
        }
    }
}

/// A [`PreprocessConfig`] value open_clip would reject.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("`interpolation` is `{0}`; use bicubic, bilinear or random")]
    Interpolation(String),
    #[error("`resize_mode` is `{0}`; use shortest, longest or squash")]
    ResizeMode(String),
    #[error("`image_size` must be one positive number or a square [n, n]; use the model's input size, e.g. 224")]
    ImageSize,
    #[error("`{name}` has {len} values; give one number or three (R, G, B)")]
    Channels { name: &'static str, len: usize },
    #[error("`std` is {0:?}; every value must be finite and non-zero")]
    Std([f32; 3]),
}

/// How to turn an RGB image into a model input; read from the `config.json`
/// the export tool writes beside each CLIP model (keys `image_size`, `mean`,
/// `std`, `interpolation`, `resize_mode`; other keys are ignored, absent or
/// null ones take open_clip's defaults). Deserialising validates; a value
/// built by hand should be checked once with [`PreprocessConfig::validate`].
/// Square inputs only (every open_clip CLIP model); `longest` pads with black
/// (open_clip's default `fill_color`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct PreprocessConfig {
    /// Side of the square model input, e.g. 224.
    pub image_size: u32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `bicubic` (default), `bilinear` or `random` (= bicubic).
    pub interpolation: String,
    /// `shortest` (default), `longest` or `squash`.
    pub resize_mode: String,
}

impl PreprocessConfig {
    /// open_clip's defaults for a square `size`: bicubic, shortest side, OpenAI mean/std.
    pub fn openai(size: u32) -> Self {
        Self {
            image_size: size,
            mean: OPENAI_MEAN,
            std: OPENAI_STD,
            interpolation: "bicubic".into(),
            resize_mode: "shortest".into(),
        }
    }

    /// Checks every field the way open_clip's `image_transform` would.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.image_size == 0 {
            return Err(ConfigError::ImageSize);
        }
        if self.std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            return Err(ConfigError::Std(self.std));
        }
        self.interpolation.parse::<Interpolation>()?;
        self.resize_mode.parse::<ResizeMode>()?;
        Ok(())
    }

    /// Number of f32 values in one preprocessed image (3 x size x size).
    pub fn tensor_len(&self) -> usize {
        3 * self.image_size as usize * self.image_size as usize
    }

    /// The tensor shape, `[3, size, size]`.
    pub fn shape(&self) -> [usize; 3] {
        [3, self.image_size as usize, self.image_size as usize]
    }
}

impl Default for PreprocessConfig {
    /// ViT-B-32's: 224 x 224.
    fn default() -> Self {
        Self::openai(224)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

#[derive(Deserialize)]
struct RawConfig {
    image_size: OneOrMany<u32>,
    #[serde(default)]
    mean: Option<OneOrMany<f64>>,
    #[serde(default)]
    std: Option<OneOrMany<f64>>,
    #[serde(default)]
    interpolation: Option<String>,
    #[serde(default)]
    resize_mode: Option<String>,
}

fn three(name: &'static str, v: Option<OneOrMany<f64>>, default: [f32; 3]) -> Result<[f32; 3], ConfigError> {
    // torch.as_tensor(mean, dtype=float32) rounds each Python float to the nearest f32, as `as` does.
    match v {
        None => Ok(default),
        Some(OneOrMany::One(x)) => Ok([x as f32; 3]),
        Some(OneOrMany::Many(xs)) if xs.len() == 3 => Ok([xs[0] as f32, xs[1] as f32, xs[2] as f32]),
        Some(OneOrMany::Many(xs)) => Err(ConfigError::Channels { name, len: xs.len() }),
    }
}

impl TryFrom<RawConfig> for PreprocessConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        let image_size = match raw.image_size {
            OneOrMany::One(s) => s,
            // open_clip writes [224, 224] for square sizes too.
            OneOrMany::Many(v) if v.len() == 2 && v[0] == v[1] => v[0],
            OneOrMany::Many(_) => return Err(ConfigError::ImageSize),
        };
        let cfg = Self {
            image_size,
            mean: three("mean", raw.mean, OPENAI_MEAN)?,
            std: three("std", raw.std, OPENAI_STD)?,
            interpolation: raw.interpolation.unwrap_or_else(|| "bicubic".into()),
            resize_mode: raw.resize_mode.unwrap_or_else(|| "shortest".into()),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Preprocesses one image into a new CHW tensor of [`PreprocessConfig::tensor_len`] values.
pub fn preprocess(img: &RgbImage, cfg: &PreprocessConfig) -> Vec<f32> {
    let mut out = vec![0.0; cfg.tensor_len()];
    preprocess_into(img, cfg, &mut out);
    out
}

/// Preprocesses one image into `out` (one slot of a batch), which must hold
/// exactly [`PreprocessConfig::tensor_len`] values.
pub fn preprocess_into(img: &RgbImage, cfg: &PreprocessConfig, out: &mut [f32]) {
    assert_eq!(out.len(), cfg.tensor_len(), "output slot has the wrong length for {:?}", cfg.image_size);
    let fitted = resize_and_crop(img, cfg);
    normalize_into(&fitted, cfg, out);
}

/// The PIL part of the transform: resize and centre crop (or pad) to the input
/// size, as uint8 RGB. Exposed so tests and tools can compare pixels directly.
pub fn resize_and_crop(img: &RgbImage, cfg: &PreprocessConfig) -> RgbImage {
    // Unknown names (only possible when `validate` was skipped) fall back to open_clip's defaults.
    let filter = match cfg.interpolation.parse().unwrap_or_default() {
        Interpolation::Bicubic => Filter::Bicubic,
        Interpolation::Bilinear => Filter::Bilinear,
    };
    let size = cfg.image_size.max(1);
    let (h, w) = (img.height(), img.width());
    match cfg.resize_mode.parse().unwrap_or_default() {
        ResizeMode::Shortest => {
            // torchvision `_compute_resized_output_size` with a single size.
            let (short, long) = if w <= h { (w, h) } else { (h, w) };
            let new_long = (f64::from(size) * f64::from(long) / f64::from(short)) as u32;
            let (new_w, new_h) = if w <= h { (size, new_long) } else { (new_long, size) };
            if (new_w, new_h) == (w, h) {
                return center_crop_or_pad(img, size, size, 0);
            }
            // Both sides are now >= size, so the centre crop never pads: resize only the
            // kept window (a 1x100000 strip would otherwise become 224 x 22.4M pixels).
            let window =
                Window { left: crop_start(new_w, size), top: crop_start(new_h, size), width: size, height: size };
            resize_window(img, new_w, new_h, filter, window)
        }
        ResizeMode::Longest => {
            let (new_w, new_h) = keep_ratio_size(w, h, size, size, true);
            let resized = resize_if_needed(img, new_w, new_h, filter);
            center_crop_or_pad(&resized, size, size, 0)
        }
        ResizeMode::Squash => resize_if_needed(img, size, size, filter),
    }
}

fn resize_if_needed(img: &RgbImage, w: u32, h: u32, filter: Filter) -> RgbImage {
    if (img.width(), img.height()) == (w, h) {
        img.clone()
    } else {
        resize(img, w, h, filter)
    }
}

/// open_clip's `ResizeKeepRatio.get_params` without the random parts: the
/// ratio of the shortest (or longest) side, sizes rounded half to even.
/// (Only `longest` reaches it for square sizes; kept general on purpose.)
fn keep_ratio_size(w: u32, h: u32, th: u32, tw: u32, longest: bool) -> (u32, u32) {
    let ratio_h = f64::from(h) / f64::from(th);
    let ratio_w = f64::from(w) / f64::from(tw);
    let ratio = if longest { ratio_h.max(ratio_w) } else { ratio_h.min(ratio_w) };
    // PIL cannot resize to zero pixels; a side that rounds to 0 becomes 1.
    let side = |x: u32| ((f64::from(x) / ratio).round_ties_even() as u32).max(1);
    (side(w), side(h))
}

/// torchvision `center_crop` / open_clip `center_crop_or_pad`: pad to at least
/// the target with `fill` (left/top get the smaller half), then crop at
/// `round((size - target) / 2)` with round-half-to-even.
fn center_crop_or_pad(img: &RgbImage, th: u32, tw: u32, fill: u8) -> RgbImage {
    let (mut w, mut h) = (img.width(), img.height());
    let padded;
    let mut src = img;
    if tw > w || th > h {
        let left = tw.saturating_sub(w) / 2;
        let top = th.saturating_sub(h) / 2;
        let (pw, ph) = (w.max(tw), h.max(th));
        let mut pixels = vec![fill; pw as usize * ph as usize * 3];
        let row = w as usize * 3;
        for y in 0..h as usize {
            let dst = ((y + top as usize) * pw as usize + left as usize) * 3;
            pixels[dst..dst + row].copy_from_slice(&img.pixels()[y * row..(y + 1) * row]);
        }
        padded = RgbImage::from_raw(pw, ph, pixels).expect("padded size");
        src = &padded;
        (w, h) = (pw, ph);
    }
    if (w, h) == (tw, th) {
        return src.clone();
    }
    let top = crop_start(h, th) as usize;
    let left = crop_start(w, tw) as usize;
    let (row_in, row_out) = (w as usize * 3, tw as usize * 3);
    let mut pixels = Vec::with_capacity(row_out * th as usize);
    for y in top..top + th as usize {
        let start = y * row_in + left * 3;
        pixels.extend_from_slice(&src.pixels()[start..start + row_out]);
    }
    RgbImage::from_raw(tw, th, pixels).expect("cropped size")
}

/// Where a centre crop of `target` pixels starts on a side of `size >= target`:
/// torchvision's `round((size - target) / 2)`, half to even.
fn crop_start(size: u32, target: u32) -> u32 {
    (f64::from(size - target) / 2.0).round_ties_even() as u32
}

/// `ToTensor` + `Normalize`, in torch's f32 operation order, written as one
/// 256-entry table per channel (the same values, computed once).
fn normalize_into(img: &RgbImage, cfg: &PreprocessConfig, out: &mut [f32]) {
    let plane = img.width() as usize * img.height() as usize;
    debug_assert_eq!(out.len(), plane * 3);
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, x) in table.iter_mut().enumerate() {
            *x = (v as f32 / 255.0 - cfg.mean[c]) / cfg.std[c];
        }
    }
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, p) in img.pixels().chunks_exact(3).enumerate() {
        r[i] = lut[0][p[0] as usize];
        g[i] = lut[1][p[1] as usize];
        b[i] = lut[2][p[2] as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: u32, h: u32) -> RgbImage {
        let px = (0..w * h).flat_map(|i| [(i % 251) as u8; 3]).collect();
        RgbImage::from_raw(w, h, px).unwrap()
    }

    #[test]
    fn config_json_like_the_export_tool_writes() {
        let cfg: PreprocessConfig = serde_json::from_str(
            r#"{"embed_dim": 512, "image_size": 224, "mean": [0.48145466, 0.4578275, 0.40821073],
                "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
                "resize_mode": "shortest", "context_length": 77}"#,
        )
        .unwrap();
        assert_eq!(cfg, PreprocessConfig::openai(224));
        let cfg: PreprocessConfig =
            serde_json::from_str(r#"{"image_size": [256, 256], "mean": null, "interpolation": null}"#).unwrap();
        assert_eq!(cfg, PreprocessConfig::openai(256));
        let err = serde_json::from_str::<PreprocessConfig>(r#"{"image_size": 224, "resize_mode": "fit"}"#);
        assert!(err.unwrap_err().to_string().contains("use shortest, longest or squash"));
    }

    #[test]
    fn crop_offsets_round_half_to_even() {
        // 224x229: offset 2.5 rounds to 2; 224x227: 1.5 rounds to 2; 224x225: 0.5 rounds to 0.
        for (h, top) in [(229u32, 2usize), (227, 2), (225, 0)] {
            let img = gray(224, h);
            let out = resize_and_crop(&img, &PreprocessConfig::openai(224));
            assert_eq!(&out.pixels()[..3], &img.pixels()[top * 224 * 3..top * 224 * 3 + 3], "h={h}");
        }
    }

    #[test]
    fn long_side_is_truncated_and_output_has_the_input_size() {
        for (w, h) in [(1, 1), (3, 7), (4000, 3000), (2000, 150), (120, 1500), (224, 224)] {
            let out = preprocess(&gray(w, h), &PreprocessConfig::openai(224));
            assert_eq!(out.len(), 3 * 224 * 224);
            assert!(out.iter().all(|v| v.is_finite()));
        }
        let cfg = PreprocessConfig { resize_mode: "longest".into(), ..PreprocessConfig::openai(224) };
        let out = resize_and_crop(&gray(448, 224), &cfg);
        assert_eq!((out.width(), out.height()), (224, 224));
        assert_eq!(&out.pixels()[..3], &[0, 0, 0], "top rows are padding");
    }

    #[test]
    fn shortest_side_resize_and_crop_equal_resizing_in_full_then_cropping() {
        let cfg = PreprocessConfig::openai(224);
        for (w, h) in [(3, 700), (700, 3), (300, 229), (1000, 999), (225, 224)] {
            let img = RgbImage::from_raw(w, h, (0..w * h * 3).map(|i| (i * 7 % 253) as u8).collect()).unwrap();
            let (short, long) = (w.min(h), w.max(h));
            let new_long = (224.0 * f64::from(long) / f64::from(short)) as u32;
            let (new_w, new_h) = if w <= h { (224, new_long) } else { (new_long, 224) };
            let full = center_crop_or_pad(&resize(&img, new_w, new_h, Filter::Bicubic), 224, 224, 0);
            assert_eq!(resize_and_crop(&img, &cfg), full, "{w}x{h}");
        }
    }

    #[test]
    fn extreme_strips_do_not_become_huge_images() {
        // Shortest side to 224 first made a 1x100000 strip 224 x 22,400,000 pixels (15 GB)
        // before the crop (seen while writing fuzz/decode_preprocess, whose harness then
        // stopped on it out of memory).
        for (w, h) in [(1, 100_000), (100_000, 1)] {
            for mode in ["shortest", "longest", "squash"] {
                let cfg = PreprocessConfig { resize_mode: mode.into(), ..PreprocessConfig::openai(224) };
                let out = preprocess(&gray(w, h), &cfg);
                assert_eq!(out.len(), 3 * 224 * 224, "{w}x{h} {mode}");
                assert!(out.iter().all(|v| v.is_finite()));
            }
        }
    }
}
