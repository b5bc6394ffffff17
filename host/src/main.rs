//! The `switchyard` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard::config::{boolish, DeviceArgs, FaceDetectArgs, ModelArgs, PluginArgs, BOOLEAN_VALUES_HELP};
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
    /// CLIP image embeddings (the default when neither --clip nor --faces is given).
    #[arg(long, env = "SWITCHYARD_CLIP", value_parser = boolish)]
    clip: bool,
    /// Face detection + recognition for every image (with --clip: both).
    #[arg(long, env = "SWITCHYARD_FACES", value_parser = boolish)]
    faces: bool,
    #[command(flatten)]
    face_detect: FaceDetectArgs,
    /// Continue the --out file of an interrupted run: skip what it already holds.
    #[arg(long, env = "SWITCHYARD_RESUME", value_parser = boolish)]
    resume: bool,
    /// Embed only this machine's share of the files: I/N (e.g. $JOB_COMPLETION_INDEX/4).
    #[arg(long, env = "SWITCHYARD_SHARD")]
    shard: Option<String>,
    /// The run metadata file (default: the --out file with extension .meta.json).
    #[arg(long, env = "SWITCHYARD_METADATA")]
    metadata: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, env = "SWITCHYARD_QUIET", value_parser = boolish)]
    quiet: bool,
    /// Refuse images with more pixels than this (decompression bombs).
    #[arg(long, env = "SWITCHYARD_MAX_PIXELS", default_value_t = switchyard::image::decode::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Decode large JPEGs for CLIP at reduced DCT scale (Pillow's `draft`) when faces are not asked
    /// for: several times faster for camera photos; `false` keeps PIL's exact pixels.
    #[arg(long, env = "SWITCHYARD_SCALED_DECODE", default_value_t = true, action = clap::ArgAction::Set, value_parser = boolish)]
    scaled_decode: bool,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(flatten)]
    models: ModelArgs,
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
        Command::Embed(args) => embed(*args),
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
    let plan = load_plan(&args)?;
    // A plugin swap checks what the next image will read: this command line and environment.
    let replan: switchyard::server::Replan = std::sync::Arc::new(|| {
        let cli = Cli::try_parse_from(std::env::args_os()).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Serve(args) => load_plan(&args).map_err(|e| switchyard::util::error_chain(e.as_ref())),
            _ => Err("the process is not `switchyard serve`".into()),
        }
    });
    switchyard::server::serve(args.server_config(), plan, replan)?;
    Ok(ExitCode::SUCCESS)
}

/// What `serve` loads, from its settings.
fn load_plan(args: &ServeArgs) -> anyhow::Result<switchyard::server::LoadPlan> {
    use switchyard::runtime::RuntimeOptions;

    Ok(switchyard::server::LoadPlan {
        settings: args.device.resolve()?,
        runtime: RuntimeOptions {
            folder: args.plugins.folder(),
            explicit: args.plugins.plugins.clone(),
            inspect_exe: std::env::current_exe().ok(),
        },
        clip_dir: args.models.clip_dir(),
        clip_engine: args.models.engine()?,
        clip_pretrained: Some(args.models.clip_pretrained.clone()),
        face_dir: args.models.face_dir(),
        face_model_name: args.models.face_model_name.clone(),
        fallback: args.fallback()?,
    })
}

fn embed(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    use switchyard::clip::pipeline::ClipPipeline;
    use switchyard::embed::metadata::{now_unix, ClipFacts, InputFacts, RunMetadata};
    use switchyard::embed::{expand_paths, output, run, EmbedJob, Pipelines, Shard};
    use switchyard::faces::pipeline::{FaceOptions, FacePipeline};
    use switchyard::runtime::{Runtime, RuntimeOptions};

    let started = now_unix();
    // Before anything slow (listing, loading the models): a stop then is a clean stop too.
    let stop = switchyard::embed::signals::install().context("cannot listen for SIGINT and SIGTERM")?;
    let settings = args.device.resolve()?;
    let engine = args.models.engine()?;
    let shard: Option<Shard> = args.shard.as_deref().filter(|s| !s.is_empty()).map(str::parse).transpose()?;
    if args.resume && args.out.is_none() {
        anyhow::bail!("--resume needs --out FILE: it continues the output file of an interrupted run");
    }
    let mut texts = args.texts.clone();
    if let Some(file) = &args.texts_file {
        let content =
            std::fs::read_to_string(file).with_context(|| format!("cannot read --texts-file `{}`", file.display()))?;
        texts.extend(content.lines().map(str::to_string));
    }
    let listed = expand_paths(&args.paths).context("cannot list the image paths")?;
    let images_listed = listed.len();
    let in_shard: Vec<_> = listed.into_iter().filter(|p| shard.is_none_or(|s| s.contains(p))).collect();
    if in_shard.is_empty() && texts.is_empty() {
        anyhow::bail!("nothing to embed: give image files or folders, --text TEXT or --texts-file FILE");
    }
    let (mut out, done): (Box<dyn Write>, output::Done) = match &args.out {
        Some(path) => {
            let (w, done) =
                output::open(path, args.resume).with_context(|| format!("cannot open --out `{}`", path.display()))?;
            (Box::new(w), done)
        }
        None => (Box::new(std::io::BufWriter::new(std::io::stdout().lock())), output::Done::default()),
    };
    if done.truncated_bytes > 0 {
        eprintln!("resume: cut a partial last line ({} bytes) from the output", done.truncated_bytes);
    }
    let images_in_shard = in_shard.len();
    let images: Vec<_> = in_shard.into_iter().filter(|p| !done.images.contains(p)).collect();
    let texts_total = texts.len();
    texts.retain(|t| !done.texts.contains(t));

    let options = RuntimeOptions {
        folder: args.plugins.folder(),
        explicit: args.plugins.plugins.clone(),
        inspect_exe: std::env::current_exe().ok(),
    };
    let runtime = Runtime::start(&settings, &options)?;
    let engine = engine.unwrap_or_else(|| switchyard::clip::model::default_engine(runtime.selection.kind));
    let limits = switchyard::image::decode::DecodeLimits { max_pixels: args.max_pixels };
    let want_clip = args.clip || !args.faces || !texts.is_empty();
    let clip = want_clip
        .then(|| {
            ClipPipeline::load(
                runtime.backend.clone(),
                &args.models.clip_dir(),
                engine,
                Some(args.models.clip_pretrained.as_str()),
                limits,
            )
            .map(|clip| clip.with_scaled_decode(args.scaled_decode))
        })
        .transpose()?;
    let face_options = FaceOptions {
        det_size: args.face_detect.face_det_size,
        det_threshold: args.face_detect.face_det_threshold,
        nms_threshold: args.face_detect.face_nms_threshold,
        max_num: args.face_detect.face_max_num,
        limits,
        ..FaceOptions::default()
    };
    let faces = args
        .faces
        .then(|| FacePipeline::load(runtime.backend.clone(), &args.models.face_dir(), face_options))
        .transpose()?;
    let pipelines = Pipelines { clip: clip.as_ref(), faces: faces.as_ref() };

    let inputs = InputFacts {
        images_listed,
        images_in_shard,
        images_already_done: images_in_shard - images.len(),
        texts: texts_total,
        texts_already_done: texts_total - texts.len(),
        shard,
        resumed: args.resume,
    };
    let job = EmbedJob { images, texts, batch_size: args.batch_size, io_workers: args.io_workers, quiet: args.quiet };
    let summary = run(&pipelines, &job, &mut out, stop.flag())?;
    out.flush()?;
    // The runtimes are loaded with the first model: report what was loaded, not what was found at startup.
    let mut device = runtime.report.clone();
    device.backend_extra = switchyard_core::abi::kv_to_vec(&runtime.backend.info().extra);
    let device = &device;
    let models = [
        clip.as_ref().map(|c| format!("CLIP {} {:?} on {}", c.model.config.model, c.model.engine, c.model.device())),
        faces.as_ref().map(|f| format!("faces {} on {}", args.models.face_model_name, f.info().detector_device)),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    eprintln!(
        "embedded {} images ({} errors, {} faces) and {} texts on {} ({}; {}) in {:.2} s: {:.2} images/s, {:.1} texts/s; io {:.2} s (summed over {} workers), image compute {:.2} s, faces {:.2} s (in the workers){}",
        summary.images,
        summary.errors,
        summary.faces,
        summary.texts,
        device.device,
        device.plugin.name,
        models,
        summary.wall_s,
        summary.images_per_s,
        summary.texts_per_s,
        summary.io_s,
        job.io_workers,
        summary.image_compute_s,
        summary.faces_compute_s,
        match (summary.interrupted, stop.signal_name()) {
            (true, Some(signal)) => format!("; STOPPED by {signal}: run again with --resume to continue"),
            (true, None) => "; INTERRUPTED: run again with --resume to continue".to_string(),
            _ => String::new(),
        },
    );
    if let Some(c) = clip.as_ref().filter(|c| c.model.config.random_weights) {
        eprintln!(
            "warning: the CLIP weights in {} are RANDOM (offline export); embeddings are meaningless",
            c.model.dir.display()
        );
    }
    if let Some(f) = faces.as_ref().filter(|f| f.info().random_weights) {
        eprintln!(
            "warning: the face models in {} are offline STAND-INS; detections and embeddings are not real",
            f.info().dir.display()
        );
    }
    let metadata_path = args.metadata.clone().or_else(|| args.out.as_ref().map(|o| o.with_extension("meta.json")));
    if let Some(path) = metadata_path {
        let meta = RunMetadata {
            switchyard_version: env!("CARGO_PKG_VERSION"),
            started_unix_s: started,
            finished_unix_s: now_unix(),
            command: std::env::args().collect(),
            output: args.out.clone().unwrap_or_else(|| "-".into()),
            device,
            gpu_name: None,
            gpu_memory_bytes: None,
            mps_available: false,
            device_memory: Vec::new(),
            clip: clip.as_ref().map(|c| ClipFacts {
                model: c.model.config.model.clone(),
                pretrained: c.model.config.pretrained.clone(),
                random_weights: c.model.config.random_weights,
                engine: format!("{:?}", c.model.engine).to_lowercase(),
                runs_on: c.model.device().to_string(),
            }),
            faces: faces.as_ref().map(|f| f.info().clone()),
            inputs,
            summary: &summary,
            stopped_by: stop.signal_name(),
        }
        .with_hardware();
        meta.write(&path).with_context(|| format!("cannot write the metadata file `{}`", path.display()))?;
    }
    Ok(if summary.interrupted {
        ExitCode::from(stop.exit_code().unwrap_or(130))
    } else if summary.errors > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
