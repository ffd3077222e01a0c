//! The fuzz targets' invariants as property tests, for `cargo test` without
//! libFuzzer: the same `check` functions on inputs proptest makes, shaped
//! like the real thing (built frames and encoded adverts with a few bytes
//! changed, the project's configurations with tokens spliced in).
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use dataplane::wire::build::{self, FrameSpec};
use dataplane::wire::{EtherType, TcpFlags};
use proptest::prelude::*;
use xdplb_fuzz::frame::{client_spec, CLIENT, VIP1, VIP2};

const SEED_LAB: &str = include_str!("../../configs/seed-lab.toml");
const SINGLE_LB: &str = include_str!("../../configs/single-lb.toml");
const KEEPALIVED: &str = include_str!("../../control/testdata/keepalived/keepalived.conf");
const WEB_SERVERS: &str = include_str!("../../control/testdata/keepalived/web_servers.conf");

/// Addresses the frames use: the model's VIPs and client, and others.
fn addr() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![Just(VIP1), Just(VIP2), Just(CLIENT), Just([192, 168, 10, 1]), any::<[u8; 4]>()]
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(80u16),
        Just(53),
        Just(443),
        Just(40000),
        Just(40001),
        Just(5353),
        any::<u16>()
    ]
}

/// A valid frame of some kind towards (or about) the model's services.
fn built_frame() -> impl Strategy<Value = Vec<u8>> {
    (0u8..7, addr(), addr(), port(), port(), any::<u16>(), 0usize..3).prop_map(
        |(kind, src, dst, sport, dport, flags, option_words)| {
            let options = vec![1u8; option_words * 4];
            let spec = FrameSpec {
                src_ip: Ipv4Addr::from(src),
                ip_options: &options,
                ..client_spec(sport, dst, dport)
            };
            match kind {
                0 => build::tcp_frame(&spec, TcpFlags::from_bits(flags & 0x1ff), b"x"),
                1 => build::udp_frame(&spec, b"query"),
                2 => build::icmp_echo_request_frame(&spec, 1, 2, b"ping"),
                3 => build::with_vlan(
                    &build::tcp_frame(&spec, TcpFlags::SYN, &[]),
                    EtherType::Vlan,
                    10,
                ),
                // An ICMP error about the reply of a preloaded TCP or UDP
                // flow, or of any flow, to any destination.
                _ => {
                    let (vip, client, client_port, vip_port) = match kind {
                        4 => (VIP1, CLIENT, 40000 + (sport & 1), 80),
                        5 => (VIP1, CLIENT, 5353, 53),
                        _ => (src, dst, sport, dport),
                    };
                    let reply = FrameSpec::new(vip.into(), vip_port, client.into(), client_port);
                    let reply = if vip_port == 53 {
                        build::udp_frame(&reply, b"answer")
                    } else {
                        build::tcp_frame(&reply, TcpFlags::ACK, &[])
                    };
                    build::icmp_frag_needed_frame(&spec, 1400, &reply)
                }
            }
        },
    )
}

/// Byte overwrites at indexes taken modulo the length.
fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)
}

fn edited(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8)]) -> Vec<u8> {
    if !bytes.is_empty() {
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = *value;
        }
    }
    bytes
}

/// Splices tokens into `text` at char boundaries.
fn spliced(text: &str, ops: &[(prop::sample::Index, usize, usize)], tokens: &[&str]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for (at, token, cut) in ops {
        let at = at.index(chars.len() + 1);
        let end = (at + cut).min(chars.len());
        chars.splice(at..end, tokens[token % tokens.len()].chars());
    }
    chars.into_iter().collect()
}

const CONFIG_TOKENS: &[&str] = &[
    "",
    "0",
    "-1",
    "65536",
    "1e400",
    "nan",
    "\"x\"",
    "=",
    "\n",
    "#",
    "[",
    "]",
    "[[virtual_server]]",
    "[dataplane]",
    "[[virtual_server.real_server]]",
    "192.168.10.300",
    "10.0.0.1/33",
    "\"\"\"",
    "port = 80\n",
    "weight = 0\n",
    "interface = \"eth0\"\n",
    "\u{e9}",
];

const KEEPALIVED_TOKENS: &[&str] = &[
    "",
    "{",
    "}",
    "\n",
    "!",
    "#",
    "\"",
    "@lvs1 ",
    "$X=1\n",
    "~SEQ(1,1,3)",
    "include x.conf\n",
    "virtual_server 10.0.0.1 80 {\n",
    "real_server 10.0.0.2 80 {\n",
    "lvs_method NAT\n",
    "lvs_sched sh\n",
    "weight -1\n",
    "priority 300\n",
    "virtual_router_id 0\n",
    "TCP_CHECK {\n",
    "persistence_timeout 60\n",
    "delay_loop 0\n",
    "state MASTER\n",
    "nopreempt\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// frame_verdict on built frames with a few bytes changed.
    #[test]
    fn frame_verdict_follows_the_model(
        frame in built_frame(),
        edits in edits(),
        cut in any::<prop::sample::Index>(),
        cut_it in any::<bool>(),
        mode in 0u8..4,
    ) {
        let mut frame = edited(frame, &edits);
        if cut_it {
            frame.truncate(cut.index(frame.len() + 1));
        }
        xdplb_fuzz::frame::check(&[&[mode][..], &frame].concat());
    }

    /// frame_verdict on arbitrary bytes.
    #[test]
    fn frame_verdict_on_noise(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        xdplb_fuzz::frame::check(&bytes);
    }

    /// vrrp_decode on encoded adverts with a few bytes changed, and on noise.
    #[test]
    fn vrrp_decode_round_trips(
        v3 in any::<bool>(),
        vrid in prop_oneof![Just(51u8), any::<u8>()],
        priority in any::<u8>(),
        interval in 0u16..=0x0fff,
        pass in prop::option::of(any::<[u8; 8]>()),
        addresses in prop::collection::vec(any::<[u8; 4]>(), 0..4),
        edits in edits(),
        noise in prop::collection::vec(any::<u8>(), 0..60),
    ) {
        use control::vrrp::{Advert, Auth, Version};
        let (version, interval_field, auth) = if v3 {
            (Version::V3, interval, Auth::None)
        } else {
            (Version::V2, interval & 0xff, pass.map_or(Auth::None, Auth::Pass))
        };
        let addresses = addresses.into_iter().map(Ipv4Addr::from).collect();
        let advert = Advert { version, vrid, priority, interval_field, auth, addresses };
        let bytes = advert.to_bytes(xdplb_fuzz::vrrp::SRC, Ipv4Addr::new(224, 0, 0, 18)).unwrap();
        xdplb_fuzz::vrrp::check(&bytes);
        xdplb_fuzz::vrrp::check(&edited(bytes, &edits));
        xdplb_fuzz::vrrp::check(&noise);
    }

    /// arp_decode on GARPs with a few bytes changed, and on noise.
    #[test]
    fn arp_decode_round_trips(
        mac in any::<[u8; 6]>(),
        vip in any::<[u8; 4]>(),
        pad in 0usize..20,
        edits in edits(),
        noise in prop::collection::vec(any::<u8>(), 0..70),
    ) {
        let mut frame = control::garp::frame(mac, Ipv4Addr::from(vip)).to_vec();
        frame.resize(frame.len() + pad, 0);
        xdplb_fuzz::arp::check(&frame);
        xdplb_fuzz::arp::check(&edited(frame, &edits));
        xdplb_fuzz::arp::check(&noise);
    }

    /// config_toml on the shipped configurations with tokens spliced in.
    #[test]
    fn config_errors_name_file_and_line(
        single in any::<bool>(),
        ops in prop::collection::vec((any::<prop::sample::Index>(), any::<usize>(), 0usize..8), 0..5),
    ) {
        let base = if single { SINGLE_LB } else { SEED_LAB };
        xdplb_fuzz::config::check_text(&spliced(base, &ops, CONFIG_TOKENS));
    }

    /// keepalived_import on the seed's keepalived.conf with tokens spliced in.
    #[test]
    fn keepalived_notes_name_real_lines(
        web in any::<bool>(),
        ops in prop::collection::vec((any::<prop::sample::Index>(), any::<usize>(), 0usize..8), 0..5),
    ) {
        let base = if web { WEB_SERVERS } else { KEEPALIVED };
        xdplb_fuzz::keepalived::check_text(&spliced(base, &ops, KEEPALIVED_TOKENS));
    }
}

/// The shipped configurations and samples themselves keep the invariants.
#[test]
fn seeds_keep_the_invariants() {
    for text in [SEED_LAB, SINGLE_LB] {
        xdplb_fuzz::config::check_text(text);
    }
    for text in [KEEPALIVED, WEB_SERVERS] {
        xdplb_fuzz::keepalived::check_text(text);
    }
}

/// The model agrees that the fixed world's plain cases go where they should
/// (a model that always said "drop" would pass the properties above).
#[test]
fn model_forwards_service_traffic() {
    use dataplane::verdict::DropReason;
    use xdplb_fuzz::frame::{model, Expect};
    let syn = build::tcp_frame(&client_spec(41000, VIP1, 80), TcpFlags::SYN, &[]);
    assert!(matches!(model(&syn, &[]).0, Expect::New { service: 0, syn_or_udp: true }));
    let udp = build::udp_frame(&client_spec(41000, VIP1, 53), b"q");
    assert!(matches!(model(&udp, &[]).0, Expect::New { service: 1, syn_or_udp: true }));
    let drained = build::tcp_frame(&client_spec(41000, VIP2, 443), TcpFlags::SYN, &[]);
    assert_eq!(model(&drained, &[]).0, Expect::Drop(DropReason::NoRealServer));
    let other_port = build::tcp_frame(&client_spec(41000, VIP1, 22), TcpFlags::SYN, &[]);
    assert_eq!(model(&other_port, &[]).0, Expect::Drop(DropReason::NoService));
    for frame in [syn, udp, drained, other_port] {
        xdplb_fuzz::frame::check(&[&[3u8][..], &frame].concat());
    }
}
