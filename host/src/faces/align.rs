//! `insightface.utils.face_align.norm_crop`: the 5 detected landmarks are
//! mapped onto the ArcFace template by a least-squares similarity transform
//! (what `skimage.transform.SimilarityTransform.estimate` computes), and the
//! face is cut out with `cv2.warpAffine(img, M, (112, 112), borderValue=0)`.
//!
//! Both halves are reproduced exactly, because ArcFace sees these pixels:
//!
//! - The similarity (Umeyama with scale) has a closed form in 2-D: with
//!   demeaned points, `a = sum(s . d)`, `b = sum(s x d)`, `var = sum(|s|^2)`,
//!   the matrix is `[[a, -b], [b, a]] / var` plus the translation between the
//!   means. It equals skimage's SVD route (including its reflection
//!   correction, since `S1 - S2 = |(p + s, q - r)|` when `det < 0`), in f64.
//! - OpenCV 5.0's warpAffine for 8-bit images works in f32: it inverts the
//!   2x3 matrix in f64, rounds its six entries to f32, computes the source
//!   point of destination pixel (x, y) as `fma(M0, x, y*M1 + M2)` (the row
//!   term rounded twice, the fma once), interpolates bilinearly with three
//!   fmas (along x, then along y) and rounds half to even. A source point
//!   whose 2x2 neighbourhood lies wholly outside the image gives the border
//!   value; a partly outside one reads 0 for the missing neighbours. Checked
//!   against `cv2.warpAffine` on random images and face-like transforms:
//!   identical.

use crate::image::RgbImage;
use crate::util::cpu_dispatch;

/// Side of the aligned crop ArcFace takes.
pub const CROP_SIZE: usize = 112;

/// The ArcFace template: eyes, nose tip, mouth corners in a 112x112 crop.
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// `face_align.estimate_norm(landmarks, 112)`: the 2x3 matrix (row-major)
/// taking image coordinates to crop coordinates. `None` when the landmarks
/// do not span anything (all equal) or are not finite.
pub fn estimate_norm(landmarks: &[[f32; 2]; 5]) -> Option<[f64; 6]> {
    let src: Vec<[f64; 2]> = landmarks.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]).collect();
    let dst: Vec<[f64; 2]> = ARCFACE_TEMPLATE.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]).collect();
    let mean = |pts: &[[f64; 2]]| {
        let n = pts.len() as f64;
        [pts.iter().map(|p| p[0]).sum::<f64>() / n, pts.iter().map(|p| p[1]).sum::<f64>() / n]
    };
    let (ms, md) = (mean(&src), mean(&dst));
    let (mut a, mut b, mut var) = (0.0f64, 0.0f64, 0.0f64);
    for (s, d) in src.iter().zip(&dst) {
        let (sx, sy) = (s[0] - ms[0], s[1] - ms[1]);
        let (dx, dy) = (d[0] - md[0], d[1] - md[1]);
        a += sx * dx + sy * dy;
        b += sx * dy - sy * dx;
        var += sx * sx + sy * sy;
    }
    if var <= 0.0 || !var.is_finite() || !a.is_finite() || !b.is_finite() {
        return None;
    }
    let (c, s) = (a / var, b / var);
    let tx = md[0] - (c * ms[0] - s * ms[1]);
    let ty = md[1] - (s * ms[0] + c * ms[1]);
    Some([c, -s, tx, s, c, ty])
}

/// OpenCV's inversion of a 2x3 affine matrix (`invertAffineTransform` as
/// warpAffine does it internally).
fn invert(m: &[f64; 6]) -> [f64; 6] {
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (m[4] * d, m[0] * d);
    let (a12, a21) = (m[1] * -d, m[3] * -d);
    let b1 = -a11 * m[2] - a12 * m[5];
    let b2 = -a21 * m[2] - a22 * m[5];
    [a11, a12, b1, a21, a22, b2]
}

cpu_dispatch!(
    /// `cv2.warpAffine(img, m, (size, size), borderValue=0)` for an RGB image
    /// (channel order does not matter: channels are independent).
    ///
    /// `f32::mul_add` is a libm call unless the CPU's FMA unit is enabled at
    /// compile time; where the CPU has one, the same code is compiled with it
    /// (results are identical: a fused multiply-add is exact either way).
    pub fn warp_affine(img: &RgbImage, m: &[f64; 6], size: usize) -> RgbImage = warp_affine_impl if "fma"
);

#[inline(always)]
fn warp_affine_impl(img: &RgbImage, m: &[f64; 6], size: usize) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let px = img.pixels();
    let mi = invert(m).map(|v| v as f32);
    let mut out = vec![0u8; size * size * 3];
    let fetch = |ix: i64, iy: i64, c: usize| -> f32 {
        if ix >= 0 && ix < w && iy >= 0 && iy < h {
            f32::from(px[((iy * w + ix) * 3) as usize + c])
        } else {
            0.0
        }
    };
    for y in 0..size {
        let row_x = (y as f32) * mi[1] + mi[2];
        let row_y = (y as f32) * mi[4] + mi[5];
        for x in 0..size {
            let sx = mi[0].mul_add(x as f32, row_x);
            let sy = mi[3].mul_add(x as f32, row_y);
            if !(sx.is_finite() && sy.is_finite()) {
                continue;
            }
            let (fx0, fy0) = (sx.floor(), sy.floor());
            let (ix, iy) = (fx0 as i64, fy0 as i64);
            if ix < -1 || ix >= w || iy < -1 || iy >= h {
                continue; // border value 0
            }
            let (ax, ay) = (sx - fx0, sy - fy0);
            let o = (y * size + x) * 3;
            for c in 0..3 {
                let (p00, p01) = (fetch(ix, iy, c), fetch(ix + 1, iy, c));
                let (p10, p11) = (fetch(ix, iy + 1, c), fetch(ix + 1, iy + 1, c));
                let v0 = ax.mul_add(p01 - p00, p00);
                let v1 = ax.mul_add(p11 - p10, p10);
                let v = ay.mul_add(v1 - v0, v0);
                out[o + c] = v.round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(size as u32, size as u32, out).expect("size*size*3 bytes")
}

/// `face_align.norm_crop(img, landmarks, 112)`; an all-black crop when the
/// landmarks are degenerate (insightface would warp with NaNs).
pub fn norm_crop(img: &RgbImage, landmarks: &[[f32; 2]; 5]) -> RgbImage {
    match estimate_norm(landmarks) {
        Some(m) => warp_affine(img, &m, CROP_SIZE),
        None => RgbImage::from_raw(CROP_SIZE as u32, CROP_SIZE as u32, vec![0; CROP_SIZE * CROP_SIZE * 3])
            .expect("crop size"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_maps_to_itself() {
        let m = estimate_norm(&ARCFACE_TEMPLATE).expect("non-degenerate");
        let expect = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        for (a, b) in m.iter().zip(expect) {
            assert!((a - b).abs() < 1e-9, "{m:?}");
        }
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let pixels: Vec<u8> = (0..112 * 112 * 3).map(|i| (i % 251) as u8).collect();
        let img = RgbImage::from_raw(112, 112, pixels.clone()).unwrap();
        let out = warp_affine(&img, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 112);
        assert_eq!(out.pixels(), &pixels[..]);
    }

    #[test]
    fn degenerate_landmarks_give_a_black_crop() {
        let img = RgbImage::from_raw(4, 4, vec![200; 48]).unwrap();
        let crop = norm_crop(&img, &[[1.0, 1.0]; 5]);
        assert!(crop.pixels().iter().all(|&v| v == 0));
    }
}
