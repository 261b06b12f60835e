//! Runtime events' JSON: m9sweeper's Falco upload path (falcosidekick's webhook output), the
//! events with filters and a total, one event, the anomaly signatures, and the rules.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::acks::{self, Ack, Acks};
use super::ingest::{Ingest, Stored};
use super::rules::{self, Action, RuleCache, RuleInput};
use super::{event, Event, RuntimeError, EVENTS, SIGNATURES};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::store::{Scan, Store};

/// Largest event accepted.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Events listed at most per page.
const MAX_LIMIT: usize = 1_000;

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

/// The list's filters (the interface other tools script against).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct Filter {
    /// Cluster id or name.
    pub cluster: String,
    /// Exactly this priority.
    pub priority: String,
    /// This priority or a more severe one.
    pub min_priority: String,
    pub namespace: String,
    pub pod: String,
    pub image: String,
    pub rule: String,
    pub hostname: String,
    pub tag: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Words the output must contain (case-insensitive).
    pub q: String,
    pub limit: Option<usize>,
    /// Events with smaller ids (the next page).
    pub before: Option<u64>,
    /// `no`: only events nobody acknowledged; `yes`: only acknowledged ones; empty or `any`:
    /// both.
    pub acknowledged: String,
    /// `csv` for a CSV download (up to [`MAX_CSV`] events).
    pub format: String,
}

impl Filter {
    fn acknowledged(&self) -> Result<Option<bool>, ApiError> {
        match self.acknowledged.trim().to_ascii_lowercase().as_str() {
            "" | "any" => Ok(None),
            "no" | "false" => Ok(Some(false)),
            "yes" | "true" => Ok(Some(true)),
            _ => Err(ApiError::bad_request("acknowledged: one of any, no, yes")),
        }
    }

    fn csv(&self) -> bool {
        self.format.eq_ignore_ascii_case("csv")
    }
}

/// Events one CSV export holds at most.
pub const MAX_CSV: usize = 100_000;

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A filter with its cluster resolved and its words lower-cased.
struct Matcher {
    f: Filter,
    cluster: Option<u64>,
    min_rank: Option<usize>,
    priority: String,
    words: Vec<String>,
    acknowledged: Option<bool>,
}

impl Matcher {
    fn new(store: &Store, f: Filter) -> Result<Matcher, ApiError> {
        let cluster = match f.cluster.trim() {
            "" => None,
            c => Some(
                crate::compliance::service::find_cluster(store, c)
                    .map_err(|_| {
                        ApiError::not_found(format!(
                            "cluster '{}' not found",
                            c.chars().take(100).collect::<String>()
                        ))
                    })?
                    .id,
            ),
        };
        let min_rank = match f.min_priority.trim() {
            "" => None,
            p => Some(event::rank(p).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "min_priority: one of {}",
                    event::PRIORITIES.join(", ")
                ))
            })?),
        };
        let priority = match f.priority.trim() {
            "" => String::new(),
            p => event::normalize_priority(p),
        };
        let words =
            f.q.split_whitespace()
                .take(16)
                .map(str::to_lowercase)
                .collect();
        Ok(Matcher {
            acknowledged: f.acknowledged()?,
            f,
            cluster,
            min_rank,
            priority,
            words,
        })
    }

    fn matches(&self, e: &Event, acks: &Acks) -> bool {
        let f = &self.f;
        let eq = |want: &str, have: &str| want.is_empty() || want == have;
        self.cluster.is_none_or(|c| e.cluster == c)
            && (self.priority.is_empty() || e.priority == self.priority)
            && self
                .min_rank
                .is_none_or(|m| event::rank(&e.priority).is_some_and(|r| r <= m))
            && eq(&f.namespace, &e.namespace)
            && eq(&f.pod, &e.pod)
            && eq(&f.image, &e.image)
            && eq(&f.rule, &e.rule)
            && eq(&f.hostname, &e.hostname)
            && (f.tag.is_empty() || e.tags.contains(&f.tag))
            && f.since.is_none_or(|s| e.time >= s)
            && f.until.is_none_or(|u| e.time < u)
            && (self.words.is_empty() || {
                let out = e.output.to_lowercase();
                self.words.iter().all(|w| out.contains(w.as_str()))
            })
            && self
                .acknowledged
                .is_none_or(|want| acks.covers(e.id, &e.signature) == want)
    }
}

/// The newest `limit` matching events (below `before`) and how many events match in all:
/// from the index when it is loaded and the filter has no words, else from the store.
pub fn events(
    store: &Store,
    index: &super::index::Index,
    acks: &Acks,
    f: Filter,
) -> Result<(Vec<Event>, u64), ApiError> {
    let limit = if f.csv() {
        f.limit.unwrap_or(10_000).clamp(1, MAX_CSV)
    } else {
        f.limit.unwrap_or(100).clamp(1, MAX_LIMIT)
    };
    let before = f.before;
    let m = Matcher::new(store, f)?;
    if m.words.is_empty() {
        let q = super::index::Query {
            cluster: m.cluster,
            priority: (!m.priority.is_empty()).then(|| m.priority.clone()),
            max_rank: m.min_rank,
            namespace: some(&m.f.namespace),
            pod: some(&m.f.pod),
            image: some(&m.f.image),
            rule: some(&m.f.rule),
            hostname: some(&m.f.hostname),
            tag: some(&m.f.tag),
            since: m.f.since.and_then(|t| t.timestamp_nanos_opt()),
            until: m.f.until.and_then(|t| t.timestamp_nanos_opt()),
            before,
            acknowledged: m.acknowledged,
        };
        if let Some((ids, total)) = index.search(&q, acks, limit) {
            let items = store.read(|r| {
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    // Retention may have taken it since the index was read.
                    if let Some(e) = r.get(&EVENTS, id)? {
                        out.push(e);
                    }
                }
                Ok::<_, crate::store::StoreError>(out)
            })?;
            return Ok((items, total));
        }
    }
    let mut items = Vec::new();
    let mut total = 0u64;
    store.read(|r| {
        r.scan(
            &EVENTS,
            Scan {
                reverse: true,
                ..Scan::default()
            },
            |id: u64, e: Event| {
                if m.matches(&e, acks) {
                    total += 1;
                    if items.len() < limit && before.is_none_or(|b| id < b) {
                        items.push(e);
                    }
                }
                Ok(true)
            },
        )
    })?;
    Ok((items, total))
}

/// An event as lists show it: with whether someone acknowledged it.
#[derive(serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub event: Event,
    pub acknowledged: bool,
}

/// The CSV of `events` (one row each; output fields as one JSON cell).
pub fn csv(events: &[Listed]) -> String {
    crate::http::listing::csv(
        &[
            "id",
            "time",
            "cluster",
            "priority",
            "rule",
            "namespace",
            "pod",
            "image",
            "image_tag",
            "hostname",
            "source",
            "tags",
            "silenced",
            "acknowledged",
            "output",
            "output_fields",
        ],
        events.iter().map(|l| {
            let e = &l.event;
            vec![
                e.id.to_string(),
                e.time.to_rfc3339(),
                e.cluster.to_string(),
                e.priority.clone(),
                e.rule.clone(),
                e.namespace.clone(),
                e.pod.clone(),
                e.image.clone(),
                e.image_tag.clone(),
                e.hostname.clone(),
                e.source.clone(),
                e.tags.join(" "),
                e.silenced.to_string(),
                l.acknowledged.to_string(),
                e.output.clone(),
                serde_json::to_string(&e.fields).unwrap_or_default(),
            ]
        }),
    )
}

/// The list for `f` with each event's acknowledgement.
pub fn listed(rt: &Runtime, store: &Store, f: Filter) -> Result<(Vec<Listed>, u64), ApiError> {
    let (items, total) = events(store, &rt.index, &rt.acks, f)?;
    let items = items
        .into_iter()
        .map(|e| Listed {
            acknowledged: rt.acks.covers(e.id, &e.signature),
            event: e,
        })
        .collect();
    Ok((items, total))
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
            csv(&items),
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
