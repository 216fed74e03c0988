#![no_main]
//! See `hoopguard_core::fuzz::sigv4`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hoopguard_core::fuzz::sigv4(data));
