//! What an object store holds, read without the store: keys grouped by pattern (dates, ids and
//! numbers collapsed, so a million daily log files are one asset), and an object's bytes turned
//! into named fields (JSON paths, NDJSON lines, CSV headers), gzip undone on the way.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::LazyLock;

use regex::Regex;

/// `key` with its variable parts collapsed: `logs/2024-05-01/app-17.json.gz` →
/// `logs/{date}/app-{n}.json.gz`.
pub fn key_pattern(key: &str) -> String {
    static PARTS: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
        let re = |s: &str| Regex::new(s).expect("a valid pattern");
        [
            (
                re(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
                "{uuid}",
            ),
            (
                re(concat!(
                    r"\b(?:19|20)\d{2}-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])",
                    r"(?:T?\d{2}:?\d{2}(?::?\d{2}(?:\.\d+)?)?Z?)?\b"
                )),
                "{date}",
            ),
            (
                re(r"(?i)\b[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b"),
                "{hex}",
            ),
            (re(r"\d+"), "{n}"),
        ]
    });
    let mut out = key.to_string();
    for (re, with) in PARTS.iter() {
        // Only runs long enough to be ids count as hex (`a1`, `v2` stay).
        if *with == "{hex}" {
            out = re
                .replace_all(&out, |c: &regex::Captures<'_>| {
                    if c[0].len() >= 12 {
                        "{hex}".to_string()
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned();
        } else {
            out = re.replace_all(&out, *with).into_owned();
        }
    }
    out
}

/// How an object's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
    Tsv,
    /// Plain text: each line is one value of the field `line`.
    Text,
}

/// Why an object could not be read as records.
#[derive(Debug, PartialEq)]
pub struct Unreadable(pub String);

/// The format of `key` from its name (a trailing `.gz` removed), else from its first bytes.
pub fn format_of(key: &str, head: &[u8]) -> Result<Format, Unreadable> {
    let lower = key.to_ascii_lowercase();
    let name = lower.strip_suffix(".gz").unwrap_or(&lower);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "json" => return Ok(Format::Json),
        "ndjson" | "jsonl" => return Ok(Format::Ndjson),
        "csv" => return Ok(Format::Csv),
        "tsv" => return Ok(Format::Tsv),
        "log" | "txt" => return Ok(Format::Text),
        "parquet" | "avro" | "orc" | "xlsx" | "zip" | "png" | "jpg" | "jpeg" | "gif" | "pdf"
        | "bin" | "tar" => {
            return Err(Unreadable(format!("unsupported format ({ext})")));
        }
        _ => {}
    }
    let text = head.iter().skip_while(|b| b.is_ascii_whitespace());
    match text.clone().next() {
        Some(b'[') => Ok(Format::Json),
        Some(b'{') => {
            // One object per line reads as NDJSON; one spread over lines as JSON.
            let first_line = head
                .split(|b| *b == b'\n')
                .find(|l| !l.trim_ascii().is_empty());
            match first_line.map(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok()) {
                Some(true) => Ok(Format::Ndjson),
                _ => Ok(Format::Json),
            }
        }
        _ if head.contains(&0) => Err(Unreadable("binary content".into())),
        _ => Ok(Format::Text),
    }
}

/// The bytes of a (possibly gzip-compressed) object, at most `limit` of them once inflated;
/// `true` when there was more (or the compressed stream was cut where the read stopped).
pub fn inflate(bytes: &[u8], limit: usize) -> (Vec<u8>, bool) {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        let cut = bytes.len() > limit;
        return (bytes[..bytes.len().min(limit)].to_vec(), cut);
    }
    let mut out = Vec::new();
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(limit as u64 + 1);
    // A stream cut by a ranged read ends in an error: what was inflated before it counts.
    let complete = reader.read_to_end(&mut out).is_ok();
    let cut = out.len() > limit || !complete;
    out.truncate(limit);
    (out, cut)
}

/// Every value in `bytes`, by field path: JSON paths (`customer.email`, arrays flattened as
/// `items.sku`), CSV headers, `line` for text. Lines or records cut by the read's end are
/// dropped; a malformed record is counted and skipped.
pub fn fields(format: Format, bytes: &[u8], max_records: usize) -> Fields {
    let mut out = Fields::default();
    match format {
        Format::Json => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Array(items)) => {
                for item in items.into_iter().take(max_records) {
                    out.records += 1;
                    walk(&item, "", &mut out.values);
                }
            }
            Ok(v) => {
                out.records = 1;
                walk(&v, "", &mut out.values);
            }
            Err(_) => out.malformed += 1,
        },
        Format::Ndjson => {
            for line in bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
            {
                if out.records >= max_records {
                    break;
                }
                match serde_json::from_slice::<serde_json::Value>(line) {
                    Ok(v) => {
                        out.records += 1;
                        walk(&v, "", &mut out.values);
                    }
                    Err(_) => out.malformed += 1,
                }
            }
        }
        Format::Csv | Format::Tsv => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(if format == Format::Tsv { b'\t' } else { b',' })
                .flexible(true)
                .from_reader(bytes);
            let headers: Vec<String> = match reader.byte_headers() {
                Ok(h) => h
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).trim().to_string())
                    .collect(),
                Err(_) => {
                    out.malformed += 1;
                    return out;
                }
            };
            for record in reader.byte_records() {
                if out.records >= max_records {
                    break;
                }
                let Ok(record) = record else {
                    out.malformed += 1;
                    continue;
                };
                out.records += 1;
                for (i, v) in record.iter().enumerate() {
                    let name = headers
                        .get(i)
                        .filter(|h| !h.is_empty())
                        .cloned()
                        .unwrap_or_else(|| format!("column_{}", i + 1));
                    out.values.entry(name).or_default().push(v.to_vec());
                }
            }
        }
        Format::Text => {
            for line in bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
            {
                if out.records >= max_records {
                    break;
                }
                out.records += 1;
                out.values
                    .entry("line".into())
                    .or_default()
                    .push(line.to_vec());
            }
        }
    }
    out
}

/// Values by field path.
#[derive(Debug, Default)]
pub struct Fields {
    pub values: BTreeMap<String, Vec<Vec<u8>>>,
    pub records: usize,
    pub malformed: usize,
}

fn walk(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, Vec<Vec<u8>>>) {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(v, &join(k), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, path, out);
            }
        }
        Value::Null => {}
        Value::String(s) => push(out, path, s.as_bytes().to_vec()),
        other => push(out, path, other.to_string().into_bytes()),
    }
}

fn push(out: &mut BTreeMap<String, Vec<Vec<u8>>>, path: &str, value: Vec<u8>) {
    let name = if path.is_empty() { "value" } else { path };
    out.entry(name.to_string()).or_default().push(value);
}

/// The last complete line of a read that started mid-object is where records begin: the bytes
/// after the first newline.
pub fn after_first_line(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(at) => &bytes[at + 1..],
        None => &[],
    }
}

/// `bytes` without its last line when that line may have been cut by the read's end.
pub fn whole_lines(bytes: &[u8]) -> &[u8] {
    match bytes.iter().rposition(|b| *b == b'\n') {
        Some(at) => &bytes[..=at],
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_collapse_to_patterns() {
        for (key, want) in [
            (
                "logs/2024-05-01/app-17.json.gz",
                "logs/{date}/app-{n}.json.gz",
            ),
            (
                "logs/2024/05/01/part-0003.csv",
                "logs/{n}/{n}/{n}/part-{n}.csv",
            ),
            (
                "users/550e8400-e29b-41d4-a716-446655440000.json",
                "users/{uuid}.json",
            ),
            ("dump/9f86d081884c7d659a2f.ndjson", "dump/{hex}.ndjson"),
            ("events/20240501T101500Z.jsonl", "events/{date}.jsonl"),
            ("v2/a1/report.csv", "v{n}/a{n}/report.csv"),
        ] {
            assert_eq!(key_pattern(key), want, "{key}");
        }
    }

    #[test]
    fn formats_by_name_then_by_content() {
        assert_eq!(format_of("a/b.csv.gz", b""), Ok(Format::Csv));
        assert_eq!(format_of("x", b"  [1]"), Ok(Format::Json));
        assert_eq!(
            format_of("x", b"{\"a\":1}\n{\"a\":2}\n"),
            Ok(Format::Ndjson)
        );
        assert_eq!(format_of("x", b"{\n \"a\": 1\n}"), Ok(Format::Json));
        assert_eq!(format_of("x", b"hello\nworld"), Ok(Format::Text));
        assert!(format_of("x", b"\x00\x01\x02").is_err());
        assert!(format_of("t.parquet", b"PAR1").is_err());
    }

    #[test]
    fn records_become_named_fields() {
        let f = fields(
            Format::Json,
            br#"[{"customer":{"email":"a@b.io"},"items":[{"sku":"X1"},{"sku":"X2"}]},{"n":null}]"#,
            100,
        );
        assert_eq!(f.records, 2);
        assert_eq!(f.values["customer.email"], vec![b"a@b.io".to_vec()]);
        assert_eq!(f.values["items.sku"].len(), 2);

        let f = fields(Format::Ndjson, b"{\"a\":1}\nnot json\n{\"a\":2}\n", 100);
        assert_eq!((f.records, f.malformed), (2, 1));

        let f = fields(
            Format::Csv,
            b"name,email\nAda,ada@x.io\n\"Bo, Jr\",bo@x.io\n",
            1,
        );
        assert_eq!(f.records, 1, "bounded");
        assert_eq!(f.values["email"], vec![b"ada@x.io".to_vec()]);

        let f = fields(Format::Json, b"{\"a\": [1, 2", 100);
        assert_eq!((f.records, f.malformed), (0, 1));
    }

    #[test]
    fn gzip_inflated_within_a_limit_even_when_cut() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let body: Vec<u8> = (0..2000)
            .flat_map(|i| format!("{{\"i\":{i}}}\n").into_bytes())
            .collect();
        gz.write_all(&body).unwrap();
        let packed = gz.finish().unwrap();
        assert_eq!(inflate(&packed, 1 << 20), (body.clone(), false));
        let (some, cut) = inflate(&packed[..packed.len() / 2], 1 << 20);
        assert!(cut && !some.is_empty() && body.starts_with(&some));
        let (few, cut) = inflate(&packed, 100);
        assert!(cut && few.len() == 100);
        assert_eq!(whole_lines(b"a\nb\nc"), b"a\nb\n");
        assert_eq!(after_first_line(b"xx\n{\"a\":1}\n"), b"{\"a\":1}\n");
    }
}
