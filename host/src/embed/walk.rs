//! Which files a run embeds: folders walked recursively by image extension,
//! and `--shard I/N` to split a library across machines.
//!
//! Symlinked files are followed; symlinked folders are not, so a link cycle
//! cannot trap the walk. Shards are chosen by a stable hash (FNV-1a) of each
//! path as listed, so N machines given the same inputs split them without
//! talking to each other and without depending on listing order.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Image extensions picked up when walking folders.
pub const IMAGE_EXTENSIONS: &[&str] =
    &["jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "tif", "tiff", "pgm", "ppm", "pbm", "pnm"];

/// Expands folders into their image files (sorted); files are kept as given.
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
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file())) && has_image_extension(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `--shard I/N`: this machine embeds the files whose path hash is I mod N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// A `--shard` value that is not `I/N` with `0 <= I < N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`--shard {value}` is not a shard; use I/N with 0 <= I < N, e.g. 0/4 (in a Kubernetes indexed job: $JOB_COMPLETION_INDEX/N)")]
pub struct ShardError {
    pub value: String,
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let err = || ShardError { value: raw.to_string() };
        let (i, n) = raw.trim().split_once('/').ok_or_else(err)?;
        let index: u64 = i.trim().parse().map_err(|_| err())?;
        let count: u64 = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether `path` belongs to this shard.
    pub fn contains(&self, path: &Path) -> bool {
        fnv1a(path.as_os_str().as_encoded_bytes()) % self.count == self.index
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_files_exactly() {
        let paths: Vec<PathBuf> = (0..1000).map(|i| PathBuf::from(format!("lib/{}/img_{i}.jpg", i % 7))).collect();
        let shards: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
        let mut total = 0;
        for s in &shards {
            let n = paths.iter().filter(|p| s.contains(p)).count();
            assert!(n > 150, "shard {s:?} has only {n}");
            total += n;
        }
        assert_eq!(total, paths.len());
        for p in &paths {
            assert_eq!(shards.iter().filter(|s| s.contains(p)).count(), 1);
        }
    }

    #[test]
    fn bad_shards_say_how_to_write_one() {
        for bad in ["4/4", "1", "a/b", "0/0", "-1/3"] {
            let e = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(e.contains("I/N"), "{e}");
        }
    }
}
