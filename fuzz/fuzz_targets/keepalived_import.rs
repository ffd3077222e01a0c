//! libFuzzer entry for `keepalived_import`; the invariants are in `xdplb_fuzz::keepalived`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdplb_fuzz::keepalived::check(data));
