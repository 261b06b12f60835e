//! How the console's pages and forms behave: errors as pages in the layout, refused forms that
//! keep what was typed and mark the bad field, date inputs, and destructive actions that need a
//! ticked confirmation.

use bulwark::http::Role;
use serde_json::Value;

use crate::support::{call, Caller, InProcess};

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[actix_web::test]
async fn pages_and_forms_behave() {
    let t = InProcess::new();
    t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let (admin_s, csrf) = t.session("admin@example.com");
    let (viewer_s, _) = t.session("viewer@example.com");
    let app = t.service().await;
    let a = Caller::session(&admin_s);
    let form = |path: &str, body: &str| a.form(path, format!("csrf={csrf}&{body}"));

    // Unknown ids and forbidden pages are pages of the console, not JSON.
    let (s, html, h) = call(&app, a.get("/clusters/999")).await;
    assert_eq!(s, 404);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(
        text(&html).contains("<nav") && text(&html).contains("Not found"),
        "{html}"
    );
    let (s, html, _) = call(&app, Caller::session(&viewer_s).get("/policies/new")).await;
    assert_eq!(s, 403);
    assert!(
        text(&html).contains("<nav") && text(&html).contains("Not allowed"),
        "{html}"
    );
    let (s, html, _) = call(&app, form("/jobs/no-such-job/run", "")).await;
    assert_eq!(s, 404, "{html}");
    assert!(
        text(&html).contains("id=\"error-message\""),
        "a failed run now is a failure page: {html}"
    );

    // A refused cluster form keeps what was typed and marks the bad field.
    let (s, html, _) = call(
        &app,
        form(
            "/clusters",
            "name=bad%20name!&description=kept%20text&tags=a",
        ),
    )
    .await;
    assert_eq!(s, 400);
    let html = text(&html);
    assert!(html.contains(">kept text</textarea>"), "{html}");
    assert!(
        html.contains("value=\"bad name!\" maxlength=\"100\" required aria-invalid=\"true\""),
        "{html}"
    );
    // The exception form likewise, with a date input.
    let (s, html, _) = call(
        &app,
        form(
            "/exceptions",
            "title=keep%20me&reason=why&end_date=31%2F12%2F2026&namespaces=shop",
        ),
    )
    .await;
    assert_eq!(s, 400);
    let html = text(&html);
    assert!(html.contains("end date: use YYYY-MM-DD"), "{html}");
    assert!(
        html.contains("value=\"keep me\"")
            && html.contains(">why</textarea>")
            && html.contains("value=\"shop\""),
        "{html}"
    );
    assert!(
        html.contains("name=\"end_date\" type=\"date\" value=\"31/12/2026\" aria-invalid=\"true\""),
        "{html}"
    );

    // The user and key forms too (the password is never sent back).
    let (s, html, _) = call(
        &app,
        form(
            "/users",
            "email=viewer%40example.com&password=another-password-1&role=admin",
        ),
    )
    .await;
    assert_eq!(s, 400, "a taken email: {html}");
    let html = text(&html);
    assert!(
        html.contains("value=\"viewer@example.com\" required aria-invalid=\"true\""),
        "{html}"
    );
    assert!(html.contains("<option value=\"admin\" selected>"), "{html}");
    assert!(!html.contains("another-password-1"));
    let (s, html, _) = call(
        &app,
        form("/api-keys", "name=ci%20key&scope=metrics&scope=nonsense"),
    )
    .await;
    assert_eq!(s, 400, "{html}");
    let html = text(&html);
    assert!(
        html.contains("value=\"ci key\"") && html.contains("value=\"metrics\" checked"),
        "{html}"
    );

    // Deleting needs the confirmation box; without it nothing is deleted.
    let (s, _, h) = call(&app, form("/clusters", "name=prod")).await;
    assert_eq!(s, 303);
    let page = h.get("location").unwrap().to_str().unwrap().to_string();
    let (_, html, _) = call(&app, a.get(&page)).await;
    assert!(
        text(&html).contains("name=\"confirm\" value=\"1\" required"),
        "{html}"
    );
    let (s, html, _) = call(&app, form(&format!("{page}/delete"), "")).await;
    assert_eq!(s, 400, "{html}");
    assert!(text(&html).contains("tick the confirmation box"), "{html}");
    let (s, _, _) = call(&app, a.get(&page)).await;
    assert_eq!(s, 200, "still there");
    let (s, _, _) = call(&app, form(&format!("{page}/delete"), "confirm=1")).await;
    assert_eq!(s, 303);
    let (s, _, _) = call(&app, a.get(&page)).await;
    assert_eq!(s, 404, "deleted once confirmed");
}
