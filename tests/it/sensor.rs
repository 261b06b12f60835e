//! The data-in-motion sensor on real traffic: a Python HTTP server and real clients exchange JSON,
//! form and query-string data carrying known sensitive values and decoys; tcpdump captures it
//! on loopback; `bulwark sensor --pcap` must report the right data types per endpoint and
//! never a raw value.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Fetch;

/// A tiny JSON API: `POST /api/customers/<id>` answers with the customer's SSN, `/healthz` is
/// a probe, everything else echoes `{"ok": true}`.
pub(crate) const SERVER: &str = r#"
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        if self.path.startswith("/api/customers/"):
            self.reply({"id": self.path.rsplit("/", 1)[-1], "ssn": "536-90-4399", "status": "active"})
        else:
            self.reply({"ok": True})
    def do_GET(self):
        self.reply({"ok": True})
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

pub(crate) struct Kill(pub(crate) std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads a child's output line by line until it says `needle`. `Err` carries what it said
/// before its output ended without saying it.
pub(crate) fn wait_said(out: &mut impl BufRead, needle: &str) -> Result<String, String> {
    let mut said = String::new();
    while !said.contains(needle) {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            return Err(said);
        }
        said.push_str(&line);
    }
    Ok(said)
}

#[actix_web::test]
async fn sensor_reads_real_captured_traffic() {
    assert!(
        std::path::Path::new("/usr/bin/tcpdump").exists()
            || std::path::Path::new("/usr/sbin/tcpdump").exists(),
        "tcpdump is missing: run tests/services/start.sh DIR traffic (tests/run-all.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let _server = Kill(
        Command::new("python3")
            .args(["-c", SERVER, &port.to_string()])
            .spawn()
            .unwrap(),
    );
    let pcap = dir.path().join("traffic.pcap");
    let mut dump = Kill(
        Command::new("tcpdump")
            // `any` (Linux cooked v2 framing): a port filter on `lo` itself captures nothing in
            // some sandboxes, and this exercises SLL2 parsing too.
            .args([
                "-i",
                "any",
                "--immediate-mode",
                "-B",
                "16384",
                "-U",
                "-s",
                "0",
                "-w",
            ])
            .arg(&pcap)
            .arg(format!("tcp port {port}"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // tcpdump says "listening on …" once it captures.
    let mut err = BufReader::new(dump.0.stderr.take().unwrap());
    if let Err(said) = wait_said(&mut err, "listening") {
        panic!("tcpdump did not start: {said}");
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the test server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // JSON with a card, its CVV and an email; decoys with bad checksums.
    for id in [41, 42] {
        let r = client
            .post(format!("{base}/api/customers/{id}"))
            .json(&serde_json::json!({
                "email": "ada@analytical.engineering",
                "card": {"number": "4539578763621486", "cvv": "123"},
                "backup_card": "4539578763621487",
                "ref": "936-90-4399"
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // A login form and a query string.
    client
        .post(format!("{base}/login"))
        .form(&[("username", "ada"), ("password", "Tr0ub4dor&3")])
        .bytes_body()
        .await;
    client
        .get(format!("{base}/search?email=grace.hopper%40navy.mil"))
        .bytes_body()
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGINT makes tcpdump flush and close the file.
    unsafe {
        libc::kill(dump.0.id() as i32, libc::SIGINT);
    }
    dump.0.wait().unwrap();
    drop(err);

    let out = dir.path().join("events.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["sensor", "--pcap"])
        .arg(&pcap)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |endpoint: &str, direction: &str| {
        events
            .iter()
            .find(|e| e["endpoint"] == endpoint && e["direction"] == direction)
            .unwrap_or_else(|| panic!("no {direction} event for {endpoint}: {text}"))
    };
    let types = |e: &Value| -> Vec<String> {
        e["data_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    };
    let customers = find("/api/customers/{id}", "request");
    assert_eq!(types(customers), vec!["pci.cvv", "pci.pan", "pii.email"]);
    assert_eq!(
        customers["exchanges"], 2,
        "both ids collapse into one endpoint"
    );
    assert_eq!(customers["method"], "POST");
    assert_eq!(customers["source"], "127.0.0.1");
    assert_eq!(customers["sensitivity"], "High");
    assert_eq!(
        types(find("/api/customers/{id}", "response")),
        vec!["id.us_ssn"]
    );
    assert_eq!(types(find("/login", "request")), vec!["sec.password"]);
    assert_eq!(types(find("/search", "request")), vec!["pii.email"]);
    assert!(
        !events.iter().any(|e| e["endpoint"] == "/healthz"),
        "probes are skipped"
    );
    for raw in [
        "4539578763621486",
        "ada@analytical.engineering",
        "536-90-4399",
        "Tr0ub4dor&3",
        "grace.hopper",
    ] {
        assert!(!text.contains(raw), "{raw} leaked: {text}");
    }
    let stats = stats_of(&o.stderr);
    assert!(stats["exchanges"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["probes_skipped"].as_u64().unwrap() >= 1, "{stats}");

    // Skipped paths are the user's choice: with --keep-probes nothing is left out, and with
    // --skip-path only that path is.
    let run_stats = |flags: &[&str]| -> Value {
        let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args(["sensor", "--pcap"])
            .arg(&pcap)
            .args(flags)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stats_of(&o.stderr)
    };
    assert_eq!(run_stats(&["--keep-probes"])["probes_skipped"], 0);
    assert_eq!(run_stats(&["--skip-path", "/login"])["probes_skipped"], 1);
    // So is the body cap: at 1 KiB nothing here is cut, at 16 bytes the JSON bodies are.
    assert_eq!(run_stats(&[])["truncated_bodies"], 0);
    let cut = run_stats(&["--max-body-bytes", "16"]);
    assert!(cut["truncated_bodies"].as_u64().unwrap() >= 2, "{cut}");

    // The same capture shipped to a running appliance with a sensor-scoped key: the data map
    // shows the flows, the page draws them, and each new type raised an event.
    let data = dir.path().join("data");
    let server = crate::support::Server::start(&data).await;
    let admin = server.admin_client().await;
    let key = sensor_key(&admin, &server.base, "node-1").await;
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["sensor", "--pcap"])
        .arg(&pcap)
        .args(["--server", &server.base, "--server-ca"])
        .arg(data.join("tls/cert.pem"))
        .env("BULWARK_SENSOR_TOKEN", &key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let flows: Value = admin
        .get(format!("{}/api/v1/datamap?type=pci.pan", server.base))
        .json_body()
        .await;
    let items = flows["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{flows}");
    assert_eq!(items[0]["endpoint"], "/api/customers/{id}");
    assert_eq!(items[0]["samples"]["pci.pan"], "1111111111111111");
    assert!(items[0]["sensors"][0].as_str().unwrap().contains("key"));
    let events: Value = admin
        .get(format!("{}/api/v1/datamap/events", server.base))
        .json_body()
        .await;
    assert!(events["items"].as_array().unwrap().len() >= 4, "{events}");
    let page = admin
        .get(format!("{}/datamap", server.base))
        .text_body()
        .await;
    assert!(page.contains("<svg id=\"datamap-graph\"") && page.contains("pci.pan"));
    assert!(!page.contains("4539578763621486"));
    // Flows are searchable, and counted in the metrics.
    let hits: Value = admin
        .get(format!(
            "{}/api/v1/search?q=customers&kind=flow",
            server.base
        ))
        .json_body()
        .await;
    assert!(hits.to_string().contains("/api/customers/{id}"), "{hits}");
    let metrics = admin
        .get(format!("{}/metrics", server.base))
        .text_body()
        .await;
    assert!(
        metrics.contains("bulwark_sensor_findings_total{data_type=\"pci.pan\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("bulwark_datamap_new_types_total"));
    // A key without the sensor scope is refused.
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["sensor", "--pcap"])
        .arg(&pcap)
        .args(["--server", &server.base, "--server-ca"])
        .arg(data.join("tls/cert.pem"))
        .env("BULWARK_SENSOR_TOKEN", "bwk_wrong")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("refused the events (401"));

    // A file that is not a capture is a clear error.
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture at all").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["sensor", "--pcap"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a pcap"));
}

/// A network namespace joined to this one by a veth pair, removed on drop.
pub(crate) struct Netns {
    pub(crate) name: String,
    pub(crate) host_if: String,
    pub(crate) host_ip: String,
    pub(crate) server_ip: String,
}

impl Netns {
    pub(crate) fn new() -> Netns {
        Netns::with_prefix("bw")
    }

    /// A namespace whose interfaces are named `{prefix}{id}a` (host side) and `…b`, with
    /// `id` starting with this process's id modulo 1000.
    fn with_prefix(prefix: &str) -> Netns {
        // Unique per test in this process, and per process.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = (std::process::id() % 1000) * 10 + n % 10;
        let name = format!("{prefix}{id}");
        let host_if = format!("{prefix}{id}a");
        let peer = format!("{prefix}{id}b");
        let net = format!("10.{}.{}", 100 + id % 100, id % 250);
        let run = |cmd: &str| {
            let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
            assert!(
                o.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(&format!("ip netns add {name}"));
        run(&format!("ip link add {host_if} type veth peer name {peer}"));
        run(&format!("ip link set {peer} netns {name}"));
        run(&format!(
            "ip addr add {net}.1/24 dev {host_if} && ip link set {host_if} up"
        ));
        run(&format!(
            "ip netns exec {name} sh -c 'ip addr add {net}.2/24 dev {peer} && ip link set {peer} up && ip link set lo up'"
        ));
        Netns {
            name,
            host_if,
            host_ip: format!("{net}.1"),
            server_ip: format!("{net}.2"),
        }
    }
}

impl Netns {
    /// [`SERVER`] on port 8080 inside the namespace, killed on drop.
    pub(crate) fn serve(&self) -> Kill {
        Kill(
            Command::new("ip")
                .args(["netns", "exec", &self.name, "python3", "-c"])
                .arg(SERVER.replace("\"127.0.0.1\"", &format!("\"{}\"", self.server_ip)))
                .arg("8080")
                .spawn()
                .unwrap(),
        )
    }

    /// The base URL of [`Netns::serve`]'s server, once it answers.
    pub(crate) async fn ready(&self, client: &reqwest::Client) -> String {
        let base = format!("http://{}:8080", self.server_ip);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get(format!("{base}/ready")).send().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the server in the namespace did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        base
    }
}

/// Posts `n` customers (each with an email) to the server at `base`, reading each answer.
pub(crate) async fn post_customers(client: &reqwest::Client, base: &str, n: u32) {
    for id in 0..n {
        client
            .post(format!("{base}/api/customers/{id}"))
            .json(&serde_json::json!({"email": "ada@analytical.engineering"}))
            .bytes_body()
            .await;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The counters a sensor prints to stderr as its last JSON line.
fn stats_of(stderr: &[u8]) -> Value {
    let line = stderr
        .split(|b| *b == b'\n')
        .rfind(|l| l.starts_with(b"{"))
        .unwrap_or_else(|| panic!("no counters: {}", String::from_utf8_lossy(stderr)));
    serde_json::from_slice(line).unwrap()
}

/// A new API key with the `sensor` scope, made by `admin` on the appliance at `base`.
pub(crate) async fn sensor_key(admin: &reqwest::Client, base: &str, name: &str) -> String {
    let key: Value = admin
        .post(format!("{base}/api/v1/api-keys"))
        .json(&serde_json::json!({"name": name, "scopes": ["sensor"]}))
        .json_body()
        .await;
    key["key"].as_str().unwrap().to_string()
}

/// The value of the first sample of `name` (with its labels) in Prometheus text.
pub(crate) fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

pub(crate) fn read_events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (endpoint, direction, data types) of each event: what must agree between live and pcap.
fn summary(events: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["endpoint"].as_str().unwrap().to_string(),
                e["direction"].as_str().unwrap().to_string(),
                e["data_types"].to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Live capture on a veth (TPACKET_V3 ring, two fanout workers) while tcpdump records the same
/// interface: the live sensor and `--pcap` on the recording report the same endpoints and
/// types; SIGTERM makes the live sensor flush and exit 0.
#[actix_web::test]
async fn live_capture_on_a_veth_matches_the_pcap() {
    let ns = Netns::new();
    let _server = ns.serve();
    let dir = tempfile::tempdir().unwrap();
    // The appliance the live sensor ships to, every second.
    let data = dir.path().join("data");
    let appliance = crate::support::Server::start(&data).await;
    let admin = appliance.admin_client().await;
    let key = sensor_key(&admin, &appliance.base, "node-live").await;
    let live_out = dir.path().join("live.jsonl");
    let metrics_addr = format!("127.0.0.1:{}", crate::support::free_port());
    let mut sensor = Kill(
        Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "sensor",
                "--workers",
                "2",
                "--interface",
                &ns.host_if,
                "--metrics-listen",
                &metrics_addr,
                "--output",
            ])
            .arg(&live_out)
            .args([
                "--server",
                &appliance.base,
                "--ship-every",
                "1",
                "--server-ca",
            ])
            .arg(data.join("tls/cert.pem"))
            .env("BULWARK_SENSOR_TOKEN", &key)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut sensor_err = BufReader::new(sensor.0.stderr.take().unwrap());
    let said = wait_said(&mut sensor_err, "capturing on")
        .unwrap_or_else(|said| panic!("the sensor ended: {said}"));
    assert!(
        said.contains(&format!("metrics on http://{metrics_addr}/metrics")),
        "{said}"
    );
    let pcap = dir.path().join("veth.pcap");
    let mut dump = Kill(
        Command::new("tcpdump")
            .args(["-i", &ns.host_if, "--immediate-mode", "-U", "-s", "0", "-w"])
            .arg(&pcap)
            .arg("tcp")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut dump_err = BufReader::new(dump.0.stderr.take().unwrap());
    // tcpdump's own checks below say what went wrong if it never started.
    let _ = wait_said(&mut dump_err, "listening");
    let client = reqwest::Client::new();
    let base = ns.ready(&client).await;
    for id in 0..20 {
        if id == 10 {
            // Let one periodic shipment happen in the middle.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        client
            .post(format!("{base}/api/customers/{id}"))
            .json(&serde_json::json!({"email": "ada@analytical.engineering", "card": {"number": "4539578763621486", "cvv": "123"}}))
            .bytes_body().await;
        client
            .post(format!("{base}/login"))
            .form(&[("username", "ada"), ("password", "Tr0ub4dor&3")])
            .bytes_body()
            .await;
    }
    // The counters reach the metrics listener within a second or so.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = client
            .get(format!("http://{metrics_addr}/metrics"))
            .text_body()
            .await;
        let exchanges = metric(&text, "bulwark_sensor_capture_total{counter=\"exchanges\"}");
        if exchanges.is_some_and(|n| n >= 40) || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        metric(
            &metrics,
            "bulwark_sensor_capture_total{counter=\"exchanges\"}"
        )
        .unwrap()
            >= 40,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "bulwark_sensor_kernel_packets_total").unwrap() > 0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "bulwark_sensor_kernel_drops_total"),
        Some(0),
        "{metrics}"
    );
    let other = client
        .get(format!("http://{metrics_addr}/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    unsafe {
        libc::kill(dump.0.id() as i32, libc::SIGINT);
        libc::kill(sensor.0.id() as i32, libc::SIGTERM);
    }
    dump.0.wait().unwrap();
    let status = sensor.0.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut sensor_err, &mut rest).unwrap();
    assert!(status.success(), "the sensor exits 0 on SIGTERM: {rest}");
    let stats = stats_of(rest.as_bytes());
    assert_eq!(stats["kernel_drops"], 0, "{stats}");
    let live = read_events(&live_out);
    let customers = live
        .iter()
        .find(|e| e["endpoint"] == "/api/customers/{id}" && e["direction"] == "request")
        .unwrap_or_else(|| panic!("{live:?}"));
    assert_eq!(customers["exchanges"], 20, "{live:?} {stats}");
    assert_eq!(customers["source"], ns.host_ip.as_str());

    let pcap_out = dir.path().join("pcap.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["sensor", "--pcap"])
        .arg(&pcap)
        .arg("--output")
        .arg(&pcap_out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(summary(&live), summary(&read_events(&pcap_out)), "{live:?}");
    // Shipped in parts, counted once: the appliance has all 20 exchanges.
    let flows: Value = admin
        .get(format!("{}/api/v1/datamap?type=pci.cvv", appliance.base))
        .json_body()
        .await;
    assert_eq!(flows["items"][0]["exchanges"], 20, "{flows}");
    let text = std::fs::read_to_string(&live_out).unwrap();
    assert!(!text.contains("4539578763621486") && !text.contains("Tr0ub4dor"));
}

/// `serve` with `[sensor] interfaces` captures by itself and fills its own data map.
#[actix_web::test]
async fn the_appliance_runs_an_embedded_sensor() {
    use crate::support::{Server, ADMIN_EMAIL, ADMIN_PASSWORD};
    let ns = Netns::new();
    let _server = ns.serve();
    let dir = tempfile::tempdir().unwrap();
    let appliance = Server::start_with(
        &dir.path().join("data"),
        &[
            ("BULWARK_ADMIN_EMAIL", ADMIN_EMAIL),
            ("BULWARK_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("BULWARK_SENSOR_INTERFACES", &ns.host_if),
            ("BULWARK_SENSOR_STORE_EVERY_SECONDS", "1"),
        ],
    )
    .await;
    let admin = appliance.admin_client().await;
    // The sensor starts with the appliance; give it a moment to open its ring.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !appliance.log_text().contains("embedded sensor capturing") {
        assert!(Instant::now() < deadline, "{}", appliance.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = reqwest::Client::new();
    let base = ns.ready(&client).await;
    post_customers(&client, &base, 3).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let flows: Value = admin
            .get(format!("{}/api/v1/datamap", appliance.base))
            .json_body()
            .await;
        let found = flows["items"].as_array().unwrap().iter().any(|f| {
            f["endpoint"] == "/api/customers/{id}"
                && f["direction"] == "response"
                && f["data_types"][0] == "id.us_ssn"
                && f["sensors"][0] == "embedded sensor"
        });
        if found {
            break;
        }
        assert!(Instant::now() < deadline, "no flow stored: {flows}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The capture counters reach the appliance's metrics (workers publish about once a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = admin
            .get(format!("{}/metrics", appliance.base))
            .text_body()
            .await;
        let exchanges = metric(
            &metrics,
            "bulwark_sensor_capture_total{counter=\"exchanges\"}",
        );
        if exchanges.is_some_and(|n| n >= 3) {
            assert!(metric(&metrics, "bulwark_sensor_kernel_packets_total").unwrap() > 0);
            assert_eq!(
                metric(&metrics, "bulwark_sensor_kernel_drops_total"),
                Some(0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A node's pods come and go: a sensor started on a pattern before any interface matches
/// waits, captures each matching veth as it appears, ends the capture of one that disappears
/// without spinning on its dead socket, and keeps what it saw on each.
#[actix_web::test]
async fn the_sensor_follows_interfaces_that_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let pattern = format!("bk{}*", std::process::id() % 1000);
    let mut sensor = Kill(
        Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "sensor",
                "--interface",
                &pattern,
                "--rescan-every",
                "1",
                "--output",
            ])
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = sensor.0.id();
    let (tx, said) = std::sync::mpsc::channel::<String>();
    let stderr = BufReader::new(sensor.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match said.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("the sensor never said {needle:?}"),
            }
        }
    };
    wait_for("waiting for interfaces matching");
    // CPU time of the sensor (all threads), in clock ticks.
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let client = reqwest::Client::new();
    // A pod appears: its interface is captured within a rescan.
    let first = Netns::with_prefix("bk");
    let server = first.serve();
    wait_for(&format!("capturing on {}", first.host_if));
    let base = first.ready(&client).await;
    post_customers(&client, &base, 3).await;
    // It goes away: the worker on it ends instead of spinning on the dead socket.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(server);
    drop(first);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = cpu();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu() - before;
    assert!(
        used < 100,
        "the sensor used {used} ticks in 2 s: it spins on a dead interface"
    );

    // Another pod appears: captured too.
    let second = Netns::with_prefix("bk");
    let _server = second.serve();
    wait_for(&format!("capturing on {}", second.host_if));
    let base = second.ready(&client).await;
    client
        .post(format!("{base}/login"))
        .form(&[("username", "ada"), ("password", "Tr0ub4dor&3")])
        .bytes_body()
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    assert!(sensor.0.wait().unwrap().success());
    let events = read_events(&out);
    let endpoints: Vec<&str> = events
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap())
        .collect();
    assert!(
        endpoints.contains(&"/api/customers/{id}") && endpoints.contains(&"/login"),
        "{events:?}"
    );
    // The counters at exit include those of the worker whose interface went away.
    // Everything it said until its stderr closed (the reader thread may still be forwarding
    // the last lines when `wait` returns).
    let last: Vec<String> = said.iter().collect();
    let stats = stats_of(last.join("\n").as_bytes());
    assert_eq!(
        stats["exchanges"], 6,
        "a readiness check and 3 posts before the first pod went, 1 and 1 after: {stats}"
    );
}

/// `bulwark sensor-manifest` prints YAML `kubectl apply` takes: a DaemonSet with the security
/// choices asked for, a ServiceAccount, and a NetworkPolicy when asked.
#[test]
fn the_daemonset_manifest_carries_the_security_choices() {
    let manifest = |args: &[&str]| -> Vec<serde_yaml::Value> {
        let o = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .args([
                "sensor-manifest",
                "--server",
                "https://bulwark.internal:8443",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    let find = |docs: &[serde_yaml::Value], kind: &str| {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .cloned()
    };
    // Defaults: capabilities only, host network with its DNS policy, read-only root.
    let docs = manifest(&[]);
    let ds = find(&docs, "DaemonSet").unwrap();
    assert!(find(&docs, "ServiceAccount").is_some());
    assert!(find(&docs, "NetworkPolicy").is_none());
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"].as_bool(), Some(true));
    assert_eq!(pod["dnsPolicy"].as_str(), Some("ClusterFirstWithHostNet"));
    assert_eq!(pod["hostPID"].as_bool(), Some(false));
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    let caps: Vec<&str> = sc["capabilities"]["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(caps, vec!["NET_RAW", "NET_ADMIN", "BPF", "IPC_LOCK"]);
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&args[..3], &["sensor", "--interface", "all-veths"]);
    assert!(args.contains(&"https://bulwark.internal:8443"));
    assert_eq!(
        c["env"][0]["valueFrom"]["secretKeyRef"]["name"].as_str(),
        Some("bulwark-sensor-token")
    );
    // Privileged, PID namespace, a proxy and the NetworkPolicy.
    let docs = manifest(&[
        "--security",
        "privileged",
        "--host-pid",
        "--read-only-root",
        "false",
        "--https-proxy",
        "http://proxy:3128",
        "--no-proxy",
        "10.0.0.0/8",
        "--network-policy",
    ]);
    let ds = find(&docs, "DaemonSet").unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["privileged"].as_bool(), Some(true));
    assert_eq!(
        c["securityContext"]["readOnlyRootFilesystem"].as_bool(),
        Some(false)
    );
    assert_eq!(pod["hostPID"].as_bool(), Some(true));
    let env = serde_yaml::to_string(&c["env"]).unwrap();
    assert!(
        env.contains("HTTPS_PROXY")
            && env.contains("http://proxy:3128")
            && env.contains("NO_PROXY")
    );
    let np = find(&docs, "NetworkPolicy").unwrap();
    assert_eq!(
        np["spec"]["egress"][0]["ports"][0]["port"].as_u64(),
        Some(8443)
    );
    // Without host networking the pod uses the cluster's DNS policy.
    let docs = manifest(&["--host-network", "false"]);
    let pod = find(&docs, "DaemonSet").unwrap()["spec"]["template"]["spec"].clone();
    assert_eq!(pod["dnsPolicy"].as_str(), Some("ClusterFirst"));
    assert!(
        pod["containers"][0]["ports"].is_null(),
        "no metrics port unless asked"
    );
    // A metrics port: the flag, the container port, the scrape annotations, and the policy
    // lets scrapers in on that port only.
    let docs = manifest(&["--metrics-port", "9847", "--network-policy"]);
    let ds = find(&docs, "DaemonSet").unwrap();
    let template = &ds["spec"]["template"];
    let c = &template["spec"]["containers"][0];
    let args = serde_yaml::to_string(&c["args"]).unwrap();
    assert!(
        args.contains("--metrics-listen") && args.contains("0.0.0.0:9847"),
        "{args}"
    );
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(9847));
    assert_eq!(
        template["metadata"]["annotations"]["prometheus.io/port"].as_str(),
        Some("9847")
    );
    let np = find(&docs, "NetworkPolicy").unwrap();
    assert_eq!(
        np["spec"]["ingress"][0]["ports"][0]["port"].as_u64(),
        Some(9847)
    );
}
