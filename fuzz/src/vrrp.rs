//! `vrrp_decode`: arbitrary bytes as a VRRP message (an IP payload) through
//! control's decoder and receive checks. Whatever decodes must encode again,
//! decode to the same value, and differ from the input only where the
//! encoding is canonical (checksum, v3 reserved bits, unused v2 auth data).

use std::net::Ipv4Addr;

use control::config::Ipv4Net;
use control::vrrp::packet::{self, AdvertPacket, IpMeta, Local, Rejection};
use control::vrrp::{Advert, Auth, Version};

/// lvs1 of the fixtures: the source of the adverts the seeds come from.
pub const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 101);

/// The instance of the fixtures (VRID 51, PASS "1111", 1 s, VIP .110).
fn seed_local(version: Version) -> Local {
    let auth = match (version, Auth::pass(b"1111")) {
        (Version::V2, Ok(auth)) => auth,
        _ => Auth::None,
    };
    Local {
        version,
        vrid: 51,
        auth,
        interval_field: if version == Version::V2 { 1 } else { 100 },
        virtual_addresses: vec![Ipv4Addr::new(192, 168, 10, 110)],
        subnet: Some(Ipv4Net { addr: Ipv4Addr::new(192, 168, 10, 0), prefix_len: 24 }),
        unicast_peers: vec![],
    }
}

/// Runs one fuzz input; panics when an invariant breaks.
pub fn check(data: &[u8]) {
    let _ = packet::peek_vrid(data);
    let dst = packet::MULTICAST_GROUP;
    let decoded = Advert::parse(data);
    if let Ok(p) = AdvertPacket::new_checked(data) {
        let _ = (p.addresses().count(), p.auth_data(), p.message().len(), p.interval_field());
        let _ = p.verify_checksum(SRC, dst);
    }

    // What the receive checks accept is exactly what the decoder reads, and
    // its checksum verifies.
    for version in [Version::V2, Version::V3] {
        let local = seed_local(version);
        let meta = IpMeta { src: SRC, dst, ttl: packet::TTL };
        match packet::validate(&meta, data, &local) {
            Ok(advert) => {
                assert_eq!(decoded.as_ref().ok(), Some(&advert), "validate and parse agree");
                let view = AdvertPacket::new_checked(data).expect("validated, so a whole message");
                assert!(view.verify_checksum(SRC, dst), "validated with a bad checksum");
                assert_eq!(advert.vrid, local.vrid);
            }
            Err(Rejection::OtherVrid(vrid)) => assert_ne!(vrid, local.vrid),
            Err(Rejection::Drop(_)) => {}
        }
    }

    let Ok(advert) = decoded else { return };
    // A decoded advert is one the encoder can write...
    let bytes = match advert.to_bytes(SRC, dst) {
        Ok(bytes) => bytes,
        Err(e) => panic!("decoded {advert:?} but cannot encode it: {e}"),
    };
    // ...that decodes to the same value, with a checksum that verifies.
    assert_eq!(Advert::parse(&bytes).as_ref(), Ok(&advert), "round trip");
    let view = AdvertPacket::new_checked(&bytes[..]).expect("we just wrote it");
    assert!(view.verify_checksum(SRC, dst), "our own checksum verifies");
    // And byte for byte it is the input, up to what the encoding fixes.
    assert_eq!(
        without_checksum(bytes),
        canonical(data, &advert),
        "re-encoding changes only the fields whose encoding is fixed"
    );
}

/// `message` with the fields the encoder writes its own way set as it
/// writes them: the checksum zeroed in both (it is checked above), the v3
/// reserved nibble cleared, v2 auth data zeroed when there is no password.
fn canonical(message: &[u8], advert: &Advert) -> Vec<u8> {
    let mut want = message.to_vec();
    want[6] = 0;
    want[7] = 0;
    match advert.version {
        Version::V3 => want[4] &= 0x0f,
        Version::V2 if advert.auth == Auth::None => {
            let start = 8 + advert.addresses.len() * 4;
            want[start..].fill(0);
        }
        Version::V2 => {}
    }
    want
}

/// `bytes` with the checksum zeroed (for comparing with [`canonical`]).
fn without_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 8 {
        bytes[6] = 0;
        bytes[7] = 0;
    }
    bytes
}
