//! libFuzzer entry for `arp_decode`; the invariants are in `xdplb_fuzz::arp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdplb_fuzz::arp::check(data));
