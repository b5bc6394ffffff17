//! One test per row of the device-support test matrix, with fake probes.

use super::*;
use test_case::test_case;

fn hw(cuda: u32, mps: bool) -> HardwareFacts {
    HardwareFacts {
        cuda: if cuda > 0 {
            Availability::Available { devices: cuda }
        } else {
            Availability::Unavailable { reason: "libcuda.so.1 not found".into() }
        },
        mps: if mps {
            Availability::Available { devices: 1 }
        } else {
            Availability::Unavailable { reason: "needs macOS on Apple silicon".into() }
        },
    }
}

fn all_plugins() -> Vec<PluginFile> {
    DeviceKind::PREFERENCE
        .iter()
        .map(|k| PluginFile { kind: *k, path: format!("plugins/libbackend_{k}.so").into() })
        .collect()
}

fn settings(device: &str, force_cpu: bool) -> SelectSettings {
    SelectSettings { device: device.parse().unwrap(), force_cpu }
}

fn ok(_: &PluginFile) -> Result<(), String> {
    Ok(())
}

#[test_case(1, false, "auto", false, DeviceSpec::Cuda(Some(0)); "cuda present")]
#[test_case(2, true, "auto", false, DeviceSpec::Cuda(Some(0)); "cuda wins over mps")]
#[test_case(0, true, "auto", false, DeviceSpec::Mps; "mps present")]
#[test_case(0, false, "auto", false, DeviceSpec::Cpu; "neither")]
#[test_case(1, true, "auto", true, DeviceSpec::Cpu; "force cpu")]
#[test_case(1, false, "cpu", false, DeviceSpec::Cpu; "device cpu")]
#[test_case(2, false, "cuda:1", false, DeviceSpec::Cuda(Some(1)); "device cuda index")]
#[test_case(1, false, "cuda", true, DeviceSpec::Cuda(Some(0)); "device wins over force cpu")]
#[test_case(0, true, "mps", true, DeviceSpec::Mps; "device mps wins over force cpu")]
fn selects(cuda: u32, mps: bool, device: &str, force_cpu: bool, expected: DeviceSpec) {
    let got = select(&settings(device, force_cpu), &hw(cuda, mps), &all_plugins(), ok).unwrap();
    assert_eq!(got.device(), expected);
    assert!(got.plugin.to_string_lossy().contains(got.kind.as_str()));
}

#[test]
fn auto_records_why_each_better_device_was_rejected() {
    let got = select(&settings("auto", false), &hw(0, false), &all_plugins(), ok).unwrap();
    assert_eq!(got.kind, DeviceKind::Cpu);
    let reasons: Vec<_> = got.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("cuda unavailable: libcuda.so.1 not found"), "{reasons:?}");
    assert!(reasons[1].contains("mps unavailable: needs macOS"), "{reasons:?}");
    assert!(got.reason.contains("last resort"));
}

#[test]
fn explicit_cuda_without_gpu_is_an_error_not_a_fallback() {
    let err = select(&settings("cuda", false), &hw(0, false), &all_plugins(), ok).unwrap_err();
    assert!(matches!(err, SelectError::DeviceUnavailable { .. }));
    assert!(err.to_string().contains("no CUDA device was found"), "{err}");
}

#[test]
fn explicit_cuda_index_without_gpu_says_no_cuda_device() {
    let err = select(&settings("cuda:7", false), &hw(0, false), &all_plugins(), ok).unwrap_err();
    assert!(
        err.to_string().contains("`DEVICE=cuda:7`") && err.to_string().contains("no CUDA device was found"),
        "{err}"
    );
}

#[test]
fn explicit_cuda_index_past_the_last_gpu() {
    let err = select(&settings("cuda:7", false), &hw(2, false), &all_plugins(), ok).unwrap_err();
    assert_eq!(err, SelectError::CudaIndexOutOfRange { requested: DeviceSpec::Cuda(Some(7)), count: 2 });
    assert!(err.to_string().contains("cuda:0 to cuda:1"), "{err}");
}

#[test]
fn explicit_mps_off_apple_is_an_error() {
    let err = select(&settings("mps", false), &hw(1, false), &all_plugins(), ok).unwrap_err();
    assert!(err.to_string().contains("MPS is not available"), "{err}");
}

#[test]
fn a_failing_cuda_plugin_falls_back_to_the_next_candidate() {
    let got = select(&settings("auto", false), &hw(1, true), &all_plugins(), |p| {
        if p.kind == DeviceKind::Cuda {
            Err("open panicked".into())
        } else {
            Ok(())
        }
    })
    .unwrap();
    assert_eq!(got.kind, DeviceKind::Mps);
    assert_eq!(got.rejected.len(), 1);
    assert!(got.rejected[0].reason.contains("open panicked"));
}

#[test]
fn several_files_for_one_kind_are_tried_in_order() {
    let mut plugins = vec![
        PluginFile { kind: DeviceKind::Cpu, path: "a/broken.so".into() },
        PluginFile { kind: DeviceKind::Cpu, path: "a/libbackend_cpu.so".into() },
    ];
    plugins.insert(0, PluginFile { kind: DeviceKind::Cpu, path: "a/not-a-plugin.so".into() });
    let mut tried = Vec::new();
    let got = select(&settings("cpu", false), &hw(0, false), &plugins, |p| {
        tried.push(p.path.clone());
        if p.path.ends_with("libbackend_cpu.so") {
            Ok(())
        } else {
            Err("not a switchyard plugin".into())
        }
    })
    .unwrap();
    assert_eq!(tried.len(), 3);
    assert!(got.plugin.ends_with("libbackend_cpu.so"));
    assert_eq!(got.rejected.len(), 2);
}

#[test]
fn missing_plugin_file_is_reported_and_cpu_still_chosen() {
    let plugins = vec![PluginFile { kind: DeviceKind::Cpu, path: "p/libbackend_cpu.so".into() }];
    let got = select(&settings("auto", false), &hw(1, false), &plugins, ok).unwrap();
    assert_eq!(got.kind, DeviceKind::Cpu);
    assert!(got.rejected[0].reason.contains("no `backend-cuda` plugin file"), "{:?}", got.rejected);
}

#[test]
fn no_usable_cpu_plugin_is_an_error_listing_every_reason() {
    let err = select(&settings("auto", false), &hw(0, false), &[], ok).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("backend-cpu") && msg.contains("cuda unavailable") && msg.contains("mps unavailable"),
        "{msg}"
    );
}

#[test]
fn force_cpu_notes_the_skipped_accelerators() {
    let got = select(&settings("auto", true), &hw(1, true), &all_plugins(), ok).unwrap();
    assert_eq!(got.kind, DeviceKind::Cpu);
    assert!(got.rejected.iter().all(|r| r.reason.contains("FORCE_CPU")));
    assert!(got.reason.contains("FORCE_CPU"));
}
