//! AdmissionReview (admission.k8s.io/v1 and v1beta1): what Bulwark reads from a request and the
//! response it writes. Pods and every workload kind with a pod template are understood; every
//! container list (containers, initContainers, ephemeralContainers) is read.

use serde_json::{json, Value};

/// What a review asks about.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Echoed in the response.
    pub api_version: String,
    pub uid: String,
    /// The object's kind, e.g. `Deployment`.
    pub kind: String,
    pub namespace: String,
    /// The object's name (may be empty for generated names).
    pub name: String,
    pub operation: String,
    /// (container name, image reference) of every container of the pod (template).
    pub images: Vec<(String, String)>,
    /// The kind is one Bulwark checks.
    pub checked_kind: bool,
}

/// A body that is not an AdmissionReview Bulwark can answer.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not an AdmissionReview: {0}")]
    Shape(&'static str),
}

/// Kinds with a pod spec, and where it is.
fn pod_spec<'a>(kind: &str, object: &'a Value) -> Option<&'a Value> {
    let spec = object.get("spec")?;
    match kind {
        "Pod" => Some(spec),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => spec.get("template")?.get("spec"),
        "CronJob" => spec
            .get("jobTemplate")?
            .get("spec")?
            .get("template")?
            .get("spec"),
        _ => None,
    }
}

const CHECKED: [&str; 8] = [
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

/// Reads a review.
pub fn parse(bytes: &[u8]) -> Result<Review, ReviewError> {
    let v: Value = serde_json::from_slice(bytes)?;
    let api_version = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("admission.k8s.io/v1")
        .to_string();
    if !api_version.starts_with("admission.k8s.io/") {
        return Err(ReviewError::Shape(
            "apiVersion must be admission.k8s.io/v1 or v1beta1",
        ));
    }
    let request = v
        .get("request")
        .filter(|r| r.is_object())
        .ok_or(ReviewError::Shape("no request"))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or(ReviewError::Shape("request.uid is missing"))?
        .to_string();
    let kind = request
        .pointer("/kind/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("CREATE")
        .to_string();
    let object = request.get("object").filter(|o| o.is_object());
    let namespace = request
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| {
            object
                .and_then(|o| o.pointer("/metadata/namespace"))
                .and_then(Value::as_str)
        })
        .unwrap_or("default")
        .to_string();
    let name = request
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .or_else(|| {
            object
                .and_then(|o| {
                    o.pointer("/metadata/name")
                        .or_else(|| o.pointer("/metadata/generateName"))
                })
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
        .to_string();
    let mut images = Vec::new();
    if let Some(spec) = object.and_then(|o| pod_spec(&kind, o)) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let cname = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                images.push((cname, image));
            }
        }
    }
    Ok(Review {
        api_version,
        uid,
        checked_kind: CHECKED.contains(&kind.as_str()),
        kind,
        namespace,
        name,
        operation,
        images,
    })
}

/// The response review.
pub fn respond(
    api_version: &str,
    uid: &str,
    allowed: bool,
    message: Option<&str>,
    warnings: &[String],
) -> Value {
    let mut response = json!({ "uid": uid, "allowed": allowed });
    if let Some(m) = message {
        let code = if allowed { 200 } else { 403 };
        response["status"] = json!({ "code": code, "message": m });
    }
    if !warnings.is_empty() {
        // The API server shows warnings to kubectl users; keep them short.
        let w: Vec<String> = warnings
            .iter()
            .take(20)
            .map(|w| w.chars().take(240).collect())
            .collect();
        response["warnings"] = json!(w);
    }
    json!({ "apiVersion": api_version, "kind": "AdmissionReview", "response": response })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pods_workloads_and_every_container_list() {
        let pod = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},
            "namespace":"prod","operation":"CREATE","object":{"metadata":{"name":"p"},"spec":{
              "initContainers":[{"name":"init","image":"busybox"}],
              "containers":[{"name":"app","image":"registry.local/app:1"}],
              "ephemeralContainers":[{"name":"debug","image":"alpine:3.19"}]}}}}"#;
        let r = parse(pod).unwrap();
        assert_eq!(
            (r.uid.as_str(), r.namespace.as_str(), r.kind.as_str()),
            ("u1", "prod", "Pod")
        );
        assert_eq!(r.images.len(), 3);
        let cron = br#"{"apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u2","kind":{"kind":"CronJob"},
            "object":{"metadata":{"namespace":"batch","name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"name":"x","image":"x:1"}]}}}}}}}}"#;
        let r = parse(cron).unwrap();
        assert_eq!(
            r.namespace, "batch",
            "namespace from the object when the request has none"
        );
        assert_eq!(r.images, vec![("x".to_string(), "x:1".to_string())]);
        let deploy = br#"{"request":{"uid":"u3","kind":{"kind":"Deployment"},"object":{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"nginx"}]}}}}}}"#;
        assert_eq!(parse(deploy).unwrap().images.len(), 1);
        let cm = br#"{"request":{"uid":"u4","kind":{"kind":"ConfigMap"},"object":{"data":{}}}}"#;
        assert!(!parse(cm).unwrap().checked_kind);
        let delete =
            br#"{"request":{"uid":"u5","kind":{"kind":"Pod"},"operation":"DELETE","object":null}}"#;
        assert!(parse(delete).unwrap().images.is_empty());
    }

    #[test]
    fn refuses_what_cannot_be_answered() {
        assert!(matches!(parse(b"nope"), Err(ReviewError::Json(_))));
        assert!(matches!(
            parse(br#"{"request":{"kind":{"kind":"Pod"}}}"#),
            Err(ReviewError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"request":{"uid":""}}"#),
            Err(ReviewError::Shape(_))
        ));
        assert!(matches!(
            parse(br#"{"apiVersion":"v1","request":{"uid":"x"}}"#),
            Err(ReviewError::Shape(_))
        ));
        assert!(matches!(parse(br#"[]"#), Err(ReviewError::Shape(_))));
    }

    #[test]
    fn responses_echo_uid_and_version() {
        let r = respond("admission.k8s.io/v1beta1", "u9", false, Some("no"), &[]);
        assert_eq!(r["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(r["response"]["uid"], "u9");
        assert_eq!(r["response"]["allowed"], false);
        assert_eq!(r["response"]["status"]["message"], "no");
        assert!(r["response"].get("warnings").is_none());
    }
}
