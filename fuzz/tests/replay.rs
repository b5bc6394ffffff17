//! The committed inputs of every fuzz target, replayed through the target's
//! own function on the stable toolchain: each file of `corpus/<target>/` (the
//! seeds) and `regressions/<target>/` (inputs that once crashed a target,
//! kept after the fix). A seed or a fixed crash that fails again fails here,
//! in ci/test.sh, without nightly or libFuzzer.
//!
//! Building this test also builds the libFuzzer binaries of `fuzz_targets/`
//! (cargo builds a package's binaries for its integration tests), so a
//! target that no longer compiles fails here too.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use switchyard_fuzz::TARGETS;

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    out.sort();
    out
}

/// Runs every committed input of `target`; fails naming each input that panicked.
fn replay(target: &str) {
    let run = TARGETS.iter().find(|(name, _)| *name == target).map(|(_, run)| *run).expect("a listed target");
    let seeds = files(&fuzz_dir().join("corpus").join(target));
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    assert!(!seeds.is_empty(), "fuzz/corpus/{target}/ has no seeds: run fuzz/make_seeds.py");
    let mut failed = Vec::new();
    for path in seeds.iter().chain(&regressions) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(&bytes))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failed.push(format!("{}: {message}", path.strip_prefix(fuzz_dir()).unwrap_or(path).display()));
        }
    }
    eprintln!("{target}: replayed {} seeds and {} regression inputs", seeds.len(), regressions.len());
    assert!(failed.is_empty(), "{target} failed on {} of its committed inputs:\n{}", failed.len(), failed.join("\n"));
}

macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(#[test]
        fn $target() {
            replay(stringify!($target));
        })*

        /// The targets replayed here are exactly the library's list.
        #[test]
        fn every_target_is_replayed() {
            let replayed = [$(stringify!($target)),*];
            let listed: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
            assert_eq!(listed, replayed, "add the new target to replay_tests! in fuzz/tests/replay.rs");
        }
    };
}

replay_tests!(
    decode_preprocess,
    face_detect,
    immich_entries,
    openai_embeddings,
    plugin_package,
    request_parse,
    tokenizer
);

/// Every binary in `fuzz_targets/`, every `[[bin]]` and every corpus folder is
/// a target of the library's list, so none can be fuzzed without being replayed.
#[test]
fn every_fuzz_binary_and_corpus_is_a_listed_target() {
    let mut listed: Vec<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    let stems = |dir: &str, strip: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(fuzz_dir().join(dir))
            .unwrap_or_else(|e| panic!("fuzz/{dir}: {e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().trim_end_matches(strip).to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(stems("fuzz_targets", ".rs"), listed, "fuzz/fuzz_targets/ against TARGETS");
    assert_eq!(stems("corpus", ""), listed, "fuzz/corpus/ against TARGETS");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut bins: Vec<String> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|section| section.lines().find_map(|l| l.trim().strip_prefix("name = ")))
        .map(|name| name.trim_matches('"').to_string())
        .collect();
    bins.sort();
    assert_eq!(bins, listed, "the [[bin]] sections of fuzz/Cargo.toml against TARGETS");
}
