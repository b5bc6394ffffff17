//! backend-cpu: the plugin that is always available. libtorch on the CPU and
//! ONNX Runtime's CPU execution provider.

use switchyard_core::abi::{kv, BackendConfig, BackendError, DeviceInfo, ProbeReport};
use switchyard_core::settings::ExecutionProvider;
use switchyard_core::DeviceKind;
use switchyard_engine::backend::EngineBackend;
use switchyard_engine::common::engine_config;
use switchyard_engine::plugin::{BuildInfo, Flavor};

/// The CPU flavor.
pub struct Cpu;

impl Flavor for Cpu {
    const KIND: DeviceKind = DeviceKind::Cpu;

    fn build_info() -> BuildInfo {
        switchyard_engine::build_info!()
    }

    fn probe(_config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        let threads = tch::get_num_threads();
        Ok(ProbeReport {
            available: true,
            reason: "the CPU is always available".into(),
            devices: vec![DeviceInfo {
                index: 0,
                name: "cpu".into(),
                total_memory: 0,
                extra: kv([("threads", threads.to_string())]),
            }]
            .into(),
            extra: kv([("onnx_providers_default", "CPUExecutionProvider")]),
        })
    }

    fn open(config: &BackendConfig) -> Result<EngineBackend, BackendError> {
        let cfg = engine_config(config, tch::Device::Cpu, "cpu".into(), "float32", &[ExecutionProvider::Cpu])?;
        Ok(EngineBackend::new(cfg))
    }
}

switchyard_engine::export_plugin!(Cpu);
