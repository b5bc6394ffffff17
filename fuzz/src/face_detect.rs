//! The `face_detect` fuzz target: SCRFD's pre- and post-processing under
//! arbitrary settings and arbitrary model outputs, on the host's own code
//! (`FaceOptions::validate`, `scrfd::preprocess`, `pipeline::detections`,
//! `align::norm_crop`, `arcface::blob`), with no model: what `/v1/faces` and
//! `embed --faces` run around the detector, given whatever
//! `SWITCHYARD_FACE_DET_SIZE`, `..._DET_THRESHOLD`, `..._NMS_THRESHOLD`,
//! `..._MAX_NUM` say and whatever a plugin's ONNX Runtime hands back.
//!
//! The input is read with `arbitrary`: the settings (a detector side of 32 to
//! 320 per axis, so one input stays fast; thresholds anywhere in f32, often
//! in `[0, 1]`; `max_num` 0 to 255), an image of 1 to 512 pixels a side, then
//! the nine output tensors: each filled with one value (mostly zero, else
//! NaN, infinity, any f32), some of them made the wrong dtype or size, and
//! candidates planted at chosen rows with chosen score, distances and
//! landmarks.
//!
//! Invariants: settings out of range are a `BadOption`; the letterbox blob is
//! `3 x w x h` finite values within the normalised byte range; misshapen
//! outputs are a `BadModel` error; otherwise every face has a finite score at
//! least the threshold, a finite box and finite landmarks; at most `max_num`
//! faces (when set); scores descend when `max_num` does not reorder; every
//! face aligns to a 112 x 112 crop whose ArcFace blob is finite. Boxes are
//! not promised to lie within the image: insightface does not clip them and
//! the parity test holds the host to its boxes (see `faces::scrfd`).

use arbitrary::{Result, Unstructured};
use switchyard::faces::align::{norm_crop, CROP_SIZE};
use switchyard::faces::pipeline::detections;
use switchyard::faces::scrfd::{self, ANCHORS, STRIDES};
use switchyard::faces::{arcface, FaceError, FaceOptions};
use switchyard::image::RgbImage;
use switchyard_core::abi::{DType, Tensor};

/// A threshold: mostly a score-like value in `[0, 1]`, sometimes any f32.
fn threshold(u: &mut Unstructured<'_>) -> Result<f32> {
    Ok(if u.ratio(1, 4)? { f32::from_bits(u.arbitrary()?) } else { f32::from(u.arbitrary::<u8>()?) / 255.0 })
}

/// A model output value: the usual suspects, or any f32.
fn value(u: &mut Unstructured<'_>) -> Result<f32> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => 0.0,
        1 => f32::NAN,
        2 => f32::INFINITY,
        3 => f32::NEG_INFINITY,
        4 => f32::MAX,
        5 => f32::from(u.arbitrary::<i8>()?) / 8.0,
        _ => f32::from_bits(u.arbitrary()?),
    })
}

fn options(u: &mut Unstructured<'_>) -> Result<FaceOptions> {
    let mut side = || -> Result<usize> {
        Ok(match u.int_in_range(0..=15u8)? {
            0 => 0,
            1 => 33,
            n => 32 * usize::from(n.min(10)),
        })
    };
    let det_size = (side()?, side()?);
    Ok(FaceOptions {
        det_size,
        det_threshold: threshold(u)?,
        nms_threshold: threshold(u)?,
        max_num: usize::from(u.arbitrary::<u8>()?),
        ..FaceOptions::default()
    })
}

fn image(u: &mut Unstructured<'_>) -> Result<RgbImage> {
    let (w, h) = (u.int_in_range(1..=512u32)?, u.int_in_range(1..=512u32)?);
    let seed: u8 = u.arbitrary()?;
    let pixels = (0..w as usize * h as usize * 3).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
    Ok(RgbImage::from_raw(w, h, pixels).expect("w*h*3 bytes"))
}

/// The nine detector outputs for `det_size`; also whether any is misshapen.
fn outputs(u: &mut Unstructured<'_>, (w, h): (usize, usize)) -> Result<(Vec<Tensor>, bool)> {
    let mut tensors = Vec::with_capacity(9);
    let mut misshapen = false;
    for i in 0..9 {
        let (stride, width) = (STRIDES[i % 3], [1, 4, 10][i / 3]);
        let rows = (w / stride) * (h / stride) * ANCHORS;
        let mut len = rows * width;
        let mut dtype = DType::F32;
        if u.ratio(1, 64)? {
            len = usize::from(u.arbitrary::<u8>()?);
            misshapen |= len != rows * width;
        }
        if u.ratio(1, 64)? {
            dtype = DType::F16;
            misshapen = true;
        }
        // Mostly zeros (no face), so that the planted rows decide; a fill that
        // passes the threshold everywhere (the NMS's worst case) stays reachable.
        let fill = if u.ratio(1, 4)? { value(u)? } else { 0.0 };
        let mut values = vec![fill; len];
        for _ in 0..u.int_in_range(0..=6u8)? {
            if len == 0 {
                break;
            }
            let row = u.choose_index(len.div_ceil(width))?;
            for k in 0..width.min(len - row * width) {
                values[row * width + k] = value(u)?;
            }
        }
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let shape = vec![1, rows as i64, width as i64];
        tensors.push(Tensor { dtype: dtype.code(), shape: shape.into(), data: data.into() });
    }
    if u.ratio(1, 64)? {
        tensors.truncate(u.int_in_range(0..=8)?);
        misshapen = true;
    }
    Ok((tensors, misshapen))
}

fn check(u: &mut Unstructured<'_>) -> Result<()> {
    let opts = options(u)?;
    if let Err(e) = opts.validate() {
        assert!(matches!(e, FaceError::BadOption { .. }), "{e:?}");
        return Ok(());
    }
    let (w, h) = opts.det_size;
    let img = image(u)?;
    let letterbox = scrfd::preprocess(&img, w, h);
    assert_eq!(letterbox.blob.len(), 3 * w * h, "blob of {w}x{h}");
    let bound = 127.5 / 128.0;
    assert!(letterbox.blob.iter().all(|v| v.is_finite() && v.abs() <= bound), "blob value outside ±{bound}");
    let scale = letterbox.det_scale;
    assert!(scale.is_finite() && scale > 0.0, "det_scale {scale}");

    let (tensors, misshapen) = outputs(u, opts.det_size)?;
    let (iw, ih) = (img.width(), img.height());
    let faces = match detections(&opts, &tensors, scale, (iw, ih)) {
        Ok(faces) => {
            assert!(!misshapen, "misshapen outputs were accepted");
            faces
        }
        Err(e) => {
            assert!(misshapen && matches!(e, FaceError::BadModel { .. }), "well-shaped outputs refused: {e:?}");
            return Ok(());
        }
    };
    if opts.max_num > 0 {
        assert!(faces.len() <= opts.max_num, "{} faces, max_num {}", faces.len(), opts.max_num);
    }
    for f in &faces {
        assert!(
            f.score.is_finite() && f.score >= opts.det_threshold,
            "score {} (threshold {})",
            f.score,
            opts.det_threshold
        );
        assert!(f.bbox.iter().all(|v| v.is_finite()), "box {:?} in {iw}x{ih}", f.bbox);
        assert!(f.landmarks.as_flattened().iter().all(|v| v.is_finite()), "landmarks {:?}", f.landmarks);
    }
    if opts.max_num == 0 || faces.len() < opts.max_num {
        assert!(faces.windows(2).all(|p| p[0].score >= p[1].score), "scores do not descend");
    }
    let crops: Vec<RgbImage> = faces.iter().map(|f| norm_crop(&img, &f.landmarks)).collect();
    let crop_refs: Vec<&RgbImage> = crops.iter().collect();
    assert!(crops.iter().all(|c| c.width() as usize == CROP_SIZE && c.height() as usize == CROP_SIZE));
    let mut blob = Vec::new();
    arcface::blob(&crop_refs, opts.rec_mean, opts.rec_std, &mut blob);
    assert_eq!(blob.len(), crops.len() * 3 * CROP_SIZE * CROP_SIZE);
    assert!(blob.iter().all(|v| v.is_finite()), "a recognition blob value is not finite");
    Ok(())
}

/// One fuzz input; panics on a violated invariant.
pub fn run(data: &[u8]) {
    // Running out of input is not a finding: arbitrary then gives zeros.
    let _ = check(&mut Unstructured::new(data));
}
