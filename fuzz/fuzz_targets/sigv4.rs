//! libFuzzer entry of the `sigv4` target; the body and its properties are
//! `alonzo_fuzz::sigv4`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::sigv4::run(data));
