//! The JSON-lines output of a run, and `--resume`.
//!
//! Each record is written whole and the writer is flushed after every batch,
//! so a run killed at any moment leaves a file of complete lines plus at
//! most one partial last line. Resuming truncates that partial line, reads
//! which images and texts already have a record, and appends the rest.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One output line.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// Decoded width and height.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<[u32; 2]>,
    /// File size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<&'a [f32]>,
    /// With `--faces`: every face found (box, score, landmarks, embedding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faces: Option<&'a [crate::faces::pipeline::Face]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an earlier, interrupted run already wrote.
#[derive(Debug, Default)]
pub struct Done {
    pub images: HashSet<PathBuf>,
    pub texts: HashSet<String>,
    /// Bytes of a partial last line that were cut off.
    pub truncated_bytes: u64,
}

#[derive(serde::Deserialize)]
struct Seen {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    text: Option<String>,
}

/// Opens the output: truncated for a new run, or (resume) cut back to its last complete line and appended to.
pub fn open(path: &Path, resume: bool) -> std::io::Result<(BufWriter<File>, Done)> {
    if !resume || !path.exists() {
        return Ok((BufWriter::new(File::create(path)?), Done::default()));
    }
    let mut done = Done::default();
    let file = File::open(path)?;
    let mut reader = BufReader::new(file);
    let mut good_len = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<Seen>(&line) {
            Ok(seen) => {
                match (seen.kind.as_str(), seen.path, seen.text) {
                    ("image", Some(p), _) => done.images.insert(p),
                    ("text", _, Some(t)) => done.texts.insert(t),
                    _ => false,
                };
                good_len += n as u64;
            }
            Err(_) => break,
        }
    }
    let mut file = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    done.truncated_bytes = len - good_len;
    file.set_len(good_len)?;
    file.seek(SeekFrom::End(0))?;
    Ok((BufWriter::new(file), done))
}
