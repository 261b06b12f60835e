//! Live capture with a memory-mapped AF_PACKET ring (TPACKET_V3): the kernel fills blocks of
//! frames in shared memory and hands whole blocks over, so there is one wakeup per block, not
//! per packet, and no copy. A classic BPF filter in the kernel passes only TCP (IPv4 and IPv6),
//! and sockets in one fanout group spread flows over worker threads by hash (a flow stays on
//! one worker, so its reassembly needs no locking). Kernel drop counters are read per socket.
//!
//! Linux only; needs CAP_NET_RAW (root or the capability).

use std::io;

const ETH_P_ALL: u16 = 0x0003;
const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_FANOUT: libc::c_int = 18;
const TPACKET_V3: libc::c_int = 2;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
const TP_STATUS_USER: u32 = 1;

/// Ring geometry: 32 blocks of 1 MiB (32 MiB per socket), a block handed over after 10 ms even
/// when not full, so a quiet link still delivers promptly.
const BLOCK_SIZE: u32 = 1 << 20;
const BLOCK_COUNT: u32 = 32;
const FRAME_SIZE: u32 = 2048;
const RETIRE_MS: u32 = 10;

#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// `tcpdump -dd tcp` for Ethernet framing: IPv4 protocol 6, or IPv6 next header 6 (directly or
/// after a fragment header).
const TCP_FILTER: [(u16, u8, u8, u32); 12] = [
    (0x28, 0, 0, 0x0000000c),
    (0x15, 0, 2, 0x00000800),
    (0x30, 0, 0, 0x00000017),
    (0x15, 6, 7, 0x00000006),
    (0x15, 0, 6, 0x000086dd),
    (0x30, 0, 0, 0x00000014),
    (0x15, 3, 0, 0x00000006),
    (0x15, 0, 3, 0x0000002c),
    (0x30, 0, 0, 0x00000036),
    (0x15, 0, 1, 0x00000006),
    (0x6, 0, 0, 0x00040000),
    (0x6, 0, 0, 0x00000000),
];

/// Kernel counters of one socket since it opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RingStats {
    pub packets: u64,
    pub drops: u64,
}

/// One ring on one interface.
pub struct Ring {
    fd: libc::c_int,
    map: *mut u8,
    map_len: usize,
    block: u32,
    stats: RingStats,
    /// The interface, for messages.
    pub interface: String,
    /// Its index when the ring was bound (a deleted and recreated interface gets a new one).
    index: u32,
}

// The mapping belongs to this ring alone; moving it to a worker thread is sound.
unsafe impl Send for Ring {}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live reference to a plain-data struct of the size given.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

impl Ring {
    /// Opens a TCP-filtered ring on `interface`, joining fanout `group` when given.
    pub fn open(interface: &str, group: Option<u16>) -> io::Result<Ring> {
        let name = std::ffi::CString::new(interface)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        // SAFETY: a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named '{interface}'"),
            ));
        }
        // Protocol 0: the socket receives nothing until `bind` names the interface and the
        // protocol. Opened with ETH_P_ALL it would take packets from every interface in between.
        // SAFETY: plain socket creation.
        let fd = check(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) })?;
        let ring = (|| -> io::Result<Ring> {
            let filter: Vec<libc::sock_filter> = TCP_FILTER
                .iter()
                .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
                .collect();
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            setopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
            setopt(fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V3)?;
            let req = TpacketReq3 {
                block_size: BLOCK_SIZE,
                block_nr: BLOCK_COUNT,
                frame_size: FRAME_SIZE,
                frame_nr: BLOCK_SIZE / FRAME_SIZE * BLOCK_COUNT,
                retire_blk_tov: RETIRE_MS,
                sizeof_priv: 0,
                feature_req_word: 0,
            };
            setopt(fd, SOL_PACKET, PACKET_RX_RING, &req)?;
            let map_len = (BLOCK_SIZE * BLOCK_COUNT) as usize;
            // SAFETY: maps the ring the kernel just allocated for this socket.
            let map = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                )
            };
            if map == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: sockaddr_ll is plain data; zeroed then filled.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = ETH_P_ALL.to_be();
            addr.sll_ifindex = index as i32;
            // SAFETY: binds to the address built above.
            check(unsafe {
                libc::bind(
                    fd,
                    &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            })?;
            if let Some(g) = group {
                let arg: u32 =
                    (g as u32) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
                setopt(fd, SOL_PACKET, PACKET_FANOUT, &arg)?;
            }
            Ok(Ring {
                fd,
                map: map as *mut u8,
                map_len,
                block: 0,
                stats: RingStats::default(),
                interface: interface.to_string(),
                index,
            })
        })();
        if ring.is_err() {
            // SAFETY: closing the socket opened above.
            unsafe { libc::close(fd) };
        }
        ring
    }

    /// Waits up to `timeout_ms` for a block, then calls `f(timestamp, frame)` for each frame
    /// of every ready block. Returns the number of frames.
    pub fn poll(&mut self, timeout_ms: i32, f: &mut dyn FnMut(f64, &[u8])) -> io::Result<usize> {
        let mut n = 0;
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        let ready = self.block_ready();
        if !ready {
            // SAFETY: one pollfd for our socket.
            let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    return Ok(0);
                }
                return Err(e);
            }
            if pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0
                && !self.block_ready()
            {
                // The kernel reports an interface going down or away as a socket error, which
                // stays pending (and poll keeps returning at once) until it is read.
                let err = self.take_error();
                if !self.interface_present() {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("interface {} is gone ({err})", self.interface),
                    ));
                }
                if pfd.revents & libc::POLLNVAL != 0 {
                    return Err(io::Error::other("the capture socket is closed"));
                }
            }
        }
        while self.block_ready() {
            n += self.read_block(f);
        }
        Ok(n)
    }

    /// Reads (and so clears) the socket's pending error.
    fn take_error(&self) -> io::Error {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_ERROR writes one int into `err`.
        unsafe {
            libc::getsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut err as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        io::Error::from_raw_os_error(err)
    }

    /// Whether the interface the ring was bound to still exists (same name, same index).
    fn interface_present(&self) -> bool {
        let Ok(name) = std::ffi::CString::new(self.interface.as_str()) else {
            return false;
        };
        // SAFETY: a NUL-terminated name.
        unsafe { libc::if_nametoindex(name.as_ptr()) == self.index }
    }

    fn block_ptr(&self) -> *mut u8 {
        // SAFETY: block < BLOCK_COUNT, inside the mapping.
        unsafe { self.map.add((self.block * BLOCK_SIZE) as usize) }
    }

    fn block_ready(&self) -> bool {
        let status = self.block_ptr().wrapping_add(8) as *const u32;
        // SAFETY: the block header lies in the mapping; the kernel writes it concurrently,
        // so read it volatile.
        let s = unsafe { std::ptr::read_volatile(status) };
        s & TP_STATUS_USER != 0
    }

    fn read_block(&mut self, f: &mut dyn FnMut(f64, &[u8])) -> usize {
        let block = self.block_ptr();
        // SAFETY: header fields of a block the kernel handed to us (status USER).
        let (num, first) = unsafe {
            (
                std::ptr::read_volatile(block.add(12) as *const u32),
                std::ptr::read_volatile(block.add(16) as *const u32),
            )
        };
        let end = block.wrapping_add(BLOCK_SIZE as usize);
        let mut pkt = block.wrapping_add(first as usize);
        let mut count = 0;
        for _ in 0..num {
            if pkt.wrapping_add(32) > end {
                break;
            }
            // SAFETY: a tpacket3_hdr inside the block (bounds checked above).
            let (next, sec, nsec, snaplen, mac) = unsafe {
                (
                    std::ptr::read_unaligned(pkt as *const u32),
                    std::ptr::read_unaligned(pkt.add(4) as *const u32),
                    std::ptr::read_unaligned(pkt.add(8) as *const u32),
                    std::ptr::read_unaligned(pkt.add(12) as *const u32),
                    std::ptr::read_unaligned(pkt.add(24) as *const u16),
                )
            };
            let data = pkt.wrapping_add(mac as usize);
            if data.wrapping_add(snaplen as usize) <= end {
                // SAFETY: the frame lies within the block.
                let frame = unsafe { std::slice::from_raw_parts(data, snaplen as usize) };
                f(sec as f64 + nsec as f64 / 1e9, frame);
                count += 1;
            }
            if next == 0 {
                break;
            }
            pkt = pkt.wrapping_add(next as usize);
        }
        // Hand the block back to the kernel.
        // SAFETY: writing the status word of our block.
        unsafe { std::ptr::write_volatile(block.add(8) as *mut u32, 0) };
        self.block = (self.block + 1) % BLOCK_COUNT;
        count
    }

    /// Kernel counters so far (the kernel resets its own on each read; they add up here).
    pub fn stats(&mut self) -> RingStats {
        let mut s = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: getsockopt into a struct of the size given.
        let r = unsafe {
            libc::getsockopt(
                self.fd,
                SOL_PACKET,
                PACKET_STATISTICS,
                &mut s as *mut TpacketStatsV3 as *mut libc::c_void,
                &mut len,
            )
        };
        if r == 0 {
            self.stats.packets += s.packets as u64;
            self.stats.drops += s.drops as u64;
        }
        self.stats
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping and closing what `open` created.
        unsafe {
            libc::munmap(self.map as *mut libc::c_void, self.map_len);
            libc::close(self.fd);
        }
    }
}

/// Interfaces named by the operator, with `veth*`-style prefixes expanded from /sys/class/net
/// (`all-veths` means every `veth`, `cali`, `lxc` and `cilium` interface: pod interfaces).
pub fn expand_interfaces(names: &[String]) -> Vec<String> {
    let present: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for n in names {
        let prefixes: Vec<&str> = if n == "all-veths" {
            vec!["veth", "cali", "lxc", "cilium_"]
        } else if let Some(p) = n.strip_suffix('*') {
            vec![p]
        } else {
            out.push(n.clone());
            continue;
        };
        for p in &present {
            if prefixes.iter().any(|x| p.starts_with(x)) && !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    out
}
