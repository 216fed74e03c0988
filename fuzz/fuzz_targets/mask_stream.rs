#![no_main]
//! See `hoopguard_core::fuzz::mask_stream`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hoopguard_core::fuzz::mask_stream(data));
