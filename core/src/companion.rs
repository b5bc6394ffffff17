//! The torch companion convention, shared by the plugins (which load their
//! companion) and the host (which skips companions when it looks for plugins
//! and loads one for the `FALLBACK=cpu` check): a plugin's libtorch half is
//! `libswitchyard_torch_<kind>.so` (`.dylib` on macOS), found next to the
//! plugin as it was loaded, then next to the file a symlinked plugin points
//! at.

use std::path::{Path, PathBuf};

use crate::DeviceKind;

const STEM: &str = "switchyard_torch_";

/// The companion's file name for a device kind, e.g. `libswitchyard_torch_cpu.so`.
pub fn file_name(kind: DeviceKind) -> String {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    format!("{DLL_PREFIX}{STEM}{}{DLL_SUFFIX}", kind.as_str())
}

/// Whether a file is a torch companion (which is not a plugin).
pub fn is_companion(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name.strip_prefix("lib").unwrap_or(name).starts_with(STEM)
}

/// Where the companion `name` of the plugin at `plugin` may be, in order:
/// the plugin's folder, then the folder of the file it links to.
pub fn locations(plugin: &Path, name: &str) -> Vec<PathBuf> {
    let mut folders: Vec<PathBuf> = plugin.parent().map(Path::to_path_buf).into_iter().collect();
    if let Some(real) = std::fs::canonicalize(plugin).ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        if !folders.contains(&real) {
            folders.push(real);
        }
    }
    folders.into_iter().map(|f| f.join(name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_recognises_companions() {
        let name = file_name(DeviceKind::Cuda);
        assert!(name.contains("switchyard_torch_cuda"), "{name}");
        assert!(is_companion(Path::new(&name)));
        assert!(!is_companion(Path::new("libbackend_cuda.so")));
    }

    #[test]
    fn looks_next_to_the_plugin_first() {
        let found = locations(Path::new("/nonexistent/plugins/libbackend_cpu.so"), "libswitchyard_torch_cpu.so");
        assert_eq!(found, [PathBuf::from("/nonexistent/plugins/libswitchyard_torch_cpu.so")]);
    }
}
