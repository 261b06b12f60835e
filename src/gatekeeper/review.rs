//! What a template sees as `input.review`: an AdmissionRequest, either the one the API server
//! sent or one made from a stored object (audit and `gatekeeper verify`).

use serde_json::{json, Map, Value};

/// The object under review and the request around it.
#[derive(Debug, Clone)]
pub struct Review {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub operation: String,
    /// The object evaluated (for DELETE, the old object).
    pub object: Value,
    /// The namespace's own object, when known (namespace selectors need its labels).
    pub namespace_object: Option<Value>,
    /// The object's labels (kept apart so the object can move into the engine's input).
    labels: Option<Map<String, Value>>,
    /// The AdmissionRequest as given, when there was one.
    request: Option<Value>,
}

fn labels_of(object: &Value) -> Option<Map<String, Value>> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub fn group_version(api_version: &str) -> (String, String) {
    match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    }
}

fn str_of(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Review {
    /// A review of a stored object, as Gatekeeper's audit and gator build it.
    pub fn from_object(object: Value, namespace_object: Option<Value>) -> Review {
        let (group, version) = group_version(&str_of(&object, "/apiVersion"));
        let ns = str_of(&object, "/metadata/namespace");
        Review {
            group,
            version,
            kind: str_of(&object, "/kind"),
            name: str_of(&object, "/metadata/name"),
            namespace: (!ns.is_empty()).then_some(ns),
            operation: String::new(),
            labels: labels_of(&object),
            object,
            namespace_object,
            request: None,
        }
    }

    /// A review of an AdmissionRequest (`request` of an AdmissionReview).
    pub fn from_request(request: Value, namespace_object: Option<Value>) -> Review {
        let operation = str_of(&request, "/operation");
        let object = match request.get("object") {
            Some(o) if !o.is_null() && operation != "DELETE" => o.clone(),
            _ => request.get("oldObject").cloned().unwrap_or(Value::Null),
        };
        let (mut group, mut version) = group_version(&str_of(&object, "/apiVersion"));
        let mut kind = str_of(&object, "/kind");
        if let Some(k) = request.get("kind").filter(|k| k.is_object()) {
            group = str_of(k, "/group");
            version = str_of(k, "/version");
            kind = str_of(k, "/kind");
        }
        let name = Some(str_of(&request, "/name"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| str_of(&object, "/metadata/name"));
        let ns = Some(str_of(&request, "/namespace"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| str_of(&object, "/metadata/namespace"));
        Review {
            group,
            version,
            kind,
            name,
            namespace: (!ns.is_empty()).then_some(ns),
            operation,
            labels: labels_of(&object),
            object,
            namespace_object,
            request: Some(request),
        }
    }

    /// A review of a test case's object: an AdmissionReview's request, or the object itself.
    pub fn from_document(doc: Value, namespace_object: Option<Value>) -> Review {
        if doc.get("kind").and_then(Value::as_str) == Some("AdmissionReview") {
            if let Some(req) = doc.get("request").filter(|r| r.is_object()) {
                return Review::from_request(req.clone(), namespace_object);
            }
        }
        Review::from_object(doc, namespace_object)
    }

    pub fn object_labels(&self) -> Option<&Map<String, Value>> {
        self.labels.as_ref()
    }

    /// `input.review` as the template reads it.
    pub fn to_value(&self) -> Value {
        self.build(self.object.clone())
    }

    /// `input.review`, moving the object into it (what the review still answers afterwards:
    /// its kind, names and labels, for matching).
    pub fn take_value(&mut self) -> Value {
        let object = std::mem::take(&mut self.object);
        self.build(object)
    }

    fn build(&self, object: Value) -> Value {
        let mut r = match &self.request {
            Some(Value::Object(m)) => Value::Object(m.clone()),
            _ => json!({
                "uid": "",
                "operation": self.operation,
                "userInfo": {},
                "resource": {"group": "", "version": "", "resource": ""},
            }),
        };
        r["kind"] = json!({"group": self.group, "version": self.version, "kind": self.kind});
        r["object"] = object;
        if !self.name.is_empty() {
            r["name"] = json!(self.name);
        }
        if let Some(ns) = &self.namespace {
            r["namespace"] = json!(ns);
        }
        if let Some(n) = &self.namespace_object {
            r["namespaceObject"] = n.clone();
        }
        r
    }
}

/// `data.inventory` from objects: cluster-scoped ones at `cluster[gv][kind][name]`, the others
/// at `namespace[ns][gv][kind][name]`.
pub fn inventory<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut cluster = Map::new();
    let mut namespaced = Map::new();
    for o in objects {
        let gv = str_of(o, "/apiVersion");
        let kind = str_of(o, "/kind");
        let name = str_of(o, "/metadata/name");
        if gv.is_empty() || kind.is_empty() || name.is_empty() {
            continue;
        }
        let ns = str_of(o, "/metadata/namespace");
        let root = if ns.is_empty() {
            &mut cluster
        } else {
            namespaced
                .entry(ns)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("inserted as an object")
        };
        let by_kind = root.entry(gv).or_insert_with(|| json!({}));
        let by_name = by_kind
            .as_object_mut()
            .expect("inserted as an object")
            .entry(kind)
            .or_insert_with(|| json!({}));
        by_name
            .as_object_mut()
            .expect("inserted as an object")
            .insert(name, o.clone());
    }
    json!({"cluster": cluster, "namespace": namespaced})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_reviews_and_objects() {
        let r = Review::from_document(
            json!({"kind": "AdmissionReview", "request": {"operation": "DELETE",
                "oldObject": {"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "d", "namespace": "shop"}}}}),
            None,
        );
        assert_eq!((r.group.as_str(), r.kind.as_str()), ("apps", "Deployment"));
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        let v = r.to_value();
        assert_eq!(v["operation"], "DELETE");
        assert_eq!(v["object"]["metadata"]["name"], "d");
        assert_eq!(v["kind"]["kind"], "Deployment");
        let r = Review::from_object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
            None,
        );
        let v = r.to_value();
        assert_eq!(v["name"], "p");
        assert!(v.get("namespace").is_none());
        assert_eq!(
            v["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        // Junk stays a review of nothing, never a panic.
        let r = Review::from_document(json!({"kind": "AdmissionReview", "request": 3}), None);
        assert_eq!(r.kind, "AdmissionReview");
    }

    #[test]
    fn inventory_paths() {
        let objs = [
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "a"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
            json!({"kind": "Broken"}),
        ];
        let inv = inventory(&objs);
        assert_eq!(
            inv["namespace"]["a"]["networking.k8s.io/v1"]["Ingress"]["i"]["kind"],
            "Ingress"
        );
        assert_eq!(inv["cluster"]["v1"]["Namespace"]["a"]["kind"], "Namespace");
    }
}
