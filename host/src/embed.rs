//! `switchyard embed`: embeddings for image files and texts from the command
//! line, written as JSON lines, with a throughput summary.
//!
//! Image files are read, decoded and preprocessed on a pool of `io_workers`
//! threads while the device runs the previous batch; results are put back in
//! input order before batching, so the output order is the input order. A
//! file that cannot be read or decoded becomes an error line and the run goes
//! on.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clip::pipeline::ClipPipeline;
use crate::util::error_chain;

/// Image extensions picked up when walking folders.
pub const IMAGE_EXTENSIONS: &[&str] =
    &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "jfif", "pgm", "ppm"];

/// What to embed and how.
#[derive(Debug, Clone)]
pub struct EmbedJob {
    pub images: Vec<PathBuf>,
    pub texts: Vec<String>,
    pub batch_size: usize,
    pub io_workers: usize,
}

/// Counts and timings of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmbedSummary {
    pub images: usize,
    pub texts: usize,
    pub errors: usize,
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

/// One output line.
#[derive(Debug, Serialize)]
struct Record<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Expands folders (recursively, by image extension, not following symlinked folders) into files, sorted.
pub fn expand_paths(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(input.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            walk(&path, out)?;
        } else if (kind.is_file() || kind.is_symlink() && path.is_file())
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

type Prepared = (usize, Result<Vec<f32>, String>, Duration);

/// Runs the job, writing one JSON line per input to `out`.
pub fn run(pipeline: &ClipPipeline, job: &EmbedJob, out: &mut dyn Write) -> anyhow::Result<EmbedSummary> {
    let start = Instant::now();
    let mut summary = EmbedSummary::default();
    let batch_size = job.batch_size.max(1);

    let text_start = Instant::now();
    for chunk in job.texts.chunks(batch_size) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let embeddings = pipeline.embed_texts(&refs)?;
        for (text, e) in chunk.iter().zip(&embeddings) {
            write_record(out, Record { kind: "text", path: None, text: Some(text), embedding: Some(e), error: None })?;
        }
        summary.texts += chunk.len();
    }
    summary.text_s = text_start.elapsed().as_secs_f64();

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<Prepared>(batch_size * 2);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..job.io_workers.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = job.images.get(i) else { break };
                let t = Instant::now();
                let result = std::fs::read(path)
                    .map_err(|e| format!("cannot read the file: {e}"))
                    .and_then(|bytes| pipeline.prepare_image(&bytes).map_err(|e| error_chain(&e)));
                if tx.send((i, result, t.elapsed())).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, (Result<Vec<f32>, String>, Duration)> = BTreeMap::new();
        // Failed images wait in the batch too, so lines come out in input order.
        let mut batch: Vec<(usize, Result<Vec<f32>, String>)> = Vec::with_capacity(batch_size);
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
                    ready = 0;
                }
            }
        }
        flush(pipeline, job, &mut batch, out, &mut summary)
    })?;
    summary.wall_s = start.elapsed().as_secs_f64();
    if summary.image_compute_s > 0.0 || summary.images > 0 {
        summary.images_per_s = summary.images as f64 / (summary.wall_s - summary.text_s).max(1e-9);
    }
    if summary.texts > 0 {
        summary.texts_per_s = summary.texts as f64 / summary.text_s.max(1e-9);
    }
    Ok(summary)
}

fn flush(
    pipeline: &ClipPipeline,
    job: &EmbedJob,
    batch: &mut Vec<(usize, Result<Vec<f32>, String>)>,
    out: &mut dyn Write,
    summary: &mut EmbedSummary,
) -> anyhow::Result<()> {
    let refs: Vec<&[f32]> = batch.iter().filter_map(|(_, r)| r.as_ref().ok().map(Vec::as_slice)).collect();
    let t = Instant::now();
    let mut embeddings = pipeline.embed_prepared(&refs)?.into_iter();
    summary.image_compute_s += t.elapsed().as_secs_f64();
    summary.images += refs.len();
    for (i, result) in batch.drain(..) {
        let path = Some(job.images[i].as_path());
        match result {
            Ok(_) => {
                let e = embeddings.next().expect("one embedding per prepared image");
                write_record(out, Record { kind: "image", path, text: None, embedding: Some(&e), error: None })?;
            }
            Err(error) => {
                summary.errors += 1;
                write_record(out, Record { kind: "image", path, text: None, embedding: None, error: Some(error) })?;
            }
        }
    }
    Ok(())
}

fn write_record(out: &mut dyn Write, record: Record<'_>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}
