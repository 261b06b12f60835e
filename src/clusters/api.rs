//! Cluster API (the pages are in `pages.rs`), and the changes both make.

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use super::{Cluster, ClusterError, ClusterPatch, NewCluster};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Principal, Routes};
use crate::search::Search;

/// Registers the cluster routes and pages.
pub fn routes(r: &mut Routes) {
    super::report::routes(r);
    r.api(Method::GET, "/api/v1/clusters", Perm::Read, api_list);
    r.api(Method::POST, "/api/v1/clusters", Perm::Write, api_create);
    r.api(Method::GET, "/api/v1/clusters/{id}", Perm::Read, api_get);
    // Admins only: the URL carries the cluster's webhook token when it requires one.
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/webhook-configuration",
        Perm::Write,
        api_webhook_configuration,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/webhook",
        Perm::Read,
        api_webhook_status,
    );
    r.api(
        Method::PUT,
        "/api/v1/clusters/{id}/webhook",
        Perm::Write,
        api_webhook_install,
    );
    r.api(
        Method::DELETE,
        "/api/v1/clusters/{id}/webhook",
        Perm::Write,
        api_webhook_remove,
    );
    r.api(
        Method::PATCH,
        "/api/v1/clusters/{id}",
        Perm::Write,
        api_update,
    );
    r.api(
        Method::DELETE,
        "/api/v1/clusters/{id}",
        Perm::Write,
        api_delete,
    );
    r.api(
        Method::PUT,
        "/api/v1/clusters/{id}/pods",
        Perm::Write,
        api_put_pods,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/pods",
        Perm::Read,
        api_get_pods,
    );
    r.api(
        Method::PUT,
        "/api/v1/clusters/{id}/kubernetes",
        Perm::Write,
        api_connect,
    );
    r.api(
        Method::GET,
        "/api/v1/clusters/{id}/kubernetes",
        Perm::Read,
        api_link,
    );
    r.api(
        Method::DELETE,
        "/api/v1/clusters/{id}/kubernetes",
        Perm::Write,
        api_disconnect,
    );
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/kubernetes/sync",
        Perm::Write,
        api_sync,
    );
    r.api(
        Method::POST,
        "/api/v1/clusters/{id}/webhook-token",
        Perm::Write,
        api_issue_webhook_token,
    );
    r.api(
        Method::DELETE,
        "/api/v1/clusters/{id}/webhook-token",
        Perm::Write,
        api_revoke_webhook_token,
    );
    super::pages::routes(r);
}

fn reindex(search: &Search, c: &Cluster) {
    if let Err(e) = search.upsert(&super::search_doc(c)) {
        tracing::warn!(error = %e, cluster = c.id, "search index not updated; it is rebuilt on next start");
    }
}

pub(super) async fn create_cluster(
    state: &web::Data<AppState>,
    p: &Principal,
    ip: String,
    new: NewCluster,
) -> Result<Result<Cluster, ClusterError>, ApiError> {
    let actor = p.actor();
    let search = state.search.clone();
    state
        .store
        .run(move |s| {
            let res = super::create(s, &actor, &ip, new);
            if let Ok(c) = &res {
                reindex(&search, c);
            }
            Ok::<_, ApiError>(res)
        })
        .await
}

pub(super) async fn update_cluster(
    state: &web::Data<AppState>,
    p: &Principal,
    ip: String,
    id: u64,
    patch: ClusterPatch,
) -> Result<Result<Cluster, ClusterError>, ApiError> {
    let actor = p.actor();
    let search = state.search.clone();
    state
        .store
        .run(move |s| {
            let res = super::update(s, &actor, &ip, id, patch);
            if let Ok(c) = &res {
                reindex(&search, c);
            }
            Ok::<_, ApiError>(res)
        })
        .await
}

async fn api_list(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let cache = state
        .domains
        .get::<super::ListCache>()
        .ok_or_else(|| ApiError::internal("cluster list cache missing"))?;
    let body = match cache.get(&state.store) {
        Some(body) => body,
        None => state.with_store(move |s| cache.render(s)).await?,
    };
    Ok(body.respond(&req))
}

async fn api_create(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    body: web::Json<NewCluster>,
) -> Result<HttpResponse, ApiError> {
    let c = create_cluster(&state, &p, client_ip(&req), body.into_inner()).await??;
    Ok(HttpResponse::Created().json(c))
}

async fn api_get(state: web::Data<AppState>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let c = state.with_store(move |s| super::get(s, id)).await?;
    Ok(HttpResponse::Ok().json(c))
}

/// Replaces the cluster's pod inventory with a Kubernetes pod list
/// (`kubectl get pods -A -o json`), up to `http.max_scan_bytes`.
async fn api_put_pods(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = crate::http::read_body(&req, payload, state.config.http.max_scan_bytes).await?;
    let (id, actor, ip) = (id.into_inner(), p.actor(), client_ip(&req));
    let search = state.search.clone();
    let r = state
        .with_store(move |s| {
            let r = super::inventory::replace_pods(s, &actor, &ip, id, &body)?;
            crate::workloads::search::reindex(&search, s, id);
            Ok::<_, ClusterError>(r)
        })
        .await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Connects the cluster to its API server (a kubeconfig, sealed at rest, or in-cluster).
async fn api_connect(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<super::sync::Connect>,
) -> Result<HttpResponse, ApiError> {
    let (sealer, id, actor, ip) = (state.sealer()?, id.into_inner(), p.actor(), client_ip(&req));
    let connect = body.into_inner();
    let view = state
        .with_store(move |s| super::sync::connect(s, &sealer, &actor, &ip, id, connect))
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

/// The cluster's connection and how its last sync went (never the kubeconfig).
async fn api_link(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let view = state.with_store(move |s| super::sync::link(s, id)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// A change to cluster `id` that needs only who makes it: (store, actor, ip, id).
pub(super) type Change = fn(&crate::store::Store, &str, &str, u64) -> Result<(), ClusterError>;

/// Makes `change` to cluster `id` as the caller of `req`.
pub(super) async fn apply(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: &Principal,
    id: u64,
    change: Change,
) -> Result<(), ApiError> {
    let (actor, ip) = (p.actor(), client_ip(req));
    state.with_store(move |s| change(s, &actor, &ip, id)).await
}

async fn api_disconnect(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    apply(&state, &req, &p, id.into_inner(), super::sync::disconnect).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new webhook token for cluster `id`, issued by the caller of `req`.
pub(super) async fn issue_token(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: &Principal,
    id: u64,
) -> Result<String, ApiError> {
    let (sealer, actor, ip) = (state.sealer()?, p.actor(), client_ip(req));
    state
        .with_store(move |s| super::webhook_auth::issue(s, &sealer, &actor, &ip, id))
        .await
}

/// Gives the cluster a new webhook token, shown once; reviews must carry it from now on.
async fn api_issue_webhook_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let token = issue_token(&state, &req, &p, id).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "token": token,
        "path": format!("/api/v1/admission/{id}/{token}"),
        "note": "shown once; `bulwark webhook-config` writes it into the webhook URL",
    })))
}

/// Removes the cluster's webhook token: reviews without one are accepted again.
async fn api_revoke_webhook_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    apply(
        &state,
        &req,
        &p,
        id.into_inner(),
        super::webhook_auth::revoke,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lists the cluster's pods from its API server now (what the `kube-sync` job does on its
/// schedule); 502 when the API server cannot be read, with the inventory left as it was.
async fn api_sync(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let r = super::sync::sync(&state.store, state.sealer()?, &p.actor(), id).await?;
    reindex_inventory(&state, id).await;
    Ok(HttpResponse::Ok().json(r))
}

/// Puts cluster `id`'s new inventory in the search index (off the reactor).
pub(super) async fn reindex_inventory(state: &AppState, id: u64) {
    let search = state.search.clone();
    let _ = state
        .with_store(move |s| {
            crate::workloads::search::reindex(&search, s, id);
            Ok::<_, ClusterError>(())
        })
        .await;
}

/// The cluster's recorded pods and their workloads.
async fn api_get_pods(
    state: web::Data<AppState>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let pods = state
        .with_store(move |s| super::inventory::pods(s, id))
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": pods })))
}

async fn api_update(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<ClusterPatch>,
) -> Result<HttpResponse, ApiError> {
    let c = update_cluster(
        &state,
        &p,
        client_ip(&req),
        id.into_inner(),
        body.into_inner(),
    )
    .await??;
    Ok(HttpResponse::Ok().json(c))
}

async fn api_delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (actor, ip, id) = (p.actor(), client_ip(&req), id.into_inner());
    let search = state.search.clone();
    state
        .store
        .run(move |s| {
            let c = super::delete(s, &actor, &ip, id).map_err(ApiError::from)?;
            if let Err(e) = search.delete_group(&format!("cluster:{}", c.id)) {
                tracing::warn!(error = %e, "search index not updated");
            }
            Ok::<_, ApiError>(c)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct WebhookQuery {
    /// How the cluster reaches Bulwark (default: how this request reached it).
    pub url: Option<String>,
    pub timeout: Option<u8>,
    /// Comma-separated namespaces left out (default: kube-system).
    pub exclude_namespaces: Option<String>,
}

impl WebhookQuery {
    /// The parameters, with the URL this request came in on when none is given.
    pub(super) fn params(&self, req: &HttpRequest) -> super::webhook_config::Params {
        let url = self
            .url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| format!("https://{}", req.connection_info().host()));
        let exclude = self
            .exclude_namespaces
            .as_deref()
            .unwrap_or("")
            .split([',', ' '])
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        super::webhook_config::Params {
            url,
            timeout: self.timeout.unwrap_or(5),
            exclude,
        }
    }
}

/// The ValidatingWebhookConfiguration `bulwark webhook-config` prints, as a YAML download.
async fn api_webhook_configuration(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<u64>,
    q: web::Query<WebhookQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, params) = (id.into_inner(), q.params(&req));
    let (sealer, ca) = (
        state.sealer()?,
        crate::http::tls::trust_anchor_path(&state.config),
    );
    let (name, yaml) = state
        .with_store(move |s| {
            let c = super::get(s, id)?;
            let yaml = super::webhook_config::build(s, &sealer, &c, &params, &ca)?;
            Ok::<_, ClusterError>((c.name, yaml))
        })
        .await?;
    let file = super::webhook_config::slug(&name);
    Ok(HttpResponse::Ok()
        .content_type("application/yaml; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"bulwark-webhook-{file}.yaml\""),
        ))
        .body(yaml))
}

/// Whether the cluster has Bulwark's webhook as Bulwark would install it now.
async fn api_webhook_status(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<u64>,
    q: web::Query<WebhookQuery>,
) -> Result<HttpResponse, ApiError> {
    let params = q.params(&req);
    let ca = crate::http::tls::trust_anchor_path(&state.config);
    let st = super::webhook_install::status(
        &state.store,
        state.sealer()?,
        id.into_inner(),
        Some(params),
        ca,
    )
    .await?;
    Ok(HttpResponse::Ok().json(st))
}

/// Installs or updates the webhook in the cluster through its API server.
async fn api_webhook_install(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    body: web::Json<WebhookQuery>,
) -> Result<HttpResponse, ApiError> {
    let params = body.params(&req);
    let ca = crate::http::tls::trust_anchor_path(&state.config);
    let st = super::webhook_install::install(
        &state.store,
        state.sealer()?,
        &p.actor(),
        id.into_inner(),
        params,
        ca,
    )
    .await?;
    Ok(HttpResponse::Ok().json(st))
}

/// Removes the webhook from the cluster.
async fn api_webhook_remove(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let existed =
        super::webhook_install::remove(&state.store, state.sealer()?, &p.actor(), id.into_inner())
            .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "removed": existed })))
}
