//! libFuzzer entry of the `tokenizer` target; the body is
//! [`switchyard_fuzz::tokenizer::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::tokenizer::run(data));
