//! libFuzzer entry of the `runtime_api` target; the body and its properties are
//! `alonzo_fuzz::runtime_api`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::runtime_api::run(data));
