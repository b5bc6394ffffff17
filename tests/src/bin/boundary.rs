//! `boundary`: what one call across the plugin ABI costs, next to the work it
//! carries. Loads the built CPU plugin the way the host does, then times
//!
//! - `health()`: a bare round trip through the `#[sabi_trait]` vtable and back
//!   (an `RResult`), the fixed price of every call;
//! - `run()` on the contract tests' tiny model (models/test/tiny_cnn.onnx): the
//!   ABI plus ONNX Runtime's own per-call overhead on almost no compute, an
//!   upper bound on what the boundary adds to a real call (the input crosses
//!   as a borrowed slice, the output comes back as one `RVec` copy);
//! - a batch-1 CLIP image embedding (ONNX), the smallest real call.
//!
//! Prints one JSON line (medians), read by tools/bench.py:
//!
//!     boundary --model-dir models/clip/ViT-B-32 --threads 2

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use abi_stable::std_types::RSlice;
use clap::Parser;
use switchyard::clip::model::ClipEngine;
use switchyard::clip::pipeline::ClipPipeline;
use switchyard::image::decode::DecodeLimits;
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::{kv, BackendConfig, DType, ModelSpec, TensorView};
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, test_models};

#[derive(Debug, Parser)]
struct Args {
    /// The CLIP model folder (tools/export_clip.py).
    #[arg(long, env = "BOUNDARY_MODEL_DIR", default_value = "models/clip/ViT-B-32")]
    model_dir: PathBuf,
    /// Intra-op threads for the backend.
    #[arg(long, env = "SWITCHYARD_THREADS", default_value_t = 0)]
    threads: u32,
    /// Timed image embeddings (the median is reported).
    #[arg(long, env = "BOUNDARY_IMAGES", default_value_t = 15)]
    images: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds per call of `f`, over `rounds` rounds of `per_round` calls.
fn time_per_call(rounds: usize, per_round: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..per_round {
                    f();
                }
                t.elapsed().as_secs_f64() / per_round as f64
            })
            .collect(),
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let loaded = LoadedPlugin::load(&plugin(DeviceKind::Cpu))?;
    let config = BackendConfig { threads: args.threads, ..BackendConfig::default() };
    let backend = Arc::new(loaded.open(&config)?);

    let health = time_per_call(7, 100_000, || backend.health().into_result().expect("health"));

    let dir = test_models();
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json"))?)?;
    let shape: Vec<i64> = meta["input_shape"].as_array().into_iter().flatten().filter_map(|v| v.as_i64()).collect();
    let input = vec![0.5f32; shape.iter().product::<i64>() as usize];
    let spec = ModelSpec {
        name: "tiny_cnn".into(),
        path: dir.join("tiny_cnn.onnx").display().to_string().into(),
        format: "onnx".into(),
        options: kv::<&str, &str>([]),
    };
    let tiny = backend.load_model(&spec).into_result()?;
    let view = TensorView {
        dtype: DType::F32.code(),
        shape: RSlice::from_slice(&shape),
        data: RSlice::from_slice(bytemuck::cast_slice(&input)),
    };
    let tiny_run = time_per_call(7, 2_000, || {
        backend.run(tiny.handle, RSlice::from_slice(std::slice::from_ref(&view))).into_result().expect("run");
    });

    let clip = ClipPipeline::load(backend.clone(), &args.model_dir, ClipEngine::Onnx, None, DecodeLimits::default())?;
    let s = clip.model.config.image_size;
    let pixels = vec![0.1f32; 3 * s * s];
    let image = time_per_call(args.images, 1, || {
        clip.embed_prepared(&[&pixels]).expect("embed");
    });

    let out = serde_json::json!({
        "health_ns": health * 1e9,
        "tiny_run_us": tiny_run * 1e6,
        "tiny_input_shape": shape,
        "image_ms": image * 1e3,
        "share_percent": tiny_run / image * 100.0,
        "health_share_percent": health / image * 100.0,
    });
    println!("{out}");
    Ok(())
}
