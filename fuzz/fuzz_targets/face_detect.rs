//! libFuzzer entry of the `face_detect` target; the body is
//! [`switchyard_fuzz::face_detect::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::face_detect::run(data));
