//! Cluster pages: the list, the form, and a cluster with its Kubernetes connection and webhook
//! callers.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::api::{apply, create_cluster, issue_token, update_cluster, Change};
use super::onboarding::Onboarding;
use super::{Cluster, ClusterError, ClusterPatch, FailureMode, NewCluster, UnscannedAction};
use crate::http::layout::{field_of, redirect_with_flash, render, render_status, Confirm, Layout};
use crate::http::{client_ip, ApiError, AppState, Auth, Perm, Principal, Routes};
use actix_web::http::StatusCode;

/// Registers the cluster pages.
pub(super) fn routes(r: &mut Routes) {
    r.page("/clusters", Perm::Read, list_page);
    r.page("/clusters/new", Perm::Write, new_page);
    r.form("/clusters", Perm::Write, create_form);
    r.page("/clusters/{id}", Perm::Read, detail_page);
    r.form("/clusters/{id}", Perm::Write, update_form);
    r.form("/clusters/{id}/delete", Perm::Write, delete_form);
    r.form("/clusters/{id}/kubernetes", Perm::Write, connect_form);
    r.form("/clusters/{id}/kubernetes/sync", Perm::Write, sync_form);
    r.form("/clusters/{id}/webhook", Perm::Write, webhook_install_form);
    r.form(
        "/clusters/{id}/webhook/check",
        Perm::Write,
        webhook_check_form,
    );
    r.form(
        "/clusters/{id}/webhook/delete",
        Perm::Write,
        webhook_remove_form,
    );
    r.form(
        "/clusters/{id}/kubernetes/delete",
        Perm::Write,
        disconnect_form,
    );
    r.form(
        "/clusters/{id}/webhook-token",
        Perm::Write,
        issue_webhook_token_form,
    );
    r.form(
        "/clusters/{id}/webhook-token/delete",
        Perm::Write,
        revoke_webhook_token_form,
    );
    r.nav(10, "Clusters", "/clusters", Perm::Read);
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    q: String,
    tag: String,
    enforcement: String,
}

#[derive(Template)]
#[template(path = "clusters/list.html")]
struct ListPage {
    layout: Layout,
    clusters: Vec<Cluster>,
    total: usize,
    q: String,
    tag: String,
    enforcement: String,
    can_write: bool,
}

async fn list_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let all = state.with_store(super::list).await?;
    let total = all.len();
    let needle = q.q.to_lowercase();
    let clusters = all
        .into_iter()
        .filter(|c| {
            needle.is_empty()
                || c.name.to_lowercase().contains(&needle)
                || c.description.to_lowercase().contains(&needle)
        })
        .filter(|c| q.tag.is_empty() || c.tags.contains(&q.tag))
        .filter(|c| match q.enforcement.as_str() {
            "on" => c.enforcement,
            "off" => !c.enforcement,
            _ => true,
        })
        .collect();
    let layout = Layout::new(&state, &p, "Clusters", "/clusters");
    render(&ListPage {
        layout,
        clusters,
        total,
        q: q.q,
        tag: q.tag,
        enforcement: q.enforcement,
        can_write: p.can(Perm::Write),
    })
}

#[derive(Template)]
#[template(path = "clusters/form.html")]
struct FormPage {
    layout: Layout,
    cluster: Option<Cluster>,
    name: String,
    description: String,
    tags: String,
    enforcement: bool,
    fail_closed: bool,
    allow_unscanned: bool,
    error: String,
    can_write: bool,
    /// The cluster's API-server connection, if any.
    kube: Option<super::sync::LinkView>,
    /// Pod addresses in its inventory.
    pods: usize,
    /// Why the kubeconfig just posted was refused.
    kube_error: String,
    /// A webhook token just issued: shown in this one answer only.
    new_token: String,
    /// Next steps and what enforcement would deny (on a cluster's own page).
    onboarding: Option<Onboarding>,
    /// How this appliance was reached, the default webhook URL.
    base_url: String,
    /// Enforcement was asked for but would deny images: the form asks to confirm.
    confirm_enforcement: bool,
}

impl FormPage {
    /// Whether the error is about `field` (marked on the form).
    fn invalid(&self, field: &str) -> bool {
        !self.error.is_empty() && field_of(&self.error, &["name", "description", "tags"]) == field
    }
}

impl FormPage {
    fn would_deny(&self) -> usize {
        match (&self.onboarding, &self.cluster) {
            (Some(o), Some(c)) => {
                // The settings as the form shows them (a refused save shows what was posted).
                let as_shown = Cluster {
                    unscanned_action: if self.allow_unscanned {
                        UnscannedAction::AllowAndQueue
                    } else {
                        UnscannedAction::Deny
                    },
                    ..c.clone()
                };
                o.would_deny(&as_shown)
            }
            _ => 0,
        }
    }
}

impl FormPage {
    fn blank(layout: Layout) -> FormPage {
        FormPage {
            layout,
            cluster: None,
            name: String::new(),
            description: String::new(),
            tags: String::new(),
            enforcement: false,
            fail_closed: false,
            allow_unscanned: false,
            error: String::new(),
            can_write: true,
            kube: None,
            pods: 0,
            kube_error: String::new(),
            new_token: String::new(),
            onboarding: None,
            base_url: String::new(),
            confirm_enforcement: false,
        }
    }
    fn of(layout: Layout, c: Cluster, can_write: bool) -> FormPage {
        FormPage {
            layout,
            name: c.name.clone(),
            description: c.description.clone(),
            tags: c.tags.join(", "),
            enforcement: c.enforcement,
            fail_closed: c.failure_mode == FailureMode::FailClosed,
            allow_unscanned: c.unscanned_action == UnscannedAction::AllowAndQueue,
            cluster: Some(c),
            error: String::new(),
            can_write,
            kube: None,
            pods: 0,
            kube_error: String::new(),
            new_token: String::new(),
            onboarding: None,
            base_url: String::new(),
            confirm_enforcement: false,
        }
    }
}

async fn new_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    render(&FormPage::blank(Layout::new(
        &state,
        &p,
        "New cluster",
        "/clusters",
    )))
}

#[derive(Deserialize)]
struct ClusterForm {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    enforcement: Option<String>,
    #[serde(default)]
    failure_mode: String,
    #[serde(default)]
    unscanned_action: String,
    /// Ticked when the user confirmed enforcement that denies running images.
    #[serde(default)]
    confirm_enforcement: Option<String>,
}

impl ClusterForm {
    fn tags(&self) -> Vec<String> {
        self.tags
            .split([',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    }
    fn unscanned_action(&self) -> UnscannedAction {
        if self.unscanned_action == "allow-and-queue" {
            UnscannedAction::AllowAndQueue
        } else {
            UnscannedAction::Deny
        }
    }
    fn failure_mode(&self) -> FailureMode {
        if self.failure_mode == "fail-closed" {
            FailureMode::FailClosed
        } else {
            FailureMode::FailOpen
        }
    }
    fn refill(&self, page: &mut FormPage, error: String) {
        page.name = self.name.clone();
        page.description = self.description.clone();
        page.tags = self.tags.clone();
        page.enforcement = self.enforcement.is_some();
        page.fail_closed = self.failure_mode() == FailureMode::FailClosed;
        page.allow_unscanned = self.unscanned_action() == UnscannedAction::AllowAndQueue;
        page.error = error;
    }
}

async fn create_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    form: web::Form<ClusterForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let new = NewCluster {
        name: f.name.clone(),
        description: f.description.clone(),
        tags: f.tags(),
        enforcement: f.enforcement.is_some(),
        failure_mode: f.failure_mode(),
        unscanned_action: f.unscanned_action(),
    };
    match create_cluster(&state, &p, client_ip(&req), new).await? {
        Ok(c) => Ok(redirect_with_flash(
            &state,
            &p,
            &format!("/clusters/{}", c.id),
            &format!("Created cluster {}: its next steps are below", c.name),
        )),
        Err(e @ (ClusterError::Invalid(_) | ClusterError::Duplicate(_))) => {
            let mut page = FormPage::blank(Layout::new(&state, &p, "New cluster", "/clusters"));
            f.refill(&mut page, e.to_string());
            render_status(&page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn detail_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let mut page = detail(&state, &p, id.into_inner()).await?;
    page.base_url = format!("https://{}", req.connection_info().host());
    render(&page)
}

/// The cluster's standing for its page.
async fn onboarding_of(state: &AppState, c: &Cluster) -> Result<Onboarding, ApiError> {
    let admission = crate::admission::of(state)?;
    let c = c.clone();
    state
        .with_store(move |s| {
            super::onboarding::compute(s, &admission, &c, super::onboarding::SHOWN)
        })
        .await
}

/// The detail page of cluster `id`: its settings, its inventory and its API connection.
async fn detail(state: &web::Data<AppState>, p: &Principal, id: u64) -> Result<FormPage, ApiError> {
    let (c, kube, pods) = state
        .store
        .run(move |s| {
            let c = super::get(s, id)?;
            let kube = match super::sync::link(s, id) {
                Ok(l) => Some(l),
                Err(ClusterError::NotConnected(_)) => None,
                Err(e) => return Err(e),
            };
            let pods = super::inventory::pods(s, id)?.len();
            Ok::<_, ClusterError>((c, kube, pods))
        })
        .await?;
    let layout = Layout::new(state, p, c.name.clone(), "/clusters");
    let onboarding = onboarding_of(state, &c).await?;
    let mut page = FormPage::of(layout, c, p.can(Perm::Write));
    (page.kube, page.pods, page.onboarding) = (kube, pods, Some(onboarding));
    Ok(page)
}

#[derive(Deserialize)]
struct ConnectForm {
    #[serde(default)]
    kubeconfig: String,
    #[serde(default)]
    context: String,
}

/// Connects the cluster from the page; a refused kubeconfig shows the page again with why
/// (the kubeconfig itself is never echoed back).
async fn connect_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<ConnectForm>,
) -> Result<HttpResponse, ApiError> {
    let (sealer, id, actor, ip) = (state.sealer()?, id.into_inner(), p.actor(), client_ip(&req));
    let f = form.into_inner();
    let connect = super::sync::Connect {
        kubeconfig: Some(f.kubeconfig).filter(|k| !k.trim().is_empty()),
        context: Some(f.context),
        in_cluster: false,
    };
    let result = state
        .store
        .run(move |s| Ok::<_, ApiError>(super::sync::connect(s, &sealer, &actor, &ip, id, connect)))
        .await?;
    match result {
        Ok(v) => Ok(redirect_with_flash(
            &state,
            &p,
            &format!("/clusters/{id}"),
            &format!("Connected to {}; the next sync lists its pods", v.server),
        )),
        Err(ClusterError::Invalid(m)) => {
            let mut page = detail(&state, &p, id).await?;
            page.kube_error = m;
            render_status(&page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

/// Syncs now; the outcome, good or bad, is the flash (and stays on the connection).
async fn sync_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let synced = super::sync::sync(&state.store, state.sealer()?, &p.actor(), id).await;
    if synced.is_ok() {
        super::api::reindex_inventory(&state, id).await;
    }
    let message = match synced {
        Ok(r) => format!(
            "Synced: {} pod addresses of {} workloads",
            r.recorded, r.workloads
        ),
        Err(ClusterError::Kube(m)) => format!("Sync failed, the inventory is unchanged: {m}"),
        Err(e) => return Err(e.into()),
    };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}"),
        &message,
    ))
}

#[derive(Deserialize)]
struct WebhookForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    exclude_namespaces: String,
}

impl WebhookForm {
    fn params(&self, req: &HttpRequest) -> super::webhook_config::Params {
        super::api::WebhookQuery {
            url: Some(self.url.clone()),
            timeout: None,
            exclude_namespaces: Some(self.exclude_namespaces.clone()),
        }
        .params(req)
    }
}

fn webhook_outcome(st: &super::webhook_install::WebhookStatus) -> String {
    match (st.installed, st.matches) {
        (true, true) => format!(
            "The cluster has {} exactly as Bulwark would install it.",
            st.name
        ),
        (true, false) => format!(
            "The cluster's {} differs: {}.",
            st.name,
            st.differences.join("; ")
        ),
        (false, _) => format!("The cluster has no {}.", st.name),
    }
}

/// Installs or updates the webhook through the cluster's API server.
async fn webhook_install_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<WebhookForm>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let params = form.params(&req);
    let ca = crate::http::tls::trust_anchor_path(&state.config);
    let result =
        super::webhook_install::install(&state.store, state.sealer()?, &p.actor(), id, params, ca)
            .await;
    let message = match result {
        Ok(st) => format!("Installed. {}", webhook_outcome(&st)),
        Err(e) => format!("The webhook was not installed: {e}"),
    };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}#kubernetes"),
        &message,
    ))
}

/// Compares what the cluster has with what Bulwark would install.
async fn webhook_check_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<WebhookForm>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let params = form.params(&req);
    let ca = crate::http::tls::trust_anchor_path(&state.config);
    let result =
        super::webhook_install::status(&state.store, state.sealer()?, id, Some(params), ca).await;
    let message = match result {
        Ok(st) => webhook_outcome(&st),
        Err(e) => format!("The cluster could not be asked: {e}"),
    };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}#kubernetes"),
        &message,
    ))
}

/// Removes the webhook from the cluster.
async fn webhook_remove_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let message =
        match super::webhook_install::remove(&state.store, state.sealer()?, &p.actor(), id).await {
            Ok(true) => {
                "The webhook is removed from the cluster: its API server no longer asks Bulwark."
                    .to_string()
            }
            Ok(false) => "The cluster had no Bulwark webhook.".to_string(),
            Err(e) => format!("The webhook was not removed: {e}"),
        };
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}#kubernetes"),
        &message,
    ))
}

/// Makes `change` to cluster `id` from its page, then shows the page again with `message`.
async fn apply_from_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    id: u64,
    change: Change,
    message: &str,
) -> Result<HttpResponse, ApiError> {
    apply(&state, &req, &p, id, change).await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        &format!("/clusters/{id}"),
        message,
    ))
}

async fn disconnect_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let message = "Disconnected from the API server; the inventory stays until the next upload";
    apply_from_page(
        state,
        req,
        p,
        id.into_inner(),
        super::sync::disconnect,
        message,
    )
    .await
}

/// Issues a webhook token from the page; the answer is the page with the token shown once (a
/// POST answer, marked no-store, so it is neither cached nor re-fetchable).
async fn issue_webhook_token_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let token = issue_token(&state, &req, &p, id).await?;
    let mut page = detail(&state, &p, id).await?;
    page.new_token = token;
    render(&page)
}

async fn revoke_webhook_token_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let message = "The webhook takes reviews without a token again";
    apply_from_page(
        state,
        req,
        p,
        id.into_inner(),
        super::webhook_auth::revoke,
        message,
    )
    .await
}

async fn update_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: web::Form<ClusterForm>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let id = id.into_inner();
    if f.enforcement.is_some() && f.confirm_enforcement.is_none() {
        let mut page = detail(&state, &p, id).await?;
        let was_on = page.cluster.as_ref().is_some_and(|c| c.enforcement);
        f.refill(&mut page, String::new());
        if !was_on && page.would_deny() > 0 {
            page.confirm_enforcement = true;
            page.base_url = format!("https://{}", req.connection_info().host());
            page.error = format!(
                "Enforcing now would deny {} of the images this cluster runs: confirm below, or fix them first.",
                page.would_deny()
            );
            return render_status(&page, StatusCode::CONFLICT);
        }
    }
    let patch = ClusterPatch {
        name: Some(f.name.clone()),
        description: Some(f.description.clone()),
        tags: Some(f.tags()),
        enforcement: Some(f.enforcement.is_some()),
        failure_mode: Some(f.failure_mode()),
        unscanned_action: Some(f.unscanned_action()),
    };
    match update_cluster(&state, &p, client_ip(&req), id, patch).await? {
        Ok(c) => Ok(redirect_with_flash(
            &state,
            &p,
            &format!("/clusters/{}", c.id),
            &format!("Saved cluster {}", c.name),
        )),
        Err(e @ (ClusterError::Invalid(_) | ClusterError::Duplicate(_))) => {
            let c = state.with_store(move |s| super::get(s, id)).await?;
            let mut page = FormPage::of(
                Layout::new(&state, &p, c.name.clone(), "/clusters"),
                c,
                true,
            );
            f.refill(&mut page, e.to_string());
            render_status(&page, StatusCode::BAD_REQUEST)
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    confirm: web::Form<Confirm>,
) -> Result<HttpResponse, ApiError> {
    confirm.require("Delete cluster")?;
    let (actor, ip, id) = (p.actor(), client_ip(&req), id.into_inner());
    let search = state.search.clone();
    let c = state
        .store
        .run(move |s| {
            let c = super::delete(s, &actor, &ip, id).map_err(ApiError::from)?;
            let _ = search.delete_group(&format!("cluster:{}", c.id));
            Ok::<_, ApiError>(c)
        })
        .await?;
    Ok(redirect_with_flash(
        &state,
        &p,
        "/clusters",
        &format!("Deleted cluster {}", c.name),
    ))
}
