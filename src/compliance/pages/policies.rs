//! Policies: the list and the form.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::names;
use crate::clusters::Cluster;
use crate::compliance::model::{Limits, Policy, ScannerRule};
use crate::compliance::service::{self as svc, PolicyInput};
use crate::http::layout::{redirect_with_flash, render, render_status, Layout};
use crate::http::{Actor, ApiError, AppState, Auth, Perm, Principal, Routes};

/// Registers these pages.
pub(super) fn routes(r: &mut Routes) {
    r.page("/policies", Perm::Read, policies_page);
    r.page("/policies/new", Perm::Write, policy_new_page);
    r.form("/policies", Perm::Write, policy_form);
    r.page("/policies/{id}", Perm::Read, policy_page);
    r.form("/policies/{id}", Perm::Write, policy_form);
}

#[derive(Template)]
#[template(path = "compliance/policies.html")]
struct PoliciesPage {
    layout: Layout,
    policies: Vec<Policy>,
    clusters: Vec<Cluster>,
    can_write: bool,
}

impl PoliciesPage {
    fn scope(&self, p: &Policy) -> String {
        match &p.clusters {
            None => "all clusters".into(),
            some => names(some, |id| {
                self.clusters
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| c.name.clone())
            }),
        }
    }
}

fn limits_text(l: &Limits) -> String {
    let parts: Vec<String> = [
        ("critical", l.critical),
        ("high", l.high),
        ("medium", l.medium),
        ("low", l.low),
        ("negligible", l.negligible),
    ]
    .iter()
    .filter_map(|(n, v)| v.map(|v| format!("{n} ≤ {v}")))
    .collect();
    if parts.is_empty() {
        "no limit".into()
    } else {
        parts.join(", ")
    }
}

async fn policies_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let (policies, clusters) = state
        .store
        .run(|s| Ok::<_, ApiError>((svc::list_policies(s)?, crate::clusters::list(s)?)))
        .await?;
    let layout = Layout::new(&state, &p, "Policies", "/policies");
    render(&PoliciesPage {
        layout,
        policies,
        clusters,
        can_write: p.can(Perm::Write),
    })
}

#[derive(Template)]
#[template(path = "compliance/policy.html")]
struct PolicyPage {
    layout: Layout,
    policy: Option<Policy>,
    form: PolicyForm,
    clusters: Vec<Cluster>,
    error: String,
    can_write: bool,
}

/// Scanners whose findings Bulwark files, with what the form calls them. The form always shows
/// a rule for each, so a policy never leaves one of them unjudged without the user seeing it.
const KNOWN_SCANNERS: [(&str, &str); 2] = [
    ("trivy", "Trivy reports (uploads, trawler)"),
    (
        "bulwark",
        "Bulwark's scanner (bulwark scan, the appliance's own scans)",
    ),
];

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "negligible"];

/// One scanner rule as the form shows it: limits as typed, so a bad value is shown back.
#[derive(Default, Clone)]
struct RuleForm {
    scanner: String,
    /// In the policy when the page was drawn (absent ones are added only when enabled).
    stored: bool,
    enabled: bool,
    required: bool,
    fixable: [String; 5],
    unfixable: [String; 5],
}

impl RuleForm {
    fn of(r: &ScannerRule, stored: bool) -> RuleForm {
        let cells = |l: &Limits| {
            [l.critical, l.high, l.medium, l.low, l.negligible]
                .map(|v| v.map(|v| v.to_string()).unwrap_or_default())
        };
        RuleForm {
            scanner: r.scanner.clone(),
            stored,
            enabled: r.enabled,
            required: r.required,
            fixable: cells(&r.fixable),
            unfixable: cells(&r.unfixable),
        }
    }

    /// What the form calls this scanner.
    fn title(&self) -> String {
        KNOWN_SCANNERS
            .iter()
            .find(|(name, _)| self.scanner.eq_ignore_ascii_case(name))
            .map(|(_, title)| title.to_string())
            .unwrap_or_else(|| format!("Scanner {}", self.scanner))
    }

    /// (severity, fixable limit, unfixable limit) for the table.
    fn rows(&self) -> Vec<(&'static str, &str, &str)> {
        SEVERITIES
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, self.fixable[i].as_str(), self.unfixable[i].as_str()))
            .collect()
    }

    fn rule(&self) -> Result<ScannerRule, String> {
        let limits = |kind: &str, cells: &[String; 5]| -> Result<Limits, String> {
            let mut v = [None; 5];
            for (i, cell) in cells.iter().enumerate() {
                let cell = cell.trim();
                if !cell.is_empty() {
                    v[i] = Some(cell.parse::<u32>().map_err(|_| {
                        format!(
                            "{}: {kind} {}: '{cell}' is not a whole number (leave it empty for no limit)",
                            self.scanner, SEVERITIES[i]
                        )
                    })?);
                }
            }
            let [critical, high, medium, low, negligible] = v;
            Ok(Limits {
                critical,
                high,
                medium,
                low,
                negligible,
            })
        };
        Ok(ScannerRule {
            scanner: self.scanner.trim().to_string(),
            enabled: self.enabled,
            required: self.required,
            fixable: limits("fixable", &self.fixable)?,
            unfixable: limits("unfixable", &self.unfixable)?,
        })
    }
}

/// The policy form: every rule the policy has, plus one for each known scanner it lacks.
#[derive(Default, Clone)]
struct PolicyForm {
    name: String,
    description: String,
    active: bool,
    required: bool,
    all_clusters: bool,
    clusters: Vec<u64>,
    grace_period_days: String,
    rescan_period_days: String,
    rules: Vec<RuleForm>,
}

impl PolicyForm {
    fn of(p: &Policy) -> PolicyForm {
        let mut rules: Vec<RuleForm> = p.scanners.iter().map(|r| RuleForm::of(r, true)).collect();
        for (name, _) in KNOWN_SCANNERS {
            if !p
                .scanners
                .iter()
                .any(|r| r.scanner.eq_ignore_ascii_case(name))
            {
                // Offered with the first rule's limits, off until the user ticks it.
                let template = p.scanners.first().cloned().unwrap_or(ScannerRule {
                    scanner: String::new(),
                    enabled: false,
                    required: true,
                    fixable: Limits::default(),
                    unfixable: Limits::default(),
                });
                rules.push(RuleForm {
                    scanner: name.to_string(),
                    enabled: false,
                    ..RuleForm::of(&template, false)
                });
            }
        }
        PolicyForm {
            name: p.name.clone(),
            description: p.description.clone(),
            active: p.active,
            required: p.required,
            all_clusters: p.clusters.is_none(),
            clusters: p.clusters.clone().unwrap_or_default(),
            grace_period_days: p.grace_period_days.to_string(),
            rescan_period_days: p.rescan_period_days.to_string(),
            rules,
        }
    }

    /// Reads the posted form: `rule.N.field` for each rule, several `cluster` fields.
    fn parse(body: &[u8]) -> PolicyForm {
        let mut f = PolicyForm::default();
        let mut rules: std::collections::BTreeMap<usize, RuleForm> = Default::default();
        for (k, v) in url::form_urlencoded::parse(body).into_owned() {
            match k.as_str() {
                "name" => f.name = v,
                "description" => f.description = v,
                "active" => f.active = true,
                "required" => f.required = true,
                "all_clusters" => f.all_clusters = true,
                "cluster" => f.clusters.extend(v.parse::<u64>().ok()),
                "grace_period_days" => f.grace_period_days = v,
                "rescan_period_days" => f.rescan_period_days = v,
                _ => {
                    let mut parts = k.splitn(3, '.');
                    let (Some("rule"), Some(n), Some(field)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    // Bounded: the service refuses more than 16 rules anyway.
                    let Some(n) = n.parse::<usize>().ok().filter(|n| *n < 32) else {
                        continue;
                    };
                    let r = rules.entry(n).or_default();
                    let cell = |name: &str| SEVERITIES.iter().position(|s| *s == name);
                    match field.split_once('.') {
                        Some(("fixable", sev)) => {
                            if let Some(i) = cell(sev) {
                                r.fixable[i] = v;
                            }
                        }
                        Some(("unfixable", sev)) => {
                            if let Some(i) = cell(sev) {
                                r.unfixable[i] = v;
                            }
                        }
                        _ => match field {
                            "scanner" => r.scanner = v,
                            "stored" => r.stored = true,
                            "enabled" => r.enabled = true,
                            "required" => r.required = true,
                            _ => {}
                        },
                    }
                }
            }
        }
        f.rules = rules
            .into_values()
            .filter(|r| !r.scanner.trim().is_empty())
            .collect();
        f
    }

    /// The policy to save. `current` is the stored policy (on an update): its rules for scanners
    /// the form did not show are kept, so a save never drops a rule the user did not see.
    fn input(&self, current: Option<&Policy>) -> Result<PolicyInput, String> {
        let n = |field: &str, v: &str| -> Result<u32, String> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(0);
            }
            v.parse()
                .map_err(|_| format!("{field}: '{v}' is not a whole number of days"))
        };
        let mut scanners = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i]
                .iter()
                .any(|o| o.scanner.trim().eq_ignore_ascii_case(r.scanner.trim()))
            {
                return Err(format!("{}: one rule per scanner", r.scanner));
            }
            let rule = r.rule()?;
            if r.stored || r.enabled {
                scanners.push(rule);
            }
        }
        if let Some(current) = current {
            for r in &current.scanners {
                if !self
                    .rules
                    .iter()
                    .any(|f| f.scanner.trim().eq_ignore_ascii_case(&r.scanner))
                {
                    scanners.push(r.clone());
                }
            }
        }
        Ok(PolicyInput {
            name: self.name.clone(),
            description: self.description.clone(),
            active: self.active,
            required: self.required,
            clusters: if self.all_clusters {
                None
            } else {
                Some(self.clusters.clone())
            },
            scanners,
            grace_period_days: n("grace period", &self.grace_period_days)?,
            rescan_period_days: n("rescan period", &self.rescan_period_days)?,
        })
    }

    fn has_cluster(&self, id: &u64) -> bool {
        self.clusters.contains(id)
    }
}

async fn policy_new_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
) -> Result<HttpResponse, ApiError> {
    let clusters = state.with_store(crate::clusters::list).await?;
    let form = PolicyForm::of(&crate::compliance::model::default_policy(0));
    let form = PolicyForm {
        name: String::new(),
        description: String::new(),
        ..form
    };
    render(&PolicyPage {
        layout: Layout::new(&state, &p, "New policy", "/policies"),
        policy: None,
        form,
        clusters,
        error: String::new(),
        can_write: true,
    })
}

async fn policy_page(
    state: web::Data<AppState>,
    Auth(p): Auth,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let (policy, clusters) = state
        .store
        .run(move |s| {
            Ok::<_, ApiError>((
                svc::get_policy(s, id).map_err(ApiError::from)?,
                crate::clusters::list(s)?,
            ))
        })
        .await?;
    let form = PolicyForm::of(&policy);
    let layout = Layout::new(&state, &p, policy.name.clone(), "/policies");
    render(&PolicyPage {
        layout,
        policy: Some(policy),
        form,
        clusters,
        error: String::new(),
        can_write: p.can(Perm::Write),
    })
}

async fn policy_save(
    state: web::Data<AppState>,
    req: HttpRequest,
    p: Principal,
    id: Option<u64>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let form = PolicyForm::parse(&body);
    let a = Actor::from_request(&p, &req);
    let f2 = form.clone();
    let res = state
        .store
        .run(move |s| {
            let current = id.map(|i| svc::get_policy(s, i)).transpose();
            let out = match current {
                Err(e) => Err(e),
                Ok(current) => match (form.input(current.as_ref()), id) {
                    (Err(m), _) => Err(svc::ComplianceError::Invalid(m)),
                    (Ok(input), Some(id)) => svc::update_policy(s, &a, id, input),
                    (Ok(input), None) => svc::create_policy(s, &a, input),
                },
            };
            Ok::<_, ApiError>((
                out,
                crate::clusters::list(s)?,
                id.map(|i| svc::get_policy(s, i)).transpose().ok().flatten(),
            ))
        })
        .await?;
    match res {
        (Ok(policy), _, _) => Ok(redirect_with_flash(
            &state,
            &p,
            "/policies",
            &format!("Saved policy {}", policy.name),
        )),
        (
            Err(e @ (svc::ComplianceError::Invalid(_) | svc::ComplianceError::NotFound(_))),
            clusters,
            policy,
        ) => render_status(
            &PolicyPage {
                layout: Layout::new(&state, &p, "Policy", "/policies"),
                policy,
                form: f2,
                clusters,
                error: e.to_string(),
                can_write: true,
            },
            actix_web::http::StatusCode::BAD_REQUEST,
        ),
        (Err(e), _, _) => Err(e.into()),
    }
}

/// Creates (`/policies`) or changes (`/policies/{id}`) a policy from the form.
async fn policy_form(
    state: web::Data<AppState>,
    req: HttpRequest,
    Auth(p): Auth,
    id: Option<web::Path<u64>>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    policy_save(state, req, p, id.map(|i| i.into_inner()), body).await
}

impl PoliciesPage {
    fn limits(&self, l: &Limits) -> String {
        limits_text(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compliance::model::default_policy;

    fn form(p: &Policy) -> String {
        // What a browser posts for the form drawn from `p`, untouched.
        let f = PolicyForm::of(p);
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        out.append_pair("name", &f.name);
        for (i, r) in f.rules.iter().enumerate() {
            out.append_pair(&format!("rule.{i}.scanner"), &r.scanner);
            if r.stored {
                out.append_pair(&format!("rule.{i}.stored"), "1");
            }
            if r.enabled {
                out.append_pair(&format!("rule.{i}.enabled"), "1");
            }
            if r.required {
                out.append_pair(&format!("rule.{i}.required"), "1");
            }
            for (sev, fx, ux) in r.rows() {
                out.append_pair(&format!("rule.{i}.fixable.{sev}"), fx);
                out.append_pair(&format!("rule.{i}.unfixable.{sev}"), ux);
            }
        }
        out.finish()
    }

    #[test]
    fn an_untouched_form_saves_every_rule_as_it_was() {
        let mut p = default_policy(1);
        p.scanners.push(ScannerRule {
            scanner: "grype".into(),
            enabled: false,
            required: false,
            fixable: Limits {
                medium: Some(4),
                ..Limits::default()
            },
            unfixable: Limits::default(),
        });
        let saved = PolicyForm::parse(form(&p).as_bytes())
            .input(Some(&p))
            .unwrap();
        assert_eq!(saved.scanners, p.scanners);
    }

    #[test]
    fn a_known_scanner_the_policy_lacks_is_offered_and_added_only_when_ticked() {
        let mut p = default_policy(1);
        p.scanners.retain(|r| r.scanner == "trivy");
        let f = PolicyForm::of(&p);
        let offered = f.rules.iter().find(|r| r.scanner == "bulwark").unwrap();
        assert!(!offered.enabled && !offered.stored);
        assert_eq!(offered.fixable[0], "0", "with the first rule's limits");
        let untouched = PolicyForm::parse(form(&p).as_bytes());
        assert_eq!(untouched.input(Some(&p)).unwrap().scanners.len(), 1);
        let ticked = form(&p) + "&rule.1.enabled=1";
        let saved = PolicyForm::parse(ticked.as_bytes())
            .input(Some(&p))
            .unwrap();
        assert_eq!(saved.scanners[1].scanner, "bulwark");
        assert_eq!(saved.scanners[1].fixable.critical, Some(0));
    }

    #[test]
    fn rules_the_form_did_not_post_are_kept_and_bad_values_named() {
        let p = default_policy(1);
        // A form drawn before a rule was added through the API posts only the Trivy rule.
        let only_trivy = "name=x&rule.0.scanner=trivy&rule.0.stored=1&rule.0.enabled=1&rule.0.fixable.critical=2";
        let saved = PolicyForm::parse(only_trivy.as_bytes())
            .input(Some(&p))
            .unwrap();
        assert_eq!(saved.scanners.len(), 2);
        assert_eq!(saved.scanners[0].fixable.critical, Some(2));
        assert_eq!(saved.scanners[1], p.scanners[1], "bulwark's rule kept");
        let bad = "name=x&rule.0.scanner=trivy&rule.0.fixable.high=many";
        let e = PolicyForm::parse(bad.as_bytes()).input(None).unwrap_err();
        assert!(e.contains("trivy: fixable high: 'many'"), "{e}");
        let twice = "name=x&rule.0.scanner=trivy&rule.1.scanner=TRIVY";
        assert!(PolicyForm::parse(twice.as_bytes()).input(None).is_err());
        // Indexes past the bound are ignored, not allocated.
        let far = "name=x&rule.99999999.scanner=trivy";
        assert!(PolicyForm::parse(far.as_bytes()).rules.is_empty());
    }

    #[test]
    fn a_new_policy_judges_every_known_scanner() {
        let f = PolicyForm::of(&default_policy(0));
        let names: Vec<&str> = f.rules.iter().map(|r| r.scanner.as_str()).collect();
        assert_eq!(names, ["trivy", "bulwark"]);
        assert!(f.rules.iter().all(|r| r.enabled));
    }
}
