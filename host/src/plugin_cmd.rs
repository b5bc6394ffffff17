//! `switchyard plugin pack | install | list`: the command-line side of
//! [`switchyard::package`] (a module of the binary, so it may use anyhow).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use switchyard::config::PluginArgs;
use switchyard::package;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a plugin package (switchyard-backend-<kind>-<version>-<platform>.tar.gz) into the plugin folder:
    /// checks the manifest, every sha256, the ABI and the runtimes it needs, then renames the files into place.
    Install {
        /// The package file.
        package: PathBuf,
        #[command(flatten)]
        plugins: PluginArgs,
    },
    /// List the plugins in the plugin folder: versions, ABI, and the runtimes each finds (or how to install them).
    List {
        /// Print JSON instead of a table.
        #[arg(long, env = "SWITCHYARD_PLUGIN_LIST_JSON", value_parser = switchyard::config::boolish)]
        json: bool,
        #[command(flatten)]
        plugins: PluginArgs,
    },
    /// Make a plugin package from a built plugin and the torch companion beside it (ci/package.sh).
    Pack {
        /// The plugin file, e.g. target/release/libbackend_cpu.so.
        plugin: PathBuf,
        /// The folder to write the package into.
        #[arg(long, env = "SWITCHYARD_PACKAGE_OUT", default_value = "dist")]
        out: PathBuf,
    },
}

fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("cannot find the switchyard executable (it checks plugins in a child process)")
}

/// One line per runtime from a probe's `libtorch_*` / `onnxruntime_*` keys.
fn runtime_lines(extra: &[(String, String)]) -> Vec<String> {
    let get = |k: String| extra.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone());
    let mut lines = Vec::new();
    for rt in ["libtorch", "onnxruntime"] {
        if let Some(err) = get(format!("{rt}_error")) {
            lines.push(format!("{rt:<12} MISSING: {err}"));
        } else if let Some(path) = get(format!("{rt}_path")) {
            let version = get(format!("{rt}_version")).unwrap_or_else(|| "version unknown".into());
            let rule = get(format!("{rt}_rule")).unwrap_or_default();
            lines.push(format!("{rt:<12} {version} at {path} (found by {rule})"));
        }
    }
    lines
}

pub fn run(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Pack { plugin, out } => {
            let (path, manifest) = package::pack(&plugin, &out)?;
            println!(
                "{} ({} {} abi {}, torch {}, glibc {})",
                path.display(),
                manifest.name,
                manifest.version,
                manifest.abi,
                manifest.runtimes.torch.as_deref().unwrap_or("-"),
                manifest.glibc.as_deref().unwrap_or("-")
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Install { package: file, plugins } => {
            let dir = plugins.folder();
            let report = package::install(&file, &dir, &exe()?)?;
            let m = &report.manifest;
            println!("installed {} {} ({}, abi {}) into {}", m.name, m.version, m.device_kind, m.abi, dir.display());
            for f in &report.installed {
                println!("  {}", f.display());
            }
            let lines = runtime_lines(&report.runtimes);
            for line in &lines {
                println!("  {line}");
            }
            if let (Some(need), Some(have)) = (&m.glibc, package::manifest::glibc_here()) {
                if !package::manifest::version_at_least(&have, need) {
                    println!(
                        "  warning: the plugin needs glibc {need}, this machine has {have}; it will not load here"
                    );
                }
            }
            if lines.iter().any(|l| l.contains("MISSING")) {
                println!("  the plugin is installed, but cannot run models until the missing runtime is installed");
            }
            println!(
                "a running `switchyard serve` switches to it on SIGHUP (`kill -HUP <pid>`) or `POST /admin/reload`; \
                 new processes use it at once"
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::List { json, plugins } => {
            let dir = plugins.folder();
            let listed = package::list(&dir, &exe()?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("plugin folder {}", dir.display());
            if listed.is_empty() {
                println!("  (no plugins; install one with `switchyard plugin install PACKAGE`)");
            }
            for l in &listed {
                let name = l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let abi = l.report.abi.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
                let (version, source) = match (&l.report.description, &l.manifest) {
                    (Some(d), Some(_)) => (d.version.clone(), "from a package"),
                    (Some(d), None) => (d.version.clone(), "no manifest: copied or built here"),
                    (None, _) => ("-".into(), ""),
                };
                let sha = match l.sha256_matches {
                    Some(true) => ", sha256 matches its manifest",
                    Some(false) => ", CHANGED since it was installed (sha256 differs from its manifest)",
                    None => "",
                };
                println!("  {name:<28} version {version} abi {abi} ({source}{sha})");
                if let Some(f) = &l.report.failure {
                    println!("      unusable: {}", f.message);
                }
                if let Some(p) = &l.report.probe {
                    let state = if p.available { "available" } else { "unavailable" };
                    println!("      device {state}: {}", p.reason);
                    for line in runtime_lines(&p.extra) {
                        println!("      {line}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
