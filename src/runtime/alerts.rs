//! Alerting: e-mail about events of chosen priorities, through the outbox (so a committed
//! event has its mail and a rolled-back one never does). Either one mail per anomaly signature
//! at most once every N days, sent from the writer's own transaction, or one daily digest from
//! the `falco-digest` job. Every alert is recorded, with or without recipients.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{event, Event, RuntimeError, EVENTS};
use crate::audit::{self, Event as AuditEvent};
use crate::store::{Scan, Store, StoreError, Table, WriteTx};

/// How alerts are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One mail per signature, at most once every `days` days.
    #[default]
    Signature,
    /// One mail a day listing the signatures seen since the last one.
    Digest,
}

/// What to alert about and whom to tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub enabled: bool,
    /// Priorities that alert (Falco's names).
    pub priorities: Vec<String>,
    /// Mail every enabled admin and super-admin.
    pub admins: bool,
    /// Further addresses.
    pub addresses: Vec<String>,
    pub mode: Mode,
    /// For [`Mode::Signature`]: days between two mails about one signature.
    pub days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: false,
            priorities: ["emergency", "alert", "critical"]
                .map(String::from)
                .to_vec(),
            admins: true,
            addresses: Vec::new(),
            mode: Mode::Signature,
            days: 1,
        }
    }
}

impl Settings {
    fn alerts_on(&self, e: &Event) -> bool {
        self.enabled && !e.silenced && self.priorities.contains(&e.priority)
    }

    fn recipients(&self, w: &WriteTx) -> Result<Vec<String>, StoreError> {
        let mut to = if self.admins {
            crate::auth::admin_emails_in(w)?
        } else {
            Vec::new()
        };
        to.extend(self.addresses.iter().cloned());
        to.sort();
        to.dedup();
        Ok(to)
    }
}

/// One alert sent (or due to be: the outbox delivers it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub mode: Mode,
    /// The signature alerted about (empty for a digest).
    #[serde(default)]
    pub signature: String,
    /// The event that set it off (0 for a digest).
    #[serde(default)]
    pub event: u64,
    /// Events it covers.
    pub events: u64,
    pub subject: String,
    pub to: Vec<String>,
    /// The outbox mail (`None`: nobody to send it to).
    pub mail: Option<u64>,
}

const SETTINGS: Table<String, Settings> = Table::new("runtime_alert_settings");
/// Alerts by id.
pub const ALERTS: Table<u64, Alert> = Table::new("runtime_alerts");
/// Signature → when it was last alerted about.
const ALERTED: Table<String, DateTime<Utc>> = Table::new("runtime_alerted");
/// `through` → the newest event id the last digest covered.
const DIGEST: Table<String, u64> = Table::new("runtime_digest");

fn key() -> String {
    "all".to_string()
}

/// The alerting settings (defaults: off).
pub fn settings(store: &Store) -> Result<Settings, StoreError> {
    Ok(store
        .read(|r| r.get(&SETTINGS, &key()))?
        .unwrap_or_default())
}

fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '<')
        && a.len() <= 254
}

/// Checks and replaces the settings. Switching to the digest starts it from now.
pub fn put(store: &Store, actor: &str, mut s: Settings) -> Result<Settings, RuntimeError> {
    let mut priorities = Vec::new();
    for p in &s.priorities {
        let r = event::rank(p).ok_or_else(|| {
            RuntimeError::Invalid(format!(
                "priorities: '{}' is not one of {}",
                p.chars().take(32).collect::<String>(),
                event::PRIORITIES.join(", ")
            ))
        })?;
        priorities.push(event::PRIORITIES[r].to_string());
    }
    priorities.sort_by_key(|p| event::rank(p));
    priorities.dedup();
    s.priorities = priorities;
    s.addresses = s
        .addresses
        .iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if let Some(bad) = s.addresses.iter().find(|a| !valid_address(a)) {
        return Err(RuntimeError::Invalid(format!(
            "addresses: '{}' is not an e-mail address",
            bad.chars().take(60).collect::<String>()
        )));
    }
    if s.addresses.len() > 50 {
        return Err(RuntimeError::Invalid("addresses: at most 50".into()));
    }
    if !(1..=365).contains(&s.days) {
        return Err(RuntimeError::Invalid("days: from 1 to 365".into()));
    }
    if s.enabled && s.priorities.is_empty() {
        return Err(RuntimeError::Invalid(
            "priorities: choose at least one to alert on".into(),
        ));
    }
    let newest = super::acks::newest_id(store)?;
    store.write(|w| {
        let before = w.get(&SETTINGS, &key())?.unwrap_or_default();
        if s.mode == Mode::Digest && (before.mode != Mode::Digest || !before.enabled) {
            w.put(&DIGEST, &key(), &newest)?;
        }
        w.put(&SETTINGS, &key(), &s)?;
        audit::record(
            w,
            AuditEvent::new(actor, "falco.alerting", "falco-alerting").detail(format!(
                "enabled={} mode={:?} priorities={} days={}",
                s.enabled,
                s.mode,
                s.priorities.join(","),
                s.days
            )),
        )?;
        Ok(s.clone())
    })
}

/// The newest `limit` alerts.
pub fn list(store: &Store, limit: usize) -> Result<Vec<Alert>, StoreError> {
    let mut out = Vec::new();
    store.read(|r| {
        r.scan(
            &ALERTS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |_: u64, a: Alert| {
                out.push(a);
                Ok(out.len() < limit)
            },
        )
    })?;
    Ok(out)
}

/// Deletes alert records older than `days`.
pub fn prune(store: &Store, days: u64) -> Result<u64, StoreError> {
    let cutoff = Utc::now() - Duration::days(days.min(100_000) as i64);
    store.write(|w| w.retain(&ALERTS, |_, a| a.at >= cutoff))
}

/// Where recipients open an event: the console's address when it is configured.
fn link(base: &str, id: u64) -> String {
    format!("{}/falco/events/{id}", base.trim_end_matches('/'))
}

fn record(w: &WriteTx, mut a: Alert, body: &str) -> Result<(), StoreError> {
    a.id = w.next_id("runtime_alerts")?;
    a.mail = crate::notify::enqueue(w, a.to.clone(), &a.subject, body)?;
    w.put(&ALERTS, &a.id, &a)
}

/// Alerts about `stored` events, inside the transaction that commits them: each alerting
/// signature at most once every `days` days.
pub fn on_commit(w: &WriteTx, stored: &[Event], base_url: &str) -> Result<(), StoreError> {
    let Some(s) = w.get(&SETTINGS, &key())? else {
        return Ok(());
    };
    if !s.enabled || s.mode != Mode::Signature {
        return Ok(());
    }
    let mut to: Option<Vec<String>> = None;
    for e in stored.iter().filter(|e| s.alerts_on(e)) {
        let last = w.get(&ALERTED, &e.signature)?;
        if last.is_some_and(|t| e.received - t < Duration::days(s.days.into())) {
            continue;
        }
        w.put(&ALERTED, &e.signature, &e.received)?;
        let to = match &to {
            Some(t) => t.clone(),
            None => to.insert(s.recipients(w)?).clone(),
        };
        let cluster = w
            .get(&crate::clusters::CLUSTERS, &e.cluster)?
            .map_or_else(|| e.cluster.to_string(), |c| c.name);
        let subject = format!("Falco {}: {} in {cluster}", e.priority, e.rule);
        let body = format!(
            "Falco reported \"{rule}\" ({priority}) in cluster {cluster}.\n\n\
             Time:      {time}\nNamespace: {ns}\nPod:       {pod}\nImage:     {image}\nHost:      {host}\n\n\
             {output}\n\n\
             Event: {link}\n\n\
             Further events of this kind (same cluster, rule, namespace and image) are not mailed \
             for {days} day(s).\n",
            rule = e.rule,
            priority = e.priority,
            time = e.time.format("%Y-%m-%d %H:%M:%S UTC"),
            ns = e.namespace,
            pod = e.pod,
            image = e.image,
            host = e.hostname,
            output = e.output.chars().take(1_000).collect::<String>(),
            link = link(base_url, e.id),
            days = s.days,
        );
        record(
            w,
            Alert {
                id: 0,
                at: Utc::now(),
                mode: Mode::Signature,
                signature: e.signature.clone(),
                event: e.id,
                events: 1,
                subject,
                to,
                mail: None,
            },
            &body,
        )?;
    }
    Ok(())
}

/// One line of a digest.
struct Line {
    cluster: u64,
    rule: String,
    namespace: String,
    image: String,
    worst: String,
    count: u64,
    last: u64,
}

/// Sends the digest of alerting events since the last one (the `falco-digest` job).
pub fn digest(store: &Store, base_url: &str) -> Result<String, StoreError> {
    let s = settings(store)?;
    if !s.enabled || s.mode != Mode::Digest {
        return Ok("no digest: alerting is off or per signature".into());
    }
    let from = store.read(|r| r.get(&DIGEST, &key()))?.unwrap_or(0);
    let mut lines: BTreeMap<String, Line> = BTreeMap::new();
    let mut newest = from;
    store.read(|r| {
        let start = crate::store::StoreKey::encode(&(from + 1));
        r.scan(
            &EVENTS,
            Scan {
                from: Some(&start),
                ..Scan::default()
            },
            |id: u64, e: Event| {
                newest = id;
                if s.alerts_on(&e) {
                    let l = lines.entry(e.signature.clone()).or_insert_with(|| Line {
                        cluster: e.cluster,
                        rule: e.rule.clone(),
                        namespace: e.namespace.clone(),
                        image: e.image.clone(),
                        worst: e.priority.clone(),
                        count: 0,
                        last: id,
                    });
                    l.count += 1;
                    l.last = id;
                    if event::rank(&e.priority) < event::rank(&l.worst) {
                        l.worst = e.priority.clone();
                    }
                }
                Ok(true)
            },
        )
    })?;
    let events: u64 = lines.values().map(|l| l.count).sum();
    store.write(|w| {
        w.put(&DIGEST, &key(), &newest)?;
        if lines.is_empty() {
            return Ok(());
        }
        let mut ordered: Vec<&Line> = lines.values().collect();
        ordered.sort_by_key(|l| (event::rank(&l.worst), std::cmp::Reverse(l.count)));
        let mut body = format!(
            "{events} Falco event(s) of {} kind(s) since the last digest.\n\n",
            ordered.len()
        );
        for l in ordered {
            let cluster = w
                .get(&crate::clusters::CLUSTERS, &l.cluster)?
                .map_or_else(|| l.cluster.to_string(), |c| c.name);
            body.push_str(&format!(
                "- {count} x {rule} ({worst}) in {cluster}, namespace {ns}, image {image}\n  latest: {link}\n",
                count = l.count,
                rule = l.rule,
                worst = l.worst,
                ns = l.namespace,
                image = l.image,
                link = link(base_url, l.last),
            ));
        }
        record(
            w,
            Alert {
                id: 0,
                at: Utc::now(),
                mode: Mode::Digest,
                signature: String::new(),
                event: 0,
                events,
                subject: format!("Falco digest: {events} event(s) of {} kind(s)", lines.len()),
                to: s.recipients(w)?,
                mail: None,
            },
            &body,
        )
    })?;
    Ok(format!(
        "digest of {events} events ({} signatures)",
        lines.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ingest::commit;

    fn event(rule: &str, priority: &str, silenced: bool) -> Event {
        let body = serde_json::json!({"rule": rule, "priority": priority, "output": "o",
            "time": "2026-01-01T00:00:00Z", "output_fields": {"k8s.ns.name": "shop"}});
        let mut e = event::parse(1, body.to_string().as_bytes(), Utc::now()).unwrap();
        e.silenced = silenced;
        e
    }

    #[test]
    fn once_per_signature_then_a_digest_of_what_came_since() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let on = Settings {
            enabled: true,
            priorities: vec!["Critical".into(), "error".into()],
            admins: true,
            addresses: vec!["soc@example.org".into()],
            mode: Mode::Signature,
            days: 2,
        };
        let saved = put(&store, "a@x", on.clone()).unwrap();
        assert_eq!(saved.priorities, ["critical", "error"]);
        commit(
            &store,
            vec![
                event("Shell", "critical", false),
                event("Shell", "critical", false),
                event("Shell", "warning", false),
                event("Quiet", "critical", true),
                event("Read", "error", false),
            ],
            "https://b.example",
        )
        .unwrap();
        commit(&store, vec![event("Shell", "critical", false)], "").unwrap();
        let alerts = list(&store, 10).unwrap();
        let subjects: Vec<&str> = alerts.iter().map(|a| a.subject.as_str()).collect();
        assert_eq!(
            subjects,
            ["Falco error: Read in 1", "Falco critical: Shell in 1"],
            "one per signature within the days; silenced and unchosen priorities never"
        );
        assert_eq!(alerts[1].event, 1);
        assert_eq!(alerts[0].to, ["soc@example.org"]);
        let mail = crate::notify::outbox(&store, 10).unwrap();
        assert_eq!(mail.len(), 2);
        assert!(mail[1].body.contains("https://b.example/falco/events/1"));

        assert!(put(
            &store,
            "a@x",
            Settings {
                addresses: vec!["not an address".into()],
                ..on.clone()
            }
        )
        .is_err());
        put(
            &store,
            "a@x",
            Settings {
                mode: Mode::Digest,
                ..on
            },
        )
        .unwrap();
        assert!(digest(&store, "").unwrap().starts_with("digest of 0"));
        commit(
            &store,
            vec![
                event("Shell", "critical", false),
                event("Shell", "critical", false),
                event("Read", "error", false),
                event("Noise", "notice", false),
            ],
            "",
        )
        .unwrap();
        assert_eq!(list(&store, 10).unwrap().len(), 2, "no mail per signature");
        assert_eq!(
            digest(&store, "").unwrap(),
            "digest of 3 events (2 signatures)"
        );
        let last = &list(&store, 10).unwrap()[0];
        assert_eq!((last.mode, last.events), (Mode::Digest, 3));
        let body = &crate::notify::outbox(&store, 1).unwrap()[0].body;
        assert!(body.contains("2 x Shell (critical)"), "{body}");
        assert!(digest(&store, "").unwrap().starts_with("digest of 0"));
    }
}
