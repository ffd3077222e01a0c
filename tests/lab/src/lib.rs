//! The seed's lab in network namespaces, for xdplb's integration tests and
//! demo: topology, web servers, an in-namespace HTTP client, raw frame
//! injection, captures, the `xdplb` process under test, and for failover
//! tests keepalived as a peer, cable pulls, partitions and the router's ARP entry.

pub mod capture; // tcpdump in a namespace: wait until listening, stop by SIGINT, read frames
pub mod cmd; // running ip/ethtool/sysctl/tcpdump with every exit status checked
pub mod config; // xdplb TOML for lab tests (one director, or a VRRP pair; also keepalived.conf)
pub mod faults; // status --json read back, TCP flows held open, a hand-made gratuitous ARP
pub mod frames; // malformed and hand-made frames for injection, built with dataplane::wire
pub mod http; // HTTP/1.0 client for a thread inside a namespace: one flow per request
#[allow(unsafe_code)]
pub mod inject; // AF_PACKET socket bound to an interface: the lab's only unsafe code
pub mod keepalived; // keepalived 2.2.7, VRRP only, as the other director; killed by PID
pub mod lab; // the topology: namespaces, bridge, veths, addresses, web servers, teardown
pub mod neigh; // a host's ARP entry: read with `ip neigh`, or watched with timestamps
pub mod netns; // named namespaces: RAII guard, threads that setns into one
pub mod pcap; // minimal pcap file reader for tcpdump's output
pub mod process; // processes started in namespaces, killed by PID; xdplb under test
pub mod segment; // cable pulls, partitions, who holds the VIP, the router's entry for it
pub mod soak; // the soak test: UDP server, paced HTTP+UDP load, RSS slope, AF_XDP stats
pub mod vrrp; // adverts and ARP decoded from captures; who was master when
pub mod wait; // wait_until: poll a condition, never sleep for a guess

pub use anyhow;
pub use capture::Capture;
pub use config::{SingleLb, VrrpLb, VrrpSpec, VrrpStart};
pub use http::{HttpResponse, HttpStream, ManyResults, StreamResult, Traffic};
pub use keepalived::{KaState, Keepalived};
pub use lab::{Host, Lab, LabOptions, DEFAULT_VIP};
pub use neigh::{NeighChange, NeighWatch, Neighbour};
pub use pcap::Frame;
pub use process::{ChildGuard, Counters, XdplbExit, XdplbProcess};
pub use wait::{holds_for, wait_until};
