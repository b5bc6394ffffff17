//! The CLIP TorchScript towers in every dtype the export names, and the
//! traces' graphs.
//!
//! CUDA runs TorchScript in float16 by default, and `DTYPE=bfloat16` or
//! `float16` may be asked of any plugin; the CPU plugin runs the same files
//! the same way (weights and float inputs converted at load), so the dtypes
//! are checked here: every embedding in float16 and bfloat16 against float32,
//! cosine >= 0.999. An export that cannot run in a dtype is refused at load
//! with the command that makes one that can. The trace check reads the
//! graphs (tools/check_traces.py): no constant dtype, and no arithmetic on
//! sizes, whose `int()` would sync a GPU several times per layer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use switchyard::clip::model::ClipEngine;
use switchyard::clip::pipeline::ClipPipeline;
use switchyard::image::decode::DecodeLimits;
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::{kv, BackendBox, BackendConfig};
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, root, temp_dir};

const HALF_MIN_COSINE: f32 = 0.999;

use switchyard_tests::{clip_model_dir as clip_dir, venv_python as python};

fn cpu_backend(dtype: &str) -> Arc<BackendBox> {
    let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu)).expect("cpu plugin loads");
    let config = BackendConfig { extra: kv([("dtype", dtype)]), ..BackendConfig::default() };
    Arc::new(loaded.open(&config).expect("cpu plugin opens"))
}

fn parity_images(dir: &Path) -> Vec<PathBuf> {
    let out = Command::new(python())
        .args(["tools/reference/make_parity_images.py", dir.to_str().unwrap()])
        .current_dir(root())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "make_parity_images.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect()
}

fn texts() -> Vec<String> {
    let mut out: Vec<String> = [
        "",
        "a photo of a cat",
        "A blurry picture of the red car at night.",
        "an oil painting of a mountain lake, very detailed, trending on artstation, 4k, highly detailed, sharp focus",
        "东京的街道",
        "🐶 puppy",
        "12345",
    ]
    .map(String::from)
    .into();
    out.extend((0..25).map(|i| format!("photo number {i} of {} things", i * 7)));
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

/// Embeds the images (batches of 8) and texts (batches of 16) through the TorchScript towers.
fn embed(pipeline: &ClipPipeline, images: &[Vec<f32>], texts: &[String]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut out_i = Vec::new();
    for chunk in images.chunks(8) {
        let refs: Vec<&[f32]> = chunk.iter().map(Vec::as_slice).collect();
        out_i.extend(pipeline.embed_prepared(&refs).expect("embed images"));
    }
    let mut out_t = Vec::new();
    for chunk in texts.chunks(16) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        out_t.extend(pipeline.embed_texts(&refs).expect("embed texts"));
    }
    (out_i, out_t)
}

/// Min and median cosine of each row against float32; the failures below the bar.
fn compare(what: &str, ours: &[Vec<f32>], reference: &[Vec<f32>]) -> Vec<String> {
    assert_eq!(ours.len(), reference.len(), "{what}: row count");
    let mut c: Vec<f32> = ours.iter().zip(reference).map(|(a, b)| cosine(a, b)).collect();
    let failures: Vec<String> = c
        .iter()
        .enumerate()
        .filter(|(_, &v)| v.is_nan() || v < HALF_MIN_COSINE)
        .map(|(i, v)| format!("{what} row {i}: cosine {v}"))
        .collect();
    c.sort_by(f32::total_cmp);
    eprintln!("{what}: {} rows vs float32, min cosine {:.7}, median {:.7}", c.len(), c[0], c[c.len() / 2]);
    failures
}

#[test]
fn torchscript_towers_run_in_float16_and_bfloat16_on_the_cpu() {
    let dir = clip_dir();
    let images = parity_images(&temp_dir("clip-dtypes").join("images"));
    assert!(images.len() >= 20, "only {} parity images", images.len());
    let texts = texts();
    let load = |dtype: &str| {
        ClipPipeline::load(cpu_backend(dtype), &dir, ClipEngine::Torchscript, None, DecodeLimits::default())
            .unwrap_or_else(|e| panic!("TorchScript CLIP in {dtype}: {}", switchyard_core::guard::error_chain(&e)))
    };
    let full = load("float32");
    let prepared: Vec<Vec<f32>> =
        images.iter().map(|p| full.prepare_image(&std::fs::read(p).unwrap()).unwrap()).collect();
    let (ref_images, ref_texts) = embed(&full, &prepared, &texts);
    drop(full);
    let mut failures = Vec::new();
    for dtype in ["bfloat16", "float16"] {
        let (ours_i, ours_t) = embed(&load(dtype), &prepared, &texts);
        failures.extend(compare(&format!("{dtype} images"), &ours_i, &ref_images));
        failures.extend(compare(&format!("{dtype} texts"), &ours_t, &ref_texts));
    }
    assert!(failures.is_empty(), "rows below {HALF_MIN_COSINE}:\n{}", failures.join("\n"));
}

#[test]
fn an_export_for_float32_only_is_refused_in_float16_with_the_command_that_remakes_it() {
    // A format-2 export: config.json without `torchscript_dtypes`, traces of
    // open_clip's own modules (casts to float32 frozen in). The files are
    // today's; the refusal comes from config.json, before any file is read.
    let dir = clip_dir();
    let old = temp_dir("clip-dtypes-old").join("clip/ViT-B-32");
    std::fs::create_dir_all(&old).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let map = config.as_object_mut().unwrap();
    map.remove("torchscript_dtypes");
    map.insert("export_format_version".into(), 2.into());
    std::fs::write(old.join("config.json"), serde_json::to_string_pretty(&config).unwrap()).unwrap();
    for file in ["visual.pt", "textual.pt", "bpe_simple_vocab_16e6.txt.gz"] {
        std::os::unix::fs::symlink(dir.join(file), old.join(file)).unwrap();
    }
    let err = ClipPipeline::load(cpu_backend("float16"), &old, ClipEngine::Torchscript, None, DecodeLimits::default())
        .err()
        .expect("a float32-only export does not load in float16");
    let message = switchyard_core::guard::error_chain(&err);
    eprintln!("{message}");
    for needle in [
        "visual.pt",
        "exported for float32 only, not float16",
        "python tools/export_clip.py --model ViT-B-32",
        "DTYPE=float32",
    ] {
        assert!(message.contains(needle), "the error does not say {needle:?}: {message}");
    }
    // the same export in float32 loads
    ClipPipeline::load(cpu_backend("float32"), &old, ClipEngine::Torchscript, None, DecodeLimits::default())
        .unwrap_or_else(|e| panic!("float32: {}", switchyard_core::guard::error_chain(&e)));
}

#[test]
fn traces_hold_no_dtype_constants_and_no_shape_arithmetic() {
    let out = Command::new(python())
        .args(["tools/check_traces.py", clip_dir().to_str().unwrap()])
        .current_dir(root())
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "tools/check_traces.py found faults:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("visual.pt: 0 faults") && stdout.contains("textual.pt: 0 faults"), "{stdout}");
}
