//! xdplb's control plane: the configuration, the VIPs and neighbour entries
//! it manages over netlink, and the snapshot it publishes to the workers.
//! Depends on `dataplane` only for the shared table types and its handles.

pub mod config; // the TOML contract: parse, validate (FILE:LINE), live checks, print
pub mod daemon; // `xdplb run`: bring up, serve, follow neighbours, shut down cleanly
pub mod netlink; // rtnetlink: interfaces, VIP addresses, managed neighbour entries and their events
pub mod publish; // config + MACs → the snapshot workers read
