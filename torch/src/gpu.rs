//! What a companion's backend asks of its device through the libtorch
//! bridge ([`crate::bridge`]): the allocator's figures, releasing its cache
//! after an unload, and the CUDA precision switches.
//!
//! Every companion builds the same bridge; [`GpuDevice`] decides per device
//! which call applies, so the CPU companion answers "not a GPU"
//! ([`GpuError::NotAGpu`]) without calling into libtorch at all, and a
//! libtorch failure comes back as [`GpuError::Libtorch`] with its message.

use switchyard_core::abi::{BackendConfig, BackendError, ErrorCode};
use switchyard_core::memory::{memory_key, MemoryKind};
use switchyard_core::settings::parse_bool_flag;

use crate::bridge::{self, CudaFlags, MemoryFigures};

/// A bridge call that could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The backend runs on the CPU: there is no device allocator to ask.
    #[error("{what} needs a GPU and `{device}` is not one (only CUDA and MPS devices have a device allocator)")]
    NotAGpu { device: String, what: &'static str },
    /// libtorch threw; `message` is what it said (and which call it was).
    #[error("libtorch failed on `{device}`: {message}")]
    Libtorch { device: String, message: String },
    /// libtorch did not keep a setting that was just made.
    #[error("libtorch did not keep the CUDA settings: asked {asked:?}, reads back {got:?}")]
    NotKept { asked: CudaFlags, got: CudaFlags },
    /// A setting passed by the host is not a boolean.
    #[error(transparent)]
    BadSetting(#[from] switchyard_core::settings::BoolFlagError),
}

impl From<GpuError> for BackendError {
    fn from(e: GpuError) -> Self {
        let code = match e {
            GpuError::NotAGpu { .. } => ErrorCode::UNSUPPORTED,
            GpuError::BadSetting(_) => ErrorCode::INVALID_INPUT,
            GpuError::Libtorch { .. } | GpuError::NotKept { .. } => ErrorCode::INTERNAL,
        };
        BackendError::new(code, e.to_string())
    }
}

/// The device of a backend, as the bridge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuDevice {
    Cpu,
    Cuda(i32),
    Mps,
}

impl GpuDevice {
    /// The bridge's view of a tch device (any other kind counts as the CPU).
    pub fn of(device: tch::Device) -> Self {
        match device {
            tch::Device::Cuda(i) => GpuDevice::Cuda(i as i32),
            tch::Device::Mps => GpuDevice::Mps,
            _ => GpuDevice::Cpu,
        }
    }

    /// `cpu`, `cuda:N`, `mps`.
    pub fn label(self) -> String {
        match self {
            GpuDevice::Cpu => "cpu".into(),
            GpuDevice::Cuda(i) => format!("cuda:{i}"),
            GpuDevice::Mps => "mps".into(),
        }
    }

    fn libtorch(self) -> impl Fn(cxx::Exception) -> GpuError {
        move |e| GpuError::Libtorch { device: self.label(), message: e.what().to_string() }
    }

    /// The allocator's figures now.
    pub fn memory(self) -> Result<MemoryFigures, GpuError> {
        match self {
            GpuDevice::Cpu => Err(GpuError::NotAGpu { device: self.label(), what: "device memory figures" }),
            GpuDevice::Cuda(i) => bridge::cuda_memory(i).map_err(self.libtorch()),
            GpuDevice::Mps => bridge::mps_memory().map_err(self.libtorch()),
        }
    }

    /// Hands the allocator's unused cache back to the driver and restarts
    /// the peak (CUDA); returns the bytes released (reserved before minus after).
    pub fn release_cache(self) -> Result<u64, GpuError> {
        let before = self.memory()?;
        match self {
            GpuDevice::Cpu => return Err(GpuError::NotAGpu { device: self.label(), what: "a cache release" }),
            GpuDevice::Cuda(i) => {
                bridge::cuda_empty_cache().map_err(self.libtorch())?;
                bridge::cuda_reset_peak(i).map_err(self.libtorch())?;
            }
            GpuDevice::Mps => bridge::mps_empty_cache().map_err(self.libtorch())?,
        }
        Ok(before.reserved.saturating_sub(self.memory()?.reserved))
    }

    /// The `extra` pairs for this device's figures, or the error's.
    pub fn memory_report(self) -> Vec<(String, String)> {
        let device = self.label();
        match self.memory() {
            Ok(m) => {
                let mut out = vec![
                    (memory_key(&device, MemoryKind::Allocated), m.allocated.to_string()),
                    (memory_key(&device, MemoryKind::Reserved), m.reserved.to_string()),
                ];
                if m.has_peak {
                    out.push((memory_key(&device, MemoryKind::Peak), m.peak.to_string()));
                }
                out
            }
            Err(GpuError::NotAGpu { .. }) => Vec::new(),
            Err(e) => vec![(switchyard_core::memory::MEMORY_ERROR_KEY.to_string(), e.to_string())],
        }
    }
}

/// `SWITCHYARD_CUDA_TF32` and `SWITCHYARD_CUDNN_BENCHMARK`, as the host
/// passes them (`cuda_tf32`, `cudnn_benchmark` in the backend config).
/// Both default to off: float32 stays IEEE float32 in matmuls and
/// convolutions (libtorch's own default lets cuDNN convolutions use TF32),
/// and cuDNN picks kernels without timing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CudaSettings {
    /// TF32 in float32 matmuls (cuBLAS) and convolutions (cuDNN).
    pub tf32: bool,
    /// cuDNN benchmark mode.
    pub cudnn_benchmark: bool,
}

impl CudaSettings {
    /// Reads the settings from a backend config (absent: off).
    pub fn from_config(config: &BackendConfig) -> Result<Self, GpuError> {
        Ok(CudaSettings {
            tf32: parse_bool_flag("SWITCHYARD_CUDA_TF32", config.get("cuda_tf32").unwrap_or(""))?,
            cudnn_benchmark: parse_bool_flag(
                "SWITCHYARD_CUDNN_BENCHMARK",
                config.get("cudnn_benchmark").unwrap_or(""),
            )?,
        })
    }

    /// Sets them in libtorch (process-wide) and checks they were kept.
    pub fn apply(self) -> Result<CudaFlags, GpuError> {
        let asked = CudaFlags { tf32_matmul: self.tf32, tf32_cudnn: self.tf32, cudnn_benchmark: self.cudnn_benchmark };
        let libtorch = |e: cxx::Exception| GpuError::Libtorch { device: "cuda".into(), message: e.what().to_string() };
        bridge::set_cuda_flags(asked.tf32_matmul, asked.tf32_cudnn, asked.cudnn_benchmark).map_err(libtorch)?;
        let got = bridge::cuda_flags().map_err(libtorch)?;
        if got != asked {
            return Err(GpuError::NotKept { asked, got });
        }
        Ok(got)
    }
}

/// The CUDA switches as libtorch holds them now, as `extra` pairs
/// ([`switchyard_core::memory::SETTING_KEYS`]).
pub fn cuda_flags_report() -> Vec<(String, String)> {
    match bridge::cuda_flags() {
        Ok(f) => [f.tf32_matmul, f.tf32_cudnn, f.cudnn_benchmark]
            .iter()
            .zip(switchyard_core::memory::SETTING_KEYS)
            .map(|(v, k)| (k.to_string(), v.to_string()))
            .collect(),
        Err(e) => vec![("cuda_settings_error".into(), e.what().to_string())],
    }
}
