//! The `switchyard` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::{DeviceArgs, ModelArgs, PluginArgs};
use switchyard::plugins::inspect::ChildInspect;
use switchyard::plugins::inspect_in_process;
use switchyard::probe::{self, ProbeOptions};
use switchyard::server::ServeArgs;

/// Device-portable CLIP and face embeddings: one host, one plugin per device.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `switchyard=debug` (default: `info` for serve, else `warn`).
    #[arg(long, env = "SWITCHYARD_LOG", global = true)]
    log: Option<String>,
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
    /// Embed image files (or folders of them) and texts with CLIP; JSON lines out, a summary on stderr.
    Embed(Box<EmbedArgs>),
    /// Serve embeddings over HTTP with dynamic batching (see docs/api.md).
    Serve(Box<ServeArgs>),
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

#[derive(Debug, clap::Args)]
struct EmbedArgs {
    /// Image files or folders (walked recursively for image extensions).
    paths: Vec<PathBuf>,
    /// A text to embed (repeatable).
    #[arg(long = "text")]
    texts: Vec<String>,
    /// A file with one text per line.
    #[arg(long, env = "SWITCHYARD_TEXTS_FILE")]
    texts_file: Option<PathBuf>,
    /// Where to write the JSON lines (default: standard output).
    #[arg(long, env = "SWITCHYARD_OUT")]
    out: Option<PathBuf>,
    /// Images or texts per device batch.
    #[arg(long, env = "SWITCHYARD_BATCH_SIZE", default_value_t = 32)]
    batch_size: usize,
    /// Threads reading, decoding and preprocessing images while the device runs.
    #[arg(long, env = "SWITCHYARD_IO_WORKERS", default_value_t = 2)]
    io_workers: usize,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, env = "SWITCHYARD_MAX_PIXELS", default_value_t = switchyard::image::decode::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(flatten)]
    models: ModelArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_log = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    let log = cli.log.as_deref().unwrap_or(default_log);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(log).unwrap_or_else(|_| default_log.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
        Command::Embed(args) => embed(*args),
        Command::Serve(args) => serve(*args),
        Command::InspectPlugin { path, device_index, device } => {
            let settings = device.resolve()?;
            let report = inspect_in_process(&path, &settings.backend_config(device_index), true);
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    use switchyard::runtime::RuntimeOptions;
    use switchyard::server::LoadPlan;

    let plan = LoadPlan {
        settings: args.device.resolve()?,
        runtime: RuntimeOptions {
            folder: args.plugins.folder(),
            explicit: args.plugins.plugins.clone(),
            inspect_exe: std::env::current_exe().ok(),
        },
        clip_dir: args.models.clip_dir(),
        clip_engine: args.models.engine()?,
        clip_pretrained: Some(args.models.clip_pretrained.clone()),
    };
    switchyard::server::serve(args.server_config(), plan)?;
    Ok(ExitCode::SUCCESS)
}

fn embed(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use switchyard::clip::pipeline::ClipPipeline;
    use switchyard::embed::{expand_paths, run, EmbedJob};
    use switchyard::runtime::{Runtime, RuntimeOptions};

    let settings = args.device.resolve()?;
    let engine = args.models.engine()?;
    let mut texts = args.texts.clone();
    if let Some(file) = &args.texts_file {
        let content =
            std::fs::read_to_string(file).with_context(|| format!("cannot read --texts-file `{}`", file.display()))?;
        texts.extend(content.lines().map(str::to_string));
    }
    let images = expand_paths(&args.paths).context("cannot list the image paths")?;
    if images.is_empty() && texts.is_empty() {
        anyhow::bail!("nothing to embed: give image files or folders, --text TEXT or --texts-file FILE");
    }
    let options = RuntimeOptions {
        folder: args.plugins.folder(),
        explicit: args.plugins.plugins.clone(),
        inspect_exe: std::env::current_exe().ok(),
    };
    let runtime = Runtime::start(&settings, &options)?;
    let engine = engine.unwrap_or_else(|| switchyard::clip::model::default_engine(runtime.selection.kind));
    let limits = switchyard::image::decode::DecodeLimits { max_pixels: args.max_pixels };
    let pipeline = ClipPipeline::load(
        runtime.backend.clone(),
        &args.models.clip_dir(),
        engine,
        Some(args.models.clip_pretrained.as_str()),
        limits,
    )?;
    let job = EmbedJob { images, texts, batch_size: args.batch_size, io_workers: args.io_workers };
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("cannot create --out `{}`", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let summary = run(&pipeline, &job, &mut out)?;
    out.flush()?;
    let device = &runtime.report;
    eprintln!(
        "embedded {} images ({} errors) and {} texts on {} ({}, {:?}, {}) in {:.2} s: {:.2} images/s, {:.1} texts/s; io {:.2} s (summed over {} workers), image compute {:.2} s",
        summary.images,
        summary.errors,
        summary.texts,
        device.device,
        device.plugin.name,
        pipeline.model.engine,
        pipeline.model.config.model,
        summary.wall_s,
        summary.images_per_s,
        summary.texts_per_s,
        summary.io_s,
        job.io_workers,
        summary.image_compute_s,
    );
    if pipeline.model.config.random_weights {
        eprintln!(
            "warning: the CLIP weights in {} are RANDOM (offline export); embeddings are meaningless",
            pipeline.model.dir.display()
        );
    }
    Ok(if summary.errors > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}
