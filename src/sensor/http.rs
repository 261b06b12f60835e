//! HTTP/1.1 over reassembled streams: requests from the client's bytes, responses from the
//! server's, paired in order (keep-alive and pipelining), bodies by `Content-Length` or chunked
//! encoding, `gzip`/`deflate` decoded. Bodies are kept up to a cap (the rest is skipped, never
//! buffered); a stream that stops looking like HTTP is abandoned.

use std::collections::VecDeque;
use std::io::Read;

/// Largest body kept for detection by default (more is skipped; `--max-body-bytes`,
/// `[sensor] max_body_bytes`).
pub const BODY_CAP: usize = 1024 * 1024;
/// Largest header block accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Headers parsed per message.
const MAX_HEADERS: usize = 96;

/// One message's parts that detection looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Requests: method and target; responses: empty and the status.
    pub method: String,
    pub target: String,
    pub status: u16,
    /// The header block as received, and where each header's name and value lie in it: one
    /// copy per message, not two allocations per header (see [`Message::headers`]).
    head: Vec<u8>,
    spans: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Decoded body, at most the connection's body cap ([`BODY_CAP`] by default).
    pub body: Vec<u8>,
    /// The body was longer than the cap (or could not be decoded whole).
    pub truncated: bool,
}

impl Message {
    /// A header's value (first one, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        // Compared as bytes: this runs several times per message.
        self.spans
            .iter()
            .find(|(n, _)| self.head[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &self.head[v.clone()])
    }

    /// The headers in order, names and values as bytes (names are HTTP tokens; callers that
    /// skip most headers by name convert only the others to text).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans
            .iter()
            .map(|(name, value)| (&self.head[name.clone()], &self.head[value.clone()]))
    }

    /// Copies the headers httparse read out of `block` (the bytes it parsed).
    fn keep_headers(&mut self, block: &[u8], parsed: &[httparse::Header<'_>]) {
        // Names and values borrow from `block`: their offsets in it are their spans.
        let base = block.as_ptr() as usize;
        let span = |s: &[u8]| {
            let at = (s.as_ptr() as usize).wrapping_sub(base);
            if at <= block.len() && s.len() <= block.len() - at {
                at..at + s.len()
            } else {
                0..0
            }
        };
        self.head = block.to_vec();
        self.spans = parsed
            .iter()
            .map(|h| (span(h.name.as_bytes()), span(h.value)))
            .collect();
    }
}

/// A request and its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub request: Message,
    pub response: Option<Message>,
}

#[derive(Debug)]
enum BodyState {
    None,
    Length(usize),
    Chunked {
        remaining: usize,
        trailer: bool,
        /// The CRLF after a chunk's data is still to come.
        crlf: bool,
    },
    /// A response without length: until the connection closes.
    UntilClose,
}

/// Parses one direction.
#[derive(Debug)]
struct Parser {
    request_side: bool,
    /// Most body bytes kept (decoded).
    cap: usize,
    buf: Vec<u8>,
    current: Option<(Message, BodyState, Vec<u8>)>,
    broken: bool,
}

impl Parser {
    fn new(request_side: bool, cap: usize) -> Parser {
        Parser {
            request_side,
            cap,
            buf: Vec::new(),
            current: None,
            broken: false,
        }
    }

    /// Feeds bytes; returns completed messages.
    fn feed(&mut self, data: &[u8], out: &mut Vec<Message>) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.current.is_none() {
                match self.head() {
                    Ok(Some(m)) => self.current = Some(m),
                    Ok(None) => {
                        if self.buf.len() > MAX_HEAD {
                            self.broken = true;
                            self.buf.clear();
                        }
                        return;
                    }
                    Err(()) => {
                        self.broken = true;
                        self.buf.clear();
                        return;
                    }
                }
            }
            match self.body() {
                Some(done) => out.push(done),
                None => return,
            }
        }
    }

    fn head(&mut self) -> Result<Option<(Message, BodyState, Vec<u8>)>, ()> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let (consumed, mut m) = if self.request_side {
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut m = Message {
                        method: req.method.unwrap_or("").to_string(),
                        target: req.path.unwrap_or("").to_string(),
                        ..Message::default()
                    };
                    m.keep_headers(&self.buf[..n], req.headers);
                    (n, m)
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(()),
            }
        } else {
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut m = Message {
                        status: resp.code.unwrap_or(0),
                        ..Message::default()
                    };
                    m.keep_headers(&self.buf[..n], resp.headers);
                    (n, m)
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err(()),
            }
        };
        self.buf.drain(..consumed);
        let chunked = m
            .header("transfer-encoding")
            .is_some_and(|v| v.windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked")));
        let length = m
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        let no_body = !self.request_side && (m.status < 200 || m.status == 204 || m.status == 304);
        let state = if no_body {
            BodyState::None
        } else if chunked {
            BodyState::Chunked {
                remaining: 0,
                trailer: false,
                crlf: false,
            }
        } else if let Some(n) = length {
            if n == 0 {
                BodyState::None
            } else {
                BodyState::Length(n)
            }
        } else if self.request_side {
            BodyState::None
        } else {
            BodyState::UntilClose
        };
        m.body.clear();
        Ok(Some((m, state, Vec::new())))
    }

    /// Advances the current body; the finished message when complete.
    fn body(&mut self) -> Option<Message> {
        let cap = self.cap;
        let (m, state, raw) = self.current.as_mut()?;
        loop {
            match state {
                BodyState::None => break,
                BodyState::Length(left) => {
                    let take = (*left).min(self.buf.len());
                    // What has arrived goes into one allocation, not one grown byte by byte
                    // (a declared length alone reserves nothing: it is the peer's to lie about).
                    if raw.capacity() == 0 {
                        raw.reserve(take.min(cap));
                    }
                    keep(raw, &self.buf[..take], &mut m.truncated, cap);
                    self.buf.drain(..take);
                    *left -= take;
                    if *left > 0 {
                        return None;
                    }
                    break;
                }
                BodyState::UntilClose => {
                    keep(raw, &self.buf, &mut m.truncated, cap);
                    self.buf.clear();
                    return None;
                }
                BodyState::Chunked {
                    remaining,
                    trailer,
                    crlf,
                } => {
                    if *remaining > 0 {
                        let take = (*remaining).min(self.buf.len());
                        keep(raw, &self.buf[..take], &mut m.truncated, cap);
                        self.buf.drain(..take);
                        *remaining -= take;
                        if *remaining > 0 {
                            return None;
                        }
                        *crlf = true;
                    }
                    if *crlf {
                        if self.buf.len() < 2 {
                            return None;
                        }
                        self.buf.drain(..2);
                        *crlf = false;
                        continue;
                    }
                    let line_end = memchr::memmem::find(&self.buf, b"\r\n")?;
                    if *trailer {
                        self.buf.drain(..line_end + 2);
                        if line_end == 0 {
                            break;
                        }
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                    let size =
                        usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16);
                    self.buf.drain(..line_end + 2);
                    match size {
                        Ok(0) => *trailer = true,
                        Ok(n) => *remaining = n,
                        Err(_) => {
                            self.broken = true;
                            return None;
                        }
                    }
                }
            }
        }
        let (mut m, _, raw) = self.current.take()?;
        finish_body(&mut m, raw, cap);
        Some(m)
    }

    /// The connection closed: a response read until close is complete now.
    fn close(&mut self, out: &mut Vec<Message>) {
        if let Some((_, BodyState::UntilClose, _)) = &self.current {
            if let Some((mut m, _, raw)) = self.current.take() {
                finish_body(&mut m, raw, self.cap);
                out.push(m);
            }
        }
    }
}

fn keep(raw: &mut Vec<u8>, data: &[u8], truncated: &mut bool, cap: usize) {
    let room = cap.saturating_sub(raw.len());
    if data.len() > room {
        *truncated = true;
    }
    raw.extend_from_slice(&data[..data.len().min(room)]);
}

/// Decodes `Content-Encoding: gzip|deflate` (capped), else keeps the bytes.
fn finish_body(m: &mut Message, raw: Vec<u8>, cap: usize) {
    let enc = m
        .header("content-encoding")
        .unwrap_or_default()
        .trim_ascii();
    let is = |name: &[u8]| enc.eq_ignore_ascii_case(name);
    // An identity body is the bytes kept, moved, not copied.
    let decoded = if is(b"gzip") || is(b"x-gzip") {
        inflate(flate2::read::GzDecoder::new(&raw[..]), cap)
    } else if is(b"deflate") {
        inflate(flate2::read::ZlibDecoder::new(&raw[..]), cap)
            .or_else(|| inflate(flate2::read::DeflateDecoder::new(&raw[..]), cap))
    } else {
        Some(raw)
    };
    match decoded {
        Some(body) => {
            if body.len() > cap {
                m.truncated = true;
            }
            m.body = body;
            m.body.truncate(cap);
        }
        None => {
            m.truncated = true;
            m.body = Vec::new();
        }
    }
}

/// Inflates at most one byte past the cap (a bomb stops there).
fn inflate(r: impl Read, cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match r.take(cap as u64 + 1).read_to_end(&mut out) {
        Ok(_) => Some(out),
        Err(_) if !out.is_empty() => Some(out),
        Err(_) => None,
    }
}

/// One TCP connection's HTTP.
#[derive(Debug)]
pub struct Connection {
    client: Parser,
    server: Parser,
    waiting: VecDeque<Message>,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::with_body_cap(BODY_CAP)
    }
}

impl Connection {
    /// A connection keeping at most `cap` bytes of each (decoded) body.
    pub fn with_body_cap(cap: usize) -> Connection {
        Connection {
            client: Parser::new(true, cap),
            server: Parser::new(false, cap),
            waiting: VecDeque::new(),
        }
    }

    /// Bytes from the client; complete requests wait for their responses.
    pub fn from_client(&mut self, data: &[u8], done: &mut Vec<Exchange>) {
        let mut msgs = Vec::new();
        self.client.feed(data, &mut msgs);
        self.waiting.extend(msgs);
        // A runaway pipeline without responses is emitted without them.
        while self.waiting.len() > 64 {
            if let Some(request) = self.waiting.pop_front() {
                done.push(Exchange {
                    request,
                    response: None,
                });
            }
        }
    }

    /// Bytes from the server; each complete response closes the oldest request.
    pub fn from_server(&mut self, data: &[u8], done: &mut Vec<Exchange>) {
        let mut msgs = Vec::new();
        self.server.feed(data, &mut msgs);
        self.pair(msgs, done);
    }

    fn pair(&mut self, responses: Vec<Message>, done: &mut Vec<Exchange>) {
        for r in responses {
            // 1xx are interim: they answer nothing.
            if (100..200).contains(&r.status) {
                continue;
            }
            // A response to a request the capture missed pairs with nothing.
            if let Some(request) = self.waiting.pop_front() {
                done.push(Exchange {
                    request,
                    response: Some(r),
                });
            }
        }
    }

    /// The connection ended: responses read until close complete, the rest is emitted alone.
    pub fn close(&mut self, done: &mut Vec<Exchange>) {
        let mut msgs = Vec::new();
        self.server.close(&mut msgs);
        self.pair(msgs, done);
        done.extend(self.waiting.drain(..).map(|request| Exchange {
            request,
            response: None,
        }));
    }

    /// Whether either side stopped parsing (not HTTP, or hostile).
    pub fn broken(&self) -> bool {
        self.client.broken || self.server.broken
    }
}

/// How a body is read, by its content type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// Images, audio, video, octet streams, protobuf and gRPC: not scanned.
    Binary,
    Json,
    Form,
    Text,
}

impl BodyKind {
    /// The kind of a `Content-Type` value (any case; parameters allowed).
    pub(crate) fn of(content_type: &[u8]) -> BodyKind {
        // Lower-cased into the stack: a media type with its parameters is short, and this runs
        // for every message (a heap string and substring searchers cost more than the scan of a
        // small body). What is past 128 bytes is not looked at.
        let mut buf = [0u8; 128];
        let n = content_type.len().min(buf.len());
        for (b, c) in buf.iter_mut().zip(&content_type[..n]) {
            *b = c.to_ascii_lowercase();
        }
        let t = &buf[..n];
        let has = |needle: &[u8]| t.windows(needle.len()).any(|w| w == needle);
        if t.starts_with(b"image/")
            || t.starts_with(b"video/")
            || t.starts_with(b"audio/")
            || has(b"octet-stream")
            || has(b"protobuf")
            || has(b"grpc")
        {
            BodyKind::Binary
        } else if has(b"json") {
            BodyKind::Json
        } else if has(b"x-www-form-urlencoded") {
            BodyKind::Form
        } else {
            BodyKind::Text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_by_their_content_type() {
        for (ctype, kind) in [
            (&b"application/json"[..], BodyKind::Json),
            (b"Application/JSON; charset=utf-8", BodyKind::Json),
            (b"application/vnd.api+json", BodyKind::Json),
            (b"application/problem+json", BodyKind::Json),
            (b"application/x-www-form-urlencoded", BodyKind::Form),
            (
                b"APPLICATION/X-WWW-FORM-URLENCODED;charset=UTF-8",
                BodyKind::Form,
            ),
            (b"text/plain", BodyKind::Text),
            (b"", BodyKind::Text),
            (b"\xff\xfe", BodyKind::Text),
            (b"image/png", BodyKind::Binary),
            (b"Video/mp4", BodyKind::Binary),
            (b"audio/ogg", BodyKind::Binary),
            (b"application/octet-stream", BodyKind::Binary),
            (b"application/x-protobuf", BodyKind::Binary),
            (b"application/grpc+json", BodyKind::Binary),
        ] {
            assert_eq!(
                BodyKind::of(ctype),
                kind,
                "{}",
                String::from_utf8_lossy(ctype)
            );
        }
        // Only the first 128 bytes are read.
        let long = [&[b' '; 200][..], b"json"].concat();
        assert_eq!(BodyKind::of(&long), BodyKind::Text);
        let early = [&b"application/json;"[..], &[b' '; 200]].concat();
        assert_eq!(BodyKind::of(&early), BodyKind::Json);
    }

    #[test]
    fn keep_alive_pipelining_and_chunks() {
        let mut c = Connection::default();
        let mut done = vec![];
        c.from_client(
            b"POST /api/users HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"email\":\"x@y\"}GET /api/users/42 HTTP/1.1\r\nHost: a\r\n\r\n",
            &mut done,
        );
        // Split across segments anywhere.
        let resp = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n4\r\n\"b\"}\r\n0\r\n\r\n";
        for chunk in resp.chunks(7) {
            c.from_server(chunk, &mut done);
        }
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].request.method, "POST");
        assert_eq!(done[0].request.body, b"{\"email\":\"x@y\"}");
        assert_eq!(done[0].response.as_ref().unwrap().status, 201);
        assert_eq!(done[1].request.target, "/api/users/42");
        assert_eq!(done[1].response.as_ref().unwrap().body, b"{\"a\":\"b\"}");
    }

    /// The requests of a client stream that then closes, on a connection with body cap `cap`.
    fn client_requests(cap: usize, stream: &[u8]) -> Vec<Message> {
        let mut c = Connection::with_body_cap(cap);
        let mut done = vec![];
        c.from_client(stream, &mut done);
        c.close(&mut done);
        done.into_iter().map(|e| e.request).collect()
    }

    /// A POST with a gzip-encoded body.
    fn gzip_post(plain: &[u8], level: flate2::Compression) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
        gz.write_all(plain).unwrap();
        let body = gz.finish().unwrap();
        let mut req = format!(
            "POST /x HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        req
    }

    #[test]
    fn headers_keep_their_order_case_and_repeats() {
        let req = b"GET /a HTTP/1.1\r\nHost: shop\r\nX-Empty:\r\nCookie: a=1\r\ncookie: b=2\r\nX-Bin: \xff\x7e\r\n\r\n";
        let m = &client_requests(BODY_CAP, req)[0];
        let got: Vec<(&[u8], &[u8])> = m.headers().collect();
        assert_eq!(
            got,
            vec![
                (&b"Host"[..], &b"shop"[..]),
                (b"X-Empty", b""),
                (b"Cookie", b"a=1"),
                (b"cookie", b"b=2"),
                (b"X-Bin", b"\xff\x7e"),
            ]
        );
        assert_eq!(m.header("COOKIE"), Some(&b"a=1"[..]), "the first, any case");
        assert_eq!(m.header("x-missing"), None);
    }

    #[test]
    fn gzip_bodies_are_decoded_and_bombs_capped() {
        let req = gzip_post(b"{\"ssn\":\"536-90-4399\"}", flate2::Compression::fast());
        assert_eq!(
            client_requests(BODY_CAP, &req)[0].body,
            b"{\"ssn\":\"536-90-4399\"}"
        );
        // 100 MB of zeros in a small gzip: capped, marked truncated.
        let bomb = gzip_post(&vec![0u8; 100 << 20], flate2::Compression::best());
        let r = &client_requests(BODY_CAP, &bomb)[0];
        assert!(r.truncated);
        assert!(r.body.len() <= BODY_CAP);
        // A smaller cap holds for plain, chunked and compressed bodies alike.
        let r = &client_requests(100, &bomb)[0];
        assert!(r.truncated && r.body.len() == 100);
        let plain = format!(
            "POST /y HTTP/1.1\r\nContent-Length: 150\r\n\r\n{}POST /z HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n96\r\n{}\r\n0\r\n\r\n",
            "a".repeat(150),
            "b".repeat(150)
        );
        let bodies: Vec<(usize, bool)> = client_requests(100, plain.as_bytes())
            .iter()
            .map(|r| (r.body.len(), r.truncated))
            .collect();
        assert_eq!(bodies, vec![(100, true), (100, true)]);
    }

    #[test]
    fn non_http_and_hostile_streams_are_abandoned() {
        let mut c = Connection::default();
        let mut done = vec![];
        c.from_client(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", &mut done);
        assert!(c.broken());
        let mut c = Connection::default();
        c.from_client(&vec![b'A'; MAX_HEAD + 10], &mut done);
        assert!(c.broken(), "an endless header");
        let mut c = Connection::default();
        c.from_client(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            &mut done,
        );
        assert!(c.broken(), "a bad chunk size");
        assert!(done.is_empty());
    }
}
