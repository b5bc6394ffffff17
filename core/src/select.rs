//! The device selection policy: a pure function of the settings, the host's
//! hardware probe and a check of each plugin file.
//!
//! 1. `DEVICE` set and not `auto`: that device or an error (never a silent
//!    fallback); `DEVICE` wins over `FORCE_CPU`.
//! 2. `FORCE_CPU`: the CPU.
//! 3. auto: cuda > mps > cpu, each only if the hardware is there, its plugin
//!    file exists and passes `check`; CPU is the last resort.
//!
//! Every candidate passed over is recorded with its reason, so that
//! `switchyard probe` and the startup log can say exactly why a device was not
//! used. `check` is how the caller inspects a plugin (in a child process, in
//! the host); tests pass closures.

use std::path::PathBuf;

use crate::device::{DeviceKind, DeviceSpec};

/// What the host's own hardware probe found for one device kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Availability {
    /// The hardware is there; `devices` is how many (1 for MPS and CPU).
    Available { devices: u32 },
    /// It is not, and why (driver missing, no GPU, wrong platform...).
    Unavailable { reason: String },
}

/// The host's hardware facts, gathered without loading any ML runtime.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HardwareFacts {
    /// CUDA devices visible through the driver (honouring `CUDA_VISIBLE_DEVICES`).
    pub cuda: Availability,
    /// Apple silicon with Metal.
    pub mps: Availability,
}

impl HardwareFacts {
    fn of(&self, kind: DeviceKind) -> Availability {
        match kind {
            DeviceKind::Cuda => self.cuda.clone(),
            DeviceKind::Mps => self.mps.clone(),
            DeviceKind::Cpu => Availability::Available { devices: 1 },
        }
    }
}

/// The settings the policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelectSettings {
    /// `DEVICE`.
    pub device: DeviceSpec,
    /// `FORCE_CPU`.
    pub force_cpu: bool,
}

/// A plugin file found on disk and the device kind it is for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginFile {
    /// The device kind (from the file name or its manifest).
    pub kind: DeviceKind,
    /// Where it is.
    pub path: PathBuf,
}

/// A candidate the policy passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// The device kind.
    pub kind: DeviceKind,
    /// The plugin file, when the rejection is about a file.
    pub plugin: Option<PathBuf>,
    /// A sentence saying why.
    pub reason: String,
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Selection {
    /// The chosen device kind.
    pub kind: DeviceKind,
    /// The GPU index for CUDA (`None` for CPU and MPS).
    pub index: Option<u32>,
    /// The plugin file to open.
    pub plugin: PathBuf,
    /// Why this device: which rule chose it.
    pub reason: String,
    /// Every candidate passed over before it, with its reason.
    pub rejected: Vec<Rejection>,
}

impl Selection {
    /// The device as a `DEVICE` value, e.g. `cuda:0`.
    pub fn device(&self) -> DeviceSpec {
        match self.kind {
            DeviceKind::Cpu => DeviceSpec::Cpu,
            DeviceKind::Mps => DeviceSpec::Mps,
            DeviceKind::Cuda => DeviceSpec::Cuda(Some(self.index.unwrap_or(0))),
        }
    }
}

/// Why no device could be selected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// An explicit `DEVICE` names hardware that is not there.
    #[error("`DEVICE={requested}` was asked for, but {reason}; set DEVICE=auto to use the best available device, or DEVICE=cpu")]
    DeviceUnavailable {
        /// The spec as given.
        requested: DeviceSpec,
        /// Why the hardware is not usable.
        reason: String,
    },
    /// `DEVICE=cuda:N` with N past the last visible GPU.
    #[error("`DEVICE={requested}` was asked for, but only {count} CUDA device(s) are visible (cuda:0 to cuda:{last}); check CUDA_VISIBLE_DEVICES or pick a lower index", last = count.saturating_sub(1))]
    CudaIndexOutOfRange {
        /// The spec as given.
        requested: DeviceSpec,
        /// How many devices the driver reports.
        count: u32,
    },
    /// The device was chosen, but no plugin file for it could be used.
    #[error("{rule} selects {kind}, but no usable `{plugin}` plugin was found: {}", summarize(.rejected))]
    NoUsablePlugin {
        /// Which rule chose the device.
        rule: String,
        /// The device kind.
        kind: DeviceKind,
        /// The plugin name, e.g. `backend-cpu`.
        plugin: &'static str,
        /// Every file tried, with its reason.
        rejected: Vec<Rejection>,
    },
}

fn summarize(rejected: &[Rejection]) -> String {
    if rejected.is_empty() {
        return "none found".into();
    }
    rejected.iter().map(|r| r.reason.clone()).collect::<Vec<_>>().join("; ")
}

/// Chooses the device and plugin file. See the module docs for the rules.
pub fn select<F>(
    settings: &SelectSettings,
    hardware: &HardwareFacts,
    plugins: &[PluginFile],
    mut check: F,
) -> Result<Selection, SelectError>
where
    F: FnMut(&PluginFile) -> Result<(), String>,
{
    let mut rejected = Vec::new();

    if let Some(kind) = settings.device.kind() {
        let rule = format!("`DEVICE={}`", settings.device);
        if settings.force_cpu && kind != DeviceKind::Cpu {
            rejected.push(Rejection {
                kind: DeviceKind::Cpu,
                plugin: None,
                reason: format!("FORCE_CPU is ignored because {rule} is set (DEVICE wins)"),
            });
        }
        let index = check_hardware(settings.device, hardware)?;
        return pick_plugin(kind, index, &rule, plugins, &mut check, rejected);
    }

    if settings.force_cpu {
        for kind in [DeviceKind::Cuda, DeviceKind::Mps] {
            rejected.push(Rejection { kind, plugin: None, reason: format!("{kind} skipped: FORCE_CPU is set") });
        }
        return pick_plugin(DeviceKind::Cpu, None, "`FORCE_CPU`", plugins, &mut check, rejected);
    }

    for kind in DeviceKind::PREFERENCE {
        if let Availability::Unavailable { reason } = hardware.of(kind) {
            rejected.push(Rejection { kind, plugin: None, reason: format!("{kind} unavailable: {reason}") });
            continue;
        }
        let index = (kind == DeviceKind::Cuda).then_some(0);
        let rule = if kind == DeviceKind::Cpu { "auto (last resort)" } else { "auto (best available)" };
        match pick_plugin(kind, index, rule, plugins, &mut check, std::mem::take(&mut rejected)) {
            Ok(selection) => return Ok(selection),
            Err(SelectError::NoUsablePlugin { rejected: r, .. }) if kind != DeviceKind::Cpu => rejected = r,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the CPU is always tried last and returns")
}

/// Checks an explicit spec against the hardware; returns the CUDA index.
fn check_hardware(spec: DeviceSpec, hardware: &HardwareFacts) -> Result<Option<u32>, SelectError> {
    let unavailable = |reason: String| SelectError::DeviceUnavailable { requested: spec, reason };
    match spec {
        DeviceSpec::Cuda(index) => match &hardware.cuda {
            Availability::Unavailable { reason } => Err(unavailable(format!("no CUDA device was found ({reason})"))),
            Availability::Available { devices } => {
                let index = index.unwrap_or(0);
                if index >= *devices {
                    Err(SelectError::CudaIndexOutOfRange { requested: spec, count: *devices })
                } else {
                    Ok(Some(index))
                }
            }
        },
        DeviceSpec::Mps => match &hardware.mps {
            Availability::Unavailable { reason } => Err(unavailable(format!("MPS is not available ({reason})"))),
            Availability::Available { .. } => Ok(None),
        },
        DeviceSpec::Cpu | DeviceSpec::Auto => Ok(None),
    }
}

fn pick_plugin<F>(
    kind: DeviceKind,
    index: Option<u32>,
    rule: &str,
    plugins: &[PluginFile],
    check: &mut F,
    mut rejected: Vec<Rejection>,
) -> Result<Selection, SelectError>
where
    F: FnMut(&PluginFile) -> Result<(), String>,
{
    let mut found = false;
    for plugin in plugins.iter().filter(|p| p.kind == kind) {
        found = true;
        match check(plugin) {
            Ok(()) => {
                return Ok(Selection {
                    kind,
                    index,
                    plugin: plugin.path.clone(),
                    reason: format!("{rule} chose {kind}"),
                    rejected,
                })
            }
            Err(reason) => rejected.push(Rejection {
                kind,
                plugin: Some(plugin.path.clone()),
                reason: format!("{}: {reason}", plugin.path.display()),
            }),
        }
    }
    if !found {
        rejected.push(Rejection {
            kind,
            plugin: None,
            reason: format!("no `{}` plugin file was found in the plugin folder", kind.plugin_name()),
        });
    }
    Err(SelectError::NoUsablePlugin { rule: rule.to_string(), kind, plugin: kind.plugin_name(), rejected })
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
