//! The split between a plugin (ONNX Runtime, loaded on first use) and its
//! torch companion (libtorch): what each file links, that ONNX-only work
//! never maps libtorch, and that a missing companion is a clear error that
//! leaves ONNX models working.

use std::path::Path;
use std::process::{Command, Output};

#[cfg(target_os = "linux")]
use serde_json::Value;
use switchyard_core::DeviceKind;
#[cfg(target_os = "linux")]
use switchyard_tests::torch_companion;
use switchyard_tests::{plugin, root, site_packages, switchyard_bin, temp_dir};

/// The names of the libraries `p` needs, as ldd resolves them (first word
/// of each line; the load addresses are left out, since hex digits can spell
/// `c10`). Linux only, as the two tests that use it: macOS has no ldd
/// (`otool -L` lists install names, not what the loader resolved).
#[cfg(target_os = "linux")]
fn ldd(p: &Path) -> Vec<String> {
    let out = String::from_utf8(Command::new("ldd").arg(p).output().expect("ldd").stdout).unwrap();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| name.rsplit('/').next().unwrap().to_string())
        .collect()
}

#[cfg(target_os = "linux")]
fn links_ml_runtime(libraries: &[String]) -> bool {
    libraries.iter().any(|l| l.starts_with("libtorch") || l.starts_with("libc10") || l.starts_with("libonnxruntime"))
}

#[cfg(target_os = "linux")]
#[test]
fn only_the_companions_link_libtorch_and_the_cuda_one_keeps_libtorch_cuda() {
    let host = ldd(&switchyard_bin());
    assert!(!links_ml_runtime(&host), "{host:?}");
    for kind in [DeviceKind::Cpu, DeviceKind::Cuda, DeviceKind::Mps] {
        let p = ldd(&plugin(kind));
        assert!(!links_ml_runtime(&p), "{kind}: {p:?}");
    }
    let has = |libs: &[String], name: &str| libs.iter().any(|l| l == name);
    let cuda = ldd(&torch_companion(DeviceKind::Cuda));
    assert!(has(&cuda, "libtorch_cuda.so"), "{cuda:?}");
    let cpu = ldd(&torch_companion(DeviceKind::Cpu));
    assert!(has(&cpu, "libtorch_cpu.so") && !has(&cpu, "libtorch_cuda.so"), "{cpu:?}");
}

/// `switchyard inspect-plugin` on the CPU plugin: opens it, checks its health
/// and reports the runtime libraries the child process mapped. Linux only:
/// the list comes from `/proc/self/maps` (host/src/plugins/maps.rs), which
/// macOS does not have, so `runtime_libraries` is absent there.
#[cfg(target_os = "linux")]
fn mapped_after_open(with_companion: bool) -> Vec<String> {
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("inspect-plugin").arg(plugin(DeviceKind::Cpu));
    if with_companion {
        cmd.arg("--with-companion");
    }
    let out = cmd.output().expect("switchyard runs");
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["opened"], true, "{report:#}");
    report["runtime_libraries"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect()
}

#[cfg(target_os = "linux")]
#[test]
fn an_opened_cpu_plugin_maps_onnx_runtime_but_no_libtorch_until_its_companion_loads() {
    let plain = mapped_after_open(false);
    assert!(plain.iter().any(|p| p.contains("libonnxruntime")), "{plain:?}");
    assert!(!plain.iter().any(|p| p.contains("libtorch") || p.contains("libc10")), "{plain:?}");
    let with = mapped_after_open(true);
    assert!(with.iter().any(|p| p.ends_with("libtorch_cpu.so")), "{with:?}");
}

fn embed_one_image(plugins: &Path, engine: &str) -> Output {
    let image = site_packages().join("skimage/data/astronaut.png");
    let mut cmd = Command::new(switchyard_bin());
    cmd.args(["embed", "--out", "/dev/null", "--plugin-dir"])
        .arg(plugins)
        .arg("--model-dir")
        .arg(root().join("models"));
    cmd.arg(image).env("CLIP_ENGINE", engine).env_remove("DEVICE").env_remove("FORCE_CPU");
    cmd.output().expect("switchyard runs")
}

#[test]
fn without_its_companion_a_plugin_refuses_torchscript_clearly_and_still_runs_onnx() {
    // A copy, not a symlink: the plugin looks next to itself and next to the
    // file a symlink points at, and target/ has the companion.
    let dir = temp_dir("no-companion");
    std::fs::copy(plugin(DeviceKind::Cpu), dir.join("libbackend_cpu.so")).unwrap();
    let o = embed_one_image(&dir, "torchscript");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    let companion = format!("libswitchyard_torch_cpu.{}", std::env::consts::DLL_EXTENSION);
    assert!(stderr.contains(&companion) && stderr.contains("not installed next to it"), "{stderr}");
    assert!(stderr.contains("ci/build.sh") && stderr.contains("CLIP_ENGINE=onnx"), "{stderr}");
    let o = embed_one_image(&dir, "onnx");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_companion_that_is_not_a_library_is_a_clear_error() {
    let dir = temp_dir("bad-companion");
    std::fs::copy(plugin(DeviceKind::Cpu), dir.join("libbackend_cpu.so")).unwrap();
    std::fs::write(dir.join(format!("libswitchyard_torch_cpu.{}", std::env::consts::DLL_EXTENSION)), b"not elf")
        .unwrap();
    let o = embed_one_image(&dir, "torchscript");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(stderr.contains("cannot be loaded") && stderr.contains("rebuild the plugin and its companion"), "{stderr}");
}
