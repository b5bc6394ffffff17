//! Finding plugin files.
//!
//! A plugin for device `<kind>` is a shared library whose name (without the
//! `lib` prefix and extension) is `backend_<kind>` or starts with
//! `backend_<kind>-` / `backend_<kind>.`: `libbackend_cuda.so`,
//! `libbackend_cpu-avx512.so`. Several files for one kind are tried in name
//! order. Other shared libraries in the folder are reported, not loaded,
//! except the plugins' torch companions (`libswitchyard_torch_<kind>.so`),
//! which a plugin loads itself and which are skipped here.

use std::path::{Path, PathBuf};

use serde::Serialize;
use switchyard_core::DeviceKind;

/// A shared library found where plugins are looked for.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FoundPlugin {
    /// The file.
    pub path: PathBuf,
    /// The device kind its name claims, if any.
    pub kind: Option<DeviceKind>,
}

/// Why the plugin folder could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the plugin folder `{}` cannot be read: {source}; build the plugins with ci/build.sh or point SWITCHYARD_PLUGIN_DIR (--plugin-dir) at the folder that holds libbackend_*.so", folder.display())]
pub struct DiscoverError {
    /// The folder.
    pub folder: PathBuf,
    #[source]
    pub source: std::io::Error,
}

const EXTENSIONS: &[&str] = &["so", "dylib", "dll"];

/// The device kind a file name claims, e.g. `libbackend_cuda.so` -> cuda.
pub fn kind_from_name(path: &Path) -> Option<DeviceKind> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_prefix("lib").unwrap_or(name);
    let rest = stem.strip_prefix("backend_").or_else(|| stem.strip_prefix("backend-"))?;
    DeviceKind::PREFERENCE
        .into_iter()
        .find(|k| rest.strip_prefix(k.as_str()).is_some_and(|tail| tail.starts_with('.') || tail.starts_with('-')))
}

fn is_shared_library(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    // libfoo.so, libfoo.so.1, foo.dylib, foo.dll; not foo.so.manifest.json
    name.split('.').skip(1).any(|part| EXTENSIONS.contains(&part)) && !name.ends_with(".json")
}

/// Lists the plugin files: the explicit list when given (order kept), else the folder (name order).
pub fn discover(folder: &Path, explicit: &[PathBuf]) -> Result<Vec<FoundPlugin>, DiscoverError> {
    let mut paths: Vec<PathBuf> = if explicit.is_empty() {
        let entries = std::fs::read_dir(folder).map_err(|source| DiscoverError { folder: folder.into(), source })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_shared_library(p) && !switchyard_core::companion::is_companion(p))
            .collect();
        paths.sort();
        paths
    } else {
        explicit.to_vec()
    };
    paths.dedup();
    Ok(paths.into_iter().map(|path| FoundPlugin { kind: kind_from_name(&path), path }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_case::test_case;

    #[test_case("libbackend_cuda.so", Some(DeviceKind::Cuda))]
    #[test_case("libbackend_cpu.dylib", Some(DeviceKind::Cpu))]
    #[test_case("backend_mps.dll", Some(DeviceKind::Mps))]
    #[test_case("libbackend_cpu-0-broken.so", Some(DeviceKind::Cpu))]
    #[test_case("libbackend_cpux.so", None)]
    #[test_case("libsomething.so", None)]
    fn kinds_from_names(name: &str, expected: Option<DeviceKind>) {
        assert_eq!(kind_from_name(Path::new(name)), expected);
    }

    #[test]
    fn scans_a_folder_in_name_order_and_skips_non_libraries_and_companions() {
        let dir = std::env::temp_dir().join(format!("switchyard-discover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = [
            "libbackend_cpu.so",
            "libbackend_cpu-0-alt.so",
            "README.md",
            "libbackend_cpu.so.manifest.json",
            "libswitchyard_torch_cpu.so",
        ];
        for f in files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let found = discover(&dir, &[]).unwrap();
        let names: Vec<_> = found.iter().map(|f| f.path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["libbackend_cpu-0-alt.so", "libbackend_cpu.so"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_folder_says_how_to_fix_it() {
        let err = discover(Path::new("/nonexistent/plugins"), &[]).unwrap_err().to_string();
        assert!(err.contains("SWITCHYARD_PLUGIN_DIR") && err.contains("/nonexistent/plugins"), "{err}");
    }
}
