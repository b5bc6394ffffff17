//! Face parity: switchyard's whole faces pipeline (decode, SCRFD letterbox and
//! decode, NMS, norm_crop, ArcFace through the CPU plugin's ONNX Runtime)
//! against insightface's own SCRFD, face_align.norm_crop and ArcFaceONNX run
//! in Python at test time on the same ONNX models and the same photos
//! (tools/reference/faces_reference.py). Bars, per image: the same number of
//! faces, box IoU >= 0.99, landmarks within 0.5 px, aligned crops within 1
//! grey level on average, embeddings cosine >= 0.999.
//!
//! The image set: insightface's and scikit-image's photos (a group photo, a
//! grayscale close-up, masked faces, the astronaut, a cat, a rocket...) plus
//! a one-face composite, rotated, grayscale, 8x8 and 4000x3000 versions and
//! two images without faces. A corrupt file must give a clear error.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard::faces::{FaceOptions, FacePipeline};
use switchyard::image::RgbImage;
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::BackendConfig;
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, root, run_python, temp_dir};

fn face_dir() -> PathBuf {
    let dir = root().join("models/faces/buffalo_l");
    assert!(dir.join("det_10g.onnx").exists(), "no face models; run ci/make-models.sh (ci/test.sh does)");
    dir
}

fn pipeline() -> FacePipeline {
    let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu)).expect("cpu plugin loads");
    let backend = Arc::new(loaded.open(&BackendConfig::default()).expect("cpu plugin opens"));
    FacePipeline::load(backend, &face_dir(), FaceOptions::default()).expect("face models load")
}

fn iou(a: &[f32; 4], b: &[f64]) -> f64 {
    let (ax1, ay1, ax2, ay2) = (f64::from(a[0]), f64::from(a[1]), f64::from(a[2]), f64::from(a[3]));
    let w = (ax2.min(b[2]) - ax1.max(b[0])).max(0.0);
    let h = (ay2.min(b[3]) - ay1.max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((ax2 - ax1) * (ay2 - ay1) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * y).sum();
    let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number")).collect()
}

struct ImageReport {
    name: String,
    faces: usize,
    min_iou: f64,
    max_landmark_px: f64,
    max_crop_mean_diff: f64,
    min_cosine: f64,
}

fn compare(p: &FacePipeline, path: &Path, reference: &serde_json::Value) -> Result<ImageReport, String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let img = p.prepare_image(&std::fs::read(path).unwrap()).map_err(|e| format!("{name}: {e}"))?;
    let dets = p.detect(&img).map_err(|e| format!("{name}: {e}"))?;
    let theirs = reference["faces"].as_array().expect("faces");
    if dets.len() != theirs.len() {
        return Err(format!("{name}: {} faces, insightface found {}", dets.len(), theirs.len()));
    }
    let crops: Vec<RgbImage> = dets.iter().map(|d| p.align(&img, d)).collect();
    let embeddings = p.embed_crops(&crops.iter().collect::<Vec<_>>()).map_err(|e| format!("{name}: {e}"))?;
    let ref_crops = std::fs::read(reference["crops_file"].as_str().expect("crops_file")).expect("crops file");
    let mut r = ImageReport {
        name: name.clone(),
        faces: dets.len(),
        min_iou: 1.0,
        max_landmark_px: 0.0,
        max_crop_mean_diff: 0.0,
        min_cosine: 1.0,
    };
    for (i, (d, t)) in dets.iter().zip(theirs).enumerate() {
        r.min_iou = r.min_iou.min(iou(&d.bbox, &f64s(&t["bbox"])));
        for (ours, lm) in d.landmarks.iter().zip(t["landmarks"].as_array().expect("landmarks")) {
            let lm = f64s(lm);
            let dist = (f64::from(ours[0]) - lm[0]).abs().max((f64::from(ours[1]) - lm[1]).abs());
            r.max_landmark_px = r.max_landmark_px.max(dist);
        }
        let size = 112 * 112 * 3;
        let theirs_bgr = &ref_crops[i * size..(i + 1) * size];
        let diff: u64 = crops[i]
            .pixels()
            .chunks_exact(3)
            .zip(theirs_bgr.chunks_exact(3))
            .map(|(rgb, bgr)| (0..3).map(|c| u64::from(rgb[c].abs_diff(bgr[2 - c]))).sum::<u64>())
            .sum();
        r.max_crop_mean_diff = r.max_crop_mean_diff.max(diff as f64 / size as f64);
        r.min_cosine = r.min_cosine.min(cosine(&embeddings[i], &f64s(&t["embedding"])));
    }
    let bad = r.min_iou < 0.99 || r.max_landmark_px > 0.5 || r.max_crop_mean_diff > 1.0 || r.min_cosine < 0.999;
    if bad {
        return Err(format!(
            "{name}: IoU {:.5}, landmarks {:.4} px, crop diff {:.4}, cosine {:.6} miss the bars",
            r.min_iou, r.max_landmark_px, r.max_crop_mean_diff, r.min_cosine
        ));
    }
    Ok(r)
}

#[test]
fn faces_match_insightface() {
    let work = temp_dir("faces-parity");
    let listing = run_python(&["tools/reference/faces_reference.py", "images", work.join("images").to_str().unwrap()]);
    let images: Vec<PathBuf> = listing.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect();
    assert!(images.len() >= 10, "only {} images", images.len());
    let crops_dir = work.join("crops");
    std::fs::create_dir_all(&crops_dir).unwrap();
    let json_path = work.join("reference.json");
    let dir = face_dir();
    let mut args = vec![
        "tools/reference/faces_reference.py",
        "run",
        "--model-dir",
        dir.to_str().unwrap(),
        "--out",
        json_path.to_str().unwrap(),
        "--crops-dir",
        crops_dir.to_str().unwrap(),
    ];
    let image_args: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    args.extend(image_args.iter().map(String::as_str));
    run_python(&args);
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let reference = reference["images"].as_array().expect("images").clone();

    let p = pipeline();
    eprintln!("detector on {}, recognizer on {}", p.info().detector_device, p.info().recognizer_device);
    let mut failures = Vec::new();
    let mut reports = Vec::new();
    for (path, r) in images.iter().zip(&reference) {
        if r["cv2_agrees"] != serde_json::Value::Bool(true) {
            eprintln!("note: cv2.imread decodes {} differently from PIL; the reference reads with PIL", path.display());
        }
        match compare(&p, path, r) {
            Ok(rep) => reports.push(rep),
            Err(e) => failures.push(e),
        }
    }
    for r in &reports {
        eprintln!(
            "{:<24} faces {:>3}  min IoU {:.6}  max landmark {:.5} px  max crop mean diff {:.4}  min cosine {:.7}",
            r.name, r.faces, r.min_iou, r.max_landmark_px, r.max_crop_mean_diff, r.min_cosine
        );
    }
    assert!(failures.is_empty(), "{} images miss the bars:\n{}", failures.len(), failures.join("\n"));
    let count = |name: &str| reports.iter().find(|r| r.name == name).map(|r| r.faces).expect(name);
    assert_eq!(count("noface_flat.png"), 0);
    assert_eq!(count("noface_grass.png"), 0);
    assert_eq!(count("one_face.png"), 1);
    assert!(count("t1.jpg") > 1, "the group photo should give several faces");
    assert!(reports.iter().map(|r| r.faces).sum::<usize>() > 50);
}

#[test]
fn batched_detect_and_embed_equals_one_by_one() {
    let p = pipeline();
    let work = temp_dir("faces-batch");
    let listing = run_python(&["tools/reference/faces_reference.py", "images", work.to_str().unwrap()]);
    let images: Vec<RgbImage> = listing
        .lines()
        .filter(|l| ["one_face.png", "rocket.jpg", "noface_flat.png", "tiny_8x8.png"].iter().any(|n| l.ends_with(n)))
        .map(|l| p.prepare_image(&std::fs::read(l).unwrap()).unwrap())
        .collect();
    assert_eq!(images.len(), 4);
    let refs: Vec<&RgbImage> = images.iter().collect();
    let batched = p.detect_and_embed(&refs).expect("batch");
    assert_eq!(batched.len(), 4);
    for (img, faces) in images.iter().zip(&batched) {
        let single = p.detect_and_embed(&[img]).expect("single").remove(0);
        assert_eq!(single.len(), faces.len());
        for (a, b) in single.iter().zip(faces) {
            assert_eq!(a.bbox, b.bbox);
            assert_eq!(a.embedding.len(), 512);
            let dot: f32 = a.embedding.iter().zip(&b.embedding).map(|(x, y)| x * y).sum();
            assert!(dot > 0.9999, "batched embedding drifted: {dot}");
        }
    }
}

#[test]
fn corrupt_and_odd_files_give_clear_errors() {
    let p = pipeline();
    let t1 = std::fs::read(
        Path::new(
            &run_python(&["-c", "import insightface,os;print(os.path.dirname(insightface.__file__))"])
                .trim()
                .to_string(),
        )
        .join("data/images/t1.jpg"),
    )
    .unwrap();
    let truncated = &t1[..t1.len() / 3];
    let err = p.prepare_image(truncated).expect_err("truncated JPEG must fail").to_string();
    let chain = format!("{err}: {}", std::error::Error::source(&p.prepare_image(truncated).unwrap_err()).unwrap());
    assert!(chain.contains("corrupt or truncated"), "{chain}");
    let garbage = p.prepare_image(b"this is not an image at all").unwrap_err();
    let msg = std::error::Error::source(&garbage).unwrap().to_string();
    assert!(msg.contains("not a recognised image"), "{msg}");
    assert!(p.prepare_image(&[]).is_err());
    // A 1x1 image and a 1x3000 strip still go through (insightface itself fails on the strip).
    for (w, h) in [(1u32, 1u32), (3000, 1), (1, 3000)] {
        let img = RgbImage::from_raw(w, h, vec![200; (w * h * 3) as usize]).unwrap();
        p.detect_and_embed(&[&img]).expect("odd sizes work");
    }
}
