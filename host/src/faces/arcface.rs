//! ArcFace input and output handling (buffalo_l's `w600k_r50.onnx`), as
//! `insightface.model_zoo.arcface_onnx.ArcFaceONNX.get_feat` does it:
//! `cv2.dnn.blobFromImages(crops, 1/127.5, (112, 112), mean 127.5,
//! swapRB=True)`, i.e. `(x - 127.5) * f32(1 / 127.5)` per value (checked
//! against OpenCV: that order of operations, not a division), planes R, G, B
//! (insightface's crops are BGR and get swapped; ours are RGB). Embeddings
//! are L2-normalised afterwards, as `Face.normed_embedding` is.

use crate::image::RgbImage;

/// Fills `out` with the `[n, 3, S, S]` blob of `crops` (all `S` x `S`).
pub fn blob(crops: &[&RgbImage], mean: f32, std: f32, out: &mut Vec<f32>) {
    out.clear();
    let scale = 1.0 / std;
    for crop in crops {
        let plane = (crop.width() * crop.height()) as usize;
        let start = out.len();
        out.resize(start + 3 * plane, 0.0);
        let dst = &mut out[start..];
        for (i, p) in crop.pixels().chunks_exact(3).enumerate() {
            for c in 0..3 {
                dst[c * plane + i] = (f32::from(p[c]) - mean) * scale;
            }
        }
    }
}

pub use crate::util::l2_normalize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_is_planar_and_centred() {
        let crop = RgbImage::from_raw(1, 2, vec![0, 255, 127, 255, 0, 128]).unwrap();
        let mut out = Vec::new();
        blob(&[&crop], 127.5, 127.5, &mut out);
        assert_eq!(out.len(), 6);
        assert_eq!(out[0], -1.0); // R of pixel 0
        assert_eq!(out[1], 1.0); // R of pixel 1
        assert_eq!(out[2], 1.0); // G of pixel 0
    }

    #[test]
    fn normalizes() {
        let v = l2_normalize(&[3.0, 4.0]);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
    }
}
