#![no_main]
//! See `hoopguard_core::fuzz::chunked`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hoopguard_core::fuzz::chunked(data));
