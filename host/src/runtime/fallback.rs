//! `FALLBACK=cpu`: the CPU plugin beside the selected one, to serve the
//! requests the selected device fails at run time.
//!
//! A process must never hold two libtorch builds (nor two ONNX Runtime
//! libraries), and a plugin once loaded stays. The plugins `ci/build.sh`
//! builds all link the venv's libtorch, but shipped plugins may not. So the
//! CPU plugin joins the process only when it provably brings no second
//! runtime: it is first loaded and opened in a child process, which reports
//! the libtorch, c10 and ONNX Runtime files the dynamic loader mapped for it
//! ([`crate::plugins::maps`]); each must be a file this process already has,
//! or of a family it does not hold at all. The ONNX Runtime each plugin
//! would load (as each backend reports it) must be the same file. Otherwise startup stops with an error naming both files.
//! Where the platform cannot tell (no `/proc`), the fallback is refused.
//!
//! Both sides count their torch companions (loaded by a plugin only with its
//! first TorchScript model): the child loads the CPU plugin's, and when this
//! process holds no libtorch yet, a second child reports what the selected
//! plugin would map with its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use switchyard_core::abi::BackendBox;
use switchyard_core::DeviceKind;

use super::{Runtime, RuntimeOptions};
use crate::config::DeviceSettings;
use crate::plugins::inspect::ChildInspect;
use crate::plugins::load::{plugin_sha256, Description};
use crate::plugins::maps::{family, runtime_libraries, second_build, Family};
use crate::plugins::{discover, inspect_in_child, LoadError, LoadedPlugin};

/// Why `FALLBACK=cpu` cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error("`FALLBACK=cpu` needs a CPU plugin (libbackend_cpu.so) besides the selected `{}` in `{}`; install it there (ci/build.sh does) or unset FALLBACK", selected.display(), folder.display())]
    NoCpuPlugin { selected: PathBuf, folder: PathBuf },
    #[error(transparent)]
    Discover(#[from] crate::plugins::discover::DiscoverError),
    #[error("`FALLBACK=cpu`: the CPU plugin `{}` cannot be used: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error("`FALLBACK=cpu` is refused: this platform gives no way to check that `{}` uses the same libtorch and ONNX Runtime files as the selected plugin, and a process must never hold two builds; unset FALLBACK", path.display())]
    CannotVerify { path: PathBuf },
    #[error("`FALLBACK=cpu` is refused: the CPU plugin `{}` would load `{}`, but this process already runs `{}` for the selected plugin, and a process must never hold two libtorch or ONNX Runtime builds; build both plugins against the same runtime (ci/build.sh) or unset FALLBACK", path.display(), wanted.display(), held.display())]
    SecondRuntime { path: PathBuf, wanted: PathBuf, held: PathBuf },
    #[error("`FALLBACK=cpu` is refused: what the selected plugin `{}` would map with its torch companion could not be checked: {reason}; unset FALLBACK", path.display())]
    PrimaryUnchecked { path: PathBuf, reason: String },
    #[error("`FALLBACK=cpu`: the CPU plugin `{}` could not be opened in this process", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: LoadError,
    },
}

/// What `/info` says about the fallback.
#[derive(Debug, Clone, Serialize)]
pub struct FallbackReport {
    /// e.g. `cpu`.
    pub device: String,
    pub plugin_path: PathBuf,
    /// `None` when the file could not be read ([`plugin_sha256`]).
    pub plugin_sha256: Option<String>,
    pub plugin: Description,
    /// The runtime library files it shares with the selected plugin (checked at startup).
    pub shared_libraries: Vec<PathBuf>,
}

/// The open CPU backend.
pub struct Fallback {
    pub backend: Arc<BackendBox>,
    pub report: FallbackReport,
    _plugin: LoadedPlugin,
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The ONNX Runtime file a backend loaded or would load, from its report
/// (`onnxruntime_path`, see switchyard_engine::runtimes).
fn ort_file(backend_extra: &[(String, String)]) -> Option<PathBuf> {
    backend_extra.iter().find(|(k, _)| k == "onnxruntime_path").map(|(_, v)| canonical(Path::new(v)))
}

/// `held` plus the libtorch files the selected plugin would map once it
/// loads its torch companion, when this process holds no libtorch yet (the
/// CPU plugin loads it only with the first TorchScript model); reported by a
/// child that opens the selected plugin and loads its companion.
fn held_with_companion(
    primary: &Runtime,
    held: Vec<PathBuf>,
    how: &ChildInspect,
) -> Result<Vec<PathBuf>, FallbackError> {
    if held.iter().any(|p| family(p) == Some(Family::Torch)) {
        return Ok(held);
    }
    let path = &primary.selection.plugin;
    let report = inspect_in_child(path, &ChildInspect { device_index: None, ..how.clone() });
    let unchecked = |reason: String| FallbackError::PrimaryUnchecked { path: path.clone(), reason };
    if !report.usable() || report.opened != Some(true) {
        return Err(unchecked(report.rejection()));
    }
    let libraries = report.runtime_libraries.ok_or_else(|| unchecked("the child reported no libraries".into()))?;
    let mut all = held;
    all.extend(libraries.into_iter().filter(|p| family(p) == Some(Family::Torch)));
    all.sort();
    all.dedup();
    Ok(all)
}

impl Fallback {
    /// Finds, checks, loads and opens the CPU plugin. `Ok(None)`: the
    /// selected plugin is the only CPU plugin, so there is nothing to fall back to.
    pub fn start(
        primary: &Runtime,
        settings: &DeviceSettings,
        options: &RuntimeOptions,
    ) -> Result<Option<Fallback>, FallbackError> {
        let selected = canonical(&primary.selection.plugin);
        let found = discover(&options.folder, &options.explicit)?;
        let candidate = found.into_iter().find(|f| f.kind == Some(DeviceKind::Cpu) && canonical(&f.path) != selected);
        let Some(candidate) = candidate else {
            if primary.selection.kind == DeviceKind::Cpu {
                tracing::info!("FALLBACK=cpu has nothing to do: the selected device is the CPU");
                return Ok(None);
            }
            return Err(FallbackError::NoCpuPlugin {
                selected: primary.selection.plugin.clone(),
                folder: options.folder.clone(),
            });
        };
        let path = candidate.path;
        let unusable = |reason: String| FallbackError::Unusable { path: path.clone(), reason };
        let exe = options.inspect_exe.clone().ok_or_else(|| {
            unusable("it must first be inspected in a child process, and this process cannot start one".into())
        })?;
        let how = ChildInspect {
            exe,
            device_index: None,
            timeout: crate::plugins::inspect::inspect_timeout(),
            with_companion: true,
        };
        let inspected = inspect_in_child(&path, &how);
        if !inspected.usable() || inspected.opened != Some(true) {
            return Err(unusable(inspected.rejection()));
        }
        let (Some(held), Some(wanted)) = (runtime_libraries(), inspected.runtime_libraries.clone()) else {
            return Err(FallbackError::CannotVerify { path });
        };
        let held = held_with_companion(primary, held, &how)?;
        if let Some((w, h)) = second_build(&held, &wanted) {
            return Err(FallbackError::SecondRuntime { path, wanted: w.to_path_buf(), held: h.to_path_buf() });
        }
        let description = inspected.description.clone().ok_or_else(|| unusable("it did not describe itself".into()))?;
        let theirs = inspected.backend.as_ref().and_then(|b| ort_file(&b.extra));
        if let (Some(mine), Some(theirs)) = (ort_file(&primary.report.backend_extra), theirs) {
            if mine != theirs {
                return Err(FallbackError::SecondRuntime { path, wanted: theirs, held: mine });
            }
        }
        let load = |source| FallbackError::Load { path: path.clone(), source };
        let plugin = LoadedPlugin::load(&path).map_err(load)?;
        let backend = plugin.open(&settings.backend_config(None)).map_err(load)?;
        let device = backend.info().device.to_string();
        let report = FallbackReport {
            device,
            plugin_sha256: plugin_sha256(&path),
            plugin_path: path,
            plugin: description,
            shared_libraries: wanted,
        };
        tracing::info!(device = %report.device, plugin = %report.plugin_path.display(), sha256 = report.plugin_sha256.as_deref().unwrap_or("unreadable"), shared = ?report.shared_libraries, "CPU fallback ready (FALLBACK=cpu)");
        Ok(Some(Fallback { backend: Arc::new(backend), report, _plugin: plugin }))
    }
}
