//! xdplb's control plane: the configuration, the VIPs and neighbour entries
//! it manages over netlink, and the snapshot it publishes to the workers.
//! Depends on `dataplane` only for the shared table types and its handles.

pub mod config; // the TOML contract: parse, validate (FILE:LINE), live checks, print
pub mod daemon; // `xdplb run`: bring up, serve, follow neighbours, shut down cleanly
pub mod garp; // gratuitous ARP: the frame keepalived sends, its burst schedule, a raw sender
pub mod health; // HTTP_GET and TCP_CHECK probes and keepalived's retry hysteresis
pub mod import; // keepalived.conf (with includes) → xdplb TOML
pub mod metrics; // Prometheus /metrics: the status report in the text format, served by hyper
pub mod netlink; // rtnetlink: interfaces, VIP addresses, managed neighbour entries and their events
pub mod privileges; // after start-up: keep CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF; drop the rest
pub mod publish; // config + MACs → the snapshot workers read
pub mod quorum; // keepalived's quorum, hysteresis and sorry server: state and pool, pure
pub mod realserver; // `xdplb realserver setup|teardown`: a DR web server's VIP on lo, ARP sysctls
pub mod reload; // SIGHUP / `xdplb reload`: what may change while running, and the plan that applies it
pub mod service; // systemd Type=notify: READY=1, STATUS=, watchdog pings, STOPPING=1
pub mod status; // `xdplb status`: the report (ipvsadm -Ln, VRRP, health, counters), the control socket
pub mod vrrp; // VRRP v2/v3: packets and keepalived-compatible state machine
