//! Contract tests: one function per behaviour, each expanded over every
//! plugin (cpu, cuda, mps). A plugin that is unavailable on this machine must
//! still describe and probe itself without failing, and refuse `open` with
//! `Unavailable`; an available one must run real models and match PyTorch
//! within the tolerance of the place each model ran (contract/tolerance.rs).
//!
//! The tests that run models ([`on_device!`]) are `#[ignore]`d for cuda and
//! mps with the reason, because libtest cannot decide at run time that a
//! test was skipped: on a machine without the device they could only check
//! the refusal, which `open_matches_probe` checks for every plugin, and
//! would show as passed. So `cargo test` lists them as `ignored, needs ...`;
//! `--include-ignored` runs them (ci/gpu-check.sh does), and where the device
//! is missing each prints `skipped: <kind> is unavailable here (<reason>)`
//! after checking the refusal.
//!
//! `SWITCHYARD_REQUIRE_GPU=1` (ci/gpu-check.sh sets it) makes an unavailable
//! CUDA plugin a failure, and so is an ONNX model of the CUDA plugin that
//! ONNX Runtime put on its CPU provider (it does that when registering the
//! CUDA provider fails, e.g. when a CUDA library is missing).

use abi_stable::std_types::{RSlice, RVec};
use switchyard::plugins::LoadedPlugin;
use switchyard_core::abi::{kv, BackendBox, BackendConfig, DType, ErrorKind, ModelSpec, TensorView, ABI_VERSION};
use switchyard_core::DeviceKind;
use switchyard_tests::{plugin, read_f32, test_models};

#[path = "contract/tolerance.rs"]
mod tolerance;

/// Expands each test over every plugin.
macro_rules! contract {
    ($(#[doc = $doc:literal] fn $name:ident($kind:ident) $body:block)*) => {$(
        #[doc = $doc]
        #[test_case::test_case(DeviceKind::Cpu ; "cpu")]
        #[test_case::test_case(DeviceKind::Cuda ; "cuda")]
        #[test_case::test_case(DeviceKind::Mps ; "mps")]
        fn $name($kind: DeviceKind) $body
    )*};
}

/// Expands each test that runs models over every plugin: on the CPU always,
/// on cuda and mps only with `--include-ignored` (see the header).
macro_rules! on_device {
    ($(#[doc = $doc:literal] fn $name:ident($kind:ident) $body:block)*) => {$(
        #[doc = $doc]
        mod $name {
            use super::*;

            fn body($kind: DeviceKind) $body

            #[test]
            fn cpu() {
                body(DeviceKind::Cpu)
            }

            #[test]
            #[ignore = "runs models on a CUDA GPU; --include-ignored runs it (ci/gpu-check.sh does)"]
            fn cuda() {
                body(DeviceKind::Cuda)
            }

            #[test]
            #[ignore = "runs models on Apple silicon (MPS); --include-ignored runs it"]
            fn mps() {
                body(DeviceKind::Mps)
            }
        }
    )*};
}

fn load(kind: DeviceKind) -> LoadedPlugin {
    LoadedPlugin::load(&plugin(kind)).unwrap_or_else(|e| panic!("{kind} plugin does not load: {e}"))
}

/// Whether this run must see `kind` on real hardware (`SWITCHYARD_REQUIRE_GPU=1`, CUDA only).
fn hardware_required(kind: DeviceKind) -> bool {
    kind == DeviceKind::Cuda && std::env::var("SWITCHYARD_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// Where a model of `kind` must run when [`hardware_required`]: a prefix of `ModelInfo::device`.
fn required_place(kind: DeviceKind, format: &str) -> Option<&'static str> {
    hardware_required(kind).then_some(if format == "onnx" { "CUDAExecutionProvider" } else { "cuda:" })
}

/// Opens the plugin if its probe says available; otherwise asserts `open` refuses with Unavailable.
fn open_if_available(kind: DeviceKind) -> Option<BackendBox> {
    let p = load(kind);
    let cfg = BackendConfig::default();
    let probe = p.probe(&cfg).expect("probe");
    match p.open(&cfg) {
        Ok(backend) => {
            assert!(probe.available, "{kind}: open succeeded although probe said unavailable");
            Some(backend)
        }
        Err(switchyard::plugins::LoadError::Call { source, .. }) => {
            assert!(!probe.available, "{kind}: probe said available but open failed: {source}");
            assert_eq!(source.kind(), ErrorKind::Unavailable, "{kind}: {source}");
            assert!(
                !hardware_required(kind),
                "{kind} is unavailable although SWITCHYARD_REQUIRE_GPU=1: {}",
                probe.reason
            );
            eprintln!("skipped: {kind} is unavailable here ({}); checked that open refuses it", probe.reason);
            None
        }
        Err(e) => panic!("{kind}: {e}"),
    }
}

fn spec(name: &str, file: &str, format: &str) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        path: test_models().join(file).display().to_string().into(),
        format: format.into(),
        options: kv([("dtype", "float32")]),
    }
}

fn f32_view<'a>(shape: &'a [i64], data: &'a [f32]) -> TensorView<'a> {
    TensorView {
        dtype: DType::F32.code(),
        shape: RSlice::from_slice(shape),
        data: RSlice::from_slice(bytemuck::cast_slice(data)),
    }
}

/// Runs the contract model, checks its output against PyTorch's within the
/// tolerance of where it ran, and returns that place.
fn run_reference(kind: DeviceKind, backend: &BackendBox, file: &str, format: &str) -> String {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(test_models().join("meta.json")).unwrap()).unwrap();
    let shape: Vec<i64> = meta["input_shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let input = read_f32(&test_models().join("input.f32"));
    let expected = read_f32(&test_models().join("expected.f32"));
    let info = backend.load_model(&spec(file, file, format)).into_result().expect("load_model");
    let runs_on = info.device.to_string();
    if let Some(place) = required_place(kind, format) {
        assert!(runs_on.starts_with(place), "{kind}: {file} ran on `{runs_on}`, not {place}: {:?}", info.extra);
    }
    let out = backend.run(info.handle, RSlice::from_slice(&[f32_view(&shape, &input)])).into_result().expect("run");
    assert_eq!(out.len(), 1);
    let want: Vec<i64> = meta["output_shape"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(out[0].shape.as_slice(), want.as_slice());
    assert_eq!(out[0].dtype, DType::F32.code());
    let got: &[f32] = bytemuck::cast_slice(out[0].data.as_slice());
    backend.unload(info.handle).into_result().expect("unload");
    let bar = tolerance::for_runs_on(&runs_on);
    match tolerance::check(got, &expected, bar) {
        Ok(diff) => {
            eprintln!("{kind}: {file} on {runs_on}: max abs diff to PyTorch {diff:e} (bar {:e})", bar.max_abs);
            runs_on
        }
        Err(e) => panic!("{kind}: {file} on {runs_on}: {e}"),
    }
}

contract! {
    /// `describe` never fails, and names the device its file is for.
    fn describe_never_fails(kind) {
        let p = load(kind);
        assert_eq!(p.abi, ABI_VERSION);
        let d = p.describe().expect("describe");
        assert_eq!(d.device_kind, kind.as_str());
        assert_eq!(d.name, kind.plugin_name());
        assert!(d.build.iter().any(|(k, v)| k == "torch" && v.starts_with("2.11.0")), "{:?}", d.build);
    }

    /// `probe` never fails or panics, for any device index, and gives a reason.
    fn probe_never_fails(kind) {
        let p = load(kind);
        for index in [None, Some(0), Some(7)] {
            let cfg = BackendConfig { device_index: index.into(), ..Default::default() };
            let r = p.probe(&cfg).unwrap_or_else(|e| panic!("{kind} probe({index:?}) failed: {e}"));
            assert!(!r.reason.is_empty());
        }
    }

    /// An unavailable plugin refuses `open` with Unavailable; an available one opens and is healthy.
    fn open_matches_probe(kind) {
        if let Some(backend) = open_if_available(kind) {
            backend.health().into_result().expect("health");
            assert!(!backend.info().device.is_empty());
        }
    }
}

on_device! {
    /// A TorchScript model gives PyTorch's own output, within 1e-5 on the CPU (contract/tolerance.rs).
    fn torchscript_matches_pytorch(kind) {
        if let Some(backend) = open_if_available(kind) {
            let runs_on = run_reference(kind, &backend, "tiny_cnn.pt", "torchscript");
            assert!(runs_on.starts_with(kind.as_str()), "{kind}: TorchScript ran on {runs_on}");
        }
    }

    /// The torch companion (libtorch) opens with the first TorchScript model; earlier only where the device needs it (CUDA, MPS), never on the CPU.
    fn torch_companion_opens_with_the_first_torchscript_model(kind) {
        if let Some(backend) = open_if_available(kind) {
            let torch_loaded = |b: &BackendBox| {
                let extra = switchyard_core::abi::kv_to_vec(&b.info().extra);
                extra.into_iter().find(|(k, _)| k == "torch_loaded").map(|(_, v)| v)
            };
            let eager = kind != DeviceKind::Cpu;
            assert_eq!(torch_loaded(&backend).as_deref(), Some(if eager { "true" } else { "false" }), "{kind}");
            let info = backend.load_model(&spec("tiny_cnn.pt", "tiny_cnn.pt", "torchscript")).into_result().unwrap();
            assert_eq!(info.engine.as_str(), "torchscript");
            assert_eq!(torch_loaded(&backend).as_deref(), Some("true"), "{kind}");
            backend.health().into_result().expect("health through libtorch");
            backend.unload(info.handle).into_result().expect("unload");
        }
    }

    /// An ONNX model gives PyTorch's own output, within 1e-5 on the CPU provider (contract/tolerance.rs).
    fn onnx_matches_pytorch(kind) {
        if let Some(backend) = open_if_available(kind) {
            run_reference(kind, &backend, "tiny_cnn.onnx", "onnx");
        }
    }

    /// The execution provider an ONNX model runs on is reported, and an unavailable one is skipped with its reason.
    fn onnx_provider_is_reported(kind) {
        let p = load(kind);
        let cfg = BackendConfig { onnx_providers: vec!["CUDAExecutionProvider".into()].into(), ..Default::default() };
        let Ok(backend) = p.open(&cfg) else {
            eprintln!("skipped: {kind} does not open here");
            return;
        };
        let info = backend.load_model(&spec("tiny_cnn.onnx", "tiny_cnn.onnx", "onnx")).into_result().unwrap();
        let notes = switchyard_core::abi::kv_to_vec(&info.extra);
        if info.device.as_str() == "CPUExecutionProvider" {
            assert!(!hardware_required(kind), "{kind}: the CUDA provider was passed over although SWITCHYARD_REQUIRE_GPU=1: {notes:?}");
            let (k, why) = notes.iter().find(|(k, _)| k == "skipped CUDAExecutionProvider").expect("the skip is explained");
            assert!(why.contains("onnxruntime-gpu") || why.contains("failed"), "{k}: {why}");
        } else {
            assert_eq!(info.device.as_str(), "CUDAExecutionProvider");
        }
        assert_eq!(backend.info().onnx_providers.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["CUDAExecutionProvider", "CPUExecutionProvider"]);
    }

    /// Bad inputs are errors of the right kind, never panics or aborts.
    fn bad_inputs_are_errors(kind) {
        let Some(backend) = open_if_available(kind) else { return };
        let missing = ModelSpec { path: "/nonexistent/model.pt".into(), ..spec("missing", "x", "torchscript") };
        assert_eq!(backend.load_model(&missing).into_result().unwrap_err().kind(), ErrorKind::NotFound);
        let odd = spec("odd", "tiny_cnn.pt", "safetensors");
        assert_eq!(backend.load_model(&odd).into_result().unwrap_err().kind(), ErrorKind::Unsupported);
        let none: RVec<TensorView<'_>> = RVec::new();
        assert_eq!(backend.run(9999, none.as_rslice()).into_result().unwrap_err().kind(), ErrorKind::NotFound);
        for (file, format) in [("tiny_cnn.pt", "torchscript"), ("tiny_cnn.onnx", "onnx")] {
            let info = backend.load_model(&spec(file, file, format)).into_result().unwrap();
            // Byte length disagreeing with the shape.
            let short = [1.0f32; 3];
            let e = backend.run(info.handle, RSlice::from_slice(&[f32_view(&[1, 3, 32, 32], &short)])).into_result();
            assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidInput);
            // Well-formed but the wrong rank for the model: the runtime's error, not a crash.
            let flat = [0.5f32; 12];
            let e = backend.run(info.handle, RSlice::from_slice(&[f32_view(&[12], &flat)])).into_result().unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Internal | ErrorKind::InvalidInput), "{file}: {e}");
            backend.unload(info.handle).into_result().unwrap();
        }
    }
}
