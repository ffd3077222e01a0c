//! The invariants the fuzz targets check, one module per target, so that
//! the libFuzzer binaries (fuzz_targets/) and the property tests (tests/)
//! run the same code. Each `check` panics when an invariant breaks.

pub mod arp; // control's ARP view: rebuild from fields, GARP recognition
pub mod config; // TOML config: FILE:LINE errors, print/parse round trip
pub mod frame; // the worker's frame decision against a reference model
pub mod keepalived; // keepalived.conf import: notes name real lines, complete loads
pub mod vrrp; // VRRP adverts: decode/encode round trip, receive checks agree
