//! The manifests that run kube-bench and kube-hunter in a cluster and send their reports to
//! Bulwark: a Secret holding the upload URL (its key included, so the key never sits in a
//! Job spec that `kubectl get -o yaml` shows), and a CronJob (or a one-off Job) with the
//! operator's image from their own registry.

use serde::Deserialize;

use super::AuditError;

/// What to generate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `kube-bench` or `kube-hunter`.
    pub tool: String,
    /// The image, usually mirrored into the cluster's own registry.
    #[serde(default)]
    pub image: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// A cron schedule for a CronJob; empty for a one-off Job.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// kube-bench only: `node` (worker nodes) or `master` (control-plane nodes).
    #[serde(default = "default_target")]
    pub target: String,
    /// How the cluster reaches Bulwark (`https://bulwark.example:8443`).
    #[serde(default)]
    pub url: String,
}

fn default_namespace() -> String {
    "bulwark".into()
}
fn default_schedule() -> String {
    "0 0 * * *".into()
}
fn default_target() -> String {
    "node".into()
}

/// The images used when the request names none.
pub const KUBE_BENCH_IMAGE: &str = "docker.io/aquasec/kube-bench:v0.10.6";
pub const KUBE_HUNTER_IMAGE: &str = "docker.io/aquasec/kube-hunter:0.6.8";

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// YAML needs no quoting help: every value here is checked to hold only safe characters, then
/// written double-quoted.
fn safe(what: &str, v: &str, extra: &str) -> Result<(), AuditError> {
    if v.is_empty()
        || v.len() > 512
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/:@*, ".contains(c) || extra.contains(c))
    {
        return Err(AuditError::Invalid(format!(
            "{what}: '{}' has characters a manifest cannot carry",
            v.chars().take(60).collect::<String>()
        )));
    }
    Ok(())
}

impl Request {
    /// Checks the request; the cluster's name and the key come from the caller.
    pub fn validate(&mut self) -> Result<(), AuditError> {
        if !matches!(self.tool.as_str(), "kube-bench" | "kube-hunter") {
            return Err(AuditError::Invalid(
                "tool: kube-bench or kube-hunter".into(),
            ));
        }
        if self.image.trim().is_empty() {
            self.image = match self.tool.as_str() {
                "kube-bench" => KUBE_BENCH_IMAGE,
                _ => KUBE_HUNTER_IMAGE,
            }
            .into();
        }
        self.image = self.image.trim().to_string();
        safe("image", &self.image, "")?;
        if !is_name(&self.namespace) {
            return Err(AuditError::Invalid(
                "namespace: a Kubernetes namespace name".into(),
            ));
        }
        self.schedule = self.schedule.trim().to_string();
        if !self.schedule.is_empty() {
            safe("schedule", &self.schedule, "")?;
            if self.schedule.split_whitespace().count() != 5 {
                return Err(AuditError::Invalid(
                    "schedule: a five-field cron schedule, or empty for a one-off Job".into(),
                ));
            }
        }
        if !matches!(self.target.as_str(), "node" | "master") {
            return Err(AuditError::Invalid("target: node or master".into()));
        }
        let url = self.url.trim().trim_end_matches('/').to_string();
        if !url.starts_with("https://") {
            return Err(AuditError::Invalid(
                "url: how the cluster reaches Bulwark, https://…".into(),
            ));
        }
        safe("url", &url, "")?;
        self.url = url;
        Ok(())
    }
}

/// The manifests for `req` (validated) uploading to `cluster` with `key`.
pub fn render(req: &Request, cluster: &str, key: &str) -> Result<String, AuditError> {
    safe("cluster", cluster, "")?;
    safe("key", key, "")?;
    let bench = req.tool == "kube-bench";
    let name = if bench {
        format!("bulwark-kube-bench-{}", req.target)
    } else {
        "bulwark-kube-hunter".to_string()
    };
    let upload = if bench {
        format!("{}/api/kube-bench/{cluster}?key={key}", req.url)
    } else {
        format!("{}/api/kubehunter/hunter/{cluster}?key={key}", req.url)
    };
    let ns = &req.namespace;
    let mut out = format!(
        "# Runs {tool} in cluster {cluster} and sends its report to Bulwark.\n# The Secret holds an API key with the {tool} scope only; keep this file private.\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"{ns}\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: \"{name}\"\n  namespace: \"{ns}\"\n  labels:\n    app.kubernetes.io/part-of: bulwark\ntype: Opaque\nstringData:\n  upload-url: \"{upload}\"\n---\n",
        tool = req.tool
    );
    let pod = if bench {
        bench_pod(req, &name)
    } else {
        hunter_pod(req, &name)
    };
    if req.schedule.is_empty() {
        out.push_str(&format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: \"{name}\"\n  namespace: \"{ns}\"\n  labels:\n    app.kubernetes.io/part-of: bulwark\nspec:\n  backoffLimit: 1\n  ttlSecondsAfterFinished: 86400\n  template:\n{}",
            indent(&pod, 4)
        ));
    } else {
        out.push_str(&format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: \"{name}\"\n  namespace: \"{ns}\"\n  labels:\n    app.kubernetes.io/part-of: bulwark\nspec:\n  schedule: \"{}\"\n  concurrencyPolicy: Forbid\n  successfulJobsHistoryLimit: 1\n  failedJobsHistoryLimit: 3\n  jobTemplate:\n    spec:\n      backoffLimit: 1\n      template:\n{}",
            req.schedule,
            indent(&pod, 8)
        ));
    }
    Ok(out)
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}\n")).collect::<String>()
}

/// kube-bench reads the node's files and processes: the host's PID namespace and its
/// configuration directories, read-only, as kube-bench's own job.yaml mounts them.
fn bench_pod(req: &Request, name: &str) -> String {
    let placement = if req.target == "master" {
        "nodeSelector:\n  node-role.kubernetes.io/control-plane: \"\"\ntolerations:\n  - key: node-role.kubernetes.io/control-plane\n    operator: Exists\n    effect: NoSchedule\n"
    } else {
        ""
    };
    let mounts = [
        ("var-lib-etcd", "/var/lib/etcd"),
        ("var-lib-kubelet", "/var/lib/kubelet"),
        ("var-lib-kube-scheduler", "/var/lib/kube-scheduler"),
        (
            "var-lib-kube-controller-manager",
            "/var/lib/kube-controller-manager",
        ),
        ("etc-systemd", "/etc/systemd"),
        ("lib-systemd", "/lib/systemd"),
        ("etc-kubernetes", "/etc/kubernetes"),
        ("usr-bin", "/usr/local/mount-from-host/bin"),
    ];
    let host_path = |p: &str| {
        if p.starts_with("/usr/local") {
            "/usr/bin".to_string()
        } else {
            p.to_string()
        }
    };
    let mut volume_mounts = String::new();
    let mut volumes = String::new();
    for (n, p) in mounts {
        volume_mounts.push_str(&format!(
            "      - name: {n}\n        mountPath: {p}\n        readOnly: true\n"
        ));
        volumes.push_str(&format!(
            "  - name: {n}\n    hostPath:\n      path: {}\n",
            host_path(p)
        ));
    }
    format!(
        "metadata:\n  labels:\n    app.kubernetes.io/name: {name}\nspec:\n  hostPID: true\n  restartPolicy: Never\n{}  containers:\n    - name: kube-bench\n      image: \"{image}\"\n      command: [\"/bin/sh\", \"-c\"]\n      args:\n        - kube-bench run --json > /tmp/report.json && wget -q -O - --header 'Content-Type: application/json' --post-file /tmp/report.json \"$UPLOAD_URL&node=$NODE_NAME\"\n      env:\n        - name: UPLOAD_URL\n          valueFrom:\n            secretKeyRef:\n              name: \"{name}\"\n              key: upload-url\n        - name: NODE_NAME\n          valueFrom:\n            fieldRef:\n              fieldPath: spec.nodeName\n      volumeMounts:\n{volume_mounts}  volumes:\n{volumes}",
        indent(placement, 2),
        image = req.image,
    )
}

/// kube-hunter probes from a pod (`--pod`) and posts its report with its HTTP dispatcher.
fn hunter_pod(req: &Request, name: &str) -> String {
    format!(
        "metadata:\n  labels:\n    app.kubernetes.io/name: {name}\nspec:\n  restartPolicy: Never\n  containers:\n    - name: kube-hunter\n      image: \"{image}\"\n      args: [\"--pod\", \"--report=json\", \"--dispatch=http\"]\n      env:\n        - name: KUBEHUNTER_HTTP_DISPATCH_URL\n          valueFrom:\n            secretKeyRef:\n              name: \"{name}\"\n              key: upload-url\n",
        image = req.image,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(tool: &str, schedule: &str) -> Request {
        Request {
            tool: tool.into(),
            image: "registry.local/mirror/kube-bench:v0.10.6".into(),
            namespace: "audits".into(),
            schedule: schedule.into(),
            target: "master".into(),
            url: "https://bulwark.internal:8443/".into(),
        }
    }

    #[test]
    fn manifests_parse_as_kubernetes_objects() {
        for (tool, schedule, kind) in [
            ("kube-bench", "0 1 * * *", "CronJob"),
            ("kube-bench", "", "Job"),
            ("kube-hunter", "30 2 * * 0", "CronJob"),
        ] {
            let mut r = req(tool, schedule);
            r.validate().unwrap();
            let yaml = render(&r, "prod", "bwk_secret1").unwrap();
            let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
                .map(|d| serde::Deserialize::deserialize(d).unwrap())
                .collect();
            let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
            assert_eq!(kinds, ["Namespace", "Secret", kind], "{yaml}");
            let url = docs[1]["stringData"]["upload-url"].as_str().unwrap();
            let path = if tool == "kube-bench" {
                "/api/kube-bench/prod?key=bwk_secret1"
            } else {
                "/api/kubehunter/hunter/prod?key=bwk_secret1"
            };
            assert_eq!(url, format!("https://bulwark.internal:8443{path}"));
            // The key is only in the Secret.
            assert_eq!(yaml.matches("bwk_secret1").count(), 1, "{yaml}");
            let spec = if kind == "Job" {
                &docs[2]["spec"]["template"]["spec"]
            } else {
                &docs[2]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            };
            assert_eq!(
                spec["containers"][0]["image"].as_str(),
                Some("registry.local/mirror/kube-bench:v0.10.6")
            );
            if tool == "kube-bench" {
                assert_eq!(spec["hostPID"].as_bool(), Some(true));
                assert!(spec["nodeSelector"]
                    .as_mapping()
                    .unwrap()
                    .contains_key("node-role.kubernetes.io/control-plane"));
            }
        }
    }

    #[test]
    fn values_that_could_break_the_yaml_are_refused() {
        for (field, value) in [
            ("image", "evil\"\n  hostNetwork: true"),
            ("namespace", "Bad_NS"),
            ("schedule", "* * *"),
            ("url", "http://plain"),
            ("tool", "kubectl"),
            ("target", "etcd"),
        ] {
            let mut r = req("kube-bench", "0 1 * * *");
            match field {
                "image" => r.image = value.into(),
                "namespace" => r.namespace = value.into(),
                "schedule" => r.schedule = value.into(),
                "url" => r.url = value.into(),
                "tool" => r.tool = value.into(),
                _ => r.target = value.into(),
            }
            let e = r.validate().unwrap_err().to_string();
            assert!(e.starts_with(field), "{field}: {e}");
        }
    }
}
