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

/// A form part: the field name, a file name (a file part) or none (a text
/// field), the content.
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body of `parts` with `boundary`, as a browser or
/// Node's `FormData` writes one (file parts as `application/octet-stream`).
pub fn multipart_form(boundary: &str, parts: &[Part<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if let Some(file) = file {
            body.extend_from_slice(
                format!("; filename=\"{file}\"\r\nContent-Type: application/octet-stream").as_bytes(),
            );
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

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
