//! Faces throughput, switchyard against insightface, in one run: the same
//! models (models/faces/buffalo_l), the same decoded images, the same ONNX
//! Runtime thread count (and OpenCV's), detection + alignment + recognition
//! per image. Ignored by default (it takes a minute); run it with
//!
//!     FACES_BENCH_THREADS=1 cargo test --release -p switchyard-tests --test faces_bench -- --ignored --nocapture
//!
//! and copy the printed line into docs/benchmarks.md (## Faces).

use std::sync::Arc;
use std::time::Instant;

use switchyard::faces::{FaceOptions, FacePipeline};
use switchyard::image::RgbImage;
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::BackendConfig;
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, root, run_python, temp_dir};

const NAMES: [&str; 6] = ["t1.jpg", "astronaut.png", "coffee.png", "rocket.jpg", "one_face.png", "noface_flat.png"];

#[test]
#[ignore = "benchmark; run with --ignored"]
fn faces_throughput_against_insightface() {
    let threads: u32 = std::env::var("FACES_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let rounds: usize = std::env::var("FACES_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let work = temp_dir("faces-bench");
    let listing = run_python(&["tools/reference/faces_reference.py", "images", work.to_str().unwrap()]);
    let paths: Vec<String> =
        listing.lines().filter(|l| NAMES.iter().any(|n| l.ends_with(n))).map(String::from).collect();
    assert_eq!(paths.len(), NAMES.len());
    let dir = root().join("models/faces/buffalo_l");

    let mut args = vec!["tools/reference/faces_reference.py".to_string(), "bench".into()];
    args.extend(["--model-dir".into(), dir.display().to_string(), "--threads".into(), threads.to_string()]);
    args.extend(["--rounds".into(), rounds.to_string()]);
    args.extend(paths.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let theirs: serde_json::Value = serde_json::from_str(run_python(&refs).trim()).unwrap();

    let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu)).unwrap();
    let backend = Arc::new(loaded.open(&BackendConfig { threads, ..BackendConfig::default() }).unwrap());
    let p = FacePipeline::load(backend, &dir, FaceOptions::default()).unwrap();
    let images: Vec<RgbImage> = paths.iter().map(|f| p.prepare_image(&std::fs::read(f).unwrap()).unwrap()).collect();
    p.detect_and_embed(&[&images[0]]).unwrap();
    let mut faces = 0;
    let start = Instant::now();
    for _ in 0..rounds {
        for img in &images {
            faces += p.detect_and_embed(&[img]).unwrap()[0].len();
        }
    }
    let ours_s = start.elapsed().as_secs_f64();
    let n = (images.len() * rounds) as f64;
    let ours = n / ours_s;
    let theirs_ips = theirs["images_per_s"].as_f64().unwrap();
    assert_eq!(faces as u64, theirs["faces"].as_u64().unwrap(), "both sides must find the same faces");
    println!(
        "faces bench: {threads} thread(s), {} images x {rounds} rounds, {faces} faces: switchyard {ours:.2} img/s, insightface {theirs_ips:.2} img/s, ratio {:.2}x",
        images.len(),
        ours / theirs_ips
    );
}
