//! The engine: one pass of candidates over a document (JSON with key paths, forms, CSV, free
//! text), each checked by its validator and by the names around it, custom types added.

use super::keys::Gate;
use super::scan::Hit;
use super::*;

/// A type defined in the configuration: a regex on the value, on the name, or both.
#[derive(Debug, Clone)]
pub struct CustomType {
    pub id: String,
    pub sensitivity: Sensitivity,
    pub value: Option<regex::bytes::Regex>,
    pub key: Option<regex::Regex>,
}

/// The detector: built-in types plus custom ones.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    custom: Vec<CustomType>,
}

/// Working memory reused from one document to the next on a thread.
#[derive(Default)]
struct Scratch {
    strong: Vec<scan::Hit>,
    gated: Vec<scan::Hit>,
    walker: json::Scratch<Key>,
    /// Where the document has `"`s and `\\`s, from the strong-type pass, for the walker.
    quotes: Vec<u64>,
    /// Borrowed once per document, not once per key.
    keys: KeyCache,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// Generic leaf names that take their meaning from the parent (`{"ssn": {"value": …}}`).
const GENERIC_LEAVES: &[&str] = &["value", "number", "no", "num", "id", "code", "text", "data"];

impl Engine {
    /// The built-in types and `custom`.
    pub fn new(custom: Vec<CustomType>) -> Engine {
        Engine { custom }
    }

    /// Findings in a JSON document, with key paths; a document that is not JSON is scanned as
    /// text.
    pub fn scan_json(&self, doc: &[u8]) -> Vec<Finding> {
        // Strong types are found in one pass over the whole document, then attributed to the
        // value they lie in; only values without one are checked against their name's gates.
        SCRATCH.with(|scratch| {
            let scratch = &mut *scratch.borrow_mut();
            self.scan_json_with(doc, scratch)
        })
    }

    fn scan_json_with(&self, doc: &[u8], scratch: &mut Scratch) -> Vec<Finding> {
        let Scratch {
            strong,
            gated,
            walker,
            quotes,
            keys,
        } = scratch;
        strong.clear();
        scan::strong_and_quotes(doc, strong, Some(quotes));
        let mut next = 0;
        let mut out = Vec::with_capacity(strong.len() + 2);
        let quiet_keys = self.custom.is_empty();
        let walked = json::walk_indexed(
            doc,
            Some(quotes),
            walker,
            &mut *keys,
            |path: &[json::Seg<Key>], value: &[u8], span: std::ops::Range<usize>| {
                // Most values hold no strong hit and sit under a key that opens no gate: they
                // need nothing, and this test (inlined into the walk) is all they cost.
                let no_hit = strong.get(next).is_none_or(|h| h.start >= span.end);
                let quiet = match path.last() {
                    Some(json::Seg::Key(k)) => quiet_keys && k.0.name.quiet,
                    _ => false,
                };
                if !(no_hit && quiet) {
                    self.value_findings(doc, strong, &mut next, gated, path, value, span, &mut out);
                }
            },
        );
        match walked {
            Ok(()) => out,
            Err(_) => self.scan_text(doc),
        }
    }

    /// The findings of one JSON value: the strong hits inside it (`strong` from `next` on, in
    /// start order), else the types its name gates; custom types either way.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn value_findings(
        &self,
        doc: &[u8],
        strong: &[scan::Hit],
        next: &mut usize,
        gated: &mut Vec<scan::Hit>,
        path: &[json::Seg<Key>],
        value: &[u8],
        span: std::ops::Range<usize>,
        out: &mut Vec<Finding>,
    ) {
        // Hits before this value lie in keys or between values: not data.
        while *next < strong.len() && strong[*next].start < span.start {
            *next += 1;
        }
        let mut found = false;
        while *next < strong.len() && strong[*next].start < span.end {
            let h = strong[*next];
            *next += 1;
            if h.end <= span.end {
                out.push(finding(
                    h.kind,
                    doc,
                    h.start,
                    h.end,
                    Some(render_path(path)),
                    0,
                ));
                found = true;
            }
        }
        let mut keys = path.iter().rev().filter_map(|s| match s {
            json::Seg::Key(k) => Some(k),
            json::Seg::Index(_) => None,
        });
        let leaf = keys.next();
        if !found {
            if let Some(leaf) = leaf {
                let mut name = &leaf.0.name;
                if name.gates.is_empty() && name.generic {
                    if let Some(parent) = keys.next() {
                        name = &parent.0.name;
                    }
                }
                if !name.gates.is_empty() {
                    gated.clear();
                    scan::gated(value, &name.gates, gated);
                    for h in gated.iter() {
                        // Offsets are exact unless the string held escapes.
                        out.push(Finding {
                            kind: h.kind.id().into(),
                            sensitivity: h.kind.sensitivity(),
                            masked: mask(&value[h.start..h.end]),
                            path: Some(render_path(path)),
                            offset: (span.start + h.start).min(span.end),
                        });
                    }
                }
            }
        }
        if !self.custom.is_empty() {
            let mut hits = Vec::new();
            self.custom_hits(leaf.map(|k| k.as_ref()), value, &mut hits);
            for (kind, sensitivity, s, e) in hits {
                out.push(Finding {
                    kind,
                    sensitivity,
                    masked: mask(&value[s..e]),
                    path: Some(render_path(path)),
                    offset: (span.start + s).min(span.end),
                });
            }
        }
    }

    /// Findings in free text: strong types anywhere, key-gated ones after `name: value` or
    /// `name=value`.
    pub fn scan_text(&self, text: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut hits = Vec::new();
        scan::strong(text, &mut hits);
        for h in &hits {
            out.push(finding(h.kind, text, h.start, h.end, None, 0));
        }
        for c in &self.custom {
            if let (Some(re), None) = (&c.value, &c.key) {
                for m in re.find_iter(text) {
                    out.push(Finding {
                        kind: c.id.clone().into(),
                        sensitivity: c.sensitivity,
                        masked: mask(m.as_bytes()),
                        path: None,
                        offset: m.start(),
                    });
                }
            }
        }
        // name: value pairs (headers, logs, YAML, query strings).
        for caps in kv_regex().captures_iter(text) {
            let (Some(k), Some(v)) = (caps.get(1), caps.get(2)) else {
                continue;
            };
            let name = String::from_utf8_lossy(k.as_bytes());
            let gates = keys::gates(&keys::normalize(&name));
            let mut local = Vec::new();
            scan::gated(v.as_bytes(), &gates, &mut local);
            for h in local {
                out.push(finding(
                    h.kind,
                    v.as_bytes(),
                    h.start,
                    h.end,
                    Some(name.to_string()),
                    v.start(),
                ));
            }
            self.custom_named(&name, v.as_bytes(), v.start(), &mut out);
        }
        dedup(&mut out);
        out
    }

    /// Findings in an `application/x-www-form-urlencoded` body; paths are the field names.
    pub fn scan_form(&self, body: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut offset = 0;
        for pair in body.split(|b| *b == b'&') {
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(p) => (&pair[..p], &pair[p + 1..]),
                None => (&pair[..0], pair),
            };
            let key = url_decode(k);
            let value = url_decode(v);
            let name = String::from_utf8_lossy(&key).into_owned();
            out.extend(self.scan_field(&name, &value, offset + k.len() + 1));
            offset += pair.len() + 1;
        }
        out
    }

    /// Findings in one named value (a form field, a header, a CSV cell under its column).
    pub fn scan_field(&self, name: &str, value: &[u8], offset: usize) -> Vec<Finding> {
        let gates = keys::gates(&keys::normalize(name));
        let mut hits = Vec::new();
        self.value_hits(Some(name), value, &gates, &mut hits);
        hits.into_iter()
            .map(|(kind, sensitivity, s, e)| Finding {
                kind,
                sensitivity,
                masked: mask(&value[s..e]),
                path: Some(name.to_string()),
                offset: offset + s,
            })
            .collect()
    }

    /// Type, sensitivity and span of everything in one value.
    fn value_hits(
        &self,
        name: Option<&str>,
        value: &[u8],
        gates: &[Gate],
        out: &mut Vec<(std::borrow::Cow<'static, str>, Sensitivity, usize, usize)>,
    ) {
        let mut hits: Vec<Hit> = Vec::new();
        scan::strong(value, &mut hits);
        // A value a strong type already explains is not also a gated one (a card number under
        // `accountNumber` is a card number).
        if hits.is_empty() && !gates.is_empty() {
            scan::gated(value, gates, &mut hits);
        }
        for h in hits {
            out.push((h.kind.id().into(), h.kind.sensitivity(), h.start, h.end));
        }
        self.custom_hits(name, value, out);
    }

    /// Custom types in one value.
    fn custom_hits(
        &self,
        name: Option<&str>,
        value: &[u8],
        out: &mut Vec<(std::borrow::Cow<'static, str>, Sensitivity, usize, usize)>,
    ) {
        for c in &self.custom {
            let key_ok = match (&c.key, name) {
                (Some(re), Some(n)) => re.is_match(n),
                (Some(_), None) => false,
                (None, _) => true,
            };
            if !key_ok {
                continue;
            }
            match &c.value {
                Some(re) => {
                    for m in re.find_iter(value) {
                        out.push((c.id.clone().into(), c.sensitivity, m.start(), m.end()));
                    }
                }
                None if !value.is_empty() => {
                    out.push((c.id.clone().into(), c.sensitivity, 0, value.len()))
                }
                None => {}
            }
        }
    }

    fn custom_named(&self, name: &str, value: &[u8], offset: usize, out: &mut Vec<Finding>) {
        for c in self.custom.iter().filter(|c| c.key.is_some()) {
            let mut hits = Vec::new();
            let only = Engine::new(vec![c.clone()]);
            only.value_hits(Some(name), value, &[], &mut hits);
            for (kind, sensitivity, s, e) in hits.into_iter().filter(|h| h.0 == c.id) {
                out.push(Finding {
                    kind,
                    sensitivity,
                    masked: mask(&value[s..e]),
                    path: Some(name.to_string()),
                    offset: offset + s,
                });
            }
        }
    }
}

/// What a name says.
#[derive(Clone, Default)]
struct Name {
    gates: std::rc::Rc<[Gate]>,
    /// `value`, `number`, …: the parent's name decides.
    generic: bool,
    /// Opens no gate and is not generic: a value under it is only checked for strong hits.
    quiet: bool,
}

/// A JSON key as the walker carries it: its text and what its name says, shared by every value
/// under it and by every document that uses the same key.
#[derive(Clone)]
struct Key(std::rc::Rc<KeyInfo>);

struct KeyInfo {
    text: Box<str>,
    /// The key as a path segment: `.email`, or `["odd key"]` when it needs quoting. Rendered
    /// once here because every finding renders its path.
    segment: Box<str>,
    name: Name,
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0.text
    }
}

/// Keys seen on one thread, in a two-way set-associative table: the same few keys recur in
/// every request of an API, so each is normalised and looked up in the gate table once, not once
/// per value. A fixed table also bounds what a flood of distinct keys can cost.
struct KeyCache {
    slots: Vec<Option<KeySlot>>,
}

/// A remembered key: its first 16 bytes as two words (most keys are that short, so most
/// comparisons are two integer compares), the rest, and the shared [`Key`].
#[derive(Clone)]
struct KeySlot {
    len: usize,
    head: [u64; 2],
    rest: Box<[u8]>,
    key: Key,
}

/// Slots in a thread's key table (sets of two).
const KEY_SLOTS: usize = 8192;

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            slots: vec![None; KEY_SLOTS],
        }
    }
}

/// For each key length up to 16, the bits of a key's first 16 bytes (as [`key_head`] reads
/// them) that belong to it.
const HEAD_MASKS: [[u64; 2]; 17] = {
    let mut masks = [[0u64; 2]; 17];
    let mut n = 1;
    while n <= 16 {
        masks[n] = if n < 8 {
            [(1 << (8 * n)) - 1, 0]
        } else if n < 16 {
            [!0, (1 << (8 * (n - 8))) - 1]
        } else {
            [!0, !0]
        };
        n += 1;
    }
    masks
};

/// The first 16 bytes of a key as two words, zero past its end. `ahead` starts with the key's
/// bytes (what follows them in the document comes after): with 16 bytes there (nearly always)
/// the words are two loads and two masks, with no branch on the key's length, which varies
/// from member to member too irregularly to predict.
#[inline]
fn key_head(raw: &[u8], ahead: &[u8]) -> [u64; 2] {
    let word = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
    debug_assert!(ahead.starts_with(raw));
    match ahead.get(..16) {
        Some(b) => {
            let keep = HEAD_MASKS[raw.len().min(16)];
            [word(b) & keep[0], word(&b[8..]) & keep[1]]
        }
        _ => {
            let mut b = [0u8; 16];
            let n = raw.len().min(16);
            b[..n].copy_from_slice(&raw[..n]);
            [word(&b), word(&b[8..])]
        }
    }
}

/// A JSON path as findings carry it (`$.payment.card.number`, `$.items[2].iban`), from the
/// keys' rendered segments: what [`json::render`] writes, without re-checking each key.
fn render_path(path: &[json::Seg<Key>]) -> String {
    let len: usize = path
        .iter()
        .map(|s| match s {
            json::Seg::Key(k) => k.0.segment.len(),
            json::Seg::Index(_) => 8,
        })
        .sum();
    let mut out = String::with_capacity(len + 1);
    out.push('$');
    for seg in path {
        match seg {
            json::Seg::Key(k) => out.push_str(&k.0.segment),
            json::Seg::Index(i) => {
                out.push('[');
                push_decimal(&mut out, *i);
                out.push(']');
            }
        }
    }
    out
}

/// Appends `n` in decimal (paths render an index per array level, the sensor two addresses
/// per exchange; the formatting machinery costs more than the digits).
pub(crate) fn push_decimal(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Pushed as chars: ASCII needs no UTF-8 check, which cost more than the digits.
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

impl json::MakeKey<Key> for &mut KeyCache {
    #[inline(always)]
    fn make_key(&mut self, raw: &[u8], ahead: &[u8]) -> Key {
        self.key_of(raw, ahead)
    }
}

impl KeyCache {
    /// The shared [`Key`] for a key's unescaped bytes. Inlined into the walk: a key is nearly
    /// always found, and finding it is a hash and two compares.
    #[inline(always)]
    fn key_of(&mut self, raw: &[u8], ahead: &[u8]) -> Key {
        let head = key_head(raw, ahead);
        let rest = raw.get(16..).unwrap_or_default();
        // A multiplicative hash of the length, the head and (for long keys) the last eight bytes.
        let mut h = (raw.len() as u64 ^ head[0]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h = (h.rotate_left(29) ^ head[1]).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if raw.len() > 16 {
            let last = u64::from_le_bytes(raw[raw.len() - 8..].try_into().unwrap_or_default());
            h = (h.rotate_left(29) ^ last).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        let set = (h >> 40) as usize % (KEY_SLOTS / 2) * 2;
        for slot in self.slots[set..set + 2].iter().flatten() {
            if slot.len == raw.len()
                && slot.head == head
                && (rest.is_empty() || *slot.rest == *rest)
            {
                return slot.key.clone();
            }
        }
        self.insert(raw, head, set)
    }

    /// Makes the [`Key`] for a key not in the table, and puts it first in its set.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, raw: &[u8], head: [u64; 2], set: usize) -> Key {
        let rest = raw.get(16..).unwrap_or_default();
        let text: Box<str> = String::from_utf8_lossy(raw).into();
        let normalized = keys::normalize(&text);
        let segment = json::render(&[json::Seg::Key(&*text)]);
        let key = Key(std::rc::Rc::new(KeyInfo {
            segment: segment.strip_prefix('$').unwrap_or_default().into(),
            name: {
                let gates: std::rc::Rc<[Gate]> = keys::gates(&normalized).into();
                let generic = GENERIC_LEAVES.contains(&normalized.as_str());
                Name {
                    quiet: gates.is_empty() && !generic,
                    gates,
                    generic,
                }
            },
            text,
        }));
        // The newest key takes the first slot; the one it displaces moves to the second.
        self.slots[set + 1] = self.slots[set].take();
        self.slots[set] = Some(KeySlot {
            len: raw.len(),
            head,
            rest: rest.into(),
            key: key.clone(),
        });
        key
    }
}

fn finding(
    kind: Kind,
    s: &[u8],
    start: usize,
    end: usize,
    path: Option<String>,
    base: usize,
) -> Finding {
    Finding {
        kind: kind.id().into(),
        sensitivity: kind.sensitivity(),
        masked: mask(&s[start..end]),
        path,
        offset: base + start,
    }
}

/// One finding per (type, offset).
fn dedup(out: &mut Vec<Finding>) {
    out.sort_by(|a, b| a.offset.cmp(&b.offset).then(a.kind.cmp(&b.kind)));
    out.dedup_by(|a, b| a.offset == b.offset && a.kind == b.kind);
}

fn kv_regex() -> &'static regex::bytes::Regex {
    static RE: std::sync::OnceLock<regex::bytes::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::bytes::Regex::new(
            r#"(?i)([a-z][a-z0-9_.-]{0,40})["']?[ \t]*[:=][ \t]*["']?([^\s"',;&<>]{1,256})"#,
        )
        .expect("static regex")
    })
}

fn url_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                match std::str::from_utf8(&s[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_render_in_decimal() {
        for n in [0usize, 7, 10, 99, 12345, usize::MAX] {
            let mut s = String::new();
            push_decimal(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }

    #[test]
    fn key_table_tells_similar_keys_apart() {
        let mut table = KeyCache::default();
        // A key read in place (with the document after it in view) and the same key unescaped
        // into a buffer of its own are one key.
        for k in [
            "",
            "a",
            "zip",
            "email",
            "order_id",
            "card_number_1234",
            "customer_billing",
        ] {
            let doc = format!("{k}\":\"4111 1111 1111 1111\",\"{k}x\":1}}");
            let in_place = table.key_of(k.as_bytes(), doc.as_bytes());
            let alone = table.key_of(k.as_bytes(), k.as_bytes());
            assert!(std::rc::Rc::ptr_eq(&in_place.0, &alone.0), "{k:?}");
            assert_eq!(alone.as_ref(), k);
        }
        let mut key_of = |raw: &[u8]| table.key_of(raw, raw);
        let pairs: &[(&str, &str)] = &[
            // Same first 16 bytes.
            ("customer_billing_password", "customer_billing_passwordx"),
            // Same length, first 16 and last 8 bytes.
            ("customer_billing_a_password", "customer_billing_b_password"),
            ("a", "b"),
        ];
        for (one, two) in pairs {
            for _ in 0..3 {
                let (a, b) = (key_of(one.as_bytes()), key_of(two.as_bytes()));
                assert_eq!(a.as_ref(), *one);
                assert_eq!(b.as_ref(), *two);
            }
        }
        assert!(!key_of(b"customer_billing_password").0.name.gates.is_empty());
        assert!(key_of(b"customer_billing_passwordx")
            .0
            .name
            .gates
            .is_empty());
        for i in 0..50_000 {
            let k = format!("field_{i}");
            assert_eq!(key_of(k.as_bytes()).as_ref(), k);
        }
        // Paths from the keys' rendered segments read as the generic renderer writes them.
        for keys in [
            &["payment", "card", "number"][..],
            &["odd key", "quo\"te", "back\\slash"],
            &["", "ünï", "a.b"],
        ] {
            let mut fast = Vec::new();
            let mut plain = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                fast.push(json::Seg::Key(key_of(k.as_bytes())));
                plain.push(json::Seg::Key(std::rc::Rc::<str>::from(*k)));
                fast.push(json::Seg::Index(i * 1009));
                plain.push(json::Seg::Index(i * 1009));
            }
            assert_eq!(render_path(&fast), json::render(&plain));
        }
        assert!(!key_of(b"cvv").0.name.gates.is_empty());
        assert_eq!(
            table.slots.len(),
            KEY_SLOTS,
            "the flood did not grow the table"
        );
    }
}
