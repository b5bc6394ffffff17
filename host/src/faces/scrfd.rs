//! SCRFD face detection (buffalo_l's `det_10g.onnx`), pre- and
//! post-processing exactly as `insightface.model_zoo.scrfd.SCRFD.detect`:
//!
//! 1. Letterbox: keep the aspect ratio, fit into the input size (640x640),
//!    `new_height = int(new_width * h / w)` (or the transpose), resize with
//!    OpenCV's bilinear ([`super::cvresize`]), pad bottom/right with zeros.
//! 2. `cv2.dnn.blobFromImage(img, 1/128, mean 127.5, swapRB=True)`: insightface
//!    holds BGR and swaps, so the planes are R, G, B; ours is RGB already.
//! 3. Nine outputs: scores, box distances and keypoint offsets for strides 8,
//!    16, 32, two anchors per cell, rows ordered (y, x, anchor). Candidates
//!    with `score >= threshold` become boxes `centre -/+ distance * stride`,
//!    divided by the letterbox scale. All arithmetic in f32, as numpy does it.
//! 4. A stable sort by descending score, then insightface's greedy NMS (its
//!    `+1` pixel areas, IoU `<= 0.4` survives).
//! 5. Optionally the `max_num` faces ranked by `area - 2 * squared distance
//!    of the box centre from the image centre`.
//!
//! One departure, for outputs insightface never meets from a working model:
//! a candidate whose score, box or landmarks are not finite (a model emitting
//! NaN or infinity, or distances that overflow f32) is dropped in the
//! decode, so no NaN reaches NMS, alignment or a JSON answer. Boxes are not
//! clipped to the image, as insightface does not clip them (the parity test
//! holds us to its boxes): a face cut by the edge has a box that crosses it.

use crate::image::RgbImage;

/// One detected face before recognition.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` in image pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    /// Left eye, right eye, nose, left and right mouth corners, `[x, y]`.
    pub landmarks: [[f32; 2]; 5],
}

/// SCRFD's feature strides (the 9-output models: 3 strides, 2 anchors).
pub const STRIDES: [usize; 3] = [8, 16, 32];
/// Anchors per feature-map cell.
pub const ANCHORS: usize = 2;

/// The letterboxed input and the scale that maps detections back.
pub struct Letterbox {
    /// `[1, 3, height, width]` floats, planes R, G, B.
    pub blob: Vec<f32>,
    /// `new_height / image_height`, as insightface computes it (f64).
    pub det_scale: f64,
}

/// Letterboxes `img` into `width` x `height` and normalises it.
pub fn preprocess(img: &RgbImage, width: usize, height: usize) -> Letterbox {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let im_ratio = h as f64 / w as f64;
    let model_ratio = height as f64 / width as f64;
    // Python's int() truncates; insightface fails on a 0 side, we keep one pixel.
    let (new_w, new_h) = if im_ratio > model_ratio {
        ((height as f64 / im_ratio) as usize, height)
    } else {
        (width, (width as f64 * im_ratio) as usize)
    };
    let (new_w, new_h) = (new_w.clamp(1, width), new_h.clamp(1, height));
    let det_scale = new_h as f64 / h as f64;
    let resized = super::cvresize::resize_linear(img.pixels(), w, h, new_w, new_h);
    let plane = width * height;
    // Padding is black: (0 - 127.5) / 128.
    let mut blob = vec![-127.5f32 / 128.0; 3 * plane];
    for y in 0..new_h {
        for x in 0..new_w {
            let p = &resized[(y * new_w + x) * 3..][..3];
            for c in 0..3 {
                blob[c * plane + y * width + x] = (f32::from(p[c]) - 127.5) * (1.0 / 128.0);
            }
        }
    }
    Letterbox { blob, det_scale }
}

/// One stride's outputs: `scores[n]`, `boxes[n * 4]`, `kps[n * 10]`.
pub struct StrideOutput<'a> {
    pub stride: usize,
    pub scores: &'a [f32],
    pub boxes: &'a [f32],
    pub kps: &'a [f32],
}

/// Decodes the candidates of all strides above `threshold` (insightface's
/// `forward` + `_detect_candidates`), sorted by descending score (stable).
pub fn decode(outputs: &[StrideOutput<'_>], input_width: usize, threshold: f32, det_scale: f64) -> Vec<Detection> {
    let scale = det_scale as f32;
    let mut found = Vec::new();
    for out in outputs {
        let s = out.stride as f32;
        let cols = input_width / out.stride;
        for (i, &score) in out.scores.iter().enumerate() {
            if score < threshold || !score.is_finite() {
                continue;
            }
            let cell = i / ANCHORS;
            let cx = ((cell % cols) * out.stride) as f32;
            let cy = ((cell / cols) * out.stride) as f32;
            let d = &out.boxes[i * 4..i * 4 + 4];
            let bbox =
                [(cx - d[0] * s) / scale, (cy - d[1] * s) / scale, (cx + d[2] * s) / scale, (cy + d[3] * s) / scale];
            let k = &out.kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0f32; 2]; 5];
            for (j, lm) in landmarks.iter_mut().enumerate() {
                *lm = [(cx + k[2 * j] * s) / scale, (cy + k[2 * j + 1] * s) / scale];
            }
            if bbox.iter().chain(landmarks.as_flattened()).all(|v| v.is_finite()) {
                found.push(Detection { bbox, score, landmarks });
            }
        }
    }
    // np.argsort(-scores, kind='stable')
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    found
}

/// insightface's `SCRFD.nms` on detections sorted by descending score.
pub fn nms(dets: &[Detection], threshold: f32) -> Vec<Detection> {
    let area = |d: &Detection| (d.bbox[2] - d.bbox[0] + 1.0) * (d.bbox[3] - d.bbox[1] + 1.0);
    let areas: Vec<f32> = dets.iter().map(area).collect();
    let mut order: Vec<usize> = (0..dets.len()).collect();
    let mut keep = Vec::new();
    while let Some((&i, rest)) = order.split_first() {
        keep.push(dets[i].clone());
        let a = &dets[i].bbox;
        order = rest
            .iter()
            .copied()
            .filter(|&j| {
                let b = &dets[j].bbox;
                let w = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0).max(0.0);
                let h = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0).max(0.0);
                let inter = w * h;
                inter / (areas[i] + areas[j] - inter) <= threshold
            })
            .collect();
    }
    keep
}

/// insightface's `max_num` selection (metric `default`): the `max_num` faces
/// with the largest `area - 2 * offset^2` from the image centre, best first.
pub fn select_max(dets: Vec<Detection>, max_num: usize, image_width: u32, image_height: u32) -> Vec<Detection> {
    if max_num == 0 || dets.len() <= max_num {
        return dets;
    }
    let (cx, cy) = ((image_width / 2) as f32, (image_height / 2) as f32);
    let values: Vec<f32> = dets
        .iter()
        .map(|d| {
            let b = &d.bbox;
            let area = (b[2] - b[0]) * (b[3] - b[1]);
            let ox = (b[0] + b[2]) / 2.0 - cx;
            let oy = (b[1] + b[3]) / 2.0 - cy;
            area - (ox * ox + oy * oy) * 2.0
        })
        .collect();
    // np.argsort(values)[::-1]: ascending (ties by index), reversed.
    let mut idx: Vec<usize> = (0..dets.len()).collect();
    idx.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    idx.into_iter().rev().take(max_num).map(|i| dets[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(b: [f32; 4], score: f32) -> Detection {
        Detection { bbox: b, score, landmarks: [[0.0; 2]; 5] }
    }

    #[test]
    fn nms_drops_overlaps_above_threshold() {
        let dets = vec![det([0., 0., 9., 9.], 0.9), det([1., 1., 10., 10.], 0.8), det([20., 20., 29., 29.], 0.7)];
        let kept = nms(&dets, 0.4);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].score, 0.7);
    }

    #[test]
    fn letterbox_keeps_aspect_and_pads_black() {
        let img = RgbImage::from_raw(4, 2, vec![255; 24]).unwrap();
        let lb = preprocess(&img, 8, 8);
        assert_eq!(lb.det_scale, 2.0);
        assert_eq!(lb.blob[0], 127.5 / 128.0);
        assert_eq!(lb.blob[8 * 7], -127.5 / 128.0);
    }

    #[test]
    fn candidates_that_are_not_finite_are_dropped() {
        // One cell of an 8x8 input at stride 8 (two anchors): the first has a
        // box distance of infinity, the second a finite box.
        let scores = [0.9, 0.8];
        let boxes = [f32::INFINITY, 0., 1., 1., 0.5, 0.5, 1., 1.];
        let kps = [0f32; 20];
        let out = [StrideOutput { stride: 8, scores: &scores, boxes: &boxes, kps: &kps }];
        let found = decode(&out, 8, 0.5, 1.0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].score, 0.8);
        assert_eq!(found[0].bbox, [-4.0, -4.0, 8.0, 8.0]);
    }

    #[test]
    fn max_num_prefers_big_central_faces() {
        let dets = vec![det([0., 0., 10., 10.], 0.9), det([40., 40., 60., 60.], 0.8)];
        let kept = select_max(dets, 1, 100, 100);
        assert_eq!(kept[0].score, 0.8);
    }
}
