//! Installing Bulwark's ValidatingWebhookConfiguration in a connected cluster through its API
//! server: the object `webhook_config.rs` renders (CA bundle, failure policy from the cluster's
//! failure mode, namespaces left out), created or replaced, removed, and compared with what
//! Bulwark would install now (the cluster's failure mode or token may have changed since).
//!
//! The settings of the last install are kept, so the comparison knows the URL, timeout and
//! exclusions to expect. The token Bulwark connects with needs write access to
//! validatingwebhookconfigurations (packaging/kube/bulwark-webhook-installer.yaml).

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::kube;
use super::webhook_config::{self, Params};
use super::{ClusterError, CLUSTERS};
use crate::audit::{self, Event};
use crate::secrets::Sealer;
use crate::store::{Store, Table};

/// The settings of a cluster's last install.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Installed {
    url: String,
    timeout: u8,
    exclude: Vec<String>,
    at: DateTime<Utc>,
    by: String,
}

const INSTALLED: Table<u64, Installed> = Table::new("cluster_webhook_installs");

/// What the cluster has compared with what Bulwark would install.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStatus {
    /// The object's name (`bulwark-<cluster>`).
    pub name: String,
    /// The cluster has an object of that name.
    pub installed: bool,
    /// It is exactly what Bulwark would install now.
    pub matches: bool,
    /// What differs, field by field.
    pub differences: Vec<String>,
    /// The settings of Bulwark's last install, if it made one.
    pub installed_at: Option<DateTime<Utc>>,
    pub installed_by: Option<String>,
    pub url: Option<String>,
}

/// The object Bulwark would install for cluster `id` with `params`.
fn desired(
    store: &Store,
    sealer: &Sealer,
    id: u64,
    params: &Params,
    ca: &Path,
) -> Result<Value, ClusterError> {
    let c = super::get(store, id)?;
    let yaml = webhook_config::build(store, sealer, &c, params, ca)?;
    serde_yaml::from_str(&yaml)
        .map_err(|e| ClusterError::Invalid(format!("the rendered configuration: {e}")))
}

/// The fields that decide what the webhook does, for comparison (the API server adds
/// defaults and bookkeeping to the rest).
fn decisive(v: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let hooks = v["webhooks"].as_array().cloned().unwrap_or_default();
    out.push(("webhooks".to_string(), Value::from(hooks.len())));
    for (i, h) in hooks.iter().enumerate() {
        for field in [
            "name",
            "clientConfig",
            "rules",
            "namespaceSelector",
            "failurePolicy",
            "sideEffects",
            "timeoutSeconds",
            "admissionReviewVersions",
        ] {
            out.push((format!("webhooks[{i}].{field}"), h[field].clone()));
        }
    }
    out
}

fn differences(want: &Value, have: &Value) -> Vec<String> {
    let (w, h) = (decisive(want), decisive(have));
    let mut out = Vec::new();
    for ((field, a), (_, b)) in w.iter().zip(h.iter()) {
        if a != b {
            // The CA bundle and URL may carry the webhook token: name the field, not the value.
            out.push(format!("{field} differs"));
        }
    }
    if w.len() != h.len() {
        out.push("the number of webhooks differs".into());
    }
    out
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Installs (or updates) the webhook in cluster `id` and remembers the settings.
pub async fn install(
    store: &Store,
    sealer: Arc<Sealer>,
    actor: &str,
    id: u64,
    params: Params,
    ca: std::path::PathBuf,
) -> Result<WebhookStatus, ClusterError> {
    let (object, access) = {
        let (sealer, params, ca) = (sealer.clone(), params.clone(), ca.clone());
        store
            .run(move |s| {
                let access = super::sync::access(s, &sealer, id)?;
                Ok::<_, ClusterError>((desired(s, &sealer, id, &params, &ca)?, access))
            })
            .await?
    };
    let conn = kube::connect(&access).await?;
    kube::apply_webhook(&conn, &object).await?;
    let actor = actor.to_string();
    let name = name_of(&object);
    store
        .run(move |s| {
            s.write(|w| {
                if w.get(&CLUSTERS, &id)?.is_none() {
                    return Err(ClusterError::NotFound(id.to_string()));
                }
                w.put(
                    &INSTALLED,
                    &id,
                    &Installed {
                        url: params.url.clone(),
                        timeout: params.timeout,
                        exclude: params.exclude.clone(),
                        at: Utc::now(),
                        by: actor.clone(),
                    },
                )?;
                audit::record(
                    w,
                    Event::new(&actor, "cluster.webhook.install", format!("cluster:{id}"))
                        .detail(format!("name={name}")),
                )?;
                Ok(())
            })
        })
        .await?;
    status(store, sealer, id, None, ca).await
}

/// Removes the webhook from cluster `id`.
pub async fn remove(
    store: &Store,
    sealer: Arc<Sealer>,
    actor: &str,
    id: u64,
) -> Result<bool, ClusterError> {
    let (name, access) = store
        .run(move |s| {
            let c = super::get(s, id)?;
            let name = format!("bulwark-{}", webhook_config::slug(&c.name));
            Ok::<_, ClusterError>((name, super::sync::access(s, &sealer, id)?))
        })
        .await?;
    let conn = kube::connect(&access).await?;
    let existed = kube::delete_webhook(&conn, &name).await?;
    let actor = actor.to_string();
    store
        .run(move |s| {
            s.write(|w| {
                w.delete(&INSTALLED, &id)?;
                audit::record(
                    w,
                    Event::new(&actor, "cluster.webhook.remove", format!("cluster:{id}"))
                        .detail(format!("name={name} existed={existed}")),
                )?;
                Ok::<_, ClusterError>(())
            })
        })
        .await?;
    Ok(existed)
}

/// What cluster `id` has, compared with what Bulwark would install: with the settings of its
/// last install, else with `fallback` (the settings a first install would use).
pub async fn status(
    store: &Store,
    sealer: Arc<Sealer>,
    id: u64,
    fallback: Option<Params>,
    ca: std::path::PathBuf,
) -> Result<WebhookStatus, ClusterError> {
    let (object, access, installed) = store
        .run(move |s| {
            let access = super::sync::access(s, &sealer, id)?;
            let installed = s.read(|r| r.get(&INSTALLED, &id))?;
            let params = match (&installed, fallback) {
                (Some(i), _) => Params {
                    url: i.url.clone(),
                    timeout: i.timeout,
                    exclude: i.exclude.clone(),
                },
                (None, Some(p)) => p,
                (None, None) => {
                    return Err(ClusterError::Invalid(
                        "no install to compare with: give the url".into(),
                    ))
                }
            };
            let object = desired(s, &sealer, id, &params, &ca)?;
            Ok::<_, ClusterError>((object, access, installed))
        })
        .await?;
    let conn = kube::connect(&access).await?;
    let name = name_of(&object);
    let have = kube::get_webhook(&conn, &name).await?;
    let differences = match &have {
        Some(h) => differences(&object, h),
        None => vec!["not installed".into()],
    };
    Ok(WebhookStatus {
        name,
        installed: have.is_some(),
        matches: have.is_some() && differences.is_empty(),
        differences,
        installed_at: installed.as_ref().map(|i| i.at),
        installed_by: installed.as_ref().map(|i| i.by.clone()),
        url: installed.map(|i| i.url),
    })
}

/// Forgets a deleted cluster's install settings.
pub(super) fn forget(w: &crate::store::WriteTx, id: u64) -> Result<(), ClusterError> {
    w.delete(&INSTALLED, &id)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_fields_not_values() {
        let want = json!({"webhooks": [{"name": "images.bulwark.security", "failurePolicy": "Fail",
            "clientConfig": {"url": "https://b/api/v1/admission/prod/secret-token"}, "timeoutSeconds": 5}]});
        let mut have = want.clone();
        assert!(differences(&want, &have).is_empty());
        have["webhooks"][0]["failurePolicy"] = json!("Ignore");
        have["webhooks"][0]["clientConfig"]["url"] = json!("https://elsewhere");
        // What the API server adds does not count.
        have["webhooks"][0]["matchConditions"] = json!([]);
        have["metadata"] = json!({"uid": "u", "resourceVersion": "9"});
        let d = differences(&want, &have);
        assert_eq!(
            d,
            [
                "webhooks[0].clientConfig differs",
                "webhooks[0].failurePolicy differs"
            ]
        );
        assert!(!d.iter().any(|x| x.contains("secret-token")));
    }
}
