//! The human-readable form of `switchyard probe`.

use std::fmt::Write;

use crate::probe::ProbeOutput;

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Renders the report as aligned text.
pub fn render(out: &ProbeOutput) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "platform      {} {}", out.platform, out.machine);
    let _ = writeln!(
        s,
        "settings      DEVICE={} FORCE_CPU={} ONNX_PROVIDERS={}",
        out.settings.device,
        out.settings.force_cpu,
        out.settings
            .onnx_providers
            .as_ref()
            .map(|v| v.iter().map(|p| p.ort_name()).collect::<Vec<_>>().join(","))
            .unwrap_or_else(|| "(plugin default)".into())
    );
    let cuda = &out.hardware.cuda;
    match &cuda.unavailable_reason {
        None => {
            let _ = writeln!(
                s,
                "cuda          {} device(s), driver CUDA {} release {} ({})",
                cuda.devices.len(),
                cuda.driver_version.as_deref().unwrap_or("?"),
                cuda.driver_release.as_deref().unwrap_or("?"),
                cuda.driver_library.as_deref().unwrap_or("?")
            );
            for d in &cuda.devices {
                let _ = writeln!(
                    s,
                    "  cuda:{}      {}, {}, compute capability {}",
                    d.index,
                    d.name,
                    gib(d.total_memory),
                    d.compute_capability
                );
            }
        }
        Some(reason) => {
            let _ = writeln!(s, "cuda          unavailable: {reason}");
        }
    }
    match &out.hardware.mps {
        switchyard_core::select::Availability::Available { .. } => {
            let _ = writeln!(s, "mps           available");
        }
        switchyard_core::select::Availability::Unavailable { reason } => {
            let _ = writeln!(s, "mps           unavailable: {reason}");
        }
    }
    let _ = writeln!(
        s,
        "hardware probe {:.2} ms; decision {:.2} ms",
        out.hardware.took.as_secs_f64() * 1e3,
        out.decision_ms
    );
    let _ = writeln!(s, "\nplugin folder {}", out.plugin_folder.display());
    if let Some(e) = &out.plugin_folder_error {
        let _ = writeln!(s, "  {e}");
    }
    for p in &out.plugins {
        let name = p.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = p.named_kind.map(|k| k.as_str()).unwrap_or("?");
        let abi = p.abi.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        let status = if p.usable() {
            format!("usable: {}", p.probe.as_ref().map(|pr| pr.reason.as_str()).unwrap_or(""))
        } else {
            format!("rejected: {}", p.rejection())
        };
        let _ = writeln!(s, "  {name:<28} {kind:<5} abi {abi:<4} {status}  [{:.0} ms]", p.took_ms);
        if let Some(d) = &p.description {
            let build: Vec<String> = d.build.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "      {} {} {}", d.name, d.version, build.join(" "));
        }
        if let Some(probe) = &p.probe {
            for line in runtime_lines(&probe.extra, p.backend.as_ref().map(|b| b.extra.as_slice())) {
                let _ = writeln!(s, "      {line}");
            }
        }
        if let Some(b) = &p.backend {
            let get = |k: &str| b.extra.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
            let onnx = match (get("onnx_runs_on"), get("onnx_unavailable")) {
                (Some(on), _) => format!("ONNX models run on {on} (tries {})", b.onnx_providers.join(" > ")),
                (None, Some(why)) => format!("ONNX Runtime unavailable: {why}"),
                _ => String::new(),
            };
            let torch = match get("torch_dtype") {
                Some(dtype) => format!("TorchScript dtype {dtype}"),
                None => "libtorch loads with the first TorchScript model".into(),
            };
            let _ = writeln!(s, "      opened on {}; {torch}; {onnx}", b.device);
        }
    }
    if out.plugins.is_empty() && out.plugin_folder_error.is_none() {
        let _ = writeln!(s, "  (plugins not inspected)");
    }
    let _ = writeln!(s);
    match (&out.selection, &out.error) {
        (Some(sel), _) => {
            let _ = writeln!(s, "selected      {} via {}", sel.device(), sel.plugin.display());
            let _ = writeln!(s, "why           {}", sel.reason);
            for r in &sel.rejected {
                let _ = writeln!(s, "passed over   {}", r.reason);
            }
        }
        (None, Some(e)) => {
            let _ = writeln!(s, "error         {e}");
        }
        (None, None) => {}
    }
    s
}

/// `libtorch 2.11.0+cu130 at /x/torch (python: VIRTUAL_ENV=/x) [loaded]`, one
/// line per runtime, from a plugin's probe (and its open backend, which knows
/// what was loaded).
fn runtime_lines(probe: &[(String, String)], opened: Option<&[(String, String)]>) -> Vec<String> {
    let mut lines = Vec::new();
    for rt in ["libtorch", "onnxruntime"] {
        let get = |k: &str| {
            let key = format!("{rt}_{k}");
            let from = |facts: &[(String, String)]| facts.iter().find(|(x, _)| *x == key).map(|(_, v)| v.clone());
            opened.and_then(from).or_else(|| from(probe))
        };
        if let Some(err) = get("error") {
            lines.push(format!("{rt:<12} missing: {err}"));
        } else if let Some(path) = get("path") {
            let version = get("version").unwrap_or_else(|| "version unknown".into());
            let state = if get("loaded").as_deref() == Some("true") { "loaded" } else { "found" };
            lines.push(format!("{rt:<12} {version} {state} at {path} ({})", get("rule").unwrap_or_default()));
        }
    }
    lines
}
