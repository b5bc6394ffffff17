//! Device memory figures and GPU settings as they cross the plugin ABI: keys
//! of `BackendInfo::extra`, so no struct changes layout and the ABI version
//! stays 1.0 (an older host ignores the keys, a host meeting an older plugin
//! finds none). The torch companion writes them ([`memory_key`],
//! [`SETTING_KEYS`]); the host reads them back ([`device_memory`]) for
//! `/info`, `/metrics` and the run metadata.
//!
//! Figures are libtorch's caching allocator's, per device: `allocated` (live
//! tensors), `reserved` (allocated plus the allocator's cache, what the
//! driver sees this process hold through libtorch), `peak` (the most
//! allocated since the last reset; CUDA only). ONNX Runtime's own device
//! arena is not in them.

use serde::Serialize;

/// The prefix of every memory key: `device_memory.<device>.<kind>` = bytes.
pub const MEMORY_PREFIX: &str = "device_memory.";
/// Why the figures could not be read (a libtorch error), when they could not.
pub const MEMORY_ERROR_KEY: &str = "device_memory_error";
/// How many times the companion emptied the allocator's cache after an unload.
pub const RELEASES_KEY: &str = "allocator_cache_releases";
/// Bytes those releases handed back to the driver, in all.
pub const RELEASED_BYTES_KEY: &str = "allocator_cache_released_bytes";
/// The CUDA switches as libtorch reports them (`true`/`false`).
pub const SETTING_KEYS: [&str; 3] = ["cuda_tf32_matmul", "cuda_tf32_cudnn", "cudnn_benchmark"];

/// Which figure of a device's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    Allocated,
    Reserved,
    Peak,
}

impl MemoryKind {
    /// Every kind, in report order.
    pub const ALL: [MemoryKind; 3] = [MemoryKind::Allocated, MemoryKind::Reserved, MemoryKind::Peak];

    /// The key and label spelling: `allocated`, `reserved`, `peak`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Allocated => "allocated",
            MemoryKind::Reserved => "reserved",
            MemoryKind::Peak => "peak",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        MemoryKind::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// The key of one figure, e.g. `device_memory.cuda:0.reserved`.
pub fn memory_key(device: &str, kind: MemoryKind) -> String {
    format!("{MEMORY_PREFIX}{device}.{}", kind.as_str())
}

/// One device's figures, in bytes (`None`: libtorch keeps no such figure there).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceMemory {
    pub device: String,
    pub allocated_bytes: Option<u64>,
    pub reserved_bytes: Option<u64>,
    pub peak_bytes: Option<u64>,
}

impl DeviceMemory {
    /// The figure of `kind`.
    pub fn get(&self, kind: MemoryKind) -> Option<u64> {
        match kind {
            MemoryKind::Allocated => self.allocated_bytes,
            MemoryKind::Reserved => self.reserved_bytes,
            MemoryKind::Peak => self.peak_bytes,
        }
    }

    fn set(&mut self, kind: MemoryKind, bytes: u64) {
        let slot = match kind {
            MemoryKind::Allocated => &mut self.allocated_bytes,
            MemoryKind::Reserved => &mut self.reserved_bytes,
            MemoryKind::Peak => &mut self.peak_bytes,
        };
        *slot = Some(bytes);
    }
}

/// The figures in a backend's extra key/values, one entry per device in the
/// order first seen. Keys that do not parse are skipped (a newer plugin may
/// add kinds).
pub fn device_memory<'a>(extra: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<DeviceMemory> {
    let mut out: Vec<DeviceMemory> = Vec::new();
    for (key, value) in extra {
        let Some(rest) = key.strip_prefix(MEMORY_PREFIX) else { continue };
        let Some((device, kind)) = rest.rsplit_once('.') else { continue };
        let (Some(kind), Ok(bytes)) = (MemoryKind::parse(kind), value.trim().parse::<u64>()) else { continue };
        let index = match out.iter().position(|d| d.device == device) {
            Some(i) => i,
            None => {
                out.push(DeviceMemory { device: device.to_string(), ..Default::default() });
                out.len() - 1
            }
        };
        out[index].set(kind, bytes);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_through_keys() {
        let pairs = [
            (memory_key("cuda:0", MemoryKind::Allocated), "100".to_string()),
            (memory_key("cuda:0", MemoryKind::Reserved), "2048".to_string()),
            (memory_key("cuda:0", MemoryKind::Peak), "300".to_string()),
            (memory_key("mps", MemoryKind::Allocated), "7".to_string()),
            ("torch_dtype".to_string(), "F32".to_string()),
        ];
        let got = device_memory(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(
            got,
            vec![
                DeviceMemory {
                    device: "cuda:0".into(),
                    allocated_bytes: Some(100),
                    reserved_bytes: Some(2048),
                    peak_bytes: Some(300)
                },
                DeviceMemory { device: "mps".into(), allocated_bytes: Some(7), ..Default::default() },
            ]
        );
        assert_eq!(got[1].get(MemoryKind::Peak), None);
    }

    #[test]
    fn unknown_kinds_and_bad_numbers_are_skipped() {
        let pairs =
            [("device_memory.cuda:1.pinned", "5"), ("device_memory.cuda:1.reserved", "lots"), ("device_memory.x", "1")];
        assert!(device_memory(pairs).is_empty());
    }
}
