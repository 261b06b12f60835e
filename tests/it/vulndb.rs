//! The scanner database over HTTP: its status, a feed imported through the API and through the
//! page's upload form, and uploads that are not feeds.

use bulwark::http::{Role, Scope};
use serde_json::Value;

use crate::support::{call, Caller, InProcess};

const SECDB: &[u8] = include_bytes!("../fixtures/vulndb/alpine-secdb-v3.10-community.json");
const OSV: &[u8] = include_bytes!("../fixtures/vulndb/osv-GO-2020-0001-go.json");

/// A browser's multipart body with one file field.
pub(crate) fn multipart(field: &str, file_name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----bulwark-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[actix_web::test]
async fn feeds_are_imported_through_the_api_and_the_page() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let key = t.key(admin, &[Scope::Admin]);
    let (admin_s, csrf) = t.session("admin@example.com");
    let (viewer_s, viewer_csrf) = t.session("viewer@example.com");
    let app = t.service().await;
    let k = Caller::key(&key);

    let (s, v, _) = call(&app, k.get("/api/v1/vulndb")).await;
    assert_eq!((s, v["advisories"].as_u64()), (200, Some(0)), "{v}");
    let (s, html, _) = call(&app, Caller::session(&viewer_s).get("/vulndb")).await;
    assert_eq!(s, 200);
    assert!(html.as_str().unwrap().contains("Nothing imported yet"));
    assert!(
        !html.as_str().unwrap().contains("id=\"feed-form\""),
        "readers get no upload form"
    );

    // The API takes the file as the body.
    let (s, v, _) = call(&app, k.post_bytes("/api/v1/vulndb/import", SECDB.to_vec())).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["summary"].as_str().unwrap().starts_with("read 1 files, "),
        "{v}"
    );
    let imported = v["report"]["imported"].as_u64().unwrap();
    assert_eq!(imported, 9, "{v}");
    let (_, v, _) = call(&app, k.get("/api/v1/vulndb")).await;
    assert_eq!(v["advisories"], imported, "{v}");
    assert_eq!(v["feeds"][0]["name"], "alpine-secdb", "{v}");

    // Not a feed: counted as skipped and named, nothing imported; an empty body is refused.
    let (s, v, _) = call(
        &app,
        k.post_bytes("/api/v1/vulndb/import", b"{\"hello\": 1}".to_vec()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["report"]["skipped"], 1, "{v}");
    assert!(
        v["report"]["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("upload: "),
        "{v}"
    );
    let (s, _, _) = call(&app, k.post_bytes("/api/v1/vulndb/import", Vec::new())).await;
    assert_eq!(s, 400);
    // A zip that is not one.
    let (s, v, _) = call(
        &app,
        k.post_bytes("/api/v1/vulndb/import", b"PK\x03\x04garbage".to_vec()),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // The page's form: multipart, with the session's CSRF token in the query.
    let (ctype, body) = multipart("feed", "GO-2020-0001.json", OSV);
    let upload = |who: &str, token: &str| {
        Caller::session(who)
            .post_bytes(&format!("/vulndb/import?csrf={token}"), body.clone())
            .insert_header(("content-type", ctype.clone()))
    };
    let (s, _, _) = call(&app, upload(&admin_s, "forged")).await;
    assert_eq!(s, 403, "a wrong token is refused");
    let (s, _, _) = call(&app, upload(&viewer_s, &viewer_csrf)).await;
    assert_eq!(s, 403, "readers cannot import");
    let (s, _, h) = call(&app, upload(&admin_s, &csrf)).await;
    assert_eq!(s, 303);
    assert_eq!(h.get("location").unwrap(), "/vulndb");
    let (_, html, _) = call(&app, Caller::session(&admin_s).get("/vulndb")).await;
    let html = html.as_str().unwrap();
    assert!(
        html.contains("Imported the upload: read 1 files, 1 advisories: 1 imported"),
        "{html}"
    );
    assert!(
        html.contains("<td>osv</td>") && html.contains("id=\"feed-form\""),
        "{html}"
    );
    let (_, v, _): (u16, Value, _) = call(&app, k.get("/api/v1/vulndb")).await;
    assert_eq!(v["advisories"], imported + 1, "{v}");
}
