//! The `switchyard` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::{boolish, DeviceArgs, PluginArgs, BOOLEAN_VALUES_HELP};
use switchyard::embed::command::EmbedArgs;
use switchyard::logging::LogFormat;
use switchyard::plugins::inspect::ChildInspect;
use switchyard::plugins::{inspect_in_process, Depth};
use switchyard::probe::{self, ProbeOptions};
use switchyard::server::ServeArgs;

mod plugin_cmd;

/// Device-portable CLIP and face embeddings: one host, one plugin per device.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, after_help = BOOLEAN_VALUES_HELP)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `switchyard=debug`; unset: `RUST_LOG`,
    /// else `info` for serve and `warn` for the rest.
    #[arg(long, env = "SWITCHYARD_LOG", global = true)]
    log: Option<String>,
    /// Log line format: text, or json (one object a line with the span fields, for log collectors).
    #[arg(long, env = "SWITCHYARD_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the platform, the devices, every plugin found and which device is selected, and why.
    Probe {
        /// Print JSON instead of a table.
        #[arg(long, env = "SWITCHYARD_PROBE_JSON", value_parser = boolish)]
        json: bool,
        /// Decide from the hardware probe and file names alone, without loading any plugin.
        #[arg(long)]
        no_inspect: bool,
        #[command(flatten)]
        device: DeviceArgs,
        #[command(flatten)]
        plugins: PluginArgs,
    },
    /// Embed image files (or folders of them) and texts with CLIP; JSON lines out, a summary on stderr.
    Embed(Box<EmbedArgs>),
    /// Serve embeddings over HTTP with dynamic batching (see docs/api.md).
    Serve(Box<ServeArgs>),
    /// Plugin packages: install, list, pack.
    #[command(subcommand)]
    Plugin(plugin_cmd::PluginCommand),
    /// Load one plugin file in this process and print its report as JSON (used by `probe`).
    #[command(hide = true)]
    InspectPlugin {
        path: PathBuf,
        /// The `cuda:N` index to probe.
        #[arg(long)]
        device_index: Option<u32>,
        /// Also load the plugin's torch companion (the FALLBACK=cpu check).
        #[arg(long)]
        with_companion: bool,
        #[command(flatten)]
        device: DeviceArgs,
    },
}

fn main() -> ExitCode {
    for line in switchyard::config::apply_renamed_variables() {
        eprintln!("{line}");
    }
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        let note = switchyard::config::env_source_note(&e, &<Cli as clap::CommandFactory>::command());
        let code = e.exit_code();
        let _ = e.print();
        if let Some(note) = note {
            eprintln!("{note}");
        }
        std::process::exit(code)
    });
    if matches!(cli.command, Command::Probe { .. } | Command::Plugin(_) | Command::InspectPlugin { .. }) {
        quiet_on_closed_stdout();
    }
    let default_log = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    if let Some(warning) = switchyard::logging::init(cli.log.as_deref(), default_log, cli.log_format) {
        eprintln!("{warning}");
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", switchyard::util::error_chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// `switchyard probe | head` must end quietly as other command-line tools do,
/// not panic in `println!`: the printing commands take the default SIGPIPE
/// action back (Rust ignores it). `serve` and `embed` keep it ignored: a
/// closed socket or output is an error they handle.
fn quiet_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called once at startup before any thread is spawned; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
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
                        timeout: switchyard::plugins::inspect::inspect_timeout(),
                        with_companion: false,
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
        Command::Embed(args) => switchyard::embed::command::run(*args),
        Command::Serve(args) => serve(*args),
        Command::Plugin(command) => plugin_cmd::run(command),
        Command::InspectPlugin { path, device_index, with_companion, device } => {
            let settings = device.resolve()?;
            let depth = if with_companion { Depth::OpenWithCompanion } else { Depth::Open };
            let report = inspect_in_process(&path, &settings.backend_config(device_index), depth);
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let plan = args.load_plan()?;
    // A plugin swap checks what the next image will read: this command line and environment.
    let replan: switchyard::server::Replan = std::sync::Arc::new(|| {
        let cli = Cli::try_parse_from(std::env::args_os()).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Serve(args) => args.load_plan().map_err(|e| switchyard::util::error_chain(e.as_ref())),
            _ => Err("the process is not `switchyard serve`".into()),
        }
    });
    switchyard::server::serve(args.server_config(), plan, replan)?;
    Ok(ExitCode::SUCCESS)
}
