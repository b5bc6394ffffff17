//! switchyard-torch-cuda: backend-cuda's torch companion. libtorch on
//! `cuda:N`, with libtorch_cuda kept linked by build.rs (without it libtorch
//! never registers its CUDA hooks and reports no GPU). The plugin loads it to
//! probe and open the device. Opening applies `SWITCHYARD_CUDA_TF32` and
//! `SWITCHYARD_CUDNN_BENCHMARK` (switchyard_torch::gpu::CudaSettings, through
//! the libtorch bridge) before any model loads.

use switchyard_core::abi::{kv, BackendConfig, BackendError, DeviceInfo, ProbeReport};
use switchyard_core::DeviceKind;
use switchyard_plugin_sdk::plugin::Flavor;
use switchyard_torch::gpu::CudaSettings;
use switchyard_torch::TorchBackend;

/// libtorch on CUDA.
pub struct TorchCuda;

fn why_unavailable(index: u32) -> Option<String> {
    if !tch::Cuda::is_available() {
        return Some(
            "libtorch reports no CUDA device (no NVIDIA GPU or driver visible to this process; check `nvidia-smi` and CUDA_VISIBLE_DEVICES)"
                .into(),
        );
    }
    let count = tch::Cuda::device_count();
    if i64::from(index) >= count {
        return Some(format!("cuda:{index} does not exist: libtorch sees {count} CUDA device(s)"));
    }
    None
}

impl Flavor for TorchCuda {
    const KIND: DeviceKind = DeviceKind::Cuda;
    type Backend = TorchBackend;

    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        let index = config.device_index.into_option().unwrap_or(0);
        let reason = why_unavailable(index);
        let count = if reason.is_none() { tch::Cuda::device_count().max(0) as u32 } else { 0 };
        let devices = (0..count)
            .map(|i| DeviceInfo {
                index: i,
                name: format!("cuda:{i}").into(),
                total_memory: 0,
                extra: kv::<&str, &str>([]),
            })
            .collect::<Vec<_>>();
        Ok(ProbeReport {
            available: reason.is_none(),
            reason: reason.unwrap_or_else(|| format!("{count} CUDA device(s) visible to libtorch")).into(),
            devices: devices.into(),
            extra: kv([
                ("cudnn_available", tch::Cuda::cudnn_is_available().to_string()),
                ("onnx_providers_default", "CUDAExecutionProvider,CPUExecutionProvider".to_string()),
            ]),
        })
    }

    fn open(config: &BackendConfig) -> Result<TorchBackend, BackendError> {
        let index = config.device_index.into_option().unwrap_or(0);
        if let Some(reason) = why_unavailable(index) {
            return Err(BackendError::unavailable(reason));
        }
        // Process-wide in libtorch; the backend reports them back in `info`.
        CudaSettings::from_config(config)?.apply()?;
        let device = tch::Device::Cuda(index as usize);
        Ok(TorchBackend::new(config, device, format!("cuda:{index}"), "float16")?)
    }
}

switchyard_plugin_sdk::export_plugin!(TorchCuda);
