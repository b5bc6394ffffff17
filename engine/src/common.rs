//! Pieces the three flavors share: the engine config.

use switchyard_core::abi::{kv, BackendConfig, DeviceInfo, KeyValues, ProbeReport};
use switchyard_core::settings::ExecutionProvider;

use crate::backend::EngineConfig;
use crate::companion::TorchLink;
use crate::onnx::OnnxOptions;
use crate::providers::plan;

/// Builds the engine config: ORT options from the host's settings, and the
/// torch companion link (opened by the flavor, or on first use).
pub fn engine_config(
    config: &BackendConfig,
    label: String,
    default_providers: &[ExecutionProvider],
    torch: TorchLink,
) -> EngineConfig {
    let requested: Vec<String> = config.onnx_providers.iter().map(|p| p.to_string()).collect();
    EngineConfig {
        label,
        torch,
        onnx: OnnxOptions {
            threads: config.threads as usize,
            ort_dylib: config.get("ort_dylib").map(str::to_string),
            providers: plan(&requested, default_providers),
            cuda_device: config.device_index.into_option().unwrap_or(0) as i32,
        },
    }
}

/// The CPU's probe: always available, with the thread count it will use.
pub fn cpu_probe(threads: usize, extra: KeyValues) -> ProbeReport {
    ProbeReport {
        available: true,
        reason: "the CPU is always available".into(),
        devices: vec![DeviceInfo {
            index: 0,
            name: "cpu".into(),
            total_memory: 0,
            extra: kv([("threads", threads.to_string())]),
        }]
        .into(),
        extra,
    }
}

/// Why MPS cannot exist on this platform, before asking libtorch; `None` on
/// macOS on Apple silicon.
pub fn mps_platform_missing() -> Option<String> {
    if cfg!(target_os = "macos") && cfg!(target_arch = "aarch64") {
        return None;
    }
    Some(format!("needs macOS on Apple silicon (this is {} {})", std::env::consts::OS, std::env::consts::ARCH))
}
