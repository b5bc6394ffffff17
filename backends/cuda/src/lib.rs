//! backend-cuda: ONNX Runtime (CUDA execution provider) and libtorch on
//! `cuda:N` through the torch companion (`backends/torch-cuda`, which keeps
//! libtorch_cuda linked). Only libtorch can say whether it sees the GPU, so
//! `probe` and `open` load the companion and ask it. On a machine without a
//! usable GPU the plugin loads fine, probes as unavailable with the reason,
//! and refuses `open` with `Unavailable`.

use switchyard_core::abi::{BackendConfig, BackendError, ProbeReport};
use switchyard_core::settings::ExecutionProvider;
use switchyard_core::DeviceKind;
use switchyard_engine::backend::EngineBackend;
use switchyard_engine::common::engine_config;
use switchyard_engine::companion::{self, TorchLink};
use switchyard_engine::plugin::{BuildInfo, Flavor};

/// The CUDA flavor.
pub struct Cuda;

impl Flavor for Cuda {
    const KIND: DeviceKind = DeviceKind::Cuda;
    type Backend = EngineBackend;

    fn build_info() -> BuildInfo {
        switchyard_engine::build_info!()
    }

    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        companion::probe(Self::KIND, config)
    }

    fn open(config: &BackendConfig) -> Result<EngineBackend, BackendError> {
        let index = config.device_index.into_option().unwrap_or(0);
        let torch = TorchLink::open(Self::KIND, config)?;
        Ok(EngineBackend::new(engine_config(config, format!("cuda:{index}"), &[ExecutionProvider::Cuda], torch)))
    }
}

switchyard_engine::export_plugin!(Cuda);
