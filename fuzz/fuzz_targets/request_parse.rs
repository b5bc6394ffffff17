//! libFuzzer entry of the `request_parse` target; the body is
//! [`switchyard_fuzz::request_parse::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::request_parse::run(data));
