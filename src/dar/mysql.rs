//! MySQL and MariaDB: the listed databases (or every one but the system's), one catalog query per
//! database, then a bounded sample of each table in a read-only session with a statement time
//! limit. MySQL has no `TABLESAMPLE`: a large table with an integer primary key is read in
//! several key ranges spread over it; values come as the server sends them (bytes), cut to a
//! limit.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Value};

use super::classify::{skipped, Column};
use super::crawl::{fingerprint, Found, Known};
use super::sources::Source;
use super::{Asset, DarError, Status};
use crate::detect::Engine;

/// Key ranges a large table is read in.
const PARTS: u32 = 4;

#[derive(Debug, Clone)]
struct ColumnInfo {
    name: String,
    /// `COLUMN_TYPE` (`varchar(64)`, `json`, `blob`, ...).
    column_type: String,
    /// `DATA_TYPE` (`varchar`, `int`, ...).
    data_type: String,
    primary: bool,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    rows: u64,
    /// Data length, row estimate and last update: what tells a rerun the table changed.
    extent: String,
    columns: Vec<ColumnInfo>,
}

impl Table {
    fn fingerprint(&self) -> String {
        fingerprint(
            &self.extent,
            self.columns
                .iter()
                .map(|c| (c.name.as_str(), c.column_type.as_str())),
        )
    }
}

/// The catalog of one database: its base tables and their columns in order.
const CATALOG: &str =
    "SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.DATA_TYPE, c.COLUMN_KEY, \
    COALESCE(t.TABLE_ROWS, 0), \
    CONCAT_WS('/', COALESCE(t.DATA_LENGTH, 0), COALESCE(t.TABLE_ROWS, 0), COALESCE(t.UPDATE_TIME, '')) \
    FROM information_schema.COLUMNS c JOIN information_schema.TABLES t \
      ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME \
    WHERE c.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' \
    ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION";

const SYSTEM: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

fn ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

fn binary(c: &ColumnInfo) -> bool {
    matches!(
        c.data_type.as_str(),
        "blob"
            | "tinyblob"
            | "mediumblob"
            | "longblob"
            | "binary"
            | "varbinary"
            | "geometry"
            | "point"
            | "linestring"
            | "polygon"
    )
}

fn integer(c: &ColumnInfo) -> bool {
    matches!(
        c.data_type.as_str(),
        "tinyint" | "smallint" | "mediumint" | "int" | "bigint"
    )
}

fn reason(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) if s.code == 1142 || s.code == 1143 || s.code == 1044 => {
            "permission denied".into()
        }
        // MySQL's max_execution_time, MariaDB's max_statement_time.
        mysql_async::Error::Server(s) if s.code == 3024 || s.code == 1969 => {
            "statement timeout".into()
        }
        mysql_async::Error::Server(s) => s.message.chars().take(300).collect(),
        other => other.to_string().chars().take(300).collect(),
    }
}

fn opts_of(source: &Source) -> Result<Opts, DarError> {
    let url = if source.connection_string.starts_with("mariadb://") {
        source
            .connection_string
            .replacen("mariadb://", "mysql://", 1)
    } else {
        source.connection_string.clone()
    };
    let opts = Opts::from_url(&url).map_err(|_| {
        DarError::Config(format!(
            "{}: connection_string is not a mysql:// URL",
            source.name
        ))
    })?;
    // One connection, no pool behind it.
    let mut builder = OptsBuilder::from_opts(opts.clone()).pool_opts(None::<mysql_async::PoolOpts>);
    // With TLS asked for (`?require_ssl=true`), the source's CA and the appliance's extra CAs
    // are trusted beside the built-in roots.
    if let Some(ssl) = opts.ssl_opts() {
        let mut roots = Vec::new();
        for pem in [source.ca_pem.clone(), source.outbound.extra_roots_pem()] {
            if !pem.trim().is_empty() {
                roots.push(pem.into_bytes().into());
            }
        }
        if !roots.is_empty() {
            builder = builder.ssl_opts(ssl.clone().with_root_certs(roots));
        }
    }
    Ok(builder.into())
}

async fn connect(source: &Source) -> Result<Conn, DarError> {
    let opts = opts_of(source)?;
    let mut conn = tokio::time::timeout(Duration::from_secs(10), Conn::new(opts))
        .await
        .map_err(|_| DarError::Connect("cannot connect: no answer within 10 s".into()))?
        .map_err(|e| DarError::Connect(format!("cannot connect: {}", reason(&e))))?;
    conn.query_drop("SET SESSION TRANSACTION READ ONLY")
        .await
        .map_err(|e| DarError::Query(reason(&e)))?;
    let ms = source.limits.statement_timeout_ms;
    // Each server knows one of the two; the other's error is expected.
    let _ = conn
        .query_drop(format!("SET SESSION max_execution_time = {ms}"))
        .await;
    let _ = conn
        .query_drop(format!(
            "SET SESSION max_statement_time = {}",
            ms as f64 / 1000.0
        ))
        .await;
    Ok(conn)
}

async fn catalog(conn: &mut Conn, db: &str) -> Result<Vec<Table>, mysql_async::Error> {
    // Rows are converted without panicking on an unexpected shape (a row that does not fit is
    // left out).
    let rows: Vec<mysql_async::Row> = conn.exec(CATALOG, (db,)).await?;
    let mut tables: Vec<Table> = Vec::new();
    for row in rows {
        let Ok((table, name, column_type, data_type, key, n, extent)) =
            mysql_async::from_row_opt::<(String, String, String, String, String, u64, String)>(row)
        else {
            continue;
        };
        let c = ColumnInfo {
            name,
            column_type,
            data_type: data_type.to_ascii_lowercase(),
            primary: key == "PRI",
        };
        match tables.last_mut() {
            Some(t) if t.name == table => t.columns.push(c),
            _ => tables.push(Table {
                name: table,
                rows: n,
                extent,
                columns: vec![c],
            }),
        }
    }
    Ok(tables)
}

/// The statements that sample `t`: the start of a small table, or several key ranges of a large
/// one with an integer primary key.
async fn statements(
    conn: &mut Conn,
    db: &str,
    t: &Table,
    columns: &[&ColumnInfo],
    source: &Source,
) -> Vec<String> {
    let l = &source.limits;
    let list: Vec<String> = columns
        .iter()
        .map(|c| format!("LEFT({}, {})", ident(&c.name), l.value_bytes))
        .collect();
    let from = format!("{}.{}", ident(db), ident(&t.name));
    let plain = format!(
        "SELECT {} FROM {from} LIMIT {}",
        list.join(", "),
        l.rows_per_table
    );
    let key = t.columns.iter().find(|c| c.primary && integer(c));
    let (Some(key), true) = (key, t.rows > u64::from(l.rows_per_table) * 20) else {
        return vec![plain];
    };
    let k = ident(&key.name);
    let bounds: Option<(Option<i64>, Option<i64>)> = conn
        .query_first::<mysql_async::Row, _>(format!("SELECT MIN({k}), MAX({k}) FROM {from}"))
        .await
        .ok()
        .flatten()
        .and_then(|r| mysql_async::from_row_opt(r).ok());
    let Some((Some(lo), Some(hi))) = bounds else {
        return vec![plain];
    };
    let per = (l.rows_per_table / PARTS).max(1);
    let step = ((hi - lo) / i64::from(PARTS)).max(1);
    (0..i64::from(PARTS))
        .map(|i| {
            format!(
                "SELECT {} FROM {from} WHERE {k} >= {} ORDER BY {k} LIMIT {per}",
                list.join(", "),
                lo + i * step
            )
        })
        .collect()
}

async fn table(
    conn: &mut Conn,
    engine: &Engine,
    source: &Source,
    db: &str,
    t: &Table,
) -> Vec<Asset> {
    let l = &source.limits;
    let id = |c: &ColumnInfo| format!("{db}.{}.{}", t.name, c.name);
    let readable: Vec<&ColumnInfo> = t.columns.iter().filter(|c| !binary(c)).collect();
    let mut out: Vec<Asset> = t
        .columns
        .iter()
        .filter(|c| binary(c))
        .map(|c| skipped(&source.name, id(c), &c.column_type, "binary type"))
        .collect();
    if readable.is_empty() {
        return out;
    }
    let started = Instant::now();
    let budget = Duration::from_millis(l.table_budget_ms);
    let mut columns: Vec<Column> = readable.iter().map(|_| Column::default()).collect();
    let mut read_any = false;
    let mut failure: Option<String> = None;
    for sql in statements(conn, db, t, &readable, source).await {
        let left = budget.saturating_sub(started.elapsed());
        let rows: Vec<mysql_async::Row> = match tokio::time::timeout(left, conn.query(sql)).await {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                failure = Some(reason(&e));
                break;
            }
            Err(_) => {
                failure = Some("table time budget spent".into());
                break;
            }
        };
        for row in rows {
            read_any = true;
            for (i, c) in readable.iter().enumerate() {
                let bytes = match row.as_ref(i) {
                    Some(Value::Bytes(b)) => b.clone(),
                    Some(Value::NULL) | None => continue,
                    Some(other) => other.as_sql(true).into_bytes(),
                };
                if bytes.len() >= l.value_bytes as usize {
                    columns[i].cut += 1;
                }
                columns[i].add(engine, &c.name, &bytes);
            }
        }
    }
    let status = match (&failure, read_any) {
        (None, _) => Status::Complete,
        (Some(_), true) => Status::Partial,
        (Some(_), false) => Status::Skipped,
    };
    let why = failure.unwrap_or_default();
    for (c, col) in readable.iter().zip(columns) {
        out.push(col.asset(&source.name, id(c), &c.column_type, status, &why));
    }
    out
}

/// Crawls `source`: every asset found, or why the server could not be read at all.
pub async fn crawl(source: &Source, engine: &Engine, known: &Known) -> Result<Found, DarError> {
    let started = Instant::now();
    let budget = Duration::from_millis(source.limits.source_budget_ms);
    let mut conn = connect(source).await?;
    let dbs: Vec<String> = if source.scope.is_empty() {
        let all: Vec<mysql_async::Row> = conn
            .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY 1")
            .await
            .map_err(|e| DarError::Query(reason(&e)))?;
        all.into_iter()
            .filter_map(|r| mysql_async::from_row_opt::<String>(r).ok())
            .filter(|d| !SYSTEM.contains(&d.as_str()))
            .collect()
    } else {
        source.scope.clone()
    };
    let mut out = Found::default();
    for db in dbs {
        let tables = match catalog(&mut conn, &db).await {
            // The server hides what the account may not read; a database it listed on purpose
            // and sees nothing of is reported.
            Ok(t) if t.is_empty() && !source.scope.is_empty() => {
                out.assets.push(skipped(
                    &source.name,
                    db.clone(),
                    "database",
                    "no tables visible to this account (no privilege, or empty)",
                ));
                continue;
            }
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
                    .map(|c| (c.name.as_str(), c.column_type.as_str()));
                out.out_of_time(&source.name, &format!("{db}.{}", t.name), columns);
                continue;
            }
            out.table(
                &source.name,
                format!("{db}.{}", t.name),
                t.fingerprint(),
                known,
                table(&mut conn, engine, source, &db, t),
            )
            .await;
        }
    }
    let _ = conn.disconnect().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_binary_columns() {
        assert_eq!(ident("we`ird"), "`we``ird`");
        let c = |t: &str| ColumnInfo {
            name: "x".into(),
            column_type: t.into(),
            data_type: t.into(),
            primary: false,
        };
        assert!(binary(&c("longblob")) && !binary(&c("json")) && integer(&c("bigint")));
    }

    #[test]
    fn tls_trusts_the_source_ca_only_when_tls_is_asked_for() {
        let mut source = Source::new(crate::dar::Kind::Mysql, "m");
        source.ca_pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".into();
        source.connection_string = "mysql://u:p@db.corp:3306/shop?require_ssl=true".into();
        let opts = opts_of(&source).unwrap();
        assert_eq!(opts.ssl_opts().unwrap().root_certs().len(), 1);
        source.connection_string = "mysql://u:p@db.corp:3306/shop".into();
        assert!(opts_of(&source).unwrap().ssl_opts().is_none());
    }
}
