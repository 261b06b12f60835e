//! Data-at-rest crawler benchmarks against a real PostgreSQL. Prints figures; asserts nothing.
//!
//!     BULWARK_TEST_POSTGRES=postgresql://postgres:PW@127.0.0.1:55432/postgres cargo bench --bench crawl
//!
//! Without the variable it starts one through tests/services/start.sh (stopped at the end).
//! 1. Classification throughput: a 1,000,000-row table of five columns read whole (limits
//!    raised), values classified per second.
//! 2. A database of 1,000 tables crawled with the default limits: time, and the load it put on
//!    the server (statements and rows from `pg_stat_database`, measured on the server).
//!    With pg_stat_statements loaded (tests/services loads it), the statements by kind too.
//! 3. A rerun with nothing changed (fingerprints from the first run): time and statements.
//! 4. The same 1,000 tables on MariaDB (`BULWARK_TEST_MYSQL`, or started here): time, and the
//!    statements and rows read (Handler_read_*), from the server's global status.
//! 5. Peak RSS of this process.

use std::process::Command;
use std::time::Instant;

use bulwark::dar::crawl::{crawl, Known};
use bulwark::dar::sources::{Kind, Limits, Source};
use tokio_postgres::NoTls;

async fn sql(url: &str, statement: &str) {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(statement).await.unwrap();
}

fn with_db(url: &str, db: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{db}"));
    u.query_pairs_mut().append_pair("sslmode", "disable");
    u.to_string()
}

/// Statements committed and rows returned or fetched in `db`, as the server counts them.
async fn load(url: &str, db: &str) -> (i64, i64) {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    // The counters are published a moment after a session's work.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = client
        .query_one(
            "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

/// With `db`: prints what pg_stat_statements counted in it since the reset. Without: resets
/// the counters; false when the extension is not loaded.
async fn pg_stat_statements(url: &str, db: Option<&str>) -> bool {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    let Some(db) = db else {
        let ok = client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();")
            .await
            .is_ok();
        if !ok {
            println!(
                "(pg_stat_statements is not loaded: statements counted from pg_stat_database only)"
            );
        }
        return ok;
    };
    let rows = client
        .query(
            "SELECT s.calls, s.rows, s.shared_blks_hit + s.shared_blks_read, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 70) \
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
             WHERE d.datname = $1 ORDER BY s.calls DESC",
            &[&db],
        )
        .await
        .unwrap();
    let total = |i: usize| rows.iter().map(|r| r.get::<_, i64>(i)).sum::<i64>();
    println!(
        "  pg_stat_statements in {db}: {} statements ({} distinct), {} rows returned, {} buffer pages touched",
        total(0),
        rows.len(),
        total(1),
        total(2)
    );
    // By kind: the samples (one per table) and the rest (session setup, catalog).
    let samples: Vec<_> = rows
        .iter()
        .filter(|r| r.get::<_, String>(3).starts_with("SELECT convert_to"))
        .collect();
    println!(
        "    samples: {} statements, {} rows; everything else: {} statements",
        samples.iter().map(|r| r.get::<_, i64>(0)).sum::<i64>(),
        samples.iter().map(|r| r.get::<_, i64>(1)).sum::<i64>(),
        total(0) - samples.iter().map(|r| r.get::<_, i64>(0)).sum::<i64>()
    );
    true
}

/// Statements the server ran and rows its storage engines handed over (the `Handler_read_*`
/// counters), from its global status.
async fn mysql_load(conn: &mut mysql_async::Conn) -> (u64, u64) {
    use mysql_async::prelude::Queryable;
    let rows: Vec<(String, String)> = conn
        .query("SHOW GLOBAL STATUS WHERE Variable_name = 'Questions' OR Variable_name LIKE 'Handler_read%'")
        .await
        .unwrap();
    let get = |n: &str| {
        rows.iter()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    };
    let read = rows
        .iter()
        .filter(|(k, _)| k.starts_with("Handler_read"))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    (get("Questions"), read)
}

async fn mariadb(root: &str, engine: &bulwark::detect::Engine) {
    use mysql_async::prelude::Queryable;
    let services = tempfile::tempdir().unwrap();
    let url = match std::env::var("BULWARK_TEST_MYSQL") {
        Ok(u) => u,
        Err(_) => {
            let ok = Command::new(format!("{root}/tests/services/start.sh"))
                .arg(services.path())
                .arg("mariadb")
                .status()
                .unwrap()
                .success();
            assert!(ok, "MariaDB did not start");
            let env = std::fs::read_to_string(services.path().join("endpoints.env")).unwrap();
            env.lines()
                .find_map(|l| l.strip_prefix("BULWARK_TEST_MYSQL="))
                .unwrap()
                .to_string()
        }
    };
    let mut conn = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    conn.query_drop("DROP DATABASE IF EXISTS bench_many")
        .await
        .unwrap();
    conn.query_drop("CREATE DATABASE bench_many").await.unwrap();
    conn.query_drop("USE bench_many").await.unwrap();
    for i in 1..=1000 {
        conn.query_drop(format!(
            "CREATE TABLE bench_many.t{i} (id int PRIMARY KEY, email varchar(100), ref varchar(20)); \
             INSERT INTO bench_many.t{i} SELECT seq, CONCAT('u', seq, '@shop-mail.de'), CONCAT('R-', seq) FROM seq_1_to_50"
        ))
        .await
        .unwrap();
    }
    conn.query_drop("ANALYZE TABLE bench_many.t1")
        .await
        .unwrap();
    let source = Source {
        connection_string: url.clone(),
        scope: vec!["bench_many".into()],
        ..Source::new(Kind::Mysql, "bench-mysql")
    };
    let before = mysql_load(&mut conn).await;
    let started = Instant::now();
    let first = crawl(std::slice::from_ref(&source), engine, None, &Known::new()).await;
    let took = started.elapsed().as_secs_f64();
    let after = mysql_load(&mut conn).await;
    println!(
        "MariaDB, 1,000 tables: {} assets in {took:.1} s; on the server {} statements, {} rows read (Handler_read_*)",
        first.assets.len(),
        after.0 - before.0 - 1,
        after.1 - before.1
    );
    let known: Known = first
        .tables
        .iter()
        .filter(|t| !t.fingerprint.is_empty())
        .map(|t| {
            (
                bulwark::dar::crawl::known_key(&t.source, &t.table),
                t.fingerprint.clone(),
            )
        })
        .collect();
    let before = mysql_load(&mut conn).await;
    let started = Instant::now();
    let again = crawl(std::slice::from_ref(&source), engine, None, &known).await;
    let took = started.elapsed().as_secs_f64();
    let after = mysql_load(&mut conn).await;
    println!(
        "MariaDB rerun with nothing changed: {} tables read in {took:.2} s; on the server {} statements, {} rows read (Handler_read_*)",
        again.tables.iter().filter(|t| t.reread).count(),
        after.0 - before.0 - 1,
        after.1 - before.1
    );
    conn.query_drop("DROP DATABASE bench_many").await.unwrap();
    drop(conn);
    if std::env::var("BULWARK_TEST_MYSQL").is_err() {
        let _ = Command::new(format!("{root}/tests/services/stop.sh"))
            .arg(services.path())
            .status();
    }
}

fn source(url: &str, db: &str, limits: Limits) -> Source {
    Source {
        connection_string: with_db(url, "postgres"),
        scope: vec![db.into()],
        limits,
        ..Source::new(Kind::Postgres, "bench")
    }
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let root = env!("CARGO_MANIFEST_DIR");
    let services = tempfile::tempdir().unwrap();
    let url = match std::env::var("BULWARK_TEST_POSTGRES") {
        Ok(u) => u,
        Err(_) => {
            let ok = Command::new(format!("{root}/tests/services/start.sh"))
                .arg(services.path())
                .arg("postgres")
                .status()
                .unwrap()
                .success();
            assert!(ok, "PostgreSQL did not start");
            let env = std::fs::read_to_string(services.path().join("endpoints.env")).unwrap();
            env.lines()
                .find_map(|l| l.strip_prefix("BULWARK_TEST_POSTGRES="))
                .unwrap()
                .to_string()
        }
    };
    let admin = with_db(&url, "postgres");
    let engine = bulwark::detect::Engine::default();

    // 1. One table of 1,000,000 rows, read whole.
    sql(&admin, "DROP DATABASE IF EXISTS bench_big").await;
    sql(&admin, "CREATE DATABASE bench_big").await;
    let seeded = Instant::now();
    sql(
        &with_db(&url, "bench_big"),
        "CREATE TABLE customers (id bigint, email text, card text, iban text, note text); \
         INSERT INTO customers SELECT g, 'user' || g || '@shop-mail.de', \
           CASE WHEN g % 2 = 0 THEN '4539148803436467' ELSE 'ORD-' || g END, \
           'GB82WEST12345698765432', 'order ' || g || ' shipped to the warehouse' \
         FROM generate_series(1, 1000000) g; ANALYZE customers;",
    )
    .await;
    println!(
        "seeded 1,000,000 rows in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let whole = Limits {
        rows_per_table: 1_000_000,
        table_budget_ms: 3_600_000,
        statement_timeout_ms: 3_600_000,
        source_budget_ms: 3_600_000,
        ..Limits::default()
    };
    let started = Instant::now();
    let result = crawl(
        &[source(&url, "bench_big", whole)],
        &engine,
        None,
        &Known::new(),
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    let values: u64 = result.assets.iter().map(|a| a.sampled).sum();
    println!(
        "1,000,000-row table read whole: {values} values classified in {took:.1} s ({:.0} values/s); {}",
        values as f64 / took,
        peak_rss()
    );
    sql(&admin, "DROP DATABASE bench_big").await;

    // 2. 1,000 tables with the default limits.
    sql(&admin, "DROP DATABASE IF EXISTS bench_many").await;
    sql(&admin, "CREATE DATABASE bench_many").await;
    let many = with_db(&url, "bench_many");
    sql(
        &many,
        "DO $$ BEGIN FOR i IN 1..1000 LOOP \
           EXECUTE format('CREATE TABLE t%s (id int, email text, ref text)', i); \
           EXECUTE format('INSERT INTO t%s SELECT g, ''u'' || g || ''@shop-mail.de'', ''R-'' || g FROM generate_series(1, 50) g', i); \
         END LOOP; END $$; ANALYZE;",
    )
    .await;
    let statements = pg_stat_statements(&admin, None).await;
    let before = load(&admin, "bench_many").await;
    let started = Instant::now();
    let first = crawl(
        &[source(&url, "bench_many", Limits::default())],
        &engine,
        None,
        &Known::new(),
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    let after = load(&admin, "bench_many").await;
    println!(
        "1,000 tables: {} assets in {took:.1} s; on the server {} statements, {} rows read",
        first.assets.len(),
        after.0 - before.0,
        after.1 - before.1
    );
    if statements {
        pg_stat_statements(&admin, Some("bench_many")).await;
    }

    // 3. The rerun with nothing changed.
    let known: Known = first
        .tables
        .iter()
        .filter(|t| !t.fingerprint.is_empty())
        .map(|t| {
            (
                bulwark::dar::crawl::known_key(&t.source, &t.table),
                t.fingerprint.clone(),
            )
        })
        .collect();
    let before = load(&admin, "bench_many").await;
    let started = Instant::now();
    let again = crawl(
        &[source(&url, "bench_many", Limits::default())],
        &engine,
        None,
        &known,
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    let after = load(&admin, "bench_many").await;
    println!(
        "rerun with nothing changed: {} tables read, {} left alone, in {took:.2} s; on the server {} statements, {} rows read",
        again.tables.iter().filter(|t| t.reread).count(),
        again.tables.iter().filter(|t| !t.reread).count(),
        after.0 - before.0,
        after.1 - before.1
    );
    sql(&admin, "DROP DATABASE bench_many").await;

    // 4. The same on MariaDB.
    mariadb(root, &engine).await;
    println!("peak RSS: {}", peak_rss());
    if std::env::var("BULWARK_TEST_POSTGRES").is_err() {
        let _ = Command::new(format!("{root}/tests/services/stop.sh"))
            .arg(services.path())
            .status();
    }
}
