//! The data-at-rest crawler against a real PostgreSQL (from tests/services, or started here with
//! the same script): known sensitive values and decoys, a large table sampled from several
//! parts, exotic and binary types, a non-UTF-8 database, a table the crawler may not read, cut
//! values, wrong credentials and an unreachable server; `bulwark crawl --format json` as other
//! tools call it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tokio_postgres::NoTls;

/// A server from tests/services: the harness's (its variable set), or one started here with the
/// same script and stopped when the test ends.
struct Service {
    url: String,
    own: Option<PathBuf>,
}

impl Service {
    fn get(var: &str, service: &str, port_var: &str) -> Service {
        if let Ok(url) = std::env::var(var) {
            return Service { url, own: None };
        }
        // Tests run side by side in one process: each starts its own server on its own port.
        let port = crate::support::free_port();
        let dir =
            std::env::temp_dir().join(format!("bulwark-{service}-{}-{port}", std::process::id()));
        let root = env!("CARGO_MANIFEST_DIR");
        let ok = Command::new(format!("{root}/tests/services/start.sh"))
            .arg(&dir)
            .arg(service)
            .env(port_var, port.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "no {service}: run tests/services/start.sh or set {var}");
        let env = std::fs::read_to_string(dir.join("endpoints.env")).unwrap();
        let prefix = format!("{var}=");
        let url = env
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap()
            .to_string();
        Service {
            url,
            own: Some(dir),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let root = env!("CARGO_MANIFEST_DIR");
            let _ = Command::new(format!("{root}/tests/services/stop.sh"))
                .arg(dir)
                .status();
        }
    }
}

/// The harness's PostgreSQL.
struct Pg(Service);

impl Pg {
    fn get() -> Pg {
        Pg(Service::get("BULWARK_TEST_POSTGRES", "postgres", "PG_PORT"))
    }

    /// The server's URL with another database, user and password.
    fn url_for(&self, db: &str, user: Option<(&str, &str)>) -> String {
        let mut u = url::Url::parse(&self.0.url).unwrap();
        u.set_path(&format!("/{db}"));
        if let Some((name, password)) = user {
            u.set_username(name).unwrap();
            u.set_password(Some(password)).unwrap();
        }
        u.query_pairs_mut().append_pair("sslmode", "disable");
        u.to_string()
    }

    async fn sql(&self, db: &str, sql: &str) {
        let (client, conn) = tokio_postgres::connect(&self.url_for(db, None), NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
    }
}

/// Runs `bulwark crawl --format json` with `sources` in `var` (`BULWARK_CRAWL_POSTGRES`, ...).
pub(crate) fn crawl(var: &str, sources: Value, extra: &[(&str, &str)]) -> (i32, Value) {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["--data-dir"])
        .arg(data.path())
        .args(["crawl", "--format", "json"])
        .env(var, sources.to_string())
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} / {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

fn asset<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["asset"] == name)
        .unwrap_or_else(|| panic!("no asset {name} in {v:#}"))
}

#[tokio::test]
async fn postgres_columns_are_classified_safely_and_boundedly() {
    let pg = Pg::get();
    let db = format!("dar_{}", std::process::id());
    let latin = format!("{db}_ascii");
    for statement in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("DROP DATABASE IF EXISTS {latin}"),
        format!("CREATE DATABASE {db}"),
        format!("CREATE DATABASE {latin} TEMPLATE template0 ENCODING 'SQL_ASCII' LOCALE 'C'"),
    ] {
        pg.sql("postgres", &statement).await;
    }
    pg.sql(
        &db,
        r#"
        CREATE TABLE customers (id serial PRIMARY KEY, email text, card_number text,
            iban varchar(34), order_ref text, uuid uuid, profile jsonb, tags text[],
            photo bytea, home point, created timestamptz DEFAULT now());
        INSERT INTO customers (email, card_number, iban, order_ref, uuid, profile, tags, photo, home)
        SELECT 'jane.doe' || g || '@acme-corp.de', '4539148803436467', 'GB82WEST12345698765432',
               'ORD-2024-' || g, gen_random_uuid(),
               jsonb_build_object('contact', jsonb_build_object('phone_iban', 'DE89370400440532013000')),
               ARRAY['vip', 'eu'], '\x00ff10'::bytea, point(g, g)
        FROM generate_series(1, 300) g;
        CREATE TABLE decoys (id serial PRIMARY KEY, ref_no text, note text);
        INSERT INTO decoys (ref_no, note)
        SELECT '4539148803436468', 'order ' || g || ' shipped' FROM generate_series(1, 50) g;
        CREATE TABLE big (id bigserial PRIMARY KEY, email text);
        INSERT INTO big (email) SELECT 'user' || g || '@shop-mail.de' FROM generate_series(1, 100000) g;
        CREATE TABLE huge (id serial PRIMARY KEY, blob text);
        INSERT INTO huge (blob) SELECT repeat('x', 1000000) FROM generate_series(1, 3);
        CREATE SCHEMA vault;
        CREATE TABLE vault.secrets (id serial PRIMARY KEY, card text);
        INSERT INTO vault.secrets (card) VALUES ('4539148803436467');
        ANALYZE;
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'crawler') THEN
            CREATE ROLE crawler LOGIN PASSWORD 'crawl-pw';
          END IF;
        END $$;
        GRANT USAGE ON SCHEMA public, vault TO crawler;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO crawler;
        "#,
    )
    .await;
    pg.sql(
        &latin,
        r#"CREATE TABLE t (id int, name text); INSERT INTO t VALUES (1, E'M\xfcller \xff'), (2, 'jane.doe@acme-corp.de'); GRANT SELECT ON t TO crawler;"#,
    )
    .await;

    let sources = serde_json::json!([
        {"name": "orders", "connectionString": pg.url_for("postgres", Some(("crawler", "$(CRAWL_PW)"))),
         "databases": [db, latin]},
        {"name": "nowhere", "connectionString": "postgresql://crawler:x@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=3"},
        {"name": "wrong-password", "connectionString": pg.url_for("postgres", Some(("crawler", "not-it")))}
    ]);
    let (code, v) = crawl(
        "BULWARK_CRAWL_POSTGRES",
        sources,
        &[("CRAWL_PW", "crawl-pw")],
    );
    assert_eq!(code, 1, "a source could not be read: {v:#}");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources[0]["status"], "ok", "{v:#}");
    assert_eq!(sources[1]["status"], "error");
    assert!(sources[1]["error"]
        .as_str()
        .unwrap()
        .contains("cannot connect"));
    assert_eq!(sources[2]["status"], "error");
    assert!(
        sources[2]["error"]
            .as_str()
            .unwrap()
            .contains("password authentication failed"),
        "{v:#}"
    );
    let text = v.to_string();
    for raw in [
        "4539148803436467",
        "jane.doe1@",
        "GB82WEST12345698765432",
        "crawl-pw",
    ] {
        assert!(!text.contains(raw), "{raw} printed raw");
    }

    let card = asset(&v, &format!("{db}.public.customers.card_number"));
    assert_eq!(card["types"], serde_json::json!(["pci.pan"]));
    assert_eq!(card["sensitivity"], "high");
    assert_eq!(card["hit_ratio"], 1.0);
    assert_eq!(card["status"], "COMPLETE");
    assert_eq!(card["masked_sample"], "1111111111111111");
    let email = asset(&v, &format!("{db}.public.customers.email"));
    assert_eq!(email["types"], serde_json::json!(["pii.email"]));
    assert_eq!(
        asset(&v, &format!("{db}.public.customers.iban"))["types"],
        serde_json::json!(["fin.iban"])
    );
    let profile = asset(&v, &format!("{db}.public.customers.profile"));
    assert_eq!(profile["data_type"], "jsonb");
    assert!(
        profile["types"]
            .as_array()
            .unwrap()
            .contains(&"fin.iban".into()),
        "{profile}"
    );
    for decoy in [
        "customers.order_ref",
        "customers.uuid",
        "customers.tags",
        "customers.home",
        "decoys.ref_no",
        "decoys.note",
    ] {
        let a = asset(&v, &format!("{db}.public.{decoy}"));
        assert_eq!(a["sensitivity"], "none", "{a}");
        assert_eq!(a["status"], "COMPLETE", "{a}");
    }
    let photo = asset(&v, &format!("{db}.public.customers.photo"));
    assert_eq!(
        (photo["status"].as_str(), photo["reason"].as_str()),
        (Some("SKIPPED"), Some("binary type"))
    );
    let big = asset(&v, &format!("{db}.public.big.email"));
    assert_eq!(big["types"], serde_json::json!(["pii.email"]));
    assert!(
        big["sampled"].as_u64().unwrap() <= 200,
        "bounded rows: {big}"
    );
    let huge = asset(&v, &format!("{db}.public.huge.blob"));
    assert_eq!(huge["status"], "PARTIAL", "{huge}");
    let denied = asset(&v, &format!("{db}.vault.secrets.card"));
    assert_eq!(
        (denied["status"].as_str(), denied["reason"].as_str()),
        (Some("SKIPPED"), Some("permission denied"))
    );
    let latin_email = asset(&v, &format!("{latin}.public.t.name"));
    assert_eq!(
        latin_email["types"],
        serde_json::json!(["pii.email"]),
        "non-UTF-8 rows are read too"
    );

    // Nothing was written: the crawler's sessions are read-only.
    let (client, conn) = tokio_postgres::connect(&pg.url_for(&db, None), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 300);
    drop(client);
    for d in [&db, &latin] {
        pg.sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {d} WITH (FORCE)"),
        )
        .await;
    }
}

#[tokio::test]
async fn mariadb_columns_are_classified_safely_and_boundedly() {
    use mysql_async::prelude::Queryable;
    let my = Service::get("BULWARK_TEST_MYSQL", "mariadb", "MARIADB_PORT");
    let db = format!("dar_{}", std::process::id());
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&my.url).unwrap())
        .await
        .unwrap();
    for statement in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("DROP DATABASE IF EXISTS {db}_private"),
        format!("CREATE DATABASE {db}"),
        format!("CREATE DATABASE {db}_private"),
        format!("CREATE TABLE {db}_private.t (card VARCHAR(32))"),
        format!("USE {db}"),
        "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100), \
         card_number VARCHAR(32), order_ref VARCHAR(32), profile JSON, photo BLOB, \
         created DATETIME DEFAULT CURRENT_TIMESTAMP)"
            .into(),
        "INSERT INTO customers (email, card_number, order_ref, profile, photo) \
         SELECT CONCAT('jane.doe', seq, '@acme-corp.de'), '4539148803436467', CONCAT('ORD-2024-', seq), \
         JSON_OBJECT('billing', JSON_OBJECT('iban', 'GB82WEST12345698765432')), X'00FF10' \
         FROM seq_1_to_300"
            .into(),
        "CREATE TABLE big (id BIGINT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100))".into(),
        "INSERT INTO big (email) SELECT CONCAT('user', seq, '@shop-mail.de') FROM seq_1_to_50000"
            .into(),
        "CREATE TABLE huge (id INT PRIMARY KEY, blob_text LONGTEXT)".into(),
        "INSERT INTO huge VALUES (1, REPEAT('x', 1000000))".into(),
        "CREATE TABLE latin (id INT, name VARCHAR(64)) CHARACTER SET latin1".into(),
        "INSERT INTO latin VALUES (1, _latin1 X'4DFC6C6C6572'), (2, 'jane.doe@acme-corp.de')".into(),
        "CREATE TABLE secrets (id INT, card VARCHAR(32))".into(),
        "INSERT INTO secrets VALUES (1, '4539148803436467')".into(),
        "ANALYZE TABLE customers, big, huge, latin, secrets".into(),
        "CREATE USER IF NOT EXISTS 'crawler'@'127.0.0.1' IDENTIFIED BY 'crawl-pw'".into(),
        format!("GRANT SELECT ON {db}.customers TO 'crawler'@'127.0.0.1'"),
        format!("GRANT SELECT ON {db}.big TO 'crawler'@'127.0.0.1'"),
        format!("GRANT SELECT ON {db}.huge TO 'crawler'@'127.0.0.1'"),
        format!("GRANT SELECT ON {db}.latin TO 'crawler'@'127.0.0.1'"),
        format!("GRANT SELECT (id) ON {db}.secrets TO 'crawler'@'127.0.0.1'"),
    ] {
        conn.query_drop(statement).await.unwrap();
    }
    let mut u = url::Url::parse(&my.url).unwrap();
    u.set_username("crawler").unwrap();
    u.set_password(Some("$(CRAWL_PW)")).unwrap();
    let mut wrong = u.clone();
    wrong.set_password(Some("not-it")).unwrap();
    let sources = serde_json::json!([
        {"name": "shop", "connectionString": u.to_string().replace("%24%28CRAWL_PW%29", "$(CRAWL_PW)"),
         "databases": [db, format!("{db}_private")]},
        {"name": "wrong-password", "connectionString": wrong.to_string()},
        {"name": "nowhere", "connectionString": "mysql://crawler:x@127.0.0.1:1"}
    ]);
    let (code, v) = crawl("BULWARK_CRAWL_MYSQL", sources, &[("CRAWL_PW", "crawl-pw")]);
    assert_eq!(code, 1, "{v:#}");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources[0]["status"], "ok", "{v:#}");
    assert!(
        sources[1]["error"]
            .as_str()
            .unwrap()
            .contains("Access denied"),
        "{v:#}"
    );
    assert!(
        sources[2]["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{v:#}"
    );
    let text = v.to_string();
    for raw in [
        "4539148803436467",
        "jane.doe1@",
        "GB82WEST12345698765432",
        "crawl-pw",
    ] {
        assert!(!text.contains(raw), "{raw} printed raw");
    }
    let card = asset(&v, &format!("{db}.customers.card_number"));
    assert_eq!(card["types"], serde_json::json!(["pci.pan"]));
    assert_eq!(
        (card["hit_ratio"].as_f64(), card["status"].as_str()),
        (Some(1.0), Some("COMPLETE"))
    );
    assert_eq!(
        asset(&v, &format!("{db}.customers.email"))["types"],
        serde_json::json!(["pii.email"])
    );
    let profile = asset(&v, &format!("{db}.customers.profile"));
    assert!(
        profile["types"]
            .as_array()
            .unwrap()
            .contains(&"fin.iban".into()),
        "{profile}"
    );
    for decoy in ["customers.order_ref", "customers.created", "customers.id"] {
        let a = asset(&v, &format!("{db}.{decoy}"));
        assert_eq!(a["sensitivity"], "none", "{a}");
    }
    let photo = asset(&v, &format!("{db}.customers.photo"));
    assert_eq!(photo["status"], "SKIPPED");
    let big = asset(&v, &format!("{db}.big.email"));
    assert_eq!(big["types"], serde_json::json!(["pii.email"]));
    assert!(big["sampled"].as_u64().unwrap() <= 200, "{big}");
    assert_eq!(
        asset(&v, &format!("{db}.huge.blob_text"))["status"],
        "PARTIAL"
    );
    assert_eq!(
        asset(&v, &format!("{db}.latin.name"))["types"],
        serde_json::json!(["pii.email"])
    );
    // MySQL hides the columns and tables an account may not read: only `id` is seen.
    assert_eq!(asset(&v, &format!("{db}.secrets.id"))["status"], "COMPLETE");
    assert!(!text.contains(&format!("{db}.secrets.card")));
    let private = asset(&v, &format!("{db}_private"));
    assert_eq!(private["status"], "SKIPPED");
    assert!(
        private["reason"]
            .as_str()
            .unwrap()
            .starts_with("no tables visible"),
        "{private}"
    );
    let n: Option<u64> = conn
        .query_first(format!("SELECT COUNT(*) FROM {db}.customers"))
        .await
        .unwrap();
    assert_eq!(n, Some(300), "nothing written");
    conn.query_drop(format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}

#[actix_web::test]
async fn the_appliance_crawls_on_demand_and_keeps_what_changed() {
    use crate::support::{call, finished_run, Caller, InProcess};
    use bulwark::http::{Role, Scope};
    let pg = Pg::get();
    let db = format!("dar_app_{}", std::process::id());
    pg.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    pg.sql("postgres", &format!("CREATE DATABASE {db}")).await;
    pg.sql(
        &db,
        "CREATE TABLE people (id int, card text, contact text); \
         INSERT INTO people SELECT g, '4539148803436467', 'n/a' FROM generate_series(1, 20) g;",
    )
    .await;
    let url = pg.url_for(&db, None);
    let t = InProcess::with(|c| {
        let mut source = toml::Table::new();
        source.insert("name".into(), "app-pg".into());
        source.insert("connection_string".into(), url.clone().into());
        source.insert(
            "databases".into(),
            toml::Value::Array(vec![db.clone().into()]),
        );
        c.crawl.postgres = vec![source];
    });
    let admin = t.user("admin@example.com", Role::Admin);
    let key = t.key(admin, &[Scope::Admin]);
    let app = t.service().await;
    let w = Caller::bearer(&key);
    let run_crawl = |after: Option<u64>| {
        let w = w.clone();
        let app = &app;
        async move {
            let (s, v, _) =
                call(app, w.post("/api/v1/jobs/crawl/run", serde_json::json!({}))).await;
            assert_eq!(s, 202, "{v}");
            finished_run(app, || w.get("/api/v1/jobs/crawl"), after).await
        }
    };
    let first = run_crawl(None).await;
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("1 newly sensitive"),
        "{first}"
    );
    let (_, v, _) = call(&app, w.get("/api/v1/dar/assets?sensitivity=any")).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(items[0]["asset"], format!("{db}.public.people.card"));
    assert_eq!(items[0]["types"], serde_json::json!(["pci.pan"]));
    assert!(!v.to_string().contains("4539148803436467"));
    let (_, hits, _) = call(&app, w.get("/api/v1/search?q=pci.pan&kind=data-at-rest")).await;
    assert!(
        hits.to_string().contains("people.card"),
        "searchable: {hits}"
    );

    // The contact column starts holding e-mail addresses: the next run says so, once.
    pg.sql(
        &db,
        "UPDATE people SET contact = 'jane.doe' || id || '@acme-corp.de'",
    )
    .await;
    let second = run_crawl(first["id"].as_u64()).await;
    assert!(
        second["message"]
            .as_str()
            .unwrap()
            .contains("1 newly sensitive"),
        "{second}"
    );
    let (_, runs, _) = call(&app, w.get("/api/v1/dar/runs?source=app-pg")).await;
    assert_eq!(
        runs["items"][0]["newly_sensitive"],
        serde_json::json!([format!("{db}.public.people.contact")])
    );
    let third = run_crawl(second["id"].as_u64()).await;
    assert!(
        third["message"]
            .as_str()
            .unwrap()
            .contains("0 newly sensitive"),
        "{third}"
    );
    let (s, csv, _) = call(&app, w.get("/api/v1/dar/assets?format=csv&q=people")).await;
    assert_eq!(s, 200);
    assert_eq!(
        csv.as_str().unwrap().lines().count(),
        4,
        "header and three columns: {csv}"
    );
    pg.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}

/// The harness's S3 server (s3s-fs, which checks every request's SigV4 signature).
pub(crate) struct S3 {
    svc: Service,
    key: String,
    pub(crate) secret: String,
}

impl S3 {
    pub(crate) fn get() -> S3 {
        let var = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.into());
        S3 {
            svc: Service::get("BULWARK_TEST_S3", "s3", "S3_PORT"),
            key: var("BULWARK_TEST_S3_KEY", "bulwark-test-key"),
            secret: var("BULWARK_TEST_S3_SECRET", "bulwark-test-secret"),
        }
    }

    fn bucket(&self, name: &str) -> rusty_s3::Bucket {
        rusty_s3::Bucket::new(
            self.svc.url.parse().unwrap(),
            rusty_s3::UrlStyle::Path,
            name.to_string(),
            "us-east-1",
        )
        .unwrap()
    }

    pub(crate) async fn create(&self, bucket: &str) {
        use rusty_s3::S3Action;
        let creds = rusty_s3::Credentials::new(&self.key, &self.secret);
        let b = self.bucket(bucket);
        let url = b
            .create_bucket(&creds)
            .sign(std::time::Duration::from_secs(60));
        let resp = reqwest::Client::new().put(url).send().await.unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    }

    pub(crate) async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        use rusty_s3::S3Action;
        let creds = rusty_s3::Credentials::new(&self.key, &self.secret);
        let b = self.bucket(bucket);
        let url = b
            .put_object(Some(&creds), key)
            .sign(std::time::Duration::from_secs(60));
        let resp = reqwest::Client::new()
            .put(url)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{key}: {:?}", resp.text().await);
    }

    pub(crate) fn source(&self, name: &str, buckets: &[&str], secret: &str) -> Value {
        serde_json::json!({
            "name": name, "url": self.svc.url, "type": "minio",
            "accessKeyId": self.key, "secretAccessKey": secret,
            "buckets": buckets,
            "limits": {"keys_listed": 120, "objects_per_group": 4},
        })
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Known sensitive values and decoys in JSON, NDJSON, CSV and gzip objects under dated and
/// numbered keys; a malformed object, a binary one, a bucket of more keys than may be listed,
/// a bucket that does not exist, a wrong secret and an unreachable endpoint.
#[tokio::test]
async fn s3_objects_are_grouped_sampled_and_classified() {
    let s3 = S3::get();
    let id = std::process::id();
    let (crm, logs) = (format!("crm-{id}"), format!("logs-{id}"));
    s3.create(&crm).await;
    s3.create(&logs).await;
    let emails = [
        "ada.lovelace@analytical-engines.co.uk",
        "grace.hopper@navy-compilers.com",
    ];
    for day in 1..=3 {
        let mut lines = String::new();
        for (i, e) in emails.iter().enumerate() {
            lines.push_str(&format!(
                "{{\"id\":\"550e8400-e29b-41d4-a716-44665544000{i}\",\"contact\":{{\"email\":\"{e}\"}},\"payment\":{{\"card\":\"4539 1488 0343 6467\"}},\"order_ref\":\"4539 1488 0343 6468\"}}\n"
            ));
        }
        let key = format!("customers/2024-05-0{day}/export-{day}.ndjson");
        s3.put(&crm, &key, lines.into_bytes()).await;
    }
    let csv = "name,email,order_id\nAda,ada.lovelace@analytical-engines.co.uk,ORD-2024-000123\nGrace,grace.hopper@navy-compilers.com,ORD-2024-000124\n";
    s3.put(&crm, "reports/summary-2024.csv", csv.as_bytes().to_vec())
        .await;
    s3.put(&crm, "reports/summary-2025.csv.gz", gzip(csv.as_bytes()))
        .await;
    s3.put(
        &crm,
        "broken/bad-1.json",
        b"{\"email\": [\"x@y.io\",".to_vec(),
    )
    .await;
    s3.put(
        &crm,
        "blobs/img-1.png",
        vec![0x89, b'P', b'N', b'G', 0, 0, 1, 2],
    )
    .await;
    for i in 0..150 {
        let body = format!("{{\"note\":\"hello {i}\"}}");
        s3.put(&logs, &format!("many/item-{i}.json"), body.into_bytes())
            .await;
    }

    let sources = serde_json::json!([
        s3.source("objects", &[&crm, &logs, &format!("missing-{id}")], &s3.secret),
        s3.source("wrong-secret", &[&crm], "not-the-secret"),
        {"name": "gone", "url": format!("http://127.0.0.1:{}", crate::support::free_port()),
         "type": "minio", "accessKeyId": "k", "secretAccessKey": "s", "buckets": ["x"]},
    ]);
    let (code, v) = crawl("SVRN_CRAWLER_CRAWL_S3", sources, &[]);
    assert_eq!(code, 1, "two sources failed: {v:#}");
    let outcome = |name: &str| {
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome("objects")["status"], "ok", "{v:#}");
    assert!(
        outcome("wrong-secret")["error"]
            .as_str()
            .unwrap()
            .contains("SignatureDoesNotMatch"),
        "{v:#}"
    );
    assert_eq!(outcome("gone")["status"], "error");

    let email = asset(
        &v,
        &format!("{crm}/customers/{{date}}/export-{{n}}.ndjson/contact.email"),
    );
    assert_eq!(email["types"][0], "pii.email", "{email:#}");
    assert_eq!(email["status"], "COMPLETE");
    assert_eq!(email["hit_ratio"], 1.0);
    let card = asset(
        &v,
        &format!("{crm}/customers/{{date}}/export-{{n}}.ndjson/payment.card"),
    );
    assert!(
        card["types"][0].as_str().unwrap().starts_with("pci."),
        "{card:#}"
    );
    assert_eq!(card["sensitivity"], "high");
    let decoy = asset(
        &v,
        &format!("{crm}/customers/{{date}}/export-{{n}}.ndjson/order_ref"),
    );
    assert_eq!(decoy["sensitivity"], "none", "Luhn-failing: {decoy:#}");
    let id_field = asset(
        &v,
        &format!("{crm}/customers/{{date}}/export-{{n}}.ndjson/id"),
    );
    assert_eq!(id_field["sensitivity"], "none", "UUIDs: {id_field:#}");
    for report in ["summary-{n}.csv", "summary-{n}.csv.gz"] {
        let e = asset(&v, &format!("{crm}/reports/{report}/email"));
        assert_eq!(e["types"][0], "pii.email", "{report}: {e:#}");
        let o = asset(&v, &format!("{crm}/reports/{report}/order_id"));
        assert_eq!(o["sensitivity"], "none", "{o:#}");
    }
    let broken = asset(&v, &format!("{crm}/broken/bad-{{n}}.json"));
    assert_eq!(broken["status"], "SKIPPED");
    assert!(
        broken["reason"].as_str().unwrap().contains("malformed"),
        "{broken:#}"
    );
    let blob = asset(&v, &format!("{crm}/blobs/img-{{n}}.png"));
    assert_eq!(blob["status"], "SKIPPED", "{blob:#}");
    let listed = asset(&v, &logs);
    assert_eq!(listed["status"], "PARTIAL");
    assert!(
        listed["reason"]
            .as_str()
            .unwrap()
            .contains("first 120 keys"),
        "{listed:#}"
    );
    let notes = asset(&v, &format!("{logs}/many/item-{{n}}.json/note"));
    assert_eq!(
        notes["sampled"], 4,
        "a few objects of a big group: {notes:#}"
    );
    let missing = asset(&v, &format!("missing-{id}"));
    assert_eq!(missing["reason"], "no such bucket", "{missing:#}");

    let text = v.to_string();
    for raw in emails
        .iter()
        .copied()
        .chain(["4539 1488 0343 6467", "not-the-secret"])
    {
        assert!(!text.contains(raw), "{raw} printed");
    }
}

/// A rerun reads only the key groups whose sampled objects changed (s3s-fs lists no ETags:
/// this is the size and modification time fallback).
#[tokio::test]
async fn s3_rerun_reads_only_changed_objects() {
    let s3 = S3::get();
    let bucket = format!("rerun-{}", std::process::id());
    s3.create(&bucket).await;
    s3.put(&bucket, "a/one.json", br#"{"note":"quiet"}"#.to_vec())
        .await;
    s3.put(&bucket, "b/two.json", br#"{"note":"quiet"}"#.to_vec())
        .await;
    // Skipped for what it is: settled until it changes, like a complete read.
    s3.put(&bucket, "c/logo.png", vec![0x89, b'P', b'N', b'G', 0, 1])
        .await;
    let env: std::collections::HashMap<String, String> = [(
        "BULWARK_CRAWL_S3".to_string(),
        serde_json::json!([s3.source("rerun", &[&bucket], &s3.secret)]).to_string(),
    )]
    .into();
    let sources =
        bulwark::dar::sources::load(&bulwark::config::CrawlConfig::default(), &env).unwrap();
    let engine = bulwark::detect::Engine::default();
    let first = bulwark::dar::crawl(&sources, &engine, None, &Default::default()).await;
    assert_eq!(first.tables.iter().filter(|t| t.reread).count(), 3);
    let known: bulwark::dar::crawl::Known = first
        .tables
        .iter()
        .map(|t| {
            (
                bulwark::dar::crawl::known_key(&t.source, &t.table),
                t.fingerprint.clone(),
            )
        })
        .collect();
    let again = bulwark::dar::crawl(&sources, &engine, None, &known).await;
    assert!(again.tables.iter().all(|t| !t.reread), "{:?}", again.tables);
    s3.put(
        &bucket,
        "b/two.json",
        br#"{"note":"mail me at ada@analytical-engines.co.uk"}"#.to_vec(),
    )
    .await;
    let third = bulwark::dar::crawl(&sources, &engine, None, &known).await;
    let reread: Vec<&str> = third
        .tables
        .iter()
        .filter(|t| t.reread)
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(reread, [format!("{bucket}/b/two.json")]);
    assert_eq!(third.assets[0].types, ["pii.email"], "{:?}", third.assets);
}

/// Creates `topic` with `partitions` on the harness's broker and writes `messages` (key,
/// value) round-robin over the partitions.
async fn produce(broker: &str, topic: &str, partitions: i32, messages: &[(Option<&str>, &[u8])]) {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;
    let client = rskafka::client::ClientBuilder::new(vec![broker.to_string()])
        .build()
        .await
        .unwrap();
    client
        .controller_client()
        .unwrap()
        .create_topic(topic, partitions, 1, 5_000)
        .await
        .unwrap();
    for p in 0..partitions {
        let batch: Vec<Record> = messages
            .iter()
            .skip(p as usize)
            .step_by(partitions as usize)
            .map(|(k, v)| Record {
                key: k.map(|k| k.as_bytes().to_vec()),
                value: Some(v.to_vec()),
                headers: Default::default(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        if batch.is_empty() {
            continue;
        }
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        pc.produce(batch, Compression::NoCompression).await.unwrap();
    }
}

/// JSON messages over two partitions with known sensitive values and decoys, plain-text and
/// malformed messages, an empty topic, a topic that does not exist, an unreachable broker; a
/// rerun that reads only the topic that got new messages.
#[tokio::test]
async fn kafka_topics_are_sampled_from_several_offsets_and_classified() {
    let broker = Service::get("BULWARK_TEST_KAFKA", "kafka", "KAFKA_PORT");
    let id = std::process::id();
    let (orders, notes, empty) = (
        format!("orders-{id}"),
        format!("notes-{id}"),
        format!("empty-{id}"),
    );
    let mut messages: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    for i in 0..40 {
        let v = serde_json::json!({
            "order_id": format!("ORD-2024-{i:06}"),
            "customer": {"email": format!("buyer{i}@shop-mail.de"), "id": "550e8400-e29b-41d4-a716-446655440000"},
            "payment": {"card": "4539 1488 0343 6467"},
            "ref": "4539 1488 0343 6468",
        });
        messages.push((
            Some(format!("buyer{i}@shop-mail.de")),
            v.to_string().into_bytes(),
        ));
    }
    let borrowed: Vec<(Option<&str>, &[u8])> = messages
        .iter()
        .map(|(k, v)| (k.as_deref(), v.as_slice()))
        .collect();
    produce(&broker.url, &orders, 2, &borrowed).await;
    produce(
        &broker.url,
        &notes,
        1,
        &[
            (None, b"call jane.doe@acme-corp.de tomorrow".as_slice()),
            (None, b"{\"truncated\": ".as_slice()),
        ],
    )
    .await;
    produce(&broker.url, &empty, 1, &[]).await;

    let sources = serde_json::json!([
        {"instancename": "events", "brokers": [broker.url],
         "topics": [&orders, &notes, &empty, format!("missing-{id}")],
         "limits": {"rows_per_table": 8}},
        {"name": "down", "brokers": [format!("127.0.0.1:{}", crate::support::free_port())],
         "limits": {"statement_timeout_ms": 1500}},
    ]);
    let (code, v) = crawl("SVRN_CRAWLER_CRAWL_KAFKA", sources.clone(), &[]);
    assert_eq!(code, 1, "one source is down: {v:#}");
    assert_eq!(v["sources"][0]["status"], "ok", "{v:#}");
    assert_eq!(v["sources"][1]["status"], "error", "{v:#}");

    let email = asset(&v, &format!("{orders}/customer.email"));
    assert_eq!(email["types"][0], "pii.email", "{email:#}");
    assert_eq!(
        (email["status"].as_str(), email["hit_ratio"].as_f64()),
        (Some("COMPLETE"), Some(1.0))
    );
    assert_eq!(
        email["sampled"], 8,
        "one message at each of four offsets of two partitions"
    );
    let card = asset(&v, &format!("{orders}/payment.card"));
    assert_eq!(
        (card["types"][0].as_str(), card["sensitivity"].as_str()),
        (Some("pci.pan"), Some("high"))
    );
    assert_eq!(
        asset(&v, &format!("{orders}/ref"))["sensitivity"],
        "none",
        "Luhn-failing"
    );
    assert_eq!(
        asset(&v, &format!("{orders}/order_id"))["sensitivity"],
        "none"
    );
    assert_eq!(
        asset(&v, &format!("{orders}/customer.id"))["sensitivity"],
        "none"
    );
    assert_eq!(asset(&v, &format!("{orders}/key"))["types"][0], "pii.email");
    let text = asset(&v, &format!("{notes}/value"));
    assert_eq!(text["types"][0], "pii.email", "{text:#}");
    assert_eq!(text["status"], "PARTIAL", "one malformed message: {text:#}");
    assert_eq!(asset(&v, &empty)["reason"], "empty topic");
    assert_eq!(
        asset(&v, &format!("missing-{id}"))["reason"],
        "no such topic"
    );
    let printed = v.to_string();
    assert!(!printed.contains("shop-mail.de") && !printed.contains("4539 1488 0343 6467"));

    // A rerun reads the topic that got a message, and only it.
    let env: std::collections::HashMap<String, String> = [(
        "BULWARK_CRAWL_KAFKA".to_string(),
        serde_json::json!([sources[0]]).to_string(),
    )]
    .into();
    let sources =
        bulwark::dar::sources::load(&bulwark::config::CrawlConfig::default(), &env).unwrap();
    let engine = bulwark::detect::Engine::default();
    let first = bulwark::dar::crawl(&sources, &engine, None, &Default::default()).await;
    let known: bulwark::dar::crawl::Known = first
        .tables
        .iter()
        .map(|t| {
            (
                bulwark::dar::crawl::known_key(&t.source, &t.table),
                t.fingerprint.clone(),
            )
        })
        .collect();
    let client = rskafka::client::ClientBuilder::new(vec![broker.url.clone()])
        .build()
        .await
        .unwrap();
    let pc = client
        .partition_client(
            &notes,
            0,
            rskafka::client::partition::UnknownTopicHandling::Retry,
        )
        .await
        .unwrap();
    let record = rskafka::record::Record {
        key: None,
        value: Some(b"another note".to_vec()),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    };
    pc.produce(
        vec![record],
        rskafka::client::partition::Compression::NoCompression,
    )
    .await
    .unwrap();
    let again = bulwark::dar::crawl(&sources, &engine, None, &known).await;
    let reread: Vec<&str> = again
        .tables
        .iter()
        .filter(|t| t.reread)
        .map(|t| t.table.as_str())
        .collect();
    assert_eq!(reread, [notes.as_str()]);
}

/// Sources added through the API and the console: the connection string and keys sealed in
/// the store (not in its file in clear, never in an answer or the page), crawled by the job,
/// edited without re-entering the secret, refused when malformed or named twice, removed.
#[tokio::test]
async fn console_sources_are_sealed_and_crawled() {
    use crate::support::{call, finished_run, Caller, InProcess};
    use bulwark::http::{Role, Scope};
    let pg = Pg::get();
    let id = std::process::id();
    let (db, role, password) = (
        format!("dar_console_{id}"),
        format!("dar_console_{id}"),
        "Sealed-Pw-9d1f3a",
    );
    pg.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    pg.sql("postgres", &format!("DROP ROLE IF EXISTS {role}"))
        .await;
    pg.sql("postgres", &format!("CREATE DATABASE {db}")).await;
    pg.sql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
    )
    .await;
    pg.sql(
        &db,
        &format!(
            "CREATE TABLE staff (id int, mail text); \
             INSERT INTO staff SELECT g, 'worker' || g || '@acme-corp.de' FROM generate_series(1, 10) g; \
             GRANT SELECT ON staff TO {role};"
        ),
    )
    .await;
    let url = pg.url_for(&db, Some((&role, password)));

    let t = InProcess::new();
    let admin = t.user("admin@example.com", Role::Admin);
    let viewer = t.user("viewer@example.com", Role::ReadOnly);
    let w = Caller::bearer(&t.key(admin, &[Scope::Admin]));
    let r = Caller::bearer(&t.key(viewer, &[Scope::Read]));
    let app = t.service().await;
    let body = serde_json::json!({
        "kind": "postgres", "name": "console-pg", "connection_string": url,
        "databases": [db], "check_interval": "12h",
    });
    let (s, v, _) = call(&app, w.post("/api/v1/dar/sources", body.clone())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["secrets_set"], true);
    assert_eq!(v["check_interval_s"], 43_200);
    assert!(
        v["target"].as_str().unwrap().ends_with(&format!("/{db}")),
        "{v}"
    );
    let (s, _, _) = call(&app, r.post("/api/v1/dar/sources", body.clone())).await;
    assert_eq!(s, 403, "a reader cannot add sources");
    let (s, v, _) = call(&app, w.post("/api/v1/dar/sources", body.clone())).await;
    assert_eq!(s, 409, "{v}");
    for bad in [
        serde_json::json!({"name": "x", "connection_string": "postgresql://h"}),
        serde_json::json!({"kind": "oracle", "name": "x"}),
        serde_json::json!({"kind": "s3", "name": "x", "url": "ftp://h"}),
        serde_json::json!({"kind": "postgres", "name": "x"}),
        serde_json::json!(["not", "an", "object"]),
    ] {
        let (s, v, _) = call(&app, w.post("/api/v1/dar/sources", bad.clone())).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, list, _) = call(&app, r.get("/api/v1/dar/sources")).await;
    assert_eq!(s, 200);
    assert_eq!(list["sources"][0]["origin"], "console");

    // Edited without the secret: it stays, and the crawl still signs in.
    let (s, v, _) = call(
        &app,
        w.put(
            "/api/v1/dar/sources/console-pg",
            serde_json::json!({"check_interval": "1d"}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["check_interval_s"], 86_400);
    let (s, v, _) = call(
        &app,
        w.post("/api/v1/jobs/crawl/run", serde_json::json!({})),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let run = finished_run(&app, || w.get("/api/v1/jobs/crawl"), None).await;
    assert_eq!(run["ok"], true, "{run}");
    let (_, assets, _) = call(&app, r.get("/api/v1/dar/assets?source=console-pg")).await;
    let mail = &assets["items"][0];
    assert_eq!(mail["asset"], format!("{db}.public.staff.mail"), "{assets}");
    assert_eq!(mail["types"][0], "pii.email");

    // The page lists it and offers the form; a form adds another.
    let (token, csrf) = t.session("admin@example.com");
    let page = Caller::session(&token);
    let (s, html, _) = call(&app, page.get("/dar")).await;
    assert_eq!(s, 200);
    let html = html.as_str().unwrap().to_string();
    assert!(
        html.contains("console-pg") && html.contains("id=\"dar-add\""),
        "{html}"
    );
    let form = format!(
        "csrf={csrf}&kind=kafka&name=events&brokers=k1%3A9092%2Ck2%3A9092&user=crawler&password=Kafka-Pw-77&scope=orders%2Cpayments&check_interval=1h"
    );
    let (s, _, _) = call(&app, page.form("/dar/sources", form)).await;
    assert_eq!(s, 303);
    let (_, list, _) = call(&app, r.get("/api/v1/dar/sources")).await;
    let events = list["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "events")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(events["target"], "k1:9092,k2:9092");
    assert_eq!(events["scope"], serde_json::json!(["orders", "payments"]));

    // No secret in any answer, on the page, in the audit log or in the store's file.
    let (_, audit, _) = call(&app, w.get("/api/v1/audit?limit=50")).await;
    let (_, html, _) = call(&app, page.get("/dar")).await;
    let file = std::fs::read(t._dir.path().join("data/bulwark.redb")).unwrap();
    for secret in [password, "Kafka-Pw-77"] {
        for shown in [list.to_string(), audit.to_string(), html.to_string()] {
            assert!(!shown.contains(secret), "{secret} shown");
        }
        assert!(
            !file.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} stored in clear"
        );
    }

    let (s, _, _) = call(&app, w.delete("/api/v1/dar/sources/console-pg")).await;
    assert_eq!(s, 204);
    let (s, _, _) = call(&app, w.delete("/api/v1/dar/sources/console-pg")).await;
    assert_eq!(s, 404);
    pg.sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
    pg.sql("postgres", &format!("DROP ROLE IF EXISTS {role}"))
        .await;
}
