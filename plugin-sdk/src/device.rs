//! Probe answers that depend only on the device kind, so that a plugin and
//! its torch companion (or two vendors' plugins for one kind) give the same.

use switchyard_core::abi::{kv, DeviceInfo, KeyValues, ProbeReport};

/// The CPU's probe: always available, with the thread count it will use.
pub fn cpu_probe(threads: usize, extra: KeyValues) -> ProbeReport {
    ProbeReport {
        available: true,
        reason: "the CPU is always available".into(),
        devices: vec![DeviceInfo {
            index: 0,
            name: "cpu".into(),
            total_memory: 0,
            extra: kv([("threads", threads.to_string())]),
        }]
        .into(),
        extra,
    }
}

/// Why MPS cannot exist on this platform, before asking libtorch; `None` on
/// macOS on Apple silicon.
pub fn mps_platform_missing() -> Option<String> {
    if cfg!(target_os = "macos") && cfg!(target_arch = "aarch64") {
        return None;
    }
    Some(format!("needs macOS on Apple silicon (this is {} {})", std::env::consts::OS, std::env::consts::ARCH))
}
