//! backend-mps: ONNX Runtime (CoreML execution provider) and libtorch on
//! Apple's Metal Performance Shaders through the torch companion
//! (`companions/torch-mps`), which `probe` and `open` load and ask. It builds
//! on every platform so the CI matrix and the contract tests can load it; off
//! macOS on Apple silicon it probes as unavailable and refuses `open`.

use switchyard_core::abi::{BackendConfig, BackendError, ProbeReport};
use switchyard_core::settings::ExecutionProvider;
use switchyard_core::DeviceKind;
use switchyard_engine::backend::EngineBackend;
use switchyard_engine::common::engine_config;
use switchyard_engine::companion::{self, TorchLink};
use switchyard_plugin_sdk::device::mps_platform_missing;
use switchyard_plugin_sdk::plugin::Flavor;

/// The MPS flavor.
pub struct Mps;

impl Flavor for Mps {
    const KIND: DeviceKind = DeviceKind::Mps;
    type Backend = EngineBackend;

    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        // Off Apple silicon the answer needs no libtorch: don't load it.
        companion::probe(Self::KIND, config, mps_platform_missing())
    }

    fn open(config: &BackendConfig) -> Result<EngineBackend, BackendError> {
        let torch = TorchLink::open(Self::KIND, config, mps_platform_missing())?;
        Ok(EngineBackend::new(engine_config(config, "mps".into(), &[ExecutionProvider::CoreMl], torch)))
    }
}

switchyard_plugin_sdk::export_plugin!(Mps, switchyard_engine::EngineFacts);
