//! The live inventory: a cluster connected to its API server through a kubeconfig has its pods
//! listed (paged, with the continue token, restarting when the API server expires it) by
//! `POST …/kubernetes/sync` and the `kube-sync` job. The API server is an in-test HTTPS server
//! speaking the real JSON: its pods are copies of a pod captured from a minikube cluster
//! (tests/fixtures/kube), its errors are `Status` objects with the API server's codes.
//! Wrong credentials, garbage and an unreachable server fail the sync and lose nothing.

use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, finished_run, Caller, InProcess};

/// What the fake API server serves and how it misbehaves.
#[derive(Default)]
pub(crate) struct ApiState {
    pub token: String,
    pub pods: Vec<Value>,
    /// Other collections by path (`/apis/apps/v1/deployments`, ...): their items. A path
    /// holding `None` answers 403 Forbidden, as to a role that does not grant it.
    pub objects: std::collections::HashMap<String, Option<Vec<Value>>>,
    /// ValidatingWebhookConfigurations by name, as the API server stores them.
    pub webhooks: std::collections::BTreeMap<String, Value>,
    /// Writes of webhook configurations are forbidden (a reader-only token).
    pub webhooks_forbidden: bool,
    /// Gatekeeper is installed (its ConstraintTemplate API exists).
    pub gatekeeper: bool,
    /// Gatekeeper objects by path (`{collection}/{name}`).
    pub gatekeeper_objects: std::collections::BTreeMap<String, Value>,
    /// The next request with a continue token gets 410 Expired.
    expire_next_continue: bool,
    /// Answer 200 with a body that is not JSON.
    garbage: bool,
    /// The query string of every pod-list request.
    requests: Vec<String>,
}

/// A pod as the API server lists it: the fixture pod, renamed, re-addressed and re-owned.
pub(crate) fn pod(ns: &str, name: &str, owner: Option<(&str, &str)>, ip: &str) -> Value {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/kube/minikube-pods.json")).expect("fixture");
    let mut p = fixture["items"][0].clone();
    // Items of a list from the API server carry no kind or apiVersion of their own.
    let obj = p.as_object_mut().unwrap();
    obj.remove("kind");
    obj.remove("apiVersion");
    p["metadata"]["name"] = json!(name);
    p["metadata"]["namespace"] = json!(ns);
    p["metadata"]["generateName"] =
        json!(format!("{}-", name.rsplit_once('-').map_or(name, |x| x.0)));
    match owner {
        Some((kind, owner_name)) => {
            p["metadata"]["ownerReferences"][0]["kind"] = json!(kind);
            p["metadata"]["ownerReferences"][0]["name"] = json!(owner_name);
            if kind == "ReplicaSet" {
                let hash = owner_name.rsplit('-').next().unwrap();
                p["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            }
        }
        None => {
            p["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("ownerReferences");
        }
    }
    p["status"]["podIP"] = json!(ip);
    p["status"]["podIPs"] = json!([{ "ip": ip }]);
    p
}

/// The digest the database pods run (pulled by containerd: `imageID` is `repo@digest`).
pub(crate) const DB_DIGEST: &str =
    "sha256:5f0c1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";

pub(crate) fn with_image(mut p: Value) -> Value {
    p["spec"]["containers"][0]["image"] = json!("registry.local/shop/db:15");
    let status = &mut p["status"]["containerStatuses"][0];
    status["image"] = json!("registry.local/shop/db:15");
    status["imageID"] = json!(format!("registry.local/shop/db@{DB_DIGEST}"));
    p
}

pub(crate) fn cluster_pods() -> Vec<Value> {
    let mut host = pod(
        "kube-system",
        "kube-proxy-x7k2p",
        Some(("DaemonSet", "kube-proxy")),
        "192.168.49.2",
    );
    host["spec"]["hostNetwork"] = json!(true);
    let mut done = pod(
        "batch",
        "report-28190-abcde",
        Some(("Job", "report-28190")),
        "10.244.3.40",
    );
    done["status"]["phase"] = json!("Succeeded");
    vec![
        pod(
            "shop",
            "checkout-7d4b9c-aaaaa",
            Some(("ReplicaSet", "checkout-7d4b9c")),
            "10.244.1.10",
        ),
        pod(
            "shop",
            "checkout-7d4b9c-bbbbb",
            Some(("ReplicaSet", "checkout-7d4b9c")),
            "10.244.1.11",
        ),
        host,
        pod(
            "shop",
            "checkout-7d4b9c-ccccc",
            Some(("ReplicaSet", "checkout-7d4b9c")),
            "10.244.1.12",
        ),
        with_image(pod(
            "shop",
            "db-0",
            Some(("StatefulSet", "db")),
            "10.244.2.20",
        )),
        done,
        with_image(pod(
            "shop",
            "db-1",
            Some(("StatefulSet", "db")),
            "10.244.2.21",
        )),
        pod("default", "debug", None, "10.244.3.30"),
    ]
}

fn status(code: u16, reason: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
        .content_type("application/json")
        .json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message, "reason": reason, "code": code}),
        )
}

/// `GET /api/v1/pods` as the API server pages it: at most 3 pods a page whatever the limit,
/// `metadata.continue` naming the next offset.
async fn list_pods(state: web::Data<Arc<Mutex<ApiState>>>, req: HttpRequest) -> HttpResponse {
    let mut st = state.lock().unwrap();
    st.requests.push(req.query_string().to_string());
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", st.token) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    if st.garbage {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body("<html>proxy error</html>");
    }
    let query: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit: usize = get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX);
    let start: usize = match get("continue") {
        Some(c) => {
            if st.expire_next_continue {
                st.expire_next_continue = false;
                return status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.");
            }
            c.strip_prefix("offset-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        }
        None => 0,
    };
    let end = (start + limit.min(3)).min(st.pods.len());
    let mut metadata = json!({"resourceVersion": "550100"});
    if end < st.pods.len() {
        metadata["continue"] = json!(format!("offset-{end}"));
        metadata["remainingItemCount"] = json!(st.pods.len() - end);
    }
    HttpResponse::Ok().json(json!({
        "kind": "PodList", "apiVersion": "v1", "metadata": metadata,
        "items": st.pods[start..end].to_vec(),
    }))
}

/// `GET` of any other collection the state holds, paged like the pods (all on one page here).
async fn list_objects(state: web::Data<Arc<Mutex<ApiState>>>, req: HttpRequest) -> HttpResponse {
    let st = state.lock().unwrap();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", st.token) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let path = req.path().to_string();
    let resource = path.rsplit('/').next().unwrap_or("");
    match st.objects.get(&path) {
        None => status(404, "NotFound", "the server could not find the requested resource"),
        Some(None) => status(
            403,
            "Forbidden",
            &format!("{resource} is forbidden: User \"system:serviceaccount:bulwark:bulwark-reader\" cannot list resource \"{resource}\" at the cluster scope"),
        ),
        Some(Some(items)) => {
            let kind = match resource {
                "namespaces" => "NamespaceList",
                "deployments" => "DeploymentList",
                "statefulsets" => "StatefulSetList",
                "daemonsets" => "DaemonSetList",
                "replicasets" => "ReplicaSetList",
                "jobs" => "JobList",
                "cronjobs" => "CronJobList",
                _ => "List",
            };
            HttpResponse::Ok().json(json!({"kind": kind, "apiVersion": "v1",
                "metadata": {"resourceVersion": "550100"}, "items": items}))
        }
    }
}

/// `GET/POST/PUT/DELETE` of ValidatingWebhookConfigurations, with resource versions and the
/// API server's conflict, not-found and forbidden statuses.
async fn webhook_objects(
    state: web::Data<Arc<Mutex<ApiState>>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let mut st = state.lock().unwrap();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", st.token) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let name = req.match_info().get("name").map(str::to_string);
    let method = req.method().as_str().to_string();
    if method != "GET" && st.webhooks_forbidden {
        return status(
            403,
            "Forbidden",
            "validatingwebhookconfigurations.admissionregistration.k8s.io is forbidden",
        );
    }
    let not_found = |n: &str| {
        status(
            404,
            "NotFound",
            &format!(
                "validatingwebhookconfigurations.admissionregistration.k8s.io \"{n}\" not found"
            ),
        )
    };
    match (method.as_str(), name) {
        ("GET", Some(n)) => match st.webhooks.get(&n) {
            Some(v) => HttpResponse::Ok().json(v),
            None => not_found(&n),
        },
        ("POST", None) => {
            let mut v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let n = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            if st.webhooks.contains_key(&n) {
                return status(409, "AlreadyExists", "already exists");
            }
            v["metadata"]["resourceVersion"] = json!("1");
            v["metadata"]["uid"] = json!("7c1d2e3f");
            // The API server fills in defaults the request left out.
            v["webhooks"][0]["objectSelector"] = json!({});
            st.webhooks.insert(n, v.clone());
            HttpResponse::Created().json(v)
        }
        ("PUT", Some(n)) => {
            let mut v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let Some(old) = st.webhooks.get(&n) else {
                return not_found(&n);
            };
            if v["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                return status(409, "Conflict", "the object has been modified");
            }
            let next: u64 = old["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                + 1;
            v["metadata"]["resourceVersion"] = json!(next.to_string());
            st.webhooks.insert(n, v.clone());
            HttpResponse::Ok().json(v)
        }
        ("DELETE", Some(n)) => match st.webhooks.remove(&n) {
            Some(_) => HttpResponse::Ok().json(json!({"kind": "Status", "status": "Success"})),
            None => not_found(&n),
        },
        _ => status(405, "MethodNotAllowed", "method not allowed"),
    }
}

const TEMPLATES: &str = "/apis/templates.gatekeeper.sh/v1/constrainttemplates";
const CONSTRAINTS: &str = "/apis/constraints.gatekeeper.sh/v1beta1/";

/// Gatekeeper's API: ConstraintTemplates, and constraints under a resource per template kind
/// that exists only once its template does (Gatekeeper makes the CRD); lists honour a
/// `key=value` label selector.
async fn gatekeeper_objects(
    state: web::Data<Arc<Mutex<ApiState>>>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let mut st = state.lock().unwrap();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if bearer != format!("Bearer {}", st.token) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let path = req.path().trim_end_matches('/').to_string();
    if !st.gatekeeper {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    let (collection, name) = if path == TEMPLATES {
        (path.clone(), None)
    } else if let Some(n) = path.strip_prefix(&format!("{TEMPLATES}/")) {
        (TEMPLATES.to_string(), Some(n.to_string()))
    } else {
        let rest = path.strip_prefix(CONSTRAINTS).unwrap_or("");
        let (resource, name) = match rest.split_once('/') {
            Some((r, n)) => (r.to_string(), Some(n.to_string())),
            None => (rest.to_string(), None),
        };
        // The constraint resource exists once a template of that kind does.
        if !st
            .gatekeeper_objects
            .contains_key(&format!("{TEMPLATES}/{resource}"))
        {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
        (format!("{CONSTRAINTS}{resource}"), name)
    };
    let method = req.method().as_str().to_string();
    let not_found = |n: &str| status(404, "NotFound", &format!("\"{n}\" not found"));
    match (method.as_str(), name) {
        ("GET", None) => {
            let selector: Vec<(String, String)> =
                url::form_urlencoded::parse(req.query_string().as_bytes())
                    .filter(|(k, _)| k == "labelSelector")
                    .filter_map(|(_, v)| {
                        v.split_once('=')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                    })
                    .collect();
            let items: Vec<Value> = st
                .gatekeeper_objects
                .iter()
                .filter(|(k, _)| k.rsplit_once('/').map(|(c, _)| c) == Some(collection.as_str()))
                .map(|(_, v)| v.clone())
                .filter(|v| {
                    selector
                        .iter()
                        .all(|(k, val)| v["metadata"]["labels"][k] == json!(val))
                })
                .collect();
            HttpResponse::Ok()
                .json(json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}))
        }
        ("GET", Some(n)) => match st.gatekeeper_objects.get(&format!("{collection}/{n}")) {
            Some(v) => HttpResponse::Ok().json(v),
            None => not_found(&n),
        },
        ("POST", None) => {
            let mut v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let n = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            let key = format!("{collection}/{n}");
            if st.gatekeeper_objects.contains_key(&key) {
                return status(409, "AlreadyExists", "already exists");
            }
            v["metadata"]["resourceVersion"] = json!("1");
            // What Gatekeeper adds: a status.
            v["status"] = json!({"created": true});
            st.gatekeeper_objects.insert(key, v.clone());
            HttpResponse::Created().json(v)
        }
        ("PUT", Some(n)) => {
            let mut v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let key = format!("{collection}/{n}");
            let Some(old) = st.gatekeeper_objects.get(&key) else {
                return not_found(&n);
            };
            if v["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                return status(409, "Conflict", "the object has been modified");
            }
            let next = old["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                + 1;
            v["metadata"]["resourceVersion"] = json!(next.to_string());
            v["status"] = json!({"created": true});
            st.gatekeeper_objects.insert(key, v.clone());
            HttpResponse::Ok().json(v)
        }
        ("DELETE", Some(n)) => match st.gatekeeper_objects.remove(&format!("{collection}/{n}")) {
            Some(_) => HttpResponse::Ok().json(json!({"kind": "Status", "status": "Success"})),
            None => not_found(&n),
        },
        _ => status(405, "MethodNotAllowed", "method not allowed"),
    }
}

/// The fake API server on its own thread: its URL, its CA (PEM) and its state.
pub(crate) fn api_server() -> (
    String,
    String,
    Arc<Mutex<ApiState>>,
    actix_web::dev::ServerHandle,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "minikubeCA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    )
    .unwrap();
    let state = Arc::new(Mutex::new(ApiState {
        token: "reader-token-1".into(),
        pods: cluster_pods(),
        ..Default::default()
    }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let data = state.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(web::Data::new(data.clone()))
                    .route("/api/v1/pods", web::get().to(list_pods))
                    .route(
                        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
                        web::post().to(webhook_objects),
                    )
                    .route(
                        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/{name}",
                        web::route().to(webhook_objects),
                    )
                    .route("/apis/templates.gatekeeper.sh/{tail:.*}", web::route().to(gatekeeper_objects))
                    .route("/apis/constraints.gatekeeper.sh/{tail:.*}", web::route().to(gatekeeper_objects))
                    .default_service(web::get().to(list_objects))
            })
            .workers(1)
            .listen_rustls_0_23(listener, tls)
            .unwrap()
            .run();
            tx.send(server.handle()).unwrap();
            let _ = server.await;
        })
    });
    (url, ca.pem(), state, rx.recv().unwrap())
}

pub(crate) fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: minikube\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: bulwark-reader\n  context:\n    cluster: minikube\n    user: bulwark-reader\n    namespace: default\ncurrent-context: bulwark-reader\nusers:\n- name: bulwark-reader\n  user:\n    token: {token}\n"
    )
}

#[actix_web::test]
async fn a_connected_cluster_syncs_its_pods_from_the_api_server() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let reader = t.key(admin, &[Scope::Read]);
    let sensor = t.key(admin, &[Scope::Sensor]);
    let app = t.service().await;
    let (server, ca, api, handle) = api_server();

    let (s, c, _) = call(
        &app,
        Caller::bearer(&writer).post("/api/v1/clusters", json!({"name": "minikube"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let kube_uri = format!("/api/v1/clusters/{id}/kubernetes");
    let sync_uri = format!("{kube_uri}/sync");
    let pods_uri = format!("/api/v1/clusters/{id}/pods");

    // Not connected yet.
    let (s, v, _) = call(&app, Caller::bearer(&reader).get(&kube_uri)).await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no Kubernetes connection"),
        "{v}"
    );
    let (s, _, _) = call(&app, Caller::bearer(&writer).post(&sync_uri, json!({}))).await;
    assert_eq!(s, 404);

    // Kubeconfigs that cannot work are refused, saying why.
    for (body, says) in [
        (json!({"kubeconfig": "clusters: ["}), "kubeconfig"),
        (
            json!({"kubeconfig": kubeconfig(&server.replace("https", "http"), &ca, "t")}),
            "over https",
        ),
        (
            json!({"kubeconfig": kubeconfig(&server, &ca, "t"), "context": "admin@prod"}),
            "context 'admin@prod'",
        ),
        (
            json!({"kubeconfig": kubeconfig(&server, &ca, "t"), "in_cluster": true}),
            "not both",
        ),
        (
            json!({"kubeconfig": kubeconfig(&server, &ca, "t").replace(
                "    token: t\n",
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /bin/sh\n      args: [-c, touch /tmp/bulwark-owned]\n",
            )}),
            "credential plugins",
        ),
        (json!({}), "kubeconfig"),
        (
            json!({"kubeconfig": "x".repeat(300 * 1024)}),
            "at most 256 KiB",
        ),
        (json!({"kubeconfig": 7}), "invalid type"),
        (json!({"kubeconfg": "x"}), "kubeconfg"),
    ] {
        let (s, v, _) = call(&app, Caller::bearer(&writer).put(&kube_uri, body.clone())).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v.to_string().contains(says), "{says}: {v}");
    }
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).put(
            &kube_uri,
            json!({"kubeconfig": kubeconfig(&server, &ca, "reader-token-1")}),
        ),
    )
    .await;
    assert_eq!(s, 403, "readers cannot connect clusters");

    // Connect: the view names the server, never the kubeconfig or its token, and the token is
    // sealed at rest.
    let (s, v, _) = call(
        &app,
        Caller::bearer(&writer).put(
            &kube_uri,
            json!({"kubeconfig": kubeconfig(&server, &ca, "reader-token-1")}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"], server.as_str());
    assert_eq!(v["source"], "kubeconfig");
    assert!(v["last_sync"].is_null());
    assert!(!v.to_string().contains("reader-token-1"));
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&kube_uri)).await;
    assert!(!v.to_string().contains("reader-token-1") && !v.to_string().contains("certificate"));
    let db = std::fs::read(t._dir.path().join("data/bulwark.redb")).unwrap();
    assert!(
        !db.windows(14).any(|w| w == b"reader-token-1"),
        "the kubeconfig's token is sealed in the store"
    );

    // Sync: three pages (the server pages by 3), asked for 500 at a time; host-network and
    // finished pods left out; replicas named by their Deployment.
    let (s, r, _) = call(&app, Caller::bearer(&writer).post(&sync_uri, json!({}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (
            r["recorded"].as_u64(),
            r["skipped"].as_u64(),
            r["workloads"].as_u64()
        ),
        (Some(6), Some(2), Some(3)),
        "{r}"
    );
    {
        let st = api.lock().unwrap();
        assert_eq!(st.requests.len(), 3, "{:?}", st.requests);
        assert!(
            st.requests.iter().all(|q| q.contains("limit=500")),
            "{:?}",
            st.requests
        );
        assert!(
            st.requests[1].contains("continue=offset-3")
                && st.requests[2].contains("continue=offset-6"),
            "{:?}",
            st.requests
        );
    }
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
    let mut labels: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}/{}/{}",
                p["ip"].as_str().unwrap(),
                p["namespace"].as_str().unwrap(),
                p["kind"].as_str().unwrap(),
                p["workload"].as_str().unwrap()
            )
        })
        .collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            "10.244.1.10 shop/Deployment/checkout",
            "10.244.1.11 shop/Deployment/checkout",
            "10.244.1.12 shop/Deployment/checkout",
            "10.244.2.20 shop/StatefulSet/db",
            "10.244.2.21 shop/StatefulSet/db",
            "10.244.3.30 default/Pod/debug",
        ]
    );
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&kube_uri)).await;
    assert_eq!(v["last_sync"]["ok"], true, "{v}");
    assert_eq!(v["last_sync"]["pods"], 6, "{v}");

    // The images the pods run are seen in the cluster, by the digest the kubelet pulled, and
    // queued for the native scanner (once).
    assert_eq!(
        (r["images"].as_u64(), r["queued_for_scan"].as_u64()),
        (Some(2), Some(2)),
        "{r}"
    );
    let (_, v, _) = call(
        &app,
        Caller::bearer(&reader).get("/api/v1/images?cluster=minikube"),
    )
    .await;
    let mut seen: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}@{}",
                i["registry"].as_str().unwrap(),
                i["repository"].as_str().unwrap(),
                i["digest"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "gcr.io/kuar-demo/kuard-amd64@sha256:bd17153e9a3319f401acc7a27759243f37d422c06cbbf01cb3e1f54bbbfe14f4".to_string(),
            format!("registry.local/shop/db@{DB_DIGEST}"),
        ]
    );
    assert!(
        v.to_string().contains("running in the cluster"),
        "queued: {v}"
    );
    let (_, q, _) = call(&app, Caller::bearer(&reader).get("/api/v1/images/queue")).await;
    assert_eq!(q["images"].as_array().unwrap().len(), 2, "{q}");

    // The data map names the workload behind a synced address.
    let event = json!({"source": "10.244.1.11", "destination": "10.244.2.20", "method": "POST",
        "endpoint": "/v1/orders", "direction": "request", "host": "db", "data_types": ["pii.email"],
        "counts": {"pii.email": 1}, "sensitivity": "Medium", "samples": {"pii.email": "***@*****.***"},
        "exchanges": 1, "first_seen": 1_790_000_000.0, "last_seen": 1_790_000_000.0});
    let (s, v, _) = call(
        &app,
        Caller::bearer(&sensor)
            .post("/api/v1/sensor/events", json!({}))
            .insert_header(("content-type", "application/x-ndjson"))
            .set_payload(event.to_string()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v, _) = call(&app, Caller::bearer(&reader).get("/api/v1/datamap")).await;
    assert_eq!(v["items"][0]["source"], "shop/Deployment/checkout", "{v}");
    assert_eq!(v["items"][0]["destination"], "shop/StatefulSet/db", "{v}");

    // The API server expires the continue token mid-list: the list starts again and the
    // result is whole.
    api.lock().unwrap().requests.clear();
    api.lock().unwrap().expire_next_continue = true;
    let (s, r, _) = call(&app, Caller::bearer(&writer).post(&sync_uri, json!({}))).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["recorded"], 6, "{r}");
    assert_eq!(r["queued_for_scan"], 0, "already queued: {r}");
    assert_eq!(
        api.lock().unwrap().requests.len(),
        5,
        "2 before the 410, 3 after"
    );

    // The cluster changes; the scheduled job (run now) picks it up.
    {
        let mut st = api.lock().unwrap();
        st.pods.retain(|p| p["metadata"]["name"] != "debug");
        st.pods.push(pod(
            "shop",
            "checkout-7d4b9c-ddddd",
            Some(("ReplicaSet", "checkout-7d4b9c")),
            "10.244.1.13",
        ));
    }
    // Jobs are run by hand by super-admins.
    let root_key = t.key(
        t.user("root@example.com", Role::SuperAdmin),
        &[Scope::Admin],
    );
    let run_job = || {
        Caller::bearer(&root_key)
            .post("/api/v1/jobs/kube-sync/run", json!({}))
            .insert_header(("content-type", "application/json"))
    };
    let job = || Caller::bearer(&root_key).get("/api/v1/jobs/kube-sync");
    let (s, v, _) = call(&app, run_job()).await;
    assert_eq!(s, 202, "run now answers at once: {v}");
    let run = finished_run(&app, job, None).await;
    assert_eq!(run["ok"], true, "{run}");
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains(&format!("cluster {id}: 6 pods")),
        "{run}"
    );
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
    let ips: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ip"].as_str().unwrap())
        .collect();
    assert!(
        ips.contains(&"10.244.1.13") && !ips.contains(&"10.244.3.30"),
        "{ips:?}"
    );

    // Wrong credentials, a body that is not JSON, an unreachable server: 502 saying why, the
    // failure recorded, the inventory untouched.
    for (says, rotated_token, garbage) in [
        ("401 Unauthorized", "rotated", false),
        ("not JSON", "reader-token-1", true),
    ] {
        {
            let mut st = api.lock().unwrap();
            st.token = rotated_token.into();
            st.garbage = garbage;
        }
        let (s, v, _) = call(&app, Caller::bearer(&writer).post(&sync_uri, json!({}))).await;
        assert_eq!(s, 502, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{says}: {v}"
        );
        let (_, link, _) = call(&app, Caller::bearer(&reader).get(&kube_uri)).await;
        assert_eq!(link["last_sync"]["ok"], false, "{link}");
        assert!(
            link["last_sync"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{link}"
        );
        let (_, v, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
        assert_eq!(
            v["items"].as_array().unwrap().len(),
            6,
            "the inventory stays: {v}"
        );
    }
    handle.stop(false).await;
    let before = run["id"].as_u64();
    let (s, v, _) = call(&app, run_job()).await;
    assert_eq!(s, 202, "{v}");
    let run = finished_run(&app, job, before).await;
    assert_eq!(run["ok"], false, "{run}");
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("could not be read"),
        "{run}"
    );
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 6);

    // In-cluster access outside a pod: stored, and the sync says what is missing.
    let (s, v, _) = call(
        &app,
        Caller::bearer(&writer).put(&kube_uri, json!({"in_cluster": true})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["source"], "in-cluster");
    let (s, v, _) = call(&app, Caller::bearer(&writer).post(&sync_uri, json!({}))).await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in-cluster"),
        "{v}"
    );

    // Disconnecting keeps the inventory; deleting the cluster forgets the connection too.
    let (s, _, _) = call(&app, Caller::bearer(&writer).delete(&kube_uri)).await;
    assert_eq!(s, 204);
    let (s, _, _) = call(&app, Caller::bearer(&reader).get(&kube_uri)).await;
    assert_eq!(s, 404);
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&pods_uri)).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 6);
    let (s, _, _) = call(
        &app,
        Caller::bearer(&writer).put(&kube_uri, json!({"in_cluster": true})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, _) = call(
        &app,
        Caller::bearer(&writer).delete(&format!("/api/v1/clusters/{id}")),
    )
    .await;
    assert!(s == 200 || s == 204, "{s}");
    assert!(bulwark::clusters::sync::links(t.store())
        .unwrap()
        .is_empty());
}

/// The RBAC docs/detection.md asks operators to apply grants reading pods and nothing else, to
/// the ServiceAccount whose token the kubeconfig carries.
#[test]
fn the_reader_manifest_grants_only_inventory_reads() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/kube/bulwark-reader.yaml"
    ))
    .unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let of = |kind: &str| {
        let found: Vec<&serde_yaml::Value> = docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect();
        assert_eq!(found.len(), 1, "one {kind}");
        found[0].clone()
    };
    let role = of("ClusterRole");
    let rules = role["rules"].as_sequence().unwrap();
    let list = |v: &serde_yaml::Value| -> Vec<String> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    // Reads of what the inventory lists, and nothing else: no secrets, no writes.
    let granted: Vec<(String, Vec<String>, Vec<String>)> = rules
        .iter()
        .map(|r| {
            (
                list(&r["apiGroups"]).join(","),
                list(&r["resources"]),
                list(&r["verbs"]),
            )
        })
        .collect();
    let reads = vec!["get".to_string(), "list".into(), "watch".into()];
    assert_eq!(
        granted,
        [
            (
                "".to_string(),
                vec!["pods".to_string(), "namespaces".into()],
                reads.clone()
            ),
            (
                "apps".to_string(),
                vec![
                    "deployments".to_string(),
                    "replicasets".into(),
                    "statefulsets".into(),
                    "daemonsets".into()
                ],
                reads.clone()
            ),
            (
                "batch".to_string(),
                vec!["jobs".to_string(), "cronjobs".into()],
                reads
            ),
        ]
    );
    let sa = of("ServiceAccount");
    let binding = of("ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
    assert_eq!(
        binding["subjects"][0]["namespace"],
        sa["metadata"]["namespace"]
    );
    let secret = of("Secret");
    assert_eq!(
        secret["type"].as_str(),
        Some("kubernetes.io/service-account-token")
    );
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        sa["metadata"]["name"]
    );
}

/// The cluster page connects, syncs and disconnects through forms; a refused kubeconfig shows
/// the page again with why, and neither the page nor the error ever shows the kubeconfig.
#[actix_web::test]
async fn the_cluster_page_manages_the_connection() {
    use actix_web::test;
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let (admin, csrf) = t.session("admin@example.com");
    let (viewer, _) = t.session("viewer@example.com");
    let app = t.service().await;
    let (server, ca, _api, _handle) = api_server();
    let id = bulwark::clusters::create(
        t.store(),
        "test",
        "127.0.0.1",
        bulwark::clusters::NewCluster {
            name: "minikube".into(),
            ..Default::default()
        },
    )
    .unwrap()
    .id;
    let post = |path: String, body: String| Caller::session(&admin).form(&path, body);
    let page =
        |token: &str, query: &str| Caller::session(token).get(&format!("/clusters/{id}{query}"));
    let text = |b: actix_web::web::Bytes| String::from_utf8(b.to_vec()).unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    let body = text(test::call_and_read_body(&app, page(&admin, "").to_request()).await);
    assert!(
        body.contains("Not connected") && body.contains("kube-form"),
        "{body}"
    );

    // A kubeconfig over plain HTTP: refused, said why, not echoed.
    let plain = kubeconfig(&server.replace("https", "http"), &ca, "page-token-1");
    let res = test::call_service(
        &app,
        post(
            format!("/clusters/{id}/kubernetes"),
            format!("csrf={csrf}&kubeconfig={}&context=", enc(&plain)),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 400);
    let body = text(test::read_body(res).await);
    assert!(
        body.contains("over https") && !body.contains("page-token-1"),
        "{body}"
    );

    // Connect, sync now, see it on the page.
    let good = kubeconfig(&server, &ca, "reader-token-1");
    let res = test::call_service(
        &app,
        post(
            format!("/clusters/{id}/kubernetes"),
            format!(
                "csrf={csrf}&kubeconfig={}&context=bulwark-reader",
                enc(&good)
            ),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 303);
    let res = test::call_service(
        &app,
        post(
            format!("/clusters/{id}/kubernetes/sync"),
            format!("csrf={csrf}"),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 303);
    let to = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(to, format!("/clusters/{id}"));
    let flashed = text(test::call_and_read_body(&app, page(&admin, "").to_request()).await);
    assert!(
        flashed.contains("Synced"),
        "the outcome is the next page's flash"
    );
    let body = text(test::call_and_read_body(&app, page(&viewer, "").to_request()).await);
    assert!(
        body.contains(&server) && body.contains("6 pod addresses"),
        "{body}"
    );
    assert!(
        body.contains("bulwark-reader") && body.contains("id=\"last-sync\""),
        "{body}"
    );
    assert!(
        !body.contains("reader-token-1") && !body.contains("kube-form"),
        "readers get no form"
    );
    assert!(!body.contains("Sync now"), "readers cannot sync");

    // Disconnect.
    let res = test::call_service(
        &app,
        post(
            format!("/clusters/{id}/kubernetes/delete"),
            format!("csrf={csrf}"),
        )
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), 303);
    let body = text(test::call_and_read_body(&app, page(&admin, "").to_request()).await);
    assert!(
        body.contains("Not connected") && body.contains("6 pod addresses"),
        "{body}"
    );
}
