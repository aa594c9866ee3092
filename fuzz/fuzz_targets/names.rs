//! libFuzzer entry of the `names` target; the body and its properties are
//! `alonzo_fuzz::names`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::names::run(data));
