//! libFuzzer entry of the `event_pattern` target; the body and its properties are
//! `alonzo_fuzz::event_pattern`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::event_pattern::run(data));
