//! Constraints at admission: each cluster's constraints compiled once and kept until a
//! template, constraint or exception changes (or the day turns, for exception dates). A review
//! clones the compiled engines it needs; evaluation stays on the request's worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{NaiveDate, Utc};
use serde_json::Value;

use super::audit::Compiled;
use super::{catalog, exceptions, Action, Constraint, GatekeeperError, Review};
use crate::compliance::Exception;
use crate::store::Store;

/// What the constraints say about one object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Violations of deny constraints, as `constraint: message`.
    pub deny: Vec<String>,
    /// Violations of warn constraints.
    pub warn: Vec<String>,
    /// Violations of dryrun constraints (recorded only).
    pub dryrun: Vec<String>,
    /// Violations an exception excused.
    pub excused: usize,
    /// Evaluations that failed: never a violation.
    pub errors: Vec<String>,
}

struct Sets {
    versions: Vec<u64>,
    today: NaiveDate,
    by_cluster: HashMap<u64, Arc<Vec<Compiled>>>,
    exceptions: Arc<Vec<Exception>>,
}

/// The compiled constraints of every cluster, for the webhook.
pub struct Enforcer {
    store: Store,
    current: RwLock<Option<Arc<Sets>>>,
    building: Mutex<()>,
}

fn watched() -> [&'static str; 3] {
    [
        catalog::TEMPLATES.name(),
        catalog::CONSTRAINTS.name(),
        crate::compliance::EXCEPTIONS_TABLE,
    ]
}

impl Enforcer {
    pub fn new(store: Store) -> Enforcer {
        Enforcer {
            store,
            current: RwLock::new(None),
            building: Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<Sets>> {
        let sets = self.current.read().ok()?.clone()?;
        (sets.versions == self.store.versions(&watched()) && sets.today == Utc::now().date_naive())
            .then_some(sets)
    }

    fn sets(&self) -> Result<Arc<Sets>, GatekeeperError> {
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        let _one = self.building.lock();
        if let Some(s) = self.fresh() {
            return Ok(s);
        }
        // Versions first: a write racing the reads below leaves the sets stale, not wrong.
        let versions = self.store.versions(&watched());
        let today = Utc::now().date_naive();
        let all = self.store.read(|r| r.all(&catalog::CONSTRAINTS))?;
        let mut grouped: HashMap<u64, Vec<Constraint>> = HashMap::new();
        for (_, c) in all {
            grouped.entry(c.cluster).or_default().push(c.constraint);
        }
        let mut by_cluster = HashMap::new();
        for (cluster, constraints) in grouped {
            let (compiled, errors) = Compiled::all(&self.store, constraints)?;
            for e in errors {
                tracing::warn!(cluster, error = %e, "constraint left out of admission");
            }
            by_cluster.insert(cluster, Arc::new(compiled));
        }
        let exceptions = exceptions::in_effect(
            crate::compliance::service::list_exceptions(&self.store)?,
            today,
        );
        let sets = Arc::new(Sets {
            versions,
            today,
            by_cluster,
            exceptions: Arc::new(exceptions),
        });
        if let Ok(mut c) = self.current.write() {
            *c = Some(sets.clone());
        }
        Ok(sets)
    }

    /// Whether the compiled constraints are up to date (else [`Enforcer::warm`] them off the
    /// request's worker first).
    pub fn is_fresh(&self) -> bool {
        self.fresh().is_some()
    }

    /// Brings the compiled constraints up to date (reads the store, compiles).
    pub fn warm(&self) -> Result<(), GatekeeperError> {
        self.sets().map(|_| ())
    }

    /// Evaluates cluster `cluster`'s constraints on an AdmissionRequest.
    pub fn review(&self, cluster: u64, request: &Value) -> Result<Outcome, GatekeeperError> {
        let sets = self.sets()?;
        let mut out = Outcome::default();
        let Some(compiled) = sets.by_cluster.get(&cluster) else {
            return Ok(out);
        };
        let mut review = Review::from_request(request.clone(), None);
        super::engine::check_object(&review.object)?;
        let images = exceptions::image_names(&review.object);
        let value = regorus::Value::from(review.take_value());
        for c in compiled.iter() {
            if !c.constraint.matcher.matches(&review) {
                continue;
            }
            let mut mine = c.clone_for_worker();
            let found = match mine.evaluate(&review, &value) {
                Ok(v) => v,
                Err(e) => {
                    out.errors
                        .push(format!("{}/{}: {e}", c.constraint.kind, c.constraint.name));
                    continue;
                }
            };
            if found.is_empty() {
                continue;
            }
            let subject = exceptions::Subject {
                cluster,
                namespace: review.namespace.as_deref(),
                images: &images,
                template: &c.constraint.kind,
                constraint: &c.constraint.name,
            };
            if exceptions::excusing(&sets.exceptions, &subject).is_some() {
                out.excused += found.len();
                continue;
            }
            let list = match c.constraint.action {
                Action::Deny => &mut out.deny,
                Action::Warn => &mut out.warn,
                Action::Dryrun => &mut out.dryrun,
            };
            list.extend(
                found
                    .into_iter()
                    .map(|v| format!("[{}] {}", c.constraint.name, v.msg)),
            );
        }
        Ok(out)
    }
}
