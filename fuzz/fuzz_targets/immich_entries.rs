//! libFuzzer entry of the `immich_entries` target; the body is
//! [`switchyard_fuzz::immich_entries::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::immich_entries::run(data));
