//! The runtime-event pages: the event list (filters, full-text search, the per-priority chart,
//! CSV of the filtered list), one event with every field, the anomaly signatures, the ignore and
//! silence rules, and alerting; acknowledgement forms on the event and signature pages.

use std::collections::{BTreeMap, HashMap};

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

use super::acks::{self, Ack};
use super::alerts::{self, Alert, Mode};
use super::api::runtime;
use super::list::{listed, Filter, Listed};
use super::rules::{self, Action, Rule, RuleInput};
use super::{event, Signature, DAILY, SIGNATURES};
use crate::clusters::Cluster;
use crate::http::layout::{redirect_with_flash, render, Layout};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::posture::chart::{legend, line_chart, Series};

/// Events per page.
const PAGE: usize = 100;
/// Days the chart covers.
const CHART_DAYS: i64 = 30;

pub(super) fn routes(r: &mut Routes) {
    r.nav(26, "Runtime events", "/falco", Perm::Read);
    r.page("/falco", Perm::Read, events_page);
    r.page("/falco/events/{id}", Perm::Read, event_page);
    r.form("/falco/events/{id}/ack", Perm::Write, ack_event_form);
    r.form("/falco/events/{id}/unack", Perm::Write, unack_event_form);
    r.page("/falco/signatures", Perm::Read, signatures_page);
    r.form(
        "/falco/signatures/{signature}/ack",
        Perm::Write,
        ack_signature_form,
    );
    r.form(
        "/falco/signatures/{signature}/unack",
        Perm::Write,
        unack_signature_form,
    );
    r.page("/falco/rules", Perm::Read, rules_page);
    r.form("/falco/rules", Perm::Write, create_rule_form);
    r.form("/falco/rules/{id}/delete", Perm::Write, delete_rule_form);
    r.page("/falco/alerting", Perm::Read, alerting_page);
    r.form("/falco/alerting", Perm::Write, alerting_form);
    r.form(
        "/clusters/{id}/falcosidekick",
        Perm::Write,
        falcosidekick_form,
    );
}

type Form = web::Form<BTreeMap<String, String>>;

/// Back to `path` with what a form did: `ok`'s message when it was done, the refusal otherwise.
fn after<T>(
    state: &AppState,
    p: &crate::http::Principal,
    path: &str,
    done: Result<T, ApiError>,
    ok: impl FnOnce(T) -> String,
) -> HttpResponse {
    let msg = match done {
        Ok(v) => ok(v),
        Err(e) => e.message,
    };
    redirect_with_flash(state, p, path, &msg)
}

fn names(clusters: &[Cluster]) -> HashMap<u64, String> {
    clusters.iter().map(|c| (c.id, c.name.clone())).collect()
}

/// `2026-12-07`, `2026-12-07T10:30` (a browser's datetime-local, UTC) or RFC 3339.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// The list's filter from the page's query; the default view hides acknowledged events.
fn filter_of(q: &BTreeMap<String, String>) -> Result<Filter, String> {
    let get = |k: &str| q.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
    let time = |k: &str| -> Result<Option<DateTime<Utc>>, String> {
        match get(k).as_str() {
            "" => Ok(None),
            v => parse_time(v)
                .map(Some)
                .ok_or_else(|| format!("{k}: a date (2026-12-07) or a time (2026-12-07T10:30)")),
        }
    };
    Ok(Filter {
        cluster: get("cluster"),
        priority: get("priority"),
        min_priority: get("min_priority"),
        namespace: get("namespace"),
        pod: get("pod"),
        image: get("image"),
        rule: get("rule"),
        hostname: get("hostname"),
        tag: get("tag"),
        since: time("since")?,
        until: time("until")?,
        q: get("q"),
        limit: Some(PAGE),
        before: get("before").parse().ok(),
        acknowledged: q
            .get("acknowledged")
            .cloned()
            .unwrap_or_else(|| "no".into()),
        format: String::new(),
    })
}

/// `q` as a query string without the keys in `drop`, plus `extra`.
fn query(q: &BTreeMap<String, String>, drop: &[&str], extra: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in q {
        if !drop.contains(&k.as_str()) && !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    for (k, v) in extra {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Events per priority per day over the last [`CHART_DAYS`] days (one cluster or all).
fn chart(store: &crate::store::Store, cluster: Option<u64>) -> Result<(String, String), ApiError> {
    let today = Utc::now().date_naive();
    let days: Vec<NaiveDate> = (0..CHART_DAYS)
        .rev()
        .map(|d| today - Duration::days(d))
        .collect();
    let first = days[0];
    let mut counts: BTreeMap<(usize, String), BTreeMap<NaiveDate, u64>> = BTreeMap::new();
    for (key, n) in store.read(|r| r.all(&DAILY))? {
        let mut parts = key.splitn(3, '/');
        let (Some(c), Some(d), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(c), Ok(d)) = (c.parse::<u64>(), d.parse::<NaiveDate>()) else {
            continue;
        };
        if d < first || cluster.is_some_and(|want| want != c) {
            continue;
        }
        let rank = event::rank(p).unwrap_or(usize::MAX);
        *counts
            .entry((rank, p.to_string()))
            .or_default()
            .entry(d)
            .or_default() += n;
    }
    let series: Vec<Series> = counts
        .into_iter()
        .map(|((_, p), by_day)| Series {
            name: p,
            values: days
                .iter()
                .map(|d| Some(*by_day.get(d).unwrap_or(&0) as f64))
                .collect(),
        })
        .collect();
    let labels: Vec<String> = days.iter().map(|d| d.format("%m-%d").to_string()).collect();
    Ok((
        line_chart(
            "Falco events per priority, by day of the event",
            &labels,
            &series,
            None,
            "",
        ),
        legend(&series),
    ))
}

#[derive(Template)]
#[template(path = "falco/events.html")]
struct EventsPage {
    layout: Layout,
    clusters: Vec<Cluster>,
    names: HashMap<u64, String>,
    q: BTreeMap<String, String>,
    acknowledged: String,
    priorities: &'static [&'static str],
    events: Vec<Listed>,
    total: u64,
    error: String,
    chart: String,
    chart_legend: String,
    next: Option<String>,
    csv: String,
}

impl EventsPage {
    fn value(&self, k: &str) -> String {
        self.q.get(k).cloned().unwrap_or_default()
    }
    /// Whether query field `k` is `v` (a select's chosen option).
    fn is(&self, k: &str, v: &str) -> bool {
        self.q.get(k).is_some_and(|x| x == v)
    }
    fn name(&self, id: &u64) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

async fn events_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q: BTreeMap<String, String> =
        web::Query::<BTreeMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .unwrap_or_default();
    let rt = runtime(&state)?;
    let filter = filter_of(&q);
    let acknowledged = filter
        .as_ref()
        .map(|f| f.acknowledged.clone())
        .unwrap_or_else(|_| "no".into());
    let (clusters, result, (chart, chart_legend)) = state
        .with_store(move |s| {
            let clusters = crate::clusters::list(s)?;
            let result = match filter {
                Ok(f) => listed(&rt, s, f).map_err(|e| e.message),
                Err(e) => Err(e),
            };
            let one = q_cluster(&clusters, &q);
            Ok::<_, ApiError>((clusters, result.map(|r| (r, q)), chart(s, one)?))
        })
        .await?;
    let (events, total, error, q) = match result {
        Ok(((events, total), q)) => (events, total, String::new(), q),
        Err(e) => (Vec::new(), 0, e, BTreeMap::new()),
    };
    let next = (events.len() == PAGE)
        .then(|| events.last())
        .flatten()
        .map(|l| {
            format!(
                "/falco?{}",
                query(&q, &["before"], &[("before", &l.event.id.to_string())])
            )
        });
    let csv = format!(
        "/api/v1/falco/events?{}",
        query(
            &q,
            &["before", "acknowledged", "limit"],
            &[("acknowledged", &acknowledged), ("format", "csv")]
        )
    );
    render(&EventsPage {
        layout: Layout::new(&state, &p, "Runtime events", "/falco"),
        names: names(&clusters),
        clusters,
        q,
        acknowledged,
        priorities: &event::PRIORITIES,
        events,
        total,
        error,
        chart,
        chart_legend,
        next,
        csv,
    })
}

/// The cluster the query names (by id or name), for the chart.
fn q_cluster(clusters: &[Cluster], q: &BTreeMap<String, String>) -> Option<u64> {
    let want = q
        .get("cluster")
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())?;
    clusters
        .iter()
        .find(|c| c.id.to_string() == want || c.name == want)
        .map(|c| c.id)
}

#[derive(Template)]
#[template(path = "falco/event.html")]
struct EventPage {
    layout: Layout,
    e: super::Event,
    cluster: String,
    ack: Option<Ack>,
    /// Acknowledged through its signature rather than by itself.
    by_signature: bool,
    signature: Option<Signature>,
    can_write: bool,
}

async fn event_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (e, ack, own, cluster, signature) = state
        .with_store(move |s| {
            let (e, ack) = super::api::event_with_ack(s, id)?;
            let own = s.read(|r| r.get(&acks::EVENT_ACKS, &id))?.is_some();
            let cluster = crate::clusters::get(s, e.cluster)
                .map(|c| c.name)
                .unwrap_or_else(|_| e.cluster.to_string());
            let signature = s.read(|r| r.get(&SIGNATURES, &e.signature))?;
            Ok::<_, ApiError>((e, ack, own, cluster, signature))
        })
        .await?;
    render(&EventPage {
        layout: Layout::new(&state, &p, format!("Falco event {id}"), "/falco"),
        by_signature: ack.is_some() && !own,
        e,
        cluster,
        ack,
        signature,
        can_write: p.can(Perm::Write),
    })
}

async fn ack_event_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: Form,
) -> Result<HttpResponse, ApiError> {
    let (id, rt, p2) = (id.into_inner(), runtime(&state)?, p.clone());
    let note = form.get("note").cloned().unwrap_or_default();
    let done = state
        .with_store(move |s| acks::ack_event(s, &rt.acks, &p2.email, id, &note))
        .await;
    Ok(after(
        &state,
        &p,
        &format!("/falco/events/{id}"),
        done,
        |_| "Acknowledged: the event leaves the default list".to_string(),
    ))
}

async fn unack_event_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (id, rt, p2) = (id.into_inner(), runtime(&state)?, p.clone());
    let done = state
        .with_store(move |s| acks::unack_event(s, &rt.acks, &p2.email, id))
        .await;
    Ok(after(
        &state,
        &p,
        &format!("/falco/events/{id}"),
        done,
        |()| "Acknowledgement withdrawn".into(),
    ))
}

/// A signature as its page lists it.
struct SignatureLine {
    s: Signature,
    cluster: String,
    ack: Option<Ack>,
    /// Events arrived after the acknowledgement (it covers those up to `ack.through`).
    newer: bool,
    /// The event list filtered to this signature.
    events: String,
}

#[derive(Template)]
#[template(path = "falco/signatures.html")]
struct SignaturesPage {
    layout: Layout,
    lines: Vec<SignatureLine>,
    clusters: Vec<Cluster>,
    cluster: String,
    show: String,
    can_write: bool,
}

async fn signatures_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    q: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let cluster = q.get("cluster").cloned().unwrap_or_default();
    let show = q.get("show").cloned().unwrap_or_else(|| "open".into());
    let (c2, s2) = (cluster.clone(), show.clone());
    let (lines, clusters) = state
        .with_store(move |s| {
            let clusters = crate::clusters::list(s)?;
            let names = names(&clusters);
            let acked = acks::signatures(s)?;
            let mut lines: Vec<SignatureLine> = s
                .read(|r| r.all(&SIGNATURES))?
                .into_iter()
                .map(|(_, sig)| sig)
                .filter(|sig| c2.is_empty() || sig.cluster.to_string() == c2)
                .map(|sig| {
                    let ack = acked.get(&sig.signature).cloned();
                    let q = query(
                        &BTreeMap::from([
                            ("cluster".to_string(), sig.cluster.to_string()),
                            ("rule".to_string(), sig.rule.clone()),
                            ("namespace".to_string(), sig.namespace.clone()),
                            ("image".to_string(), sig.image.clone()),
                        ]),
                        &[],
                        &[("acknowledged", "any")],
                    );
                    SignatureLine {
                        cluster: names
                            .get(&sig.cluster)
                            .cloned()
                            .unwrap_or_else(|| sig.cluster.to_string()),
                        newer: ack.as_ref().is_some_and(|a| sig.last_id > a.through),
                        ack,
                        events: format!("/falco?{q}"),
                        s: sig,
                    }
                })
                .collect();
            lines.retain(|l| match s2.as_str() {
                "acknowledged" => l.ack.is_some() && !l.newer,
                "all" => true,
                _ => l.ack.is_none() || l.newer,
            });
            lines.sort_by_key(|l| std::cmp::Reverse(l.s.last));
            Ok::<_, ApiError>((lines, clusters))
        })
        .await?;
    render(&SignaturesPage {
        layout: Layout::new(&state, &p, "Falco signatures", "/falco"),
        lines,
        clusters,
        cluster,
        show,
        can_write: p.can(Perm::Write),
    })
}

async fn ack_signature_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    sig: web::Path<String>,
    form: Form,
) -> Result<HttpResponse, ApiError> {
    let (sig, rt, p2) = (sig.into_inner(), runtime(&state)?, p.clone());
    let note = form.get("note").cloned().unwrap_or_default();
    let done = state
        .with_store(move |s| acks::ack_signature(s, &rt.acks, &p2.email, &sig, &note))
        .await;
    Ok(after(&state, &p, "/falco/signatures", done, |_| {
        "Acknowledged: its events so far leave the default list; new ones show".into()
    }))
}

async fn unack_signature_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    sig: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (sig, rt, p2) = (sig.into_inner(), runtime(&state)?, p.clone());
    let done = state
        .with_store(move |s| acks::unack_signature(s, &rt.acks, &p2.email, &sig))
        .await;
    Ok(after(
        &state,
        &p,
        "/falco/signatures?show=all",
        done,
        |()| "Acknowledgement withdrawn".into(),
    ))
}

#[derive(Template)]
#[template(path = "falco/rules.html")]
struct RulesPage {
    layout: Layout,
    rules: Vec<Rule>,
    names: HashMap<u64, String>,
    clusters: Vec<Cluster>,
    can_write: bool,
}

impl RulesPage {
    fn clusters_of(&self, r: &Rule) -> String {
        match &r.clusters {
            None => "every cluster".into(),
            Some(ids) => ids
                .iter()
                .map(|id| {
                    self.names
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| id.to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

async fn rules_page(state: web::Data<AppState>, Auth(p): Auth) -> Result<HttpResponse, ApiError> {
    let (rules, clusters) = state
        .with_store(|s| Ok::<_, ApiError>((rules::list(s)?, crate::clusters::list(s)?)))
        .await?;
    render(&RulesPage {
        layout: Layout::new(&state, &p, "Falco rules", "/falco"),
        rules,
        names: names(&clusters),
        clusters,
        can_write: p.can(Perm::Write),
    })
}

fn list_of(s: Option<&String>) -> Option<Vec<String>> {
    let v: Vec<String> = s?
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect();
    (!v.is_empty()).then_some(v)
}

async fn create_rule_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    form: Form,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let cluster: Option<u64> = f.get("cluster").and_then(|c| c.parse().ok());
    let input = RuleInput {
        action: if f.get("action").is_some_and(|a| a == "silence") {
            Action::Silence
        } else {
            Action::Ignore
        },
        clusters: cluster.map(|c| vec![c]),
        namespaces: list_of(f.get("namespaces")),
        rule: f.get("rule").cloned().unwrap_or_default(),
        image: f.get("image").cloned().unwrap_or_default(),
        active: true,
    };
    let p2 = p.clone();
    let done = state
        .with_store(move |s| rules::create(s, &p2.email, input))
        .await;
    Ok(after(&state, &p, "/falco/rules", done, |r| {
        format!("Rule {} added: it applies to events from now on", r.id)
    }))
}

async fn delete_rule_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let (id, p2) = (id.into_inner(), p.clone());
    let done = state
        .with_store(move |s| rules::delete(s, &p2.email, id))
        .await;
    Ok(after(&state, &p, "/falco/rules", done, |()| {
        format!("Rule {id} deleted")
    }))
}

#[derive(Template)]
#[template(path = "falco/alerting.html")]
struct AlertingPage {
    layout: Layout,
    settings: alerts::Settings,
    alerts: Vec<Alert>,
    priorities: &'static [&'static str],
    can_write: bool,
    smtp: bool,
}

impl AlertingPage {
    fn chosen(&self, p: &&str) -> bool {
        self.settings.priorities.iter().any(|x| x == p)
    }
    fn digest(&self) -> bool {
        self.settings.mode == Mode::Digest
    }
}

async fn alerting_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let (settings, alerts) = state
        .with_store(|s| Ok::<_, ApiError>((alerts::settings(s)?, alerts::list(s, 100)?)))
        .await?;
    render(&AlertingPage {
        layout: Layout::new(&state, &p, "Falco alerting", "/falco"),
        settings,
        alerts,
        priorities: &event::PRIORITIES,
        can_write: p.can(Perm::Write),
        smtp: !state.config.smtp.host.is_empty(),
    })
}

async fn alerting_form(
    state: web::Data<AppState>,
    Auth(p): Auth,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let f = form.into_inner();
    let one = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let settings = alerts::Settings {
        enabled: !one("enabled").is_empty(),
        priorities: f
            .iter()
            .filter(|(n, _)| n == "priority")
            .map(|(_, v)| v.clone())
            .collect(),
        admins: !one("admins").is_empty(),
        addresses: list_of(Some(&one("addresses"))).unwrap_or_default(),
        mode: if one("mode") == "digest" {
            Mode::Digest
        } else {
            Mode::Signature
        },
        days: one("days").trim().parse().unwrap_or(0),
    };
    let p2 = p.clone();
    let done = state
        .with_store(move |s| alerts::put(s, &p2.email, settings))
        .await;
    Ok(after(&state, &p, "/falco/alerting", done, |_| {
        "Alerting saved".to_string()
    }))
}

#[derive(Template)]
#[template(path = "falco/setup.html")]
struct SetupPage {
    layout: Layout,
    cluster_id: u64,
    cluster_name: String,
    namespace: String,
    setup: super::setup::Setup,
}

/// Makes the falcosidekick values for a cluster; the key in them is shown on this answer only.
async fn falcosidekick_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: web::Path<u64>,
    form: Form,
) -> Result<HttpResponse, ApiError> {
    let (id, ip) = (id.into_inner(), crate::http::client_ip(&req));
    let f = form.into_inner();
    let request = super::setup::Request {
        url: f.get("url").cloned().unwrap_or_default(),
        min_priority: f
            .get("min_priority")
            .cloned()
            .unwrap_or_else(|| "notice".into()),
        checkcert: f.contains_key("checkcert"),
        namespace: f
            .get("namespace")
            .cloned()
            .unwrap_or_else(|| "falco".into()),
    };
    let ca = crate::http::tls::trust_anchor_path(&state.config);
    let (p2, namespace) = (p.clone(), request.namespace.clone());
    match state
        .with_store(move |s| super::api::make_setup(s, &p2, &ip, id, &request, &ca))
        .await
    {
        Ok((cluster_name, setup)) => render(&SetupPage {
            layout: Layout::new(
                &state,
                &p,
                format!("{cluster_name}: falcosidekick"),
                "/clusters",
            ),
            cluster_id: id,
            cluster_name,
            namespace,
            setup,
        }),
        Err(e) if e.status.is_client_error() => Ok(redirect_with_flash(
            &state,
            &p,
            &format!("/clusters/{id}#falco"),
            &e.message,
        )),
        Err(e) => Err(e),
    }
}
