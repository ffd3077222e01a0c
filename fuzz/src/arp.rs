//! `arp_decode`: arbitrary bytes as an Ethernet frame through control's ARP
//! view (control/src/garp.rs). What parses is rebuilt field by field with
//! the setters and must come out as the input; the GARP builder's frame is
//! recognised as exactly the keepalived-style announcements.

use control::garp::{self, ArpOperation, ArpPacket, ARP_LEN, BROADCAST, FRAME_LEN};
use dataplane::wire::{EtherType, EthernetFrame};

/// Runs one fuzz input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    if let Ok(arp) = ArpPacket::new_checked(data) {
        let _ = (arp.operation(), arp.sender_mac(), arp.target_ip(), arp.is_gratuitous());
    }
    let Ok(arp) = garp::parse_frame(data) else {
        // Refused: then the fixed part cannot say Ethernet/IPv4 ARP.
        let fixed = [0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04];
        assert!(data.len() < FRAME_LEN || data[12..20] != fixed, "refused a valid ARP frame");
        return;
    };
    assert!(data.len() >= FRAME_LEN, "accepted {} bytes", data.len());

    // Rebuild the message from what the view read: it is the input.
    let mut rebuilt = [0u8; ARP_LEN];
    let mut copy = ArpPacket::new_unchecked(&mut rebuilt[..]);
    copy.set_ethernet_ipv4();
    copy.set_operation(arp.operation());
    copy.set_sender_mac(arp.sender_mac());
    copy.set_sender_ip(arp.sender_ip());
    copy.set_target_mac(arp.target_mac());
    copy.set_target_ip(arp.target_ip());
    assert_eq!(&rebuilt[..], &data[14..FRAME_LEN], "rebuilt from the view's fields");
    assert_eq!(arp.is_gratuitous(), data[28..32] == data[38..42]);

    // The builder's frame is this one exactly when this is the GARP
    // keepalived sends: a broadcast request from the sender's own MAC,
    // sender IP = target IP, target MAC broadcast.
    let ethernet = EthernetFrame::new_checked(data).expect("parse_frame checked the header");
    assert_eq!(ethernet.ethertype(), EtherType::Arp);
    let built = garp::frame(arp.sender_mac(), arp.sender_ip());
    let keepalived_style = ethernet.dst() == BROADCAST
        && ethernet.src() == arp.sender_mac()
        && arp.operation() == ArpOperation::Request
        && arp.target_mac() == BROADCAST
        && arp.is_gratuitous();
    assert_eq!(built[..] == data[..FRAME_LEN], keepalived_style, "GARP recognised");
    let again = garp::parse_frame(&built).expect("the builder's frame parses");
    assert!(again.is_gratuitous());
}
