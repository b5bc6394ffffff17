//! Pieces the three flavors share: the engine config.

use switchyard_core::abi::BackendConfig;
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
            spinning: config.get("ort_spinning") == Some("true"),
            providers: plan(&requested, default_providers),
            cuda_device: config.device_index.into_option().unwrap_or(0) as i32,
        },
    }
}
