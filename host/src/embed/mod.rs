//! `switchyard embed`: CLIP embeddings and faces for photo libraries, and
//! CLIP embeddings for texts, as JSON lines, with a run metadata file.
//!
//! Image files are read and decoded once, on `io_workers` threads, which
//! also preprocess for CLIP and run face detection + recognition (the face
//! models are small and per image) while the main thread runs the previous
//! CLIP batch on the device; results are put back in input order before
//! batching, so the output order is the input order. A file
//! that cannot be read or decoded becomes an error line and the run goes on.
//! A stop request (SIGINT or SIGTERM, [`signals`]) stops the readers, embeds what is already
//! prepared, flushes and returns: the output stays valid for `--resume`.
//!
//! [`command`] is the `switchyard embed` command around this job (flags,
//! inputs, model loading, summary, metadata).

pub mod command;
pub mod metadata;
pub mod output;
pub mod progress;
pub mod signals;
pub mod walk;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clip::pipeline::ClipPipeline;
use crate::faces::pipeline::{Face, FacePipeline};
use crate::util::error_chain;
use output::Record;
use progress::Progress;

pub use walk::{expand_paths, Shard, IMAGE_EXTENSIONS};

/// The models a run uses: CLIP, faces, or both.
pub struct Pipelines<'a> {
    pub clip: Option<&'a ClipPipeline>,
    pub faces: Option<&'a FacePipeline>,
}

/// What to embed and how.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    pub images: Vec<PathBuf>,
    pub texts: Vec<String>,
    pub batch_size: usize,
    pub io_workers: usize,
    /// No progress bar even on a terminal.
    pub quiet: bool,
}

/// Counts and timings of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbedSummary {
    /// Images embedded.
    pub images: usize,
    pub texts: usize,
    /// Images that failed (read or decode), each with an error line.
    pub errors: usize,
    /// The first errors, for the metadata file.
    pub error_samples: Vec<(PathBuf, String)>,
    /// Whether a stop request ended the run early.
    pub interrupted: bool,
    pub wall_s: f64,
    /// Summed time the workers spent reading, decoding and preprocessing.
    pub io_s: f64,
    /// Time the device spent on image batches.
    pub image_compute_s: f64,
    /// Time spent tokenizing and embedding texts.
    pub text_s: f64,
    /// Summed time the workers spent on face detection + recognition.
    pub faces_compute_s: f64,
    /// Faces found.
    pub faces: usize,
    pub images_per_s: f64,
    pub texts_per_s: f64,
}

const ERROR_SAMPLES: usize = 50;

/// One decoded image's results before its CLIP batch runs.
struct Item {
    pixels: Option<Vec<f32>>,
    size: [u32; 2],
    bytes: u64,
    faces: Option<Vec<Face>>,
    faces_s: f64,
}

type Slot = (usize, Result<Item, String>);
type Prepared = (usize, Result<Item, String>, Duration);

/// Reads and decodes one file once, then prepares it for CLIP and runs faces on it.
fn prepare(p: &Pipelines<'_>, path: &std::path::Path) -> Result<Item, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    let rgb = match (p.clip, p.faces) {
        // faces need the full picture; CLIP alone may take a reduced-scale decode
        (Some(clip), Some(_)) => clip.decode(&bytes).map_err(|e| error_chain(&e))?,
        (Some(clip), None) => clip.decode_for_clip(&bytes).map_err(|e| error_chain(&e))?,
        (None, Some(faces)) => faces.prepare_image(&bytes).map_err(|e| error_chain(&e))?,
        (None, None) => return Err("no model selected: use --clip and/or --faces".into()),
    };
    let pixels = p.clip.map(|clip| clip.prepare_decoded(&rgb));
    let t = Instant::now();
    let faces = match p.faces {
        Some(f) => Some(f.detect_and_embed(&[&rgb]).map_err(|e| error_chain(&e))?.pop().unwrap_or_default()),
        None => None,
    };
    let faces_s = t.elapsed().as_secs_f64();
    let (width, height) = rgb.source_size();
    Ok(Item { pixels, size: [width, height], bytes: bytes.len() as u64, faces, faces_s })
}

/// Runs the job, writing one JSON line per input to `out`. `stop` ends it early, cleanly.
pub fn run(p: &Pipelines<'_>, job: &EmbedJob, out: &mut dyn Write, stop: &AtomicBool) -> anyhow::Result<EmbedSummary> {
    let start = Instant::now();
    let mut summary = EmbedSummary::default();
    let batch_size = job.batch_size.max(1);

    let text_start = Instant::now();
    let texts: &[String] = if p.clip.is_some() { &job.texts } else { &[] };
    for chunk in texts.chunks(batch_size) {
        if stop.load(Ordering::Relaxed) {
            summary.interrupted = true;
            break;
        }
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let embeddings = p.clip.expect("texts only with CLIP").embed_texts(&refs)?;
        for (text, e) in chunk.iter().zip(&embeddings) {
            write_record(out, Record { kind: "text", text: Some(text), embedding: Some(e), ..empty() })?;
        }
        summary.texts += chunk.len();
    }
    out.flush()?;
    summary.text_s = text_start.elapsed().as_secs_f64();

    let mut progress = Progress::new(job.images.len() as u64, job.quiet, Duration::from_secs(10));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<Prepared>(batch_size * 2);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..job.io_workers.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = job.images.get(i) else { break };
                let t = Instant::now();
                let result = prepare(p, path);
                if tx.send((i, result, t.elapsed())).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        // Failed images wait in the batch too, so lines come out in input order.
        let mut batch = Vec::with_capacity(batch_size);
        let mut ready = 0;
        let mut expected = 0;
        for (i, result, took) in rx.iter() {
            pending.insert(i, (result, took));
            while let Some((result, took)) = pending.remove(&expected) {
                summary.io_s += took.as_secs_f64();
                ready += usize::from(result.is_ok());
                batch.push((expected, result));
                expected += 1;
                if ready == batch_size {
                    flush(p, job, &mut batch, out, &mut summary)?;
                    progress.update((summary.images + summary.errors) as u64, summary.errors as u64);
                    ready = 0;
                }
            }
        }
        // Readers stop at the next file after a stop request; whatever arrived in order is still embedded.
        flush(p, job, &mut batch, out, &mut summary)
    })?;
    progress.update((summary.images + summary.errors) as u64, summary.errors as u64);
    progress.finish();
    summary.interrupted |= stop.load(Ordering::Relaxed) && summary.images + summary.errors < job.images.len();
    summary.wall_s = start.elapsed().as_secs_f64();
    let image_wall = (summary.wall_s - summary.text_s).max(1e-9);
    summary.images_per_s = summary.images as f64 / image_wall;
    if summary.texts > 0 {
        summary.texts_per_s = summary.texts as f64 / summary.text_s.max(1e-9);
    }
    Ok(summary)
}

fn empty<'a>() -> Record<'a> {
    Record { kind: "image", path: None, text: None, size: None, bytes: None, embedding: None, faces: None, error: None }
}

fn flush(
    p: &Pipelines<'_>,
    job: &EmbedJob,
    batch: &mut Vec<Slot>,
    out: &mut dyn Write,
    summary: &mut EmbedSummary,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let refs: Vec<&[f32]> = batch.iter().filter_map(|(_, r)| r.as_ref().ok()?.pixels.as_deref()).collect();
    let t = Instant::now();
    let mut embeddings = match p.clip {
        Some(clip) if !refs.is_empty() => clip.embed_prepared(&refs)?.into_iter(),
        _ => Vec::new().into_iter(),
    };
    summary.image_compute_s += t.elapsed().as_secs_f64();
    for (i, result) in batch.drain(..) {
        let path = Some(job.images[i].as_path());
        match result {
            Ok(item) => {
                summary.images += 1;
                summary.faces_compute_s += item.faces_s;
                summary.faces += item.faces.as_ref().map_or(0, Vec::len);
                let e = item.pixels.as_ref().map(|_| embeddings.next().expect("one embedding per prepared image"));
                let record = Record {
                    path,
                    size: Some(item.size),
                    bytes: Some(item.bytes),
                    embedding: e.as_deref(),
                    faces: item.faces.as_deref(),
                    ..empty()
                };
                write_record(out, record)?;
            }
            Err(error) => {
                summary.errors += 1;
                if summary.error_samples.len() < ERROR_SAMPLES {
                    summary.error_samples.push((job.images[i].clone(), error.clone()));
                }
                write_record(out, Record { path, error: Some(error), ..empty() })?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn write_record(out: &mut dyn Write, record: Record<'_>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}
