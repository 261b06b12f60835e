//! Bulwark's own ConstraintTemplates, always available: the common needs of a cluster
//! (repositories, labels and annotations, privileged and host access, capabilities, the root
//! filesystem, users, resources, image references, probes).
//!
//! Every template reads pods and the pod templates of workloads (Deployments, StatefulSets,
//! DaemonSets, ReplicaSets, Jobs, CronJobs) through one shared library, so the inventory's
//! workloads are judged before their pods exist. The Rego is v0, which every Gatekeeper
//! release reads.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::Template;

/// Shared by every template as `data.lib.bulwark`.
const LIB: &str = r#"package lib.bulwark

# The pod spec of the object under review: a pod's, or the pod template of a workload. Complete
# rules over the input (not functions of an argument), so one evaluation computes them once.
spec = s {
  input.review.object.kind == "Pod"
  s := input.review.object.spec
}

spec = s {
  workload_kinds[input.review.object.kind]
  s := input.review.object.spec.template.spec
}

spec = s {
  input.review.object.kind == "CronJob"
  s := input.review.object.spec.jobTemplate.spec.template.spec
}

workload_kinds = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

# Every container of the object under review: regular, init and ephemeral.
containers[c] {
  c := spec.containers[_]
}

containers[c] {
  c := spec.initContainers[_]
}

containers[c] {
  c := spec.ephemeralContainers[_]
}

param(name, fallback) = v {
  v := object.get(input.parameters, name, fallback)
}
"#;

struct Spec {
    kind: &'static str,
    title: &'static str,
    description: &'static str,
    parameters: fn() -> Value,
    rego: &'static str,
}

fn none() -> Value {
    json!({"type": "object", "properties": {}})
}

fn strings(what: &str) -> Value {
    json!({"type": "array", "description": what, "items": {"type": "string"}})
}

const SPECS: &[Spec] = &[
    Spec {
        kind: "BulwarkAllowedRepos",
        title: "Allowed repositories",
        description: "Containers run only images whose reference starts with one of the listed prefixes (end registry prefixes with '/').",
        parameters: || json!({"type": "object", "properties": {"repos": strings("Allowed image reference prefixes, e.g. registry.internal/")}}),
        rego: r#"package bulwarkallowedrepos
import data.lib.bulwark

violation[{"msg": msg}] {
  repos := bulwark.param("repos", [])
  c := bulwark.containers[_]
  not any_prefix(c.image, repos)
  msg := sprintf("container %v runs %v, which is not from an allowed repository (%v)", [c.name, c.image, concat(", ", repos)])
}

any_prefix(image, repos) {
  startswith(image, repos[_])
}
"#,
    },
    Spec {
        kind: "BulwarkDisallowedRepos",
        title: "Disallowed repositories",
        description: "Containers may not run images whose reference starts with one of the listed prefixes.",
        parameters: || json!({"type": "object", "properties": {"repos": strings("Refused image reference prefixes")}}),
        rego: r#"package bulwarkdisallowedrepos
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  repo := bulwark.param("repos", [])[_]
  startswith(c.image, repo)
  msg := sprintf("container %v runs %v, from the disallowed repository %v", [c.name, c.image, repo])
}
"#,
    },
    Spec {
        kind: "BulwarkRequiredLabels",
        title: "Required labels",
        description: "Objects carry every listed label; a label with a pattern must match it.",
        parameters: || json!({"type": "object", "properties": {"labels": {"type": "array", "items": {
            "type": "object", "properties": {"key": {"type": "string"}, "allowedRegex": {"type": "string"}}}}}}),
        rego: r#"package bulwarkrequiredlabels
import data.lib.bulwark

violation[{"msg": msg, "details": {"missing": key}}] {
  want := bulwark.param("labels", [])[_]
  key := want.key
  not input.review.object.metadata.labels[key]
  msg := sprintf("no label %v", [key])
}

violation[{"msg": msg}] {
  want := bulwark.param("labels", [])[_]
  pattern := object.get(want, "allowedRegex", "")
  pattern != ""
  value := input.review.object.metadata.labels[want.key]
  not regex.match(pattern, value)
  msg := sprintf("label %v=%v does not match %v", [want.key, value, pattern])
}
"#,
    },
    Spec {
        kind: "BulwarkRequiredAnnotations",
        title: "Required annotations",
        description: "Objects carry every listed annotation; an annotation with a pattern must match it.",
        parameters: || json!({"type": "object", "properties": {"annotations": {"type": "array", "items": {
            "type": "object", "properties": {"key": {"type": "string"}, "allowedRegex": {"type": "string"}}}}}}),
        rego: r#"package bulwarkrequiredannotations
import data.lib.bulwark

violation[{"msg": msg, "details": {"missing": key}}] {
  want := bulwark.param("annotations", [])[_]
  key := want.key
  not input.review.object.metadata.annotations[key]
  msg := sprintf("no annotation %v", [key])
}

violation[{"msg": msg}] {
  want := bulwark.param("annotations", [])[_]
  pattern := object.get(want, "allowedRegex", "")
  pattern != ""
  value := input.review.object.metadata.annotations[want.key]
  not regex.match(pattern, value)
  msg := sprintf("annotation %v=%v does not match %v", [want.key, value, pattern])
}
"#,
    },
    Spec {
        kind: "BulwarkPrivilegedContainers",
        title: "No privileged containers",
        description: "No container runs privileged.",
        parameters: none,
        rego: r#"package bulwarkprivilegedcontainers
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  c.securityContext.privileged == true
  msg := sprintf("container %v is privileged", [c.name])
}
"#,
    },
    Spec {
        kind: "BulwarkHostNamespaces",
        title: "No host PID, IPC or network namespace",
        description: "Pods do not share the node's process, IPC or network namespace.",
        parameters: none,
        rego: r#"package bulwarkhostnamespaces
import data.lib.bulwark

violation[{"msg": msg}] {
  spec := bulwark.spec
  field := {"hostPID", "hostIPC", "hostNetwork"}[_]
  spec[field] == true
  msg := sprintf("the pod sets %v", [field])
}
"#,
    },
    Spec {
        kind: "BulwarkHostPaths",
        title: "Host paths",
        description: "hostPath volumes only under the listed prefixes (none listed: no hostPath at all); a prefix marked read-only must be mounted read-only.",
        parameters: || json!({"type": "object", "properties": {"allowedHostPaths": {"type": "array", "items": {
            "type": "object", "properties": {"pathPrefix": {"type": "string"}, "readOnly": {"type": "boolean"}}}}}}),
        rego: r#"package bulwarkhostpaths
import data.lib.bulwark

violation[{"msg": msg}] {
  spec := bulwark.spec
  v := spec.volumes[_]
  path := v.hostPath.path
  not allowed_path(path)
  msg := sprintf("the host path %v is not allowed", [path])
}

violation[{"msg": msg}] {
  spec := bulwark.spec
  v := spec.volumes[_]
  path := v.hostPath.path
  allowed := bulwark.param("allowedHostPaths", [])[_]
  object.get(allowed, "readOnly", false) == true
  startswith(path, allowed.pathPrefix)
  c := bulwark.containers[_]
  m := c.volumeMounts[_]
  m.name == v.name
  not m.readOnly == true
  msg := sprintf("container %v mounts the host path %v writable; it must be read-only", [c.name, path])
}

allowed_path(path) {
  startswith(path, bulwark.param("allowedHostPaths", [])[_].pathPrefix)
}
"#,
    },
    Spec {
        kind: "BulwarkHostPorts",
        title: "Host ports",
        description: "Container host ports stay within min..max (both 0: no host ports).",
        parameters: || json!({"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}}),
        rego: r#"package bulwarkhostports
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  port := c.ports[_].hostPort
  port != 0
  not within(port)
  msg := sprintf("container %v uses host port %v, outside %v..%v", [c.name, port, bulwark.param("min", 0), bulwark.param("max", 0)])
}

within(port) {
  bulwark.param("min", 0) <= port
  port <= bulwark.param("max", 0)
}
"#,
    },
    Spec {
        kind: "BulwarkCapabilities",
        title: "Linux capabilities",
        description: "Containers add only the allowed capabilities ('*' allows any) and drop every required one ('ALL' satisfies all).",
        parameters: || json!({"type": "object", "properties": {
            "allowedCapabilities": strings("Capabilities a container may add"),
            "requiredDropCapabilities": strings("Capabilities every container must drop")}}),
        rego: r#"package bulwarkcapabilities
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  cap := c.securityContext.capabilities.add[_]
  allowed := {x | x := bulwark.param("allowedCapabilities", [])[_]}
  not allowed["*"]
  not allowed[cap]
  msg := sprintf("container %v adds the capability %v, which is not allowed", [c.name, cap])
}

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  need := bulwark.param("requiredDropCapabilities", [])[_]
  dropped := {x | x := object.get(c, ["securityContext", "capabilities", "drop"], [])[_]}
  not dropped["ALL"]
  not dropped[need]
  msg := sprintf("container %v does not drop the capability %v", [c.name, need])
}
"#,
    },
    Spec {
        kind: "BulwarkReadOnlyRootFilesystem",
        title: "Read-only root filesystem",
        description: "Every container sets readOnlyRootFilesystem.",
        parameters: none,
        rego: r#"package bulwarkreadonlyrootfilesystem
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  not c.securityContext.readOnlyRootFilesystem == true
  msg := sprintf("container %v does not set readOnlyRootFilesystem", [c.name])
}
"#,
    },
    Spec {
        kind: "BulwarkRunAsNonRoot",
        title: "Run as non-root",
        description: "Every container runs as a user other than root: runAsNonRoot or a non-zero runAsUser, on the container or the pod.",
        parameters: none,
        rego: r#"package bulwarkrunasnonroot
import data.lib.bulwark

violation[{"msg": msg}] {
  spec := bulwark.spec
  c := bulwark.containers[_]
  not non_root(object.get(c, "securityContext", {}), object.get(spec, "securityContext", {}))
  msg := sprintf("container %v may run as root (set runAsNonRoot or a non-zero runAsUser)", [c.name])
}

non_root(ctx, _) {
  ctx.runAsUser > 0
}

non_root(ctx, _) {
  not ctx.runAsUser == 0
  ctx.runAsNonRoot == true
}

non_root(ctx, pod) {
  not has_key(ctx, "runAsUser")
  not has_key(ctx, "runAsNonRoot")
  pod.runAsUser > 0
}

non_root(ctx, pod) {
  not has_key(ctx, "runAsUser")
  not ctx.runAsNonRoot == false
  not pod.runAsUser == 0
  pod.runAsNonRoot == true
}

has_key(o, k) {
  _ = o[k]
}
"#,
    },
    Spec {
        kind: "BulwarkContainerLimits",
        title: "Resource limits",
        description: "Every container sets CPU and memory limits, no larger than the given maximums (e.g. cpu '2', memory '4Gi'; empty: any).",
        parameters: || json!({"type": "object", "properties": {"cpu": {"type": "string"}, "memory": {"type": "string"}}}),
        rego: r#"package bulwarkcontainerlimits
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  resource := {"cpu", "memory"}[_]
  not c.resources.limits[resource]
  msg := sprintf("container %v sets no %v limit", [c.name, resource])
}

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  resource := {"cpu", "memory"}[_]
  max := bulwark.param(resource, "")
  max != ""
  limit := c.resources.limits[resource]
  units.parse(sprintf("%v", [limit])) > units.parse(max)
  msg := sprintf("container %v has a %v limit of %v, above %v", [c.name, resource, limit, max])
}
"#,
    },
    Spec {
        kind: "BulwarkContainerRequests",
        title: "Resource requests",
        description: "Every container requests CPU and memory.",
        parameters: none,
        rego: r#"package bulwarkcontainerrequests
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  resource := {"cpu", "memory"}[_]
  not c.resources.requests[resource]
  msg := sprintf("container %v requests no %v", [c.name, resource])
}
"#,
    },
    Spec {
        kind: "BulwarkImageDigests",
        title: "Images by digest",
        description: "Every container names its image by digest (image@sha256:...).",
        parameters: none,
        rego: r#"package bulwarkimagedigests
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  not regex.match(`@[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`, c.image)
  msg := sprintf("container %v names its image %v without a digest", [c.name, c.image])
}
"#,
    },
    Spec {
        kind: "BulwarkDisallowLatestTag",
        title: "No latest tag",
        description: "No container runs an image tagged latest or without a tag (unless pinned by digest).",
        parameters: none,
        rego: r#"package bulwarkdisallowlatesttag
import data.lib.bulwark

violation[{"msg": msg}] {
  c := bulwark.containers[_]
  not contains(c.image, "@")
  floating(c.image)
  msg := sprintf("container %v runs %v, a floating tag", [c.name, c.image])
}

floating(image) {
  endswith(image, ":latest")
}

floating(image) {
  parts := split(image, "/")
  not contains(parts[count(parts) - 1], ":")
}
"#,
    },
    Spec {
        kind: "BulwarkRequiredProbes",
        title: "Required probes",
        description: "Every regular container defines the listed probes (default: readinessProbe and livenessProbe).",
        parameters: || json!({"type": "object", "properties": {"probes": {"type": "array", "items": {
            "type": "string", "enum": ["readinessProbe", "livenessProbe", "startupProbe"]}}}}),
        rego: r#"package bulwarkrequiredprobes
import data.lib.bulwark

violation[{"msg": msg}] {
  spec := bulwark.spec
  c := spec.containers[_]
  probe := bulwark.param("probes", ["readinessProbe", "livenessProbe"])[_]
  not c[probe]
  msg := sprintf("container %v has no %v", [c.name, probe])
}
"#,
    },
];

fn document(s: &Spec) -> Value {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {
            "name": s.kind.to_ascii_lowercase(),
            "annotations": {
                "metadata.gatekeeper.sh/title": s.title,
                "description": s.description,
                "bulwark.io/bundled": "true",
            },
        },
        "spec": {
            "crd": {"spec": {"names": {"kind": s.kind},
                "validation": {"openAPIV3Schema": (s.parameters)()}}},
            "targets": [{
                "target": "admission.k8s.gatekeeper.sh",
                "rego": s.rego,
                "libs": [LIB],
            }],
        },
    })
}

/// The bundled templates, read once.
pub fn templates() -> &'static [Template] {
    static ALL: OnceLock<Vec<Template>> = OnceLock::new();
    ALL.get_or_init(|| {
        SPECS
            .iter()
            .map(|s| Template::from_document(document(s)).expect("bundled templates are valid"))
            .collect()
    })
}

/// Whether `name` is a bundled template's.
pub fn is_bundled(name: &str) -> bool {
    templates().iter().any(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gatekeeper::{engine, evaluate, Constraint, Policy, Review};

    fn pod(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": spec})
    }

    fn deployment(spec: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": spec}}})
    }

    fn violations(kind: &str, parameters: Value, object: Value) -> Vec<String> {
        let t = templates().iter().find(|t| t.kind == kind).unwrap();
        let mut p = Policy::compile(t, engine::DEFAULT_TIME_LIMIT).unwrap();
        let c = Constraint::from_document(&json!({"kind": kind, "metadata": {"name": "c"},
            "spec": {"parameters": parameters}}))
        .unwrap();
        evaluate(&mut p, &c, &Review::from_object(object, None))
            .unwrap()
            .into_iter()
            .map(|v| v.msg)
            .collect()
    }

    /// One object each template refuses and one it admits.
    #[test]
    fn every_bundled_template_refuses_and_admits() {
        let good = json!({"containers": [{"name": "app", "image": "registry.internal/app:1.2@sha256:abc",
            "securityContext": {"runAsNonRoot": true, "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL"]}},
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}},
            "readinessProbe": {}, "livenessProbe": {}}]});
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "BulwarkAllowedRepos",
                json!({"repos": ["registry.internal/"]}),
                json!({"containers": [{"name": "app", "image": "docker.io/nginx:1"}]}),
                "not from an allowed repository",
            ),
            (
                "BulwarkDisallowedRepos",
                json!({"repos": ["docker.io/"]}),
                json!({"containers": [{"name": "app", "image": "docker.io/nginx:1"}]}),
                "disallowed repository docker.io/",
            ),
            (
                "BulwarkRequiredLabels",
                json!({"labels": [{"key": "owner"}]}),
                json!({"containers": []}),
                "no label owner",
            ),
            (
                "BulwarkRequiredAnnotations",
                json!({"annotations": [{"key": "team"}]}),
                json!({"containers": []}),
                "no annotation team",
            ),
            (
                "BulwarkPrivilegedContainers",
                json!({}),
                json!({"containers": [{"name": "app", "image": "x", "securityContext": {"privileged": true}}]}),
                "is privileged",
            ),
            (
                "BulwarkHostNamespaces",
                json!({}),
                json!({"hostPID": true, "containers": []}),
                "sets hostPID",
            ),
            (
                "BulwarkHostPaths",
                json!({"allowedHostPaths": [{"pathPrefix": "/var/log"}]}),
                json!({"volumes": [{"name": "v", "hostPath": {"path": "/etc"}}], "containers": []}),
                "host path /etc",
            ),
            (
                "BulwarkHostPorts",
                json!({"min": 0, "max": 0}),
                json!({"containers": [{"name": "app", "image": "x", "ports": [{"hostPort": 80}]}]}),
                "host port 80",
            ),
            (
                "BulwarkCapabilities",
                json!({"allowedCapabilities": [], "requiredDropCapabilities": ["NET_RAW"]}),
                json!({"containers": [{"name": "app", "image": "x", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
                "SYS_ADMIN",
            ),
            (
                "BulwarkReadOnlyRootFilesystem",
                json!({}),
                json!({"containers": [{"name": "app", "image": "x"}]}),
                "readOnlyRootFilesystem",
            ),
            (
                "BulwarkRunAsNonRoot",
                json!({}),
                json!({"containers": [{"name": "app", "image": "x", "securityContext": {"runAsUser": 0}}]}),
                "may run as root",
            ),
            (
                "BulwarkContainerLimits",
                json!({"memory": "1Gi"}),
                json!({"containers": [{"name": "app", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}),
                "above 1Gi",
            ),
            (
                "BulwarkContainerRequests",
                json!({}),
                json!({"containers": [{"name": "app", "image": "x"}]}),
                "requests no",
            ),
            (
                "BulwarkImageDigests",
                json!({}),
                json!({"containers": [{"name": "app", "image": "nginx:1"}]}),
                "without a digest",
            ),
            (
                "BulwarkDisallowLatestTag",
                json!({}),
                json!({"containers": [{"name": "app", "image": "registry:5000/nginx"}]}),
                "floating tag",
            ),
            (
                "BulwarkRequiredProbes",
                json!({}),
                json!({"containers": [{"name": "app", "image": "x", "readinessProbe": {}}]}),
                "no livenessProbe",
            ),
        ];
        assert_eq!(cases.len(), SPECS.len(), "a case for every template");
        for (kind, params, bad, expect) in cases {
            let mut labelled = pod(good.clone());
            labelled["metadata"]["labels"]["owner"] = json!("me");
            labelled["metadata"]["annotations"] = json!({"team": "a"});
            let v = violations(kind, params.clone(), labelled);
            assert!(v.is_empty(), "{kind} refused a good pod: {v:?}");
            let v = violations(kind, params.clone(), pod(bad.clone()));
            assert!(v.iter().any(|m| m.contains(expect)), "{kind}: {v:?}");
            if !matches!(kind, "BulwarkRequiredLabels" | "BulwarkRequiredAnnotations") {
                let v = violations(kind, params, deployment(bad));
                assert!(
                    v.iter().any(|m| m.contains(expect)),
                    "{kind} on a Deployment: {v:?}"
                );
            }
        }
    }
}
