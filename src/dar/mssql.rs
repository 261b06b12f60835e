//! Microsoft SQL Server (tiberius over rustls): the listed databases (or every user database the
//! login may open), one catalog query per database, then a bounded sample of each table: the
//! start of a small one, `TABLESAMPLE` pages of a large one. The session asks for read-only
//! intent, reads uncommitted rows (so a crawl never waits for, nor blocks, a writer), gives up
//! on locks after the statement timeout, and every statement is cancelled at that timeout.

use std::time::{Duration, Instant};

use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Row, SqlBrowser};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::classify::{skipped, Column};
use super::crawl::{fingerprint, Found, Known};
use super::sources::Source;
use super::{Asset, DarError, Status};
use crate::detect::Engine;

type Conn = Client<Compat<TcpStream>>;

#[derive(Debug, Clone, PartialEq)]
struct ColumnInfo {
    name: String,
    /// `nvarchar`, `int`, `varbinary`, ...
    type_name: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Table {
    schema: String,
    name: String,
    rows: i64,
    /// Row count and last modification: what tells a rerun the table changed.
    extent: String,
    columns: Vec<ColumnInfo>,
}

/// Every user table of `db` with its columns in order, its row count (from the partitions'
/// metadata, not a count) and its last schema change: three-part names, so no `USE` changes
/// the session's database.
fn catalog_sql(db: &str) -> String {
    let d = ident(db);
    format!(
        "SELECT s.name, t.name, c.name, ty.name, CAST(COALESCE(p.rows, 0) AS bigint), \
         CONVERT(nvarchar(30), t.modify_date, 126) \
         FROM {d}.sys.tables t \
         JOIN {d}.sys.schemas s ON s.schema_id = t.schema_id \
         JOIN {d}.sys.columns c ON c.object_id = t.object_id \
         JOIN {d}.sys.types ty ON ty.user_type_id = c.user_type_id \
         LEFT JOIN (SELECT object_id, SUM(rows) AS rows FROM {d}.sys.partitions \
                    WHERE index_id IN (0, 1) GROUP BY object_id) p ON p.object_id = t.object_id \
         WHERE t.is_ms_shipped = 0 \
         ORDER BY s.name, t.name, c.column_id"
    )
}

/// User databases online and open to this login.
const DATABASES: &str = "SELECT name FROM sys.databases \
    WHERE database_id > 4 AND state = 0 AND HAS_DBACCESS(name) = 1 ORDER BY name";

/// `[name]`, with `]` doubled as T-SQL escapes it.
fn ident(s: &str) -> String {
    format!("[{}]", s.replace(']', "]]"))
}

/// Types whose values are not text (or whose text is not the data: row versions).
fn binary(type_name: &str) -> bool {
    matches!(
        type_name.to_ascii_lowercase().as_str(),
        "binary"
            | "varbinary"
            | "image"
            | "timestamp"
            | "rowversion"
            | "geometry"
            | "geography"
            | "hierarchyid"
            | "sql_variant"
    )
}

/// The statement that samples `t`: `value_bytes` characters of each column as text, from the
/// start of a small table or from `TABLESAMPLE` pages of a large one.
fn sample_sql(db: &str, t: &Table, columns: &[&ColumnInfo], rows: u32, value_chars: u32) -> String {
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            format!(
                "CAST(LEFT(CONVERT(nvarchar(max), {}), {value_chars}) AS nvarchar(max))",
                ident(&c.name)
            )
        })
        .collect();
    let from = format!("{}.{}.{}", ident(db), ident(&t.schema), ident(&t.name));
    let big = t.rows > i64::from(rows) * 20;
    let sample = if big {
        // Pages, not rows: a few times the share wanted, since pages are unevenly full.
        let percent = ((f64::from(rows) * 4.0 / t.rows as f64) * 100.0).clamp(0.01, 100.0);
        format!(" TABLESAMPLE ({percent:.4} PERCENT)")
    } else {
        String::new()
    };
    format!(
        "SELECT TOP ({rows}) {} FROM {from}{sample}",
        list.join(", ")
    )
}

/// A connection string as a driver config: `sqlserver://user:password@host:port/instance?
/// database=db&encrypt=true` (go-mssqldb's form, which Soveren's sensor takes) or an ADO.NET
/// string (`Server=tcp:host,1433;User Id=...;Password=...;Database=...`).
fn config_of(source: &Source) -> Result<Config, DarError> {
    let bad = |why: &str| DarError::Config(format!("{}: connection_string: {why}", source.name));
    let cs = source.connection_string.trim();
    let mut config = if let Some(rest) = cs.strip_prefix("sqlserver://") {
        let url = url::Url::parse(&format!("mssql://{rest}")).map_err(|_| bad("not a URL"))?;
        let mut c = Config::new();
        c.host(url.host_str().ok_or_else(|| bad("no host"))?);
        c.port(url.port().unwrap_or(1433));
        let instance = url.path().trim_matches('/');
        if !instance.is_empty() {
            c.instance_name(instance);
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("user or password is not valid percent-encoding"))
        };
        if !url.username().is_empty() {
            c.authentication(AuthMethod::sql_server(
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ));
        }
        c.encryption(EncryptionLevel::Required);
        for (k, v) in url.query_pairs() {
            match k.to_ascii_lowercase().as_str() {
                "database" | "initial catalog" => c.database(v.as_ref()),
                "encrypt" => c.encryption(match v.to_ascii_lowercase().as_str() {
                    "true" | "mandatory" | "yes" => EncryptionLevel::Required,
                    "strict" => EncryptionLevel::Strict,
                    "false" | "optional" | "no" => EncryptionLevel::Off,
                    "disable" => EncryptionLevel::NotSupported,
                    _ => return Err(bad("encrypt: true, strict, false or disable")),
                }),
                "trustservercertificate" if v.eq_ignore_ascii_case("true") => {
                    return Err(bad(
                        "TrustServerCertificate=true turns certificate checks off: give the server's CA in ca_pem instead",
                    ))
                }
                _ => {}
            }
        }
        c
    } else if cs.contains('=') {
        if cs
            .to_ascii_lowercase()
            .replace(' ', "")
            .contains("trustservercertificate=true")
        {
            return Err(bad(
                "TrustServerCertificate=true turns certificate checks off: give the server's CA in ca_pem instead",
            ));
        }
        Config::from_ado_string(cs).map_err(|_| bad("not an ADO.NET connection string"))?
    } else {
        return Err(bad("a sqlserver:// URL or an ADO.NET connection string"));
    };
    if !source.default_db.is_empty() {
        config.database(&source.default_db);
    }
    // The source's own CA, else the appliance's extra CAs; tiberius then trusts only those.
    let bundle = if source.ca_pem.trim().is_empty() {
        source.outbound.extra_roots_pem()
    } else {
        source.ca_pem.clone()
    };
    if !bundle.is_empty() {
        config.trust_cert_ca_bundle(bundle.into_bytes());
    }
    config.application_name("bulwark-crawler");
    config.readonly(true);
    config.command_timeout(Some(Duration::from_millis(
        source.limits.statement_timeout_ms,
    )));
    Ok(config)
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A server error as a reason: SQL Server's numbers that mean a permission or a timeout are
/// named so.
fn reason(e: &tiberius::error::Error) -> String {
    match e {
        tiberius::error::Error::Server(t) => match t.code() {
            229 | 230 | 262 | 297 | 300 => "permission denied".into(),
            916 => "permission denied (the login cannot open this database)".into(),
            1222 => "lock timeout".into(),
            18456 => "login failed".into(),
            _ => t.message().chars().take(300).collect(),
        },
        other => other.to_string().chars().take(300).collect(),
    }
}

async fn connect(source: &Source) -> Result<Conn, DarError> {
    let config = config_of(source)?;
    let wait = Duration::from_secs(10);
    // A named instance's port comes from the SQL Server Browser (UDP 1434).
    let tcp = tokio::time::timeout(wait, TcpStream::connect_named(&config))
        .await
        .map_err(|_| DarError::Connect("cannot connect: no answer within 10 s".into()))?
        .map_err(|e| DarError::Connect(format!("cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut conn = tokio::time::timeout(wait, Client::connect(config, tcp.compat_write()))
        .await
        .map_err(|_| DarError::Connect("cannot connect: no TDS answer within 10 s".into()))?
        .map_err(|e| DarError::Connect(format!("cannot connect: {}", reason(&e))))?;
    let setup = format!(
        "SET TRANSACTION ISOLATION LEVEL READ UNCOMMITTED; SET LOCK_TIMEOUT {}; SET NOCOUNT ON",
        source.limits.statement_timeout_ms
    );
    conn.simple_query(setup)
        .await
        .map_err(|e| DarError::Query(reason(&e)))?
        .into_results()
        .await
        .map_err(|e| DarError::Query(reason(&e)))?;
    Ok(conn)
}

async fn rows(conn: &mut Conn, sql: String) -> Result<Vec<Row>, tiberius::error::Error> {
    conn.simple_query(sql).await?.into_first_result().await
}

/// The catalog rows, grouped into tables (a row that does not fit is left out).
fn tables_of(rows: Vec<Row>) -> Vec<Table> {
    let mut tables: Vec<Table> = Vec::new();
    for row in rows {
        let text = |i: usize| row.try_get::<&str, _>(i).ok().flatten().map(str::to_string);
        let (Some(schema), Some(table), Some(column), Some(type_name)) =
            (text(0), text(1), text(2), text(3))
        else {
            continue;
        };
        let n: i64 = row.try_get(4).ok().flatten().unwrap_or(0);
        let modified = text(5).unwrap_or_default();
        let c = ColumnInfo {
            name: column,
            type_name,
        };
        match tables.last_mut() {
            Some(t) if t.schema == schema && t.name == table => t.columns.push(c),
            _ => tables.push(Table {
                schema,
                name: table,
                rows: n,
                extent: format!("{n}/{modified}"),
                columns: vec![c],
            }),
        }
    }
    tables
}

async fn table(
    conn: &mut Conn,
    engine: &Engine,
    source: &Source,
    db: &str,
    t: &Table,
) -> Vec<Asset> {
    let l = &source.limits;
    let id = |c: &ColumnInfo| format!("{db}.{}.{}.{}", t.schema, t.name, c.name);
    let readable: Vec<&ColumnInfo> = t.columns.iter().filter(|c| !binary(&c.type_name)).collect();
    let mut out: Vec<Asset> = t
        .columns
        .iter()
        .filter(|c| binary(&c.type_name))
        .map(|c| skipped(&source.name, id(c), &c.type_name, "binary type"))
        .collect();
    if readable.is_empty() {
        return out;
    }
    let sql = sample_sql(db, t, &readable, l.rows_per_table, l.value_bytes);
    let budget = Duration::from_millis(l.table_budget_ms);
    let (status, why, got) = match tokio::time::timeout(budget, rows(conn, sql)).await {
        Ok(Ok(got)) => (Status::Complete, String::new(), got),
        Ok(Err(e)) => (Status::Skipped, reason(&e), Vec::new()),
        Err(_) => (
            Status::Skipped,
            "table time budget spent".to_string(),
            Vec::new(),
        ),
    };
    let mut columns: Vec<Column> = readable.iter().map(|_| Column::default()).collect();
    for row in &got {
        for (i, c) in readable.iter().enumerate() {
            let Some(value) = row.try_get::<&str, _>(i).ok().flatten() else {
                continue;
            };
            if value.chars().count() >= l.value_bytes as usize {
                columns[i].cut += 1;
            }
            columns[i].add(engine, &c.name, value.as_bytes());
        }
    }
    for (c, col) in readable.iter().zip(columns) {
        out.push(col.asset(&source.name, id(c), &c.type_name, status, &why));
    }
    out
}

/// Crawls `source`: every asset found, or why the server could not be read at all.
pub async fn crawl(source: &Source, engine: &Engine, known: &Known) -> Result<Found, DarError> {
    let started = Instant::now();
    let budget = Duration::from_millis(source.limits.source_budget_ms);
    let mut conn = connect(source).await?;
    let dbs: Vec<String> = if source.scope.is_empty() {
        let listed = rows(&mut conn, DATABASES.to_string())
            .await
            .map_err(|e| DarError::Query(reason(&e)))?;
        listed
            .iter()
            .filter_map(|r| r.try_get::<&str, _>(0).ok().flatten().map(str::to_string))
            .collect()
    } else {
        source.scope.clone()
    };
    let mut out = Found::default();
    for db in dbs {
        let catalog = match rows(&mut conn, catalog_sql(&db)).await {
            Ok(r) => tables_of(r),
            Err(e) => {
                out.assets
                    .push(skipped(&source.name, db.clone(), "database", &reason(&e)));
                continue;
            }
        };
        for t in &catalog {
            let key = format!("{db}.{}.{}", t.schema, t.name);
            if started.elapsed() >= budget {
                let columns = t
                    .columns
                    .iter()
                    .map(|c| (c.name.as_str(), c.type_name.as_str()));
                out.out_of_time(&source.name, &key, columns);
                continue;
            }
            let print = fingerprint(
                &t.extent,
                t.columns
                    .iter()
                    .map(|c| (c.name.as_str(), c.type_name.as_str())),
            );
            out.table(
                &source.name,
                key,
                print,
                known,
                table(&mut conn, engine, source, &db, t),
            )
            .await;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dar::Kind;

    fn source(cs: &str) -> Source {
        Source {
            connection_string: cs.into(),
            ..Source::new(Kind::Mssql, "mssql")
        }
    }

    #[test]
    fn connection_strings_in_both_forms() {
        let c = config_of(&source(
            "sqlserver://crawler:p%40ss@db.corp:14330?database=sales",
        ))
        .unwrap();
        assert_eq!(c.get_addr(), "db.corp:14330");
        assert!(config_of(&source("sqlserver://u:p@db.corp/SQLEXPRESS")).is_ok());
        let c = config_of(&source(
            "Server=tcp:db.corp,1433;User Id=u;Password=p;Database=d",
        ))
        .unwrap();
        assert_eq!(c.get_addr(), "db.corp:1433");
        for bad in [
            "sqlserver://u:p@db?TrustServerCertificate=true",
            "Server=tcp:db,1433;TrustServerCertificate = true",
            "sqlserver://u:p@db?encrypt=maybe",
            "postgresql://u:p@db",
            "sqlserver://u:%zz@db",
        ] {
            let err = config_of(&source(bad)).unwrap_err().to_string();
            assert!(!err.contains(":p@"), "never printed: {err}");
        }
    }

    #[test]
    fn sampling_statements_are_quoted_and_bounded() {
        let t = |rows| Table {
            schema: "dbo".into(),
            name: "Cust]omers".into(),
            rows,
            extent: String::new(),
            columns: Vec::new(),
        };
        let cols = [ColumnInfo {
            name: "E-mail".into(),
            type_name: "nvarchar".into(),
        }];
        let refs: Vec<&ColumnInfo> = cols.iter().collect();
        let small = sample_sql("sales", &t(100), &refs, 200, 4096);
        assert_eq!(
            small,
            "SELECT TOP (200) CAST(LEFT(CONVERT(nvarchar(max), [E-mail]), 4096) AS nvarchar(max)) FROM [sales].[dbo].[Cust]]omers]"
        );
        let big = sample_sql("sales", &t(1_000_000), &refs, 200, 4096);
        assert!(big.ends_with(" TABLESAMPLE (0.0800 PERCENT)"), "{big}");
        assert!(
            binary("varbinary") && binary("geography") && !binary("xml") && !binary("nvarchar")
        );
        assert_eq!(ident("a]b"), "[a]]b]");
        let catalog = catalog_sql("sa]les");
        assert_eq!(catalog.matches("[sa]]les].sys.").count(), 5, "{catalog}");
    }

    #[tokio::test]
    async fn an_unreachable_or_silent_server_is_an_error_not_a_hang() {
        let engine = Engine::default();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = source(&format!(
            "sqlserver://u:secret@127.0.0.1:{closed}?database=d"
        ));
        let err = crawl(&s, &engine, &Known::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot connect"), "{err}");
        assert!(!err.contains("secret"));
        // A server that accepts and then says nothing TDS: the handshake fails or times out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let s = source(&format!(
            "sqlserver://u:secret@127.0.0.1:{port}?database=d&encrypt=disable"
        ));
        let err = crawl(&s, &engine, &Known::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cannot connect"), "{err}");
    }
}
