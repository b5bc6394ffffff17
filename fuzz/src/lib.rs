//! The bodies of the fuzz targets, one module per target, as plain functions
//! of the input bytes that panic when an invariant breaks.
//!
//! Two callers: the libFuzzer binaries in `fuzz_targets/` (built by
//! `cargo +nightly fuzz`, ci/fuzz.sh) and the corpus replay in
//! `tests/replay.rs` (stable `cargo test`, run by ci/test.sh), which feeds
//! every committed seed and regression input through the same function, so a
//! target that no longer compiles, or an input that crashes again, fails the
//! README's test command.

pub mod decode_preprocess;
pub mod face_detect;
pub mod immich_entries;
pub mod openai_embeddings;
pub mod plugin_package;
pub mod request_parse;
pub mod tokenizer;

/// A target's body: one input; panics when an invariant breaks.
pub type Body = fn(&[u8]);

/// Every target: its name (the folder under `corpus/` and `regressions/`,
/// the binary `cargo fuzz run` takes) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("decode_preprocess", decode_preprocess::run),
    ("face_detect", face_detect::run),
    ("immich_entries", immich_entries::run),
    ("openai_embeddings", openai_embeddings::run),
    ("plugin_package", plugin_package::run),
    ("request_parse", request_parse::run),
    ("tokenizer", tokenizer::run),
];
