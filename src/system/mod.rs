//! The appliance itself: health and readiness, metrics, job status and manual
//! runs, search across domains, online backups over HTTP, and static assets.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Event};
use crate::config::Config;
use crate::http::layout::{redirect_with_flash, render, Layout};
use crate::http::listing::{self, ListQuery, MAX_LIMIT};
use crate::http::{assets, client_ip, ApiError, AppState, Auth, Perm, Routes};
use crate::jobs::{JobRun, JobStatus, TaskState};
use crate::search::Hit;

/// Registers the system routes. `/metrics` is public or needs the metrics scope, per config.
pub fn routes(r: &mut Routes, config: &Config) {
    r.api(Method::GET, "/healthz", Perm::Public, healthz);
    r.api(Method::GET, "/readyz", Perm::Public, readyz);
    let metrics_perm = if config.http.metrics_public {
        Perm::Public
    } else {
        Perm::Metrics
    };
    r.api(Method::GET, "/metrics", metrics_perm, metrics);
    r.api(
        Method::GET,
        "/static/{file:.*}",
        Perm::Public,
        assets::serve,
    );
    r.api(Method::GET, "/api/v1/jobs", Perm::Read, api_jobs);
    r.api(Method::GET, "/api/v1/jobs/{name}", Perm::Read, api_job);
    r.api(
        Method::POST,
        "/api/v1/jobs/{name}/run",
        Perm::Write,
        api_run_job,
    );
    r.api(Method::GET, "/api/v1/search", Perm::Read, api_search);
    r.api(Method::POST, "/api/v1/backup", Perm::SuperAdmin, api_backup);
    r.api(
        Method::GET,
        "/api/v1/notify/outbox",
        Perm::SuperAdmin,
        api_outbox,
    );
    r.page("/jobs", Perm::Read, jobs_page);
    r.form("/jobs/{name}/run", Perm::Write, run_job_form);
    r.page("/search", Perm::Read, search_page);
    r.nav(80, "Jobs", "/jobs", Perm::Read);
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    store: String,
    search: &'static str,
    tasks: std::collections::BTreeMap<String, TaskState>,
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = match state.store.run(|s| s.schema_version()).await {
        Ok(v) => format!("ok (schema {v})"),
        Err(e) => format!("failed: {e}"),
    };
    let tasks = state.supervisor.states();
    let ready = store.starts_with("ok") && state.supervisor.healthy();
    let body = Readiness {
        status: if ready { "ready" } else { "not ready" },
        store,
        search: if state.search.needs_rebuild() {
            "rebuilding"
        } else {
            "ok"
        },
        tasks,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

async fn api_jobs(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let sched = state.scheduler.clone();
    let items = tokio::task::spawn_blocking(move || sched.status())
        .await
        .map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// One job: schedule, whether it runs now, its last run.
async fn api_job(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let sched = state.scheduler.clone();
    let all = tokio::task::spawn_blocking(move || sched.status())
        .await
        .map_err(ApiError::internal)??;
    let job = all
        .into_iter()
        .find(|j| j.name == name.as_str())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no job named '{}'",
                name.chars().take(100).collect::<String>()
            ))
        })?;
    Ok(HttpResponse::Ok().json(job))
}

/// Starts job `name` and records who asked; the run itself is recorded when it ends.
async fn run_job(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    actor: String,
    name: String,
) -> Result<(), ApiError> {
    state.scheduler.start_now(&name, "manual")?;
    let ip = client_ip(req);
    state
        .store
        .run(move |s| {
            s.write(|w| {
                audit::record(
                    w,
                    Event::new(actor, "job.run", format!("job:{name}"))
                        .from_ip(ip)
                        .detail("started"),
                )
            })
            .map_err(ApiError::from)
        })
        .await
}

async fn api_run_job(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    run_job(&state, &req, p.actor(), name.clone()).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "job": name,
        "status": "started",
        "see": format!("/api/v1/jobs/{name}"),
    })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SearchQuery {
    q: String,
    kind: Option<String>,
    limit: Option<usize>,
}

/// Hits for `q`, after `offset` of them (search results are ranked, so they page by position).
async fn search(
    state: &web::Data<AppState>,
    q: SearchQuery,
    offset: usize,
    limit: usize,
) -> Result<Vec<Hit>, ApiError> {
    if q.q.len() > 500 {
        return Err(ApiError::bad_request("q: at most 500 characters"));
    }
    let search = state.search.clone();
    let mut hits = tokio::task::spawn_blocking(move || {
        search.query(
            &q.q,
            q.kind.as_deref(),
            (offset + limit).min(MAX_SEARCH_HITS),
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::from)?;
    Ok(hits.split_off(offset.min(hits.len())))
}

/// Hits one search can reach through its pages.
const MAX_SEARCH_HITS: usize = 10_000;

/// One page of hits and the cursor of the next.
async fn search_page_of(
    state: &web::Data<AppState>,
    list: &ListQuery,
    q: SearchQuery,
) -> Result<(Vec<Hit>, Option<String>), ApiError> {
    let limit = q.limit.map(|l| l.clamp(1, MAX_LIMIT)).unwrap_or(50);
    let offset = listing::cursor_id(list)?.unwrap_or(0) as usize;
    let mut hits = search(state, q, offset, limit + 1).await?;
    let next = (hits.len() > limit && offset + limit < MAX_SEARCH_HITS)
        .then(|| listing::cursor_after("position", (offset + limit) as u64));
    hits.truncate(limit);
    Ok((hits, next))
}

async fn api_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let (hits, next) = search_page_of(&state, &list, q.into_inner()).await?;
    if list.wants_csv(&req) {
        let rows = hits.iter().map(|h| {
            vec![
                h.kind.clone(),
                h.id.clone(),
                h.title.clone(),
                h.url.clone(),
                format!("{:.3}", h.score),
            ]
        });
        return Ok(listing::csv_response(
            "bulwark-search",
            listing::csv(&["kind", "id", "title", "url", "score"], rows),
        ));
    }
    Ok(listing::json_page(hits, next))
}

async fn api_outbox(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state.with_store(|s| crate::notify::outbox(s, 500)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// Streams a consistent copy of the database (the HTTP twin of `bulwark backup`). The copy is
/// written to a temporary file in the data dir, opened, unlinked, and streamed from the open
/// handle, so memory stays flat and nothing is left behind, whatever the client does.
async fn api_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let tmp = state
        .config
        .data_dir
        .join(format!(".backup-{}.redb", crate::auth::random_password()));
    let (actor, ip) = (p.actor(), client_ip(&req));
    let path = tmp.clone();
    let opened = state
        .store
        .run(move |s| {
            let report = s.backup_to(&path)?;
            let file = std::fs::File::open(&path).map_err(|source| crate::store::StoreError::Io {
                path: path.clone(),
                source,
            });
            let _ = std::fs::remove_file(&path);
            let file = file?;
            s.write(|w| {
                audit::record(
                    w,
                    Event::new(actor, "backup.download", "store")
                        .from_ip(ip)
                        .detail(format!("{} entries", report.entries)),
                )
            })?;
            Ok::<_, ApiError>(file)
        })
        .await;
    let _ = std::fs::remove_file(&tmp);
    let file = tokio::fs::File::from_std(opened?);
    let len = file.metadata().await.map_err(ApiError::internal)?.len();
    let name = format!(
        "bulwark-{}.redb",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .body(actix_web::body::SizedStream::new(len, stream)))
}

// ---- pages ----

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    layout: Layout,
    jobs: Vec<JobStatus>,
    history: Vec<JobRun>,
    can_run: bool,
}

async fn jobs_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    let sched = state.scheduler.clone();
    let (jobs, history) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((sched.status()?, sched.history(50)?))
    })
    .await
    .map_err(ApiError::internal)??;
    let layout = Layout::new(&state, &p, "Jobs", "/jobs");
    render(&JobsPage {
        layout,
        jobs,
        history,
        can_run: p.can(Perm::Write),
    })
}

async fn run_job_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    run_job(&state, &req, p.actor(), name.clone()).await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        "/jobs",
        &format!("{name} started; its result shows here when it ends"),
    ))
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout: Layout,
    q: String,
    hits: Vec<Hit>,
    next: Option<String>,
    csv: String,
}

async fn search_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = ListQuery::of(&req)?;
    let q = q.into_inner();
    let text = q.q.clone();
    let (hits, next) = search_page_of(&state, &list, q).await?;
    render(&SearchPage {
        layout: Layout::new(&state, &p, "Search", ""),
        q: text,
        hits,
        next: next.map(|n| format!("/search?{}", listing::with_cursor(req.query_string(), &n))),
        csv: format!(
            "/api/v1/search?{}",
            listing::with_param(req.query_string(), "format", "csv")
        ),
    })
}
