//! The host's own hardware probe: what devices exist, found without loading
//! any ML runtime.
//!
//! CUDA: dlopen the driver (`libcuda.so.1` / `nvcuda.dll`) and ask it, which
//! honours `CUDA_VISIBLE_DEVICES` exactly as CUDA does. Apple: Apple silicon
//! plus a Metal device. Both take milliseconds, against about 2 s for
//! `import torch`, so the decision is made before any plugin is opened.

mod apple;
mod cuda;

use std::time::{Duration, Instant};

use serde::Serialize;
use switchyard_core::select::{Availability, HardwareFacts};

pub use cuda::{CudaDevice, CudaReport};

/// Everything the hardware probe found.
#[derive(Debug, Clone, Serialize)]
pub struct HardwareReport {
    /// `linux`, `macos`, `windows`.
    pub platform: &'static str,
    /// `x86_64`, `aarch64`.
    pub machine: &'static str,
    /// The CUDA driver's answer.
    pub cuda: CudaReport,
    /// Apple silicon + Metal.
    pub mps: Availability,
    /// How long the probe took.
    #[serde(serialize_with = "crate::util::millis")]
    pub took: Duration,
}

impl HardwareReport {
    /// The facts the selection policy reads.
    pub fn facts(&self) -> HardwareFacts {
        HardwareFacts { cuda: self.cuda.availability(), mps: self.mps.clone() }
    }
}

/// Probes the machine.
pub fn probe() -> HardwareReport {
    let start = Instant::now();
    let cuda = cuda::probe();
    let mps = apple::probe();
    HardwareReport { platform: std::env::consts::OS, machine: std::env::consts::ARCH, cuda, mps, took: start.elapsed() }
}
