//! Falco events as falcosidekick's webhook output posts them (`types.FalcoPayload`), read into
//! what Bulwark keeps: the fields m9sweeper reads, bounded, plus the anomaly signature.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::RuntimeError;

/// Falco's priorities, most severe first; anything else is kept as written.
pub const PRIORITIES: [&str; 8] = [
    "emergency",
    "alert",
    "critical",
    "error",
    "warning",
    "notice",
    "informational",
    "debug",
];

/// A priority's rank (0 = emergency) or `None` for one Falco does not define.
pub fn rank(priority: &str) -> Option<usize> {
    let p = priority.to_ascii_lowercase();
    let p = if p == "info" {
        "informational".to_string()
    } else {
        p
    };
    PRIORITIES.iter().position(|x| *x == p)
}

/// A priority as stored: Falco's names lower-cased (`Info` is `informational`), others as
/// given (bounded).
pub fn normalize_priority(priority: &str) -> String {
    match rank(priority) {
        Some(i) => PRIORITIES[i].to_string(),
        None => cut(priority.trim(), 32),
    }
}

/// Longest output kept.
pub const MAX_OUTPUT: usize = 8 * 1024;
/// Longest field value kept.
const MAX_FIELD: usize = 1024;
/// Output fields kept per event.
const MAX_FIELDS: usize = 64;
/// Tags kept per event.
const MAX_TAGS: usize = 32;

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub cluster: u64,
    /// falcosidekick's id (retries repeat it); empty when the sender gave none.
    #[serde(default)]
    pub uuid: String,
    /// When Falco saw it (`output_fields.evt.time` in ns, else `time`).
    pub time: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub priority: String,
    pub rule: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub hostname: String,
    pub output: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub pod: String,
    /// `container.image.repository`.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub image_tag: String,
    /// Every output field, as text (bounded).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// hex(sha256(cluster | rule | namespace | image)): one kind of anomaly in one cluster.
    pub signature: String,
    /// Stored but not alerted on (a silence rule matched).
    #[serde(default)]
    pub silenced: bool,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    uuid: Option<String>,
    output: Option<String>,
    priority: Option<String>,
    rule: Option<String>,
    time: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    tags: Option<Vec<Value>>,
    #[serde(default)]
    output_fields: Option<serde_json::Map<String, Value>>,
}

/// The anomaly signature of (cluster, rule, namespace, image).
pub fn signature(cluster: u64, rule: &str, namespace: &str, image: &str) -> String {
    let mut h = Sha256::new();
    h.update(format!("{cluster}|{rule}|{namespace}|{image}").as_bytes());
    hex::encode(&h.finalize()[..16])
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => cut(s, MAX_FIELD),
        Value::Null => String::new(),
        other => cut(&other.to_string(), MAX_FIELD),
    }
}

/// Reads one payload for cluster `cluster`; `received` is now. Required: `rule`, `priority`,
/// `output` and a time (`time`, or `output_fields.evt.time`).
pub fn parse(cluster: u64, body: &[u8], received: DateTime<Utc>) -> Result<Event, RuntimeError> {
    let bad = |m: &str| RuntimeError::Invalid(format!("falco event: {m}"));
    let p: Payload = serde_json::from_slice(body).map_err(|e| bad(&e.to_string()))?;
    let rule = p
        .rule
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| bad("rule is missing"))?;
    let priority = p
        .priority
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| bad("priority is missing"))?;
    let output = p.output.ok_or_else(|| bad("output is missing"))?;
    let fields_in = p.output_fields.unwrap_or_default();
    let evt_time = fields_in
        .get("evt.time")
        .and_then(Value::as_i64)
        .map(|ns| Utc.timestamp_nanos(ns));
    let time = match p.time.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| bad(&format!("time '{}': {e}", cut(t, 64))))?,
        None => evt_time.ok_or_else(|| bad("time is missing"))?,
    };
    let mut fields = BTreeMap::new();
    for (k, v) in fields_in.iter().take(MAX_FIELDS) {
        fields.insert(cut(k, 128), text(v));
    }
    let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let (namespace, pod, image) = (
        field("k8s.ns.name"),
        field("k8s.pod.name"),
        field("container.image.repository"),
    );
    let rule = cut(rule.trim(), 256);
    Ok(Event {
        id: 0,
        cluster,
        uuid: p.uuid.map(|u| cut(u.trim(), 64)).unwrap_or_default(),
        time,
        received,
        priority: normalize_priority(&priority),
        signature: signature(cluster, &rule, &namespace, &image),
        rule,
        source: cut(p.source.as_deref().unwrap_or_default(), 64),
        hostname: cut(p.hostname.as_deref().unwrap_or_default(), 253),
        output: cut(&output, MAX_OUTPUT),
        tags: p
            .tags
            .unwrap_or_default()
            .iter()
            .take(MAX_TAGS)
            .map(|t| cut(&text(t), 64))
            .collect(),
        image_tag: field("container.image.tag"),
        namespace,
        pod,
        image,
        fields,
        silenced: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn priorities_in_any_case_and_unknown_ones_kept() {
        assert_eq!(normalize_priority("WARNING"), "warning");
        assert_eq!(normalize_priority("Info"), "informational");
        assert_eq!(normalize_priority("Loud"), "Loud");
        assert_eq!(rank("Emergency"), Some(0));
        assert_eq!(rank("debug"), Some(7));
        assert_eq!(rank("x"), None);
    }

    #[test]
    fn times_fields_and_signatures() {
        let now = Utc::now();
        let body = json!({"rule": "R", "priority": "Notice", "output": "o",
            "output_fields": {"evt.time": 1767288061123456789_i64, "k8s.ns.name": "ns",
                "container.image.repository": "nginx", "proc.pid": 42}});
        let e = parse(3, body.to_string().as_bytes(), now).unwrap();
        assert_eq!(e.time.timestamp_nanos_opt(), Some(1767288061123456789));
        assert_eq!(e.fields["proc.pid"], "42");
        assert_eq!(e.signature, signature(3, "R", "ns", "nginx"));
        assert_ne!(e.signature, signature(4, "R", "ns", "nginx"));
        for bad in [
            json!({"priority": "Notice", "output": "o", "time": "2026-01-01T00:00:00Z"}),
            json!({"rule": "R", "output": "o", "time": "2026-01-01T00:00:00Z"}),
            json!({"rule": "R", "priority": "Notice", "time": "2026-01-01T00:00:00Z"}),
            json!({"rule": "R", "priority": "Notice", "output": "o"}),
            json!({"rule": "R", "priority": "Notice", "output": "o", "time": "soon"}),
            json!([1, 2]),
        ] {
            assert!(parse(1, bad.to_string().as_bytes(), now).is_err(), "{bad}");
        }
        // Far past and future times are kept as Falco reported them.
        let far = json!({"rule": "R", "priority": "Notice", "output": "o", "time": "2999-01-01T00:00:00Z"});
        assert_eq!(
            parse(1, far.to_string().as_bytes(), now)
                .unwrap()
                .time
                .date_naive()
                .to_string(),
            "2999-01-01"
        );
    }
}
