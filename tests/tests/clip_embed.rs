//! CLIP embedding parity: the whole Rust pipeline (decode, preprocess,
//! tokenize, both towers through the CPU plugin, L2 normalization) against
//! open_clip run in Python on the same weights and inputs, through every
//! engine (TorchScript, ONNX and the opt-in TorchScript with bf16 matmul
//! inputs: cosine >= 0.9999 for every row; the opt-in int8 ONNX towers: the
//! looser bars below).
//!
//! The reference runs at test time (tools/reference/clip_embed.py); nothing
//! here compares against numbers this code produced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard::clip::model::ClipEngine;
use switchyard::clip::pipeline::ClipPipeline;
use switchyard::image::decode::DecodeLimits;
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::BackendConfig;
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, read_f32, root, run_python, temp_dir};

const MIN_COSINE: f32 = 0.9999;
/// The bar for the reduced-scale JPEG decode, which changes pixels on purpose.
const SCALED_MIN_COSINE: f32 = 0.999;
/// The bars for the opt-in int8 towers (`CLIP_ENGINE=onnx-int8`, tools/quantize_clip.py):
/// dynamic quantization trades exactness for speed; on the offline export
/// `quantize_clip.py` measured 0.99982 (images) and 0.99924 (texts) at worst.
const INT8_MIN_COSINE_IMAGES: f32 = 0.999;
const INT8_MIN_COSINE_TEXTS: f32 = 0.998;

use switchyard_tests::clip_model_dir as clip_dir;

fn parity_images(dir: &Path) -> Vec<PathBuf> {
    let listing = run_python(&["tools/reference/make_parity_images.py", dir.to_str().unwrap()]);
    let images: Vec<PathBuf> = listing.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect();
    assert!(images.len() >= 20, "only {} parity images", images.len());
    images
}

/// 120 captions of the kind a search box sends, plus odd ones.
fn texts() -> Vec<String> {
    let subjects = [
        "cat",
        "dog",
        "red car",
        "mountain lake",
        "birthday cake",
        "crowd at a concert",
        "café in Paris",
        "东京的街道",
        "bébé qui rit",
        "🐶 puppy",
    ];
    let templates = ["a photo of a {}", "{}", "A blurry picture of the {} at night.", "my {} &amp; friends", "  {}\tin   the snow ", "an oil painting of a {}, very detailed, trending on artstation, 4k, highly detailed, sharp focus, cinematic lighting, by a famous painter of the nineteenth century who loved {}s more than anything else in the whole wide world"];
    let mut out = Vec::new();
    for s in subjects {
        for t in templates {
            out.push(t.replace("{}", s));
        }
    }
    out.extend(
        [
            "",
            "!!!",
            "12345",
            "ＦＵＬＬ ｗｉｄｔｈ",
            "“quoted” text",
            "naïve façade",
            "ﬁsh and ﬂowers",
            "日本語のテキスト",
            "مرحبا بالعالم",
            "Привет мир",
            "a\u{200b}b",
            "e\u{301}cole",
            "&lt;b&gt;bold&lt;/b&gt;",
            "x".repeat(500).as_str(),
            "a photo of a cat 🐱🐈‍⬛ 👍🏽",
            "second-hand, third-rate; fourth's",
            "I'm you're we've they'll he'd",
            "#hashtag @mention http://example.com/a?b=c",
            "tab\there",
            "new line",
        ]
        .map(String::from),
    );
    for i in 0..48 {
        out.push(format!("photo number {i} of {} things", i * 7));
    }
    assert!(out.len() >= 100);
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn check(what: &str, min_cosine: f32, names: &[String], ours: &[Vec<f32>], reference: &[f32]) {
    let dim = ours[0].len();
    assert_eq!(reference.len(), names.len() * dim, "{what}: reference has the wrong size");
    let mut worst = (1.0f32, String::new());
    let mut failures = Vec::new();
    for (i, (name, row)) in names.iter().zip(ours).enumerate() {
        let c = cosine(row, &reference[i * dim..(i + 1) * dim]);
        if c < worst.0 {
            worst = (c, name.clone());
        }
        if c < min_cosine {
            failures.push(format!("{name:?}: cosine {c}"));
        }
    }
    eprintln!("{what}: {} rows, min cosine {:.7} ({:?})", names.len(), worst.0, worst.1);
    assert!(failures.is_empty(), "{what}: {} rows below {min_cosine}:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn embeddings_match_open_clip_through_every_engine() {
    let work = temp_dir("clip-embed");
    let images = parity_images(&work.join("images"));
    let texts = texts();
    let texts_file = work.join("texts.txt");
    std::fs::write(&texts_file, texts.iter().map(|t| t.replace('\n', " ")).collect::<Vec<_>>().join("\n") + "\n")
        .unwrap();
    let texts: Vec<String> = std::fs::read_to_string(&texts_file).unwrap().lines().map(String::from).collect();

    let dir = clip_dir();
    let ref_images = work.join("ref_images.f32");
    let ref_texts = work.join("ref_texts.f32");
    let mut args = vec![
        "tools/reference/clip_embed.py",
        "--model-dir",
        dir.to_str().unwrap(),
        "--out",
        ref_images.to_str().unwrap(),
        "--images",
    ];
    let image_args: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    args.extend(image_args.iter().map(String::as_str));
    run_python(&args);
    run_python(&[
        "tools/reference/clip_embed.py",
        "--model-dir",
        dir.to_str().unwrap(),
        "--texts-file",
        texts_file.to_str().unwrap(),
        "--out",
        ref_texts.to_str().unwrap(),
    ]);
    let ref_images = read_f32(&ref_images);
    let ref_texts = read_f32(&ref_texts);

    let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu)).expect("cpu plugin loads");
    let backend = Arc::new(loaded.open(&BackendConfig::default()).expect("cpu plugin opens"));
    let image_names: Vec<String> =
        images.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    // The int8 towers are an approximation by design, with bars of their own.
    let engines = [
        (ClipEngine::Torchscript, MIN_COSINE, MIN_COSINE),
        (ClipEngine::Onnx, MIN_COSINE, MIN_COSINE),
        // bf16 matmul inputs with float32 accumulation hold the float32 bar
        // (where the CPU lacks bfloat16 hardware this is plain float32).
        (ClipEngine::TorchscriptBf16, MIN_COSINE, MIN_COSINE),
        (ClipEngine::OnnxInt8, INT8_MIN_COSINE_IMAGES, INT8_MIN_COSINE_TEXTS),
    ];
    for (engine, min_images, min_texts) in engines {
        let pipeline =
            ClipPipeline::load(backend.clone(), &dir, engine, None, DecodeLimits::default()).expect("pipeline");
        let prepared: Vec<Vec<f32>> = images
            .iter()
            .map(|p| {
                pipeline.prepare_image(&std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect();
        let mut ours = Vec::new();
        for chunk in prepared.chunks(8) {
            let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
            ours.extend(pipeline.embed_prepared(&refs).expect("embed images"));
        }
        check(&format!("{engine:?} images"), min_images, &image_names, &ours, &ref_images);
        let mut ours = Vec::new();
        for chunk in texts.chunks(16) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            ours.extend(pipeline.embed_texts(&refs).expect("embed texts"));
        }
        check(&format!("{engine:?} texts"), min_texts, &texts, &ours, &ref_texts);
    }

    // The reduced-scale JPEG decode (on by default in `embed` and `serve`)
    // changes pixels of large JPEGs; the bar for such a fast path is
    // cosine >= 0.999 to open_clip on the parity images.
    let pipeline = ClipPipeline::load(backend.clone(), &dir, ClipEngine::Onnx, None, DecodeLimits::default())
        .expect("pipeline")
        .with_scaled_decode(true);
    let mut ours = Vec::new();
    for p in &images {
        let bytes = std::fs::read(p).unwrap();
        let pixels = pipeline.prepare_image(&bytes).unwrap();
        ours.extend(pipeline.embed_prepared(&[&pixels]).expect("embed image"));
    }
    let dim = ours[0].len();
    let worst = ours
        .iter()
        .enumerate()
        .map(|(i, row)| (cosine(row, &ref_images[i * dim..(i + 1) * dim]), &image_names[i]))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    eprintln!("scaled decode: {} images, min cosine {:.7} ({})", ours.len(), worst.0, worst.1);
    assert!(worst.0 >= SCALED_MIN_COSINE, "scaled decode: {} has cosine {} < {SCALED_MIN_COSINE}", worst.1, worst.0);
}

#[test]
fn int8_engine_without_its_files_says_how_to_make_them() {
    let work = temp_dir("clip-int8-missing");
    let dir = work.join("ViT-B-32");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["config.json", "bpe_simple_vocab_16e6.txt.gz"] {
        std::fs::copy(root().join("models/clip/ViT-B-32").join(file), dir.join(file)).unwrap();
    }
    let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu)).expect("cpu plugin loads");
    let backend = Arc::new(loaded.open(&BackendConfig::default()).expect("cpu plugin opens"));
    let err = ClipPipeline::load(backend, &dir, ClipEngine::OnnxInt8, None, DecodeLimits::default())
        .err()
        .expect("no int8 files: an error");
    let err = std::iter::successors(Some(&err as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    assert!(err.contains("visual.int8.onnx") && err.contains("tools/quantize_clip.py"), "{err}");
}
