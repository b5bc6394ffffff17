//! The `decode_preprocess` fuzz target: image bytes -> `decode_rgb` -> CLIP `preprocess`, the path an
//! untrusted upload takes before it reaches a model.
//!
//! The whole input is the file. Its last byte also picks the preprocessing
//! (input side, resize mode, filter), so that the seeds stay valid images and
//! the fuzzer can still reach every mode. The pixel limit is small (1 MP) so
//! a header that claims a huge image is refused instead of exhausting memory,
//! exactly as the server's limit does at its own scale.
//!
//! Invariants: a decoded image has non-zero sides within the limit and
//! `w * h * 3` bytes; preprocessing gives exactly `3 * S * S` finite values,
//! each within what `(x / 255 - mean) / std` allows for a byte; a decode
//! error maps to a 4xx API error (413, 415 or 422), never a 5xx.

use switchyard::clip::preprocess::{preprocess, PreprocessConfig, OPENAI_MEAN, OPENAI_STD};
use switchyard::image::decode::{decode_rgb, DecodeError, DecodeLimits};
use switchyard::server::error::ApiError;

const MAX_PIXELS: u64 = 1 << 20;
const SIZES: [u32; 8] = [1, 2, 3, 7, 16, 31, 64, 224];
const MODES: [&str; 3] = ["shortest", "longest", "squash"];
const FILTERS: [&str; 2] = ["bicubic", "bilinear"];

fn config(selector: u8) -> PreprocessConfig {
    let mut cfg = PreprocessConfig::openai(SIZES[usize::from(selector & 7)]);
    cfg.resize_mode = MODES[usize::from(selector >> 3) % 3].into();
    cfg.interpolation = FILTERS[usize::from(selector >> 5) & 1].into();
    cfg.validate().expect("the fuzz configs are valid");
    cfg
}

fn check_error(e: DecodeError) {
    let message = e.to_string();
    assert!(!message.is_empty(), "empty message for {e:?}");
    match &e {
        DecodeError::TooManyPixels { width, height, pixels, max_pixels, .. } => {
            assert_eq!(*pixels, u64::from(*width) * u64::from(*height), "{e:?}");
            assert!(pixels > max_pixels, "refused under the limit: {e:?}");
            assert_eq!(*max_pixels, MAX_PIXELS);
        }
        DecodeError::ZeroSize { width, height, .. } => assert!(*width == 0 || *height == 0, "{e:?}"),
        _ => {}
    }
    let status = ApiError::from_decode(0, e).status().as_u16();
    assert!(matches!(status, 413 | 415 | 422), "decode error became HTTP {status}: {message}");
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: MAX_PIXELS };
    let img = match decode_rgb(data, &limits) {
        Ok(img) => img,
        Err(e) => return check_error(e),
    };
    let (w, h) = (u64::from(img.width()), u64::from(img.height()));
    assert!(w > 0 && h > 0, "decoded a {w}x{h} image");
    assert!(w * h <= MAX_PIXELS, "decoded {w}x{h}, over the limit of {MAX_PIXELS} pixels");
    assert_eq!(img.pixels().len() as u64, w * h * 3, "pixel buffer of a {w}x{h} image");

    let cfg = config(*data.last().expect("a decoded image has bytes"));
    let out = preprocess(&img, &cfg);
    let s = cfg.image_size as usize;
    assert_eq!(out.len(), 3 * s * s, "preprocess of {w}x{h} to {s} ({})", cfg.resize_mode);
    let plane = s * s;
    for c in 0..3 {
        let lo = (0.0 - OPENAI_MEAN[c]) / OPENAI_STD[c];
        let hi = (1.0 - OPENAI_MEAN[c]) / OPENAI_STD[c];
        for &v in &out[c * plane..(c + 1) * plane] {
            assert!(v.is_finite() && v >= lo - 1e-4 && v <= hi + 1e-4, "channel {c} value {v} outside [{lo}, {hi}]");
        }
    }
}
