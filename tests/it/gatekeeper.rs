//! `bulwark gatekeeper verify`: the gatekeeper-library's own suites (tests/fixtures), gator's
//! JSON and exit status, failing and broken suites, and hostile templates.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

fn library() -> String {
    format!(
        "{}/tests/fixtures/gatekeeper-library/library",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["gatekeeper", "verify"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_gatekeeper_library_suites_all_pass() {
    let (code, out) = verify(&["--format", "json", &library()]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 270, "every case of the 49 suites");
    let failing: Vec<&Value> = results.iter().filter(|r| r["outcome"] != "pass").collect();
    assert!(failing.is_empty(), "{failing:#?}");
    assert_eq!(v["summary"]["passed"], 270);
    for r in results.iter().take(3) {
        for k in ["suite", "test", "case"] {
            assert!(r[k].is_string(), "{r}");
        }
    }
    // Text: one line per case and a summary.
    let (code, out) = verify(&[&format!("{}/general/requiredlabels", library())]);
    assert_eq!(code, 0);
    assert!(out.contains("PASS "), "{out}");
    assert!(
        out.contains("5 cases: 5 passed, 0 failed, 0 errors"),
        "{out}"
    );
}

#[test]
fn failing_and_broken_suites_are_reported_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(
        Path::new(&format!("{}/general/requiredlabels", library())),
        &root.join("labels"),
    );
    // An allowed object asserted to violate: a failing case with the reason.
    let suite = root.join("labels/suite.yaml");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        text.replacen("violations: no", "violations: yes", 1),
    )
    .unwrap();
    // A suite naming files that do not exist, and one whose template does not compile.
    std::fs::create_dir_all(root.join("missing")).unwrap();
    std::fs::write(
        root.join("missing/suite.yaml"),
        "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: t\n  template: nope.yaml\n  constraint: nope.yaml\n  cases:\n  - name: c\n    object: nope.yaml\n    assertions:\n    - violations: no\n",
    )
    .unwrap();
    copy_dir(
        Path::new(&format!("{}/general/requiredlabels", library())),
        &root.join("broken"),
    );
    let template = root.join("broken/template.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace("count(missing) > 0", "count(missing) > > 0"),
    )
    .unwrap();
    let (code, out) = verify(&["--format", "json", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    let of = |suite: &str| -> Vec<&Value> {
        results
            .iter()
            .filter(|r| r["suite"].as_str().unwrap().contains(suite))
            .collect()
    };
    let labels = of("/labels/");
    assert_eq!(labels.iter().filter(|r| r["outcome"] == "fail").count(), 1);
    let failed = labels.iter().find(|r| r["outcome"] == "fail").unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("expected violations: yes, got 0"),
        "{failed}"
    );
    let missing = of("/missing/");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["outcome"], "error");
    assert!(missing[0]["reason"].as_str().unwrap().contains("nope.yaml"));
    let broken = of("/broken/");
    assert!(!broken.is_empty());
    assert!(
        broken.iter().all(|r| r["outcome"] == "error"),
        "{broken:#?}"
    );
    assert!(broken[0]["reason"]
        .as_str()
        .unwrap()
        .contains("does not compile"));
    // A path that does not exist: exit 2 with the reason.
    let (code, out) = verify(&["/nonexistent/suites"]);
    assert_eq!(code, 2);
    assert!(out.contains("/nonexistent/suites"), "{out}");
}

fn pod(ns: &str, name: &str, image: &str, privileged: bool, labels: Value) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": image,
            "securityContext": {"privileged": privileged}}]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"}})
}

/// Templates (bundled and imported), constraints checked against their schemas, the audit of
/// an uploaded inventory, dry runs, CSV, history and pages; and what must be refused.
#[actix_web::test]
async fn constraints_audit_the_inventory() {
    use crate::support::{call, Caller, InProcess};
    use bulwark::http::{Role, Scope};
    use serde_json::json;

    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let ro = t.user("ro@example.com", Role::ReadOnly);
    let reader = t.key(ro, &[Scope::Read]);
    let (session, csrf) = t.session("admin@example.com");
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (s, c, _) = call(
        &app,
        w.post("/api/v1/clusters", json!({"name": "gk-audit"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("shop", "web", "registry.internal/web:1", false, json!({"owner": "alice.agilebank.demo"})),
        pod("shop", "bad", "docker.io/nginx:latest", true, json!({})),
        pod("kube-system", "proxy", "registry.k8s.io/kube-proxy:1", true, json!({})),
    ]});
    let (s, v, _) = call(&app, w.put(&format!("/api/v1/clusters/{id}/pods"), list)).await;
    assert_eq!(s, 200, "{v}");

    // The bundled library, and an import of the gatekeeper-library's required labels.
    let (s, v, _) = call(
        &app,
        Caller::bearer(&reader).get("/api/v1/gatekeeper/templates"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(v["items"].as_array().unwrap().len() >= 16, "{v}");
    let labels = std::fs::read(format!(
        "{}/general/requiredlabels/template.yaml",
        library()
    ))
    .unwrap();
    let (s, v, _) = call(&app, w.post_bytes("/api/v1/gatekeeper/templates", labels)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["kind"], "K8sRequiredLabels");
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).post_bytes("/api/v1/gatekeeper/templates", b"{}".to_vec()),
    )
    .await;
    assert_eq!(s, 403, "readers cannot import");
    let broken = String::from_utf8(
        std::fs::read(format!(
            "{}/general/requiredlabels/template.yaml",
            library()
        ))
        .unwrap(),
    )
    .unwrap()
    .replace("k8srequiredlabels", "k8sbroken")
    .replace("K8sRequiredLabels", "K8sBroken")
    .replace("count(missing) > 0", "count(missing) >");
    let (s, v, _) = call(
        &app,
        w.post_bytes("/api/v1/gatekeeper/templates", broken.into_bytes()),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not compile"),
        "{v}"
    );
    for junk in [
        &b"kind: Pod\n"[..],
        b"[",
        b"apiVersion: v1\nkind: ConstraintTemplate\n",
    ] {
        let (s, v, _) = call(
            &app,
            w.post_bytes("/api/v1/gatekeeper/templates", junk.to_vec()),
        )
        .await;
        assert_eq!(s, 400, "{v}");
    }

    // Constraints: bundled templates by kind, the imported one, each checked.
    let base = format!("/api/v1/clusters/{id}/gatekeeper");
    let create = |body: Value| w.post(&format!("{base}/constraints"), body);
    let (s, v, _) = call(&app, create(json!({"template": "BulwarkAllowedRepos", "name": "internal-only",
        "match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], "excludedNamespaces": ["kube-*"]},
        "parameters": {"repos": ["registry.internal/"]}}))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = call(
        &app,
        create(
            json!({"template": "bulwarkprivilegedcontainers", "name": "no-privileged",
        "enforcement_action": "warn"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let doc = std::fs::read(format!(
        "{}/general/requiredlabels/samples/all-must-have-owner/constraint.yaml",
        library()
    ))
    .unwrap();
    let doc = String::from_utf8(doc).unwrap().replace("Namespace", "Pod");
    let (s, v, _) = call(
        &app,
        w.post_bytes(&format!("{base}/constraints"), doc.into_bytes()),
    )
    .await;
    assert_eq!(s, 201, "a Gatekeeper constraint document is accepted: {v}");
    for (body, status, says) in [
        (json!({"template": "Nope", "name": "x"}), 404, "no template"),
        (
            json!({"template": "BulwarkAllowedRepos", "name": "x", "parameters": {"repos": "registry/"}}),
            400,
            "parameters.repos: must be an array",
        ),
        (
            json!({"template": "BulwarkAllowedRepos", "name": "Bad Name"}),
            400,
            "constraint name",
        ),
        (
            json!({"template": "BulwarkAllowedRepos", "name": "x", "enforcement_action": "block"}),
            400,
            "enforcementAction",
        ),
        (
            json!({"template": "BulwarkAllowedRepos", "name": "internal-only"}),
            409,
            "already has",
        ),
        (
            json!({"template": "BulwarkAllowedRepos", "name": "x", "match": {"scope": "Everywhere"}}),
            400,
            "scope",
        ),
        (
            json!({"template": "BulwarkAllowedRepos", "name": "x", "surprise": 1}),
            400,
            "unknown field",
        ),
    ] {
        let (s, v, _) = call(&app, create(body)).await;
        assert_eq!(s, status, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{says}: {v}"
        );
    }
    let (s, _, _) = call(
        &app,
        w.post(
            "/api/v1/clusters/999/gatekeeper/constraints",
            json!({"template": "BulwarkAllowedRepos", "name": "x"}),
        ),
    )
    .await;
    assert_eq!(s, 404);

    // The audit ran after each change: violations by constraint, namespace and object.
    let (s, run, _) = call(&app, Caller::bearer(&reader).get(&format!("{base}/audit"))).await;
    assert_eq!(s, 200, "{run}");
    assert_eq!(run["objects"], 3, "{run}");
    let count = |name: &str| {
        run["constraints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["violations"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count("internal-only"), 1);
    assert_eq!(count("no-privileged"), 2);
    assert_eq!(count("all-must-have-owner"), 2);
    let findings = run["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["constraint"] == "internal-only"
            && f["namespace"] == "shop"
            && f["name"] == "bad"
            && f["msg"]
                .as_str()
                .unwrap()
                .contains("docker.io/nginx:latest")),
        "{run}"
    );
    assert!(!findings
        .iter()
        .any(|f| f["constraint"] == "internal-only" && f["namespace"] == "kube-system"));
    let (_, text, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/audit?format=csv")),
    )
    .await;
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("constraint_kind,constraint,action,kind,namespace,name,message"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");
    let (_, h, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/history")),
    )
    .await;
    assert_eq!(h["items"][0]["violations"], 5, "{h}");
    assert_eq!(h["items"][0]["warn"], 2, "{h}");

    // Constraints and templates are searchable.
    let (_, hits, _) = call(
        &app,
        Caller::session(&session).get("/api/v1/search?q=internal-only"),
    )
    .await;
    assert!(
        hits["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["url"]
                == format!("/clusters/{id}/gatekeeper/BulwarkAllowedRepos/internal-only")),
        "{hits}"
    );
    let (_, hits, _) = call(
        &app,
        Caller::session(&session).get("/api/v1/search?q=K8sRequiredLabels"),
    )
    .await;
    assert!(
        hits.to_string()
            .contains("/gatekeeper/templates/k8srequiredlabels"),
        "{hits}"
    );

    // The gauge, and the scheduled job that audits every cluster with constraints.
    let scraper = t.key(admin, &[Scope::Metrics]);
    let (_, text, _) = call(&app, Caller::bearer(&scraper).get("/metrics")).await;
    let text = text.as_str().unwrap().to_string();
    for line in [
        "bulwark_gatekeeper_violations{cluster=\"gk-audit\",action=\"deny\"} 3",
        "bulwark_gatekeeper_violations{cluster=\"gk-audit\",action=\"warn\"} 2",
        "bulwark_gatekeeper_violations{cluster=\"gk-audit\",action=\"dryrun\"} 0",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let (s, v, _) = call(
        &app,
        Caller::session(&session).post("/api/v1/jobs/gatekeeper-audit/run", json!({})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let run = crate::support::finished_run(
        &app,
        || Caller::session(&session).get("/api/v1/jobs/gatekeeper-audit"),
        None,
    )
    .await;
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("1 clusters audited, 5 violations"),
        "{run}"
    );

    // The pod's page and JSON show its violations beside its image compliance.
    let (s, p, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("/api/v1/clusters/{id}/namespaces/shop/pods/bad")),
    )
    .await;
    assert_eq!(s, 200, "{p}");
    assert!(
        p["gatekeeper"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["constraint"] == "internal-only"),
        "{p}"
    );
    let (_, html, _) = call(
        &app,
        Caller::session(&session).get(&format!("/clusters/{id}/namespaces/shop/pods/bad")),
    )
    .await;
    assert!(
        html.as_str()
            .unwrap()
            .contains("not from an allowed repository"),
        "{html}"
    );

    // A dry run of an object, against the cluster's constraints or a draft one.
    let probe = pod(
        "shop",
        "probe",
        "quay.io/x:1",
        true,
        json!({"owner": "bob.agilebank.demo"}),
    );
    let (s, v, _) = call(
        &app,
        Caller::bearer(&reader).post(&format!("{base}/evaluate"), probe.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let hit = |v: &Value, name: &str| {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["violations"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(hit(&v, "internal-only"), 1);
    assert_eq!(hit(&v, "no-privileged"), 1);
    assert_eq!(hit(&v, "all-must-have-owner"), 0);
    let (s, v, _) = call(
        &app,
        Caller::bearer(&reader).post(
            &format!("{base}/evaluate"),
            json!({
        "object": probe, "constraint": {"template": "BulwarkDisallowLatestTag", "name": "draft"}}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({"a": deep});
    }
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).post(
            &format!("{base}/evaluate"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d"}, "spec": deep}),
        ),
    )
    .await;
    assert_eq!(s, 400);

    // Changing a constraint re-audits; templates in use or bundled are not deleted.
    let (s, v, _) = call(
        &app,
        w.put(
            &format!("{base}/constraints/BulwarkAllowedRepos/internal-only"),
            json!({
        "template": "BulwarkAllowedRepos", "name": "internal-only",
        "parameters": {"repos": ["registry.internal/", "docker.io/", "registry.k8s.io/"]}}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, run, _) = call(&app, Caller::bearer(&reader).get(&format!("{base}/audit"))).await;
    assert!(
        !run["constraints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "internal-only" && c["violations"] != 0),
        "{run}"
    );
    let (s, _, _) = call(
        &app,
        w.delete("/api/v1/gatekeeper/templates/k8srequiredlabels"),
    )
    .await;
    assert_eq!(s, 409);
    let (s, _, _) = call(
        &app,
        w.delete("/api/v1/gatekeeper/templates/bulwarkallowedrepos"),
    )
    .await;
    assert_eq!(s, 409);
    let (s, _, _) = call(
        &app,
        w.delete(&format!(
            "{base}/constraints/K8sRequiredLabels/all-must-have-owner"
        )),
    )
    .await;
    assert_eq!(s, 204);
    let (s, _, _) = call(
        &app,
        w.delete("/api/v1/gatekeeper/templates/k8srequiredlabels"),
    )
    .await;
    assert_eq!(s, 204);

    // Pages, and a constraint created through the form.
    let sc = Caller::session(&session);
    for path in [
        "/gatekeeper".to_string(),
        "/gatekeeper/templates/bulwarkallowedrepos".to_string(),
        format!("/clusters/{id}/gatekeeper"),
        format!("/clusters/{id}/gatekeeper/BulwarkPrivilegedContainers/no-privileged"),
    ] {
        let (s, html, _) = call(&app, sc.get(&path)).await;
        assert_eq!(s, 200, "{path}: {html}");
    }
    let (_, html, _) = call(&app, sc.get(&format!("/clusters/{id}/gatekeeper"))).await;
    assert!(
        html.as_str()
            .unwrap()
            .contains("container app is privileged"),
        "{html}"
    );
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let body = format!("csrf={csrf}&template=bulwarkrequiredprobes&cluster={id}&name=probes&action=dryrun&kinds=Pod&p.probes={}",
        enc("readinessProbe"));
    let (s, _, h) = call(
        &app,
        sc.form(&format!("/clusters/{id}/gatekeeper/constraints"), body),
    )
    .await;
    assert_eq!(s, 303);
    assert!(h
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("/gatekeeper"));
    let (s, v, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{base}/constraints/BulwarkRequiredProbes/probes")),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["parameters"], json!({"probes": ["readinessProbe"]}));
    assert_eq!(v["action"], "dryrun");
}

fn review_of(uid: &str, ns: &str, image: &str, privileged: bool) -> Value {
    serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "namespace": ns,
        "operation": "CREATE", "name": "web-1",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": ns},
            "spec": {"containers": [{"name": "app", "image": image,
                "securityContext": {"privileged": privileged}}]}}}})
}

/// Constraints at admission: deny refuses (enforcement on), warn warns, dryrun is recorded;
/// gatekeeper exceptions let exactly their objects through, at admission and in audits.
#[actix_web::test]
async fn the_webhook_enforces_constraints_and_exceptions() {
    use crate::support::{call, Caller, InProcess};
    use bulwark::http::{Role, Scope};
    use serde_json::json;

    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (s, c) = {
        let (s, c, _) = call(
            &app,
            w.post(
                "/api/v1/clusters",
                json!({"name": "prod",
            "enforcement": true, "unscanned_action": "allow-and-queue"}),
            ),
        )
        .await;
        (s, c)
    };
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let base = format!("/api/v1/clusters/{id}/gatekeeper/constraints");
    for body in [
        json!({"template": "BulwarkPrivilegedContainers", "name": "no-priv"}),
        json!({"template": "BulwarkDisallowLatestTag", "name": "no-latest", "enforcement_action": "warn"}),
        json!({"template": "BulwarkRequiredLabels", "name": "owner", "enforcement_action": "dryrun",
            "match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]},
            "parameters": {"labels": [{"key": "owner"}]}}),
    ] {
        let (s, v, _) = call(&app, w.post(&base, body)).await;
        assert_eq!(s, 201, "{v}");
    }
    let hook = format!("/api/v1/admission/{id}");
    let decide = |body: Value| Caller::default().post_bytes(&hook, body.to_string().into_bytes());

    let (s, v, _) = call(&app, decide(review_of("u1", "shop", "nginx:1.25", true))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let msg = v["response"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("Gatekeeper [no-priv]") && msg.contains("privileged"),
        "{msg}"
    );
    assert_eq!(v["response"]["uid"], "u1");

    let (_, v, _) = call(&app, decide(review_of("u2", "shop", "nginx", false))).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    let warnings = v["response"]["warnings"].to_string();
    assert!(warnings.contains("Gatekeeper [no-latest]"), "{v}");

    // An exception for this namespace, template, constraint and image lets it through ...
    let (s, e, _) = call(
        &app,
        w.post(
            "/api/v1/exceptions",
            json!({
        "title": "nginx may run privileged in shop", "type": "gatekeeper",
        "namespaces": ["shop"], "constraint_template": "BulwarkPrivilegedContainers",
        "issue_id": "no-priv", "image_match": "nginx"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let (_, v, _) = call(&app, decide(review_of("u3", "shop", "nginx:1.25", true))).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    // ... and nothing else: another namespace, another image.
    let (_, v, _) = call(&app, decide(review_of("u4", "billing", "nginx:1.25", true))).await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    let (_, v, _) = call(&app, decide(review_of("u5", "shop", "busybox:1", true))).await;
    assert_eq!(v["response"]["allowed"], false, "{v}");
    // A constraint-type mismatch is refused when the exception is saved.
    let (s, _, _) = call(
        &app,
        w.post(
            "/api/v1/exceptions",
            json!({
        "title": "x", "type": "policy", "constraint_template": "BulwarkPrivilegedContainers"}),
        ),
    )
    .await;
    assert_eq!(s, 400);

    // Dry-run violations reach only the decision log.
    let (_, d, _) = call(&app, w.get("/api/v1/admission/decisions")).await;
    assert!(d.to_string().contains("Gatekeeper dryrun"), "{d}");

    // The audit applies the same exception.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        pod("shop", "web", "nginx:1.25", true, json!({"owner": "a"})),
        pod("billing", "web", "nginx:1.25", true, json!({"owner": "a"})),
    ]});
    let (s, v, _) = call(&app, w.put(&format!("/api/v1/clusters/{id}/pods"), list)).await;
    assert_eq!(s, 200, "{v}");
    let (_, run, _) = call(
        &app,
        w.get(&format!("/api/v1/clusters/{id}/gatekeeper/audit")),
    )
    .await;
    let priv_ = run["constraints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "no-priv")
        .unwrap();
    assert_eq!(priv_["violations"], 1, "{run}");
    assert_eq!(priv_["excused"], 1, "{run}");
    let excused = run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["constraint"] == "no-priv" && f["namespace"] == "shop")
        .unwrap();
    assert_eq!(excused["excused_by"], e["id"], "{run}");

    // Enforcement off: deny constraints only warn.
    let (s, v, _) = call(
        &app,
        w.patch(
            &format!("/api/v1/clusters/{id}"),
            json!({"enforcement": false}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (_, v, _) = call(&app, decide(review_of("u6", "billing", "nginx:1.25", true))).await;
    assert_eq!(v["response"]["allowed"], true, "{v}");
    assert!(
        v["response"]["warnings"].to_string().contains("no-priv"),
        "{v}"
    );
}

/// For every gatekeeper-library case with violations: an exception for exactly that object
/// (its cluster, namespace, template, constraint and images) excuses it; the same exception
/// for another namespace or another image does not.
#[test]
fn exceptions_excuse_exactly_their_objects_in_every_library_case() {
    use bulwark::compliance::Exception;
    use bulwark::gatekeeper::exceptions::{excusing, image_names, Subject};
    use bulwark::gatekeeper::{engine, evaluate, review, Constraint, Policy, Review, Template};
    use serde_json::json;

    let read = |p: &Path| -> Vec<Value> {
        let bytes = std::fs::read(p).unwrap();
        bulwark::manifests::documents(&p.display().to_string(), &bytes, 100).unwrap()
    };
    let exception = |namespaces: Option<Vec<String>>,
                     template: &str,
                     constraint: &str,
                     image: &str|
     -> Exception {
        serde_json::from_value(json!({
            "id": 7, "title": "t", "type": "gatekeeper", "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "clusters": [1], "namespaces": namespaces, "constraint_template": template,
            "issue_id": constraint, "image_match": image,
        }))
        .unwrap()
    };
    let suites = bulwark::gatekeeper::verify::find_suites(&[library().into()]).unwrap();
    let (mut violating, mut with_images, mut namespaced) = (0, 0, 0);
    for suite in suites {
        let dir = suite.parent().unwrap();
        let s = &read(&suite)[0];
        for test in s["tests"].as_array().unwrap() {
            let t = Template::from_document(
                read(&dir.join(test["template"].as_str().unwrap())).remove(0),
            )
            .unwrap();
            let policy = Policy::compile(&t, engine::DEFAULT_TIME_LIMIT).unwrap();
            let c = Constraint::from_document(
                &read(&dir.join(test["constraint"].as_str().unwrap()))[0],
            )
            .unwrap();
            for case in test["cases"].as_array().unwrap() {
                let object = read(&dir.join(case["object"].as_str().unwrap())).remove(0);
                let inventory: Vec<Value> = case["inventory"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|p| read(&dir.join(p.as_str().unwrap())))
                    .collect();
                let mut p = if inventory.is_empty() {
                    policy.clone()
                } else {
                    policy
                        .with_inventory(review::inventory(&inventory))
                        .unwrap()
                };
                let r = Review::from_document(object, None);
                if evaluate(&mut p, &c, &r).unwrap().is_empty() {
                    continue;
                }
                violating += 1;
                let images = image_names(&r.object);
                let mut distinct = images.clone();
                distinct.sort();
                distinct.dedup();
                let exact_image = if distinct.len() == 1 {
                    distinct[0].clone()
                } else {
                    String::new()
                };
                let ns = r.namespace.clone();
                let subject = Subject {
                    cluster: 1,
                    namespace: ns.as_deref(),
                    images: &images,
                    template: &c.kind,
                    constraint: &c.name,
                };
                let here = ns.clone().map(|n| vec![n]);
                let exact = exception(here.clone(), &c.kind, &c.name, &exact_image);
                let case_name = format!("{}: {}", suite.display(), case["name"]);
                assert_eq!(excusing(&[exact], &subject), Some(7), "{case_name}");
                let elsewhere = exception(
                    Some(vec!["somewhere-else".into()]),
                    &c.kind,
                    &c.name,
                    &exact_image,
                );
                if ns.is_some() {
                    namespaced += 1;
                    assert_eq!(excusing(&[elsewhere], &subject), None, "{case_name}");
                }
                if !images.is_empty() {
                    with_images += 1;
                    let other = exception(here.clone(), &c.kind, &c.name, "registry.invalid/other");
                    assert_eq!(excusing(&[other], &subject), None, "{case_name}");
                }
                let other_constraint = exception(here, &c.kind, "another-constraint", &exact_image);
                assert_eq!(excusing(&[other_constraint], &subject), None, "{case_name}");
            }
        }
    }
    assert!(violating >= 130, "{violating} violating cases");
    assert!(
        with_images >= 80 && namespaced >= 10,
        "{with_images} with images, {namespaced} namespaced"
    );
}

/// Templates and constraints pushed to a cluster's Gatekeeper through its API connection (the
/// in-test API server): install, drift, update with exceptions rendered in, removal of what
/// Bulwark no longer has, and a cluster without Gatekeeper.
#[actix_web::test]
async fn constraints_are_pushed_to_a_clusters_gatekeeper() {
    use crate::kube_sync::{api_server, kubeconfig};
    use crate::support::{call, Caller, InProcess};
    use bulwark::http::{Role, Scope};
    use serde_json::json;

    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (server, ca, api, handle) = api_server();
    let (_, c, _) = call(
        &app,
        w.post("/api/v1/clusters", json!({"name": "minikube"})),
    )
    .await;
    let id = c["id"].as_u64().unwrap();
    let (s, v, _) = call(
        &app,
        w.put(
            &format!("/api/v1/clusters/{id}/kubernetes"),
            json!({"kubeconfig": kubeconfig(&server, &ca, "reader-token-1")}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let gk = format!("/api/v1/clusters/{id}/gatekeeper");
    let pushed = format!("{gk}/in-cluster");

    // No Gatekeeper in the cluster: said plainly.
    let (s, v, _) = call(&app, w.get(&pushed)).await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is Gatekeeper installed"),
        "{v}"
    );
    api.lock().unwrap().gatekeeper = true;

    for body in [
        json!({"template": "BulwarkPrivilegedContainers", "name": "no-priv"}),
        json!({"template": "BulwarkAllowedRepos", "name": "internal", "enforcement_action": "warn",
            "parameters": {"repos": ["registry.internal/"]}}),
    ] {
        let (s, v, _) = call(&app, w.post(&format!("{gk}/constraints"), body)).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v, _) = call(&app, w.get(&pushed)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["in_sync"], false);
    assert!(
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == "missing"),
        "{v}"
    );

    let (s, v, _) = call(&app, w.put(&pushed, json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["in_sync"], true, "{v}");
    {
        let st = api.lock().unwrap();
        let t = &st.gatekeeper_objects
            ["/apis/templates.gatekeeper.sh/v1/constrainttemplates/bulwarkprivilegedcontainers"];
        assert_eq!(
            t["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "bulwark"
        );
        let c = &st.gatekeeper_objects
            ["/apis/constraints.gatekeeper.sh/v1beta1/bulwarkallowedrepos/internal"];
        assert_eq!(c["spec"]["enforcementAction"], "warn");
        assert_eq!(c["spec"]["parameters"]["bulwarkConstraint"], "internal");
        assert_eq!(
            c["spec"]["parameters"]["repos"],
            json!(["registry.internal/"])
        );
    }

    // Someone edits a constraint in the cluster: drift, by field.
    {
        let mut st = api.lock().unwrap();
        let c = st
            .gatekeeper_objects
            .get_mut("/apis/constraints.gatekeeper.sh/v1beta1/bulwarkallowedrepos/internal")
            .unwrap();
        c["spec"]["enforcementAction"] = json!("dryrun");
    }
    let (_, v, _) = call(&app, w.get(&pushed)).await;
    assert_eq!(v["in_sync"], false);
    let drifted = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "internal")
        .unwrap();
    assert_eq!(drifted["state"], "differs");
    assert_eq!(drifted["differences"], json!(["spec.enforcementAction"]));

    // An exception starts: the next push renders it into the template; a deleted constraint
    // and its template leave the cluster; the cluster's own policies stay.
    api.lock().unwrap().gatekeeper_objects.insert(
        "/apis/templates.gatekeeper.sh/v1/constrainttemplates/theirs".into(),
        json!({"kind": "ConstraintTemplate", "metadata": {"name": "theirs", "resourceVersion": "1"}}),
    );
    let (s, e, _) = call(&app, w.post("/api/v1/exceptions", json!({"title": "debug pods", "type": "gatekeeper",
        "namespaces": ["ops"], "constraint_template": "BulwarkPrivilegedContainers", "issue_id": "no-priv"}))).await;
    assert_eq!(s, 201, "{e}");
    let (s, _, _) = call(
        &app,
        w.delete(&format!("{gk}/constraints/BulwarkAllowedRepos/internal")),
    )
    .await;
    assert_eq!(s, 204);
    let (s, v, _) = call(&app, w.put(&pushed, json!({}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["in_sync"], true, "{v}");
    {
        let st = api.lock().unwrap();
        let keys: Vec<&String> = st.gatekeeper_objects.keys().collect();
        assert!(!keys.iter().any(|k| k.contains("allowedrepos")), "{keys:?}");
        assert!(keys.iter().any(|k| k.ends_with("/theirs")), "{keys:?}");
        let rego = st.gatekeeper_objects
            ["/apis/templates.gatekeeper.sh/v1/constrainttemplates/bulwarkprivilegedcontainers"]
            ["spec"]["targets"][0]["rego"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            rego.contains("bulwark_exceptions") && rego.contains("\"ops\""),
            "{rego}"
        );
    }

    // Another exception starts: the hourly job pushes the policies again.
    let (s, e, _) = call(
        &app,
        w.post(
            "/api/v1/exceptions",
            json!({"title": "dev", "type": "gatekeeper",
        "namespaces": ["dev-sandbox"], "constraint_template": "BulwarkPrivilegedContainers"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{e}");
    let (s, v, _) = call(&app, w.post("/api/v1/jobs/gatekeeper-audit/run", json!({}))).await;
    assert_eq!(s, 202, "{v}");
    let run =
        crate::support::finished_run(&app, || w.get("/api/v1/jobs/gatekeeper-audit"), None).await;
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("pushed again (in sync)"),
        "{run}"
    );
    {
        let st = api.lock().unwrap();
        let rego = st.gatekeeper_objects
            ["/apis/templates.gatekeeper.sh/v1/constrainttemplates/bulwarkprivilegedcontainers"]
            ["spec"]["targets"][0]["rego"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(rego.contains("\"dev-sandbox\""), "{rego}");
    }

    // Removal takes only what Bulwark pushed.
    let (s, v, _) = call(&app, w.delete(&pushed)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["removed"], 2);
    let left: Vec<String> = api
        .lock()
        .unwrap()
        .gatekeeper_objects
        .keys()
        .cloned()
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    handle.stop(false).await;
}

/// The exception form creates gatekeeper exceptions; the cluster's in-cluster page renders
/// what a push would change.
#[actix_web::test]
async fn gatekeeper_exceptions_and_the_in_cluster_page_through_the_console() {
    use crate::support::{call, Caller, InProcess};
    use bulwark::http::Role;
    use serde_json::json;

    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    let (session, csrf) = t.session("admin@example.com");
    let app = t.service().await;
    let sc = Caller::session(&session);
    let (_, c, _) = call(
        &app,
        sc.post("/api/v1/clusters", json!({"name": "console"})),
    )
    .await;
    let id = c["id"].as_u64().unwrap();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let body = format!(
        "csrf={csrf}&title={}&kind=gatekeeper&constraint_template=BulwarkPrivilegedContainers&issue_id=no-priv&namespaces=ops&image_match=",
        enc("debug shells")
    );
    let (s, _, h) = call(&app, sc.form("/exceptions", body)).await;
    assert_eq!(s, 303);
    let at = h.get("location").unwrap().to_str().unwrap().to_string();
    let (_, html, _) = call(&app, sc.get(&at)).await;
    let html = html.as_str().unwrap();
    assert!(
        html.contains("BulwarkPrivilegedContainers") && html.contains("gatekeeper"),
        "{html}"
    );
    // Not connected to its API server: the page says why instead of a drift table.
    let (s, html, _) = call(
        &app,
        sc.get(&format!("/clusters/{id}/gatekeeper-in-cluster")),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        html.as_str().unwrap().contains("no Kubernetes connection"),
        "{html}"
    );
    let (s, _, h) = call(
        &app,
        sc.form(
            &format!("/clusters/{id}/gatekeeper-in-cluster/push"),
            format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(s, 303);
    assert!(h
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .ends_with("/gatekeeper-in-cluster"));
}
