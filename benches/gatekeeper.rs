//! Gatekeeper benchmarks. Prints figures; asserts nothing.
//!
//!     cargo bench --bench gatekeeper
//!
//! 1. The gatekeeper-library's own suites (tests/fixtures/gatekeeper-library, commit 5c441fb)
//!    through `gatekeeper verify`'s runner: cases passed of cases run, and the time.
//! 2. Native audit of 10 constraints over 10,000 pods (copies of the minikube fixture pod with
//!    varied images, privileges and labels), every core, beside the reference of only turning
//!    the same pods into engine inputs. Target: <= 2.5 s.
//! 3. Admission with 10 deny constraints: the Gatekeeper part of a decision (the request's
//!    object evaluated against every constraint) timed per review on one thread, p50 and p99.
//!    Target: server-side p99 < 2 ms.

use std::time::{Duration, Instant};

use bulwark::gatekeeper::audit::{evaluate_all, Compiled, Scope};
use bulwark::gatekeeper::enforce::Enforcer;
use bulwark::gatekeeper::{catalog, verify, Review};
use serde_json::{json, Value};

const PODS: usize = 10_000;

fn constraints() -> Vec<Value> {
    vec![
        json!({"template": "BulwarkPrivilegedContainers", "name": "no-privileged"}),
        json!({"template": "BulwarkHostNamespaces", "name": "no-host-namespaces"}),
        json!({"template": "BulwarkAllowedRepos", "name": "internal", "parameters": {"repos": ["registry.local/", "gcr.io/"]}}),
        json!({"template": "BulwarkDisallowedRepos", "name": "no-hub", "parameters": {"repos": ["docker.io/"]}}),
        json!({"template": "BulwarkRequiredLabels", "name": "owner", "parameters": {"labels": [{"key": "owner", "allowedRegex": "^[a-z]+$"}]}}),
        json!({"template": "BulwarkReadOnlyRootFilesystem", "name": "read-only-root"}),
        json!({"template": "BulwarkRunAsNonRoot", "name": "non-root"}),
        json!({"template": "BulwarkContainerLimits", "name": "limits", "parameters": {"memory": "2Gi"}}),
        json!({"template": "BulwarkCapabilities", "name": "caps", "parameters": {"allowedCapabilities": ["NET_BIND_SERVICE"], "requiredDropCapabilities": ["ALL"]}}),
        json!({"template": "BulwarkDisallowLatestTag", "name": "no-latest"}),
    ]
}

fn pods() -> Vec<Value> {
    let fixture: Value =
        serde_json::from_str(include_str!("../tests/fixtures/kube/minikube-pods.json")).unwrap();
    let template = fixture["items"][0].clone();
    (0..PODS)
        .map(|i| {
            let mut p = template.clone();
            p["apiVersion"] = json!("v1");
            p["kind"] = json!("Pod");
            p["metadata"]["name"] = json!(format!("pod-{i}"));
            p["metadata"]["namespace"] = json!(format!("ns{}", i % 50));
            if i % 3 == 0 {
                p["metadata"]["labels"]["owner"] = json!("team");
            }
            let c = &mut p["spec"]["containers"][0];
            c["image"] = json!(match i % 4 {
                0 => format!("registry.local/app{}:1.{}", i % 300, i % 7),
                1 => "docker.io/library/nginx:latest".to_string(),
                2 => format!("gcr.io/kuar-demo/kuard-amd64:{}", i % 5),
                _ => "busybox".to_string(),
            });
            c["securityContext"] = json!({"privileged": i % 10 == 0, "runAsNonRoot": i % 2 == 0,
                "readOnlyRootFilesystem": i % 5 == 0, "capabilities": {"drop": ["ALL"]}});
            c["resources"] = json!({"limits": {"cpu": "500m", "memory": if i % 7 == 0 { "4Gi" } else { "256Mi" }}});
            p
        })
        .collect()
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = bulwark::store::Store::open(dir.path(), &bulwark::app::migrations()).unwrap();

    // 1. The library's suites.
    let library = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gatekeeper-library"
    );
    let started = Instant::now();
    let report = verify::Runner::new(Duration::from_secs(1))
        .run(&[library.into()])
        .unwrap();
    println!(
        "gatekeeper-library suites: {} of {} cases passed in {:.2} s (templates compiled once each)",
        report.count(verify::Outcome::Pass),
        report.results.len(),
        started.elapsed().as_secs_f64()
    );

    // 2. Audit.
    let mut list = Vec::new();
    for c in constraints() {
        let input: catalog::ConstraintInput = serde_json::from_value(c).unwrap();
        list.push(catalog::check(&store, input).unwrap());
    }
    let (compiled, errors) = Compiled::all(&store, list.clone()).unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let objects = pods();
    let started = Instant::now();
    let converted: usize = objects
        .iter()
        .map(|o| {
            let v = regorus::Value::from(Review::from_object(o.clone(), None).to_value());
            usize::from(v != regorus::Value::Undefined)
        })
        .sum();
    let reference = started.elapsed();
    let scope = Scope {
        cluster: 1,
        exceptions: &[],
    };
    for round in 0..3 {
        let started = Instant::now();
        let (_, counts, errors) = evaluate_all(&compiled, &objects, &scope);
        let took = started.elapsed();
        let violations: usize = counts.iter().map(|c| c.violations).sum();
        println!(
            "audit round {round}: {} constraints x {} pods in {:.2} s ({violations} violations, {} errors; reference, pods to engine inputs on one thread: {:.2} s for {converted})",
            compiled.len(),
            objects.len(),
            took.as_secs_f64(),
            errors.len(),
            reference.as_secs_f64()
        );
    }

    // 3. Admission.
    let cluster = bulwark::clusters::create(
        &store,
        "bench",
        "",
        serde_json::from_value(json!({"name": "bench", "enforcement": true})).unwrap(),
    );
    let id = match cluster {
        Ok(c) => c.id,
        Err(e) => panic!("{e}"),
    };
    for c in list {
        catalog::put_constraint(&store, "bench", id, c, true).unwrap();
    }
    let enforcer = Enforcer::new(store.clone());
    enforcer.warm().unwrap();
    let requests: Vec<Value> = objects
        .iter()
        .take(64)
        .map(|o| json!({"uid": "u", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": o["metadata"]["namespace"], "name": o["metadata"]["name"], "object": o}))
        .collect();
    let mut times = Vec::with_capacity(20_000);
    let mut denied = 0;
    for i in 0..20_000 {
        let started = Instant::now();
        let out = enforcer.review(id, &requests[i % requests.len()]).unwrap();
        times.push(started.elapsed());
        denied += usize::from(!out.deny.is_empty());
    }
    times.sort();
    println!(
        "admission, 10 deny constraints, 20,000 reviews of 64 different pods: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({denied} would be denied)",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
    );
}
