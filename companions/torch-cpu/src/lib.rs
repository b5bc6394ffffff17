//! switchyard-torch-cpu: backend-cpu's torch companion. libtorch on the CPU;
//! loaded by the plugin with the first TorchScript model.

use switchyard_core::abi::{kv, BackendConfig, BackendError, ProbeReport};
use switchyard_core::DeviceKind;
use switchyard_plugin_sdk::device::cpu_probe;
use switchyard_plugin_sdk::plugin::Flavor;
use switchyard_torch::TorchBackend;

/// libtorch on the CPU.
pub struct TorchCpu;

impl Flavor for TorchCpu {
    const KIND: DeviceKind = DeviceKind::Cpu;
    type Backend = TorchBackend;

    fn probe(_config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        Ok(cpu_probe(tch::get_num_threads().max(1) as usize, kv::<&str, &str>([])))
    }

    fn open(config: &BackendConfig) -> Result<TorchBackend, BackendError> {
        Ok(TorchBackend::new(config, tch::Device::Cpu, "cpu".into(), "float32")?)
    }
}

switchyard_plugin_sdk::export_plugin!(TorchCpu);
