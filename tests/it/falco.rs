//! Falco events on m9sweeper's upload path: keys and clusters, falcosidekick's payloads,
//! retries stored once, ignore and silence rules, the filtered list with its total, and the bad
//! input it must survive.

use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, Caller, InProcess};

const EVENT: &str = include_str!("../fixtures/falco/SYNTHETIC-falco-event.json");
const TEST: &str = include_str!("../fixtures/falco/falcosidekick-testHandler-payload.json");

fn event(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(EVENT).unwrap();
    f(&mut v);
    v.to_string().into_bytes()
}

#[actix_web::test]
async fn events_arrive_once_and_are_listed_with_filters() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let falco = t.key(admin, &[Scope::Falco]);
    let reader = t.key(admin, &[Scope::Read]);
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (s, c, _) = call(
        &app,
        w.post("/api/v1/clusters", json!({"name": "falco-prod"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let up = |body: Vec<u8>| {
        Caller::default().post_bytes(&format!("/api/falco/falco-prod/create/?key={falco}"), body)
    };

    // Stored once, however often falcosidekick retries.
    let (s, v, _) = call(&app, up(EVENT.as_bytes().to_vec())).await;
    assert_eq!(s, 201, "{v}");
    let first = v["data"]["id"].as_u64().unwrap();
    let (s, v, _) = call(&app, up(EVENT.as_bytes().to_vec())).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["id"], first);
    // falcosidekick's own test payload (no uuid), by cluster id and without the trailing slash.
    let (s, v, _) = call(
        &app,
        Caller::default().post_bytes(
            &format!("/api/falco/{id}/create?key={falco}"),
            TEST.as_bytes().to_vec(),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // Priorities in any case, unknown ones kept; kube-system ignored by the seeded rule.
    let (s, _, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-2");
            e["priority"] = json!("WARNING");
        })),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-3");
            e["priority"] = json!("Loud");
            e["output_fields"]["k8s.ns.name"] = json!("shop");
        })),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-4");
            e["output_fields"]["k8s.ns.name"] = json!("kube-system");
        })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(v["message"].as_str().unwrap().contains("ignored"), "{v}");

    // Bad input and bad keys: clear answers, nothing stored.
    for (body, key, want) in [
        (b"{".to_vec(), falco.clone(), 400),
        (
            event(|e| {
                e.as_object_mut().unwrap().remove("rule");
            }),
            falco.clone(),
            400,
        ),
        (
            event(|e| {
                e["time"] = json!("yesterday");
            }),
            falco.clone(),
            400,
        ),
        (vec![b' '; 300 * 1024], falco.clone(), 413),
        (EVENT.as_bytes().to_vec(), reader.clone(), 401),
        (EVENT.as_bytes().to_vec(), "bwk_nope".to_string(), 401),
    ] {
        let (s, v, _) = call(
            &app,
            Caller::default().post_bytes(&format!("/api/falco/falco-prod/create/?key={key}"), body),
        )
        .await;
        assert_eq!(s, want, "{v}");
    }
    let (s, _, _) = call(
        &app,
        Caller::default().post_bytes(
            &format!("/api/falco/nowhere/create/?key={falco}"),
            EVENT.as_bytes().to_vec(),
        ),
    )
    .await;
    assert_eq!(s, 404);
    let huge = "x".repeat(100_000);
    let (s, v, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-5");
            e["output"] = json!(huge);
        })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let big = v["data"]["id"].as_u64().unwrap();

    // The list: newest first, filters, the total of every match, paging.
    let r = Caller::bearer(&reader);
    let (s, v, _) = call(&app, r.get("/api/v1/falco/events?cluster=falco-prod")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["total"], 5, "{v}");
    let ids: Vec<u64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|p| p[0] > p[1]), "{ids:?}");
    let count = |v: &Value| v["total"].as_u64().unwrap();
    let (_, v, _) = call(&app, r.get("/api/v1/falco/events?priority=warning")).await;
    assert_eq!(count(&v), 1);
    let (_, v, _) = call(&app, r.get("/api/v1/falco/events?priority=Loud")).await;
    assert_eq!(count(&v), 1);
    let (_, v, _) = call(&app, r.get("/api/v1/falco/events?min_priority=notice")).await;
    assert_eq!(
        count(&v),
        3,
        "notice and warning, not debug or unknown: {v}"
    );
    let (_, v, _) = call(&app, r.get("/api/v1/falco/events?namespace=shop")).await;
    assert_eq!(count(&v), 1);
    let (_, v, _) = call(
        &app,
        r.get("/api/v1/falco/events?q=SHELL+terminal&pod=nginx-7c5ddbdf54-abcde"),
    )
    .await;
    assert_eq!(count(&v), 3, "{v}");
    let (_, v, _) = call(
        &app,
        r.get("/api/v1/falco/events?tag=mitre_execution&limit=2"),
    )
    .await;
    assert_eq!(count(&v), 4);
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let last = v["items"][1]["id"].as_u64().unwrap();
    let (_, v, _) = call(
        &app,
        r.get(&format!(
            "/api/v1/falco/events?tag=mitre_execution&limit=2&before={last}"
        )),
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    assert!(v["items"][0]["id"].as_u64().unwrap() < last);
    let (_, v, _) = call(
        &app,
        r.get("/api/v1/falco/events?since=2030-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(count(&v), 0);
    let (s, _, _) = call(&app, r.get("/api/v1/falco/events?min_priority=loudest")).await;
    assert_eq!(s, 400);
    let (s, e, _) = call(&app, r.get(&format!("/api/v1/falco/events/{big}"))).await;
    assert_eq!(s, 200);
    assert_eq!(
        e["output"].as_str().unwrap().len(),
        8 * 1024,
        "huge outputs are cut"
    );
    assert_eq!(e["fields"]["proc.cmdline"], "bash");
    let (_, e, _) = call(&app, r.get(&format!("/api/v1/falco/events/{first}"))).await;
    assert_eq!(e["time"], "2026-01-01T17:21:01.123456789Z");
    assert_eq!(e["image"], "");

    // Signatures count each kind of anomaly.
    let (_, v, _) = call(
        &app,
        r.get(&format!("/api/v1/falco/signatures?cluster={id}")),
    )
    .await;
    let shell = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["rule"] == "Terminal shell in container" && s["namespace"] == "default")
        .unwrap();
    assert_eq!(shell["count"], 3, "{v}");

    // Rules: silence keeps the event and marks it; bad regexes are refused.
    let (s, rule, _) = call(
        &app,
        w.post(
            "/api/v1/falco/rules",
            json!({"action": "silence", "rule": "^Terminal"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{rule}");
    let (s, v, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-6");
        })),
    )
    .await;
    assert_eq!(s, 201);
    let (_, e, _) = call(
        &app,
        r.get(&format!("/api/v1/falco/events/{}", v["data"]["id"])),
    )
    .await;
    assert_eq!(e["silenced"], true);
    let (s, _, _) = call(
        &app,
        w.post(
            "/api/v1/falco/rules",
            json!({"action": "ignore", "rule": "("}),
        ),
    )
    .await;
    assert_eq!(s, 400);
    let (_, rules, _) = call(&app, r.get("/api/v1/falco/rules")).await;
    assert_eq!(
        rules["items"].as_array().unwrap().len(),
        2,
        "the seeded rule and the silence rule"
    );
    let (s, _, _) = call(
        &app,
        w.delete(&format!("/api/v1/falco/rules/{}", rule["id"])),
    )
    .await;
    assert_eq!(s, 204);

    // A minimum priority per cluster: less severe events are dropped, unknown ones kept.
    let settings = format!("/api/v1/clusters/{id}/falco/settings");
    let (s, v, _) = call(&app, w.put(&settings, json!({"min_priority": "WARNING"}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["min_priority"], "warning");
    let (s, v, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-7");
        })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("minimum priority"),
        "{v}"
    );
    let (s, _, _) = call(
        &app,
        up(event(|e| {
            e["uuid"] = json!("u-8");
            e["priority"] = json!("Critical");
        })),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _, _) = call(&app, w.put(&settings, json!({"min_priority": "loudest"}))).await;
    assert_eq!(s, 400);
    let (s, _, _) = call(&app, w.put(&settings, json!({"min_priority": ""}))).await;
    assert_eq!(s, 200);
    let (_, v, _) = call(&app, r.get(&settings)).await;
    assert_eq!(v["min_priority"], "");

    // Counters by cluster, priority and outcome.
    let scraper = t.key(admin, &[Scope::Metrics]);
    let (_, text, _) = call(&app, Caller::bearer(&scraper).get("/metrics")).await;
    let text = text.as_str().unwrap();
    for line in [
        "bulwark_falco_events_total{cluster=\"falco-prod\",priority=\"notice\",outcome=\"stored\"} 2",
        "bulwark_falco_events_total{cluster=\"falco-prod\",priority=\"notice\",outcome=\"duplicate\"} 1",
        "bulwark_falco_events_total{cluster=\"falco-prod\",priority=\"notice\",outcome=\"ignored\"} 2",
        "bulwark_falco_events_total{cluster=\"falco-prod\",priority=\"notice\",outcome=\"silenced\"} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }

    // The retention job runs (nothing is old or too large here).
    let (s, v, _) = call(&app, w.post("/api/v1/jobs/falco-retention/run", json!({}))).await;
    assert_eq!(s, 202, "{v}");
    let run =
        crate::support::finished_run(&app, || w.get("/api/v1/jobs/falco-retention"), None).await;
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .starts_with("0 Falco events deleted; 7 kept"),
        "{run}"
    );
}
