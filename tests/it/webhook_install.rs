//! Installing the admission webhook through a connected cluster's API server (the in-test
//! API server of `kube_sync.rs`): created with the CA bundle, the failure policy from the
//! cluster's failure mode and the namespaces left out; compared with what Bulwark would install
//! now (a changed failure mode, a token required, a hand edit in the cluster all show);
//! updated in place; removed; a token without write access fails clearly.

use bulwark::http::{Role, Scope};
use serde_json::json;

use crate::kube_sync::{api_server, kubeconfig};
use crate::support::{call, Caller, InProcess};

const NAME: &str = "bulwark-minikube";

#[actix_web::test]
async fn the_webhook_is_installed_compared_updated_and_removed() {
    let t = InProcess::new();
    t.user("root@example.com", Role::SuperAdmin);
    let admin = t.user("admin@example.com", Role::Admin);
    let writer = t.key(admin, &[Scope::Admin]);
    let reader = t.key(admin, &[Scope::Read]);
    let (root, _) = t.session("root@example.com");
    let (admin_s, csrf) = t.session("admin@example.com");
    bulwark::http::tls::ensure_certificate(&t.app.state.config).unwrap();
    let app = t.service().await;
    let (server, ca, api, _handle) = api_server();
    let (s, c, _) = call(
        &app,
        Caller::bearer(&writer).post("/api/v1/clusters", json!({"name": "minikube"})),
    )
    .await;
    assert_eq!(s, 201, "{c}");
    let id = c["id"].as_u64().unwrap();
    let hook = format!("/api/v1/clusters/{id}/webhook");

    // Not connected: nothing to install into.
    let (s, v, _) = call(
        &app,
        Caller::bearer(&writer).put(&hook, json!({"url": "https://bulwark.test:8443"})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, v, _) = call(
        &app,
        Caller::bearer(&writer).put(
            &format!("/api/v1/clusters/{id}/kubernetes"),
            json!({"kubeconfig": kubeconfig(&server, &ca, "reader-token-1")}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    let (s, st, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{hook}?url=https://bulwark.test:8443")),
    )
    .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(
        (st["installed"].as_bool(), st["matches"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(st["name"], NAME);

    let (s, _, _) = call(
        &app,
        Caller::bearer(&reader).put(&hook, json!({"url": "https://bulwark.test:8443"})),
    )
    .await;
    assert_eq!(s, 403, "readers cannot install");
    let body = json!({"url": "https://bulwark.test:8443", "exclude_namespaces": "kube-system,monitoring", "timeout": 7});
    let (s, st, _) = call(&app, Caller::bearer(&writer).put(&hook, body.clone())).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(
        (st["installed"].as_bool(), st["matches"].as_bool()),
        (Some(true), Some(true)),
        "{st}"
    );
    {
        let a = api.lock().unwrap();
        let o = &a.webhooks[NAME];
        let w = &o["webhooks"][0];
        assert_eq!(
            w["clientConfig"]["url"],
            "https://bulwark.test:8443/api/v1/admission/minikube"
        );
        assert!(w["clientConfig"]["caBundle"].as_str().unwrap().len() > 100);
        assert_eq!(w["failurePolicy"], "Ignore", "fail-open");
        assert_eq!(w["timeoutSeconds"], 7);
        assert_eq!(
            w["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["kube-system", "monitoring"])
        );
    }

    // The cluster turns fail-closed: the installed webhook no longer matches, until updated.
    let (s, _, _) = call(
        &app,
        Caller::bearer(&writer).patch(
            &format!("/api/v1/clusters/{id}"),
            json!({"failure_mode": "fail-closed"}),
        ),
    )
    .await;
    assert_eq!(s, 200);
    let (_, st, _) = call(&app, Caller::bearer(&reader).get(&hook)).await;
    assert_eq!(st["matches"], false, "{st}");
    assert!(
        st["differences"].to_string().contains("failurePolicy"),
        "{st}"
    );
    let (s, st, _) = call(&app, Caller::bearer(&writer).put(&hook, body.clone())).await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["matches"], true, "{st}");
    assert_eq!(
        api.lock().unwrap().webhooks[NAME]["webhooks"][0]["failurePolicy"],
        "Fail"
    );
    assert_eq!(
        api.lock().unwrap().webhooks[NAME]["metadata"]["resourceVersion"],
        "2",
        "replaced in place"
    );

    // A hand edit in the cluster shows, by field, without the values.
    api.lock().unwrap().webhooks.get_mut(NAME).unwrap()["webhooks"][0]["clientConfig"]["url"] =
        json!("https://evil.test/steal");
    let (_, st, _) = call(&app, Caller::bearer(&reader).get(&hook)).await;
    assert_eq!(
        st["differences"],
        json!(["webhooks[0].clientConfig differs"]),
        "{st}"
    );
    assert!(!st.to_string().contains("evil"), "{st}");

    // Requiring a webhook token changes the URL Bulwark would install; the token never shows.
    let (s, tok, _) = call(
        &app,
        Caller::bearer(&writer).post(&format!("/api/v1/clusters/{id}/webhook-token"), json!({})),
    )
    .await;
    assert_eq!(s, 201, "{tok}");
    let token = tok["token"].as_str().unwrap().to_string();
    let (s, st, _) = call(&app, Caller::bearer(&writer).put(&hook, body.clone())).await;
    assert_eq!(s, 200, "{st}");
    assert!(!st.to_string().contains(&token));
    assert!(
        api.lock().unwrap().webhooks[NAME]["webhooks"][0]["clientConfig"]["url"]
            .as_str()
            .unwrap()
            .ends_with(&token)
    );

    // A token that may only read: a clear 502, nothing changed.
    api.lock().unwrap().webhooks_forbidden = true;
    let (s, v, _) = call(&app, Caller::bearer(&writer).delete(&hook)).await;
    assert_eq!(s, 502, "{v}");
    assert!(
        v.to_string().contains("403") && v.to_string().contains("forbidden"),
        "{v}"
    );
    assert!(api.lock().unwrap().webhooks.contains_key(NAME));
    api.lock().unwrap().webhooks_forbidden = false;

    let (s, v, _) = call(&app, Caller::bearer(&writer).delete(&hook)).await;
    assert_eq!((s, v["removed"].as_bool()), (200, Some(true)), "{v}");
    assert!(api.lock().unwrap().webhooks.is_empty());
    let (_, v, _) = call(&app, Caller::bearer(&writer).delete(&hook)).await;
    assert_eq!(v["removed"], false);
    let (_, st, _) = call(
        &app,
        Caller::bearer(&reader).get(&format!("{hook}?url=https://bulwark.test:8443")),
    )
    .await;
    assert_eq!(st["installed"], false);

    // The cluster page does the same through forms; the outcome is the next page's message.
    let form = |path: &str, body: String| {
        Caller::session(&admin_s).form(&format!("/clusters/{id}/{path}"), body)
    };
    let fields =
        format!("csrf={csrf}&url=https%3A%2F%2Fbulwark.test%3A8443&exclude_namespaces=kube-system");
    for (path, says) in [
        ("webhook", "exactly as Bulwark would install it"),
        ("webhook/check", "exactly as Bulwark would install it"),
        ("webhook/delete", "removed from the cluster"),
        ("webhook/check", "has no bulwark-minikube"),
    ] {
        let body = if path.ends_with("delete") {
            format!("csrf={csrf}&confirm=1")
        } else {
            fields.clone()
        };
        let (s, _, h) = call(&app, form(path, body)).await;
        assert_eq!(s, 303, "{path}");
        assert!(h
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(&format!("/clusters/{id}")));
        let (_, page, _) = call(
            &app,
            Caller::session(&admin_s).get(&format!("/clusters/{id}")),
        )
        .await;
        assert!(page.as_str().unwrap().contains(says), "{path}: {page}");
    }

    let (_, log, _) = call(
        &app,
        Caller::session(&root).get("/api/v1/audit-log?action=cluster.webhook"),
    )
    .await;
    let log = log.to_string();
    assert!(
        log.contains("cluster.webhook.install") && log.contains("cluster.webhook.remove"),
        "{log}"
    );
}
