//! libFuzzer entry of the `plugin_package` target; the body is
//! [`switchyard_fuzz::plugin_package::run`], which the corpus replay also runs.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchyard_fuzz::plugin_package::run(data));
