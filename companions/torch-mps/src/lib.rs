//! switchyard-torch-mps: backend-mps's torch companion. libtorch on Apple's
//! Metal Performance Shaders; off macOS on Apple silicon it probes as
//! unavailable and refuses `open`.

use switchyard_core::abi::{kv, BackendConfig, BackendError, DeviceInfo, ProbeReport};
use switchyard_core::DeviceKind;
use switchyard_plugin_sdk::device::mps_platform_missing;
use switchyard_plugin_sdk::plugin::Flavor;
use switchyard_torch::TorchBackend;

/// libtorch on MPS.
pub struct TorchMps;

fn why_unavailable() -> Option<String> {
    if let Some(reason) = mps_platform_missing() {
        return Some(reason);
    }
    if !tch::utils::has_mps() {
        return Some("libtorch was built without MPS, or Metal is not available on this Mac".into());
    }
    None
}

impl Flavor for TorchMps {
    const KIND: DeviceKind = DeviceKind::Mps;
    type Backend = TorchBackend;

    fn probe(_config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        let reason = why_unavailable();
        let devices = match reason {
            None => vec![DeviceInfo { index: 0, name: "mps".into(), total_memory: 0, extra: kv::<&str, &str>([]) }],
            Some(_) => vec![],
        };
        Ok(ProbeReport {
            available: reason.is_none(),
            reason: reason.unwrap_or_else(|| "Metal is available".into()).into(),
            devices: devices.into(),
            extra: kv([
                ("mps_built", tch::utils::has_mps().to_string()),
                ("onnx_providers_default", "CoreMLExecutionProvider,CPUExecutionProvider".into()),
            ]),
        })
    }

    fn open(config: &BackendConfig) -> Result<TorchBackend, BackendError> {
        if let Some(reason) = why_unavailable() {
            return Err(BackendError::unavailable(reason));
        }
        Ok(TorchBackend::new(config, tch::Device::Mps, "mps".into(), "float32")?)
    }
}

switchyard_plugin_sdk::export_plugin!(TorchMps);
