//! TCP reassembly, per direction, with bounded memory. Segments arriving in order are handed
//! on at once; early ones wait (up to a per-direction cap); retransmitted and overlapping bytes
//! are dropped; sequence numbers compare modulo 2^32 so wraparound is harmless. When the
//! out-of-order buffer is full, or a gap is never filled, the stream skips ahead and the gap is
//! counted: under pressure bytes are dropped, never waited for.

use std::collections::BTreeMap;

/// Bytes held out of order per direction before the stream gives up on a gap.
pub const MAX_PENDING: usize = 256 * 1024;

/// `a` is before `b` modulo 2^32.
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub struct Stream {
    /// The next sequence number expected; `None` until the first segment (or SYN).
    next: Option<u32>,
    /// Early segments by their offset from `next` at arrival... keyed by absolute sequence.
    pending: BTreeMap<u32, Vec<u8>>,
    pending_bytes: usize,
    /// Bytes skipped because a gap was given up on.
    pub gap_bytes: u64,
    /// Segments dropped as retransmissions or overlaps.
    pub duplicates: u64,
    /// The stream saw FIN or RST.
    pub closed: bool,
}

impl Stream {
    /// Accepts a segment; returns the bytes that are now contiguous, in order.
    pub fn push(&mut self, seq: u32, syn: bool, payload: &[u8]) -> Vec<u8> {
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        self.next.get_or_insert(data_seq);
        let mut out = Vec::new();
        if payload.is_empty() {
            return out;
        }
        let end = data_seq.wrapping_add(payload.len() as u32);
        // Early and no room to wait: give up on gaps, oldest first, until it fits or is due.
        while self.next.is_some_and(|n| before(n, data_seq))
            && self.pending_bytes + payload.len() > MAX_PENDING
            && !self.pending.is_empty()
        {
            self.skip_to_pending();
            out.extend(self.drain());
        }
        let next = self.next.unwrap_or(data_seq);
        if !before(next, end) {
            // Entirely old: a retransmission.
            self.duplicates += 1;
            return out;
        }
        if before(next, data_seq) {
            if self.pending_bytes + payload.len() > MAX_PENDING {
                // Larger than the whole buffer: skip to it.
                self.gap_bytes += data_seq.wrapping_sub(next) as u64;
                self.next = Some(end);
                out.extend_from_slice(payload);
                return out;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = self.pending.entry(data_seq) {
                self.pending_bytes += payload.len();
                e.insert(payload.to_vec());
            } else {
                self.duplicates += 1;
            }
            return out;
        }
        // Overlaps `next`: take the new part, then whatever became contiguous.
        let skip = next.wrapping_sub(data_seq) as usize;
        out.extend_from_slice(&payload[skip..]);
        self.next = Some(end);
        out.extend(self.drain());
        out
    }

    /// Hands on pending segments that are now contiguous with `next`.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        while let Some((&s, _)) = self.pending.iter().next() {
            if before(next, s) {
                break;
            }
            let data = self.pending.remove(&s).unwrap_or_default();
            self.pending_bytes -= data.len();
            let e = s.wrapping_add(data.len() as u32);
            if before(next, e) {
                out.extend_from_slice(&data[next.wrapping_sub(s) as usize..]);
                next = e;
            } else {
                self.duplicates += 1;
            }
        }
        self.next = Some(next);
        out
    }

    /// Gives up on the current gap: jumps to the earliest pending segment.
    fn skip_to_pending(&mut self) {
        if let (Some(next), Some((&s, _))) = (self.next, self.pending.iter().next()) {
            if before(next, s) {
                self.gap_bytes += s.wrapping_sub(next) as u64;
                self.next = Some(s);
            }
        }
    }

    /// Bytes held waiting for a gap.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// At the end of a capture (or connection): everything pending, gaps skipped.
    pub fn flush(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            self.skip_to_pending();
            let Some(next) = self.next else { break };
            let Some(data) = self.pending.remove(&next) else {
                break;
            };
            self.pending_bytes -= data.len();
            self.next = Some(next.wrapping_add(data.len() as u32));
            out.extend(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_out_of_order_and_retransmissions() {
        let mut s = Stream::default();
        assert_eq!(s.push(99, true, b""), b"");
        assert_eq!(s.push(100, false, b"hello "), b"hello ");
        assert_eq!(s.push(112, false, b"!"), b"", "early: held");
        assert_eq!(s.push(100, false, b"hello "), b"", "retransmission");
        assert_eq!(s.push(106, false, b"world"), b"world");
        assert_eq!(s.push(111, false, b"?!"), b"?!");
        assert!(s.duplicates >= 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut s = Stream::default();
        let start = u32::MAX - 2;
        assert_eq!(s.push(start, false, b"abc"), b"abc");
        assert_eq!(s.push(start.wrapping_add(6), false, b"ghi"), b"");
        assert_eq!(s.push(0, false, b"def"), b"defghi");
    }

    #[test]
    fn a_gap_is_skipped_under_pressure_and_at_flush() {
        let mut s = Stream::default();
        s.push(0, false, b"a");
        let big = vec![b'x'; MAX_PENDING / 2 + 1];
        s.push(1000, false, &big);
        let out = s.push(1000 + big.len() as u32, false, &big);
        // The second early segment did not fit: the stream jumped over the gap.
        assert!(s.gap_bytes > 0);
        assert!(!out.is_empty());
        assert!(s.pending_bytes() <= MAX_PENDING);
        let mut t = Stream::default();
        t.push(0, false, b"a");
        t.push(10, false, b"later");
        assert_eq!(t.flush(), b"later");
        assert_eq!(t.gap_bytes, 9);
    }
}
