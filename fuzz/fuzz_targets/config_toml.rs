//! libFuzzer entry for `config_toml`; the invariants are in `xdplb_fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| xdplb_fuzz::config::check(data));
