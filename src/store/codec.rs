//! Order-preserving key encodings. Values are JSON (see [`super::Table`]); keys are bytes whose
//! lexicographic order matches the natural order of the key type, so range scans work.

/// A type usable as a table key.
pub trait StoreKey: Sized {
    /// Encodes the key so that byte order equals key order.
    fn encode(&self) -> Vec<u8>;
    /// Decodes a key written by [`StoreKey::encode`]; `None` for bytes it did not write.
    fn decode(bytes: &[u8]) -> Option<Self>;
}

impl StoreKey for u64 {
    fn encode(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(bytes.try_into().ok()?))
    }
}

impl StoreKey for String {
    fn encode(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        String::from_utf8(bytes.to_vec()).ok()
    }
}

/// (u64, u64) pairs, e.g. (timestamp, sequence) or (owner id, item id).
impl StoreKey for (u64, u64) {
    fn encode(&self) -> Vec<u8> {
        let mut v = self.0.to_be_bytes().to_vec();
        v.extend_from_slice(&self.1.to_be_bytes());
        v
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 {
            return None;
        }
        Some((u64::decode(&bytes[..8])?, u64::decode(&bytes[8..])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_order_is_byte_order() {
        let mut xs = [5u64, 256, 1, u64::MAX, 0];
        let mut enc: Vec<_> = xs.iter().map(|x| x.encode()).collect();
        xs.sort();
        enc.sort();
        assert_eq!(
            enc.iter()
                .map(|b| u64::decode(b).unwrap())
                .collect::<Vec<_>>(),
            xs
        );
        assert_eq!(<(u64, u64)>::decode(&(3, 4).encode()), Some((3, 4)));
        assert_eq!(u64::decode(b"short"), None);
    }
}
