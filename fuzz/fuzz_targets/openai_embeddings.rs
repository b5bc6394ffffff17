//! libFuzzer entry of the `openai_embeddings` target; the body is
//! [`switchyard_fuzz::openai_embeddings::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::openai_embeddings::run(data));
