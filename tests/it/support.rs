//! Test harness: an in-process appliance and a spawned one.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::test::{self, TestRequest};
use bulwark::app::Appliance;
use bulwark::auth::{self, Actor};
use bulwark::config::Config;
use bulwark::http::{Role, Scope};
use serde_json::Value;

/// Installs the rustls provider the binary installs in `main`.
pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A config on a fresh temp data dir.
pub fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.join("data"),
        ..Config::default()
    }
}

/// An in-process appliance (no listener) with its temp dir.
pub struct InProcess {
    /// Kept so the temp dir lives as long as the appliance.
    pub _dir: tempfile::TempDir,
    pub app: Appliance,
}

impl InProcess {
    pub fn new() -> InProcess {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut Config)) -> InProcess {
        init();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        tweak(&mut cfg);
        let app = Appliance::open(cfg).unwrap();
        InProcess { _dir: dir, app }
    }

    pub fn store(&self) -> &bulwark::store::Store {
        &self.app.state.store
    }

    /// Creates a user and returns its id.
    pub fn user(&self, email: &str, role: Role) -> u64 {
        auth::create_user(self.store(), &Actor::cli(), email, "password-1234", role)
            .unwrap()
            .id
    }

    /// A session token and CSRF token for an existing user (password `password-1234`).
    pub fn session(&self, email: &str) -> (String, String) {
        let t = auth::Throttle::new(100, Duration::from_secs(60));
        let ok = auth::login(
            self.store(),
            &t,
            Duration::from_secs(3600),
            email,
            "password-1234",
            "127.0.0.1",
        )
        .unwrap();
        (ok.token, ok.csrf)
    }

    /// A new API key.
    pub fn key(&self, owner: u64, scopes: &[Scope]) -> String {
        auth::create_api_key(self.store(), &Actor::cli(), owner, "test", scopes)
            .unwrap()
            .key
    }

    /// The initialized actix service.
    pub async fn service(
        &self,
    ) -> impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    > {
        test::init_service(bulwark::http::app(self.app.state.clone(), &self.app.routes)).await
    }
}

/// A free loopback port (racy in theory; fine for tests that bind right away).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `bulwark serve` child process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: PathBuf,
}

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

impl Server {
    /// Starts the real binary on `data_dir` and waits for `/readyz`.
    pub async fn start(data_dir: &Path) -> Server {
        Self::start_with(
            data_dir,
            &[
                ("BULWARK_ADMIN_EMAIL", ADMIN_EMAIL),
                ("BULWARK_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ],
        )
        .await
    }

    pub async fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_on(data_dir, free_port(), env).await
    }

    /// Like [`Server::start_with`], on `port` (for peers that only know fixed addresses, like
    /// an identity provider's registered redirect URIs).
    pub async fn start_on(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        let log = data_dir.with_extension(format!("{port}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bulwark"));
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.env_remove("BULWARK_CONFIG")
            .stdout(Stdio::null())
            .stderr(f);
        let child = cmd.spawn().unwrap();
        let s = Server {
            child,
            base: format!("https://127.0.0.1:{port}"),
            log,
        };
        s.wait_ready().await;
        s
    }

    pub async fn wait_ready(&self) {
        let c = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = c.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not become ready; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for exit (up to `secs`), returning the exit status.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A client signed in as the bootstrap admin.
    pub async fn admin_client(&self) -> reqwest::Client {
        let c = cookie_client();
        let r = c
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long the test clients keep an idle connection: less than the appliance's keep-alive
/// (actix's 5 s), so a client never sends on a connection the server is closing at that moment
/// (hyper then fails the request with `IncompleteMessage` instead of retrying it).
const POOL_IDLE: Duration = Duration::from_secs(2);

/// An HTTPS client that accepts the appliance's self-signed certificate.
pub fn client() -> reqwest::Client {
    init();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .pool_idle_timeout(POOL_IDLE)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Like [`client`], keeping cookies.
pub fn cookie_client() -> reqwest::Client {
    init();
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .pool_idle_timeout(POOL_IDLE)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Sends a request to a spawned appliance (or any test server) and reads the whole answer,
/// failing the test on a transport or decoding error: the chain every test would repeat.
#[allow(async_fn_in_trait)] // test code: no caller needs the futures to be `Send`
pub trait Fetch {
    /// The answer as JSON.
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> T;
    /// The answer as text.
    async fn text_body(self) -> String;
    /// The answer's bytes, read to the end.
    async fn bytes_body(self) -> Vec<u8>;
}

impl Fetch for reqwest::RequestBuilder {
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> T {
        self.send().await.unwrap().json().await.unwrap()
    }

    async fn text_body(self) -> String {
        self.send().await.unwrap().text().await.unwrap()
    }

    async fn bytes_body(self) -> Vec<u8> {
        self.send().await.unwrap().bytes().await.unwrap().to_vec()
    }
}

/// Writes `files` (path relative to `root`, contents) under `root`, making the folders.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

/// Where tests put artifacts (screenshots): `$BULWARK_TEST_ARTIFACTS` or `./test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let d = std::env::var_os("BULWARK_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The peer address in-process requests come from.
pub const IP: &str = "10.1.2.3:40000";

/// Calls the in-process app: status, JSON body (or the text as a JSON string) and headers.
pub async fn call<S, B>(
    app: &S,
    req: TestRequest,
) -> (u16, Value, actix_web::http::header::HeaderMap)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = test::call_service(app, req.peer_addr(IP.parse().unwrap()).to_request()).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = test::read_body(res).await;
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, v, headers)
}

/// Waits until job `name` has finished a run newer than `after` (a run id, or none) and returns
/// that run. `get` builds `GET /api/v1/jobs/{name}` with the caller's credentials.
pub async fn finished_run<S, B>(app: &S, get: impl Fn() -> TestRequest, after: Option<u64>) -> Value
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, v, _) = call(app, get()).await;
        assert_eq!(s, 200, "{v}");
        let id = v["last_run"]["id"].as_u64();
        if v["running"] == false && id.is_some() && id != after {
            return v["last_run"].clone();
        }
        assert!(Instant::now() < deadline, "the job did not finish: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Who an in-process request is sent as (`Caller::default()`: nobody signed in), and requests
/// built for them:
/// `call(&app, admin.post("/api/v1/clusters", json!({...}))).await`.
#[derive(Clone, Default)]
pub struct Caller {
    cookie: Option<String>,
    key: Option<String>,
    bearer: Option<String>,
}

impl Caller {
    /// A signed-in session (its token, as `InProcess::session` returns it).
    pub fn session(token: &str) -> Caller {
        Caller {
            cookie: Some(token.to_string()),
            ..Caller::default()
        }
    }

    /// An API key.
    pub fn key(key: &str) -> Caller {
        Caller {
            key: Some(key.to_string()),
            ..Caller::default()
        }
    }

    /// An API key sent as `Authorization: Bearer`, as kubectl-style tools send it.
    pub fn bearer(key: &str) -> Caller {
        Caller {
            bearer: Some(key.to_string()),
            ..Caller::default()
        }
    }

    fn with(&self, mut req: TestRequest) -> TestRequest {
        if let Some(c) = &self.cookie {
            req = req.cookie(actix_web::cookie::Cookie::new("bulwark_session", c.clone()));
        }
        if let Some(k) = &self.key {
            req = req.insert_header(("x-api-key", k.clone()));
        }
        if let Some(k) = &self.bearer {
            req = req.insert_header(("authorization", format!("Bearer {k}")));
        }
        req
    }

    pub fn get(&self, path: &str) -> TestRequest {
        self.with(TestRequest::get().uri(path))
    }

    pub fn post(&self, path: &str, body: Value) -> TestRequest {
        self.with(TestRequest::post().uri(path).set_json(body))
    }

    pub fn delete(&self, path: &str) -> TestRequest {
        self.with(TestRequest::delete().uri(path))
    }

    pub fn put(&self, path: &str, body: Value) -> TestRequest {
        self.with(TestRequest::put().uri(path).set_json(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> TestRequest {
        self.with(TestRequest::patch().uri(path).set_json(body))
    }

    /// A POST of JSON bytes exactly as given (a report file, a malformed body).
    pub fn post_bytes(&self, path: &str, body: Vec<u8>) -> TestRequest {
        self.with(
            TestRequest::post()
                .uri(path)
                .insert_header(("content-type", "application/json"))
                .set_payload(body),
        )
    }

    /// A URL-encoded form post (`body` already encoded, with its `csrf` field).
    pub fn form(&self, path: &str, body: String) -> TestRequest {
        self.with(
            TestRequest::post()
                .uri(path)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body),
        )
    }
}
