//! Kafka topics (rskafka, a pure-Rust client; TLS through rustls, SASL PLAIN): every topic or
//! the listed ones, messages fetched from several offsets spread over each partition, JSON
//! messages classified field by field (`topic/customer.email`), others as one `value` field,
//! keys as `key`. Nothing is produced and no consumer group is joined, so no offsets are
//! committed. A rerun reads again only the topics whose partitions' offsets moved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::BackoffConfig;

use super::classify::{skipped, Column};
use super::crawl::{fingerprint, Found, Known};
use super::objects::{self, Format};
use super::sources::Source;
use super::{Asset, DarError, Status};
use crate::detect::Engine;

/// Offsets read per partition: the oldest, the newest and evenly between.
const PLACES_PER_PARTITION: i64 = 4;

/// Crawls one Kafka cluster.
pub async fn crawl(source: &Source, engine: &Engine, known: &Known) -> Result<Found, DarError> {
    let timeout = Duration::from_millis(source.limits.statement_timeout_ms);
    let client = tokio::time::timeout(timeout, connect(source))
        .await
        .map_err(|_| DarError::Connect(format!("{}: no broker answered in time", source.name)))??;
    let deadline = Instant::now() + Duration::from_millis(source.limits.source_budget_ms);
    let listed = tokio::time::timeout(timeout, client.list_topics())
        .await
        .map_err(|_| DarError::Connect(format!("{}: listing the topics timed out", source.name)))?
        .map_err(|e| {
            DarError::Connect(format!(
                "{}: listing the topics: {}",
                source.name,
                reason(&e)
            ))
        })?;
    let partitions: HashMap<String, Vec<i32>> = listed
        .into_iter()
        .map(|t| (t.name, t.partitions.into_iter().collect()))
        .collect();
    let mut topics: Vec<String> = if source.scope.is_empty() {
        // Kafka's own bookkeeping topics (`__consumer_offsets`, ...) hold no user data.
        partitions
            .keys()
            .filter(|t| !t.starts_with("__"))
            .cloned()
            .collect()
    } else {
        source.scope.clone()
    };
    topics.sort();
    let mut found = Found::default();
    for topic in topics {
        if Instant::now() >= deadline {
            found.assets.push(skipped(
                &source.name,
                topic,
                "topic",
                "source time budget spent",
            ));
            continue;
        }
        let Some(parts) = partitions.get(&topic) else {
            found
                .assets
                .push(skipped(&source.name, topic, "topic", "no such topic"));
            continue;
        };
        let ranges = match offsets(&client, &topic, parts, timeout).await {
            Ok(r) => r,
            Err(why) => {
                found
                    .assets
                    .push(skipped(&source.name, topic, "topic", &why));
                continue;
            }
        };
        if ranges.iter().all(|(_, lo, hi)| hi <= lo) {
            found
                .assets
                .push(skipped(&source.name, topic, "topic", "empty topic"));
            continue;
        }
        let extent: Vec<String> = ranges
            .iter()
            .map(|(p, lo, hi)| format!("{p}:{lo}-{hi}"))
            .collect();
        let print = fingerprint(&extent.join(","), std::iter::empty());
        let read = read_topic(&client, source, engine, &topic, &ranges, deadline);
        found
            .table(&source.name, topic.clone(), print, known, read)
            .await;
    }
    Ok(found)
}

async fn connect(source: &Source) -> Result<Client, DarError> {
    let brokers: Vec<String> = source
        .endpoint
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    let mut builder = ClientBuilder::new(brokers)
        .client_id("bulwark-crawler")
        .max_message_size(64 << 20)
        .backoff_config(BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
            deadline: Some(Duration::from_millis(source.limits.statement_timeout_ms)),
        });
    if source.tls {
        builder = builder.tls_config(Arc::new(super::crawl::tls_config(source)?));
    }
    if !source.user.is_empty() {
        builder = builder.sasl_config(SaslConfig::Plain(Credentials::new(
            source.user.clone(),
            source.secret.clone(),
        )));
    }
    builder
        .build()
        .await
        .map_err(|e| DarError::Connect(format!("{}: {}", source.name, reason(&e))))
}

/// Each partition's oldest offset and its high watermark (the end of what a consumer may read,
/// from a one-byte fetch: some brokers' ListOffsets answers count batches, not messages).
async fn offsets(
    client: &Client,
    topic: &str,
    parts: &[i32],
    timeout: Duration,
) -> Result<Vec<(i32, i64, i64)>, String> {
    let mut out = Vec::new();
    for &p in parts {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await
            .map_err(|e| reason(&e))?;
        let lo = tokio::time::timeout(timeout, pc.get_offset(OffsetAt::Earliest));
        let lo = lo
            .await
            .map_err(|_| "request timeout".to_string())?
            .map_err(|e| reason(&e))?;
        let hi = tokio::time::timeout(timeout, pc.fetch_records(lo, 1..1, 0));
        let (_, hi) = hi
            .await
            .map_err(|_| "request timeout".to_string())?
            .map_err(|e| reason(&e))?;
        out.push((p, lo, hi));
    }
    Ok(out)
}

/// Where to read in `[lo, hi)`: the oldest message, the newest and evenly between.
fn places(lo: i64, hi: i64) -> Vec<i64> {
    if hi <= lo {
        return Vec::new();
    }
    let n = PLACES_PER_PARTITION.min(hi - lo);
    if n == 1 {
        return vec![lo];
    }
    let mut at: Vec<i64> = (0..n).map(|i| lo + i * (hi - 1 - lo) / (n - 1)).collect();
    at.dedup();
    at
}

async fn read_topic(
    client: &Client,
    source: &Source,
    engine: &Engine,
    topic: &str,
    ranges: &[(i32, i64, i64)],
    deadline: Instant,
) -> Vec<Asset> {
    let limits = &source.limits;
    let timeout = Duration::from_millis(limits.statement_timeout_ms);
    let budget = (Instant::now() + Duration::from_millis(limits.table_budget_ms)).min(deadline);
    // Each place reads up to the next one, so no message is read twice.
    let spots: Vec<(i32, i64, i64)> = ranges
        .iter()
        .flat_map(|&(p, lo, hi)| {
            let at = places(lo, hi);
            let ends: Vec<i64> = at.iter().skip(1).copied().chain([hi]).collect();
            at.into_iter().zip(ends).map(move |(o, end)| (p, o, end))
        })
        .collect();
    // The rows budget is shared by every place read, so each reads about the same number.
    let per_place = (limits.rows_per_table as usize / spots.len().max(1)).max(1);
    let mut columns: HashMap<String, Column> = HashMap::new();
    let (mut messages, mut malformed, mut binary) = (0usize, 0usize, 0usize);
    let mut problem: Option<String> = None;
    let mut out_of_time = false;
    // What the last fetch of a partition returned: a fetch answers with whole batches, which
    // often cover the next places too (and some brokers answer an offset inside a batch with
    // nothing, so a batch already held is the only way to reach it).
    let mut held: Option<(i32, Vec<rskafka::record::RecordAndOffset>)> = None;
    for (p, offset, end) in spots {
        if Instant::now() >= budget {
            out_of_time = true;
            break;
        }
        let covered = held.as_ref().is_some_and(|(hp, records)| {
            *hp == p && records.last().is_some_and(|r| r.offset >= offset)
        });
        if !covered {
            let fetch = async {
                let pc = client
                    .partition_client(topic, p, UnknownTopicHandling::Error)
                    .await?;
                let max_bytes = limits.object_bytes.min(i32::MAX as u32) as i32;
                pc.fetch_records(offset, 1..max_bytes, 100).await
            };
            match tokio::time::timeout(timeout, fetch).await {
                Ok(Ok((records, _))) => held = Some((p, records)),
                Ok(Err(e)) => {
                    problem.get_or_insert(reason(&e));
                    continue;
                }
                Err(_) => {
                    problem.get_or_insert("request timeout".into());
                    continue;
                }
            }
        }
        let records: Vec<&rskafka::record::RecordAndOffset> = held
            .iter()
            .flat_map(|(_, records)| records)
            .filter(|r| r.offset >= offset)
            .collect();
        for r in records
            .into_iter()
            .filter(|r| r.offset < end)
            .take(per_place)
        {
            messages += 1;
            let mut add = |field: &str, v: &[u8]| {
                let column = columns.entry(field.to_string()).or_default();
                if v.len() > limits.value_bytes as usize {
                    column.cut += 1;
                }
                column.add(
                    engine,
                    field,
                    &v[..v.len().min(limits.value_bytes as usize)],
                );
            };
            if let Some(key) = r
                .record
                .key
                .as_deref()
                .filter(|k| std::str::from_utf8(k).is_ok())
            {
                add("key", key);
            }
            let Some(value) = r.record.value.as_deref() else {
                continue;
            };
            match objects::format_of("", value) {
                Ok(Format::Json | Format::Ndjson) => {
                    let fields = objects::fields(Format::Json, value, 1);
                    malformed += fields.malformed;
                    for (field, values) in fields.values {
                        for v in values {
                            add(&field, &v);
                        }
                    }
                }
                Ok(_) => add("value", value),
                Err(_) => binary += 1,
            }
        }
    }
    let name = &source.name;
    if columns.is_empty() {
        let why = match problem {
            Some(p) => p,
            None if binary > 0 => "binary messages".into(),
            None if malformed > 0 => format!("malformed JSON ({malformed} messages)"),
            None => "no messages read".into(),
        };
        return vec![skipped(name, topic.to_string(), "topic", &why)];
    }
    let (status, why) = if out_of_time {
        (Status::Partial, "table time budget spent".to_string())
    } else if let Some(p) = problem {
        (Status::Partial, format!("some offsets not read: {p}"))
    } else if malformed + binary > 0 {
        (
            Status::Partial,
            format!(
                "{} of {messages} messages not JSON or text",
                malformed + binary
            ),
        )
    } else {
        (Status::Complete, String::new())
    };
    let mut assets: Vec<Asset> = columns
        .into_iter()
        .map(|(field, c)| c.asset(name, format!("{topic}/{field}"), "message", status, &why))
        .collect();
    assets.sort_by(|a, b| a.asset.cmp(&b.asset));
    assets
}

/// A client error as a reason; the broker's codes that mean a permission are named so.
fn reason(e: &rskafka::client::error::Error) -> String {
    let s = e.to_string();
    if s.contains("AuthorizationFailed") {
        return "permission denied".into();
    }
    if s.contains("SaslAuthenticationFailed") || s.contains("Sasl") {
        return format!(
            "sign-in refused: {}",
            s.chars().take(200).collect::<String>()
        );
    }
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_spread_over_a_partition() {
        assert!(places(5, 5).is_empty());
        assert_eq!(places(0, 1), [0]);
        assert_eq!(places(0, 3), [0, 1, 2]);
        assert_eq!(places(100, 1100), [100, 433, 766, 1099]);
    }
}
