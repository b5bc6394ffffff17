//! switchyard-torch-cpu: backend-cpu's torch companion. libtorch on the CPU;
//! loaded by the plugin with the first TorchScript model.

use switchyard_core::abi::{kv, BackendConfig, BackendError, DeviceInfo, ProbeReport};
use switchyard_core::DeviceKind;
use switchyard_engine::plugin::{BuildInfo, Flavor};
use switchyard_torch::TorchBackend;

/// libtorch on the CPU.
pub struct TorchCpu;

impl Flavor for TorchCpu {
    const KIND: DeviceKind = DeviceKind::Cpu;
    type Backend = TorchBackend;

    fn build_info() -> BuildInfo {
        switchyard_engine::build_info!()
    }

    fn probe(_config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        Ok(ProbeReport {
            available: true,
            reason: "the CPU is always available".into(),
            devices: vec![DeviceInfo {
                index: 0,
                name: "cpu".into(),
                total_memory: 0,
                extra: kv([("threads", tch::get_num_threads().to_string())]),
            }]
            .into(),
            extra: kv::<&str, &str>([]),
        })
    }

    fn open(config: &BackendConfig) -> Result<TorchBackend, BackendError> {
        Ok(TorchBackend::new(config, tch::Device::Cpu, "cpu".into(), "float32")?)
    }
}

switchyard_engine::export_plugin!(TorchCpu);
