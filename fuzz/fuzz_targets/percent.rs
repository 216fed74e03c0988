#![no_main]
//! See `hoopguard_core::fuzz::percent`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hoopguard_core::fuzz::percent(data));
