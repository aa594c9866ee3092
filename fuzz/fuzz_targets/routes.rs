//! libFuzzer entry of the `routes` target; the body and its properties are
//! `alonzo_fuzz::routes`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::routes::run(data));
