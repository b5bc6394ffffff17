//! backend-cpu: the plugin that is always available. ONNX Runtime's CPU
//! execution provider; libtorch on the CPU through its torch companion
//! (`companions/torch-cpu`), loaded only with the first TorchScript model so
//! that ONNX-only work never pays for libtorch.

use switchyard_core::abi::{kv, BackendConfig, BackendError, ProbeReport};
use switchyard_core::settings::ExecutionProvider;
use switchyard_core::DeviceKind;
use switchyard_engine::backend::EngineBackend;
use switchyard_engine::common::engine_config;
use switchyard_engine::companion::TorchLink;
use switchyard_plugin_sdk::device::cpu_probe;
use switchyard_plugin_sdk::plugin::Flavor;

/// The CPU flavor.
pub struct Cpu;

impl Flavor for Cpu {
    const KIND: DeviceKind = DeviceKind::Cpu;
    type Backend = EngineBackend;

    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            n => n as usize,
        };
        Ok(cpu_probe(threads, kv([("onnx_providers_default", "CPUExecutionProvider")])))
    }

    fn open(config: &BackendConfig) -> Result<EngineBackend, BackendError> {
        let torch = TorchLink::lazy(Self::KIND, config);
        Ok(EngineBackend::new(engine_config(config, "cpu".into(), &[ExecutionProvider::Cpu], torch)))
    }
}

switchyard_plugin_sdk::export_plugin!(Cpu, switchyard_engine::EngineFacts);
