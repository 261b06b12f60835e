//! Runtime events' JSON: m9sweeper's Falco upload path (falcosidekick's webhook output), the
//! events with filters and a total, one event, the anomaly signatures, and the rules.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::acks::{self, Ack, Acks};
use super::ingest::{Ingest, Stored};
use super::list::{listed, Filter, MAX_LIMIT};
use super::rules::{self, Action, RuleCache, RuleInput};
use super::{event, Event, RuntimeError, EVENTS, SIGNATURES};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::store::Store;

/// Largest event accepted.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct EventLabels {
    cluster: String,
    priority: String,
    /// `stored`, `silenced`, `ignored` or `duplicate`.
    outcome: String,
}

/// The domain's state: the writer, the compiled rules, the in-memory columns and
/// acknowledgements, and the counters.
pub struct Runtime {
    pub ingest: Ingest,
    pub rules: RuleCache,
    pub index: Arc<super::index::Index>,
    pub acks: Arc<Acks>,
    events: prometheus_client::metrics::family::Family<
        EventLabels,
        prometheus_client::metrics::counter::Counter,
    >,
}

impl Runtime {
    /// Starts the writer over `store`, seeds the default rule, registers the counters.
    /// `base_url` (the console's public address, may be empty) starts links in alert mails.
    pub fn start(
        store: &Store,
        metrics: &crate::http::metrics::Metrics,
        base_url: String,
        limits: super::retention::Limits,
    ) -> Result<Runtime, crate::store::StoreError> {
        rules::seed(store)?;
        let events = prometheus_client::metrics::family::Family::default();
        metrics.register(
            "falco_events",
            "Falco events received, by cluster, priority and what became of them",
            events.clone(),
        );
        let index = Arc::new(super::index::Index::default());
        let (loading, from) = (index.clone(), store.clone());
        std::thread::Builder::new()
            .name("falco-index".into())
            .spawn(move || {
                if let Err(e) = loading.load_from(&from) {
                    tracing::error!(error = %e, "falco events not indexed; lists read the store");
                }
            })
            .map_err(|e| crate::store::StoreError::Join(e.to_string()))?;
        let acks = Arc::new(Acks::load(store)?);
        let guard =
            super::retention::Guard::start(store.clone(), limits, index.clone(), acks.clone());
        Ok(Runtime {
            ingest: Ingest::start(store.clone(), index.clone(), base_url, guard),
            rules: RuleCache::default(),
            index,
            acks,
            events,
        })
    }

    fn count(&self, cluster: &str, priority: &str, outcome: &str) {
        self.events
            .get_or_create(&EventLabels {
                cluster: cluster.to_string(),
                priority: priority.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// Registers the routes.
pub fn routes(r: &mut Routes) {
    for path in [
        "/api/falco/{cluster}/create",
        "/api/falco/{cluster}/create/",
    ] {
        r.api(Method::POST, path, Perm::UploadFalco, upload);
    }
    r.api(Method::GET, "/api/v1/falco/events", Perm::Read, list_events);
    r.api(
        Method::GET,
        "/api/v1/falco/events/{id}",
        Perm::Read,
        get_event,
    );
    r.api(
        Method::GET,
        "/api/v1/falco/signatures",
        Perm::Read,
        list_signatures,
    );
    let event_ack = "/api/v1/falco/events/{id}/ack";
    r.api(Method::POST, event_ack, Perm::Write, ack_event);
    r.api(Method::DELETE, event_ack, Perm::Write, unack_event);
    let signature_ack = "/api/v1/falco/signatures/{signature}/ack";
    r.api(Method::POST, signature_ack, Perm::Write, ack_signature);
    r.api(Method::DELETE, signature_ack, Perm::Write, unack_signature);
    r.api(
        Method::GET,
        "/api/v1/falco/alerting",
        Perm::Read,
        get_alerting,
    );
    r.api(
        Method::PUT,
        "/api/v1/falco/alerting",
        Perm::Write,
        put_alerting,
    );
    r.api(Method::GET, "/api/v1/falco/alerts", Perm::Read, list_alerts);
    r.api(Method::GET, "/api/v1/falco/rules", Perm::Read, list_rules);
    r.api(
        Method::POST,
        "/api/v1/falco/rules",
        Perm::Write,
        create_rule,
    );
    r.api(
        Method::PUT,
        "/api/v1/falco/rules/{id}",
        Perm::Write,
        update_rule,
    );
    r.api(
        Method::DELETE,
        "/api/v1/falco/rules/{id}",
        Perm::Write,
        delete_rule,
    );
    super::pages::routes(r);
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/falco/values",
        Perm::Write,
        api_setup,
    );
    let settings = "/api/v1/clusters/{id}/falco/settings";
    r.api(Method::GET, settings, Perm::Read, get_settings);
    r.api(Method::PUT, settings, Perm::Write, put_settings);
}

pub(super) fn runtime(state: &AppState) -> Result<Arc<Runtime>, ApiError> {
    state
        .domains
        .get::<Runtime>()
        .ok_or_else(|| ApiError::internal("runtime events not configured"))
}

async fn upload(
    state: web::Data<AppState>,
    req: HttpRequest,
    cluster: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let rt = runtime(&state)?;
    let body = crate::http::read_body(&req, payload, MAX_EVENT_BYTES).await?;
    let name = cluster.into_inner();
    let rt2 = rt.clone();
    let decided = state
        .with_store(move |s| {
            let c = crate::compliance::service::find_cluster(s, &name).map_err(|_| {
                ApiError::not_found(format!(
                    "cluster '{}' not found",
                    name.chars().take(100).collect::<String>()
                ))
            })?;
            let mut e = event::parse(c.id, &body, Utc::now())?;
            let minimum = super::settings::get(s, c.id)?;
            if super::settings::below_minimum(&minimum, &e.priority) {
                return Ok::<_, ApiError>((c.name, e, None, Some(minimum.min_priority)));
            }
            let rule = rt2.rules.decide(s, &e)?;
            if let Some((Action::Silence, _)) = rule {
                e.silenced = true;
            }
            Ok::<_, ApiError>((c.name, e, rule, None))
        })
        .await?;
    let (cluster, e, rule, below) = decided;
    let priority = e.priority.clone();
    if let Some(min) = below {
        rt.count(&cluster, &priority, "ignored");
        return Ok(HttpResponse::Ok().json(json!({
            "success": true, "data": null,
            "message": format!("below the cluster's minimum priority ({min})")})));
    }
    if let Some((Action::Ignore, id)) = rule {
        rt.count(&cluster, &priority, "ignored");
        return Ok(HttpResponse::Ok().json(json!({
            "success": true, "message": format!("ignored by falco rule {id}"), "data": null})));
    }
    let silenced = e.silenced;
    let stored = rt.ingest.submit(e).await?;
    Ok(match stored {
        Stored::New(id) => {
            rt.count(
                &cluster,
                &priority,
                if silenced { "silenced" } else { "stored" },
            );
            HttpResponse::Created()
                .json(json!({"success": true, "message": "", "data": {"id": id}}))
        }
        Stored::Duplicate(id) => {
            rt.count(&cluster, &priority, "duplicate");
            HttpResponse::Ok().json(json!({
                "success": true, "message": "already stored", "data": {"id": id}}))
        }
    })
}

async fn list_events(
    state: web::Data<AppState>,
    q: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let f = q.into_inner();
    let as_csv = f.csv();
    let rt = runtime(&state)?;
    let (items, total) = state.with_store(move |s| listed(&rt, s, f)).await?;
    if as_csv {
        return Ok(crate::http::listing::csv_response(
            "falco-events",
            super::list::csv(&items),
        ));
    }
    Ok(HttpResponse::Ok().json(json!({ "items": items, "total": total })))
}

/// One event with the acknowledgement that covers it.
pub fn event_with_ack(store: &Store, id: u64) -> Result<(Event, Option<Ack>), ApiError> {
    let e = store
        .read(|r| r.get(&EVENTS, &id))?
        .ok_or_else(|| RuntimeError::NotFound(format!("no falco event {id}")))?;
    let ack = acks::of_event(store, &e)?;
    Ok((e, ack))
}

async fn get_event(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (e, ack) = state.with_store(move |s| event_with_ack(s, id)).await?;
    let mut body = serde_json::to_value(e).map_err(ApiError::internal)?;
    body["acknowledgement"] = serde_json::to_value(ack).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct AckBody {
    note: String,
}

async fn ack_event(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<AckBody>,
) -> Result<HttpResponse, ApiError> {
    let (id, rt) = (id.into_inner(), runtime(&state)?);
    let a = state
        .with_store(move |s| acks::ack_event(s, &rt.acks, &p.email, id, &body.note))
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

async fn unack_event(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (id, rt) = (id.into_inner(), runtime(&state)?);
    state
        .with_store(move |s| acks::unack_event(s, &rt.acks, &p.email, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn ack_signature(
    state: web::Data<AppState>,
    Auth(p): Auth,
    sig: web::Path<String>,
    body: web::Json<AckBody>,
) -> Result<HttpResponse, ApiError> {
    let (sig, rt) = (sig.into_inner(), runtime(&state)?);
    let a = state
        .with_store(move |s| acks::ack_signature(s, &rt.acks, &p.email, &sig, &body.note))
        .await?;
    Ok(HttpResponse::Ok().json(a))
}

async fn unack_signature(
    state: web::Data<AppState>,
    Auth(p): Auth,
    sig: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (sig, rt) = (sig.into_inner(), runtime(&state)?);
    state
        .with_store(move |s| acks::unack_signature(s, &rt.acks, &p.email, &sig))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_alerting(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = state
        .with_store(|s| Ok::<_, ApiError>(super::alerts::settings(s)?))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

async fn put_alerting(
    state: web::Data<AppState>,
    Auth(p): Auth,
    body: web::Json<super::alerts::Settings>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let s = state
        .with_store(move |s| super::alerts::put(s, &p.email, body))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AlertsQuery {
    limit: Option<usize>,
}

async fn list_alerts(
    state: web::Data<AppState>,
    q: web::Query<AlertsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let items = state
        .with_store(move |s| Ok::<_, ApiError>(super::alerts::list(s, limit)?))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignatureQuery {
    cluster: Option<u64>,
}

async fn list_signatures(
    state: web::Data<AppState>,
    q: web::Query<SignatureQuery>,
) -> Result<HttpResponse, ApiError> {
    let cluster = q.cluster;
    let mut items = state
        .with_store(move |s| {
            Ok::<_, ApiError>(
                s.read(|r| r.all(&SIGNATURES))?
                    .into_iter()
                    .map(|(_, v)| v)
                    .filter(|v| cluster.is_none_or(|c| v.cluster == c))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    items.sort_by_key(|s| std::cmp::Reverse(s.last));
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn list_rules(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let items = state
        .with_store(|s| Ok::<_, ApiError>(rules::list(s)?))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

async fn create_rule(
    state: web::Data<AppState>,
    Auth(p): Auth,
    body: web::Json<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner();
    let r = state
        .with_store(move |s| rules::create(s, &p.email, input))
        .await?;
    Ok(HttpResponse::Created().json(r))
}

async fn update_rule(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<RuleInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, input) = (id.into_inner(), body.into_inner());
    let r = state
        .with_store(move |s| rules::update(s, &p.email, id, input))
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

async fn delete_rule(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    state
        .with_store(move |s| rules::delete(s, &p.email, id))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn get_settings(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let s = state
        .with_store(move |s| {
            crate::clusters::get(s, id)?;
            Ok::<_, ApiError>(super::settings::get(s, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

async fn put_settings(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<super::settings::Settings>,
) -> Result<HttpResponse, ApiError> {
    let (id, body) = (id.into_inner(), body.into_inner());
    let s = state
        .with_store(move |s| super::settings::put(s, &p.email, id, body))
        .await?;
    Ok(HttpResponse::Ok().json(s))
}

/// The falcosidekick setup for cluster `id`, with a new API key holding only the `falco` scope,
/// owned by the caller (revocable under API keys like any other).
pub fn make_setup(
    store: &Store,
    p: &crate::http::Principal,
    ip: &str,
    id: u64,
    req: &super::setup::Request,
    ca_path: &std::path::Path,
) -> Result<(String, super::setup::Setup), ApiError> {
    let c = crate::clusters::get(store, id)?;
    // Checked before a key is made, so a refused form leaves no key behind.
    super::setup::render(req, id, &c.name, "check", "")?;
    let ca_pem = std::fs::read_to_string(ca_path)
        .map_err(|e| ApiError::internal(format!("the appliance's CA is not readable: {e}")))?;
    let actor = crate::http::Actor::of(p, ip.to_string());
    let key = crate::auth::create_api_key(
        store,
        &actor,
        p.user_id,
        &format!("falcosidekick for cluster {}", c.name),
        &[crate::http::Scope::Falco],
    )
    .map_err(ApiError::from)?;
    Ok((
        c.name.clone(),
        super::setup::render(req, id, &c.name, &key.key, &ca_pem)?,
    ))
}

async fn api_setup(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<super::setup::Request>,
) -> Result<HttpResponse, ApiError> {
    let (id, ip) = (id.into_inner(), crate::http::client_ip(&req));
    let ca = crate::http::tls::trust_anchor_path(&state.config);
    let body = body.into_inner();
    let (_, setup) = state
        .with_store(move |s| make_setup(s, &p, &ip, id, &body, &ca))
        .await?;
    Ok(HttpResponse::Ok().json(setup))
}
