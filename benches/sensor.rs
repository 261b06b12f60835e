//! Sensor pipeline benchmark. Prints figures; asserts nothing.
//!
//!     cargo bench --bench sensor
//!     SENSOR_MIB=8 valgrind --tool=callgrind --toggle-collect='bulwark::sensor::read_pcap' …/sensor-<hash>
//!         (a smaller capture, one round: instruction counts, which a shared machine's noise
//!         leaves alone)
//!
//! Writes a pcap of HTTP/1.1 exchanges (keep-alive connections of 50 requests, JSON bodies from
//! the detection corpus, JSON responses), as Ethernet/IPv4/TCP frames of up to 1,448 bytes of
//! payload, then times `bulwark::sensor::read_pcap`: reading, parsing, reassembly, HTTP and
//! detection, on one core.

use std::io::Write;
use std::time::Instant;

use bulwark::detect::corpus::Generator;
use bulwark::detect::Engine;
use bulwark::sensor::{read_pcap, Pipeline};

const TARGET_BYTES: usize = 300 * 1024 * 1024;
const MSS: usize = 1448;

fn frame(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let total = 40 + payload.len();
    f.extend_from_slice(&[
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
    ]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 0x50, flags | 0x10, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

fn main() {
    let target_bytes = std::env::var("SENSOR_MIB")
        .ok()
        .and_then(|m| m.parse::<usize>().ok())
        .map_or(TARGET_BYTES, |m| m * 1024 * 1024);
    let rounds = if target_bytes < TARGET_BYTES { 1 } else { 3 };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.pcap");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("pcap"));
    // Legacy pcap header: microseconds, Ethernet.
    out.write_all(&[
        0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0,
    ])
    .expect("write");
    let mut g = Generator::new(7);
    let (mut bytes, mut frames, mut exchanges) = (0usize, 0usize, 0usize);
    let mut t = 0u32;
    let write = |out: &mut std::io::BufWriter<std::fs::File>, f: &[u8], t: u32| {
        out.write_all(&t.to_le_bytes()).expect("w");
        out.write_all(&0u32.to_le_bytes()).expect("w");
        out.write_all(&(f.len() as u32).to_le_bytes()).expect("w");
        out.write_all(&(f.len() as u32).to_le_bytes()).expect("w");
        out.write_all(f).expect("w");
    };
    let mut conn = 0u32;
    while bytes < target_bytes {
        conn += 1;
        let c = (
            [10, 1, (conn >> 8) as u8, conn as u8],
            30000 + (conn % 30000) as u16,
        );
        let s = ([10, 0, 0, 2], 8080);
        let (mut cs, mut ss) = (1000u32, 5000u32);
        write(&mut out, &frame(c, s, cs - 1, 0x02, b""), t);
        write(&mut out, &frame(s, c, ss - 1, 0x02, b""), t);
        for _ in 0..50 {
            let doc = g.doc();
            let mut req = format!(
                "POST /api/orders/{} HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                exchanges, doc.body.len()
            )
            .into_bytes();
            req.extend_from_slice(&doc.body);
            let resp_body = br#"{"status":"accepted","id":"7f9c2ba4-e88f-11d4-a716-446655440000"}"#;
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                resp_body.len()
            )
            .into_bytes();
            resp.extend_from_slice(resp_body);
            for chunk in req.chunks(MSS) {
                let f = frame(c, s, cs, 0, chunk);
                cs = cs.wrapping_add(chunk.len() as u32);
                bytes += f.len();
                frames += 1;
                write(&mut out, &f, t);
            }
            for chunk in resp.chunks(MSS) {
                let f = frame(s, c, ss, 0, chunk);
                ss = ss.wrapping_add(chunk.len() as u32);
                bytes += f.len();
                frames += 1;
                write(&mut out, &f, t);
            }
            exchanges += 1;
        }
        write(&mut out, &frame(c, s, cs, 0x01, b""), t);
        write(&mut out, &frame(s, c, ss, 0x01, b""), t);
        t += 1;
    }
    drop(out);
    println!(
        "pcap: {frames} frames, {exchanges} HTTP exchanges, {:.0} MiB on the wire",
        bytes as f64 / 1048576.0
    );
    for round in 1..=rounds {
        let mut p = Pipeline::new(Engine::default());
        let start = Instant::now();
        read_pcap(&path, &mut p).expect("read");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "round {round}: {:.2} s = {:.2} Gbit/s ({:.0} MB/s), {} exchanges, {} findings, {} map entries",
            secs,
            bytes as f64 * 8.0 / 1e9 / secs,
            bytes as f64 / 1e6 / secs,
            p.stats.exchanges,
            p.stats.findings,
            p.map.entries().len()
        );
    }
}
