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
        if ip.get_next_header() != IpNextHeaderProtocols::Tcp {
            return None;
        }
        let len = ip.get_payload_length() as usize;
        let end = if len == 0 {
            l3.len()
        } else {
            (40 + len).min(l3.len())
        };
        (
            IpAddr::V6(ip.get_source()),
            IpAddr::V6(ip.get_destination()),
            l3.get(40..end)?,
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
