//! The data map in the appliance: what sensitive data flows between which workloads, from
//! sensor events (`POST /api/v1/sensor/events`). Flows are kept per (source, destination,
//! method, endpoint, direction) with their data types, counts, first and last seen, sensitivity
//! and one masked sample per type. A data type an endpoint never carried before raises an event.
//!
//! Samples are masked again on arrival: whatever a sensor sends, nothing raw is stored.

mod routes;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use routes::routes;

use crate::detect::{mask, Sensitivity};
use crate::http::ApiError;
use crate::store::{Store, StoreError, Table};

/// One event as `bulwark sensor` writes it (a data-map entry).
#[derive(Debug, Clone, Deserialize)]
pub struct SensorEvent {
    pub source: String,
    pub destination: String,
    pub method: String,
    pub endpoint: String,
    pub direction: String,
    #[serde(default)]
    pub host: String,
    pub data_types: BTreeSet<String>,
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
    pub sensitivity: Sensitivity,
    #[serde(default)]
    pub combinations: BTreeSet<String>,
    #[serde(default)]
    pub samples: BTreeMap<String, String>,
    #[serde(default)]
    pub exchanges: u64,
    #[serde(default)]
    pub first_seen: f64,
    #[serde(default)]
    pub last_seen: f64,
}

/// A stored flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flow {
    pub key: String,
    pub source: String,
    pub destination: String,
    pub method: String,
    pub endpoint: String,
    pub direction: String,
    pub host: String,
    pub data_types: BTreeSet<String>,
    pub counts: BTreeMap<String, u64>,
    pub sensitivity: Sensitivity,
    pub combinations: BTreeSet<String>,
    pub samples: BTreeMap<String, String>,
    pub exchanges: u64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Who reported it (the API key's owner and key name).
    pub sensors: BTreeSet<String>,
}

/// A data type seen on a flow for the first time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTypeEvent {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub flow: String,
    pub source: String,
    pub destination: String,
    pub endpoint: String,
    pub direction: String,
    pub data_types: Vec<String>,
    pub sensitivity: Sensitivity,
}

const FLOWS: Table<String, Flow> = Table::new("datamap_flows");
const EVENTS: Table<u64, NewTypeEvent> = Table::new("datamap_events");

/// Errors of the data map.
#[derive(Debug, thiserror::Error)]
pub enum DataMapError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DataMapError> for ApiError {
    fn from(e: DataMapError) -> Self {
        match e {
            DataMapError::Invalid(m) => ApiError::bad_request(m),
            DataMapError::Store(s) => ApiError::internal(s),
        }
    }
}

/// What an ingest did.
#[derive(Debug, Default, Serialize)]
pub struct Ingested {
    pub events: usize,
    pub flows_created: usize,
    pub flows_updated: usize,
    pub new_type_events: usize,
    /// The flows as stored now (for the search index).
    #[serde(skip)]
    pub touched: Vec<Flow>,
}

/// Counters of sensor data, on `/metrics`.
pub struct DataMapMetrics {
    findings: prometheus_client::metrics::family::Family<
        TypeLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    new_types: prometheus_client::metrics::counter::Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct TypeLabels {
    data_type: String,
}

impl DataMapMetrics {
    /// Registers the counters.
    pub fn new(metrics: &crate::http::metrics::Metrics) -> DataMapMetrics {
        let findings = prometheus_client::metrics::family::Family::default();
        metrics.register(
            "sensor_findings",
            "Sensitive values seen in traffic, by data type",
            findings.clone(),
        );
        let new_types = prometheus_client::metrics::counter::Counter::default();
        metrics.register(
            "datamap_new_types",
            "Data types an endpoint carried for the first time",
            new_types.clone(),
        );
        DataMapMetrics {
            findings,
            new_types,
        }
    }

    /// Counts what one ingest brought.
    pub fn record(&self, events: &[SensorEvent], done: &Ingested) {
        for e in events {
            for (t, n) in &e.counts {
                self.findings
                    .get_or_create(&TypeLabels {
                        data_type: t.chars().take(64).collect(),
                    })
                    .inc_by(*n);
            }
        }
        self.new_types.inc_by(done.new_type_events as u64);
    }
}

/// The search document of a flow: found by source, destination, endpoint, host and data type.
pub fn flow_doc(f: &Flow) -> crate::search::Doc {
    crate::search::Doc {
        kind: "flow",
        id: f.key.clone(),
        title: format!(
            "{} → {} {} {} ({})",
            f.source, f.destination, f.method, f.endpoint, f.direction
        ),
        body: format!(
            "{} {}",
            f.host,
            f.data_types.iter().cloned().collect::<Vec<_>>().join(" ")
        ),
        url: "/datamap".into(),
        group: format!("flow:{}", f.key),
    }
}

/// The data map's contribution to the search index.
pub fn search_source() -> crate::search::Source {
    crate::search::Source {
        kind: "flow",
        documents: |store, put| {
            for f in list(store)? {
                put(flow_doc(&f));
            }
            Ok(())
        },
    }
}

/// Puts `flows` into the index (a failure heals at the next rebuild).
pub fn reindex(search: &crate::search::Search, flows: &[Flow]) {
    for f in flows {
        if let Err(e) = search.upsert(&flow_doc(f)) {
            tracing::warn!(error = %e, "search index not updated; it is rebuilt on next start");
            return;
        }
    }
}

fn text(field: &str, v: &str, max: usize) -> Result<String, DataMapError> {
    if v.len() > max || v.chars().any(char::is_control) {
        return Err(DataMapError::Invalid(format!(
            "{field}: at most {max} bytes, no control characters"
        )));
    }
    Ok(v.to_string())
}

fn time(secs: f64) -> DateTime<Utc> {
    if !secs.is_finite() || secs <= 0.0 {
        return Utc::now();
    }
    Utc.timestamp_opt(secs as i64, ((secs.fract()) * 1e9) as u32)
        .single()
        .unwrap_or_else(Utc::now)
}

/// Validates and normalises one event into a flow (not yet merged).
fn flow_of(e: &SensorEvent, sensor: &str) -> Result<Flow, DataMapError> {
    let direction = match e.direction.as_str() {
        "request" | "response" => e.direction.clone(),
        other => {
            return Err(DataMapError::Invalid(format!(
                "direction '{}' is neither request nor response",
                other.chars().take(20).collect::<String>()
            )))
        }
    };
    if e.data_types.len() > 64 || e.samples.len() > 64 || e.counts.len() > 64 {
        return Err(DataMapError::Invalid(
            "at most 64 data types per event".into(),
        ));
    }
    let source = text("source", &e.source, 256)?;
    let destination = text("destination", &e.destination, 256)?;
    let method = text("method", &e.method, 16)?;
    let endpoint = text("endpoint", &e.endpoint, 1024)?;
    let host = text("host", &e.host, 256)?;
    for t in &e.data_types {
        text("data type", t, 64)?;
    }
    let mut flow = Flow {
        key: String::new(),
        source,
        destination,
        method,
        endpoint,
        direction,
        host,
        data_types: e.data_types.clone(),
        counts: e.counts.clone(),
        sensitivity: e.sensitivity,
        combinations: e.combinations.iter().take(16).cloned().collect(),
        // Masked again: a sensor that sent raw values still stores none.
        samples: e
            .samples
            .iter()
            .map(|(k, v)| (k.clone(), mask(v.as_bytes())))
            .collect(),
        exchanges: e.exchanges,
        first_seen: time(e.first_seen),
        last_seen: time(e.last_seen),
        sensors: [sensor.to_string()].into(),
    };
    flow.key = flow_key(&flow);
    Ok(flow)
}

/// What makes a flow: who, to whom, which endpoint, which way.
fn flow_key(f: &Flow) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        f.source, f.destination, f.method, f.endpoint, f.direction
    )
}

/// Merges sensor events into the stored map, in one transaction.
pub fn ingest(
    store: &Store,
    sensor: &str,
    events: &[SensorEvent],
) -> Result<Ingested, DataMapError> {
    if events.len() > 100_000 {
        return Err(DataMapError::Invalid(
            "at most 100,000 events per request".into(),
        ));
    }
    let flows: Vec<Flow> = events
        .iter()
        .map(|e| flow_of(e, sensor))
        .collect::<Result<_, _>>()?;
    let mut out = Ingested {
        events: events.len(),
        ..Ingested::default()
    };
    store.write(|w| {
        let mut alerts: Vec<NewTypeEvent> = Vec::new();
        for mut new in flows {
            attribute(w, &mut new);
            let existing = w.get(&FLOWS, &new.key)?;
            let (merged, added) = match existing {
                None => {
                    out.flows_created += 1;
                    let added: Vec<String> = new.data_types.iter().cloned().collect();
                    (new, added)
                }
                Some(mut f) => {
                    out.flows_updated += 1;
                    let added: Vec<String> =
                        new.data_types.difference(&f.data_types).cloned().collect();
                    f.data_types.extend(new.data_types);
                    for (k, v) in new.counts {
                        *f.counts.entry(k).or_default() += v;
                    }
                    for (k, v) in new.samples {
                        f.samples.entry(k).or_insert(v);
                    }
                    f.combinations.extend(new.combinations);
                    f.sensitivity = f.sensitivity.max(new.sensitivity);
                    f.exchanges += new.exchanges;
                    f.first_seen = f.first_seen.min(new.first_seen);
                    f.last_seen = f.last_seen.max(new.last_seen);
                    f.sensors.extend(new.sensors);
                    if f.sensors.len() > 64 {
                        let keep: BTreeSet<String> = f.sensors.iter().take(64).cloned().collect();
                        f.sensors = keep;
                    }
                    (f, added)
                }
            };
            if !added.is_empty() {
                let id = w.next_id("datamap_events")?;
                let event = NewTypeEvent {
                    id,
                    at: Utc::now(),
                    flow: merged.key.clone(),
                    source: merged.source.clone(),
                    destination: merged.destination.clone(),
                    endpoint: merged.endpoint.clone(),
                    direction: merged.direction.clone(),
                    data_types: added,
                    sensitivity: merged.sensitivity,
                };
                w.put(&EVENTS, &id, &event)?;
                if event.sensitivity == Sensitivity::High {
                    alerts.push(event);
                }
                out.new_type_events += 1;
            }
            w.put(&FLOWS, &merged.key, &merged)?;
            out.touched.push(merged);
        }
        if !alerts.is_empty() {
            let (subject, body) = alert_mail(&alerts);
            // Read only when there is something to say: most ingests raise nothing.
            let admins = crate::auth::admin_emails_in(w)?;
            crate::notify::enqueue(w, admins, &subject, &body)?;
        }
        Ok::<_, DataMapError>(())
    })?;
    Ok(out)
}

/// Most flows one alert mail lists (the rest are counted).
const ALERT_LIST: usize = 50;

/// One mail for the highly sensitive data types a batch of events showed for the first time on
/// their endpoints. Types and masked shapes only: no value, raw or masked, goes into mail.
fn alert_mail(alerts: &[NewTypeEvent]) -> (String, String) {
    let subject = match alerts {
        [one] => format!(
            "New sensitive data: {} on {} {}",
            one.data_types.join(", "),
            one.destination,
            one.endpoint
        ),
        many => format!("New sensitive data on {} endpoints", many.len()),
    };
    let mut body = String::from(
        "The data map saw highly sensitive data types on these endpoints for the first time:\n\n",
    );
    for a in alerts.iter().take(ALERT_LIST) {
        body.push_str(&format!(
            "- {} -> {} {} ({}): {}\n",
            a.source,
            a.destination,
            a.endpoint,
            a.direction,
            a.data_types.join(", ")
        ));
    }
    if alerts.len() > ALERT_LIST {
        body.push_str(&format!("… and {} more\n", alerts.len() - ALERT_LIST));
    }
    body.push_str("\nThe Data map page and GET /api/v1/datamap/events list them all.\n");
    (subject, body)
}

/// Names the source and destination by workload (`namespace/Kind/name`) when the cluster
/// inventory knows their addresses, so the pods of one workload make one flow; addresses it does
/// not know (external hosts, clusters without an inventory) stay as they are.
fn attribute(w: &crate::store::WriteTx, f: &mut Flow) {
    use crate::clusters::inventory::lookup;
    let mut changed = false;
    if let Some(p) = lookup(w, &f.source) {
        f.source = p.label();
        changed = true;
    }
    if let Some(p) = lookup(w, &f.destination) {
        f.destination = p.label();
        changed = true;
    }
    if changed {
        f.key = flow_key(f);
    }
}

/// Every flow, most sensitive first, then by source and destination.
pub fn list(store: &Store) -> Result<Vec<Flow>, StoreError> {
    let mut v: Vec<Flow> = store
        .read(|r| r.all(&FLOWS))?
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    v.sort_by(|a, b| {
        b.sensitivity
            .cmp(&a.sensitivity)
            .then(a.source.cmp(&b.source))
            .then(a.destination.cmp(&b.destination))
            .then(a.endpoint.cmp(&b.endpoint))
    });
    Ok(v)
}

/// The newest `limit` new-type events.
pub fn events(store: &Store, limit: usize) -> Result<Vec<NewTypeEvent>, StoreError> {
    let mut v: Vec<NewTypeEvent> = store
        .read(|r| r.all(&EVENTS))?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.id));
    v.truncate(limit);
    Ok(v)
}

/// Reads a body of events: a JSON array, or JSON lines as `bulwark sensor` writes them.
pub fn parse_events(body: &[u8]) -> Result<Vec<SensorEvent>, DataMapError> {
    let trimmed = body.trim_ascii();
    if trimmed.starts_with(b"[") {
        return serde_json::from_slice(trimmed)
            .map_err(|e| DataMapError::Invalid(format!("not a JSON array of events: {e}")));
    }
    trimmed
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_slice(l)
                .map_err(|e| DataMapError::Invalid(format!("line {}: not an event: {e}", i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(types: &[&str], sample: &str) -> SensorEvent {
        serde_json::from_value(serde_json::json!({
            "source": "10.0.0.1", "destination": "10.0.0.2:8080", "method": "POST",
            "endpoint": "/api/customers/{id}", "direction": "request", "host": "payments",
            "data_types": types, "counts": {types[0]: 2}, "sensitivity": "High",
            "samples": {types[0]: sample}, "exchanges": 2, "first_seen": 1.7e9, "last_seen": 1.7e9 + 5.0
        }))
        .unwrap()
    }

    #[test]
    fn flows_merge_and_new_types_raise_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        let r = ingest(&store, "node-1", &[event(&["pci.pan"], "1111111111111111")]).unwrap();
        assert_eq!((r.flows_created, r.new_type_events), (1, 1));
        // The same again: no new type.
        let r = ingest(&store, "node-2", &[event(&["pci.pan"], "1111")]).unwrap();
        assert_eq!((r.flows_updated, r.new_type_events), (1, 0));
        // A new type on the same flow.
        let r = ingest(&store, "node-1", &[event(&["pii.email"], "***@***.**")]).unwrap();
        assert_eq!(r.new_type_events, 1);
        let flows = list(&store).unwrap();
        assert_eq!(flows.len(), 1);
        let f = &flows[0];
        assert_eq!(f.exchanges, 6);
        assert_eq!(f.counts["pci.pan"], 4);
        assert_eq!(f.sensors.len(), 2);
        assert_eq!(
            f.samples["pci.pan"], "1111111111111111",
            "the first sample stays"
        );
        let ev = events(&store, 10).unwrap();
        assert_eq!(ev[0].data_types, vec!["pii.email".to_string()]);
    }

    #[test]
    fn new_highly_sensitive_types_mail_the_admins_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        crate::auth::create_user(
            &store,
            &crate::auth::Actor::cli(),
            "sec@example.org",
            "password-1234",
            crate::http::Role::Admin,
        )
        .unwrap();
        ingest(&store, "s", &[event(&["pci.pan"], "4539578763621486")]).unwrap();
        // Seen before: no second mail.
        ingest(&store, "s", &[event(&["pci.pan"], "4539578763621486")]).unwrap();
        let mut low = event(&["pii.ip_public"], "11.11.11.11");
        low.sensitivity = Sensitivity::Low;
        low.endpoint = "/health/{id}".into();
        ingest(&store, "s", &[low]).unwrap();
        let mail = crate::notify::outbox(&store, 10).unwrap();
        assert_eq!(mail.len(), 1, "{mail:?}");
        assert_eq!(mail[0].to, vec!["sec@example.org".to_string()]);
        assert!(
            mail[0].subject.contains("pci.pan") && mail[0].subject.contains("/api/customers/{id}")
        );
        assert!(
            mail[0].body.contains("10.0.0.1 -> 10.0.0.2:8080"),
            "{}",
            mail[0].body
        );
        assert!(!mail[0].body.contains("4539") && !mail[0].body.contains("1111"));
        // Many at once: one mail, a bounded list.
        let many: Vec<SensorEvent> = (0..60)
            .map(|i| {
                let mut e = event(&["sec.jwt"], "x");
                e.endpoint = format!("/v{i}/token");
                e
            })
            .collect();
        ingest(&store, "s", &many).unwrap();
        let mail = crate::notify::outbox(&store, 10).unwrap();
        assert_eq!(mail.len(), 2);
        let newest = mail.iter().max_by_key(|m| m.id).unwrap();
        assert_eq!(newest.subject, "New sensitive data on 60 endpoints");
        assert!(newest.body.contains("and 10 more"));
    }

    #[test]
    fn raw_samples_are_masked_and_bad_events_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &[]).unwrap();
        ingest(&store, "s", &[event(&["pci.pan"], "4539578763621486")]).unwrap();
        let f = &list(&store).unwrap()[0];
        assert_eq!(f.samples["pci.pan"], "1111111111111111");
        let mut bad = event(&["pci.pan"], "x");
        bad.direction = "sideways".into();
        assert!(ingest(&store, "s", &[bad]).is_err());
        let mut bad = event(&["pci.pan"], "x");
        bad.endpoint = "x".repeat(5000);
        assert!(ingest(&store, "s", &[bad]).is_err());
        assert!(parse_events(b"{not json").is_err());
        assert!(parse_events(b"[{\"source\":1}]").is_err());
        assert_eq!(parse_events(b"").unwrap().len(), 0);
    }
}
