//! backend-cuda: ONNX Runtime (CUDA execution provider) and libtorch on
//! `cuda:N` through the torch companion (`companions/torch-cuda`, which keeps
//! libtorch_cuda linked). Only libtorch can say whether it sees the GPU, so
//! `probe` and `open` load the companion and ask it, once the NVIDIA driver
//! library is known to load. On a machine without a
//! usable GPU the plugin loads fine, probes as unavailable with the reason,
//! and refuses `open` with `Unavailable`.

use switchyard_core::abi::{BackendConfig, BackendError, ProbeReport};
use switchyard_core::settings::ExecutionProvider;
use switchyard_core::DeviceKind;
use switchyard_engine::backend::EngineBackend;
use switchyard_engine::common::engine_config;
use switchyard_engine::companion::{self, TorchLink};
use switchyard_plugin_sdk::plugin::Flavor;

/// The CUDA flavor.
pub struct Cuda;

/// Why no libtorch could see a GPU here: the NVIDIA driver library cannot
/// be loaded at all. Checked before loading the companion, so a machine
/// without a driver answers in a millisecond instead of mapping libtorch_cuda.
fn driver_missing() -> Option<String> {
    #[cfg(unix)]
    {
        // SAFETY: dlopen of the driver's user-space library; closed at once.
        let handle = unsafe { libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Some(
                "the NVIDIA driver library (libcuda.so.1) cannot be loaded: no driver is installed, or it is not on the loader's path; `nvidia-smi` must work"
                    .into(),
            );
        }
        unsafe { libc::dlclose(handle) };
    }
    None
}

impl Flavor for Cuda {
    const KIND: DeviceKind = DeviceKind::Cuda;
    type Backend = EngineBackend;

    fn probe(config: &BackendConfig) -> Result<ProbeReport, BackendError> {
        // Without a loadable driver no libtorch could see a GPU: don't load it.
        companion::probe(Self::KIND, config, driver_missing())
    }

    fn open(config: &BackendConfig) -> Result<EngineBackend, BackendError> {
        let index = config.device_index.into_option().unwrap_or(0);
        let torch = TorchLink::open(Self::KIND, config, driver_missing())?;
        Ok(EngineBackend::new(engine_config(config, format!("cuda:{index}"), &[ExecutionProvider::Cuda], torch)))
    }
}

switchyard_plugin_sdk::export_plugin!(Cuda, switchyard_engine::EngineFacts);
