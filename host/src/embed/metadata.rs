//! The run metadata file written beside the output: what ran where, why
//! there, on which models, and how it went. The service recorded the same
//! facts per indexing job (device, GPU, timings); this is their successor.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{EmbedSummary, Shard};
use crate::runtime::DeviceReport;

/// The model facts of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ClipFacts {
    pub model: String,
    pub pretrained: Option<String>,
    pub random_weights: bool,
    pub engine: String,
    /// Where the towers run (e.g. `cpu`, `cuda:0`, `CPUExecutionProvider`).
    pub runs_on: String,
}

/// What was asked for and what was skipped.
#[derive(Debug, Clone, Serialize)]
pub struct InputFacts {
    /// Image files found under the given paths.
    pub images_listed: usize,
    /// Of those, in this machine's shard.
    pub images_in_shard: usize,
    /// Of those, already in the output (`--resume`).
    pub images_already_done: usize,
    pub texts: usize,
    pub texts_already_done: usize,
    pub shard: Option<Shard>,
    pub resumed: bool,
}

/// The whole metadata file.
#[derive(Debug, Serialize)]
pub struct RunMetadata<'a> {
    pub switchyard_version: &'static str,
    pub started_unix_s: u64,
    pub finished_unix_s: u64,
    pub command: Vec<String>,
    pub output: PathBuf,
    /// Selected device, why, candidates passed over, plugin and its versions, platform, machine, GPUs, MPS.
    pub device: &'a DeviceReport,
    /// The selected GPU's name and memory, when the device is CUDA.
    pub gpu_name: Option<String>,
    pub gpu_memory_bytes: Option<u64>,
    pub mps_available: bool,
    /// libtorch's allocator figures per device at the end of the run (none on the CPU).
    pub device_memory: Vec<switchyard_core::memory::DeviceMemory>,
    pub clip: Option<ClipFacts>,
    /// The face models, where each runs, whether they are stand-ins.
    pub faces: Option<crate::faces::pipeline::FaceModelInfo>,
    pub inputs: InputFacts,
    pub summary: &'a EmbedSummary,
    /// The signal that stopped the run early (`SIGINT`, `SIGTERM`), if one did.
    pub stopped_by: Option<&'static str>,
}

/// Seconds since the epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl RunMetadata<'_> {
    /// Fills the GPU / MPS / device memory fields from the device report.
    pub fn with_hardware(mut self) -> Self {
        let index = self.device.device.strip_prefix("cuda:").and_then(|i| i.parse::<u32>().ok());
        if let Some(gpu) = index.and_then(|i| self.device.hardware.cuda.devices.iter().find(|d| d.index == i)) {
            self.gpu_name = Some(gpu.name.clone());
            self.gpu_memory_bytes = Some(gpu.total_memory);
        }
        self.mps_available =
            matches!(self.device.hardware.mps, switchyard_core::select::Availability::Available { .. });
        let extra = self.device.backend_extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        self.device_memory = switchyard_core::memory::device_memory(extra);
        self
    }

    /// Writes the file atomically (temp file + rename).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, path)
    }
}
