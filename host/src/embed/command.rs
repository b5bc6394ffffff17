//! `switchyard embed` as a command: its flags ([`EmbedArgs`]), then the run
//! from the command line to the exit code: list and shard the inputs, resume
//! an output file, load the models ([`crate::loader`], the same path as
//! `serve`), run the job ([`super::run`]), print the summary and write the
//! run metadata file. The edge of the library, so its errors are anyhow's,
//! with messages that name the flag to fix.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::metadata::{now_unix, ClipFacts, InputFacts, RunMetadata};
use super::{expand_paths, output, EmbedJob, Pipelines, Shard};
use crate::config::{boolish, DeviceArgs, FaceDetectArgs, ModelArgs, PluginArgs};
use crate::image::decode::DecodeLimits;
use crate::loader::{ClipDecode, FaceDetect, LoadPlan};

/// `switchyard embed`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbedArgs {
    /// Image files or folders (walked recursively for image extensions).
    pub paths: Vec<PathBuf>,
    /// A text to embed (repeatable).
    #[arg(long = "text")]
    pub texts: Vec<String>,
    /// A file with one text per line.
    #[arg(long, env = "SWITCHYARD_TEXTS_FILE")]
    pub texts_file: Option<PathBuf>,
    /// Where to write the JSON lines (default: standard output).
    #[arg(long, env = "SWITCHYARD_OUT")]
    pub out: Option<PathBuf>,
    /// Images or texts per device batch.
    #[arg(long, env = "SWITCHYARD_BATCH_SIZE", default_value_t = 32)]
    pub batch_size: usize,
    /// Threads reading, decoding and preprocessing images while the device runs.
    #[arg(long, env = "SWITCHYARD_IO_WORKERS", default_value_t = 2)]
    pub io_workers: usize,
    /// CLIP image embeddings (the default when neither --clip nor --faces is given).
    #[arg(long, env = "SWITCHYARD_CLIP", value_parser = boolish)]
    pub clip: bool,
    /// Face detection + recognition for every image (with --clip: both).
    #[arg(long, env = "SWITCHYARD_FACES", value_parser = boolish)]
    pub faces: bool,
    #[command(flatten)]
    pub face_detect: FaceDetectArgs,
    /// Continue the --out file of an interrupted run: skip what it already holds.
    #[arg(long, env = "SWITCHYARD_RESUME", value_parser = boolish)]
    pub resume: bool,
    /// Embed only this machine's share of the files: I/N (e.g. $JOB_COMPLETION_INDEX/4).
    #[arg(long, env = "SWITCHYARD_SHARD")]
    pub shard: Option<String>,
    /// The run metadata file (default: the --out file with extension .meta.json).
    #[arg(long, env = "SWITCHYARD_METADATA")]
    pub metadata: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, env = "SWITCHYARD_QUIET", value_parser = boolish)]
    pub quiet: bool,
    #[command(flatten)]
    pub decode: crate::config::DecodeArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub plugins: PluginArgs,
    #[command(flatten)]
    pub models: ModelArgs,
}

/// Runs `switchyard embed`: exit 0 when every input was embedded, 3 when some
/// images failed (each has an error line), 130 (or the signal's code) when stopped.
pub fn run(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    let started = now_unix();
    // Before anything slow (listing, loading the models): a stop then is a clean stop too.
    let stop = super::signals::install().context("cannot listen for SIGINT and SIGTERM")?;
    let plan = LoadPlan::from_args(&args.device, &args.plugins, &args.models, false)?;
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

    let runtime = plan.start()?;
    let kind = runtime.selection.kind;
    let limits = DecodeLimits { max_pixels: args.decode.max_pixels };
    let want_clip = args.clip || !args.faces || !texts.is_empty();
    let clip = want_clip
        .then(|| plan.load_clip(&runtime.backend, kind, ClipDecode { limits, scaled: args.decode.scaled_decode }))
        .transpose()?;
    let face_options = FaceDetect::from(&args.face_detect).options(limits);
    let faces = args.faces.then(|| plan.load_faces(&runtime.backend, face_options)).transpose()?;
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
    let summary = super::run(&pipelines, &job, &mut out, stop.flag())?;
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
