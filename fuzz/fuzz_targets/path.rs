#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| claimgate_fuzz::path(data));
