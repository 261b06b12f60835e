//! m9sweeper trawler compatibility: the endpoints trawler calls, with m9sweeper's
//! `{success, message, data}` envelope (including its `complaint` key), so existing pipelines keep
//! working against Bulwark. Authenticated with an API key (`x-api-key`) holding the `scanner`
//! scope. Results go through the same ingest and compliance function as `POST /api/v1/scans`.

use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::service::{self as svc, ComplianceError};
use crate::http::{ApiError, AppState, Auth, Perm, Routes};
use crate::images::{self, Finding, ImageRef, Severity};
use crate::store::{Store, StoreError, Table};

/// Images trawler registered by tag before their digest was known (m9sweeper's `TMP_` rows).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Registration {
    id: u64,
    cluster: u64,
    reference: String,
    created_at: chrono::DateTime<Utc>,
}

const REGISTRATIONS: Table<u64, Registration> = Table::new("m9s_image_registrations");

/// Registers the trawler endpoints.
pub fn routes(r: &mut Routes) {
    r.api(
        Method::GET,
        "/api/docker-registries",
        Perm::UploadScan,
        docker_registries,
    );
    r.api(
        Method::GET,
        "/api/policies/by-cluster/{cluster}",
        Perm::UploadScan,
        policies_by_cluster,
    );
    r.api(
        Method::GET,
        "/api/clusters/by-name/{name}",
        Perm::UploadScan,
        cluster_by_name,
    );
    r.api(
        Method::GET,
        "/api/clusters/{cluster}",
        Perm::UploadScan,
        cluster_by_id,
    );
    r.api(
        Method::GET,
        "/api/clusters/{cluster}/image-by-docker-url",
        Perm::UploadScan,
        image_by_url,
    );
    r.api(
        Method::POST,
        "/api/clusters/{cluster}/images",
        Perm::UploadScan,
        create_image,
    );
    r.api(
        Method::POST,
        "/api/clusters/{cluster}/images/{image}/trawler/scan/results",
        Perm::UploadScan,
        results,
    );
    r.api(
        Method::POST,
        "/api/clusters/{cluster}/images/{image}/trawler/scan/results/per-policy",
        Perm::UploadScan,
        results_per_policy,
    );
}

fn ok(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "message": "", "data": data }))
}

fn limit(l: Option<u32>) -> u32 {
    // m9sweeper has no "unlimited"; its UI default for "anything goes" is 1000.
    l.unwrap_or(1000)
}

async fn policies_by_cluster(
    state: web::Data<AppState>,
    cluster: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cluster = cluster.into_inner();
    let data = state
        .store
        .run(move |s| {
            let c = svc::find_cluster(s, &cluster).map_err(ApiError::from)?;
            let policies = svc::list_policies(s)?;
            let out: Vec<Value> = policies
                .iter()
                .filter(|p| p.applies_to(c.id))
                .map(|p| {
                    let scanners: Vec<Value> = p
                        .scanners
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.enabled)
                        .map(|(i, r)| {
                            json!({
                                "id": p.id * 1000 + i as u64 + 1, "name": r.scanner, "type": r.scanner.to_ascii_uppercase(),
                                "enabled": r.enabled, "required": r.required, "policyId": p.id,
                                "vulnerabilitySettings": {
                                    "fixableCritical": limit(r.fixable.critical), "fixableMajor": limit(r.fixable.high),
                                    "fixableNormal": limit(r.fixable.medium), "fixableLow": limit(r.fixable.low),
                                    "fixableNegligible": limit(r.fixable.negligible),
                                    "unFixableCritical": limit(r.unfixable.critical), "unFixableMajor": limit(r.unfixable.high),
                                    "unFixableNormal": limit(r.unfixable.medium), "unFixableLow": limit(r.unfixable.low),
                                    "unFixableNegligible": limit(r.unfixable.negligible)
                                }
                            })
                        })
                        .collect();
                    json!({
                        "id": p.id, "name": p.name, "enabled": p.active, "enforcement": p.required,
                        "newScanGracePeriod": p.grace_period_days, "rescanGracePeriod": p.rescan_period_days,
                        "scanners": scanners
                    })
                })
                .collect();
            Ok::<_, ApiError>(Value::Array(out))
        })
        .await?;
    Ok(ok(data))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegistryQuery {
    url: String,
}

/// Trawler asks for the registry of the image it is about to scan. Bulwark keeps no registry
/// passwords for the scanner role (m9sweeper handed them out), so the registry is described as
/// anonymous: trawler then scans public and anonymous registries; private ones are scanned by
/// Bulwark's own scanner with credentials it keeps encrypted.
async fn docker_registries(q: web::Query<RegistryQuery>) -> HttpResponse {
    let host = q.into_inner().url;
    let list: Vec<Value> = if host.is_empty() {
        vec![]
    } else {
        vec![json!({
            "id": 0, "name": host, "hostname": host, "loginRequired": false, "username": "", "password": "",
            "authType": "None", "authDetails": {}, "aliases": []
        })]
    };
    ok(json!({ "totalCount": list.len(), "list": list }))
}

fn cluster_dto(c: &crate::clusters::Cluster) -> Value {
    // Never kubeconfigs or other secrets: m9sweeper handed those to the trawler role.
    json!({
        "id": c.id, "name": c.name, "ipAddress": "", "port": "", "context": "", "groupId": 0,
        "tags": c.tags, "isEnforcementEnabled": c.enforcement, "gracePeriodDays": 0
    })
}

async fn cluster_by_name(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let c = state
        .store
        .run(move |s| {
            crate::clusters::by_name(s, &name)?
                .ok_or_else(|| ApiError::not_found(format!("no cluster named '{name}'")))
        })
        .await?;
    Ok(ok(cluster_dto(&c)))
}

async fn cluster_by_id(
    state: web::Data<AppState>,
    cluster: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cluster = cluster.into_inner();
    let c = state
        .with_store(move |s| svc::find_cluster(s, &cluster))
        .await?;
    Ok(ok(cluster_dto(&c)))
}

fn image_dto(id: u64, r: &ImageRef, digest: Option<&str>, cluster: u64) -> Value {
    json!({
        "id": id, "url": r.registry, "name": r.repository, "tag": r.tag.clone().unwrap_or_default(),
        "dockerImageId": digest.map(|d| d.trim_start_matches("sha256:").to_string()).unwrap_or_default(),
        "clusterId": cluster, "summary": ""
    })
}

#[derive(Deserialize)]
struct UrlQuery {
    #[serde(rename = "dockerImageUrl")]
    docker_image_url: String,
}

async fn image_by_url(
    state: web::Data<AppState>,
    cluster: web::Path<String>,
    q: web::Query<UrlQuery>,
) -> Result<HttpResponse, ApiError> {
    let (cluster, url) = (cluster.into_inner(), q.into_inner().docker_image_url);
    let data = state
        .store
        .run(move |s| {
            let c = svc::find_cluster(s, &cluster).map_err(ApiError::from)?;
            let r = ImageRef::parse(&url).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let found = match &r.digest {
                Some(d) => images::by_digest(s, &r, d)?,
                None => images::by_tag(s, &r)?,
            };
            if let Some(i) = found {
                return Ok(image_dto(i.id, &r, Some(&i.digest), c.id));
            }
            let reg = s
                .read(|rd| rd.all(&REGISTRATIONS))?
                .into_iter()
                .map(|(_, g)| g)
                .find(|g| g.cluster == c.id && g.reference == r.to_string());
            Ok::<_, ApiError>(
                reg.map(|g| image_dto(g.id, &r, None, c.id))
                    .unwrap_or(Value::Null),
            )
        })
        .await?;
    Ok(ok(data))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewImage {
    url: String,
    name: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    #[allow(dead_code)]
    running_in_cluster: bool,
}

async fn create_image(
    state: web::Data<AppState>,
    cluster: web::Path<String>,
    body: web::Json<NewImage>,
) -> Result<HttpResponse, ApiError> {
    let (cluster, b) = (cluster.into_inner(), body.into_inner());
    let data = state
        .store
        .run(move |s| {
            let c = svc::find_cluster(s, &cluster).map_err(ApiError::from)?;
            let tag = if b.tag.is_empty() {
                "latest".to_string()
            } else {
                b.tag.clone()
            };
            let text = format!(
                "{}/{}:{tag}",
                b.url.trim_end_matches('/'),
                b.name.trim_start_matches('/')
            );
            let r = ImageRef::parse(&text).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if let Some(i) = images::by_tag(s, &r)? {
                return Ok(image_dto(i.id, &r, Some(&i.digest), c.id));
            }
            let reg = s.write(|w| {
                let id = w.next_id("images")?;
                let g = Registration {
                    id,
                    cluster: c.id,
                    reference: r.to_string(),
                    created_at: Utc::now(),
                };
                w.put(&REGISTRATIONS, &id, &g)?;
                images::enqueue(w, &r.to_string(), Some(c.id), "registered by trawler", 1)?;
                Ok::<_, StoreError>(g)
            })?;
            Ok::<_, ApiError>(image_dto(reg.id, &r, None, c.id))
        })
        .await?;
    Ok(ok(data))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrawlerResults {
    data: Vec<PolicyResult>,
}

/// One policy's result as trawler sends it. The fields trawler always sends are required, so a
/// body that is not a scan result is refused instead of being read as a clean scan.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyResult {
    summary: String,
    encounter_error: bool,
    image_hash: String,
    issues: Vec<Issue>,
    #[serde(default)]
    critical_issues: u64,
    #[serde(default)]
    major_issues: u64,
    #[serde(default)]
    medium_issues: u64,
    #[serde(default)]
    low_issues: u64,
    #[serde(default)]
    negligible_issues: u64,
}

impl PolicyResult {
    /// A successful result whose counts promise issues it does not carry would silently clear
    /// the image: refuse it.
    fn check(&self) -> Result<(), ApiError> {
        let counted = self.critical_issues
            + self.major_issues
            + self.medium_issues
            + self.low_issues
            + self.negligible_issues;
        if !self.encounter_error && self.issues.is_empty() && counted > 0 {
            return Err(ApiError::bad_request(format!(
                "the result counts {counted} issues but lists none"
            )));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Issue {
    #[serde(default)]
    scanner_name: String,
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    vuln_id: String,
    #[serde(default)]
    vulnerability_desc_url: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    is_fixable: bool,
    /// The raw Trivy vulnerability as a JSON string.
    #[serde(default)]
    data: String,
}

fn finding(i: &Issue) -> Finding {
    let raw: Value = serde_json::from_str(&i.data).unwrap_or(Value::Null);
    let text = |k: &str| {
        raw.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let scanner = if i.scanner_name.is_empty() {
        "trivy".to_string()
    } else {
        i.scanner_name.to_ascii_lowercase()
    };
    Finding {
        id: i.vuln_id.trim().to_string(),
        package: text("PkgName"),
        installed: text("InstalledVersion"),
        fixed: text("FixedVersion"),
        severity: Severity::parse(&i.severity),
        severity_source: i.severity.clone(),
        cvss: None,
        title: i.name.clone(),
        description: i.description.clone(),
        links: if images::is_web_link(&i.vulnerability_desc_url) {
            vec![i.vulnerability_desc_url.clone()]
        } else {
            vec![]
        },
        fixable: i.is_fixable,
        scanner,
        target: String::new(),
        status: String::new(),
    }
}

/// The reference of image `id` (a Bulwark image or a trawler registration).
fn reference_of(s: &Store, id: u64) -> Result<ImageRef, ApiError> {
    if let Ok(i) = images::get(s, id) {
        let tag = i.tags.first().cloned();
        return Ok(ImageRef {
            registry: i.registry,
            repository: i.repository,
            tag,
            digest: Some(i.digest),
        });
    }
    let g = s
        .read(|r| r.get(&REGISTRATIONS, &id))?
        .ok_or_else(|| ApiError::not_found(format!("image {id} not found")))?;
    ImageRef::parse(&g.reference).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Saves the results; returns (compliant, the Bulwark image id).
fn save(
    s: &Store,
    actor: &str,
    cluster: &str,
    image: u64,
    results: Vec<PolicyResult>,
) -> Result<(bool, u64), ApiError> {
    let c = svc::find_cluster(s, cluster).map_err(ApiError::from)?;
    let mut r = reference_of(s, image)?;
    let hash = results
        .iter()
        .map(|p| p.image_hash.trim())
        .find(|h| !h.is_empty())
        .unwrap_or_default();
    let digest = if hash.starts_with("sha256:") {
        hash.to_string()
    } else {
        format!("sha256:{hash}")
    };
    let digest = images::parse_digest(&digest).or_else(|| r.digest.clone()).ok_or_else(|| {
        ApiError::bad_request("imageHash must be the image's sha256 digest (hex), and the image has no digest yet")
    })?;
    r.digest = None;
    if let Some(failed) = results.iter().find(|p| p.encounter_error) {
        let message = if failed.summary.is_empty() {
            "trawler reported an error".to_string()
        } else {
            failed.summary.clone()
        };
        let i = svc::ingest_failure(s, actor, &c, &r, &digest, &message).map_err(ApiError::from)?;
        return Ok((false, i.id));
    }
    // One entry per policy repeats the same issues: keep each finding once.
    let mut seen = std::collections::HashSet::new();
    let findings: Vec<Finding> = results
        .iter()
        .flat_map(|p| p.issues.iter())
        .map(finding)
        .filter(|f| {
            seen.insert((
                f.id.clone(),
                f.package.clone(),
                f.installed.clone(),
                f.scanner.clone(),
            ))
        })
        .collect();
    let meta = images::trivy::ReportMeta {
        artifact: r.to_string(),
        ..Default::default()
    };
    let res = svc::ingest(s, actor, &c, &r, &digest, &meta, findings)
        .map_err(|e: ComplianceError| ApiError::from(e))?;
    Ok((res.compliant, res.image.id))
}

async fn save_and_answer(
    state: web::Data<AppState>,
    p: crate::http::Principal,
    path: (String, u64),
    results: Vec<PolicyResult>,
) -> Result<HttpResponse, ApiError> {
    if results.is_empty() {
        return Err(ApiError::bad_request("data: at least one policy result"));
    }
    for r in &results {
        r.check()?;
    }
    let actor = p.actor();
    let search = state.search.clone();
    let compliant = state
        .store
        .run(move |s| {
            let (compliant, image) = save(s, &actor, &path.0, path.1, results)?;
            super::search::reindex_image(&search, s, image);
            Ok::<_, ApiError>(compliant)
        })
        .await?;
    // `complaint` (sic) is m9sweeper's key; trawler reads it.
    Ok(ok(
        json!({ "complaint": compliant, "compliant": compliant }),
    ))
}

async fn results(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(String, u64)>,
    body: web::Json<TrawlerResults>,
) -> Result<HttpResponse, ApiError> {
    save_and_answer(state, p, path.into_inner(), body.into_inner().data).await
}

async fn results_per_policy(
    state: web::Data<AppState>,
    Auth(p): Auth,
    path: web::Path<(String, u64)>,
    body: web::Json<PolicyResult>,
) -> Result<HttpResponse, ApiError> {
    save_and_answer(state, p, path.into_inner(), vec![body.into_inner()]).await
}
