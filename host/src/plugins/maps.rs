//! Which ML runtime libraries (libtorch, c10, ONNX Runtime) a process has
//! mapped, read from `/proc/self/maps`.
//!
//! A process must never hold two libtorch builds (they crash in static
//! initialisation) nor two ONNX Runtime libraries. Before a second plugin
//! joins the process (`FALLBACK=cpu`), it is loaded in a child process that
//! reports this list, and the host compares it with its own: what the
//! dynamic loader actually resolved, RUNPATH and LD_LIBRARY_PATH included,
//! rather than what the file names suggest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A family of runtime libraries of which a process may hold only one build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// libtorch*, libc10*.
    Torch,
    /// libonnxruntime*.
    OnnxRuntime,
}

/// The family of a library file, or `None` for any other library.
pub fn family(path: &Path) -> Option<Family> {
    let name = path.file_name()?.to_string_lossy();
    if name.starts_with("libtorch") || name.starts_with("libc10") {
        Some(Family::Torch)
    } else if name.starts_with("libonnxruntime") {
        Some(Family::OnnxRuntime)
    } else {
        None
    }
}

/// The runtime library files this process has mapped (canonical paths,
/// sorted), or `None` where the platform does not say (no `/proc`).
pub fn runtime_libraries() -> Option<Vec<PathBuf>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    Some(parse_maps(&maps))
}

fn parse_maps(maps: &str) -> Vec<PathBuf> {
    let found: BTreeSet<PathBuf> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(Path::new)
        .filter(|p| p.is_absolute() && family(p).is_some())
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()))
        .collect();
    found.into_iter().collect()
}

/// The first library of `wanted` that would be a second build in a process
/// holding `held`: not one of the same files, while the process already has
/// a library of its family. Returns it with a held library of that family.
pub fn second_build<'a>(held: &'a [PathBuf], wanted: &'a [PathBuf]) -> Option<(&'a Path, &'a Path)> {
    wanted.iter().filter(|w| !held.contains(w)).find_map(|w| {
        let f = family(w)?;
        held.iter().find(|h| family(h) == Some(f)).map(|h| (w.as_path(), h.as_path()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(v: &[&str]) -> Vec<PathBuf> {
        v.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn maps_lines_give_runtime_libraries_once() {
        let maps = "7f00-7f01 r-xp 00000000 08:01 1 /venv/torch/lib/libtorch_cpu.so\n\
                    7f01-7f02 r--p 00001000 08:01 1 /venv/torch/lib/libtorch_cpu.so\n\
                    7f02-7f03 r-xp 00000000 08:01 2 /usr/lib/libc.so.6\n\
                    7f03-7f04 rw-p 00000000 00:00 0 \n\
                    7f04-7f05 r-xp 00000000 08:01 3 /venv/ort/capi/libonnxruntime.so.1.31.1\n";
        assert_eq!(
            parse_maps(maps),
            paths(&["/venv/ort/capi/libonnxruntime.so.1.31.1", "/venv/torch/lib/libtorch_cpu.so"])
        );
    }

    #[test]
    fn the_same_files_or_a_new_family_are_no_second_build() {
        let cuda = paths(&["/a/libc10.so", "/a/libc10_cuda.so", "/a/libtorch_cpu.so", "/a/libtorch_cuda.so"]);
        assert_eq!(second_build(&cuda, &paths(&["/a/libc10.so", "/a/libtorch_cpu.so"])), None);
        assert_eq!(second_build(&[], &paths(&["/a/libtorch_cpu.so"])), None);
        let ort = paths(&["/o/libonnxruntime.so.1.31.1"]);
        assert_eq!(second_build(&cuda, &ort), None);
    }

    #[test]
    fn another_libtorch_is_a_second_build() {
        let held = paths(&["/a/libc10.so", "/a/libtorch_cpu.so"]);
        let wanted = paths(&["/b/libc10.so", "/b/libtorch_cpu.so"]);
        let (w, h) = second_build(&held, &wanted).expect("a conflict");
        assert_eq!((w, h), (Path::new("/b/libc10.so"), Path::new("/a/libc10.so")));
    }
}
