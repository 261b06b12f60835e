//! From a captured frame to a TCP segment, with pnet's packet views: Ethernet (and 802.1Q
//! VLAN tags), Linux cooked captures (SLL, SLL2), raw IP and BSD loopback framing; IPv4 and
//! IPv6; TCP. Anything else, and anything truncated or malformed, is `None`: bad packets are
//! counted by the caller, never trusted.

use std::net::{IpAddr, SocketAddr};

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::vlan::VlanPacket;

/// TCP flags the reassembly cares about.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;

/// Link types (pcap `LINKTYPE_*`).
pub const LINK_NULL: i32 = 0;
pub const LINK_ETHERNET: i32 = 1;
pub const LINK_RAW: i32 = 101;
pub const LINK_IPV4: i32 = 228;
pub const LINK_IPV6: i32 = 229;
pub const LINK_SLL: i32 = 113;
pub const LINK_SLL2: i32 = 276;

/// One TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: u8,
    pub payload: Vec<u8>,
}

/// Parses a frame of link type `link`.
pub fn parse(link: i32, frame: &[u8]) -> Option<Segment> {
    let (ethertype, l3) = match link {
        LINK_ETHERNET => {
            let eth = EthernetPacket::new(frame)?;
            let mut ethertype = eth.get_ethertype().0;
            let mut offset = 14;
            // Up to two VLAN tags (QinQ).
            for _ in 0..2 {
                if ethertype == EtherTypes::Vlan.0 || ethertype == 0x88a8 {
                    let vlan = VlanPacket::new(frame.get(offset..)?)?;
                    ethertype = vlan.get_ethertype().0;
                    offset += 4;
                }
            }
            (ethertype, frame.get(offset..)?)
        }
        LINK_SLL => (
            u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]),
            frame.get(16..)?,
        ),
        LINK_SLL2 => (
            u16::from_be_bytes([*frame.first()?, *frame.get(1)?]),
            frame.get(20..)?,
        ),
        LINK_NULL => {
            // A host-order address family: 2 is IPv4; 24, 28 and 30 are IPv6 on the BSDs.
            let af = u32::from_le_bytes(frame.get(..4)?.try_into().ok()?);
            let af = if af > 0xffff { af.swap_bytes() } else { af };
            let ethertype = match af {
                2 => EtherTypes::Ipv4.0,
                24 | 28 | 30 => EtherTypes::Ipv6.0,
                _ => return None,
            };
            (ethertype, frame.get(4..)?)
        }
        LINK_RAW | LINK_IPV4 | LINK_IPV6 => {
            let version = frame.first()? >> 4;
            let ethertype = match version {
                4 => EtherTypes::Ipv4.0,
                6 => EtherTypes::Ipv6.0,
                _ => return None,
            };
            (ethertype, frame)
        }
        _ => return None,
    };
    let (src_ip, dst_ip, tcp_bytes): (IpAddr, IpAddr, &[u8]) = if ethertype == EtherTypes::Ipv4.0 {
        let ip = Ipv4Packet::new(l3)?;
        let header = ip.get_header_length() as usize * 4;
        let total = ip.get_total_length() as usize;
        // GRO/TSO frames captured on the host can carry total length 0: take what is there.
        let end = if total == 0 {
            l3.len()
        } else {
            total.min(l3.len())
        };
        if ip.get_next_level_protocol() != IpNextHeaderProtocols::Tcp
            || header < 20
            || end < header
            || (ip.get_flags() & 1) != 0
            || ip.get_fragment_offset() != 0
        {
            return None;
        }
        (
            IpAddr::V4(ip.get_source()),
            IpAddr::V4(ip.get_destination()),
            l3.get(header..end)?,
        )
    } else if ethertype == EtherTypes::Ipv6.0 {
        let ip = Ipv6Packet::new(l3)?;
        let len = ip.get_payload_length() as usize;
        // Jumbograms and GRO frames can carry payload length 0: take what is there.
        let end = if len == 0 {
            l3.len()
        } else {
            (40 + len).min(l3.len())
        };
        let payload = l3.get(40..end)?;
        let tcp_at = ipv6_tcp_offset(ip.get_next_header().0, payload)?;
        (
            IpAddr::V6(ip.get_source()),
            IpAddr::V6(ip.get_destination()),
            payload.get(tcp_at..)?,
        )
    } else {
        return None;
    };
    let tcp = TcpPacket::new(tcp_bytes)?;
    let offset = tcp.get_data_offset() as usize * 4;
    if offset < 20 || offset > tcp_bytes.len() {
        return None;
    }
    Some(Segment {
        src: SocketAddr::new(src_ip, tcp.get_source()),
        dst: SocketAddr::new(dst_ip, tcp.get_destination()),
        seq: tcp.get_sequence(),
        flags: tcp.get_flags(),
        payload: tcp_bytes[offset..].to_vec(),
    })
}

/// Follows IPv6 extension headers from `next` over `payload` to TCP and returns where the TCP
/// header starts; `None` for another protocol, encrypted payloads (ESP), a fragment that is not
/// the whole packet, or a truncated or over-long chain.
fn ipv6_tcp_offset(mut next: u8, payload: &[u8]) -> Option<usize> {
    let mut at = 0;
    // Real chains are short; a bound stops a crafted packet from making this loop long.
    for _ in 0..8 {
        match next {
            6 => return Some(at),
            // Hop-by-hop, routing, destination options: length in 8-byte units, not counting
            // the first eight.
            0 | 43 | 60 => {
                let h = payload.get(at..at + 2)?;
                next = h[0];
                at += (h[1] as usize + 1) * 8;
            }
            // Fragment: only an atomic fragment (offset 0, no more fragments) is a whole segment.
            44 => {
                let h = payload.get(at..at + 8)?;
                let offset_flags = u16::from_be_bytes([h[2], h[3]]);
                if offset_flags >> 3 != 0 || offset_flags & 1 != 0 {
                    return None;
                }
                next = h[0];
                at += 8;
            }
            // Authentication header: length in 4-byte units, not counting the first two.
            51 => {
                let h = payload.get(at..at + 2)?;
                next = h[0];
                at += (h[1] as usize + 2) * 4;
            }
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
pub mod testing {
    /// An Ethernet + IPv4 + TCP frame (checksums not filled: captures off NICs with offload
    /// carry wrong ones anyway, so nothing here checks them).
    pub fn frame(
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = 20 + 20 + payload.len();
        let mut ip = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        ip.extend_from_slice(&src.0);
        ip.extend_from_slice(&dst.0);
        f.extend(ip);
        let mut tcp = Vec::new();
        tcp.extend_from_slice(&src.1.to_be_bytes());
        tcp.extend_from_slice(&dst.1.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&0u32.to_be_bytes());
        tcp.push(0x50);
        tcp.push(flags | 0x10);
        tcp.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        f.extend(tcp);
        f.extend_from_slice(payload);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::testing::frame;
    use super::*;

    #[test]
    fn ethernet_ipv4_tcp() {
        let f = frame(
            ([10, 0, 0, 1], 40000),
            ([10, 0, 0, 2], 80),
            7,
            0,
            b"GET / HTTP/1.1\r\n",
        );
        let s = parse(LINK_ETHERNET, &f).unwrap();
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
        assert_eq!(
            (s.seq, s.payload.as_slice()),
            (7, &b"GET / HTTP/1.1\r\n"[..])
        );
        // The same inside a VLAN tag.
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(parse(LINK_ETHERNET, &tagged).unwrap().dst.port(), 80);
        // Raw IP.
        assert_eq!(parse(LINK_RAW, &f[14..]).unwrap().seq, 7);
    }

    /// Ethernet + IPv6 with the given extension headers (each: its protocol number and bytes,
    /// whose first byte the builder fills with the next header) + TCP.
    fn frame6(ext: &[(u8, Vec<u8>)], payload: &[u8]) -> Vec<u8> {
        let v4 = frame(([10, 0, 0, 1], 40000), ([10, 0, 0, 2], 80), 9, 0, payload);
        let tcp = &v4[14 + 20..];
        let mut chain = Vec::new();
        for (i, (_, bytes)) in ext.iter().enumerate() {
            let mut b = bytes.clone();
            b[0] = ext.get(i + 1).map_or(6, |e| e.0);
            chain.extend(b);
        }
        let len = chain.len() + tcp.len();
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, (len >> 8) as u8, len as u8]);
        f.push(ext.first().map_or(6, |e| e.0));
        f.push(64);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend(chain);
        f.extend_from_slice(tcp);
        f
    }

    #[test]
    fn ipv6_extension_headers_are_followed() {
        let hop = (0u8, vec![0u8; 8]);
        let dest = (60u8, {
            let mut v = vec![0u8; 16];
            v[1] = 1; // 16 bytes
            v
        });
        let atomic_fragment = (44u8, vec![0u8; 8]);
        let auth = (51u8, {
            let mut v = vec![0u8; 12];
            v[1] = 1; // (1 + 2) * 4 = 12 bytes
            v
        });
        for chain in [
            vec![],
            vec![hop.clone()],
            vec![hop.clone(), dest.clone(), auth.clone()],
            vec![atomic_fragment.clone()],
        ] {
            let f = frame6(&chain, b"GET /x HTTP/1.1\r\n");
            let s = parse(LINK_ETHERNET, &f).unwrap_or_else(|| panic!("{chain:?}"));
            assert_eq!(s.dst, "[fd00::2]:80".parse().unwrap());
            assert_eq!(s.payload, b"GET /x HTTP/1.1\r\n");
        }
        // A fragment with more to come, ESP, a chain cut short, a chain too long: nothing.
        let mut more = atomic_fragment.clone();
        more.1[3] = 1;
        let esp = (50u8, vec![0u8; 8]);
        for chain in [vec![more], vec![esp], vec![hop.clone(); 9]] {
            assert!(parse(LINK_ETHERNET, &frame6(&chain, b"x")).is_none());
        }
        let f = frame6(&[dest], b"x");
        for cut in 54..f.len() - 20 {
            assert!(parse(LINK_ETHERNET, &f[..cut]).is_none(), "{cut}");
        }
    }

    #[test]
    fn bad_packets_are_none() {
        let f = frame(([10, 0, 0, 1], 1), ([10, 0, 0, 2], 2), 1, 0, b"x");
        for cut in [0, 10, 14, 20, 33, 40, 50] {
            let _ = parse(LINK_ETHERNET, &f[..cut.min(f.len())]);
        }
        assert!(parse(LINK_ETHERNET, &f[..40]).is_none());
        let mut bad_offset = f.clone();
        bad_offset[14 + 20 + 12] = 0xf0; // data offset 60 > segment
        assert!(parse(LINK_ETHERNET, &bad_offset).is_none());
        let mut udp = f.clone();
        udp[14 + 9] = 17;
        assert!(parse(LINK_ETHERNET, &udp).is_none());
        assert!(parse(999, &f).is_none());
        let mut fragment = f.clone();
        fragment[14 + 6] = 0x20; // more fragments
        assert!(parse(LINK_ETHERNET, &fragment).is_none());
    }
}
