//! The one module that talks to a Kubernetes API server (through kube-rs). Everything else in
//! Bulwark sees clusters through the store; this module only turns an [`Access`] into pages of
//! the API's own JSON, so the inventory parses exactly what `kubectl get pods -o json` gives.
//!
//! Kept narrow on purpose: the API server cannot run on the test machine, so the tests point
//! this module at an in-test HTTPS server speaking the same JSON and status shapes.

use std::time::Duration;

use futures_util::AsyncReadExt;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// How to reach a cluster's API server.
#[derive(Debug, Clone)]
pub enum Access {
    /// A kubeconfig (YAML), with the context to use (`None`: its current context).
    Kubeconfig {
        yaml: String,
        context: Option<String>,
    },
    /// The service account of the pod Bulwark runs in.
    InCluster,
}

/// Why the API server could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig cannot be used (syntax, missing context, unsupported auth).
    #[error("kubeconfig: {0}")]
    Config(String),
    /// Not running in a pod with a service account.
    #[error("in-cluster access: {0}")]
    InCluster(String),
    /// The API server answered with an error status.
    #[error("the API server answered {code} {reason}: {message}")]
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// No usable answer: connection, TLS, timeout, or a body that is not a list.
    #[error("the API server could not be read: {0}")]
    Transport(String),
    /// More than the caller accepts.
    #[error("{0}")]
    TooLarge(String),
}

impl KubeError {
    /// Whether a new list from the start can fix it (an expired continue token).
    fn is_expired(&self) -> bool {
        matches!(self, KubeError::Status { code: 410, .. })
    }
}

/// Pods asked for per page (the API server's own default chunk size for kubectl).
const PAGE: u32 = 500;
/// Largest page body read: 500 pods with their managed fields fit in a few MiB.
const MAX_PAGE_BYTES: u64 = 64 << 20;
/// A 410 (continue token expired, the list took too long) restarts the list this many times.
const RESTARTS: usize = 2;

/// The server URL a kubeconfig's chosen context points at (for display; not secret), or why
/// the kubeconfig cannot be used.
pub fn kubeconfig_server(yaml: &str, context: Option<&str>) -> Result<String, KubeError> {
    checked(yaml, context).map(|(_, server)| server)
}

/// The parsed kubeconfig and the server of its chosen context, once both are known to be
/// usable.
fn checked(yaml: &str, context: Option<&str>) -> Result<(Kubeconfig, String), KubeError> {
    let kc = Kubeconfig::from_yaml(yaml).map_err(|e| KubeError::Config(e.to_string()))?;
    let ctx_name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| KubeError::Config("no context given and no current-context".into()))?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| KubeError::Config(format!("context '{ctx_name}' is not in it")))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| KubeError::Config(format!("cluster '{}' is not in it", ctx.cluster)))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| KubeError::Config(format!("cluster '{}' has no server", ctx.cluster)))?;
    if !server.starts_with("https://") {
        return Err(KubeError::Config(format!(
            "server '{server}': the API server must be reached over https"
        )));
    }
    // Whoever may connect a cluster must not make the appliance run commands (exec and
    // auth-provider plugins) or read its files (paths where the data belongs).
    if cluster.certificate_authority.is_some() {
        return Err(KubeError::Config(format!(
            "cluster '{}': certificate-authority names a file on the appliance; embed it as certificate-authority-data",
            ctx.cluster
        )));
    }
    if let Some(name) = &ctx.user {
        let user = kc
            .auth_infos
            .iter()
            .find(|u| &u.name == name)
            .and_then(|u| u.auth_info.as_ref())
            .ok_or_else(|| KubeError::Config(format!("user '{name}' is not in it")))?;
        if user.exec.is_some() || user.auth_provider.is_some() {
            return Err(KubeError::Config(format!(
                "user '{name}': credential plugins (exec, auth-provider) would run commands on the appliance; give a token or a client certificate"
            )));
        }
        for (field, set) in [
            ("tokenFile", user.token_file.is_some()),
            ("client-certificate", user.client_certificate.is_some()),
            ("client-key", user.client_key.is_some()),
        ] {
            if set {
                return Err(KubeError::Config(format!(
                    "user '{name}': {field} names a file on the appliance; embed the data (token, client-certificate-data, client-key-data)"
                )));
            }
        }
    }
    Ok((kc, server))
}

async fn client(access: &Access) -> Result<kube::Client, KubeError> {
    let mut config = match access {
        Access::Kubeconfig { yaml, context } => {
            let (kc, _) = checked(yaml, context.as_deref())?;
            let options = KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| KubeError::Config(e.to_string()))?
        }
        Access::InCluster => {
            kube::Config::incluster().map_err(|e| KubeError::InCluster(e.to_string()))?
        }
    };
    // A sync must end: an API server that stops answering fails this run, the next run retries.
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(60));
    config.reset_reader_on_write = true;
    kube::Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))
}

fn from_kube(e: kube::Error) -> KubeError {
    match e {
        kube::Error::Api(s) => KubeError::Status {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        other => KubeError::Transport(other.to_string()),
    }
}

/// The parts of a list's metadata that paging needs.
#[derive(serde::Deserialize)]
struct ListHead {
    #[serde(default)]
    metadata: ListMeta,
}

#[derive(serde::Deserialize, Default)]
struct ListMeta {
    #[serde(default, rename = "continue")]
    next: Option<String>,
}

/// What [`list`] hands its caller.
pub enum Page<'a> {
    /// One page of the list: the API server's JSON (`PodList`, `DeploymentList`, ...).
    Items(&'a [u8]),
    /// The API server expired the continue token mid-list (410): the list starts again from
    /// the top, so drop what was gathered.
    Restart,
}

/// The collections the inventory lists, across all namespaces, by their API paths.
pub const PODS: &str = "/api/v1/pods";
pub const NAMESPACES: &str = "/api/v1/namespaces";
pub const DEPLOYMENTS: &str = "/apis/apps/v1/deployments";
pub const STATEFUL_SETS: &str = "/apis/apps/v1/statefulsets";
pub const DAEMON_SETS: &str = "/apis/apps/v1/daemonsets";
pub const REPLICA_SETS: &str = "/apis/apps/v1/replicasets";
pub const JOBS: &str = "/apis/batch/v1/jobs";
pub const CRON_JOBS: &str = "/apis/batch/v1/cronjobs";

/// A connected client, made once per sync and used for each of its lists.
pub struct Connection(kube::Client);

/// Connects to the cluster (no request is made yet).
pub async fn connect(access: &Access) -> Result<Connection, KubeError> {
    client(access).await.map(Connection)
}

/// Lists every object of the collection at `path` (one of the constants above), a page at a
/// time, handing each page to `on`. An error from `on` stops the list with that error.
pub async fn list<E: From<KubeError>>(
    conn: &Connection,
    path: &str,
    mut on: impl FnMut(Page<'_>) -> Result<(), E>,
) -> Result<usize, E> {
    let client = &conn.0;
    let request = kube::core::Request::new(path);
    let mut restarts = 0;
    'list: loop {
        let mut params = ListParams::default().limit(PAGE);
        let mut pages = 0;
        loop {
            let req = request
                .list(&params)
                .map_err(|e| KubeError::Transport(e.to_string()))?;
            let body = match fetch(client, req).await {
                Ok(b) => b,
                Err(e) if e.is_expired() && restarts < RESTARTS => {
                    restarts += 1;
                    on(Page::Restart)?;
                    continue 'list;
                }
                Err(e) => return Err(e.into()),
            };
            let head: ListHead = serde_json::from_slice(&body).map_err(|e| {
                KubeError::Transport(format!("the list at {path} is not JSON: {e}"))
            })?;
            on(Page::Items(&body))?;
            pages += 1;
            match head.metadata.next {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return Ok(pages),
            }
        }
    }
}

/// Where ValidatingWebhookConfigurations live.
const WEBHOOKS: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

fn object_request(
    method: http::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<http::Request<Vec<u8>>, KubeError> {
    let bytes = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| KubeError::Transport(e.to_string()))?,
        None => Vec::new(),
    };
    let mut req = http::Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    req.body(bytes)
        .map_err(|e| KubeError::Transport(e.to_string()))
}

async fn object_call(
    conn: &Connection,
    req: http::Request<Vec<u8>>,
) -> Result<serde_json::Value, KubeError> {
    let body = fetch(&conn.0, req).await?;
    serde_json::from_slice(&body)
        .map_err(|e| KubeError::Transport(format!("the answer is not JSON: {e}")))
}

/// The object `name` of `collection` (an API path such as [`WEBHOOKS`]), if the cluster has
/// it.
pub async fn get_object(
    conn: &Connection,
    collection: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, KubeError> {
    let req = object_request(http::Method::GET, &format!("{collection}/{name}"), None)?;
    match object_call(conn, req).await {
        Ok(v) => Ok(Some(v)),
        Err(KubeError::Status { code: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `object` in `collection`, or replaces the one of that name (optimistically, with
/// the resource version just read).
pub async fn apply_object(
    conn: &Connection,
    collection: &str,
    object: &serde_json::Value,
) -> Result<serde_json::Value, KubeError> {
    let name = object["metadata"]["name"]
        .as_str()
        .ok_or_else(|| KubeError::Transport("the object has no name".into()))?;
    match get_object(conn, collection, name).await? {
        None => {
            let req = object_request(http::Method::POST, collection, Some(object))?;
            object_call(conn, req).await
        }
        Some(existing) => {
            let mut replacement = object.clone();
            replacement["metadata"]["resourceVersion"] =
                existing["metadata"]["resourceVersion"].clone();
            let req = object_request(
                http::Method::PUT,
                &format!("{collection}/{name}"),
                Some(&replacement),
            )?;
            object_call(conn, req).await
        }
    }
}

/// Deletes the object `name` of `collection`; `false` when there was none.
pub async fn delete_object(
    conn: &Connection,
    collection: &str,
    name: &str,
) -> Result<bool, KubeError> {
    let req = object_request(http::Method::DELETE, &format!("{collection}/{name}"), None)?;
    match object_call(conn, req).await {
        Ok(_) => Ok(true),
        Err(KubeError::Status { code: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every object of `collection` with the label selector `selector` (one request; policy
/// objects are few). `None` when the collection does not exist (its CRD is not installed).
pub async fn list_labelled(
    conn: &Connection,
    collection: &str,
    selector: &str,
) -> Result<Option<Vec<serde_json::Value>>, KubeError> {
    let path = format!(
        "{collection}?labelSelector={}",
        url::form_urlencoded::byte_serialize(selector.as_bytes()).collect::<String>()
    );
    let req = object_request(http::Method::GET, &path, None)?;
    match object_call(conn, req).await {
        Ok(v) => Ok(Some(
            v.get("items")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default(),
        )),
        Err(KubeError::Status { code: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Gatekeeper's ConstraintTemplates.
pub const CONSTRAINT_TEMPLATES: &str = "/apis/templates.gatekeeper.sh/v1/constrainttemplates";

/// Where Gatekeeper serves the constraints of kind `kind` (a CRD it makes per template).
pub fn constraints_of(kind: &str) -> String {
    format!(
        "/apis/constraints.gatekeeper.sh/v1beta1/{}",
        kind.to_ascii_lowercase()
    )
}

/// The ValidatingWebhookConfiguration `name`, if the cluster has it.
pub async fn get_webhook(
    conn: &Connection,
    name: &str,
) -> Result<Option<serde_json::Value>, KubeError> {
    get_object(conn, WEBHOOKS, name).await
}

/// Creates or replaces the ValidatingWebhookConfiguration `object`.
pub async fn apply_webhook(
    conn: &Connection,
    object: &serde_json::Value,
) -> Result<serde_json::Value, KubeError> {
    apply_object(conn, WEBHOOKS, object).await
}

/// Deletes the ValidatingWebhookConfiguration `name`; `false` when there was none.
pub async fn delete_webhook(conn: &Connection, name: &str) -> Result<bool, KubeError> {
    delete_object(conn, WEBHOOKS, name).await
}

/// One request's body, read up to [`MAX_PAGE_BYTES`].
async fn fetch(client: &kube::Client, req: http::Request<Vec<u8>>) -> Result<Vec<u8>, KubeError> {
    let stream = client.request_stream(req).await.map_err(from_kube)?;
    let mut body = Vec::new();
    let mut limited = stream.take(MAX_PAGE_BYTES + 1);
    limited
        .read_to_end(&mut body)
        .await
        .map_err(|e| KubeError::Transport(e.to_string()))?;
    if body.len() as u64 > MAX_PAGE_BYTES {
        return Err(KubeError::TooLarge(format!(
            "an answer is over {} MiB",
            MAX_PAGE_BYTES >> 20
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: ""
- name: plain
  cluster:
    server: http://10.0.0.2:8080
- name: ca-on-disk
  cluster:
    server: https://10.0.0.3:6443
    certificate-authority: /etc/passwd
contexts:
- name: prod-reader
  context: {cluster: prod, user: reader}
- name: plain-reader
  context: {cluster: plain, user: reader}
- name: lost
  context: {cluster: gone, user: reader}
- name: by-plugin
  context: {cluster: prod, user: plugin}
- name: by-files
  context: {cluster: prod, user: files}
- name: ca-file
  context: {cluster: ca-on-disk, user: reader}
- name: nobody
  context: {cluster: prod, user: ghost}
current-context: prod-reader
users:
- name: reader
  user: {token: abc}
- name: plugin
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: /bin/sh, args: [-c, "id > /tmp/owned"]}
- name: files
  user: {client-certificate: /etc/bulwark/tls/cert.pem, client-key: /root/.ssh/id_ed25519}
"#;

    #[test]
    fn the_server_comes_from_the_chosen_context() {
        assert_eq!(
            kubeconfig_server(KUBECONFIG, None).unwrap(),
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            kubeconfig_server(KUBECONFIG, Some("prod-reader")).unwrap(),
            "https://10.0.0.1:6443"
        );
        let e = kubeconfig_server(KUBECONFIG, Some("plain-reader")).unwrap_err();
        assert!(e.to_string().contains("over https"), "{e}");
        let e = kubeconfig_server(KUBECONFIG, Some("nope")).unwrap_err();
        assert!(e.to_string().contains("context 'nope'"), "{e}");
        let e = kubeconfig_server(KUBECONFIG, Some("lost")).unwrap_err();
        assert!(e.to_string().contains("cluster 'gone'"), "{e}");
        // Nothing that would run a command or read a file on the appliance.
        for (ctx, says) in [
            ("by-plugin", "credential plugins"),
            ("by-files", "client-certificate names a file"),
            ("ca-file", "certificate-authority names a file"),
            ("nobody", "user 'ghost' is not in it"),
        ] {
            let e = kubeconfig_server(KUBECONFIG, Some(ctx)).unwrap_err();
            assert!(e.to_string().contains(says), "{ctx}: {e}");
        }
        assert!(kubeconfig_server("clusters: [", None).is_err());
        assert!(kubeconfig_server("{}", None)
            .unwrap_err()
            .to_string()
            .contains("no current-context"));
    }
}
