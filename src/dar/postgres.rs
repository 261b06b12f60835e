//! PostgreSQL: every database the account may connect to (or the listed ones), one catalog
//! query per database for its tables and columns, then a bounded sample of each table in a
//! read-only session with a statement timeout. Large tables are sampled from several parts with
//! `TABLESAMPLE SYSTEM`; values are read as their text's bytes in the server's own encoding
//! (`convert_to` to it: no conversion, so no validation), cut to a limit, so any type and any
//! encoding (SQL_ASCII databases holding Latin-1) can be read without failing the row.

use std::time::{Duration, Instant};

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

use super::classify::{skipped, Column};
use super::crawl::{fingerprint, Found, Known};
use super::sources::Source;
use super::{Asset, DarError, Status};
use crate::detect::Engine;

/// One column of a table, as the catalog gives it.
#[derive(Debug, Clone)]
struct ColumnInfo {
    name: String,
    data_type: String,
}

/// One table with its columns and estimated rows.
#[derive(Debug, Clone)]
struct Table {
    schema: String,
    name: String,
    rows: f64,
    /// Bytes on disk and rows inserted, updated and deleted so far: what tells a rerun the
    /// table changed.
    extent: String,
    columns: Vec<ColumnInfo>,
}

impl Table {
    fn fingerprint(&self) -> String {
        fingerprint(
            &self.extent,
            self.columns
                .iter()
                .map(|c| (c.name.as_str(), c.data_type.as_str())),
        )
    }
}

/// The catalog of one database in one query: ordinary and partitioned tables and materialized
/// views outside the system schemas, their columns in order, the planner's row estimate.
const CATALOG: &str = "SELECT n.nspname::text, c.relname::text, a.attname::text, \
    format_type(a.atttypid, a.atttypmod), c.reltuples::float8, \
    pg_relation_size(c.oid)::text || '/' || COALESCE(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, -1)::text \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
    LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid \
    WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
      AND n.nspname NOT LIKE 'pg_temp%' \
    ORDER BY 1, 2, a.attnum";

/// A quoted identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Types whose text is not data a person wrote (bytes shown as hex).
fn binary(c: &ColumnInfo) -> bool {
    c.data_type == "bytea"
}

/// How a sampling statement reads values.
struct Read<'a> {
    rows: u32,
    /// Characters kept of one value.
    max: u32,
    /// The server's encoding, which values are read in.
    encoding: &'a str,
    /// From several parts of a large table (`TABLESAMPLE`) rather than its start.
    sampled: bool,
}

/// The sampling statement for `t`: each readable column's text cut to `max` characters, at
/// most `rows` rows.
fn sample_sql(t: &Table, columns: &[&ColumnInfo], read: &Read) -> String {
    let Read {
        rows,
        max,
        encoding,
        sampled,
    } = *read;
    let enc = encoding.replace('\'', "''");
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("convert_to(left({}::text, {max}), '{enc}')", ident(&c.name)))
        .collect();
    let from = format!("{}.{}", ident(&t.schema), ident(&t.name));
    let sample = if sampled {
        // Enough pages for several times the rows wanted, spread over the table.
        let pct = (f64::from(rows) * 5.0 * 100.0 / t.rows).clamp(0.01, 100.0);
        format!(" TABLESAMPLE SYSTEM ({pct:.4})")
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM {from}{sample} LIMIT {rows}",
        list.join(", ")
    )
}

fn tls(source: &Source) -> Result<tokio_postgres_rustls::MakeRustlsConnect, DarError> {
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
        super::crawl::tls_config(source)?,
    ))
}

/// What a server error means for an asset.
fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) if d.code() == &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
            "permission denied".into()
        }
        Some(d) if d.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => {
            "statement timeout".into()
        }
        Some(d) => d.message().chars().take(300).collect(),
        None => e.to_string().chars().take(300).collect(),
    }
}

/// A read-only session on `config`'s database.
async fn connect(config: &Config, source: &Source) -> Result<Client, DarError> {
    let fail = |e: tokio_postgres::Error| {
        DarError::Connect(format!(
            "cannot connect to {}: {}",
            config.get_dbname().unwrap_or("postgres"),
            reason(&e)
        ))
    };
    let client = if config.get_ssl_mode() == SslMode::Disable {
        let (client, conn) = config.connect(NoTls).await.map_err(fail)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    } else {
        let (client, conn) = config.connect(tls(source)?).await.map_err(fail)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    };
    let l = &source.limits;
    client
        .batch_execute(&format!(
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; \
             SET statement_timeout = {}; SET lock_timeout = {}; \
             SET application_name = 'bulwark-crawler'",
            l.statement_timeout_ms,
            l.statement_timeout_ms.min(2_000)
        ))
        .await
        .map_err(|e| DarError::Query(reason(&e)))?;
    Ok(client)
}

/// The connection settings of `source` (never echoing the string when it does not parse).
fn config_of(source: &Source) -> Result<Config, DarError> {
    let mut config: Config = source.connection_string.parse().map_err(|_| {
        DarError::Config(format!(
            "{}: connection_string is not a PostgreSQL URL or key=value string",
            source.name
        ))
    })?;
    if config.get_dbname().is_none() && !source.default_db.is_empty() {
        config.dbname(&source.default_db);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

async fn databases(client: &Client, source: &Source) -> Result<Vec<String>, DarError> {
    if !source.scope.is_empty() {
        return Ok(source.scope.clone());
    }
    let rows = client
        .query(
            "SELECT datname::text FROM pg_database \
             WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT') \
             ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| DarError::Query(reason(&e)))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn catalog(client: &Client) -> Result<Vec<Table>, tokio_postgres::Error> {
    let mut tables: Vec<Table> = Vec::new();
    for r in client.query(CATALOG, &[]).await? {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        let column = ColumnInfo {
            name: r.get(2),
            data_type: r.get(3),
        };
        match tables.last_mut() {
            Some(t) if t.schema == schema && t.name == name => t.columns.push(column),
            _ => tables.push(Table {
                schema,
                name,
                rows: r.get(4),
                extent: r.get(5),
                columns: vec![column],
            }),
        }
    }
    Ok(tables)
}

/// Samples one table and classifies each column.
async fn table(
    client: &Client,
    engine: &Engine,
    source: &Source,
    (db, encoding): (&str, &str),
    t: &Table,
) -> Vec<Asset> {
    let l = &source.limits;
    let id = |c: &ColumnInfo| format!("{db}.{}.{}.{}", t.schema, t.name, c.name);
    let readable: Vec<&ColumnInfo> = t.columns.iter().filter(|c| !binary(c)).collect();
    let mut out: Vec<Asset> = t
        .columns
        .iter()
        .filter(|c| binary(c))
        .map(|c| skipped(&source.name, id(c), &c.data_type, "binary type"))
        .collect();
    if readable.is_empty() {
        return out;
    }
    let budget = Duration::from_millis(l.table_budget_ms);
    let started = Instant::now();
    let large = t.rows > f64::from(l.rows_per_table) * 20.0;
    let mut rows = Vec::new();
    let mut failure: Option<(Status, String)> = None;
    for sampled in if large {
        vec![true, false]
    } else {
        vec![false]
    } {
        let left = budget.saturating_sub(started.elapsed());
        let read = Read {
            rows: l.rows_per_table,
            max: l.value_bytes,
            encoding,
            sampled,
        };
        let sql = sample_sql(t, &readable, &read);
        match tokio::time::timeout(left, client.query(&sql, &[])).await {
            Ok(Ok(r)) => {
                rows = r;
                failure = None;
                // A sample of scattered pages that came back thin is topped up from the start.
                if rows.len() * 2 >= l.rows_per_table as usize || !sampled {
                    break;
                }
            }
            Ok(Err(e)) => {
                failure = Some((Status::Skipped, reason(&e)));
                break;
            }
            Err(_) => {
                failure = Some((
                    if rows.is_empty() {
                        Status::Skipped
                    } else {
                        Status::Partial
                    },
                    "table time budget spent".into(),
                ));
                break;
            }
        }
    }
    let mut columns: Vec<Column> = readable.iter().map(|_| Column::default()).collect();
    for row in &rows {
        for (i, c) in readable.iter().enumerate() {
            let v: Option<&[u8]> = row.try_get(i).unwrap_or(None);
            if let Some(v) = v {
                if v.len() >= l.value_bytes as usize {
                    columns[i].cut += 1;
                }
                columns[i].add(engine, &c.name, v);
            }
        }
    }
    let (status, why) = failure.unwrap_or((Status::Complete, String::new()));
    let status = match (status, rows.is_empty()) {
        (Status::Skipped, false) => Status::Partial,
        (s, _) => s,
    };
    for (c, col) in readable.iter().zip(columns) {
        out.push(col.asset(&source.name, id(c), &c.data_type, status, &why));
    }
    out
}

/// Crawls `source`: every asset found, or why the server could not be read at all.
pub async fn crawl(source: &Source, engine: &Engine, known: &Known) -> Result<Found, DarError> {
    let started = Instant::now();
    let budget = Duration::from_millis(source.limits.source_budget_ms);
    let base = config_of(source)?;
    let first = connect(&base, source).await?;
    let dbs = databases(&first, source).await?;
    drop(first);
    let mut out = Found::default();
    for db in dbs {
        let mut config = base.clone();
        config.dbname(&db);
        let client = match connect(&config, source).await {
            Ok(c) => c,
            Err(e) => {
                out.assets.push(skipped(
                    &source.name,
                    db.clone(),
                    "database",
                    &e.to_string(),
                ));
                continue;
            }
        };
        let encoding: String = match client.query_one("SHOW server_encoding", &[]).await {
            Ok(r) => r.get(0),
            Err(_) => "UTF8".into(),
        };
        let tables = match catalog(&client).await {
            Ok(t) => t,
            Err(e) => {
                out.assets
                    .push(skipped(&source.name, db.clone(), "database", &reason(&e)));
                continue;
            }
        };
        for t in &tables {
            if started.elapsed() >= budget {
                let columns = t
                    .columns
                    .iter()
                    .map(|c| (c.name.as_str(), c.data_type.as_str()));
                out.out_of_time(
                    &source.name,
                    &format!("{db}.{}.{}", t.schema, t.name),
                    columns,
                );
                continue;
            }
            out.table(
                &source.name,
                format!("{db}.{}.{}", t.schema, t.name),
                t.fingerprint(),
                known,
                table(&client, engine, source, (&db, &encoding), t),
            )
            .await;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_large_tables_sampled() {
        let t = Table {
            schema: "we\"ird".into(),
            name: "Orders".into(),
            rows: 1_000_000.0,
            extent: String::new(),
            columns: vec![ColumnInfo {
                name: "card".into(),
                data_type: "text".into(),
            }],
        };
        let cols: Vec<&ColumnInfo> = t.columns.iter().collect();
        let mut read = Read {
            rows: 200,
            max: 4096,
            encoding: "UTF8",
            sampled: true,
        };
        assert_eq!(
            sample_sql(&t, &cols, &read),
            "SELECT convert_to(left(\"card\"::text, 4096), 'UTF8') FROM \"we\"\"ird\".\"Orders\" TABLESAMPLE SYSTEM (0.1000) LIMIT 200"
        );
        read.sampled = false;
        assert!(!sample_sql(&t, &cols, &read).contains("TABLESAMPLE"));
    }
}
