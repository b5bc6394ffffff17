//! libFuzzer entry of the `decode_preprocess` target; the body is
//! [`switchyard_fuzz::decode_preprocess::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::decode_preprocess::run(data));
