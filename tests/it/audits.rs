//! kube-bench and kube-hunter reports sent to m9sweeper's paths with `?key=`: both kube-bench
//! forms, kube-hunter plain and wrapped in JSON strings; wrong keys, malformed, truncated and
//! huge reports store nothing. Runs are listed newest first, a run shows what changed since
//! the node's previous one, waivers take a failing check out of the count, CSV exports each
//! run, the pages render, and the generated manifests carry a key that can upload.

use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, Caller, InProcess};

const RESULT: &[u8] = include_bytes!("../fixtures/kube-bench/result.json");
const BARE: &[u8] = include_bytes!("../fixtures/kube-bench/passedControlsCollection.json");
const HUNTER: &[u8] = include_bytes!("../fixtures/kube-hunter/report.json");

/// `result.json` with check 1.1.1 failing.
fn failing_result() -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(RESULT).unwrap();
    v["Controls"][0]["tests"][0]["results"][0]["status"] = json!("FAIL");
    serde_json::to_vec(&v).unwrap()
}

fn count(v: &Value) -> usize {
    v["items"].as_array().unwrap().len()
}

#[actix_web::test]
async fn kube_bench_and_kube_hunter_reports_arrive_and_are_shown() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let bench_key = t.key(admin, &[Scope::KubeBench]);
    let hunter_key = t.key(admin, &[Scope::KubeHunter]);
    let reader = t.key(admin, &[Scope::Read]);
    let scraper = t.key(admin, &[Scope::Metrics]);
    let (session, csrf) = t.session("admin@example.com");
    t.user("root@example.com", Role::SuperAdmin);
    let (root, _) = t.session("root@example.com");
    let app = t.service().await;
    let (s, c, _) = call(
        &app,
        Caller::session(&session).post("/api/v1/clusters", json!({"name": "prod"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let list = format!("/api/v1/clusters/{id}/kube-bench");

    // kube-bench's CronJob posts to m9sweeper's path, the cluster by name or id.
    let (s, r, _) = call(
        &app,
        Caller::default().post_bytes(
            &format!("/api/kube-bench/prod?key={bench_key}&node=worker-1"),
            RESULT.to_vec(),
        ),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        r["totals"],
        json!({"pass": 49, "fail": 12, "warn": 14, "info": 0})
    );
    assert_eq!(r["node"], "worker-1");
    let first = r["id"].as_u64().unwrap();
    let (s, r, _) = call(
        &app,
        Caller::default().post_bytes(
            &format!("/api/kube-bench/{id}/?key={bench_key}"),
            BARE.to_vec(),
        ),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(
        (r["totals"]["pass"].as_u64(), r["totals"]["warn"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["node"], "etcd,controlplane", "{r}");

    // Wrong keys and bad reports store nothing.
    for (uri, body, want) in [
        ("/api/kube-bench/prod".to_string(), RESULT.to_vec(), 401),
        (
            "/api/kube-bench/prod?key=bwk_nope".into(),
            RESULT.to_vec(),
            401,
        ),
        (
            format!("/api/kube-bench/prod?key={hunter_key}"),
            RESULT.to_vec(),
            401,
        ),
        (
            format!("/api/kube-bench/prod?key={reader}"),
            RESULT.to_vec(),
            401,
        ),
        (
            format!("/api/kube-bench/prod?key={bench_key}"),
            b"{\"Controls\": [".to_vec(),
            400,
        ),
        (
            format!("/api/kube-bench/prod?key={bench_key}"),
            RESULT[..RESULT.len() / 2].to_vec(),
            400,
        ),
        (
            format!("/api/kube-bench/prod?key={bench_key}"),
            b"{\"apiVersion\": \"v1\"}".to_vec(),
            400,
        ),
        (
            format!("/api/kube-bench/prod?key={bench_key}&node=a%2Fb"),
            RESULT.to_vec(),
            400,
        ),
        (
            format!("/api/kube-bench/prod?key={bench_key}"),
            vec![b' '; 17 << 20],
            413,
        ),
        (
            format!("/api/kube-bench/nope?key={bench_key}"),
            RESULT.to_vec(),
            404,
        ),
    ] {
        let (s, v, _) = call(&app, Caller::default().post_bytes(&uri, body)).await;
        assert_eq!(s, want, "{uri}: {v}");
    }
    let (s, v, _) = call(&app, Caller::bearer(&reader).get(&list)).await;
    assert_eq!(s, 200);
    assert_eq!(count(&v), 2, "{v}");
    assert_eq!(v["items"][0]["node"], "etcd,controlplane", "newest first");

    // The node's next run: what changed since its previous one.
    let (s, r, _) = call(
        &app,
        Caller::default().post_bytes(
            &format!("/api/kube-bench/prod?key={bench_key}&node=worker-1"),
            failing_result(),
        ),
    )
    .await;
    assert_eq!(s, 201, "{r}");
    let latest = r["id"].as_u64().unwrap();
    let (_, run, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{list}/{latest}")),
    )
    .await;
    assert_eq!(run["previous"], first, "{run}");
    assert_eq!(
        run["changes"],
        json!([{"check": "1.1.1", "text": run["controls"][0]["sections"][0]["checks"][0]["text"],
                "before": "PASS", "after": "FAIL"}])
    );
    assert!(
        run["controls"][0]["sections"][0]["checks"][0]["remediation"]
            .as_str()
            .unwrap()
            .contains("chmod 644")
    );

    // A waiver takes the failing check out of the count, and is audited.
    let until = (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string();
    let waivers = format!("{list}/waivers");
    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).post(
            &waivers,
            json!({"check": "1.1.1", "reason": "r", "until": until}),
        ),
    )
    .await;
    assert_eq!(s, 403, "readers cannot waive");
    for bad in [
        json!({"check": "1.1.1", "reason": "", "until": until}),
        json!({"check": "1.1.1 OR 1=1", "reason": "r", "until": until}),
        json!({"check": "1.1.1", "reason": "r", "until": "2001-01-01"}),
        json!({"check": "1.1.1", "reason": "r"}),
    ] {
        let (s, v, _) = call(&app, Caller::session(&session).post(&waivers, bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, w, _) = call(
        &app,
        Caller::session(&session).post(
            &waivers,
            json!({"check": "1.1.1", "reason": "the file is managed by our image build", "until": until}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{w}");
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&list)).await;
    assert_eq!(v["items"][0]["waived"], 1, "{v}");
    let (_, run, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{list}/{latest}")),
    )
    .await;
    assert_eq!(run["waived"], json!(["1.1.1"]));
    let (_, log, _) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?action=kube-bench"),
    )
    .await;
    let log = log.to_string();
    assert!(
        log.contains("kube-bench.waive") && log.contains("kube-bench.upload"),
        "{log}"
    );

    // The gauges: each node's latest run, waived failures apart.
    let (_, text, _) = call(&app, Caller::bearer(&scraper).get("/metrics")).await;
    let text = text.as_str().unwrap().to_string();
    for line in [
        "bulwark_kube_bench_checks{cluster=\"prod\",status=\"fail\"} 11",
        "bulwark_kube_bench_checks{cluster=\"prod\",status=\"waived\"} 1",
        "bulwark_kube_bench_checks{cluster=\"prod\",status=\"pass\"} 50",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }

    // CSV of a run.
    let (s, csv, h) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{list}/{latest}?format=csv")),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.as_str().unwrap();
    assert!(
        csv.starts_with("control,section,check,text,status,scored,waived,remediation"),
        "{csv}"
    );
    assert!(
        csv.contains("1.1.1") && csv.contains("the file is managed"),
        "{csv}"
    );

    // kube-hunter: as its HTTP dispatcher sends it (a JSON string), plain, wrapped twice.
    let once = serde_json::to_vec(std::str::from_utf8(HUNTER).unwrap()).unwrap();
    let twice = serde_json::to_vec(&String::from_utf8(once.clone()).unwrap()).unwrap();
    for body in [once, HUNTER.to_vec(), twice] {
        let (s, r, _) = call(
            &app,
            Caller::default().post_bytes(
                &format!("/api/kubehunter/hunter/prod/?key={hunter_key}"),
                body,
            ),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        assert_eq!(
            r["counts"],
            json!({"high": 1, "medium": 0, "low": 0, "unknown": 0})
        );
    }
    for (uri, body, want) in [
        (
            format!("/api/kubehunter/hunter/prod?key={bench_key}"),
            HUNTER.to_vec(),
            401,
        ),
        (
            format!("/api/kubehunter/hunter/prod?key={hunter_key}"),
            b"kube-hunter crashed".to_vec(),
            400,
        ),
        (
            format!("/api/kubehunter/hunter/prod?key={hunter_key}"),
            b"[1]".to_vec(),
            400,
        ),
    ] {
        let (s, v, _) = call(&app, Caller::default().post_bytes(&uri, body)).await;
        assert_eq!(s, want, "{uri}: {v}");
    }
    let hunts = format!("/api/v1/clusters/{id}/kube-hunter");
    let (_, v, _) = call(&app, Caller::bearer(&reader).get(&hunts)).await;
    assert_eq!(count(&v), 3, "{v}");
    let hunt = v["items"][0]["id"].as_u64().unwrap();
    let (_, run, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{hunts}/{hunt}")),
    )
    .await;
    assert_eq!(run["vulnerabilities"][0]["vid"], "KHV036");
    assert_eq!(
        run["vulnerabilities"][0]["link"],
        "https://avd.aquasec.com/kube-hunter/khv036/"
    );
    assert_eq!(run["services"].as_array().unwrap().len(), 2);
    let (_, csv, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{hunts}/{hunt}?format=csv")),
    )
    .await;
    assert!(
        csv.as_str()
            .unwrap()
            .contains("KHV036,high,Anonymous Authentication"),
        "{csv}"
    );

    let (_, text, _) = call(&app, Caller::bearer(&scraper).get("/metrics")).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("bulwark_kube_hunter_vulnerabilities{cluster=\"prod\",severity=\"high\"} 1"),
        "{text}"
    );

    // Runs are searchable: a KHV id finds the kube-hunter run, a node the kube-bench run.
    for (q, kind) in [("KHV036", "kube-hunter"), ("worker", "kube-bench")] {
        let (_, hits, _) = call(
            &app,
            Caller::bearer(&reader).get(&format!("/api/v1/search?q={q}&kind={kind}")),
        )
        .await;
        assert!(hits.to_string().contains("prod"), "{q}: {hits}");
    }

    // The pages.
    for (uri, says) in [
        (format!("/clusters/{id}/kube-bench"), "worker-1"),
        (
            format!("/clusters/{id}/kube-bench/{latest}"),
            "Since the previous run",
        ),
        (
            format!("/clusters/{id}/kube-bench/{latest}?all=true"),
            "chmod 644",
        ),
        (format!("/clusters/{id}/kube-hunter"), "<svg"),
        (
            format!("/clusters/{id}/kube-hunter/{hunt}"),
            "Anonymous Authentication",
        ),
    ] {
        let (s, body, _) = call(&app, Caller::session(&session).get(&uri)).await;
        assert_eq!(s, 200, "{uri}");
        assert!(body.as_str().unwrap().contains(says), "{uri}: {body}");
    }
    let (_, body, _) = call(
        &app,
        Caller::session(&session).get(&format!("/clusters/{id}/kube-bench")),
    )
    .await;
    assert!(body.as_str().unwrap().contains("waived"), "{body}");

    // The manifests carry a new key that may upload, and only that.
    let (s, yaml, h) = call(
        &app,
        Caller::session(&session).post(
            &format!("/api/v1/clusters/{id}/audit-manifests"),
            json!({"tool": "kube-bench", "url": "https://bulwark.test:8443", "target": "master",
                   "image": "registry.local/mirror/kube-bench:v0.10.6"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{yaml}");
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("yaml"));
    let yaml = yaml.as_str().unwrap();
    let secret: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let url = secret[1]["stringData"]["upload-url"].as_str().unwrap();
    let path = url.strip_prefix("https://bulwark.test:8443").unwrap();
    let (s, r, _) = call(
        &app,
        Caller::default().post_bytes(&format!("{path}&node=cp-1"), RESULT.to_vec()),
    )
    .await;
    assert_eq!(s, 201, "the generated key uploads: {r}");
    let key = path.rsplit("key=").next().unwrap();
    let (s, _, _) = call(&app, Caller::default().get(&format!("{list}?key={key}"))).await;
    assert_eq!(s, 403, "and reads nothing");
    let (s, body, _) = call(
        &app,
        Caller::session(&session).form(
            &format!("/clusters/{id}/audit-manifests"),
            format!("csrf={csrf}&tool=kube-hunter&url=https%3A%2F%2Fbulwark.test&schedule="),
        ),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body.as_str().unwrap().contains("kind: Job"), "{body}");

    // Deleting the cluster deletes its runs.
    let (s, _, _) = call(
        &app,
        Caller::session(&session).delete(&format!("/api/v1/clusters/{id}")),
    )
    .await;
    assert!(s == 200 || s == 204, "{s}");
    let (s, _, _) = call(&app, Caller::bearer(&reader).get(&list)).await;
    assert_eq!(s, 404);
}
