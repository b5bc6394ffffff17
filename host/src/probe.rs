//! `switchyard probe`: the device report. The hardware probe, every plugin
//! file found (inspected in child processes), the selected device and the
//! reason each other candidate was rejected.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use switchyard_core::select::Selection;
use switchyard_core::DeviceSpec;

use crate::config::DeviceSettings;
use crate::hardware::{self, HardwareReport};
use crate::plugins::inspect::ChildInspect;
use crate::plugins::{discover, inspect_in_child, FoundPlugin, PluginReport};
use crate::runtime::decide;

/// The whole report, as printed by `switchyard probe --json`.
#[derive(Debug, Serialize)]
pub struct ProbeOutput {
    pub platform: &'static str,
    pub machine: &'static str,
    pub settings: DeviceSettings,
    pub hardware: HardwareReport,
    pub plugin_folder: PathBuf,
    /// Why the folder could not be read, if it could not.
    pub plugin_folder_error: Option<String>,
    pub plugins: Vec<PluginReport>,
    pub selection: Option<Selection>,
    /// Why no device could be selected.
    pub error: Option<String>,
    /// Hardware probe + discovery + policy, without plugin inspection (ms).
    pub decision_ms: f64,
}

/// How to run the probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub folder: PathBuf,
    pub explicit: Vec<PathBuf>,
    /// Inspect plugins in child processes (else trust that the files work).
    pub inspect: Option<ChildInspect>,
}

/// Runs the probe.
pub fn run(settings: DeviceSettings, options: &ProbeOptions) -> ProbeOutput {
    let start = Instant::now();
    let hardware = hardware::probe();
    let (found, folder_error) = match discover(&options.folder, &options.explicit) {
        Ok(found) => (found, None),
        Err(e) => (Vec::new(), Some(crate::util::error_chain(&e))),
    };
    let quick = decide(&settings, &hardware, &found, |_| Ok(()));
    let decision_ms = start.elapsed().as_secs_f64() * 1e3;

    let (plugins, result) = match &options.inspect {
        None => (Vec::new(), quick),
        Some(how) => {
            let mut how = how.clone();
            how.device_index = match settings.device {
                DeviceSpec::Cuda(i) => i,
                _ => None,
            };
            let reports = inspect_all(&found, &how);
            let result = decide(&settings, &hardware, &found, |file| {
                let report = reports.iter().find(|r| r.path == file.path).expect("every file was inspected");
                if report.usable() {
                    Ok(())
                } else {
                    Err(report.rejection())
                }
            });
            (reports, result)
        }
    };
    let (selection, error) = match result {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    ProbeOutput {
        platform: std::env::consts::OS,
        machine: std::env::consts::ARCH,
        settings,
        hardware,
        plugin_folder: options.folder.clone(),
        plugin_folder_error: folder_error,
        plugins,
        selection,
        error,
        decision_ms,
    }
}

/// Inspects every file in parallel child processes.
fn inspect_all(found: &[FoundPlugin], how: &ChildInspect) -> Vec<PluginReport> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = found.iter().map(|f| scope.spawn(move || inspect_in_child(&f.path, how))).collect();
        handles.into_iter().map(|h| h.join().expect("inspection threads do not panic")).collect()
    })
}
