//! Face detection and recognition (InsightFace buffalo_l: SCRFD `det_10g`
//! and ArcFace `w600k_r50`), with every pre- and post-processing step done
//! here, once, the way insightface does it, so that any plugin's ONNX Runtime
//! gives the answers the Python service gave.
//!
//! - [`cvresize`]: OpenCV's bilinear resize, bit-exact (SCRFD's letterbox).
//! - [`scrfd`]: letterbox + blob, anchor decode, NMS, `max_num`.
//! - [`align`]: `norm_crop` (similarity to the ArcFace template, OpenCV's
//!   warpAffine, bit-exact).
//! - [`arcface`]: the recognition blob and L2 normalisation.
//! - [`pipeline`]: [`FacePipeline`], the library API: images in, per image a
//!   list of [`Face`] (box, score, 5 landmarks, 512-d embedding).
//!
//! insightface works on BGR images (cv2.imread) and swaps to RGB in
//! `blobFromImage`; switchyard keeps images RGB throughout, which gives the
//! same planes because every step before the swap treats channels alike.

pub mod align;
pub mod arcface;
pub mod cvresize;
pub mod pipeline;
pub mod scrfd;

pub use pipeline::{Face, FaceError, FaceModelInfo, FaceOptions, FacePipeline};
pub use scrfd::Detection;
