//! End-to-end tests of `switchyard embed`: real plugin, real export, real
//! photos; bad inputs become error lines and the run goes on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, plugin_folder, root, site_packages, switchyard_bin, temp_dir};

fn photo(name: &str) -> PathBuf {
    let path = site_packages().join(name);
    assert!(path.exists(), "`{}` is missing; run ci/setup.sh", path.display());
    path
}

fn embed(args: &[&str], env: &[(&str, &str)]) -> Output {
    let plugins = plugin_folder("embed-plugins", &[("libbackend_cpu.so", plugin(DeviceKind::Cpu))]);
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("embed").args(args).arg("--plugin-dir").arg(&plugins).arg("--model-dir").arg(root().join("models"));
    for var in ["DEVICE", "FORCE_CPU", "CLIP_ENGINE", "CLIP_MODEL_NAME", "CLIP_PRETRAINED"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("switchyard runs")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn embeds_images_and_texts_and_reports_bad_files_without_stopping() {
    let dir = temp_dir("cli-embed");
    let corrupt = dir.join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 this is not really a jpeg").unwrap();
    let texts = dir.join("texts.txt");
    std::fs::write(&texts, "a photo of a cat\nmountains at dawn\n").unwrap();
    let out = dir.join("out.jsonl");
    let astronaut = photo("skimage/data/astronaut.png");
    let group = photo("insightface/data/images/t1.jpg");
    let o = embed(
        &[
            astronaut.to_str().unwrap(),
            corrupt.to_str().unwrap(),
            group.to_str().unwrap(),
            "--text",
            "a dog",
            "--texts-file",
            texts.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "exit 3 when some inputs failed: {stderr}");
    assert!(stderr.contains("embedded 2 images (1 errors, 0 faces) and 3 texts on cpu"), "{stderr}");
    assert!(stderr.contains("images/s") && stderr.contains("RANDOM"), "{stderr}");
    let records = lines(&out);
    assert_eq!(records.len(), 6);
    let texts: Vec<&Value> = records.iter().filter(|r| r["type"] == "text").collect();
    assert_eq!(
        texts.iter().map(|r| r["text"].as_str().unwrap()).collect::<Vec<_>>(),
        ["a dog", "a photo of a cat", "mountains at dawn"]
    );
    let images: Vec<&Value> = records.iter().filter(|r| r["type"] == "image").collect();
    assert!(images[0]["path"].as_str().unwrap().ends_with("astronaut.png"), "input order is kept");
    assert!(images[1]["error"].as_str().unwrap().contains("could not be decoded"), "{}", images[1]);
    assert!(images[2]["path"].as_str().unwrap().ends_with("t1.jpg"));
    for r in texts.iter().chain([&images[0], &images[2]]) {
        let e: Vec<f32> = r["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(e.len(), 512);
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}

#[test]
fn both_engines_give_the_same_embeddings() {
    let dir = temp_dir("cli-engines");
    let astronaut = photo("skimage/data/astronaut.png");
    let mut vectors = Vec::new();
    for engine in ["torchscript", "onnx"] {
        let out = dir.join(format!("{engine}.jsonl"));
        let o = embed(
            &[astronaut.to_str().unwrap(), "--text", "a rocket", "--out", out.to_str().unwrap()],
            &[("CLIP_ENGINE", engine)],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        vectors.push(embeddings(&out));
    }
    for (a, b) in vectors[0].iter().zip(&vectors[1]) {
        let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        assert!(cos > 0.99999, "cosine {cos}");
    }
}

fn embeddings(path: &Path) -> Vec<Vec<f32>> {
    lines(path)
        .iter()
        .map(|r| r["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect())
        .collect()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f32::max)
}

/// `CLIP_ENGINE=torchscript-bf16` turns oneDNN's bf16 matmuls on only where oneDNN has AMX:
/// below it (here: oneDNN capped with ONEDNN_MAX_CPU_ISA) the model runs exact float32 and
/// says so, because oneDNN's bf16 mode computes float32 there, slower (docs/benchmarks.md).
#[test]
fn bf16_matmuls_run_only_where_onednn_has_amx() {
    let dir = temp_dir("cli-bf16");
    let astronaut = photo("skimage/data/astronaut.png");
    let run = |name: &str, env: &[(&str, &str)]| {
        let out = dir.join(format!("{name}.jsonl"));
        let o = embed(&[astronaut.to_str().unwrap(), "--text", "a rocket", "--out", out.to_str().unwrap()], env);
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{name}: {stderr}");
        (embeddings(&out), stderr)
    };
    let (exact, _) = run("float32", &[("CLIP_ENGINE", "torchscript")]);
    let (capped, stderr) =
        run("capped", &[("CLIP_ENGINE", "torchscript-bf16"), ("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")]);
    assert!(stderr.contains("running exact float32"), "no note that bf16 is off: {stderr}");
    let diff = max_abs_diff(&exact, &capped);
    assert!(diff < 1e-5, "without AMX the model is float32, yet it differs from it by {diff}");
    let (bf16, stderr) = run("bf16", &[("CLIP_ENGINE", "torchscript-bf16")]);
    if stderr.contains("oneDNN on AMX") {
        let diff = max_abs_diff(&exact, &bf16);
        assert!(diff > 1e-5, "bf16 matmuls on AMX give float32's numbers to {diff}: the switch did nothing");
        for (a, b) in exact.iter().zip(&bf16) {
            let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            assert!(cos > 0.9999, "cosine {cos} to float32");
        }
    } else {
        assert!(stderr.contains("running exact float32"), "{stderr}");
        eprintln!("this CPU has no AMX-BF16: only the float32 fallback was checked");
    }
}

#[test]
fn bad_settings_and_missing_models_are_clear_errors() {
    let o = embed(&["--text", "x"], &[("CLIP_ENGINE", "tensorrt")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`CLIP_ENGINE=tensorrt` is not an engine"));
    let o = embed(&["--text", "x"], &[("CLIP_MODEL_NAME", "ViT-H-14")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ViT-H-14") && err.contains("tools/export_clip.py --model ViT-H-14"), "{err}");
    let o = embed(&["--text", "x"], &[("CLIP_PRETRAINED", "laion2b_s34b_b79k")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("CLIP_PRETRAINED=laion2b_s34b_b79k"));
    let o = embed(&[], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to embed"));
}

#[test]
fn faces_alone_or_with_clip() {
    let dir = temp_dir("cli-faces");
    let group = photo("insightface/data/images/t1.jpg");
    for (flags, clip) in [(vec!["--faces"], false), (vec!["--faces", "--clip"], true)] {
        let out = dir.join("faces.jsonl");
        let mut args = vec![group.to_str().unwrap(), "--out", out.to_str().unwrap()];
        args.extend(flags.iter().copied());
        let o = embed(&args, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r = &lines(&out)[0];
        assert_eq!(r["embedding"].is_array(), clip, "{flags:?}");
        let faces = r["faces"].as_array().unwrap();
        assert!(!faces.is_empty(), "the group photo has faces");
        for f in faces {
            assert_eq!(f["bbox"].as_array().unwrap().len(), 4);
            assert_eq!(f["landmarks"].as_array().unwrap().len(), 5);
            assert_eq!(f["embedding"].as_array().unwrap().len(), 512);
        }
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("faces.meta.json")).unwrap()).unwrap();
        assert_eq!(meta["faces"]["detector_device"], "CPUExecutionProvider");
        let sha = meta["device"]["plugin_sha256"].as_str().unwrap();
        assert!(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()), "{sha}");
        assert_eq!(meta["clip"].is_object(), clip);
    }
}
