//! libFuzzer entry of the `wire` target; the body and its properties are
//! `alonzo_fuzz::wire`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::wire::run(data));
