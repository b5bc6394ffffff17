//! OpenCV's `cv2.resize(img, (w, h))` (INTER_LINEAR, 8-bit, 3 channels),
//! bit for bit, because insightface's SCRFD resizes with it before detection
//! and the parity bar leaves no room for a different resampler (PIL's
//! bilinear, in `crate::image::resize`, antialiases; OpenCV's does not).
//!
//! What OpenCV 5.0 (the opencv-python wheel insightface runs on) does, checked
//! against `cv2.resize` on random images and sizes (tools: the faces parity
//! test runs the real thing on every test image):
//!
//! - per axis, source coordinate `f = (float)((d + 0.5) * scale - 0.5)` with
//!   `scale = 1 / (dst / src)` in f64 rounded to f32; `s = floor(f)`, weight
//!   `f - s`; at the left/top edge `s < 0` gives `s = 0, f = 0`, at the
//!   right edge `s >= src - 1` gives `s = src - 1, f = 0` (rows are clamped
//!   instead: both row indices clip into the image, weights unchanged);
//! - weights become 11-bit fixed point, each rounded on its own
//!   (`cvRound((1 - f) * 2048)`, `cvRound(f * 2048)`, ties to even);
//! - the horizontal pass sums `pixel * weight` exactly in i32;
//! - the vertical pass is the SIMD kernel's arithmetic (used for every pixel
//!   in practice): `((S0 >> 4) * b0 >> 16) + ((S1 >> 4) * b1 >> 16)`, then
//!   `(+ 2) >> 2` and saturation to u8. (The scalar formula, `(b0 S0 + b1 S1 +
//!   2^21) >> 22`, differs by one level in about 16 % of pixels.)
//!
//! An exact 2x downscale, which OpenCV routes to INTER_AREA, gives the same
//! result with these formulas.

/// Source index pairs and fixed-point weights along one axis.
struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    w0: Vec<i32>,
    w1: Vec<i32>,
}

fn axis(src: usize, dst: usize, clamp_weights: bool) -> Axis {
    let scale = 1.0 / (dst as f64 / src as f64);
    let mut a = Axis {
        i0: Vec::with_capacity(dst),
        i1: Vec::with_capacity(dst),
        w0: Vec::with_capacity(dst),
        w1: Vec::with_capacity(dst),
    };
    let last = src as i64 - 1;
    for d in 0..dst {
        let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
        let mut s = f.floor() as i64;
        let mut frac = f - s as f32;
        if clamp_weights {
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s >= last {
                s = last;
                frac = 0.0;
            }
        }
        a.i0.push(s.clamp(0, last) as usize);
        a.i1.push((s + 1).clamp(0, last) as usize);
        a.w0.push(((1.0 - frac) * 2048.0).round_ties_even() as i32);
        a.w1.push((frac * 2048.0).round_ties_even() as i32);
    }
    a
}

/// Resizes interleaved 3-channel `src` (`sw` x `sh`) to `dw` x `dh` as
/// `cv2.resize(..., interpolation=cv2.INTER_LINEAR)` does. All sizes must be >= 1.
pub fn resize_linear(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    const CN: usize = 3;
    debug_assert_eq!(src.len(), sw * sh * CN);
    if sw == dw && sh == dh {
        return src.to_vec();
    }
    let xs = axis(sw, dw, true);
    let ys = axis(sh, dh, false);
    let row_len = dw * CN;
    // Horizontal pass of one source row.
    let hpass = |row: usize, out: &mut Vec<i32>| {
        out.clear();
        let line = &src[row * sw * CN..(row + 1) * sw * CN];
        for dx in 0..dw {
            let (p0, p1) = (xs.i0[dx] * CN, xs.i1[dx] * CN);
            let (a0, a1) = (xs.w0[dx], xs.w1[dx]);
            for c in 0..CN {
                out.push(i32::from(line[p0 + c]) * a0 + i32::from(line[p1 + c]) * a1);
            }
        }
    };
    let mut out = vec![0u8; dh * row_len];
    // Cache of horizontally resized rows: (source row, values).
    let mut cache: [(usize, Vec<i32>); 2] = [(usize::MAX, Vec::new()), (usize::MAX, Vec::new())];
    for dy in 0..dh {
        let (r0, r1) = (ys.i0[dy], ys.i1[dy]);
        for (slot, row) in [(0usize, r0), (1, r1)] {
            if cache[slot].0 != row {
                let other = 1 - slot;
                if cache[other].0 == row {
                    let values = cache[other].1.clone();
                    cache[slot] = (row, values);
                } else {
                    let mut values = std::mem::take(&mut cache[slot].1);
                    hpass(row, &mut values);
                    cache[slot] = (row, values);
                }
            }
        }
        let (b0, b1) = (ys.w0[dy], ys.w1[dy]);
        let (s0, s1) = (&cache[0].1, &cache[1].1);
        let dst = &mut out[dy * row_len..(dy + 1) * row_len];
        for x in 0..row_len {
            let v = (((s0[x] >> 4) * b0) >> 16) + (((s1[x] >> 4) * b1) >> 16);
            dst[x] = ((v + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_is_a_copy() {
        let src: Vec<u8> = (0..2 * 3 * 3).map(|v| v as u8).collect();
        assert_eq!(resize_linear(&src, 2, 3, 2, 3), src);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 5 * 7 * 3];
        assert!(resize_linear(&src, 5, 7, 13, 3).iter().all(|&v| v == 77));
    }

    #[test]
    fn one_pixel_upscales_to_its_colour() {
        let out = resize_linear(&[10, 20, 30], 1, 1, 4, 4);
        assert!(out.chunks(3).all(|p| p == [10, 20, 30]));
    }
}
