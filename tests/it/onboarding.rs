//! A new cluster's page says what to do next: the webhook configuration to download (the same
//! YAML `bulwark webhook-config` prints), what runs there, how its images are judged, and a
//! warning (with a confirmation) before enforcement denies images that run now.

use bulwark::http::{Role, Scope};
use serde_json::json;

use crate::support::{call, Caller, InProcess};

const DEBIAN: &[u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");

#[actix_web::test]
async fn a_cluster_page_leads_from_creation_to_enforcement() {
    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    t.user("viewer@example.com", Role::ReadOnly);
    let key = t.key(admin, &[Scope::Admin, Scope::Scanner]);
    let (s_admin, csrf) = t.session("admin@example.com");
    let (s_viewer, _) = t.session("viewer@example.com");
    // The appliance's CA, as `serve` makes it at first start.
    bulwark::http::tls::ensure_certificate(&t.app.state.config).unwrap();
    let app = t.service().await;
    let a = Caller::session(&s_admin);
    let form = |body: String| a.form("/clusters", format!("csrf={csrf}&{body}"));

    // Created through the form: to its own page, with the next steps.
    let (s, _, h) = call(
        &app,
        form("name=prod&failure_mode=fail-closed&unscanned_action=deny".into()),
    )
    .await;
    assert_eq!(s, 303);
    assert_eq!(h.get("location").unwrap(), "/clusters/1");
    let (s, html, _) = call(
        &app,
        a.get("/clusters/1")
            .insert_header(("host", "bulwark.example:8443")),
    )
    .await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("Created cluster prod: its next steps are below"),
        "{html}"
    );
    assert!(html.contains("No admission review received yet."), "{html}");
    assert!(
        html.contains("value=\"https://bulwark.example:8443\""),
        "the URL it was reached on: {html}"
    );
    assert!(
        html.contains("0 images: 0 non-compliant, 0 not yet scanned"),
        "{html}"
    );

    // The download: the webhook configuration with the CA, the failure policy and exclusions.
    let (s, yaml, h) = call(
        &app,
        a.get("/api/v1/clusters/1/webhook-configuration?url=https://bulwark.internal:8443&exclude_namespaces=kube-system,monitoring"),
    )
    .await;
    assert_eq!(s, 200, "{yaml}");
    let yaml = yaml.as_str().unwrap();
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/yaml"));
    assert!(h
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("bulwark-webhook-prod.yaml"));
    assert!(
        yaml.contains("kind: ValidatingWebhookConfiguration"),
        "{yaml}"
    );
    assert!(
        yaml.contains("url: \"https://bulwark.internal:8443/api/v1/admission/prod\""),
        "{yaml}"
    );
    assert!(yaml.contains("failurePolicy: Fail"), "fail-closed: {yaml}");
    assert!(
        yaml.contains("values: [\"kube-system\", \"monitoring\"]"),
        "{yaml}"
    );
    assert!(
        yaml.contains("caBundle: LS0t"),
        "the CA, base64 PEM: {yaml}"
    );
    let (s, _, _) = call(
        &app,
        Caller::session(&s_viewer).get("/api/v1/clusters/1/webhook-configuration"),
    )
    .await;
    assert_eq!(s, 403, "the URL may carry the cluster's secret token");
    let (s, v, _) = call(
        &app,
        a.get("/api/v1/clusters/1/webhook-configuration?url=http://plain"),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    // With a token required, the download carries it.
    let (s, tok, _) = call(
        &app,
        Caller::key(&key).post("/api/v1/clusters/1/webhook-token", json!({})),
    )
    .await;
    assert_eq!(s, 201, "{tok}");
    let (_, yaml, _) = call(
        &app,
        a.get("/api/v1/clusters/1/webhook-configuration?url=https://b.example"),
    )
    .await;
    let token = tok["token"].as_str().unwrap();
    assert!(yaml
        .as_str()
        .unwrap()
        .contains(&format!("/api/v1/admission/prod/{token}\"")));

    // A non-compliant image and one not yet scanned run there.
    let (s, v, _) = call(
        &app,
        Caller::key(&key).post_bytes(
            "/api/v1/scans?cluster=prod&image=registry.local/team/api:1.0",
            DEBIAN.to_vec(),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let pods = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"metadata": {"name": "web", "namespace": "shop"}, "spec": {"containers": [{"name": "c", "image": "registry.local/team/new:2"}]},
         "status": {"phase": "Running", "podIP": "10.0.0.7"}}]});
    let (s, v, _) = call(&app, Caller::key(&key).put("/api/v1/clusters/1/pods", pods)).await;
    assert_eq!(s, 200, "{v}");
    let (_, html, _) = call(&app, a.get("/clusters/1")).await;
    let html = html.as_str().unwrap();
    assert!(
        html.contains("2 images: 1 non-compliant, 1 not yet scanned"),
        "{html}"
    );
    assert!(
        html.contains(
            "Enforcing now would deny 2 of its images (1 because they are not scanned yet"
        ),
        "{html}"
    );
    assert!(html.contains("registry.local/team/api</a>"), "{html}");

    // Switching enforcement on asks first, keeping what was typed; confirmed, it is saved.
    let save =
        "name=prod&description=edited&enforcement=1&failure_mode=fail-closed&unscanned_action=deny";
    let (s, html, _) = call(&app, a.form("/clusters/1", format!("csrf={csrf}&{save}"))).await;
    assert_eq!(s, 409);
    let html = html.as_str().unwrap();
    assert!(
        html.contains("Enforcing now would deny 2 of the images"),
        "{html}"
    );
    assert!(
        html.contains("id=\"confirm-enforcement\"") && html.contains(">edited</textarea>"),
        "{html}"
    );
    let (_, c, _) = call(&app, a.get("/api/v1/clusters/1")).await;
    assert_eq!(c["enforcement"], false, "nothing saved yet");
    let (s, _, h) = call(
        &app,
        a.form(
            "/clusters/1",
            format!("csrf={csrf}&{save}&confirm_enforcement=1"),
        ),
    )
    .await;
    assert_eq!(s, 303);
    assert_eq!(h.get("location").unwrap(), "/clusters/1");
    let (_, c, _) = call(&app, a.get("/api/v1/clusters/1")).await;
    assert_eq!(
        (c["enforcement"].as_bool(), c["description"].as_str()),
        (Some(true), Some("edited"))
    );

    // The printable report for auditors: settings, policies, exceptions in force, every image.
    let (s, html, _) = call(&app, Caller::session(&s_viewer).get("/clusters/1/report")).await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap();
    assert!(html.contains("Compliance report: cluster prod"), "{html}");
    assert!(
        html.contains("<tr><th>Non-compliant</th><td>1</td></tr>"),
        "{html}"
    );
    assert!(
        html.contains("No fixable critical or high"),
        "the policy that applies: {html}"
    );
    assert!(
        html.contains("registry.local/team/api") && html.contains("registry.local/team/new"),
        "{html}"
    );
    assert!(html.contains("enforced; fail-closed"), "{html}");
}
