//! backend-mps: ONNX Runtime (CoreML execution provider) and libtorch on
//! Apple's Metal Performance Shaders through the torch companion
//! (`companions/torch-mps`), which `probe` and `open` load and ask. It builds
//! on every platform so the CI matrix and the contract tests can load it; off
//! macOS on Apple silicon it probes as unavailable and refuses `open`.

use switchyard_core::abi::{BackendConfig, BackendError, ProbeReport};
use switchyard_core::settings::ExecutionProvider;
use switchyard_core::DeviceKind;
use switchyard_engine::backend::EngineBackend;
use switchyard_engine::common::{engine_config, mps_platform_missing};
use switchyard_engine::companion::{self, TorchLink};
use switchyard_engine::plugin::{BuildInfo, Flavor};

/// The MPS flavor.
pub struct Mps;

impl Flavor for Mps {
    const KIND: DeviceKind = DeviceKind::Mps;
    type Backend = EngineBackend;

    fn build_info() -> BuildInfo {
        switchyard_engine::build_info!()
    }

    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        // Off Apple silicon the answer needs no libtorch: don't load it.
        companion::probe(Self::KIND, config, mps_platform_missing())
    }

    fn open(config: &BackendConfig) -> Result<EngineBackend, BackendError> {
        let torch = TorchLink::open(Self::KIND, config, mps_platform_missing())?;
        Ok(EngineBackend::new(engine_config(config, "mps".into(), &[ExecutionProvider::CoreMl], torch)))
    }
}

switchyard_engine::export_plugin!(Mps);
