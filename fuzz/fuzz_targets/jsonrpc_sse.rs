#![no_main]
//! See `hoopguard_core::fuzz::jsonrpc_sse`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hoopguard_core::fuzz::jsonrpc_sse(data));
