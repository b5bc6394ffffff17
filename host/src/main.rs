//! The `switchyard` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::{DeviceArgs, PluginArgs};
use switchyard::plugins::inspect::ChildInspect;
use switchyard::plugins::inspect_in_process;
use switchyard::probe::{self, ProbeOptions};

/// Device-portable CLIP and face embeddings: one host, one plugin per device.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `switchyard=debug`.
    #[arg(long, env = "SWITCHYARD_LOG", default_value = "warn", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the platform, the devices, every plugin found and which device is selected, and why.
    Probe {
        /// Print JSON instead of a table.
        #[arg(long, env = "SWITCHYARD_PROBE_JSON")]
        json: bool,
        /// Decide from the hardware probe and file names alone, without loading any plugin.
        #[arg(long)]
        no_inspect: bool,
        #[command(flatten)]
        device: DeviceArgs,
        #[command(flatten)]
        plugins: PluginArgs,
    },
    /// Load one plugin file in this process and print its report as JSON (used by `probe`).
    #[command(hide = true)]
    InspectPlugin {
        path: PathBuf,
        /// The `cuda:N` index to probe.
        #[arg(long)]
        device_index: Option<u32>,
        #[command(flatten)]
        device: DeviceArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", switchyard::util::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Probe { json, no_inspect, device, plugins } => {
            let settings = device.resolve()?;
            let inspect = (!no_inspect)
                .then(|| -> anyhow::Result<ChildInspect> {
                    Ok(ChildInspect {
                        exe: std::env::current_exe().context("cannot find the switchyard executable")?,
                        device_index: None,
                        timeout: probe::inspect_timeout(),
                    })
                })
                .transpose()?;
            let options = ProbeOptions { folder: plugins.folder(), explicit: plugins.plugins.clone(), inspect };
            let out = probe::run(settings, &options);
            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", switchyard::render::render(&out));
            }
            for r in out.selection.iter().flat_map(|s| &s.rejected) {
                tracing::info!(kind = %r.kind, reason = %r.reason, "candidate rejected");
            }
            Ok(if out.selection.is_some() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::InspectPlugin { path, device_index, device } => {
            let settings = device.resolve()?;
            let report = inspect_in_process(&path, &settings.backend_config(device_index), true);
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
