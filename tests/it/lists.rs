//! Every list endpoint pages with `limit` and `cursor` (the previous answer's `next`, absent on
//! the last page), stays stable while items arrive, sorts by its columns, and exports CSV.

use std::collections::BTreeSet;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use bulwark::http::{Role, Scope};
use serde_json::{json, Value};

use crate::support::{call, Caller, InProcess};

const ALPINE: &[u8] = include_bytes!("../fixtures/trivy/alpine-310.trivy.json");
const DEBIAN: &[u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");

/// Status, content type and body text of a GET.
async fn raw<S, B>(app: &S, req: TestRequest) -> (u16, String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app, req.to_request()).await;
    let status = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = test::read_body(res).await;
    (status, ctype, String::from_utf8_lossy(&body).into_owned())
}

/// Every page of `path` (which has its own `?`), following `next`.
async fn all_pages<S, B>(app: &S, who: &Caller, path: &str) -> Vec<Vec<Value>>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_string(),
        };
        let (s, v, _) = call(app, who.get(&url)).await;
        assert_eq!(s, 200, "{url}: {v}");
        pages.push(v["items"].as_array().unwrap().clone());
        match v.get("next").and_then(Value::as_str) {
            Some(n) => next = Some(n.to_string()),
            None => return pages,
        }
        assert!(pages.len() < 100, "paging never ends");
    }
}

#[actix_web::test]
async fn lists_page_sort_and_export() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::SuperAdmin);
    let key = t.key(admin, &[Scope::Admin, Scope::Scanner]);
    let app = t.service().await;
    let k = Caller::key(&key);
    let (s, _, _) = call(&app, k.post("/api/v1/clusters", json!({"name": "prod"}))).await;
    assert_eq!(s, 201);
    let upload = |image: String, report: &'static [u8]| {
        k.post_bytes(
            &format!("/api/v1/scans?cluster=prod&image={image}"),
            report.to_vec(),
        )
    };
    for n in 0..25 {
        let report = if n % 5 == 0 { DEBIAN } else { ALPINE };
        let (s, v, _) = call(&app, upload(format!("registry.local/app-{n:02}:1"), report)).await;
        assert_eq!(s, 200, "{v}");
    }

    // Pages of 10 by name; an image that sorts before the cursor arrives between pages 1 and 2.
    let (_, first, _) = call(&app, k.get("/api/v1/images?limit=10&sort=name")).await;
    let names = |items: &Value| -> Vec<String> {
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["repository"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&first).len(), 10);
    assert_eq!(names(&first)[0], "app-00");
    let next = first["next"].as_str().unwrap().to_string();
    let (s, _, _) = call(&app, upload("registry.local/app-00a:1".into(), ALPINE)).await;
    assert_eq!(s, 200);
    let mut seen: Vec<String> = names(&first);
    let mut cursor = Some(next);
    while let Some(c) = cursor {
        let (s, page, _) = call(
            &app,
            k.get(&format!("/api/v1/images?limit=10&sort=name&cursor={c}")),
        )
        .await;
        assert_eq!(s, 200, "{page}");
        seen.extend(names(&page));
        cursor = page.get("next").and_then(Value::as_str).map(String::from);
    }
    let expected: Vec<String> = (0..25).map(|n| format!("app-{n:02}")).collect();
    assert_eq!(
        seen, expected,
        "no image twice, none skipped; the newcomer sorts before the cursor"
    );

    // Sorting by a column, both ways.
    let (_, by_crit, _) = call(&app, k.get("/api/v1/images?limit=5&sort=critical")).await;
    let first_crit = &by_crit["items"][0];
    assert!(
        first_crit["repository"]
            .as_str()
            .unwrap()
            .starts_with("app-")
            && first_crit["last_scan"]["counts"]["fixable"][0]
                .as_u64()
                .unwrap_or(0)
                + first_crit["last_scan"]["counts"]["unfixable"][0]
                    .as_u64()
                    .unwrap_or(0)
                > 0,
        "most critical first: {by_crit}"
    );
    let (_, asc, _) = call(&app, k.get("/api/v1/images?limit=1&sort=name&order=desc")).await;
    assert_eq!(asc["items"][0]["repository"], "app-24");
    for bad in [
        "sort=password",
        "order=up",
        "cursor=not-a-cursor",
        "limit=-1",
    ] {
        let (s, v, _) = call(&app, k.get(&format!("/api/v1/images?{bad}"))).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }

    // CSV: a header row, one line per image.
    let (s, ctype, body) = raw(&app, k.get("/api/v1/images?format=csv&limit=1000")).await;
    assert_eq!(s, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "id,image,digest,tags,scan,last_seen,critical,high,medium,low"
    );
    assert_eq!(lines.len(), 27, "header and 26 images");

    // The findings of one image: most severe first, paged, CSV.
    let (_, debian, _) = call(&app, k.get("/api/v1/images?q=app-05")).await;
    let id = debian["items"][0]["id"].as_u64().unwrap();
    let pages = all_pages(&app, &k, &format!("/api/v1/images/{id}/findings?limit=1")).await;
    let findings: Vec<&Value> = pages.iter().flatten().collect();
    assert!(
        pages.len() == findings.len() && findings.len() > 1,
        "{} findings",
        findings.len()
    );
    let ids: BTreeSet<String> = findings
        .iter()
        .map(|f| format!("{}|{}", f["id"], f["package"]))
        .collect();
    assert_eq!(ids.len(), findings.len(), "no finding twice");
    let rank = |f: &Value| {
        ["critical", "high", "medium", "low", "negligible", "unknown"]
            .iter()
            .position(|s| f["severity"] == *s)
            .unwrap()
    };
    assert!(
        findings.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "most severe first"
    );
    let (_, ctype, body) = raw(
        &app,
        k.get(&format!(
            "/api/v1/images/{id}/findings?format=csv&severity=critical"
        )),
    )
    .await;
    assert!(ctype.starts_with("text/csv"));
    assert!(body.starts_with(
        "id,package,installed,fixed,severity,severity_source,scanner,target,title\r\n"
    ));
    assert!(
        body.lines().skip(1).all(|l| l.contains(",critical,")),
        "{body}"
    );
    let (s, _, _) = call(&app, k.get("/api/v1/images/999999/findings")).await;
    assert_eq!(s, 404);

    // Exceptions, decisions, the audit log and search page the same way.
    for n in 0..3 {
        let (s, e, _) = call(
            &app,
            k.post(
                "/api/v1/exceptions",
                json!({"title": format!("e{n}"), "issue_id": format!("CVE-2000-000{n}")}),
            ),
        )
        .await;
        assert_eq!(s, 201, "{e}");
    }
    let pages = all_pages(&app, &k, "/api/v1/exceptions?limit=2").await;
    let titles: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|e| e["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["e2", "e1", "e0"], "newest first, over two pages");
    let pages = all_pages(&app, &k, "/api/v1/audit-log?limit=10").await;
    let audit_ids: Vec<u64> = pages
        .iter()
        .flatten()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert!(pages.len() >= 3, "{} entries", audit_ids.len());
    assert!(
        audit_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    let pages = all_pages(&app, &k, "/api/v1/search?q=app&limit=4").await;
    let hits: BTreeSet<String> = pages
        .iter()
        .flatten()
        .map(|h| format!("{} {} {}", h["kind"], h["url"], h["title"]))
        .collect();
    assert_eq!(hits.len(), pages.iter().flatten().count(), "no hit twice");
    assert!(pages.len() > 1);
    let (s, v, _) = call(&app, k.get("/api/v1/admission/decisions?limit=1")).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v.get("next").is_none(),
        "no decisions yet: one empty last page: {v}"
    );
    for (path, header) in [
        (
            "/api/v1/exceptions?format=csv",
            "id,title,status,type,issue_id,image_match,start_date,end_date,reason",
        ),
        (
            "/api/v1/admission/decisions?format=csv",
            "id,cluster,namespace,kind,name,images,allowed,count,first,last,message",
        ),
        (
            "/api/v1/audit-log?format=csv",
            "id,at,actor,action,target,ok,source_ip,detail",
        ),
        ("/api/v1/search?q=app&format=csv", "kind,id,title,url,score"),
    ] {
        let (s, ctype, body) = raw(&app, k.get(path)).await;
        assert_eq!(s, 200, "{path}");
        assert!(ctype.starts_with("text/csv"), "{path}: {ctype}");
        assert_eq!(body.lines().next(), Some(header), "{path}");
    }

    // The Images page: the same paging, sortable headers, visible reasons, CSV with verdicts.
    let (admin_s, _) = t.session("admin@example.com");
    let a = Caller::session(&admin_s);
    let (s, _, html) = raw(&app, a.get("/images?limit=10&sort=critical")).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("26 of 26 images match; 10 on this page"),
        "{html}"
    );
    assert!(
        html.contains("Critical ▼"),
        "the sorted column is marked: {html}"
    );
    assert!(
        html.contains("href=\"/images?limit=10&#38;sort=critical&#38;order=asc\""),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"reason\">"),
        "reasons are on the page: {html}"
    );
    assert!(html.contains("id=\"next-page\""), "{html}");
    let (s, ctype, body) = raw(&app, a.get("/images?compliance=non-compliant&format=csv")).await;
    assert_eq!(s, 200);
    assert!(ctype.starts_with("text/csv"));
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "id,image,digest,tags,status,reason,critical,high,medium,low,last_scan"
    );
    assert_eq!(
        lines.len(),
        6,
        "the five images with the Debian report: {body}"
    );
    assert!(
        lines[1..].iter().all(|l| l.contains(",non-compliant,")),
        "{body}"
    );
}
