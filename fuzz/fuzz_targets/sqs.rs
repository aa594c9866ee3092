//! libFuzzer entry of the `sqs` target; the body and its properties are
//! `alonzo_fuzz::sqs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alonzo_fuzz::sqs::run(data));
