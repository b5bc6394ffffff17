//! The running device: select a plugin, load it into this process and open
//! its backend, once.
//!
//! Selection checks each candidate before it is loaded here (in a child
//! process when the switchyard executable is known, so a crashing plugin or a
//! second libtorch build never enters this process); the selected file is
//! then loaded in-process and opened. If that fails the error says why; the
//! process never loads two plugins, except the CPU fallback ([`fallback`]),
//! which is checked to bring no second runtime. [`gpu_report`] reads the
//! device facts (memory, cache releases, CUDA switches) out of the backend's
//! live info.

pub mod fallback;
pub mod gpu_report;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use switchyard_core::abi::{kv_to_vec, BackendBox};
use switchyard_core::select::{PluginFile, SelectError, Selection};
use switchyard_core::DeviceSpec;

use crate::config::DeviceSettings;
use crate::hardware::{self, HardwareReport};
use crate::plugins::discover::DiscoverError;
use crate::plugins::inspect::{inspect_timeout, ChildInspect};
use crate::plugins::load::Description;
use crate::plugins::{discover, inspect_in_child, inspect_in_process, Depth, FoundPlugin, LoadError, LoadedPlugin};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("the selected plugin could not be opened in this process")]
    Load(#[from] LoadError),
}

/// Where plugins are and how to check them.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The plugin folder.
    pub folder: PathBuf,
    /// Explicit plugin files (overrides the folder).
    pub explicit: Vec<PathBuf>,
    /// Check candidates in child processes of this executable (`None`: in this process).
    pub inspect_exe: Option<PathBuf>,
}

/// What the runtime reports about itself (`/info`, run metadata).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub platform: &'static str,
    pub machine: &'static str,
    /// e.g. `cpu`, `cuda:0`.
    pub device: String,
    /// Which rule chose it.
    pub reason: String,
    /// Candidates passed over, with reasons.
    pub rejected: Vec<String>,
    pub plugin_path: PathBuf,
    /// sha256 of the plugin file in use (`None`: unreadable, logged).
    pub plugin_sha256: Option<String>,
    pub plugin: Description,
    pub hardware: HardwareReport,
    /// ONNX providers the backend uses, in order.
    pub onnx_providers: Vec<String>,
    pub backend_extra: Vec<(String, String)>,
    /// Time to select, load and open, in ms.
    pub startup_ms: f64,
}

/// An open backend on the selected device.
pub struct Runtime {
    /// The backend; shared by pipelines and worker threads.
    pub backend: Arc<BackendBox>,
    pub selection: Selection,
    pub report: DeviceReport,
    _plugin: LoadedPlugin,
}

impl Runtime {
    /// Selects, loads and opens.
    pub fn start(settings: &DeviceSettings, options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let start = Instant::now();
        let hardware = hardware::probe();
        let selection = select(settings, options, &hardware)?;
        for r in &selection.rejected {
            tracing::info!(kind = %r.kind, reason = %r.reason, "device candidate rejected");
        }
        let plugin = LoadedPlugin::load(&selection.plugin)?;
        let plugin_sha256 = crate::plugins::load::plugin_sha256(&selection.plugin);
        let description = plugin.describe()?;
        let backend = plugin.open(&settings.backend_config(selection.index))?;
        let info = backend.info();
        let report = DeviceReport {
            platform: std::env::consts::OS,
            machine: std::env::consts::ARCH,
            device: info.device.to_string(),
            reason: selection.reason.clone(),
            rejected: selection.rejected.iter().map(|r| r.reason.clone()).collect(),
            plugin_path: selection.plugin.clone(),
            plugin_sha256,
            plugin: description,
            hardware,
            onnx_providers: info.onnx_providers.iter().map(|p| p.to_string()).collect(),
            backend_extra: kv_to_vec(&info.extra),
            startup_ms: start.elapsed().as_secs_f64() * 1e3,
        };
        tracing::info!(device = %report.device, plugin = %report.plugin_path.display(), sha256 = report.plugin_sha256.as_deref().unwrap_or("unreadable"), reason = %report.reason, startup_ms = report.startup_ms, "device selected");
        Ok(Runtime { backend: Arc::new(backend), selection, report, _plugin: plugin })
    }
}

/// The policy's answer, given hardware facts, plugin files and a check per file.
pub fn decide(
    settings: &DeviceSettings,
    hardware: &HardwareReport,
    found: &[FoundPlugin],
    mut check: impl FnMut(&PluginFile) -> Result<(), String>,
) -> Result<Selection, SelectError> {
    let files: Vec<PluginFile> =
        found.iter().filter_map(|f| f.kind.map(|kind| PluginFile { kind, path: f.path.clone() })).collect();
    switchyard_core::select::select(&settings.select_settings(), &hardware.facts(), &files, &mut check)
}

/// Which plugin [`Runtime::start`] would load, with every candidate checked
/// (in child processes when `options.inspect_exe` is set) but none loaded here.
/// A plugin swap runs this before it commits to re-executing the server.
pub fn select(
    settings: &DeviceSettings,
    options: &RuntimeOptions,
    hardware: &HardwareReport,
) -> Result<Selection, RuntimeError> {
    let found = discover(&options.folder, &options.explicit)?;
    let index = match settings.device {
        DeviceSpec::Cuda(i) => i,
        _ => None,
    };
    let selection = decide(settings, hardware, &found, |file| {
        let cfg = settings.backend_config(index.or((file.kind == switchyard_core::DeviceKind::Cuda).then_some(0)));
        let report = match &options.inspect_exe {
            Some(exe) => inspect_in_child(
                &file.path,
                &ChildInspect {
                    exe: exe.clone(),
                    device_index: cfg.device_index.into_option(),
                    timeout: inspect_timeout(),
                    with_companion: false,
                },
            ),
            None => inspect_in_process(&file.path, &cfg, Depth::Probe),
        };
        if report.usable() {
            Ok(())
        } else {
            Err(report.rejection())
        }
    })?;
    Ok(selection)
}
