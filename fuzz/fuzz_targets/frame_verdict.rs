//! libFuzzer entry for `frame_verdict`; the invariants are in `xdplb_fuzz::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdplb_fuzz::frame::check(data));
