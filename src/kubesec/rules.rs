//! kubesec's rule set: each rule's id, selector, points and the kinds it applies to are
//! kubesec's (tools read them from the JSON), the reasons are ours. A predicate counts the places
//! (containers, volumes, the pod) where the rule matches; scoring counts a matching rule once.

use serde_json::Value;

/// Kinds with a pod template the workload rules apply to.
const WORKLOADS: &[&str] = &["Pod", "Deployment", "StatefulSet", "DaemonSet"];
const WITH_PODS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
];
const BINDINGS: &[&str] = &["RoleBinding", "ClusterRoleBinding"];

/// One rule.
pub struct Rule {
    pub id: &'static str,
    pub selector: &'static str,
    pub reason: &'static str,
    pub points: i64,
    pub kinds: &'static [&'static str],
    /// Matches in `object` whose pod spec is `spec` (`Null` when it has none).
    pub matches: fn(object: &Value, spec: &Value) -> usize,
}

/// The pod spec of an object of `kind`: `spec` for a Pod, the job template's for a CronJob, the
/// pod template's for the rest.
pub fn pod_spec<'a>(kind: &str, object: &'a Value) -> &'a Value {
    match kind {
        "Pod" => &object["spec"],
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &object["spec"]["template"]["spec"],
    }
}

/// How a security-context field reads at one level.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    Unset,
    Good,
    Bad,
}

fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| spec[k].as_array().into_iter().flatten())
}

/// Containers where `check` holds on their own security context, or where they leave it unset
/// and the pod's holds (when `pod_level`: the field exists in a pod's security context and
/// containers inherit it).
fn by_container(spec: &Value, pod_level: bool, check: impl Fn(&Value) -> Field) -> usize {
    let pod_good = pod_level && check(&spec["securityContext"]) == Field::Good;
    containers(spec)
        .filter(|c| match check(&c["securityContext"]) {
            Field::Good => true,
            Field::Unset => pod_good,
            Field::Bad => false,
        })
        .count()
}

fn flag(v: &Value, want: bool) -> Field {
    match v.as_bool() {
        None => Field::Unset,
        Some(b) if b == want => Field::Good,
        Some(_) => Field::Bad,
    }
}

fn above(v: &Value, min: f64) -> Field {
    match v.as_f64() {
        None => Field::Unset,
        Some(n) if n > min => Field::Good,
        Some(_) => Field::Bad,
    }
}

/// A profile type set to `Unconfined` (when `unconfined`) or to anything else.
fn profile(v: &Value, unconfined: bool) -> Field {
    match v.as_str() {
        None => Field::Unset,
        Some(t) if (t == "Unconfined") == unconfined => Field::Good,
        Some(_) => Field::Bad,
    }
}

/// A value as text (arrays and objects as their JSON), for kubesec's substring tests.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn host_paths(spec: &Value) -> impl Iterator<Item = &str> {
    spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["hostPath"]["path"].as_str())
}

fn mounts(spec: &Value, path: &str) -> usize {
    usize::from(host_paths(spec).any(|p| p.contains(path)))
}

/// Regular containers (not init or ephemeral) with `resources.<kind>.<what>` set.
fn resources(spec: &Value, kind: &str, what: &str) -> usize {
    spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !c["resources"][kind][what].is_null())
        .count()
}

fn claim_templates(object: &Value) -> &[Value] {
    object["spec"]["volumeClaimTemplates"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

fn secret_env(spec: &Value) -> usize {
    containers(spec)
        .filter(|c| {
            let env = c["env"].as_array().into_iter().flatten();
            let from = c["envFrom"].as_array().into_iter().flatten();
            env.clone()
                .any(|e| !e["valueFrom"]["secretKeyRef"].is_null())
                || from.clone().any(|e| !e["secretRef"].is_null())
        })
        .count()
}

/// Every rule, in kubesec's order.
pub const RULES: &[Rule] = &[
    Rule {
        id: "HostNetwork",
        selector: ".spec .hostNetwork == true",
        reason: "The pod shares the node's network namespace and can reach services bound to the node's loopback",
        points: -9,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(s["hostNetwork"] == Value::Bool(true)),
    },
    Rule {
        id: "HostPID",
        selector: ".spec .hostPID == true",
        reason: "The pod sees the node's processes, and with them their environments and arguments",
        points: -9,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(s["hostPID"] == Value::Bool(true)),
    },
    Rule {
        id: "HostIPC",
        selector: ".spec .hostIPC == true",
        reason: "The pod shares the node's IPC namespace with the node's processes",
        points: -9,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(s["hostIPC"] == Value::Bool(true)),
    },
    Rule {
        id: "ReadOnlyRootFilesystem",
        selector: "containers[] .securityContext .readOnlyRootFilesystem == true",
        reason: "A read-only root filesystem keeps an intruder from adding or changing binaries",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, false, |c| flag(&c["readOnlyRootFilesystem"], true)),
    },
    Rule {
        id: "RunAsNonRoot",
        selector: ".spec, .spec.containers[] | .securityContext .runAsNonRoot == true",
        reason: "The kubelet refuses to start the container as root",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| flag(&c["runAsNonRoot"], true)),
    },
    Rule {
        id: "RunAsUser",
        selector: ".spec, .spec.containers[] | .securityContext .runAsUser -gt 10000",
        reason: "A user id above 10000 cannot collide with a user of the node",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| above(&c["runAsUser"], 10_000.0)),
    },
    Rule {
        id: "RunAsGroup",
        selector: ".spec, .spec.containers[] | .securityContext .runAsGroup -gt 10000",
        reason: "A group id above 10000 cannot collide with a group of the node",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| above(&c["runAsGroup"], 10_000.0)),
    },
    Rule {
        id: "Privileged",
        selector: "containers[] .securityContext .privileged == true",
        reason: "A privileged container has nearly every power of the node itself",
        points: -30,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, false, |c| flag(&c["privileged"], true)),
    },
    Rule {
        id: "CapSysAdmin",
        selector: "containers[] .securityContext .capabilities .add == SYS_ADMIN",
        reason: "SYS_ADMIN is the broadest capability: it is nearly root on the node",
        points: -30,
        kinds: WORKLOADS,
        matches: |_, s| {
            by_container(s, false, |c| match &c["capabilities"]["add"] {
                Value::Null => Field::Unset,
                v if text(v).contains("SYS_ADMIN") => Field::Good,
                _ => Field::Bad,
            })
        },
    },
    Rule {
        id: "CapDropAny",
        selector: "containers[] .securityContext .capabilities .drop",
        reason: "Dropping capabilities shrinks what a compromised container can do",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| {
            by_container(s, false, |c| match c["capabilities"]["drop"].as_array() {
                None => Field::Unset,
                Some(d) if !d.is_empty() && d.iter().all(|x| !x.is_null()) => Field::Good,
                Some(_) => Field::Bad,
            })
        },
    },
    Rule {
        id: "CapDropAll",
        selector: "containers[] .securityContext .capabilities .drop | index(\"ALL\")",
        reason: "Dropping every capability and adding back only what is needed leaves the least to abuse",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| {
            by_container(s, false, |c| match &c["capabilities"]["drop"] {
                Value::Null => Field::Unset,
                v if text(v).to_ascii_uppercase().contains("ALL") => Field::Good,
                _ => Field::Bad,
            })
        },
    },
    Rule {
        id: "DockerSock",
        selector: "volumes[] .hostPath .path == /var/run/docker.sock",
        reason: "The Docker socket controls every container on the node and opens a way out of this one",
        points: -9,
        kinds: WORKLOADS,
        matches: |_, s| mounts(s, "/var/run/docker.sock"),
    },
    Rule {
        id: "ProcMount",
        selector: "volumes[] .hostPath .path == /proc",
        reason: "The node's /proc exposes the other containers on the node and opens a way out of this one",
        points: -9,
        kinds: WORKLOADS,
        matches: |_, s| mounts(s, "/proc"),
    },
    Rule {
        id: "RequestsCPU",
        selector: "containers[] .resources .requests .cpu",
        reason: "CPU requests let the scheduler share nodes fairly",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| resources(s, "requests", "cpu"),
    },
    Rule {
        id: "LimitsCPU",
        selector: "containers[] .resources .limits .cpu",
        reason: "CPU limits keep one container from starving its neighbours",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| resources(s, "limits", "cpu"),
    },
    Rule {
        id: "RequestsMemory",
        selector: "containers[] .resources .requests .memory",
        reason: "Memory requests let the scheduler share nodes fairly",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| resources(s, "requests", "memory"),
    },
    Rule {
        id: "LimitsMemory",
        selector: "containers[] .resources .limits .memory",
        reason: "Memory limits keep one container from exhausting the node",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| resources(s, "limits", "memory"),
    },
    Rule {
        id: "ServiceAccountName",
        selector: ".spec .serviceAccountName",
        reason: "A dedicated service account can be given only the API access the workload needs",
        points: 3,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(!s["serviceAccountName"].is_null()),
    },
    Rule {
        id: "HostAliases",
        selector: ".spec .hostAliases",
        reason: "Host aliases pin /etc/hosts entries that the cluster's DNS should own",
        points: -3,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(!s["hostAliases"].is_null()),
    },
    Rule {
        id: "SeccompAny",
        selector: ".spec .securityContext .seccompProfile .type | .spec .containers[] .securityContext .seccompProfile .type | .spec .initContainers[] .securityContext .seccompProfile .type | .spec .ephemeralContainers[] .securityContext .seccompProfile .type",
        reason: "A seccomp profile limits the system calls a container may make",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| profile(&c["seccompProfile"]["type"], false)),
    },
    Rule {
        id: "SeccompUnconfined",
        selector: ".spec .securityContext .seccompProfile .type | .spec .containers[] .securityContext .seccompProfile .type | .spec .initContainers[] .securityContext .seccompProfile .type | .spec .ephemeralContainers[] .securityContext .seccompProfile .type",
        reason: "An unconfined seccomp profile allows every system call",
        points: -1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| profile(&c["seccompProfile"]["type"], true)),
    },
    Rule {
        id: "ApparmorAny",
        selector: ".spec .securityContext .appArmorProfile .type | .spec .containers[] .securityContext .appArmorProfile .type | .spec .initContainers[] .securityContext .appArmorProfile .type | .spec .ephemeralContainers[] .securityContext .appArmorProfile .type",
        reason: "An AppArmor profile confines what the container's processes may touch",
        points: 3,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| profile(&c["appArmorProfile"]["type"], false)),
    },
    Rule {
        id: "ApparmorUnconfined",
        selector: ".spec .securityContext .appArmorProfile .type | .spec .containers[] .securityContext .appArmorProfile .type | .spec .initContainers[] .securityContext .appArmorProfile .type | .spec .ephemeralContainers[] .securityContext .appArmorProfile .type",
        reason: "An unconfined AppArmor profile turns AppArmor off for the container",
        points: -1,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, true, |c| profile(&c["appArmorProfile"]["type"], true)),
    },
    Rule {
        id: "VolumeClaimAccessModeReadWriteOnce",
        selector: ".spec .volumeClaimTemplates[] .spec .accessModes | index(\"ReadWriteOnce\")",
        reason: "ReadWriteOnce claims can be mounted by one node only",
        points: 1,
        kinds: &["StatefulSet"],
        matches: |o, _| {
            let t = claim_templates(o);
            // A StatefulSet without claim templates has nothing to get wrong.
            usize::from(
                t.is_empty()
                    || t.iter().any(|c| {
                        c["spec"]["accessModes"].as_array().is_some_and(|m| {
                            m.len() == 1 && m[0].as_str() == Some("ReadWriteOnce")
                        })
                    }),
            )
        },
    },
    Rule {
        id: "VolumeClaimRequestsStorage",
        selector: ".spec .volumeClaimTemplates[] .spec .resources .requests .storage",
        reason: "A storage request binds the claims to volumes of the right size",
        points: 1,
        kinds: &["StatefulSet"],
        matches: |o, _| {
            let t = claim_templates(o);
            if t.is_empty() {
                return 1;
            }
            t.iter()
                .filter(|c| !c["spec"]["resources"]["requests"]["storage"].is_null())
                .count()
        },
    },
    Rule {
        id: "AllowPrivilegeEscalation",
        selector: "containers[] .securityContext .allowPrivilegeEscalation == true",
        reason: "A process may gain more privileges than its parent (setuid binaries, file capabilities)",
        points: -7,
        kinds: WORKLOADS,
        matches: |_, s| by_container(s, false, |c| flag(&c["allowPrivilegeEscalation"], true)),
    },
    Rule {
        id: "AutomountServiceAccountToken",
        selector: ".spec .automountServiceAccountToken == false",
        reason: "Without a mounted token a compromised pod cannot call the API server as its service account",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(s["automountServiceAccountToken"] == Value::Bool(false)),
    },
    Rule {
        id: "HostUsers",
        selector: ".spec .hostUsers == false",
        reason: "A user namespace maps the pod's root to an unprivileged user of the node",
        points: 1,
        kinds: WORKLOADS,
        matches: |_, s| usize::from(s["hostUsers"] == Value::Bool(false)),
    },
    Rule {
        id: "SecretsAsEnvironmentVariables",
        selector: ".spec .containers[] .env[] .valueFrom .secretKeyRef | .spec .initContainers[] .env[] .valueFrom .secretKeyRef | .spec .ephemeralContainers[] .env[] .valueFrom .secretKeyRef | .spec .containers[] .envFrom[] .secretRef | .spec .initContainers[] .envFrom[] .secretRef | .spec .ephemeralContainers[] .envFrom[] .secretRef",
        reason: "Secrets in environment variables leak into logs, crash dumps and process listings; mount them as files",
        points: -5,
        kinds: WITH_PODS,
        matches: |_, s| secret_env(s),
    },
    Rule {
        id: "BindingsToSystemAnonymous",
        selector: ".subjects[] .name == \"system:anonymous\"",
        reason: "Binding a role to system:anonymous grants it to every unauthenticated caller",
        points: -30,
        kinds: BINDINGS,
        matches: |o, _| {
            usize::from(
                o["subjects"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["name"].as_str().is_some_and(|n| n.contains("system:anonymous"))),
            )
        },
    },
];
