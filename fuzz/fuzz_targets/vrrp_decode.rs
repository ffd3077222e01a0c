//! libFuzzer entry for `vrrp_decode`; the invariants are in `xdplb_fuzz::vrrp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdplb_fuzz::vrrp::check(data));
