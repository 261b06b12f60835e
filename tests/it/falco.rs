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

/// The text of an HTML answer.
fn html(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[actix_web::test]
async fn acknowledgements_alerts_console_csv_and_falcosidekick_setup() {
    let t = InProcess::new();
    bulwark::http::tls::ensure_certificate(&t.app.state.config).unwrap();
    let admin = t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let writer = t.key(admin, &[Scope::Admin]);
    let falco = t.key(admin, &[Scope::Falco]);
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (s, c, _) = call(&app, w.post("/api/v1/clusters", json!({"name": "rt"}))).await;
    assert_eq!(s, 201, "{c}");
    let cluster = c["id"].as_u64().unwrap();
    let up = |key: &str, uuid: &str, ns: &str| {
        Caller::default().post_bytes(
            &format!("/api/falco/rt/create/?key={key}"),
            event(|e| {
                e["uuid"] = json!(uuid);
                e["output_fields"]["k8s.ns.name"] = json!(ns);
            }),
        )
    };
    let mut ids = Vec::new();
    for (uuid, ns) in [("a1", "default"), ("a2", "default"), ("a3", "shop")] {
        let (s, v, _) = call(&app, up(&falco, uuid, ns)).await;
        assert_eq!(s, 201, "{v}");
        ids.push(v["data"]["id"].as_u64().unwrap());
    }
    let total = |q: &'static str| {
        let w = w.clone();
        let app = &app;
        async move {
            let (s, v, _) = call(app, w.get(&format!("/api/v1/falco/events?{q}"))).await;
            assert_eq!(s, 200, "{v}");
            v["total"].as_u64().unwrap()
        }
    };

    // Acknowledging an event: who, when, note; hidden from acknowledged=no, kept for scripts.
    let (s, a, _) = call(
        &app,
        w.post(
            &format!("/api/v1/falco/events/{}/ack", ids[0]),
            json!({"note": "expected: the on-call debug shell"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{a}");
    assert_eq!(a["by"], "admin@example.com");
    assert_eq!(total("").await, 3, "the API's default is every event");
    assert_eq!(total("acknowledged=no").await, 2);
    assert_eq!(total("acknowledged=yes").await, 1);
    assert_eq!(
        total("acknowledged=no&q=shell").await,
        2,
        "the store path too"
    );
    let (_, e, _) = call(&app, w.get(&format!("/api/v1/falco/events/{}", ids[0]))).await;
    assert_eq!(
        e["acknowledgement"]["note"],
        "expected: the on-call debug shell"
    );
    let (s, _, _) = call(&app, w.get("/api/v1/falco/events?acknowledged=perhaps")).await;
    assert_eq!(s, 400);

    // A signature's acknowledgement covers its events so far; the next one shows again.
    let (_, e, _) = call(&app, w.get(&format!("/api/v1/falco/events/{}", ids[2]))).await;
    let shop = e["signature"].as_str().unwrap().to_string();
    let (s, _, _) = call(
        &app,
        w.post(
            &format!("/api/v1/falco/signatures/{shop}/ack"),
            json!({"note": "shop team knows"}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(total("acknowledged=no").await, 1);
    let (s, _, _) = call(&app, up(&falco, "a4", "shop")).await;
    assert_eq!(s, 201);
    assert_eq!(total("acknowledged=no").await, 2, "a new occurrence shows");
    let (s, _, _) = call(
        &app,
        w.delete(&format!("/api/v1/falco/events/{}/ack", ids[0])),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(total("acknowledged=no").await, 3);
    let (s, _, _) = call(&app, w.post("/api/v1/falco/signatures/nope/ack", json!({}))).await;
    assert_eq!(s, 404);

    // CSV of any filtered list, cells a spreadsheet would run defused.
    let (s, v, h) = call(
        &app,
        w.get("/api/v1/falco/events?namespace=default&format=csv"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = html(&v);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("id,time,cluster,priority,rule,"), "{csv}");
    assert!(csv.contains("Terminal shell in container"));

    // Alerting per signature: once per N days; every alert recorded and queued as mail.
    let (s, v, _) = call(
        &app,
        w.put(
            "/api/v1/falco/alerting",
            json!({"enabled": true, "priorities": ["Notice"], "admins": true,
                   "addresses": ["soc@example.org"], "mode": "signature", "days": 3}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    for uuid in ["b1", "b2"] {
        let (s, _, _) = call(&app, up(&falco, uuid, "payments")).await;
        assert_eq!(s, 201);
    }
    let (_, alerts, _) = call(&app, w.get("/api/v1/falco/alerts")).await;
    let items = alerts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{alerts}");
    assert_eq!(
        items[0]["to"],
        json!(["admin@example.com", "soc@example.org"])
    );
    assert!(items[0]["mail"].as_u64().is_some());
    let (s, _, _) = call(
        &app,
        w.put(
            "/api/v1/falco/alerting",
            json!({"enabled": true, "priorities": ["loud"]}),
        ),
    )
    .await;
    assert_eq!(s, 400);

    // The console: the list hides acknowledged events by default and keeps its filters in the
    // next page and CSV links; the event page shows every field; signatures, rules, alerting.
    let (session, csrf) = t.session("admin@example.com");
    let a = Caller::session(&session);
    let (s, page, _) = call(&app, a.get("/falco?namespace=shop")).await;
    assert_eq!(s, 200, "{page}");
    let page = html(&page);
    assert!(page.contains("<svg"), "the per-priority chart");
    assert!(
        page.contains(r#"<span id="event-total">1</span>"#),
        "{page}"
    );
    let link = page
        .split(r#"<a href=""#)
        .find(|a| a.contains(r#"id="csv-export""#))
        .unwrap();
    assert!(
        link.starts_with("/api/v1/falco/events?namespace=shop&#38;acknowledged=no&#38;format=csv"),
        "{link}"
    );
    let (_, page, _) = call(&app, a.get("/falco?namespace=shop&acknowledged=any")).await;
    assert!(html(&page).contains(r#"<span id="event-total">2</span>"#));
    let (_, page, _) = call(&app, a.get("/falco?since=someday")).await;
    assert!(
        html(&page).contains("since: a date"),
        "a bad filter is said, not a 400 page"
    );
    let (s, page, _) = call(&app, a.get(&format!("/falco/events/{}", ids[2]))).await;
    assert_eq!(s, 200);
    let page = html(&page);
    assert!(
        page.contains("proc.cmdline") && page.contains("shop team knows"),
        "{page}"
    );
    let (s, _, h) = call(
        &app,
        a.form(
            &format!("/falco/events/{}/ack", ids[1]),
            format!("csrf={csrf}&note=seen+in+the+console"),
        ),
    )
    .await;
    assert_eq!(s, 303);
    assert_eq!(
        h.get("location").unwrap().to_str().unwrap(),
        format!("/falco/events/{}", ids[1])
    );
    assert_eq!(
        total("acknowledged=yes").await,
        2,
        "event 2 and the shop event before its signature was acknowledged"
    );
    let (s, page, _) = call(&app, a.get("/falco/signatures?show=all")).await;
    assert_eq!(s, 200);
    assert!(html(&page).contains("shop team knows"));
    let (s, _, _) = call(
        &app,
        a.form(
            "/falco/rules",
            format!("csrf={csrf}&action=ignore&cluster={cluster}&namespaces=batch&rule=%5ENoisy"),
        ),
    )
    .await;
    assert_eq!(s, 303);
    let (_, page, _) = call(&app, a.get("/falco/rules")).await;
    assert!(html(&page).contains("^Noisy"));
    let (s, _, _) = call(
        &app,
        a.form(
            "/falco/alerting",
            format!("csrf={csrf}&enabled=1&priority=critical&priority=error&mode=digest&days=1"),
        ),
    )
    .await;
    assert_eq!(s, 303);
    let (_, v, _) = call(&app, w.get("/api/v1/falco/alerting")).await;
    assert_eq!(v["mode"], "digest");
    assert_eq!(v["priorities"], json!(["critical", "error"]));
    assert_eq!(v["admins"], false, "an unticked box is off");
    let (_, page, _) = call(&app, a.get("/falco/alerting")).await;
    assert!(html(&page).contains("Falco notice: Terminal shell in container in rt"));
    let (viewer, _) = t.session("viewer@example.com");
    let (s, _, _) = call(
        &app,
        Caller::session(&viewer).form(
            &format!("/falco/events/{}/ack", ids[2]),
            format!("csrf={csrf}&note=x"),
        ),
    )
    .await;
    assert!(s == 403 || s == 400, "{s}");

    // The cluster page offers the falcosidekick values; they carry a working falco-only key
    // and the appliance's CA.
    let (_, page, _) = call(&app, a.get(&format!("/clusters/{cluster}"))).await;
    assert!(html(&page).contains("falcosidekick-form"));
    let (s, page, _) = call(
        &app,
        a.form(
            &format!("/clusters/{cluster}/falcosidekick"),
            format!("csrf={csrf}&url=https%3A%2F%2Fbulwark.test%3A8443&min_priority=warning&namespace=falco&checkcert=1"),
        ),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    assert!(html(&page).contains("BEGIN CERTIFICATE"));
    let (s, v, _) = call(
        &app,
        w.post(
            &format!("/api/v1/clusters/{cluster}/falco/values"),
            json!({"url": "https://bulwark.test:8443", "min_priority": "error"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let values: serde_yaml::Value = serde_yaml::from_str(v["values"].as_str().unwrap()).unwrap();
    let hook = &values["falcosidekick"]["config"]["webhook"];
    assert_eq!(hook["minimumpriority"].as_str(), Some("error"));
    assert_eq!(hook["checkcert"].as_bool(), Some(true));
    let address = hook["address"].as_str().unwrap();
    let prefix = format!("https://bulwark.test:8443/api/falco/{cluster}/create/?key=");
    assert!(address.starts_with(&prefix), "{address}");
    let key = &address[prefix.len()..];
    let (s, v, _) = call(
        &app,
        Caller::default().post_bytes(
            &format!("/api/falco/{cluster}/create/?key={key}"),
            event(|e| e["uuid"] = json!("via-values")),
        ),
    )
    .await;
    assert_eq!(s, 201, "the key in the values sends events: {v}");
    let (s, _, _) = call(&app, Caller::bearer(key).get("/api/v1/falco/events")).await;
    assert_eq!(s, 403, "and does nothing else");
    let (s, _, _) = call(
        &app,
        w.post(
            &format!("/api/v1/clusters/{cluster}/falco/values"),
            json!({"url": "http://plain"}),
        ),
    )
    .await;
    assert_eq!(s, 400);
}

/// falcosidekick's payloads for a burst: distinct uuids, a few namespaces and priorities.
fn burst_event(i: usize) -> Vec<u8> {
    event(|e| {
        e["uuid"] = json!(format!("burst-{i}"));
        e["priority"] = json!(["Notice", "Warning", "Critical", "informational"][i % 4]);
        e["output_fields"]["k8s.ns.name"] = json!(format!("ns-{}", i % 7));
    })
}

#[actix_web::test]
async fn a_burst_of_100000_events_is_stored_or_refused_never_lost() {
    const BURST: usize = 100_000;
    const IN_FLIGHT: usize = 512;
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let falco = t.key(admin, &[Scope::Falco]);
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (s, _, _) = call(&app, w.post("/api/v1/clusters", json!({"name": "burst"}))).await;
    assert_eq!(s, 201);
    let path = format!("/api/falco/burst/create/?key={falco}");
    let (mut created, mut refused, mut next) = (0usize, 0usize, 0usize);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt;
    loop {
        while next < BURST && pending.len() < IN_FLIGHT {
            let req = Caller::default().post_bytes(&path, burst_event(next));
            pending.push(call(&app, req));
            next += 1;
        }
        let Some((s, v, _)) = pending.next().await else {
            break;
        };
        match s {
            201 => created += 1,
            // A full queue says so; falcosidekick retries those.
            503 => refused += 1,
            other => panic!("{other}: {v}"),
        }
    }
    assert_eq!(created + refused, BURST);
    assert!(created > 0);
    let (_, v, _) = call(&app, w.get("/api/v1/falco/events?cluster=burst&limit=1")).await;
    assert_eq!(
        v["total"].as_u64().unwrap() as usize,
        created,
        "every acknowledged event is stored, and only those ({refused} refused)"
    );
    let stored = t
        .store()
        .read(|r| r.len(&bulwark::runtime::EVENTS))
        .unwrap();
    assert_eq!(stored as usize, created);
}

#[actix_web::test]
async fn a_flood_is_trimmed_to_the_size_limit_as_it_arrives() {
    let t = InProcess::with(|c| c.retention.falco_max_mib = 1);
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let falco = t.key(admin, &[Scope::Falco]);
    let app = t.service().await;
    let w = Caller::bearer(&writer);
    let (s, _, _) = call(&app, w.post("/api/v1/clusters", json!({"name": "flood"}))).await;
    assert_eq!(s, 201);
    // 1,500 events of about 4 KiB: six times the limit, far sooner than the job's next run.
    let output = "A shell was spawned ".repeat(200);
    for i in 0..1_500 {
        let (s, v, _) = call(
            &app,
            Caller::default().post_bytes(
                &format!("/api/falco/flood/create/?key={falco}"),
                event(|e| {
                    e["uuid"] = json!(format!("flood-{i}"));
                    e["output"] = json!(output);
                }),
            ),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let limit = 1u64 << 20;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let totals = loop {
        let totals = bulwark::runtime::retention::totals(t.store()).unwrap();
        if totals.bytes <= limit {
            break totals;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {totals:?} over {limit} bytes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(totals.events > 100 && totals.events < 1_500, "{totals:?}");
    // The newest are kept, the list agrees with the store, and nothing waited for the job.
    let (_, v, _) = call(&app, w.get("/api/v1/falco/events?limit=1")).await;
    assert_eq!(v["items"][0]["uuid"], "flood-1499");
    assert_eq!(v["total"].as_u64().unwrap(), totals.events);
    let (_, v, _) = call(&app, w.get("/api/v1/jobs/falco-retention")).await;
    assert!(v["last_run"].is_null(), "{v}");
}
