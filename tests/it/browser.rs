//! A real browser (headless Chromium through chromedriver's W3C WebDriver API) signs in,
//! creates a cluster through the UI, finds it listed, and leaves a screenshot in the artifacts
//! directory. Chromium and chromedriver are installed by `tests/services/start.sh`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::support::{artifacts_dir, free_port, Fetch, Server, ADMIN_EMAIL, ADMIN_PASSWORD};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

struct Driver {
    /// Our own chromedriver, when the harness did not provide one.
    child: Option<Child>,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Uses the chromedriver of tests/services (`BULWARK_TEST_CHROMEDRIVER`), or starts one.
    async fn start() -> Driver {
        let chromium = find(&["/usr/lib/chromium/chromium", "/usr/bin/chromium"])
            .expect("chromium not found: run tests/services/start.sh (it installs chromium and chromium-driver)");
        let (child, base) = match std::env::var("BULWARK_TEST_CHROMEDRIVER") {
            Ok(url) => (None, url),
            Err(_) => {
                let chromedriver =
                    find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
                        .expect("chromedriver not found: run tests/services/start.sh");
                let port = free_port();
                let child = Command::new(chromedriver)
                    .arg(format!("--port={port}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                (Some(child), format!("http://127.0.0.1:{port}"))
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--disable-quic", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        // Chromium may exit at start when several start at once on a busy machine: a session
        // that was not created is asked for again, a few times.
        let mut tries = 0;
        let session = loop {
            let r: Value = http
                .post(format!("{base}/session"))
                .json(&caps)
                .json_body()
                .await;
            if let Some(id) = r["value"]["sessionId"].as_str() {
                break id.to_string();
            }
            tries += 1;
            assert!(tries < 3, "no WebDriver session: {r}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        // Element lookups wait for the element (pages load after clicks).
        let _ = http
            .post(format!("{base}/session/{session}/timeouts"))
            .json(&json!({"implicit": 5000}))
            .send()
            .await;
        Driver {
            child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.json_body().await;
        assert!(v["value"].get("error").is_none(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    /// Runs `script` (a function body) in the page and returns what it returns.
    async fn execute(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Resizes the window (a phone is 390 × 844 CSS pixels).
    async fn resize(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until the current URL satisfies `ok` (navigation after a click can lag).
    async fn wait_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if ok(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {what}, still at {url}; page:\n{}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Loads `url` until its page contains `needle` (a write just acknowledged can reach a page
    /// a moment later through the caches it invalidates); panics with the page after 15 s.
    async fn wait_page(&self, url: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            self.goto(url).await;
            let src = self.source().await;
            if src.contains(needle) {
                return src;
            }
            if Instant::now() > deadline {
                panic!("{url} never showed '{needle}'; page:\n{src}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Opens `url` behind sign-in: the login form, then back to `url`.
    async fn sign_in(&self, url: &str) {
        self.goto(url).await;
        self.wait_url("the login page", |u| u.contains("/login?next="))
            .await;
        self.type_into("#email", ADMIN_EMAIL).await;
        self.type_into("#password", ADMIN_PASSWORD).await;
        self.click("#login button[type=submit]").await;
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn quit(mut self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
        self.session.clear();
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        // Chromium gives up on a capture that a navigation or a relayout interrupts (a
        // "timeout ... aborted by navigation"): the page is still there, so ask again.
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let mut b64 = Value::Null;
        for _ in 0..3 {
            let v: Value = self.http.get(&url).json_body().await;
            if v["value"].get("error").is_none() {
                b64 = v["value"].clone();
                break;
            }
            assert_eq!(v["value"]["error"], "timeout", "WebDriver /screenshot: {v}");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        assert!(b64.is_string(), "no screenshot after three tries");
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A test that failed before quit(): end its browser (the harness's chromedriver
        // outlives this test).
        if self.session.is_empty() {
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            return;
        }
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let _ = std::process::Command::new("curl")
                .args(["-fsS", "-X", "DELETE", &url])
                .output();
        })
        .join();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[actix_web::test]
async fn sign_in_create_a_cluster_and_see_it_listed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let d = Driver::start().await;
    // A page behind sign-in sends the browser to the login form and back.
    d.sign_in(&format!("{}/clusters", server.base)).await;
    d.wait_url("the clusters page", |u| u.ends_with("/clusters"))
        .await;
    d.click("#new-cluster").await;
    d.wait_url("the new-cluster form", |u| u.ends_with("/clusters/new"))
        .await;
    d.type_into("#name", "browser-made").await;
    d.type_into("#description", "made by <b>Chromium</b>").await;
    d.type_into("#tags", "env=test, ui").await;
    d.click("input[name=enforcement]").await;
    d.click("#cluster-form button[type=submit]").await;
    d.wait_url("the new cluster's page", |u| {
        u.contains("/clusters/") && !u.ends_with("/new")
    })
    .await;
    let src = d.source().await;
    assert!(
        src.contains("Next steps") && src.contains("Download the webhook configuration"),
        "creating a cluster leads to its next steps"
    );
    assert!(
        src.contains("Created cluster browser-made"),
        "the flash comes from the server, not the URL"
    );
    assert!(
        src.contains("made by &lt;b&gt;Chromium&lt;/b&gt;"),
        "and its description is escaped"
    );
    d.screenshot("browser-cluster-next-steps.png").await;
    let src = d
        .wait_page(&format!("{}/clusters", server.base), "browser-made")
        .await;
    assert!(src.contains("browser-made"), "the new cluster is listed");
    let shot = d.screenshot("browser-clusters.png").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);
    // The UI wrote what the API reads.
    let c = server.admin_client().await;
    let list: Value = c
        .get(format!("{}/api/v1/clusters", server.base))
        .json_body()
        .await;
    let made = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "browser-made")
        .unwrap()
        .clone();
    assert_eq!(made["enforcement"], true);
    assert_eq!(made["tags"], json!(["env=test", "ui"]));

    // Image compliance in the browser: a scan arrives, the image is listed as non-compliant,
    // its page shows why, and an exception is requested from there.
    let report = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");
    let r = c
        .post(format!(
            "{}/api/v1/scans?cluster=browser-made&image=registry.local/team/api:1.0",
            server.base
        ))
        .header("content-type", "application/json")
        .body(report.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    d.wait_page(
        &format!("{}/images?compliance=non-compliant", server.base),
        "registry.local/team/api",
    )
    .await;
    d.click("#images tbody a").await;
    d.wait_url("the image page", |u| u.contains("/images/"))
        .await;
    let src = d.source().await;
    assert!(
        src.contains("Non-compliant") && src.contains("CVE-2019-18224"),
        "the verdict and the finding are shown"
    );
    assert!(src.contains("more than the 0 policy"), "with the reason");
    d.screenshot("browser-image.png").await;
    d.click("#CVE-2019-18224 a[href^='/exceptions']").await;
    d.wait_url("the exception form", |u| {
        u.contains("/exceptions?issue_id=")
    })
    .await;
    d.type_into("#x-title", "accepted until the next release")
        .await;
    d.click("#exception-form button[type=submit]").await;
    d.wait_url("the new exception", |u| u.contains("/exceptions/"))
        .await;
    let src = d.source().await;
    assert!(
        src.contains("accepted until the next release") && src.contains("CVE-2019-18224"),
        "{src}"
    );
    d.screenshot("browser-exception.png").await;
    d.quit().await;
}

/// The policy form shows every scanner's rule, and saving it (here only a description change)
/// keeps the rule for Bulwark's own scanner: a fixable critical from `bulwark scan --upload`
/// still makes the image non-compliant.
#[actix_web::test]
async fn a_policy_saved_in_the_browser_still_judges_the_native_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let d = Driver::start().await;
    d.sign_in(&format!("{}/policies/1", server.base)).await;
    d.wait_url("the policy form", |u| u.ends_with("/policies/1"))
        .await;
    let src = d.source().await;
    assert!(
        src.contains("id=\"rule-trivy\"") && src.contains("id=\"rule-bulwark\""),
        "both scanners' rules are on the form"
    );
    d.type_into("#p-desc", " Edited in the browser.").await;
    d.screenshot("browser-policy.png").await;
    d.click("#policy-form button[type=submit]").await;
    d.wait_url("the policy list", |u| u.ends_with("/policies"))
        .await;
    let c = server.admin_client().await;
    let policy: Value = c
        .get(format!("{}/api/v1/policies/1", server.base))
        .json_body()
        .await;
    assert!(
        policy["description"]
            .as_str()
            .unwrap()
            .ends_with("Edited in the browser."),
        "{policy}"
    );
    let bulwark_rule = policy["scanners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["scanner"] == "bulwark")
        .unwrap_or_else(|| panic!("the bulwark rule is kept: {policy}"))
        .clone();
    assert_eq!(bulwark_rule["fixable"]["critical"], 0, "{policy}");

    // A report as `bulwark scan --upload` sends it: Trivy's format with Bulwark's marker.
    let mut report: Value =
        serde_json::from_slice(include_bytes!("../fixtures/trivy/debian-buster.trivy.json"))
            .unwrap();
    report["Bulwark"] = json!({"Version": "test"});
    let r = c
        .post(format!("{}/api/v1/clusters", server.base))
        .json(&json!({"name": "prod"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = c
        .post(format!(
            "{}/api/v1/scans?cluster=prod&image=registry.local/team/native:1.0",
            server.base
        ))
        .json(&report)
        .json_body()
        .await;
    assert_eq!(v["compliant"], false, "{v}");
    let src = d
        .wait_page(
            &format!("{}/images?compliance=non-compliant", server.base),
            "registry.local/team/native",
        )
        .await;
    assert!(!src.contains("not judged by any policy"), "{src}");
    d.quit().await;
}

/// The console as a team uses it: the dashboard's figures and charts over a seeded appliance,
/// the image list paged while a new image arrives, a refused form round trip, and the layout on
/// a phone.
#[actix_web::test]
async fn dashboard_lists_forms_and_a_phone() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await;
    let c = server.admin_client().await;
    let base = server.base.clone();
    let r = c
        .post(format!("{base}/api/v1/clusters"))
        .json(&json!({"name": "prod"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let upload = |image: String, report: &'static [u8]| {
        c.post(format!("{base}/api/v1/scans?cluster=prod&image={image}"))
            .header("content-type", "application/json")
            .body(report.to_vec())
            .send()
    };
    let debian: &'static [u8] = include_bytes!("../fixtures/trivy/debian-buster.trivy.json");
    let alpine: &'static [u8] = include_bytes!("../fixtures/trivy/alpine-310.trivy.json");
    for n in 0..24 {
        let report = if n % 4 == 0 { debian } else { alpine };
        let r = upload(format!("registry.local/app-{n:02}:1"), report)
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let d = Driver::start().await;
    d.sign_in(&format!("{base}/")).await;
    d.wait_url("the dashboard", |u| u.ends_with(&format!("{base}/")))
        .await;
    let src = d.source().await;
    assert!(
        src.contains("of scanned images compliant (18 of 24)") && src.contains("75%"),
        "the dashboard's figures: {src}"
    );
    assert!(
        src.contains("<svg class=\"chart\""),
        "trend charts are drawn"
    );
    d.screenshot("browser-dashboard.png").await;

    // Pages of 10 by name; an image sorting before the cursor arrives before "Next page".
    let first = d
        .wait_page(&format!("{base}/images?limit=10"), ">registry.local/app-")
        .await;
    let names = |src: &str| -> Vec<String> {
        src.match_indices(">registry.local/app-")
            .map(|(i, _)| src[i + 1..].split('<').next().unwrap().to_string())
            .collect()
    };
    let mut seen = names(&first);
    assert_eq!(seen.len(), 10);
    let r = upload("registry.local/app-00a:1".into(), alpine)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    loop {
        d.click("#next-page").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let src = d.source().await;
        seen.extend(names(&src));
        if !src.contains("id=\"next-page\"") {
            break;
        }
    }
    let expected: Vec<String> = (0..24)
        .map(|n| format!("registry.local/app-{n:02}"))
        .collect();
    assert_eq!(
        seen, expected,
        "every image once, in order, across the insert"
    );

    // A refused form keeps what was typed and marks the field.
    d.goto(&format!("{base}/clusters/new")).await;
    d.type_into("#name", "bad name!").await;
    d.type_into("#description", "typed before the error").await;
    d.click("#cluster-form button[type=submit]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let src = d.source().await;
    assert!(
        src.contains("role=\"alert\"") && src.contains("typed before the error"),
        "{src}"
    );
    let invalid = d
        .execute("return document.querySelector('#name').getAttribute('aria-invalid');")
        .await;
    assert_eq!(invalid, "true");

    // A phone: nothing wider than the screen, on the dashboard and the image list.
    d.resize(390, 844).await;
    for page in ["/", "/images", "/clusters/1"] {
        d.goto(&format!("{base}{page}")).await;
        let overflow = d
            .execute("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        assert!(
            overflow.as_i64().unwrap() <= 0,
            "{page} scrolls sideways by {overflow} px"
        );
    }
    d.goto(&format!("{base}/")).await;
    d.screenshot("browser-dashboard-phone.png").await;
    d.quit().await;
}

/// OpenID Connect in Chromium: the sign-in page's button, the provider's own login form, and
/// back into the console signed in with the role the groups give. The provider (tests/services)
/// knows the redirect URI on port 18443, so the appliance listens there.
#[actix_web::test]
async fn openid_connect_sign_in_in_the_browser() {
    let issuer = std::env::var("BULWARK_TEST_OIDC_ISSUER").unwrap_or_else(|_| {
        panic!("BULWARK_TEST_OIDC_ISSUER is unset: run tests/services/start.sh DIR oidc and source DIR/endpoints.env (tests/run-all.sh does)")
    });
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_on(
        &dir.path().join("data"),
        18443,
        &[
            ("BULWARK_HTTP_PUBLIC_URL", "https://127.0.0.1:18443"),
            ("BULWARK_ADMIN_EMAIL", ADMIN_EMAIL),
            ("BULWARK_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ],
    )
    .await;
    let c = server.admin_client().await;
    let r = c
        .post(format!("{}/api/v1/sso/providers", server.base))
        .json(&json!({"type": "oidc", "name": "corp", "issuer": issuer, "client_id": "bulwark",
                      "client_secret": "bulwark-client-secret", "scopes": ["openid", "email", "groups"],
                      "group_claim": "groups", "group_roles": {"bulwark-admins": "admin"},
                      "default_role": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let d = Driver::start().await;
    d.goto(&format!("{}/login?next=/images", server.base)).await;
    d.click("#sso-corp").await;
    d.wait_url("the provider's login form", |u| u.contains("/interaction/"))
        .await;
    d.type_into("#username", "bob").await;
    d.type_into("#password", "bob-pass-1").await;
    d.screenshot("browser-oidc-provider.png").await;
    d.click("#sign-in").await;
    d.wait_url("the console", |u| u.ends_with("/images")).await;
    let src = d.source().await;
    assert!(
        src.contains("bob@corp.test") && src.contains(">admin<"),
        "signed in as bob, an admin: {src}"
    );
    d.quit().await;
}
