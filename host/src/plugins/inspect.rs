//! Inspecting a plugin file: load it, check its ABI and kind, describe it,
//! probe it and (when available) open it and check its health.
//!
//! `switchyard probe` runs each inspection in a child process
//! (`switchyard inspect-plugin`), for three reasons: a process may hold only
//! one libtorch build, a broken plugin may abort or hang, and plugins are
//! never unloaded. The child prints a [`PluginReport`] as JSON.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use switchyard_core::abi::{kv_to_vec, AbiVersion, BackendConfig};
use switchyard_core::DeviceKind;

use super::load::{Description, LoadError, LoadedPlugin};

/// A device a plugin reported.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceSummary {
    pub index: u32,
    pub name: String,
    pub total_memory: u64,
    pub extra: Vec<(String, String)>,
}

/// A plugin's probe, in Rust types.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProbeSummary {
    pub available: bool,
    pub reason: String,
    pub devices: Vec<DeviceSummary>,
    pub extra: Vec<(String, String)>,
}

/// What an opened backend says about itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackendSummary {
    pub device: String,
    /// ONNX execution providers it tries, in order.
    pub onnx_providers: Vec<String>,
    /// Facts such as `onnx_runs_on`, `onnx_providers_compiled_in`, `torch_dtype`.
    pub extra: Vec<(String, String)>,
}

/// The first thing that went wrong.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    /// A short tag: open, missing_library, not_a_plugin, incompatible, abi_version, kind_mismatch, call, crashed, hung, spawn.
    pub stage: String,
    /// The full message.
    pub message: String,
}

/// Everything known about one plugin file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginReport {
    pub path: PathBuf,
    /// The kind the file name claims.
    pub named_kind: Option<DeviceKind>,
    pub abi: Option<AbiVersion>,
    pub description: Option<Description>,
    pub probe: Option<ProbeSummary>,
    /// Whether `open` + `health` succeeded (None: not attempted).
    pub opened: Option<bool>,
    /// The open backend's own report: device, ONNX provider plan, where ONNX models run.
    #[serde(default)]
    pub backend: Option<BackendSummary>,
    pub failure: Option<Failure>,
    /// libtorch, c10 and ONNX Runtime files the process had mapped after
    /// opening the backend (see [`super::maps`]); `None`: not opened, or the
    /// platform does not say.
    #[serde(default)]
    pub runtime_libraries: Option<Vec<PathBuf>>,
    /// Wall time of the inspection, milliseconds.
    pub took_ms: f64,
}

impl PluginReport {
    fn new(path: &Path, named_kind: Option<DeviceKind>) -> Self {
        PluginReport {
            path: path.to_path_buf(),
            named_kind,
            abi: None,
            description: None,
            probe: None,
            opened: None,
            backend: None,
            failure: None,
            runtime_libraries: None,
            took_ms: 0.0,
        }
    }

    fn fail(mut self, stage: &str, message: String) -> Self {
        self.failure = Some(Failure { stage: stage.into(), message });
        self
    }

    /// Whether the selection policy may choose this file.
    pub fn usable(&self) -> bool {
        self.failure.is_none() && self.probe.as_ref().is_some_and(|p| p.available) && self.opened != Some(false)
    }

    /// Why it may not, as one sentence.
    pub fn rejection(&self) -> String {
        if let Some(f) = &self.failure {
            return f.message.clone();
        }
        match &self.probe {
            Some(p) if !p.available => format!("probe says unavailable: {}", p.reason),
            None => "not probed".into(),
            _ => "could not be opened".into(),
        }
    }
}

fn stage_of(e: &LoadError) -> &'static str {
    match e {
        LoadError::Missing { .. } | LoadError::Open { .. } => "open",
        LoadError::MissingLibrary { .. } => "missing_library",
        LoadError::InsecurePermissions { .. } => "permissions",
        LoadError::NotAPlugin { .. } => "not_a_plugin",
        LoadError::Incompatible { .. } => "incompatible",
        LoadError::AbiVersion { .. } => "abi_version",
        LoadError::KindMismatch { .. } => "kind_mismatch",
        LoadError::Companion { .. } => "companion",
        LoadError::Call { .. } => "call",
    }
}

/// How far an inspection goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Load, describe and probe.
    Probe,
    /// Also open the backend (when the probe says available) and check its health.
    Open,
    /// Also load the plugin's torch companion, so the runtime libraries
    /// reported are all the plugin could ever map (`FALLBACK=cpu`).
    OpenWithCompanion,
}

/// Inspects `path` in this process, as deep as `depth`.
pub fn inspect_in_process(path: &Path, config: &BackendConfig, depth: Depth) -> PluginReport {
    let start = Instant::now();
    let named = super::discover::kind_from_name(path);
    let mut report = inspect_steps(PluginReport::new(path, named), path, config, depth);
    report.took_ms = start.elapsed().as_secs_f64() * 1e3;
    report
}

fn inspect_steps(mut report: PluginReport, path: &Path, config: &BackendConfig, depth: Depth) -> PluginReport {
    let fail = |r: PluginReport, e: LoadError| {
        let stage = stage_of(&e);
        r.fail(stage, crate::util::error_chain(&e))
    };
    let plugin = match LoadedPlugin::load(path) {
        Ok(p) => p,
        Err(e) => {
            if let LoadError::AbiVersion { plugin, .. } = &e {
                report.abi = Some(*plugin);
            }
            return fail(report, e);
        }
    };
    report.abi = Some(plugin.abi);
    let description = match plugin.describe() {
        Ok(d) => d,
        Err(e) => return fail(report, e),
    };
    report.description = Some(description.clone());
    if let Some(named) = report.named_kind {
        if let Err(e) = plugin.check_kind(named, &description) {
            return fail(report, e);
        }
    }
    let probe = match plugin.probe(config) {
        Ok(p) => p,
        Err(e) => return fail(report, e),
    };
    report.probe = Some(ProbeSummary {
        available: probe.available,
        reason: probe.reason.to_string(),
        devices: probe
            .devices
            .iter()
            .map(|d| DeviceSummary {
                index: d.index,
                name: d.name.to_string(),
                total_memory: d.total_memory,
                extra: kv_to_vec(&d.extra),
            })
            .collect(),
        extra: kv_to_vec(&probe.extra),
    });
    if depth != Depth::Probe && probe.available {
        match plugin.open(config) {
            Ok(backend) => match backend.health().into_result() {
                Ok(()) => {
                    report.opened = Some(true);
                    if depth == Depth::OpenWithCompanion {
                        if let Err(e) = plugin.load_companion(&description) {
                            return fail(report, e);
                        }
                    }
                    report.runtime_libraries = super::maps::runtime_libraries();
                    let info = backend.info();
                    report.backend = Some(BackendSummary {
                        device: info.device.to_string(),
                        onnx_providers: info.onnx_providers.iter().map(|p| p.to_string()).collect(),
                        extra: kv_to_vec(&info.extra),
                    });
                }
                Err(source) => {
                    report.opened = Some(false);
                    return fail(report, LoadError::Call { path: path.into(), call: "health", source });
                }
            },
            Err(e) => {
                report.opened = Some(false);
                return fail(report, e);
            }
        }
    }
    report
}

/// How to run the inspecting child.
#[derive(Debug, Clone)]
pub struct ChildInspect {
    /// The switchyard executable (it has the hidden `inspect-plugin` command).
    pub exe: PathBuf,
    /// `cuda:N` index to probe.
    pub device_index: Option<u32>,
    /// Kill the child after this long.
    pub timeout: Duration,
    /// Also load the plugin's torch companion in the child ([`Depth::OpenWithCompanion`]).
    pub with_companion: bool,
}

/// The default timeout for one plugin inspection.
pub fn inspect_timeout() -> Duration {
    std::env::var("SWITCHYARD_INSPECT_TIMEOUT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(60))
}

/// Inspects `path` in a child process; a crash or hang becomes a failure, never the host's.
pub fn inspect_in_child(path: &Path, how: &ChildInspect) -> PluginReport {
    let start = Instant::now();
    let named = super::discover::kind_from_name(path);
    let mut cmd = Command::new(&how.exe);
    cmd.arg("inspect-plugin").arg(path).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(i) = how.device_index {
        cmd.arg("--device-index").arg(i.to_string());
    }
    if how.with_companion {
        cmd.arg("--with-companion");
    }
    let report = PluginReport::new(path, named);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return report.fail("spawn", format!("could not start `{} inspect-plugin`: {e}", how.exe.display())),
    };
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() > how.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let took_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut report = match status {
        None => report.fail(
            "hung",
            format!(
                "`{}` did not finish loading and probing within {:?}; it was killed. Check the plugin, or raise SWITCHYARD_INSPECT_TIMEOUT",
                path.display(),
                how.timeout
            ),
        ),
        Some(status) => match serde_json::from_str::<PluginReport>(stdout.trim()) {
            Ok(r) if status.success() => r,
            _ => report.fail(
                "crashed",
                format!(
                    "`{}` crashed the process that loaded it ({}){}",
                    path.display(),
                    describe_status(status),
                    tail(&stderr)
                ),
            ),
        },
    };
    report.took_ms = took_ms;
    report
}

fn describe_status(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            let name = match sig {
                6 => "SIGABRT",
                11 => "SIGSEGV",
                9 => "SIGKILL",
                7 => "SIGBUS",
                _ => "signal",
            };
            return format!("killed by {name} ({sig})");
        }
    }
    format!("exit status {}", status.code().unwrap_or(-1))
}

fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(3);
    format!(": {}", lines[start..].join(" | "))
}
