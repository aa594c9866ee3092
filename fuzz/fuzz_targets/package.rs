//! libFuzzer entry of the `package` target; the body and its properties are
//! `alonzo_fuzz::package`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::package::run(data));
