//! Audit without Gatekeeper: every object of a cluster's inventory evaluated against the
//! cluster's constraints, after each inventory sync or upload and on demand.
//!
//! The objects of the last sync are kept (compressed) so an audit can run again after a
//! constraint changes without asking the cluster. Each template is compiled once per run;
//! the objects are split across worker threads, each with its own clones of the engines.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::time::Instant;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{catalog, engine, review, Action, Constraint, GatekeeperError, Policy, Review};
use crate::store::{Store, StoreError, Table, WriteTx};

/// Violations kept per run (all are counted).
pub const MAX_FINDINGS: usize = 10_000;
/// Evaluation errors kept per run.
const MAX_ERRORS: usize = 100;

/// The objects of a cluster's last sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Objects {
    at: DateTime<Utc>,
    count: usize,
    /// The JSON array, deflated, in base64.
    data: String,
}

/// One violation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The constraint's kind and name.
    pub constraint_kind: String,
    pub constraint: String,
    pub action: Action,
    /// The object's kind, namespace (empty: cluster-scoped) and name.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub msg: String,
    /// The exception that excuses it (not counted as a violation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excused_by: Option<u64>,
}

/// A constraint's count in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub kind: String,
    pub name: String,
    pub action: Action,
    pub violations: usize,
    /// Objects whose evaluation failed (never counted as violations).
    pub errors: usize,
    /// Violations an exception excuses.
    #[serde(default)]
    pub excused: usize,
}

/// The last audit of a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub cluster: u64,
    pub at: DateTime<Utc>,
    /// When the objects were listed.
    pub objects_at: Option<DateTime<Utc>>,
    pub objects: usize,
    pub violations: usize,
    pub constraints: Vec<Totals>,
    /// The first [`MAX_FINDINGS`] violations.
    pub findings: Vec<Finding>,
    /// Evaluation errors (the first hundred): an error is never a violation.
    pub errors: Vec<String>,
    pub seconds: f64,
}

/// A day's violations per cluster, for the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    pub date: NaiveDate,
    pub violations: usize,
    pub deny: usize,
    pub warn: usize,
    pub dryrun: usize,
}

const OBJECTS: Table<u64, Objects> = Table::new("gatekeeper_objects");
const RUNS: Table<u64, Run> = Table::new("gatekeeper_audits");
/// `{cluster:020}/{date}` → that day's last audit.
const DAYS: Table<String, Day> = Table::new("gatekeeper_days");

/// Keeps the objects of a sync or upload for audits (inside the inventory's transaction).
pub fn record_objects(w: &WriteTx, cluster: u64, objects: &[Value]) -> Result<(), StoreError> {
    let json = serde_json::to_vec(objects).map_err(|e| StoreError::Encode {
        table: OBJECTS.name(),
        source: e,
    })?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let deflated = z
        .write_all(&json)
        .and_then(|_| z.finish())
        .map_err(|source| StoreError::Io {
            path: "gatekeeper objects".into(),
            source,
        })?;
    w.put(
        &OBJECTS,
        &cluster,
        &Objects {
            at: Utc::now(),
            count: objects.len(),
            data: base64::engine::general_purpose::STANDARD.encode(deflated),
        },
    )
}

fn load_objects(
    store: &Store,
    cluster: u64,
) -> Result<(Option<DateTime<Utc>>, Vec<Value>), GatekeeperError> {
    let Some(o) = store.read(|r| r.get(&OBJECTS, &cluster))? else {
        return Ok((None, Vec::new()));
    };
    let bad =
        |m: String| GatekeeperError::Invalid(format!("stored objects of cluster {cluster}: {m}"));
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(o.data.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let mut json = Vec::new();
    flate2::read::DeflateDecoder::new(deflated.as_slice())
        .read_to_end(&mut json)
        .map_err(|e| bad(e.to_string()))?;
    let objects = serde_json::from_slice(&json).map_err(|e| bad(e.to_string()))?;
    Ok((Some(o.at), objects))
}

/// A constraint with its compiled template.
pub struct Compiled {
    pub constraint: Constraint,
    pub policy: Policy,
    /// Parameters, converted once.
    parameters: regorus::Value,
}

impl Compiled {
    /// Compiles each constraint's template once (constraints of one template share it).
    /// A constraint whose template is missing or does not compile is reported, not fatal.
    pub fn all(
        store: &Store,
        constraints: Vec<Constraint>,
    ) -> Result<(Vec<Compiled>, Vec<String>), GatekeeperError> {
        let templates = catalog::templates(store)?;
        let mut policies: HashMap<String, Policy> = HashMap::new();
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for c in constraints {
            let Some((t, _)) = templates.iter().find(|(t, _)| t.kind == c.kind) else {
                errors.push(format!(
                    "{}/{}: no template of kind {}",
                    c.kind, c.name, c.kind
                ));
                continue;
            };
            let policy = match policies.get(&t.kind) {
                Some(p) => p.clone(),
                None => match Policy::compile(t, catalog::TIME_LIMIT) {
                    Ok(p) => {
                        policies.insert(t.kind.clone(), p.clone());
                        p
                    }
                    Err(e) => {
                        errors.push(format!("{}/{}: {e}", c.kind, c.name));
                        continue;
                    }
                },
            };
            let parameters = regorus::Value::from(c.parameters.clone());
            out.push(Compiled {
                constraint: c,
                policy,
                parameters,
            });
        }
        Ok((out, errors))
    }

    /// Evaluates this constraint on `review` (converted once as `value`).
    pub fn evaluate(
        &mut self,
        review: &Review,
        value: &regorus::Value,
    ) -> Result<Vec<engine::Violation>, GatekeeperError> {
        if !self.constraint.matcher.matches(review) {
            return Ok(Vec::new());
        }
        self.policy
            .evaluate(engine::input(value.clone(), self.parameters.clone()))
    }

    /// A copy with its own engine, for another thread or request.
    pub fn clone_for_worker(&self) -> Compiled {
        Compiled {
            constraint: self.constraint.clone(),
            policy: self.policy.clone(),
            parameters: self.parameters.clone(),
        }
    }
}

/// A constraint's violations, errors and excused violations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub violations: usize,
    pub errors: usize,
    pub excused: usize,
}

/// Who is auditing: the cluster and the exceptions in effect.
pub struct Scope<'a> {
    pub cluster: u64,
    pub exceptions: &'a [crate::compliance::Exception],
}

/// What one worker found.
#[derive(Default)]
struct Found {
    findings: Vec<Finding>,
    /// (constraint index) → counts.
    counts: BTreeMap<usize, Counts>,
    errors: Vec<String>,
}

/// Evaluates `objects` against `compiled`, on every core.
pub fn evaluate_all(
    compiled: &[Compiled],
    objects: &[Value],
    scope: &Scope,
) -> (Vec<Finding>, Vec<Counts>, Vec<String>) {
    let namespaces: HashMap<&str, &Value> = objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some("Namespace"))
        .filter_map(|o| Some((o.pointer("/metadata/name")?.as_str()?, o)))
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = objects.len().div_ceil(workers).max(1);
    let referential = compiled.iter().any(|c| c.policy.reads_inventory());
    let inventory = referential.then(|| review::inventory(objects));
    let found: Vec<Found> = std::thread::scope(|s| {
        let handles: Vec<_> = objects
            .chunks(chunk)
            .map(|part| {
                let namespaces = &namespaces;
                let inventory = inventory.as_ref();
                s.spawn(move || {
                    let mut mine: Vec<Compiled> = compiled
                        .iter()
                        .map(|c| {
                            let mut c = c.clone_for_worker();
                            if let (true, Some(inv)) = (c.policy.reads_inventory(), inventory) {
                                if let Ok(p) = c.policy.with_inventory(inv.clone()) {
                                    c.policy = p;
                                }
                            }
                            c
                        })
                        .collect();
                    let mut f = Found::default();
                    for o in part {
                        evaluate_object(&mut mine, o, namespaces, scope, &mut f);
                    }
                    f
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut findings = Vec::new();
    let mut counts = vec![Counts::default(); compiled.len()];
    let mut errors = Vec::new();
    for f in found {
        for (i, c) in f.counts {
            counts[i].violations += c.violations;
            counts[i].errors += c.errors;
            counts[i].excused += c.excused;
        }
        let room = MAX_FINDINGS.saturating_sub(findings.len());
        findings.extend(f.findings.into_iter().take(room));
        let room = MAX_ERRORS.saturating_sub(errors.len());
        errors.extend(f.errors.into_iter().take(room));
    }
    (findings, counts, errors)
}

fn evaluate_object(
    mine: &mut [Compiled],
    o: &Value,
    namespaces: &HashMap<&str, &Value>,
    scope: &Scope,
    f: &mut Found,
) {
    let ns = o
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut review = Review::from_object(o.clone(), namespaces.get(ns).map(|n| (*n).clone()));
    if let Err(e) = engine::check_object(o) {
        if f.errors.len() < MAX_ERRORS {
            f.errors
                .push(format!("{} {}/{}: {e}", review.kind, ns, review.name));
        }
        return;
    }
    let value = regorus::Value::from(review.take_value());
    let images = super::exceptions::image_names(o);
    for (i, c) in mine.iter_mut().enumerate() {
        let counts = f.counts.entry(i).or_default();
        match c.evaluate(&review, &value) {
            Ok(vs) if vs.is_empty() => {}
            Ok(vs) => {
                let excused_by = super::exceptions::excusing(
                    scope.exceptions,
                    &super::exceptions::Subject {
                        cluster: scope.cluster,
                        namespace: (!ns.is_empty()).then_some(ns),
                        images: &images,
                        template: &c.constraint.kind,
                        constraint: &c.constraint.name,
                    },
                );
                if excused_by.is_some() {
                    counts.excused += vs.len();
                } else {
                    counts.violations += vs.len();
                }
                for v in vs {
                    if f.findings.len() < MAX_FINDINGS {
                        f.findings.push(Finding {
                            constraint_kind: c.constraint.kind.clone(),
                            constraint: c.constraint.name.clone(),
                            action: c.constraint.action,
                            kind: review.kind.clone(),
                            namespace: ns.to_string(),
                            name: review.name.clone(),
                            msg: v.msg,
                            excused_by,
                        });
                    }
                }
            }
            Err(e) => {
                counts.errors += 1;
                if f.errors.len() < MAX_ERRORS {
                    f.errors.push(format!(
                        "{}/{} on {} {}/{}: {e}",
                        c.constraint.kind, c.constraint.name, review.kind, ns, review.name
                    ));
                }
            }
        }
    }
}

/// Audits cluster `cluster`'s last synced objects against its constraints and keeps the run.
pub fn run(store: &Store, cluster: u64) -> Result<Run, GatekeeperError> {
    let started = Instant::now();
    let constraints: Vec<Constraint> = catalog::constraints(store, cluster)?
        .into_iter()
        .map(|s| s.constraint)
        .collect();
    let (objects_at, objects) = if constraints.is_empty() {
        (None, Vec::new())
    } else {
        load_objects(store, cluster)?
    };
    let (compiled, mut errors) = Compiled::all(store, constraints)?;
    let exceptions = super::exceptions::in_effect(
        crate::compliance::service::list_exceptions(store)?,
        Utc::now().date_naive(),
    );
    let scope = Scope {
        cluster,
        exceptions: &exceptions,
    };
    let (findings, counts, found_errors) = evaluate_all(&compiled, &objects, &scope);
    errors.extend(found_errors);
    errors.truncate(MAX_ERRORS);
    let constraints: Vec<Totals> = compiled
        .iter()
        .zip(&counts)
        .map(|(c, n)| Totals {
            kind: c.constraint.kind.clone(),
            name: c.constraint.name.clone(),
            action: c.constraint.action,
            violations: n.violations,
            errors: n.errors,
            excused: n.excused,
        })
        .collect();
    let run = Run {
        cluster,
        at: Utc::now(),
        objects_at,
        objects: objects.len(),
        violations: counts.iter().map(|c| c.violations).sum(),
        constraints,
        findings,
        errors,
        seconds: started.elapsed().as_secs_f64(),
    };
    let by = |a: Action| {
        run.constraints
            .iter()
            .filter(|t| t.action == a)
            .map(|t| t.violations)
            .sum()
    };
    let day = Day {
        date: run.at.date_naive(),
        violations: run.violations,
        deny: by(Action::Deny),
        warn: by(Action::Warn),
        dryrun: by(Action::Dryrun),
    };
    let name = store.write(|w| {
        let Some(c) = w.get(&crate::clusters::CLUSTERS, &cluster)? else {
            return Err(GatekeeperError::NotFound(format!(
                "cluster {cluster} not found"
            )));
        };
        w.put(&RUNS, &cluster, &run)?;
        w.put(&DAYS, &format!("{cluster:020}/{}", day.date), &day)?;
        Ok(c.name)
    })?;
    super::metrics::record(&name, &run);
    Ok(run)
}

/// Audits every cluster that has constraints (the scheduled job); says what it did.
pub fn run_all(store: &Store) -> Result<String, GatekeeperError> {
    let mut clusters: Vec<u64> = store
        .read(|r| r.all(&catalog::CONSTRAINTS))?
        .into_iter()
        .map(|(_, c)| c.cluster)
        .collect();
    clusters.dedup();
    let (mut violations, mut failed) = (0, 0);
    for id in &clusters {
        match run(store, *id) {
            Ok(r) => violations += r.violations,
            Err(e) => {
                failed += 1;
                tracing::warn!(cluster = id, error = %e, "gatekeeper audit failed");
            }
        }
    }
    Ok(format!(
        "{} clusters audited, {violations} violations{}",
        clusters.len() - failed,
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    ))
}

/// The last audit of cluster `cluster`.
pub fn last(store: &Store, cluster: u64) -> Result<Option<Run>, StoreError> {
    store.read(|r| r.get(&RUNS, &cluster))
}

/// The last audit's violations of the objects `objects` (kind, name) in namespace `namespace`
/// of cluster `cluster` (a pod and its workload, for the pod's page).
pub fn findings_of(
    store: &Store,
    cluster: u64,
    namespace: &str,
    objects: &[(&str, &str)],
) -> Result<Vec<Finding>, StoreError> {
    Ok(last(store, cluster)?
        .map(|r| {
            r.findings
                .into_iter()
                .filter(|f| {
                    f.namespace == namespace
                        && objects.iter().any(|(k, n)| f.kind == *k && f.name == *n)
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Cluster `cluster`'s daily violations, oldest first.
pub fn days(store: &Store, cluster: u64) -> Result<Vec<Day>, StoreError> {
    let p = format!("{cluster:020}/");
    Ok(store
        .read(|r| r.all(&DAYS))?
        .into_iter()
        .filter(|(k, _)| k.starts_with(&p))
        .map(|(_, d)| d)
        .collect())
}

/// Drops a deleted cluster's audits and objects, inside its delete transaction.
pub fn forget(w: &WriteTx, cluster: u64) -> Result<(), StoreError> {
    w.delete(&OBJECTS, &cluster)?;
    w.delete(&RUNS, &cluster)?;
    let p = format!("{cluster:020}/");
    w.retain(&DAYS, |k: &String, _| !k.starts_with(&p))?;
    Ok(())
}
