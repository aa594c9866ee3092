//! libFuzzer entry of the `http_event` target; the body and its properties are
//! `alonzo_fuzz::http_event`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::http_event::run(data));
