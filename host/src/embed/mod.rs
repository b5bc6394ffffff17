//! `switchyard embed`: CLIP embeddings for photo libraries and texts, as
//! JSON lines, with a run metadata file.
//!
//! Image files are read, decoded and preprocessed on `io_workers` threads
//! while the device runs the previous batch; results are put back in input
//! order before batching, so the output order is the input order. A file
//! that cannot be read or decoded becomes an error line and the run goes on.
//! A stop request (Ctrl-C) stops the readers, embeds what is already
//! prepared, flushes and returns: the output stays valid for `--resume`.

pub mod metadata;
pub mod output;
pub mod progress;
pub mod walk;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clip::pipeline::ClipPipeline;
use crate::util::error_chain;
use output::Record;
use progress::Progress;

pub use walk::{expand_paths, Shard, IMAGE_EXTENSIONS};

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
    pub images_per_s: f64,
    pub texts_per_s: f64,
}

const ERROR_SAMPLES: usize = 50;

type Prepared = (usize, Result<(Vec<f32>, [u32; 2], u64), String>, Duration);

/// Runs the job, writing one JSON line per input to `out`. `stop` ends it early, cleanly.
pub fn run(
    pipeline: &ClipPipeline,
    job: &EmbedJob,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> anyhow::Result<EmbedSummary> {
    let start = Instant::now();
    let mut summary = EmbedSummary::default();
    let batch_size = job.batch_size.max(1);

    let text_start = Instant::now();
    for chunk in job.texts.chunks(batch_size) {
        if stop.load(Ordering::Relaxed) {
            summary.interrupted = true;
            break;
        }
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let embeddings = pipeline.embed_texts(&refs)?;
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
                let result = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}")).and_then(|bytes| {
                    let (pixels, (w, h)) = pipeline.prepare_image_sized(&bytes).map_err(|e| error_chain(&e))?;
                    Ok((pixels, [w, h], bytes.len() as u64))
                });
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
                    flush(pipeline, job, &mut batch, out, &mut summary)?;
                    progress.update((summary.images + summary.errors) as u64, summary.errors as u64);
                    ready = 0;
                }
            }
        }
        // Readers stop at the next file after a stop request; whatever arrived in order is still embedded.
        flush(pipeline, job, &mut batch, out, &mut summary)
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
    Record { kind: "image", path: None, text: None, size: None, bytes: None, embedding: None, error: None }
}

type Slot = (usize, Result<(Vec<f32>, [u32; 2], u64), String>);

fn flush(
    pipeline: &ClipPipeline,
    job: &EmbedJob,
    batch: &mut Vec<Slot>,
    out: &mut dyn Write,
    summary: &mut EmbedSummary,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let refs: Vec<&[f32]> = batch.iter().filter_map(|(_, r)| r.as_ref().ok().map(|(p, _, _)| p.as_slice())).collect();
    let t = Instant::now();
    let mut embeddings = pipeline.embed_prepared(&refs)?.into_iter();
    summary.image_compute_s += t.elapsed().as_secs_f64();
    summary.images += refs.len();
    for (i, result) in batch.drain(..) {
        let path = Some(job.images[i].as_path());
        match result {
            Ok((_, size, bytes)) => {
                let e = embeddings.next().expect("one embedding per prepared image");
                let record = Record { path, size: Some(size), bytes: Some(bytes), embedding: Some(&e), ..empty() };
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
