//! Exceptions of type gatekeeper (the compliance exception model: status, dates, clusters,
//! namespaces, image pattern, plus the constraint template and the constraint as `issue_id`)
//! excusing violations in audits and at admission.
//!
//! An exception with an image pattern excuses an object only when every image the object
//! runs matches it, so an exception for one image never lets another through beside it.

use chrono::NaiveDate;
use serde_json::Value;

use crate::compliance::{Exception, ExceptionKind};
use crate::images::ImageRef;

/// The images of an object's pod spec (pods and workloads), by name (`registry/repository`).
pub fn image_names(object: &Value) -> Vec<String> {
    let spec = match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => object.get("spec"),
        Some("CronJob") => object.pointer("/spec/jobTemplate/spec/template/spec"),
        _ => object.pointer("/spec/template/spec"),
    };
    let Some(spec) = spec else { return Vec::new() };
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(k).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .map(|i| ImageRef::parse(i).map_or_else(|_| i.to_string(), |r| r.name()))
        .collect()
}

/// What a violation is about, for matching exceptions.
pub struct Subject<'a> {
    pub cluster: u64,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<&'a str>,
    pub images: &'a [String],
    /// The constraint's kind (its template) and name.
    pub template: &'a str,
    pub constraint: &'a str,
}

/// The exceptions that may excuse Gatekeeper violations today.
pub fn in_effect(all: Vec<Exception>, today: NaiveDate) -> Vec<Exception> {
    all.into_iter()
        .filter(|e| e.kind == ExceptionKind::Gatekeeper && e.in_effect(today))
        .collect()
}

/// The id of the first exception (of those [`in_effect`]) that excuses `s`.
pub fn excusing(exceptions: &[Exception], s: &Subject) -> Option<u64> {
    exceptions
        .iter()
        .find(|e| {
            let template = e.constraint_template.trim();
            e.clusters.as_ref().is_none_or(|c| c.contains(&s.cluster))
                && match (&e.namespaces, s.namespace) {
                    (None, _) => true,
                    (Some(list), Some(ns)) => list.iter().any(|n| n == ns),
                    (Some(_), None) => false,
                }
                && (template.is_empty() || template.eq_ignore_ascii_case(s.template))
                && (e.issue_id.is_empty() || e.issue_id == s.constraint)
                && (e.image_match.is_any()
                    || (!s.images.is_empty() && s.images.iter().all(|i| e.image_match.matches(i))))
        })
        .map(|e| e.id)
}
