//! The libtorch bridge in a process that links libtorch (this test binary
//! has a RUNPATH to the build's libtorch, from build.rs; the companions have
//! none). On any machine, GPU or not:
//!
//! - a C++ exception in a bridge call comes back as an error with
//!   libtorch's message, for a c10::Error, a std::exception and a throw of
//!   something that is no std::exception, and the process goes on;
//! - the CPU answers "not a GPU" without calling libtorch;
//! - the CUDA switches are set and read back (libtorch's global context
//!   holds them even without a GPU).

use switchyard_core::abi::BackendConfig;
use switchyard_torch::bridge;
use switchyard_torch::gpu::{CudaSettings, GpuDevice, GpuError};

#[test]
fn a_cxx_exception_in_a_bridge_call_is_an_error_not_an_abort() {
    let c10 = bridge::throw_for_test(0).expect_err("a c10::Error must come back as Err");
    assert!(c10.what().contains("a c10::Error thrown on purpose"), "{}", c10.what());
    assert!(c10.what().starts_with("the bridge's test fixture: "), "the call is named: {}", c10.what());
    assert!(!c10.what().contains("Exception raised from"), "no C++ backtrace: {}", c10.what());
    let bad_alloc = bridge::throw_for_test(1).expect_err("std::bad_alloc must come back as Err");
    assert!(bad_alloc.what().contains("bad_alloc"), "{}", bad_alloc.what());
    let int = bridge::throw_for_test(2).expect_err("a thrown int must come back as Err");
    assert!(int.what().contains("not a std::exception"), "{}", int.what());
    bridge::throw_for_test(3).expect("no throw, no error");
}

#[test]
fn libtorchs_own_exceptions_come_back_as_errors() {
    if cfg!(target_os = "macos") {
        return; // MPS may be there: the calls below would succeed
    }
    // Off macOS libtorch has only its default MPS hooks, which throw.
    let e = bridge::mps_memory().expect_err("the default MPS hooks throw");
    assert!(e.what().contains("without MPS backend"), "{}", e.what());
    let e = GpuDevice::Mps.memory().expect_err("the same through GpuDevice");
    assert!(matches!(&e, GpuError::Libtorch { device, .. } if device == "mps"), "{e:?}");
}

#[test]
fn a_cuda_device_that_does_not_exist_is_an_error() {
    let count = bridge::cuda_device_count().expect("the device count never fails");
    let e = bridge::cuda_memory(count).expect_err("one past the last device");
    assert!(
        e.what().contains(&format!("cuda:{count} does not exist: libtorch sees {count} CUDA device(s)")),
        "{}",
        e.what()
    );
    assert!(bridge::cuda_reset_peak(-1).is_err(), "negative index");
    let e = GpuDevice::Cuda(count).release_cache().expect_err("release on a missing device");
    assert!(e.to_string().contains(&format!("libtorch failed on `cuda:{count}`")), "{e}");
}

#[test]
fn the_cpu_is_not_a_gpu() {
    let e = GpuDevice::Cpu.memory().expect_err("no figures on the CPU");
    assert!(matches!(e, GpuError::NotAGpu { .. }), "{e:?}");
    assert!(e.to_string().contains("`cpu` is not one"), "{e}");
    assert!(GpuDevice::Cpu.release_cache().is_err());
    assert!(GpuDevice::Cpu.memory_report().is_empty(), "the CPU reports no figures and no error");
    assert_eq!(GpuDevice::of(tch::Device::Cpu), GpuDevice::Cpu);
    assert_eq!(GpuDevice::of(tch::Device::Cuda(1)).label(), "cuda:1");
}

#[test]
fn cuda_switches_are_set_and_read_back() {
    // One test touches the global context, so no other test races it.
    let on = CudaSettings { tf32: true, cudnn_benchmark: true };
    let flags = on.apply().expect("set and read back");
    assert!(flags.tf32_matmul && flags.tf32_cudnn && flags.cudnn_benchmark, "{flags:?}");
    let off = CudaSettings::from_config(&BackendConfig::default()).expect("absent: the defaults");
    assert_eq!(off, CudaSettings { tf32: false, cudnn_benchmark: false }, "both default to off");
    let flags = off.apply().expect("set and read back");
    assert!(!flags.tf32_matmul && !flags.tf32_cudnn && !flags.cudnn_benchmark, "{flags:?}");
    let report = switchyard_torch::gpu::cuda_flags_report();
    assert_eq!(
        report,
        vec![
            ("cuda_tf32_matmul".to_string(), "false".to_string()),
            ("cuda_tf32_cudnn".to_string(), "false".to_string()),
            ("cudnn_benchmark".to_string(), "false".to_string()),
        ]
    );
    let bad = BackendConfig { extra: switchyard_core::abi::kv([("cuda_tf32", "maybe")]), ..Default::default() };
    let e = CudaSettings::from_config(&bad).expect_err("not a boolean");
    assert!(e.to_string().contains("`SWITCHYARD_CUDA_TF32=maybe` is not a boolean"), "{e}");
}
