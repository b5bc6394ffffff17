// Shared by the build scripts of the three plugins and their three torch
// companions through `include!`: record what each was built against.
//
// - No RUNPATH and no path of the build machine goes into any plugin or
//   companion: the plugin finds libtorch and ONNX Runtime when it loads
//   (switchyard_core::runtimes) and opens libtorch by full path before the
//   companion, so the same files work on any machine at any path.
// - `Torch::LinkedKeepCuda`: link libtorch_cuda with --no-as-needed, or
//   libtorch's CUDA hooks never register and tch reports no GPU.
// - SWITCHYARD_TORCH_VERSION / _TARGET / _PROFILE for describe(); the torch
//   version is what the runtime search checks at load time.

/// How the crate being built uses libtorch.
#[allow(dead_code)]
#[derive(PartialEq)]
enum Torch {
    /// A plugin: no libtorch in it (its companion has it).
    NotLinked,
    /// A companion on the CPU or MPS.
    Linked,
    /// The CUDA companion: libtorch_cuda must stay linked.
    LinkedKeepCuda,
}

fn plugin_build(torch: Torch) {
    println!("cargo:rerun-if-changed=../../plugin-sdk/plugin_build.rs");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").expect(
        "torch-sys did not report its libtorch folder; build through ci/build.sh (it sets LIBTORCH_USE_PYTORCH=1 and the venv)",
    );
    let lib_dir = std::path::Path::new(&lib);
    if torch == Torch::LinkedKeepCuda && lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    // The wheel's torch/version.py holds `__version__ = '2.11.0+cu130'`.
    let version_py = lib_dir.parent().map(|p| p.join("version.py"));
    if let Some(text) = version_py.and_then(|p| std::fs::read_to_string(p).ok()) {
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("__version__ = "))
            .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string());
        if let Some(v) = version {
            println!("cargo:rustc-env=SWITCHYARD_TORCH_VERSION={v}");
        }
    }
    for (key, var) in [("SWITCHYARD_TARGET", "TARGET"), ("SWITCHYARD_PROFILE", "PROFILE")] {
        if let Ok(v) = std::env::var(var) {
            println!("cargo:rustc-env={key}={v}");
        }
    }
}
