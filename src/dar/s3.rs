//! S3-compatible stores (AWS, MinIO, Ceph, ...): buckets listed, keys grouped by pattern, a few
//! objects read from each group (more for bigger groups, logarithmically), each read bounded by
//! a ranged GET; every request signed with SigV4 (rusty-s3) and sent with reqwest. Nothing is
//! written. A rerun reads again only the groups whose sampled objects changed (ETag, size or
//! modification time: some stores list no ETags).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials};

use super::classify::{skipped, Column};
use super::crawl::{fingerprint, Found, Known};
use super::objects::{self, Format};
use super::sources::{Source, UrlStyle};
use super::{Asset, DarError, Status};
use crate::detect::Engine;

/// How long a signed request stays valid: it is sent at once.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// An object as listed.
#[derive(Debug, Clone)]
struct Object {
    key: String,
    etag: String,
    size: u64,
    /// `LastModified` as listed: what tells a change apart when a store lists no ETags.
    modified: String,
}

impl Object {
    /// What changes when the object does: its ETag, size and modification time.
    fn version(&self) -> String {
        format!("{}/{}/{}", self.etag, self.size, self.modified)
    }
}

/// Why a request failed: the store's error code (`AccessDenied`, ...) and the HTTP status.
#[derive(Debug)]
struct S3Failure {
    status: u16,
    code: String,
}

impl S3Failure {
    /// The store is unreachable or the credentials are wrong (not a permission on one bucket):
    /// the whole source fails.
    fn fails_source(&self) -> bool {
        self.code.starts_with("unreachable")
            || matches!(
                self.code.as_str(),
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken"
            )
            || self.status == 401
    }

    fn reason(&self) -> String {
        match self.code.as_str() {
            "AccessDenied" | "AllAccessDisabled" => "permission denied".into(),
            "NoSuchBucket" => "no such bucket".into(),
            "NoSuchKey" => "the object went away".into(),
            "timeout" => "request timeout".into(),
            "" => format!("HTTP {}", self.status),
            code => format!("{code} (HTTP {})", self.status),
        }
    }
}

/// Crawls one S3 endpoint: the listed buckets or every bucket the keys can list.
pub async fn crawl(source: &Source, engine: &Engine, known: &Known) -> Result<Found, DarError> {
    let store = Store::new(source)?;
    let deadline = Instant::now() + Duration::from_millis(source.limits.source_budget_ms);
    let buckets = if source.scope.is_empty() {
        store.list_buckets().await.map_err(|f| {
            if f.fails_source() {
                DarError::Connect(format!(
                    "{}: the store refused the keys: {}",
                    source.name,
                    f.reason()
                ))
            } else {
                DarError::Connect(format!(
                    "{}: listing the buckets: {}",
                    source.name,
                    f.reason()
                ))
            }
        })?
    } else {
        source.scope.clone()
    };
    let mut found = Found::default();
    for name in buckets {
        if Instant::now() >= deadline {
            found.assets.push(skipped(
                &source.name,
                name,
                "bucket",
                "source time budget spent",
            ));
            continue;
        }
        let Some(bucket) = store.bucket(&name) else {
            found.assets.push(skipped(
                &source.name,
                name,
                "bucket",
                "not a valid bucket name",
            ));
            continue;
        };
        let (listed, truncated) = match store.list(&bucket, deadline).await {
            Ok(l) => l,
            Err(f) if f.fails_source() => {
                return Err(DarError::Connect(format!(
                    "{}: the store refused the keys: {}",
                    source.name,
                    f.reason()
                )))
            }
            Err(f) => {
                found
                    .assets
                    .push(skipped(&source.name, name, "bucket", &f.reason()));
                continue;
            }
        };
        if truncated {
            let mut note = skipped(&source.name, name.clone(), "bucket", "");
            note.status = Status::Partial;
            note.reason = format!(
                "only the first {} keys were listed (limits.keys_listed)",
                listed.len()
            );
            found.assets.push(note);
        }
        let mut groups: BTreeMap<String, Vec<Object>> = BTreeMap::new();
        for o in listed {
            groups
                .entry(objects::key_pattern(&o.key))
                .or_default()
                .push(o);
        }
        for (pattern, group) in groups {
            let picks = spread(&group, source.limits.objects_per_group as usize);
            let versions: Vec<String> = picks.iter().map(Object::version).collect();
            let keys = picks.iter().map(|o| (o.key.as_str(), "object"));
            let print = fingerprint(&versions.join(","), keys);
            let asset = format!("{name}/{pattern}");
            let read = store.read_group(engine, &bucket, &asset, &picks, deadline);
            found
                .table(&source.name, asset.clone(), print, known, read)
                .await;
        }
    }
    Ok(found)
}

/// `n` objects spread over the group (first and last included), `1 + log2(len)` of them at
/// most, so a group of a million objects is sampled by about twenty.
fn spread(group: &[Object], cap: usize) -> Vec<Object> {
    let want = (1 + group.len().max(1).ilog2() as usize)
        .min(cap.max(1))
        .min(group.len());
    if want == 0 {
        return Vec::new();
    }
    if want == 1 {
        return vec![group[0].clone()];
    }
    (0..want)
        .map(|i| group[i * (group.len() - 1) / (want - 1)].clone())
        .collect()
}

/// One endpoint, its keys and an HTTP client.
struct Store<'a> {
    source: &'a Source,
    endpoint: url::Url,
    credentials: Option<Credentials>,
    http: reqwest::Client,
}

impl<'a> Store<'a> {
    fn new(source: &'a Source) -> Result<Self, DarError> {
        let endpoint: url::Url = source
            .endpoint
            .parse()
            .map_err(|_| DarError::Config(format!("{}: url: not a URL", source.name)))?;
        let mut http = source
            .outbound
            .http_client()
            .timeout(Duration::from_millis(source.limits.statement_timeout_ms))
            .connect_timeout(Duration::from_millis(source.limits.statement_timeout_ms))
            .redirect(reqwest::redirect::Policy::none());
        if !source.ca_pem.trim().is_empty() {
            for cert in reqwest::Certificate::from_pem_bundle(source.ca_pem.as_bytes())
                .map_err(|e| DarError::Config(format!("{}: ca_pem: {e}", source.name)))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| DarError::Config(format!("{}: {e}", source.name)))?;
        let credentials =
            (!source.user.is_empty()).then(|| Credentials::new(&source.user, &source.secret));
        Ok(Store {
            source,
            endpoint,
            credentials,
            http,
        })
    }

    fn bucket(&self, name: &str) -> Option<Bucket> {
        let style = match self.source.url_style {
            UrlStyle::Path => rusty_s3::UrlStyle::Path,
            UrlStyle::Virtual => rusty_s3::UrlStyle::VirtualHost,
        };
        Bucket::new(
            self.endpoint.clone(),
            style,
            name.to_string(),
            self.source.region.clone(),
        )
        .ok()
    }

    /// Sends a GET, its body at most `limit` bytes; a 4xx/5xx becomes the store's error code.
    async fn get(
        &self,
        url: url::Url,
        range: Option<(u64, u64)>,
        limit: usize,
    ) -> Result<Vec<u8>, S3Failure> {
        let mut req = self.http.get(url);
        if let Some((from, to)) = range {
            req = req.header(reqwest::header::RANGE, format!("bytes={from}-{to}"));
        }
        let failed = |e: reqwest::Error| S3Failure {
            status: 0,
            code: if e.is_timeout() {
                "timeout".into()
            } else {
                format!("unreachable: {}", short(e))
            },
        };
        let mut resp = req.send().await.map_err(failed)?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            body.extend_from_slice(&chunk);
            if body.len() > limit {
                body.truncate(limit);
                break;
            }
        }
        if status.is_success() {
            return Ok(body);
        }
        Err(S3Failure {
            status: status.as_u16(),
            code: xml_values(&String::from_utf8_lossy(&body), "Code")
                .into_iter()
                .next()
                .unwrap_or_default(),
        })
    }

    /// `ListBuckets` (rusty-s3 has no action for it: the request is signed the same way).
    async fn list_buckets(&self) -> Result<Vec<String>, S3Failure> {
        let url = match &self.credentials {
            Some(c) => rusty_s3::signing::sign(
                &jiff::Timestamp::now(),
                rusty_s3::Method::Get,
                self.endpoint.clone(),
                c.key(),
                c.secret(),
                None,
                &self.source.region,
                SIGNED_FOR.as_secs(),
                std::iter::empty(),
                std::iter::empty(),
            ),
            None => self.endpoint.clone(),
        };
        let body = self.get(url, None, 16 << 20).await?;
        Ok(xml_values(&String::from_utf8_lossy(&body), "Name"))
    }

    /// The bucket's keys, at most `limits.keys_listed` of them (`true` when there were more).
    async fn list(
        &self,
        bucket: &Bucket,
        deadline: Instant,
    ) -> Result<(Vec<Object>, bool), S3Failure> {
        let cap = self.source.limits.keys_listed as usize;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(bucket, self.credentials.as_ref());
            action.with_max_keys(1000);
            if let Some(t) = &token {
                action.with_continuation_token(t.clone());
            }
            let body = self.get(action.sign(SIGNED_FOR), None, 64 << 20).await?;
            let page =
                ListObjectsV2::parse_response(&String::from_utf8_lossy(&body)).map_err(|_| {
                    S3Failure {
                        status: 200,
                        code: "a listing that is not S3's XML".into(),
                    }
                })?;
            for o in page.contents {
                if out.len() >= cap {
                    return Ok((out, true));
                }
                out.push(Object {
                    key: o.key,
                    etag: o.etag.unwrap_or_default(),
                    size: o.size.unwrap_or(0),
                    modified: o.last_modified.unwrap_or_default(),
                });
            }
            match page.next_continuation_token {
                Some(t) if Instant::now() < deadline => token = Some(t),
                Some(_) => return Ok((out, true)),
                None => return Ok((out, false)),
            }
        }
    }

    /// Reads the sampled objects of one key group and classifies their fields.
    async fn read_group(
        &self,
        engine: &Engine,
        bucket: &Bucket,
        asset: &str,
        picks: &[Object],
        deadline: Instant,
    ) -> Vec<Asset> {
        let limits = &self.source.limits;
        let budget = Instant::now() + Duration::from_millis(limits.table_budget_ms);
        let name = &self.source.name;
        let mut columns: HashMap<String, Column> = HashMap::new();
        let mut format = None;
        let (mut records, mut malformed) = (0usize, 0usize);
        let mut problems: Vec<String> = Vec::new();
        let mut out_of_time = false;
        for o in picks {
            if Instant::now() >= budget.min(deadline) {
                out_of_time = true;
                break;
            }
            if records >= limits.rows_per_table as usize {
                break;
            }
            let read = match self.read_object(bucket, o).await {
                Ok(r) => r,
                Err(reason) => {
                    problems.push(reason);
                    continue;
                }
            };
            let f = match objects::format_of(&o.key, &read.head) {
                Ok(f) => f,
                Err(objects::Unreadable(reason)) => {
                    problems.push(reason);
                    continue;
                }
            };
            format = Some(f);
            for chunk in &read.chunks {
                let remaining = (limits.rows_per_table as usize).saturating_sub(records);
                if remaining == 0 {
                    break;
                }
                let fields = objects::fields(f, chunk, remaining);
                records += fields.records;
                malformed += fields.malformed;
                for (field, values) in fields.values {
                    let column = columns.entry(field.clone()).or_default();
                    for v in values {
                        let cut = v.len() > limits.value_bytes as usize;
                        if cut {
                            column.cut += 1;
                        }
                        column.add(
                            engine,
                            &field,
                            &v[..v.len().min(limits.value_bytes as usize)],
                        );
                    }
                }
            }
        }
        let Some(format) = format else {
            let reason = problems
                .first()
                .cloned()
                .unwrap_or_else(|| "nothing read".into());
            return vec![skipped(name, asset.to_string(), "objects", &reason)];
        };
        if columns.is_empty() {
            let reason = if malformed > 0 {
                format!("malformed {} ({malformed} records)", format_name(format))
            } else {
                "no records".into()
            };
            return vec![skipped(
                name,
                asset.to_string(),
                format_name(format),
                &reason,
            )];
        }
        let (status, reason) = if out_of_time {
            (Status::Partial, "table time budget spent".to_string())
        } else if malformed > 0 {
            (
                Status::Partial,
                format!("{malformed} malformed records skipped"),
            )
        } else if !problems.is_empty() {
            (
                Status::Partial,
                format!("{} objects not read: {}", problems.len(), problems[0]),
            )
        } else {
            (Status::Complete, String::new())
        };
        let mut assets: Vec<Asset> = columns
            .into_iter()
            .map(|(field, c)| {
                c.asset(
                    name,
                    format!("{asset}/{field}"),
                    format_name(format),
                    status,
                    &reason,
                )
            })
            .collect();
        assets.sort_by(|a, b| a.asset.cmp(&b.asset));
        assets
    }

    /// The start of an object (and, for a large line-based one, a stretch from its middle),
    /// inflated when gzip-compressed.
    async fn read_object(&self, bucket: &Bucket, o: &Object) -> Result<Read, String> {
        let limit = self.source.limits.object_bytes as u64;
        let url = bucket
            .get_object(self.credentials.as_ref(), &o.key)
            .sign(SIGNED_FOR);
        let whole = o.size <= limit;
        let first = self
            .get(
                url.clone(),
                (!whole).then_some((0, limit - 1)),
                limit as usize,
            )
            .await
            .map_err(|f| f.reason())?;
        let gz = first.starts_with(&[0x1f, 0x8b]);
        let (head, cut) = objects::inflate(&first, self.source.limits.object_bytes as usize);
        let mut read = Read {
            chunks: vec![if cut || !whole {
                objects::whole_lines(&head).to_vec()
            } else {
                head.clone()
            }],
            head,
        };
        // Row formats are read from a second place too: rows written later may differ.
        let lines = matches!(
            objects::format_of(&o.key, &read.head),
            Ok(Format::Ndjson | Format::Csv | Format::Tsv | Format::Text)
        );
        if !whole && !gz && lines && o.size > 2 * limit {
            let from = o.size / 2;
            if let Ok(middle) = self
                .get(url, Some((from, from + limit - 1)), limit as usize)
                .await
            {
                let mut rows = objects::whole_lines(objects::after_first_line(&middle)).to_vec();
                if matches!(
                    objects::format_of(&o.key, &read.head),
                    Ok(Format::Csv | Format::Tsv)
                ) {
                    let header = read.head.split(|b| *b == b'\n').next().unwrap_or_default();
                    let mut with_header = header.to_vec();
                    with_header.push(b'\n');
                    with_header.append(&mut rows);
                    rows = with_header;
                }
                read.chunks.push(rows);
            }
        }
        Ok(read)
    }
}

/// What was read of one object.
struct Read {
    /// The first bytes, inflated (to tell the format).
    head: Vec<u8>,
    /// Stretches of whole records.
    chunks: Vec<Vec<u8>>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
        Format::Tsv => "tsv",
        Format::Text => "text",
    }
}

/// The texts of every `<tag>...</tag>` in a small XML document (S3's errors and bucket lists
/// have no nesting of the same tag, nor entities in the values read here).
fn xml_values(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(after[..end].trim().to_string());
        rest = &after[end + close.len()..];
    }
    out
}

/// An HTTP error without the URL (which carries the signature).
fn short(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(n: usize) -> Vec<Object> {
        (0..n)
            .map(|i| Object {
                key: format!("k{i}"),
                etag: String::new(),
                size: 1,
                modified: String::new(),
            })
            .collect()
    }

    #[test]
    fn groups_are_sampled_logarithmically_and_spread() {
        assert_eq!(spread(&objects(1), 8).len(), 1);
        assert_eq!(spread(&objects(2), 8).len(), 2);
        let big = spread(&objects(1_000_000), 8);
        assert_eq!(big.len(), 8);
        assert_eq!(big.first().unwrap().key, "k0");
        assert_eq!(big.last().unwrap().key, "k999999");
        assert_eq!(spread(&objects(1_000_000), 100).len(), 20);
        assert!(spread(&[], 8).is_empty());
    }

    #[test]
    fn errors_and_bucket_lists_are_read_from_xml() {
        let err = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error>";
        let f = S3Failure {
            status: 403,
            code: xml_values(err, "Code").remove(0),
        };
        assert!(f.fails_source());
        let denied = S3Failure {
            status: 403,
            code: "AccessDenied".into(),
        };
        assert!(!denied.fails_source());
        assert_eq!(denied.reason(), "permission denied");
        let list = "<ListAllMyBucketsResult><Buckets><Bucket><Name>a</Name></Bucket><Bucket><Name>b-2</Name></Bucket></Buckets></ListAllMyBucketsResult>";
        assert_eq!(xml_values(list, "Name"), ["a", "b-2"]);
    }
}
