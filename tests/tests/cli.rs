//! End-to-end tests of `switchyard probe`: the selection policy through the
//! real binary, real plugins and the failure fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use switchyard_core::DeviceKind;
use switchyard_tests::{fixture, plugin, plugin_folder, switchyard_bin};

fn real_plugins(name: &str) -> PathBuf {
    plugin_folder(
        name,
        &[
            ("libbackend_cpu.so", plugin(DeviceKind::Cpu)),
            ("libbackend_cuda.so", plugin(DeviceKind::Cuda)),
            ("libbackend_mps.so", plugin(DeviceKind::Mps)),
        ],
    )
}

/// Runs `switchyard probe` with a clean selection environment plus `env`.
fn probe(folder: &Path, env: &[(&str, &str)], json: bool) -> Output {
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("probe").arg("--plugin-dir").arg(folder);
    if json {
        cmd.arg("--json");
    }
    for var in ["DEVICE", "FORCE_CPU", "ONNX_PROVIDERS", "SWITCHYARD_PLUGINS", "SWITCHYARD_PLUGIN_DIR"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("switchyard runs")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn has_cuda(report: &Value) -> bool {
    report["hardware"]["cuda"]["devices"].as_array().is_some_and(|d| !d.is_empty())
}

#[test]
fn auto_selects_the_best_device_and_says_why_others_were_rejected() {
    let out = probe(&real_plugins("auto"), &[], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    let selected = r["selection"]["kind"].as_str().unwrap();
    assert_eq!(selected, if has_cuda(&r) { "cuda" } else { "cpu" });
    assert_eq!(r["plugins"].as_array().unwrap().len(), 3);
    if selected == "cpu" {
        let reasons: Vec<&str> =
            r["selection"]["rejected"].as_array().unwrap().iter().map(|x| x["reason"].as_str().unwrap()).collect();
        assert!(reasons.iter().any(|x| x.starts_with("cuda unavailable")), "{reasons:?}");
        assert!(reasons.iter().any(|x| x.starts_with("mps unavailable")), "{reasons:?}");
    }
}

#[test]
fn the_table_names_the_selected_device() {
    let out = probe(&real_plugins("table"), &[("DEVICE", "cpu")], false);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("selected      cpu via"), "{text}");
    assert!(text.contains("libbackend_cuda.so") && text.contains("abi 1.0"), "{text}");
    assert!(text.contains("ONNX models run on CPUExecutionProvider"), "{text}");
}

#[test]
fn onnx_providers_override_is_reported_and_unavailable_ones_are_skipped() {
    let out = probe(&real_plugins("eps"), &[("DEVICE", "cpu"), ("ONNX_PROVIDERS", "cuda")], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    let cpu = r["plugins"].as_array().unwrap().iter().find(|p| p["named_kind"] == "cpu").unwrap();
    let backend = &cpu["backend"];
    assert_eq!(backend["onnx_providers"], serde_json::json!(["CUDAExecutionProvider", "CPUExecutionProvider"]));
    let runs_on = backend["extra"].as_array().unwrap().iter().find(|kv| kv[0] == "onnx_runs_on").unwrap();
    // This ONNX Runtime (the CPU wheel) has no CUDA provider: ONNX models run on the CPU one.
    assert_eq!(runs_on[1], "CPUExecutionProvider");
}

#[test]
fn device_tpu_is_an_error_naming_the_valid_values() {
    let out = probe(&real_plugins("tpu"), &[("DEVICE", "tpu")], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`DEVICE=tpu` is not a device; use auto, cpu, mps, cuda or cuda:N"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_force_cpu_is_an_error() {
    let out = probe(&real_plugins("badforce"), &[("FORCE_CPU", "maybe")], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`FORCE_CPU=maybe` is not a boolean"), "{}", stderr(&out));
}

#[test]
fn bad_cuda_switches_are_errors() {
    for var in ["SWITCHYARD_CUDA_TF32", "SWITCHYARD_CUDNN_BENCHMARK"] {
        let out = probe(&real_plugins(&format!("bad-{var}")), &[(var, "maybe")], false);
        assert_eq!(out.status.code(), Some(2), "{var}");
        assert!(stderr(&out).contains(&format!("`{var}=maybe` is not a boolean")), "{}", stderr(&out));
    }
}

#[test]
fn bad_onnx_providers_is_an_error() {
    let out = probe(&real_plugins("badep"), &[("ONNX_PROVIDERS", "cuda,tensorrt")], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`tensorrt`"), "{}", stderr(&out));
}

#[test]
fn explicit_cuda_without_a_gpu_fails_and_says_so() {
    for device in ["cuda", "cuda:7"] {
        let out = probe(&real_plugins(&device.replace(':', "")), &[("DEVICE", device)], true);
        let r = json(&out);
        if has_cuda(&r) && device == "cuda" {
            assert!(out.status.success());
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{device}");
        let err = r["error"].as_str().unwrap();
        assert!(err.contains(&format!("`DEVICE={device}`")), "{err}");
        if !has_cuda(&r) {
            assert!(err.contains("no CUDA device was found"), "{err}");
        }
    }
}

#[test]
fn force_cpu_and_device_cpu_select_cpu() {
    for env in [[("FORCE_CPU", "true")], [("DEVICE", "cpu")], [("FORCE_CPU", "1")]] {
        let out = probe(&real_plugins("forcecpu"), &env, true);
        assert!(out.status.success(), "{env:?}: {}", stderr(&out));
        assert_eq!(json(&out)["selection"]["kind"], "cpu", "{env:?}");
    }
}

#[test]
fn device_wins_over_force_cpu() {
    // DEVICE=mps with FORCE_CPU=true: DEVICE decides; off Apple silicon that is an error, not cpu.
    let out = probe(&real_plugins("wins"), &[("DEVICE", "mps"), ("FORCE_CPU", "true")], true);
    let r = json(&out);
    if cfg!(all(target_os = "macos", target_arch = "aarch64")) {
        assert_eq!(r["selection"]["kind"], "mps");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(r["error"].as_str().unwrap().contains("`DEVICE=mps`"), "{r}");
    }
    // And DEVICE=cpu with FORCE_CPU=false still selects cpu.
    let out = probe(&real_plugins("wins2"), &[("DEVICE", "cpu"), ("FORCE_CPU", "false")], true);
    assert_eq!(json(&out)["selection"]["kind"], "cpu");
}

#[test]
fn failure_fixtures_are_reported_and_the_host_goes_on_to_the_next_candidate() {
    // Files for one device are tried in name order: the four broken ones first.
    let folder = plugin_folder(
        "fixtures",
        &[
            ("libbackend_cpu-0-not-a-plugin.so", fixture("fixture-not-a-plugin")),
            ("libbackend_cpu-1-abi-major.so", fixture("fixture-abi-major-mismatch")),
            ("libbackend_cpu-2-open-panics.so", fixture("fixture-open-panics")),
            ("libbackend_cpu-3-probe-aborts.so", fixture("fixture-probe-aborts")),
            ("libbackend_cpu.so", plugin(DeviceKind::Cpu)),
        ],
    );
    let out = probe(&folder, &[("DEVICE", "cpu")], true);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json(&out);
    assert!(r["selection"]["plugin"].as_str().unwrap().ends_with("/libbackend_cpu.so"), "{r:#}");
    let failure = |name: &str| -> (String, String) {
        let p = r["plugins"].as_array().unwrap().iter().find(|p| p["path"].as_str().unwrap().ends_with(name)).unwrap();
        let f = &p["failure"];
        (f["stage"].as_str().unwrap_or("").to_string(), f["message"].as_str().unwrap_or("").to_string())
    };
    let (stage, msg) = failure("cpu-0-not-a-plugin.so");
    assert_eq!(stage, "not_a_plugin", "{msg}");
    assert!(msg.contains("is not a switchyard plugin"), "{msg}");
    let (stage, msg) = failure("cpu-1-abi-major.so");
    assert_eq!(stage, "abi_version", "{msg}");
    assert!(msg.contains("speaks plugin ABI 2.0, this host speaks 1.0") && msg.contains("rebuild"), "{msg}");
    let (stage, msg) = failure("cpu-2-open-panics.so");
    assert_eq!(stage, "call", "{msg}");
    assert!(msg.contains("Panicked") && msg.contains("fixture: open always panics"), "{msg}");
    let (stage, msg) = failure("cpu-3-probe-aborts.so");
    assert_eq!(stage, "crashed", "{msg}");
    assert!(msg.contains("SIGABRT") && msg.contains("probe is about to abort"), "{msg}");
    let rejected = r["selection"]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 4, "{rejected:#?}");
}

#[test]
fn a_missing_plugin_folder_is_a_clear_error() {
    let out = probe(Path::new("/nonexistent/plugins"), &[], true);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert!(r["plugin_folder_error"].as_str().unwrap().contains("SWITCHYARD_PLUGIN_DIR"));
    assert!(r["error"].as_str().unwrap().contains("no `backend-cpu` plugin file"), "{r:#}");
}

#[cfg(unix)]
#[test]
fn plugins_writable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    // A file others can write.
    let dir = switchyard_tests::temp_dir("perm-file");
    let file = dir.join("libbackend_cpu-0-writable.so");
    std::fs::copy(fixture("fixture-open-panics"), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::symlink(plugin(DeviceKind::Cpu), dir.join("libbackend_cpu.so")).unwrap();
    let r = json(&probe(&dir, &[("DEVICE", "cpu")], true));
    let p =
        r["plugins"].as_array().unwrap().iter().find(|p| p["path"].as_str().unwrap().ends_with("writable.so")).unwrap();
    assert_eq!(p["failure"]["stage"], "permissions", "{p:#}");
    assert!(p["failure"]["message"].as_str().unwrap().contains("chmod o-w"), "{p:#}");
    assert!(r["selection"]["plugin"].as_str().unwrap().ends_with("/libbackend_cpu.so"), "the next candidate is used");
    // A folder others can write.
    let open = switchyard_tests::temp_dir("perm-dir");
    std::os::unix::fs::symlink(plugin(DeviceKind::Cpu), open.join("libbackend_cpu.so")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = probe(&open, &[("DEVICE", "cpu")], true);
    assert_eq!(out.status.code(), Some(1));
    let r = json(&out);
    assert!(
        r["plugins"][0]["failure"]["message"].as_str().unwrap().contains("its folder is writable by other users"),
        "{r:#}"
    );
}
