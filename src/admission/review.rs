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
    /// (container name, image reference) of the containers of the pod (template), at most
    /// [`MAX_CONTAINERS`]; an image longer than [`MAX_IMAGE_LEN`] is cut to one character past it,
    /// so it is still recognizably too long.
    pub images: Vec<(String, String)>,
    /// How many containers the object has in all (more than `images` when it has too many).
    pub containers: usize,
    /// The kind is one Bulwark checks.
    pub checked_kind: bool,
    /// The AdmissionRequest as sent, for Gatekeeper constraints.
    pub request: Value,
}

/// Containers judged per object. Real pods have a handful; anything near this is an attack or
/// a mistake, and is denied as such rather than judged container by container.
pub const MAX_CONTAINERS: usize = 256;
/// Longest image reference judged (Docker's grammar caps the name at 255 characters; a tag and
/// digest add under 200).
pub const MAX_IMAGE_LEN: usize = 1024;
/// Longest name, namespace or kind kept (Kubernetes names are at most 253 characters).
const MAX_NAME_LEN: usize = 253;

/// `s` cut to at most `max` characters.
fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
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
    let mut v: Value = serde_json::from_slice(bytes)?;
    let api_version = v
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("admission.k8s.io/v1")
        .to_string();
    if !api_version.starts_with("admission.k8s.io/") || api_version.len() > 64 {
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
        .filter(|u| !u.is_empty() && u.len() <= 256)
        .ok_or(ReviewError::Shape(
            "request.uid is missing or longer than 256 characters",
        ))?
        .to_string();
    let kind = bounded(
        request
            .pointer("/kind/kind")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        MAX_NAME_LEN,
    );
    let operation = bounded(
        request
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("CREATE"),
        16,
    );
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
        .unwrap_or("default");
    let namespace = bounded(namespace, MAX_NAME_LEN);
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
        .unwrap_or_default();
    let name = bounded(name, MAX_NAME_LEN);
    let mut images = Vec::new();
    let mut containers = 0;
    if let Some(spec) = object.and_then(|o| pod_spec(&kind, o)) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for c in spec
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                containers += 1;
                if images.len() == MAX_CONTAINERS {
                    continue;
                }
                let text = |k: &str, max: usize| {
                    bounded(c.get(k).and_then(Value::as_str).unwrap_or_default(), max)
                };
                images.push((text("name", MAX_NAME_LEN), text("image", MAX_IMAGE_LEN + 1)));
            }
        }
    }
    let request = v.get_mut("request").map(Value::take).unwrap_or_default();
    Ok(Review {
        api_version,
        uid,
        request,
        checked_kind: CHECKED.contains(&kind.as_str()),
        kind,
        namespace,
        name,
        operation,
        images,
        containers,
    })
}

/// The response review. Warnings are cut to 20 of 240 characters (the API server shows them to
/// kubectl users); the message must already be bounded by the caller.
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
