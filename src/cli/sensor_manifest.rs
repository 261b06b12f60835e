//! `bulwark sensor-manifest`: the Kubernetes objects that run `bulwark sensor` on every node
//! (a DaemonSet, its ServiceAccount and, optionally, a NetworkPolicy), for `kubectl apply -f -`.
//! The security choices are flags: a privileged pod, or only the capabilities capture needs;
//! host networking (to see the node's pod interfaces) with the DNS policy that goes with it;
//! the host PID namespace; a read-only root filesystem; a proxy for the way to the appliance.

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

/// How much the sensor pod may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Security {
    /// Only what capture needs: NET_RAW, NET_ADMIN, BPF and IPC_LOCK; everything else dropped.
    Capabilities,
    /// A privileged container (for clusters whose runtime cannot grant BPF).
    Privileged,
}

/// Flags of `bulwark sensor-manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The appliance the sensors ship to, e.g. `https://bulwark.internal:8443`.
    #[arg(long)]
    pub server: String,
    /// The Bulwark image.
    #[arg(long, default_value = "registry.local/bulwark:latest")]
    pub image: String,
    /// Namespace of the objects.
    #[arg(long, default_value = "bulwark")]
    pub namespace: String,
    /// Interfaces each sensor captures on.
    #[arg(long, default_value = "all-veths")]
    pub interfaces: String,
    /// Capture workers per interface.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    #[arg(long, value_enum, default_value = "capabilities")]
    pub security: Security,
    /// Share the node's network namespace (needed to see pod interfaces). On by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub host_network: bool,
    /// Share the node's PID namespace.
    #[arg(long)]
    pub host_pid: bool,
    /// Mount the root filesystem read-only. On by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub read_only_root: bool,
    /// Secret (key `token`) holding the sensor-scoped API key.
    #[arg(long, default_value = "bulwark-sensor-token")]
    pub token_secret: String,
    /// ConfigMap (key `ca.pem`) holding the appliance's CA certificate; empty = the image's CAs.
    #[arg(long, default_value = "bulwark-ca")]
    pub ca_configmap: String,
    /// Proxy on the way to the appliance.
    #[arg(long)]
    pub https_proxy: Option<String>,
    /// Hosts reached without the proxy.
    #[arg(long)]
    pub no_proxy: Option<String>,
    /// Also a NetworkPolicy: the sensors may only reach the appliance's port and DNS (and be
    /// scraped on the metrics port, when there is one).
    #[arg(long)]
    pub network_policy: bool,
    /// Serve Prometheus metrics (kernel drops, pipeline counters) on this port, with the
    /// `prometheus.io/*` annotations scrapers look for.
    #[arg(long)]
    pub metrics_port: Option<u16>,
}

/// The objects, as one multi-document YAML stream.
pub fn manifest(a: &ManifestArgs) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(&a.server).map_err(|e| anyhow::anyhow!("--server: {e}"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| anyhow::anyhow!("--server: no port"))?;
    let labels =
        json!({"app.kubernetes.io/name": "bulwark-sensor", "app.kubernetes.io/part-of": "bulwark"});
    let security_context = match a.security {
        Security::Privileged => json!({
            "privileged": true,
            "readOnlyRootFilesystem": a.read_only_root,
        }),
        Security::Capabilities => json!({
            "privileged": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": a.read_only_root,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN", "BPF", "IPC_LOCK"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }),
    };
    let mut args = vec![
        "sensor".to_string(),
        "--interface".into(),
        a.interfaces.clone(),
        "--workers".into(),
        a.workers.max(1).to_string(),
        "--server".into(),
        a.server.clone(),
    ];
    if let Some(p) = a.metrics_port {
        args.push("--metrics-listen".into());
        args.push(format!("0.0.0.0:{p}"));
    }
    let mut env = vec![
        json!({"name": "BULWARK_SENSOR_TOKEN", "valueFrom": {"secretKeyRef": {"name": a.token_secret, "key": "token"}}}),
    ];
    if let Some(p) = &a.https_proxy {
        env.push(json!({"name": "HTTPS_PROXY", "value": p}));
    }
    if let Some(p) = &a.no_proxy {
        env.push(json!({"name": "NO_PROXY", "value": p}));
    }
    let mut mounts = vec![json!({"name": "tmp", "mountPath": "/tmp"})];
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})];
    if !a.ca_configmap.is_empty() {
        args.push("--server-ca".into());
        args.push("/etc/bulwark/ca.pem".into());
        mounts.push(json!({"name": "ca", "mountPath": "/etc/bulwark", "readOnly": true}));
        volumes.push(json!({"name": "ca", "configMap": {"name": a.ca_configmap}}));
    }
    let mut pod_spec = json!({
        "serviceAccountName": "bulwark-sensor",
        "automountServiceAccountToken": false,
        "hostNetwork": a.host_network,
        "hostPID": a.host_pid,
        "dnsPolicy": if a.host_network { "ClusterFirstWithHostNet" } else { "ClusterFirst" },
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
        "terminationGracePeriodSeconds": 30,
        "containers": [{
            "name": "sensor",
            "image": a.image,
            "args": args,
            "env": env,
            "securityContext": security_context,
            "resources": {
                "requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"memory": "256Mi"},
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    });
    let mut template_meta = json!({"labels": labels});
    if let Some(p) = a.metrics_port {
        pod_spec["containers"][0]["ports"] =
            json!([{"name": "metrics", "containerPort": p, "protocol": "TCP"}]);
        template_meta["annotations"] = json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": p.to_string(),
            "prometheus.io/path": "/metrics",
        });
    }
    if a.security == Security::Capabilities {
        // Capabilities apply to root in the container; everything else is dropped above.
        pod_spec["securityContext"] = json!({"runAsUser": 0, "runAsNonRoot": false});
    }
    let mut docs: Vec<Value> = vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "bulwark-sensor", "namespace": a.namespace, "labels": labels},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "bulwark-sensor", "namespace": a.namespace, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "bulwark-sensor"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
                "template": {"metadata": template_meta, "spec": pod_spec},
            },
        }),
    ];
    if a.network_policy {
        docs.push(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "bulwark-sensor", "namespace": a.namespace, "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "bulwark-sensor"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": match a.metrics_port {
                    Some(p) => json!([{"ports": [{"protocol": "TCP", "port": p}]}]),
                    None => json!([]),
                },
                "egress": [
                    {"ports": [{"protocol": "TCP", "port": port}]},
                    {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                ],
            },
        }));
    }
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&as_yaml_document(&d));
    }
    Ok(out)
}

/// JSON is YAML (flow style), which `kubectl apply` reads like any other YAML; writing it this
/// way needs no YAML serializer in the binary.
fn as_yaml_document(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Prints the manifest.
pub fn run(a: &ManifestArgs) -> anyhow::Result<i32> {
    print!("{}", manifest(a)?);
    Ok(0)
}
