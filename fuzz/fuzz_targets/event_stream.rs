//! libFuzzer entry of the `event_stream` target; the body and its properties are
//! `alonzo_fuzz::event_stream`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::event_stream::run(data));
