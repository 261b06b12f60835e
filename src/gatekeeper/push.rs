//! Templates and constraints pushed to clusters that run Gatekeeper, through the cluster's
//! API connection (`clusters::kube`): install or update, remove, and the drift between what
//! Bulwark would push and what the cluster holds.
//!
//! Everything pushed carries the label `app.kubernetes.io/managed-by: bulwark`, so a push
//! removes what Bulwark pushed earlier and no longer has, and never touches the cluster's own
//! policies. Gatekeeper makes a constraint's CRD a moment after its template arrives: a
//! constraint refused with 404 is tried again for a while.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{catalog, render, GatekeeperError};
use crate::audit::{self, Event};
use crate::clusters::kube::{self, Connection};
use crate::secrets::Sealer;
use crate::store::{Store, Table};

/// The label on everything Bulwark pushes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "bulwark");

/// The last push to a cluster: what was pushed (a digest), by whom, when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pushed {
    pub digest: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Cluster → its last push (none once removed).
const PUSHES: Table<u64, Pushed> = Table::new("gatekeeper_pushes");

/// The digest of what would be pushed.
fn digest(templates: &[Value], constraints: &[Value]) -> String {
    let mut h = Sha256::new();
    for v in templates.iter().chain(constraints) {
        h.update(v.to_string().as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// How long a constraint waits for Gatekeeper to make its CRD.
const CRD_WAIT: Duration = Duration::from_secs(20);

/// One object's state in the cluster.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObjectState {
    pub kind: String,
    pub name: String,
    /// `in-sync`, `missing` or `differs`.
    pub state: &'static str,
    /// The fields that differ (paths, never values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<String>,
}

/// What the cluster holds against what Bulwark would push.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drift {
    pub in_sync: bool,
    pub objects: Vec<ObjectState>,
    /// Objects Bulwark pushed earlier and no longer has (`Kind/name`).
    pub extra: Vec<String>,
}

/// The objects Bulwark would push to cluster `id`: the templates its constraints use (with
/// its gatekeeper exceptions rendered in) and the constraints.
pub fn desired(store: &Store, id: u64) -> Result<(Vec<Value>, Vec<Value>), GatekeeperError> {
    let constraints = catalog::constraints(store, id)?;
    let exceptions = super::exceptions::in_effect(
        crate::compliance::service::list_exceptions(store)?,
        Utc::now().date_naive(),
    );
    let mut templates: Vec<Value> = Vec::new();
    let mut kinds: Vec<String> = Vec::new();
    for c in &constraints {
        if kinds.contains(&c.constraint.kind) {
            continue;
        }
        kinds.push(c.constraint.kind.clone());
        let (t, _) = catalog::template(store, &c.constraint.kind)?;
        let mine: Vec<_> = exceptions
            .iter()
            .filter(|e| e.clusters.as_ref().is_none_or(|l| l.contains(&id)))
            .filter(|e| {
                let t2 = e.constraint_template.trim();
                t2.is_empty() || t2.eq_ignore_ascii_case(&t.kind)
            })
            .cloned()
            .collect();
        templates.push(labelled(render::template(&t, &mine)?));
    }
    let docs = constraints
        .iter()
        .map(|c| {
            let mut d = c.constraint.document();
            d["spec"]["parameters"] = render::parameters(&c.constraint);
            labelled(d)
        })
        .collect();
    Ok((templates, docs))
}

fn labelled(mut doc: Value) -> Value {
    let metadata = &mut doc["metadata"];
    metadata["labels"][MANAGED_BY.0] = json!(MANAGED_BY.1);
    if let Some(a) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove("bulwark.io/bundled");
    }
    doc
}

fn name_of(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn kind_of(v: &Value) -> String {
    v.get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Paths where `have` does not hold what `want` sets (server-side defaults are not drift).
fn differences(want: &Value, have: &Value, path: &str, out: &mut Vec<String>) {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, v) in w {
                if k == "resourceVersion" {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match h.get(k) {
                    Some(hv) => differences(v, hv, &p, out),
                    None => out.push(p),
                }
            }
        }
        (w, h) if w != h => out.push(if path.is_empty() {
            "(whole object)".into()
        } else {
            path.to_string()
        }),
        _ => {}
    }
}

async fn connect(
    store: &Store,
    sealer: Arc<Sealer>,
    id: u64,
) -> Result<Connection, GatekeeperError> {
    let access = store
        .run(move |s| crate::clusters::sync::access(s, &sealer, id).map_err(cluster_error))
        .await?;
    kube::connect(&access).await.map_err(kube_error)
}

fn cluster_error(e: crate::clusters::ClusterError) -> GatekeeperError {
    match e {
        crate::clusters::ClusterError::NotFound(m) => GatekeeperError::NotFound(m),
        other => GatekeeperError::Invalid(other.to_string()),
    }
}

fn kube_error(e: kube::KubeError) -> GatekeeperError {
    GatekeeperError::Cluster(e.to_string())
}

async fn desired_of(store: &Store, id: u64) -> Result<(Vec<Value>, Vec<Value>), GatekeeperError> {
    store.run(move |s| desired(s, id)).await
}

/// Bulwark-managed objects in the cluster: templates, and constraints of `kinds`.
async fn managed(conn: &Connection, kinds: &[String]) -> Result<Vec<Value>, GatekeeperError> {
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let mut out = kube::list_labelled(conn, kube::CONSTRAINT_TEMPLATES, &selector)
        .await
        .map_err(kube_error)?
        .ok_or_else(|| {
            GatekeeperError::Cluster(
                "the cluster has no ConstraintTemplate API: is Gatekeeper installed?".into(),
            )
        })?;
    let mut all_kinds: Vec<String> = kinds.to_vec();
    for t in &out {
        if let Some(k) = t
            .pointer("/spec/crd/spec/names/kind")
            .and_then(Value::as_str)
        {
            if !all_kinds.iter().any(|x| x == k) {
                all_kinds.push(k.to_string());
            }
        }
    }
    for k in all_kinds {
        if let Some(items) = kube::list_labelled(conn, &kube::constraints_of(&k), &selector)
            .await
            .map_err(kube_error)?
        {
            out.extend(items.into_iter().map(|mut i| {
                if i.get("kind").is_none() {
                    i["kind"] = json!(k);
                }
                i
            }));
        }
    }
    Ok(out)
}

/// What cluster `id` holds against what Bulwark would push.
pub async fn status(store: &Store, sealer: Arc<Sealer>, id: u64) -> Result<Drift, GatekeeperError> {
    let (templates, constraints) = desired_of(store, id).await?;
    let conn = connect(store, sealer, id).await?;
    let mut objects = Vec::new();
    let kinds: Vec<String> = templates
        .iter()
        .filter_map(|t| {
            t.pointer("/spec/crd/spec/names/kind")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect();
    for (collection, want) in templates
        .iter()
        .map(|t| (kube::CONSTRAINT_TEMPLATES.to_string(), t))
        .chain(
            constraints
                .iter()
                .map(|c| (kube::constraints_of(&kind_of(c)), c)),
        )
    {
        let have = kube::get_object(&conn, &collection, &name_of(want))
            .await
            .map_err(kube_error)?;
        let (state, diffs) = match have {
            None => ("missing", Vec::new()),
            Some(h) => {
                let mut d = Vec::new();
                differences(want, &h, "", &mut d);
                (if d.is_empty() { "in-sync" } else { "differs" }, d)
            }
        };
        objects.push(ObjectState {
            kind: kind_of(want),
            name: name_of(want),
            state,
            differences: diffs,
        });
    }
    let wanted: Vec<(String, String)> = objects
        .iter()
        .map(|o| (o.kind.clone(), o.name.clone()))
        .collect();
    let extra: Vec<String> = managed(&conn, &kinds)
        .await?
        .iter()
        .map(|o| (kind_of(o), name_of(o)))
        .filter(|k| !wanted.contains(k))
        .map(|(k, n)| format!("{k}/{n}"))
        .collect();
    Ok(Drift {
        in_sync: extra.is_empty() && objects.iter().all(|o| o.state == "in-sync"),
        objects,
        extra,
    })
}

/// Installs or updates every template and constraint in cluster `id`, and removes what
/// Bulwark pushed earlier and no longer has.
pub async fn push(
    store: &Store,
    sealer: Arc<Sealer>,
    actor: &str,
    id: u64,
) -> Result<Drift, GatekeeperError> {
    let (templates, constraints) = desired_of(store, id).await?;
    let conn = connect(store, sealer.clone(), id).await?;
    for t in &templates {
        kube::apply_object(&conn, kube::CONSTRAINT_TEMPLATES, t)
            .await
            .map_err(kube_error)?;
    }
    for c in &constraints {
        let collection = kube::constraints_of(&kind_of(c));
        let started = std::time::Instant::now();
        loop {
            match kube::apply_object(&conn, &collection, c).await {
                Ok(_) => break,
                Err(kube::KubeError::Status { code: 404, .. }) if started.elapsed() < CRD_WAIT => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(kube_error(e)),
            }
        }
    }
    let removed = remove_managed(&conn, &templates, &constraints, false).await?;
    let (actor, n) = (actor.to_string(), (templates.len(), constraints.len()));
    let pushed = Pushed {
        digest: digest(&templates, &constraints),
        by: actor.clone(),
        at: Utc::now(),
    };
    store
        .run(move |s| {
            s.write(|w| {
                w.put(&PUSHES, &id, &pushed)?;
                audit::record(
                    w,
                    Event::new(&actor, "gatekeeper.push", format!("cluster:{id}")).detail(format!(
                        "templates={} constraints={} removed={removed}",
                        n.0, n.1
                    )),
                )
            })
        })
        .await?;
    status(store, sealer, id).await
}

/// Deletes Bulwark-managed objects that are not in `templates`/`constraints` (all of them
/// with `everything`); returns how many.
async fn remove_managed(
    conn: &Connection,
    templates: &[Value],
    constraints: &[Value],
    everything: bool,
) -> Result<usize, GatekeeperError> {
    let kinds: Vec<String> = templates
        .iter()
        .filter_map(|t| {
            t.pointer("/spec/crd/spec/names/kind")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect();
    let keep: Vec<(String, String)> = templates
        .iter()
        .chain(constraints)
        .map(|o| (kind_of(o), name_of(o)))
        .collect();
    let mut removed = 0;
    let found = managed(conn, &kinds).await?;
    // Constraints first: a template's removal takes its constraints' CRD with it.
    let (tpls, cons): (Vec<&Value>, Vec<&Value>) = found
        .iter()
        .partition(|o| kind_of(o) == "ConstraintTemplate");
    for o in cons.into_iter().chain(tpls) {
        let (kind, name) = (kind_of(o), name_of(o));
        if !everything && keep.contains(&(kind.clone(), name.clone())) {
            continue;
        }
        let collection = if kind == "ConstraintTemplate" {
            kube::CONSTRAINT_TEMPLATES.to_string()
        } else {
            kube::constraints_of(&kind)
        };
        if kube::delete_object(conn, &collection, &name)
            .await
            .map_err(kube_error)?
        {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes every Bulwark-managed template and constraint from cluster `id`.
pub async fn remove(
    store: &Store,
    sealer: Arc<Sealer>,
    actor: &str,
    id: u64,
) -> Result<usize, GatekeeperError> {
    let (templates, constraints) = desired_of(store, id).await?;
    let conn = connect(store, sealer, id).await?;
    let removed = remove_managed(&conn, &templates, &constraints, true).await?;
    let actor = actor.to_string();
    store
        .run(move |s| {
            s.write(|w| {
                w.delete(&PUSHES, &id)?;
                audit::record(
                    w,
                    Event::new(&actor, "gatekeeper.remove", format!("cluster:{id}"))
                        .detail(format!("removed={removed}")),
                )
            })
        })
        .await?;
    Ok(removed)
}

/// The last push to cluster `id`, if its policies are pushed.
pub fn last_push(store: &Store, id: u64) -> Result<Option<Pushed>, GatekeeperError> {
    Ok(store.read(|r| r.get(&PUSHES, &id))?)
}

/// Pushes again to every cluster whose pushed policies are out of date (an exception started
/// or ended, a constraint changed); returns what it did, one line per cluster.
pub async fn refresh_pushed(store: &Store, sealer: Arc<Sealer>, actor: &str) -> Vec<String> {
    let pushed = match store
        .run(|s| Ok::<_, GatekeeperError>(s.read(|r| r.all(&PUSHES))?))
        .await
    {
        Ok(p) => p,
        Err(e) => return vec![format!("pushed clusters unreadable: {e}")],
    };
    let mut out = Vec::new();
    for (id, last) in pushed {
        let current = match desired_of(store, id).await {
            Ok((t, c)) => digest(&t, &c),
            Err(e) => {
                out.push(format!("cluster {id}: {e}"));
                continue;
            }
        };
        if current == last.digest {
            continue;
        }
        match push(store, sealer.clone(), actor, id).await {
            Ok(d) => out.push(format!(
                "cluster {id}: pushed again ({})",
                if d.in_sync {
                    "in sync"
                } else {
                    "still differs"
                }
            )),
            Err(e) => out.push(format!("cluster {id}: push failed: {e}")),
        }
    }
    out
}

/// Forgets a deleted cluster's push record, inside its delete transaction.
pub fn forget(w: &crate::store::WriteTx, cluster: u64) -> Result<(), crate::store::StoreError> {
    w.delete(&PUSHES, &cluster)?;
    Ok(())
}

/// [`refresh_pushed`] from a job (on the blocking pool, inside the runtime, or without one).
pub fn refresh_pushed_blocking(store: &Store, sealer: Arc<Sealer>) -> Vec<String> {
    let run = refresh_pushed(store, sealer, "gatekeeper-audit job");
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(run),
        Err(_) => match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run),
            Err(e) => vec![format!("no runtime for the push: {e}")],
        },
    }
}
