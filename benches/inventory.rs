//! Workload inventory benchmarks. Prints figures; asserts nothing.
//!
//!     cargo bench --bench inventory
//!
//! An in-bench HTTPS API server serves 10,000 pods (copies of the minikube fixture pod, 20 per
//! Deployment, 500 Deployments with their ReplicaSets over 50 namespaces), paged 500 at a time
//! as the API server pages them. 300 images with 20 findings each are seeded; every Deployment
//! runs one of them, by digest.
//! 1. Reference: fetching every page of the pod list with a plain HTTP client.
//! 2. A full sync through the library (every collection listed, parsed, owners resolved, the
//!    inventory and the pod addresses replaced in one transaction). Target: < 10 s.
//! 3. Pod compliance of the 10,000 pods recomputed after a policy change (the snapshot refresh
//!    included). Target: < 1 s.

mod common;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde_json::{json, Value};

const PODS: usize = 10_000;
const PER_DEPLOYMENT: usize = 20;
const NAMESPACES: usize = 50;
const IMAGES: usize = 300;
const PAGE: usize = 500;

struct Served {
    pods: Vec<Value>,
    deployments: Vec<Value>,
    replica_sets: Vec<Value>,
    namespaces: Vec<Value>,
}

fn digest(k: usize) -> String {
    format!("sha256:{:064x}", k as u128 * 7919 + 1)
}

fn cluster() -> Served {
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/fixtures/kube/minikube-pods.json")).unwrap();
    let template = fixture["items"][0].clone();
    let mut pods = Vec::with_capacity(PODS);
    let mut deployments = Vec::new();
    let mut replica_sets = Vec::new();
    for d in 0..PODS / PER_DEPLOYMENT {
        let ns = format!("ns{}", d % NAMESPACES);
        let k = d % IMAGES;
        let image = format!("registry.local/team{}/app{k}:1.{}", k % 50, k % 7);
        let repo = format!("registry.local/team{}/app{k}", k % 50);
        let hash = format!("{:x}", 0x5f00 + d);
        deployments.push(json!({"metadata": {"name": format!("app{d}"), "namespace": ns},
            "spec": {"replicas": PER_DEPLOYMENT, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"readyReplicas": PER_DEPLOYMENT}}));
        replica_sets.push(json!({"metadata": {"name": format!("app{d}-{hash}"), "namespace": ns,
            "ownerReferences": [{"kind": "Deployment", "name": format!("app{d}"), "controller": true}]},
            "spec": {"replicas": PER_DEPLOYMENT}}));
        for r in 0..PER_DEPLOYMENT {
            let i = d * PER_DEPLOYMENT + r;
            let mut p = template.clone();
            let o = p.as_object_mut().unwrap();
            o.remove("kind");
            o.remove("apiVersion");
            p["metadata"]["name"] = json!(format!("app{d}-{hash}-{r:05}"));
            p["metadata"]["namespace"] = json!(ns);
            p["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            p["metadata"]["ownerReferences"][0]["kind"] = json!("ReplicaSet");
            p["metadata"]["ownerReferences"][0]["name"] = json!(format!("app{d}-{hash}"));
            p["spec"]["containers"][0]["image"] = json!(image);
            p["status"]["containerStatuses"][0]["image"] = json!(image);
            p["status"]["containerStatuses"][0]["imageID"] = json!(format!("{repo}@{}", digest(k)));
            let ip = format!("10.{}.{}.{}", 100 + i / 65536, (i / 256) % 256, i % 256);
            p["status"]["podIP"] = json!(ip);
            p["status"]["podIPs"] = json!([{ "ip": ip }]);
            pods.push(p);
        }
    }
    let namespaces = (0..NAMESPACES)
        .map(|n| json!({"metadata": {"name": format!("ns{n}")}}))
        .collect();
    Served {
        pods,
        deployments,
        replica_sets,
        namespaces,
    }
}

async fn list(state: web::Data<Arc<Served>>, req: HttpRequest) -> HttpResponse {
    let (kind, items) = match req.path() {
        "/api/v1/pods" => ("PodList", &state.pods),
        "/api/v1/namespaces" => ("NamespaceList", &state.namespaces),
        "/apis/apps/v1/deployments" => ("DeploymentList", &state.deployments),
        "/apis/apps/v1/replicasets" => ("ReplicaSetList", &state.replica_sets),
        p => {
            let kind = match p.rsplit('/').next() {
                Some("statefulsets") => "StatefulSetList",
                Some("daemonsets") => "DaemonSetList",
                Some("jobs") => "JobList",
                _ => "CronJobList",
            };
            return HttpResponse::Ok().json(json!({"kind": kind, "metadata": {}, "items": []}));
        }
    };
    let q: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let start: usize = q
        .iter()
        .find(|(k, _)| k == "continue")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let end = (start + PAGE).min(items.len());
    let mut meta = json!({"resourceVersion": "1"});
    if end < items.len() {
        meta["continue"] = json!(end.to_string());
    }
    HttpResponse::Ok().json(json!({"kind": kind, "metadata": meta, "items": items[start..end]}))
}

/// The API server: its URL and CA.
fn api_server(served: Arc<Served>) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(web::Data::new(served.clone()))
                    .default_service(web::get().to(list))
            })
            .workers(1)
            .listen_rustls_0_23(listener, tls)
            .unwrap()
            .run()
            .await
        })
    });
    (url, ca.pem())
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let t = Instant::now();
    let served = Arc::new(cluster());
    println!(
        "built {PODS} pods, {} Deployments over {NAMESPACES} namespaces in {:.1} s",
        served.deployments.len(),
        t.elapsed().as_secs_f64()
    );
    let (url, ca) = api_server(served);
    let dir = tempfile::tempdir().unwrap();
    let store = bulwark::app::open_store(dir.path()).unwrap();
    let sealer = Arc::new(bulwark::secrets::Sealer::open(dir.path()).unwrap());
    let (_, cluster) = common::seed_account(&store, true);
    common::fleet::seed_images(&store, IMAGES, 20, &[cluster]);
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority-data: {}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user: {{token: t}}\n",
        base64::engine::general_purpose::STANDARD.encode(&ca)
    );
    bulwark::clusters::sync::connect(
        &store,
        &sealer,
        "bench",
        "",
        cluster,
        bulwark::clusters::sync::Connect {
            kubeconfig: Some(kubeconfig),
            ..Default::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // 1. The reference: the pod list's pages, fetched and read, nothing more.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .build()
        .unwrap();
    let t = Instant::now();
    let bytes = rt.block_on(async {
        let mut total = 0;
        let mut next = Some(0usize);
        while let Some(start) = next {
            let body: Value = client
                .get(format!("{url}/api/v1/pods?limit=500&continue={start}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            total += body.to_string().len();
            next = body["metadata"]["continue"]
                .as_str()
                .and_then(|c| c.parse().ok());
        }
        total
    });
    let fetch = t.elapsed().as_secs_f64();
    println!(
        "reference: the pod list's pages fetched and parsed as JSON: {fetch:.2} s ({} MiB)",
        bytes >> 20
    );

    // 2. The sync.
    let store2 = store.clone();
    for round in 1..=2 {
        let t = Instant::now();
        let r = rt
            .block_on(bulwark::clusters::sync::sync(
                &store2,
                sealer.clone(),
                "bench",
                cluster,
            ))
            .unwrap();
        println!(
            "sync {round}: {:.2} s for {} pods in {} namespaces ({} queued for a scan); target < 10 s",
            t.elapsed().as_secs_f64(),
            r.inventory_pods,
            r.namespaces,
            r.queued_for_scan
        );
    }

    // 3. Pod compliance after a policy change.
    let admission = bulwark::admission::Admission::new(
        store.clone(),
        Default::default(),
        &bulwark::http::metrics::Metrics::new(),
    );
    let actor = bulwark::compliance::service::Actor {
        name: "bench".into(),
        role: Some(bulwark::http::Role::Admin),
        user_id: None,
        ip: String::new(),
    };
    let policy = bulwark::compliance::service::list_policies(&store).unwrap()[0].clone();
    let mut times = Vec::new();
    for round in 0..6 {
        let input: bulwark::compliance::service::PolicyInput = serde_json::from_value(json!({
            "name": policy.name, "description": format!("changed {round}"),
            "scanners": policy.scanners,
        }))
        .unwrap();
        bulwark::compliance::service::update_policy(&store, &actor, policy.id, input).unwrap();
        let t = Instant::now();
        let day = bulwark::workloads::verdicts::compute(&store, &admission, cluster)
            .unwrap()
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if round == 0 {
            println!(
                "pods judged: {} compliant, {} non-compliant over {} namespaces",
                day.totals.compliant,
                day.totals.non_compliant,
                day.namespaces.len()
            );
        }
    }
    println!(
        "pod compliance of {PODS} pods after a policy change: first {:.0} ms, then {:?} ms; target < 1,000 ms",
        times[0],
        times[1..].iter().map(|t| t.round()).collect::<Vec<_>>()
    );
}
