//! The package manifest (`manifest.json`), and the facts about a plugin file
//! that go into it: its platform and the newest glibc symbol version it needs.

use serde::{Deserialize, Serialize};
use switchyard_core::AbiVersion;

/// The manifest format this host writes and reads.
pub const FORMAT: u32 = 1;

/// The manifest's name inside a package.
pub const FILE_NAME: &str = "manifest.json";

/// What a package holds and needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The plugin's name, e.g. `backend-cpu`.
    pub name: String,
    /// `cpu`, `cuda` or `mps`.
    pub device_kind: String,
    /// The plugin's version.
    pub version: String,
    /// The plugin ABI it speaks.
    pub abi: AbiVersion,
    /// `<os>-<arch>`, e.g. `linux-x86_64`.
    pub platform: String,
    /// The Rust target triple it was built for.
    pub target: Option<String>,
    /// The newest `GLIBC_x.y` symbol version any file needs (Linux).
    pub glibc: Option<String>,
    /// The runtimes it needs at load time.
    pub runtimes: RuntimeNeeds,
    /// Every file of the package but the manifest.
    pub files: Vec<FileEntry>,
}

/// The ML runtimes a plugin needs where it lands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeNeeds {
    /// The exact torch release its companion was built against, e.g. `2.11.0+cu130`.
    pub torch: Option<String>,
    /// Whether that torch must be a CUDA build (the CUDA companion).
    pub torch_cuda: bool,
    /// The oldest ONNX Runtime whose C API it can use, e.g. `1.22`.
    pub onnxruntime_min: String,
    /// The ONNX Runtime release it is tested with.
    pub onnxruntime_tested: String,
}

/// One file of a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// A plain file name (no folders).
    pub name: String,
    /// `plugin` or `companion`.
    pub role: String,
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    /// The package file name: `switchyard-backend-<kind>-<version>-<platform>.tar.gz`.
    pub fn package_name(&self) -> String {
        format!("switchyard-backend-{}-{}-{}.tar.gz", self.device_kind, self.version, self.platform)
    }

    /// The plugin file entry.
    pub fn plugin(&self) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.role == "plugin")
    }
}

/// This machine's platform tag, e.g. `linux-x86_64`.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The newest `GLIBC_2.N[.M]` version named in an ELF file's bytes (its
/// version-needs strings live in `.dynstr`); `None` for a file that names none
/// (macOS, a static binary).
pub fn glibc_needed(bytes: &[u8]) -> Option<String> {
    const TAG: &[u8] = b"GLIBC_2.";
    let mut best: Option<Vec<u32>> = None;
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(TAG.len()).position(|w| w == TAG) {
        let start = i + pos + TAG.len() - 2;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            end += 1;
        }
        i = i + pos + TAG.len();
        // Only a whole NUL-terminated string, as the loader reads it.
        if bytes.get(end) != Some(&0) {
            continue;
        }
        let text = std::str::from_utf8(&bytes[start..end]).unwrap_or("");
        let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
        if let Some(parts) = parts {
            if best.as_ref().is_none_or(|b| parts > *b) {
                best = Some(parts);
            }
        }
    }
    best.map(|v| v.iter().map(u32::to_string).collect::<Vec<_>>().join("."))
}

/// The glibc of this machine, e.g. `2.36`, from `gnu_get_libc_version`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn glibc_here() -> Option<String> {
    extern "C" {
        fn gnu_get_libc_version() -> *const std::ffi::c_char;
    }
    // SAFETY: returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    Some(v.to_string_lossy().into_owned())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn glibc_here() -> Option<String> {
    None
}

/// Whether `have` (e.g. `2.36`) is at least `need` (e.g. `2.34`).
pub fn version_at_least(have: &str, need: &str) -> bool {
    let parse = |v: &str| v.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>();
    parse(have) >= parse(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_glibc_version_is_found() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.14\0GLIBC_PRIVATE\0xGLIBC_2.99x";
        assert_eq!(glibc_needed(bytes).as_deref(), Some("2.34"));
        assert_eq!(glibc_needed(b"no versions here"), None);
        assert!(version_at_least("2.36", "2.34") && !version_at_least("2.31", "2.34"));
        assert!(version_at_least("2.34", "2.34") && version_at_least("2.34.1", "2.34"));
    }
}
