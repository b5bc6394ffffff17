//! Finding and loading the plugin's torch companion: the cdylib
//! (`libswitchyard_torch_<kind>`, built from switchyard-torch) that holds
//! everything linked to libtorch.
//!
//! Why: a library that links libtorch costs ~110 MB of resident memory as
//! soon as it is loaded, even if no TorchScript model ever runs. The plugin
//! itself links only ONNX Runtime (loaded on first use), and loads the
//! companion from its own folder when a TorchScript model is asked for (CPU)
//! or when it opens a device only libtorch can check (CUDA, MPS). The
//! companion exports the same abi_stable root module as a plugin, so the
//! layout check, the ABI version and the device kind are checked here the
//! way the host checks a plugin.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use abi_stable::library::lib_header_from_path;
use abi_stable::std_types::{RString, RVec};
use switchyard_core::abi::{
    BackendBox, BackendConfig, BackendError, BackendRootRef, ErrorCode, ProbeReport, ABI_VERSION,
};
use switchyard_core::DeviceKind;

use crate::EngineError;

pub use switchyard_core::companion::file_name;

/// Where this plugin's companion may be ([`switchyard_core::companion::locations`]).
fn candidates(kind: DeviceKind) -> Vec<PathBuf> {
    crate::runtimes::own_path()
        .map(|plugin| switchyard_core::companion::locations(&plugin, &file_name(kind)))
        .unwrap_or_default()
}

fn unavailable(reason: String) -> EngineError {
    EngineError::TorchCompanion { reason, code: ErrorCode::UNAVAILABLE }
}

/// Loads (once per process) and checks the companion for `kind`.
pub fn root(kind: DeviceKind) -> Result<BackendRootRef, EngineError> {
    static ROOT: Mutex<Option<BackendRootRef>> = Mutex::new(None);
    let mut slot = ROOT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(root) = *slot {
        return Ok(root);
    }
    let tried = candidates(kind);
    let path = tried.iter().find(|p| p.is_file()).ok_or_else(|| {
        let looked: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
        unavailable(format!(
            "libtorch support for this plugin lives in `{}`, which is not installed next to it (looked at {}); \
             install it from the same build as the plugin (ci/build.sh copies both into the plugin folder), \
             or use ONNX models (CLIP_ENGINE=onnx)",
            file_name(kind),
            if looked.is_empty() { "nothing: the plugin's own path is unknown".into() } else { looked.join(", ") }
        ))
    })?;
    // libtorch first, from wherever the runtime search finds it, so the
    // companion's libtorch dependencies are already satisfied.
    let torch = crate::runtimes::load_torch(kind).map_err(|e| unavailable(crate::error::describe(e)))?;
    let loaded = lib_header_from_path(path).and_then(|h| h.init_root_module::<BackendRootRef>()).map_err(|e| {
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let gist = lines.iter().find(|l| l.contains("cannot open shared object") || l.contains("Library not loaded"));
        match gist {
            Some(line) => unavailable(format!(
                "`{}` (libtorch support for this plugin) needs a library the loader cannot find ({line}), although \
                 libtorch {} was loaded from `{}`; that libtorch is incomplete or of another build: reinstall torch \
                 with pip, or point LIBTORCH at a complete one",
                path.display(),
                torch.version,
                torch.found.path.display()
            )),
            None => unavailable(format!(
                "`{}` (libtorch support for this plugin) cannot be loaded: {}; rebuild the plugin and its companion \
                 together with ci/build.sh, or install both from one package (`switchyard plugin install`)",
                path.display(),
                lines.last().copied().unwrap_or("no detail")
            )),
        }
    })?;
    let abi = (loaded.abi_version())();
    if abi != ABI_VERSION {
        return Err(unavailable(format!(
            "`{}` speaks plugin ABI {abi}, its plugin {ABI_VERSION}; install the pair from one build (ci/build.sh)",
            path.display()
        )));
    }
    let described = (loaded.describe())().into_result().map_err(|e| unavailable(e.to_string()))?;
    if described.device_kind.as_str() != kind.as_str() {
        return Err(unavailable(format!(
            "`{}` is libtorch support for {}, not {kind}; install the companion built with this plugin",
            path.display(),
            described.device_kind
        )));
    }
    *slot = Some(loaded);
    Ok(loaded)
}

/// A companion backend opened on first use and kept. Once open, reaching it
/// takes no lock (every TorchScript `run` goes through it).
pub struct TorchLink {
    kind: DeviceKind,
    config: BackendConfig,
    opened: OnceLock<BackendBox>,
    opening: Mutex<()>,
}

impl TorchLink {
    /// A link that opens the companion when [`TorchLink::backend`] is first called.
    pub fn lazy(kind: DeviceKind, config: &BackendConfig) -> Self {
        TorchLink { kind, config: config.clone(), opened: OnceLock::new(), opening: Mutex::new(()) }
    }

    /// A link with the companion opened now (its `open` checks the device),
    /// unless `unavailable` already says why the device cannot work, in
    /// which case libtorch is not loaded at all.
    pub fn open(kind: DeviceKind, config: &BackendConfig, unavailable: Option<String>) -> Result<Self, BackendError> {
        if let Some(reason) = unavailable {
            return Err(BackendError::unavailable(reason));
        }
        let link = Self::lazy(kind, config);
        link.backend()?;
        Ok(link)
    }

    /// The companion's backend, opened now if it was not yet. A failure is
    /// not kept: a later call tries again.
    pub fn backend(&self) -> Result<&BackendBox, BackendError> {
        if let Some(b) = self.opened.get() {
            return Ok(b);
        }
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.opened.get() {
            return Ok(b);
        }
        let backend = (root(self.kind)?.open())(&self.config).into_result()?;
        Ok(self.opened.get_or_init(|| backend))
    }

    /// The companion's backend if it is open.
    pub fn opened(&self) -> Option<&BackendBox> {
        self.opened.get()
    }
}

/// A probe that says the device is unavailable, and why.
pub fn unavailable_probe(reason: String) -> ProbeReport {
    ProbeReport { available: false, reason: RString::from(reason), devices: RVec::new(), extra: RVec::new() }
}

/// The companion's device probe, unless `unavailable` already says why the
/// device cannot work (then libtorch is not loaded). A companion that cannot
/// be loaded makes the device unavailable, with the reason, rather than
/// failing the probe.
pub fn probe(
    kind: DeviceKind,
    config: &BackendConfig,
    unavailable: Option<String>,
) -> Result<ProbeReport, BackendError> {
    if let Some(reason) = unavailable {
        return Ok(unavailable_probe(reason));
    }
    match root(kind) {
        Ok(root) => {
            let mut report = (root.probe())(config).into_result()?;
            // The companion's own runtime report knows nothing of what this plugin loaded.
            let own = |k: &str| k.starts_with("libtorch_") || k.starts_with("onnxruntime_");
            report.extra = report.extra.into_iter().filter(|e| !own(e.0.as_str())).collect();
            Ok(report)
        }
        Err(e) => Ok(unavailable_probe(e.to_string())),
    }
}
