//! Faces as Immich's service finds them (`FaceDetector` and `FaceRecognizer`
//! in `immich_ml/models/facial_recognition/`), on its cache's buffalo_l files.
//!
//! Immich runs insightface's `RetinaFace` prepared with `input_size=(640,
//! 640)` and `det_thresh` set from each request's `minScore` (NMS 0.4, no
//! `max_num`), which decodes, sorts and suppresses exactly as the SCRFD
//! code [`crate::faces`] reproduces; then `norm_crop` of each face and
//! ArcFace's `get_feat` on the crops. Two things differ from
//! switchyard's `/v1/faces`: the boxes are rounded (`bboxes[:, :4].round()`,
//! numpy's half to even), and the embeddings are the recognizer's raw rows,
//! not unit vectors, because that is what Immich stores (it compares them by
//! cosine distance, so only the direction matters to it, but an existing
//! index holds these numbers).

use std::sync::Arc;

use switchyard_core::abi::BackendBox;

use super::cache::FaceFiles;
use super::error::ImmichError;
use crate::faces::{FaceOptions, FacePipeline};
use crate::image::RgbImage;
use crate::resident::ResidentSet;

/// Immich's detector input size (`FaceDetector._load`).
pub const DET_SIZE: (usize, usize) = (640, 640);

/// One face as Immich's server receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImmichFace {
    /// `x1, y1, x2, y2`, rounded half to even.
    pub bounding_box: [f32; 4],
    pub score: f32,
    /// The recognizer's output as it is (512 values for buffalo_l).
    pub embedding: Vec<f32>,
}

/// A detector and recognizer of Immich's cache.
pub struct Faces {
    pipeline: FacePipeline,
    pub detection: String,
    pub recognition: String,
}

impl Faces {
    /// Loads the two models on `backend` and warms them up.
    pub fn load(backend: Arc<BackendBox>, files: &FaceFiles) -> Result<Faces, ImmichError> {
        let options = FaceOptions { det_size: DET_SIZE, ..FaceOptions::default() };
        let pipeline =
            FacePipeline::load_files(backend, &files.folder, [&files.detection, &files.recognition], options)?;
        Ok(Faces { pipeline, detection: files.detection_name.clone(), recognition: files.recognition_name.clone() })
    }

    /// The faces of each image with its `minScore`, best first.
    pub fn detect_and_embed(&self, images: &[(&RgbImage, f32)]) -> Result<Vec<Vec<ImmichFace>>, ImmichError> {
        let mut found = Vec::with_capacity(images.len());
        let mut crops = Vec::new();
        for (img, min_score) in images {
            let dets = self.pipeline.detect_over(img, *min_score)?;
            crops.extend(dets.iter().map(|d| self.pipeline.align(img, d)));
            found.push(dets);
        }
        let refs: Vec<&RgbImage> = crops.iter().collect();
        let mut embeddings = self.pipeline.embed_crops_raw(&refs)?.into_iter();
        Ok(found
            .into_iter()
            .map(|dets| {
                dets.into_iter()
                    .map(|d| ImmichFace {
                        bounding_box: d.bbox.map(f32::round_ties_even),
                        score: d.score,
                        embedding: embeddings.next().unwrap_or_default(),
                    })
                    .collect()
            })
            .collect())
    }

    /// Where the models run.
    pub fn devices(&self) -> (&str, &str) {
        let info = self.pipeline.info();
        (&info.detector_device, &info.recognizer_device)
    }

    /// Whether these are tools/make_immich_models.py's stand-ins.
    pub fn random_weights(&self) -> bool {
        self.pipeline.info().random_weights
    }

    pub fn resident(&self) -> &ResidentSet {
        self.pipeline.resident()
    }
}
