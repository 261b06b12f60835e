//! Data in motion: captured frames → TCP segments (`packet`) → per-direction reassembly
//! (`reassembly`) → HTTP/1.1 exchanges (`http`) → the detection engine on URLs, headers and
//! bodies → the data map (`map`). Frames come from capture files (`bulwark sensor --pcap`) or
//! from live AF_PACKET rings (`capture`, `live`).
//!
//! Memory is bounded everywhere: connections (a cap, idle eviction), out-of-order bytes per
//! direction, bodies (1 MiB), the map (routes). Under pressure data is dropped and counted.

pub mod capture;
pub mod http;
pub mod live;
pub mod map;
pub mod packet;
pub mod reassembly;

use std::collections::HashMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::detect::{Engine, Finding};

/// Connections followed at once; new ones past this are counted and ignored.
pub const MAX_CONNECTIONS: usize = 65_536;
/// A connection silent this long (capture time) is closed.
pub const IDLE_SECONDS: f64 = 120.0;

/// Paths of probes and health checks, not user traffic: skipped unless configured otherwise
/// (`bulwark sensor --skip-path`, `[sensor] skip_paths`).
pub const PROBE_PATHS: &[&str] = &[
    "/healthz", "/readyz", "/livez", "/health", "/metrics", "/ping",
];

/// Which exchanges the pipeline leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    /// Request paths (without the query) skipped exactly.
    pub paths: Vec<String>,
    /// Requests whose user agent is `kube-probe/…` (the kubelet's probes).
    pub kube_probes: bool,
}

impl Default for Skip {
    fn default() -> Self {
        Skip {
            paths: PROBE_PATHS.iter().map(|p| p.to_string()).collect(),
            kube_probes: true,
        }
    }
}

impl Skip {
    /// What the embedded sensor's `[sensor]` settings leave out.
    pub fn from_config(c: &crate::config::SensorConfig) -> Skip {
        Skip {
            paths: c
                .skip_paths
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            kube_probes: c.skip_kube_probes,
        }
    }

    /// Nothing skipped: every exchange is scanned.
    pub fn nothing() -> Skip {
        Skip {
            paths: Vec::new(),
            kube_probes: false,
        }
    }
}

/// Why the sensor failed.
#[derive(Debug, thiserror::Error)]
pub enum DimError {
    #[error("{path}: {reason}")]
    Capture { path: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Counters, exported as metrics by the live sensor and printed by the pcap mode.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub frames: u64,
    pub tcp_segments: u64,
    /// Frames that are not TCP over IP, or are malformed.
    pub skipped_frames: u64,
    pub connections: u64,
    pub connections_dropped: u64,
    pub exchanges: u64,
    pub probes_skipped: u64,
    pub non_http_connections: u64,
    pub gap_bytes: u64,
    pub duplicate_segments: u64,
    pub truncated_bodies: u64,
    pub findings: u64,
}

impl Stats {
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &Stats) {
        self.frames += o.frames;
        self.tcp_segments += o.tcp_segments;
        self.skipped_frames += o.skipped_frames;
        self.connections += o.connections;
        self.connections_dropped += o.connections_dropped;
        self.exchanges += o.exchanges;
        self.probes_skipped += o.probes_skipped;
        self.non_http_connections += o.non_http_connections;
        self.gap_bytes += o.gap_bytes;
        self.duplicate_segments += o.duplicate_segments;
        self.truncated_bodies += o.truncated_bodies;
        self.findings += o.findings;
    }
}

/// Headers that carry no data of the sender's: not scanned.
const PLAIN_HEADERS: [&str; 10] = [
    "host",
    "content-length",
    "content-type",
    "accept",
    "accept-encoding",
    "connection",
    "user-agent",
    "date",
    "content-encoding",
    "transfer-encoding",
];

struct Conn {
    /// The side that opened the connection (sent the SYN, or sent a request first).
    client: Option<SocketAddr>,
    up: reassembly::Stream,
    down: reassembly::Stream,
    http: http::Connection,
    last_seen: f64,
    /// Bytes seen before the client was known (the side is decided by the first payload).
    undecided: Vec<(SocketAddr, Vec<u8>)>,
}

/// The whole pipeline from frames to the data map.
pub struct Pipeline {
    engine: Engine,
    skip: Skip,
    /// Most bytes of each decoded body kept for detection.
    body_cap: usize,
    /// Keyed by addresses a peer chooses, so hashed with a per-process random seed (foldhash:
    /// SipHash cost a tenth of the pipeline), and capped at [`MAX_CONNECTIONS`].
    conns: HashMap<(SocketAddr, SocketAddr), Conn, foldhash::fast::RandomState>,
    pub map: map::DataMap,
    pub stats: Stats,
    now: f64,
}

fn key(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn looks_like_request(data: &[u8]) -> bool {
    const METHODS: &[&[u8]] = &[
        b"GET ",
        b"POST ",
        b"PUT ",
        b"PATCH ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
    ];
    METHODS.iter().any(|m| data.starts_with(m))
}

impl Pipeline {
    pub fn new(engine: Engine) -> Pipeline {
        Pipeline::skipping(engine, Skip::default())
    }

    /// A pipeline that leaves out what `skip` names.
    pub fn skipping(engine: Engine, skip: Skip) -> Pipeline {
        Pipeline {
            engine,
            skip,
            body_cap: http::BODY_CAP,
            conns: HashMap::default(),
            map: map::DataMap::default(),
            stats: Stats::default(),
            now: 0.0,
        }
    }

    /// Keeps at most `cap` bytes of each decoded body (1 MiB by default).
    pub fn with_body_cap(mut self, cap: usize) -> Pipeline {
        self.body_cap = cap;
        self
    }

    /// One captured frame of link type `link` at time `ts` (seconds).
    pub fn frame(&mut self, link: i32, ts: f64, frame: &[u8]) {
        self.stats.frames += 1;
        self.now = self.now.max(ts);
        let Some(seg) = packet::parse(link, frame) else {
            self.stats.skipped_frames += 1;
            return;
        };
        self.stats.tcp_segments += 1;
        self.segment(seg, ts);
        if self.stats.frames.is_multiple_of(4096) {
            self.evict_idle();
        }
    }

    fn segment(&mut self, seg: packet::Segment, ts: f64) {
        let k = key(seg.src, seg.dst);
        let mut done = Vec::new();
        let close;
        let client;
        let full = self.conns.len() >= MAX_CONNECTIONS;
        {
            // One lookup per segment: the entry, made when the connection is new.
            let c = match self.conns.entry(k) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    if full {
                        self.stats.connections_dropped += 1;
                        return;
                    }
                    // A bare RST or FIN for an unknown connection opens nothing.
                    if seg.payload.is_empty() && seg.flags & packet::SYN == 0 {
                        return;
                    }
                    self.stats.connections += 1;
                    v.insert(Conn {
                        client: None,
                        up: reassembly::Stream::default(),
                        down: reassembly::Stream::default(),
                        http: http::Connection::with_body_cap(self.body_cap),
                        last_seen: ts,
                        undecided: Vec::new(),
                    })
                }
            };
            c.last_seen = ts;
            let syn = seg.flags & packet::SYN != 0;
            // SYN without ACK: the sender is the client.
            if syn && seg.flags & 0x10 == 0 && c.client.is_none() {
                c.client = Some(seg.src);
            }
            let upstream = match c.client {
                Some(client) => seg.src == client,
                None => true,
            };
            let stream = if c.client.is_none() || upstream {
                &mut c.up
            } else {
                &mut c.down
            };
            // Before the client is known, each side gets its own stream by address order.
            let stream = if c.client.is_none() && seg.src != k.0 {
                &mut c.down
            } else {
                stream
            };
            let data = stream.push(seg.seq, syn, &seg.payload);
            if seg.flags & (packet::FIN | packet::RST) != 0 {
                stream.closed = true;
            }
            if !data.is_empty() {
                if c.client.is_none() {
                    if looks_like_request(&data) {
                        c.client = Some(seg.src);
                        // Bytes parked from the other side were the server's.
                        let parked = std::mem::take(&mut c.undecided);
                        if seg.src != k.0 {
                            // The streams were assigned by address order; swap to client order.
                            std::mem::swap(&mut c.up, &mut c.down);
                        }
                        c.http.from_client(&data, &mut done);
                        for (_, d) in parked {
                            c.http.from_server(&d, &mut done);
                        }
                    } else if c.undecided.len() < 16 {
                        c.undecided.push((seg.src, data));
                    }
                } else if Some(seg.src) == c.client {
                    c.http.from_client(&data, &mut done);
                } else {
                    c.http.from_server(&data, &mut done);
                }
            }
            close = (c.up.closed && c.down.closed) || seg.flags & packet::RST != 0;
            client = c.client;
        }
        if !done.is_empty() {
            self.record(k, client, done, ts);
        }
        if close {
            self.close(k);
        }
    }

    fn close(&mut self, k: (SocketAddr, SocketAddr)) {
        let Some(mut c) = self.conns.remove(&k) else {
            return;
        };
        let mut done = Vec::new();
        if c.client.is_some() {
            let up = c.up.flush();
            let down = c.down.flush();
            c.http.from_client(&up, &mut done);
            c.http.from_server(&down, &mut done);
            c.http.close(&mut done);
        } else {
            self.stats.non_http_connections += 1;
        }
        if c.http.broken() {
            self.stats.non_http_connections += 1;
        }
        self.stats.gap_bytes += c.up.gap_bytes + c.down.gap_bytes;
        self.stats.duplicate_segments += c.up.duplicates + c.down.duplicates;
        self.record(k, c.client, done, c.last_seen);
    }

    fn record(
        &mut self,
        k: (SocketAddr, SocketAddr),
        client: Option<SocketAddr>,
        done: Vec<http::Exchange>,
        ts: f64,
    ) {
        let Some(client) = client else { return };
        let server = if client == k.0 { k.1 } else { k.0 };
        // Addresses are formatted once for all the exchanges and both directions, without the
        // formatting machinery: it cost more than detection on small bodies.
        let mut source = String::with_capacity(15);
        map::push_ip(&mut source, client.ip());
        let mut destination = String::with_capacity(21);
        map::push_socket_addr(&mut destination, server);
        for ex in done {
            self.stats.exchanges += 1;
            let req = &ex.request;
            let path = req.target.split('?').next().unwrap_or("");
            let probe = self.skip.paths.iter().any(|p| p == path)
                || (self.skip.kube_probes
                    && req
                        .header("user-agent")
                        .is_some_and(|ua| ua.starts_with(b"kube-probe/")));
            if probe {
                self.stats.probes_skipped += 1;
                continue;
            }
            let request = self.message_findings(req, true);
            if req.truncated {
                self.stats.truncated_bodies += 1;
            }
            let response = match &ex.response {
                Some(resp) => {
                    if resp.truncated {
                        self.stats.truncated_bodies += 1;
                    }
                    self.message_findings(resp, false)
                }
                None => Vec::new(),
            };
            self.stats.findings += (request.len() + response.len()) as u64;
            if request.is_empty() && response.is_empty() {
                // Nothing to map: no route is built (most exchanges carry nothing).
                continue;
            }
            let host = req
                .header("host")
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            // One route for both directions of the exchange.
            let mut route = map::Route {
                source: source.clone(),
                destination: destination.clone(),
                method: req.method.clone(),
                endpoint: map::endpoint_template(&req.target),
                direction: "request",
            };
            self.map.add(&route, &host, &request, ts);
            route.direction = "response";
            self.map.add(&route, &host, &response, ts);
        }
    }

    /// Findings in a message: query parameters, headers that carry data, and the body read
    /// by its content type.
    fn message_findings(&self, m: &http::Message, request: bool) -> Vec<Finding> {
        let mut out = Vec::new();
        if request {
            if let Some((_, query)) = m.target.split_once('?') {
                out.extend(self.engine.scan_form(query.as_bytes()));
            }
        }
        for (raw_name, value) in m.headers() {
            if PLAIN_HEADERS
                .iter()
                .any(|h| raw_name.eq_ignore_ascii_case(h.as_bytes()))
            {
                continue;
            }
            // Authorization and cookies are expected to carry credentials to their endpoint;
            // they are still reported, as the map shows which endpoints receive them. The line
            // is scanned as the peer sent it; the name as text only names the finding.
            let mut line = raw_name.to_vec();
            line.extend_from_slice(b": ");
            line.extend_from_slice(value);
            let mut f = self.engine.scan_text(&line);
            let name = std::str::from_utf8(raw_name).unwrap_or_default();
            f.extend(self.engine.scan_field(name, value, 0));
            for x in &mut f {
                x.path = Some(format!("header {name}"));
            }
            out.extend(f);
        }
        if !m.body.is_empty() {
            let f = match http::BodyKind::of(m.header("content-type").unwrap_or_default()) {
                http::BodyKind::Binary => Vec::new(),
                http::BodyKind::Json => self.engine.scan_json(&m.body),
                http::BodyKind::Form => self.engine.scan_form(&m.body),
                http::BodyKind::Text => self.engine.scan_text(&m.body),
            };
            out.extend(f);
        }
        // One finding per (type, path, offset).
        out.sort_by(|a, b| (&a.kind, &a.path, a.offset).cmp(&(&b.kind, &b.path, b.offset)));
        out.dedup_by(|a, b| a.kind == b.kind && a.path == b.path && a.offset == b.offset);
        out
    }

    fn evict_idle(&mut self) {
        let now = self.now;
        let idle: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, c)| now - c.last_seen > IDLE_SECONDS)
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            self.close(k);
        }
    }

    /// The capture ended: every connection is closed and flushed.
    pub fn finish(&mut self) {
        let all: Vec<_> = self.conns.keys().copied().collect();
        for k in all {
            self.close(k);
        }
    }
}

/// Reads a pcap or pcapng file into the pipeline.
pub fn read_pcap(path: &std::path::Path, pipeline: &mut Pipeline) -> Result<(), DimError> {
    use pcap_parser::pcapng::Block;
    use pcap_parser::{PcapBlockOwned, PcapError};
    let bad = |reason: String| DimError::Capture {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path)?;
    let mut reader = pcap_parser::create_reader(1 << 20, file)
        .map_err(|e| bad(format!("not a pcap or pcapng file ({e:?})")))?;
    let mut legacy_link = packet::LINK_ETHERNET;
    // pcapng: link type and timestamp unit per interface.
    let mut interfaces: Vec<(i32, f64)> = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy_link = h.network.0,
                    PcapBlockOwned::Legacy(b) => {
                        let ts = b.ts_sec as f64 + b.ts_usec as f64 / 1e6;
                        pipeline.frame(legacy_link, ts, b.data);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        let unit = if idb.if_tsresol & 0x80 != 0 {
                            2f64.powi(-((idb.if_tsresol & 0x7f) as i32))
                        } else {
                            10f64.powi(-(idb.if_tsresol as i32))
                        };
                        interfaces.push((idb.linktype.0, unit));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (link, unit) = interfaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((packet::LINK_ETHERNET, 1e-6));
                        let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        pipeline.frame(link, raw as f64 * unit, epb.data);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let link = interfaces
                            .first()
                            .map(|i| i.0)
                            .unwrap_or(packet::LINK_ETHERNET);
                        pipeline.frame(link, pipeline.now, spb.data);
                    }
                    _ => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    // A capture cut mid-frame (a killed tcpdump): what was read counts.
                    break;
                }
                reader
                    .refill()
                    .map_err(|e| bad(format!("read error ({e:?})")))?;
            }
            Err(e) => return Err(bad(format!("corrupt capture ({e:?})"))),
        }
    }
    pipeline.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::packet::testing::frame;
    use super::*;

    #[test]
    fn the_configured_sensor_skips_probes_unless_told_otherwise() {
        let mut s = crate::config::SensorConfig::default();
        assert_eq!(Skip::from_config(&s), Skip::default());
        assert_eq!(s.max_body_bytes, http::BODY_CAP as u64);
        assert_eq!(s.rescan_seconds, live::RESCAN.as_secs());
        s.skip_paths = " /internal/ping, ,/status ".into();
        s.skip_kube_probes = false;
        assert_eq!(
            Skip::from_config(&s),
            Skip {
                paths: vec!["/internal/ping".into(), "/status".into()],
                kube_probes: false
            }
        );
        s.skip_paths = String::new();
        assert!(Skip::from_config(&s).paths.is_empty());
    }

    fn exchange(p: &mut Pipeline, client_port: u16, request: &[u8], response: &[u8]) {
        let c = ([10, 0, 0, 1], client_port);
        let s = ([10, 0, 0, 2], 8080);
        p.frame(1, 1.0, &frame(c, s, 100, packet::SYN, b""));
        p.frame(1, 1.0, &frame(s, c, 500, packet::SYN, b""));
        // The request in two segments, delivered out of order, one retransmitted.
        let (a, b) = request.split_at(request.len() / 2);
        p.frame(1, 1.1, &frame(c, s, 101 + a.len() as u32, 0, b));
        p.frame(1, 1.1, &frame(c, s, 101, 0, a));
        p.frame(1, 1.1, &frame(c, s, 101, 0, a));
        p.frame(1, 1.2, &frame(s, c, 501, 0, response));
        p.frame(
            1,
            1.3,
            &frame(c, s, 101 + request.len() as u32, packet::FIN, b""),
        );
        p.frame(
            1,
            1.3,
            &frame(s, c, 501 + response.len() as u32, packet::FIN, b""),
        );
    }

    #[test]
    fn frames_to_the_data_map() {
        let mut p = Pipeline::new(Engine::default());
        let body = br#"{"email":"ada@analytical.engineering","card":{"number":"4539578763621486","cvv":"123"}}"#;
        let req = [
            format!("POST /api/customers/42/cards?debug=1 HTTP/1.1\r\nHost: payments\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes(),
            body.to_vec(),
        ]
        .concat();
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 32\r\n\r\n{\"ssn\":\"536-90-4399\",\"ok\":true}\n";
        exchange(&mut p, 40000, &req, resp);
        exchange(
            &mut p,
            40001,
            b"GET /healthz HTTP/1.1\r\nHost: payments\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        p.finish();
        let entries = p.map.entries();
        assert_eq!(entries.len(), 2, "{entries:?}");
        let req = entries
            .iter()
            .find(|e| e.route.direction == "request")
            .unwrap();
        assert_eq!(req.route.endpoint, "/api/customers/{id}/cards");
        assert_eq!(req.route.source, "10.0.0.1");
        assert_eq!(req.route.destination, "10.0.0.2:8080");
        assert_eq!(
            req.data_types
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            vec!["pci.cvv", "pci.pan", "pii.email"]
        );
        assert!(req.combinations.contains("pci.card_with_security_data"));
        assert_eq!(req.samples["pci.pan"], "1111111111111111");
        let resp = entries
            .iter()
            .find(|e| e.route.direction == "response")
            .unwrap();
        assert!(resp.data_types.contains("id.us_ssn"));
        assert_eq!(p.stats.probes_skipped, 1);
        assert!(p.stats.duplicate_segments >= 1);
    }

    #[test]
    fn skipped_paths_are_configurable() {
        let probe = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
        let internal = b"GET /internal/ping HTTP/1.1\r\nHost: a\r\n\r\n";
        let kubelet = b"GET /live HTTP/1.1\r\nHost: a\r\nUser-Agent: kube-probe/1.30\r\n\r\n";
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let run = |skip: Skip| {
            let mut p = Pipeline::skipping(Engine::default(), skip);
            exchange(&mut p, 40001, probe, ok);
            exchange(&mut p, 40002, internal, ok);
            exchange(&mut p, 40003, kubelet, ok);
            (p.stats.exchanges, p.stats.probes_skipped)
        };
        assert_eq!(run(Skip::default()), (3, 2), "/healthz and the kubelet");
        assert_eq!(run(Skip::nothing()), (3, 0));
        let custom = Skip {
            paths: vec!["/internal/ping".into()],
            kube_probes: false,
        };
        assert_eq!(run(custom), (3, 1));
    }

    #[test]
    fn floods_and_garbage_stay_bounded() {
        let mut p = Pipeline::new(Engine::default());
        // SYN flood from many ports: connections are capped, never unbounded.
        for port in 0..(MAX_CONNECTIONS as u32 + 100) {
            let c = (
                [10, 1, (port >> 8) as u8, port as u8],
                (port % 60000) as u16 + 1024,
            );
            p.frame(1, 2.0, &frame(c, ([10, 0, 0, 2], 80), 1, packet::SYN, b""));
        }
        assert!(p.conns.len() <= MAX_CONNECTIONS);
        assert!(p.stats.connections_dropped > 0);
        // Garbage frames are counted, not parsed.
        for junk in [&b""[..], b"\xff", &[0u8; 60], &[0x45u8; 100]] {
            p.frame(1, 2.0, junk);
        }
        assert!(p.stats.skipped_frames >= 4);
        // Idle connections are evicted by capture time.
        p.frame(1, 2.0 + IDLE_SECONDS * 2.0, &[0u8; 10]);
        p.evict_idle();
        assert!(p.conns.is_empty());
    }
}
