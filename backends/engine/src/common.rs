//! Pieces the three flavors share: thread setup and the engine config.

use switchyard_core::abi::BackendConfig;

use crate::backend::EngineConfig;
use crate::onnx::OnnxOptions;
use crate::providers::plan;
use crate::torch::parse_dtype;
use crate::EngineError;
use switchyard_core::settings::ExecutionProvider;

/// Builds the engine config for `device`, applying the host's thread count.
pub fn engine_config(
    config: &BackendConfig,
    device: tch::Device,
    label: String,
    default_dtype: &str,
    default_providers: &[ExecutionProvider],
) -> Result<EngineConfig, EngineError> {
    if config.threads > 0 {
        tch::set_num_threads(config.threads as i32);
    }
    let dtype = parse_dtype(config.get("dtype").unwrap_or(default_dtype))?;
    let requested: Vec<String> = config.onnx_providers.iter().map(|p| p.to_string()).collect();
    Ok(EngineConfig {
        device,
        label,
        torch_dtype: dtype,
        onnx: OnnxOptions {
            threads: config.threads as usize,
            ort_dylib: config.get("ort_dylib").map(str::to_string),
            providers: plan(&requested, default_providers),
            cuda_device: config.device_index.into_option().unwrap_or(0) as i32,
        },
    })
}
