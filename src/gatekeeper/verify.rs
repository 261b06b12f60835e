//! gator verify's semantics: every `suite.yaml` under the given paths; each test is a template
//! and a constraint, each case an object (plain or an AdmissionReview), optional inventory
//! objects, and assertions on the violations.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{review, schema, Constraint, GatekeeperError, Policy, Review, Template};

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Error,
}

/// One case's result, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub suite: String,
    pub test: String,
    pub case: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Every case's result in order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub results: Vec<CaseResult>,
}

impl Report {
    pub fn count(&self, o: Outcome) -> usize {
        self.results.iter().filter(|r| r.outcome == o).count()
    }

    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.outcome == Outcome::Pass)
    }
}

/// Largest suite, template, constraint or object file read.
const MAX_FILE: u64 = 8 << 20;

/// Every suite file under `paths` (a path that is a file is taken as a suite), sorted.
pub fn find_suites(paths: &[PathBuf]) -> Result<Vec<PathBuf>, GatekeeperError> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p)
            .map_err(|e| GatekeeperError::Invalid(format!("{}: {e}", p.display())))?;
        if meta.is_file() {
            out.push(p.clone());
        } else {
            walk(p, &mut out, 0);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if depth > 32 {
        return;
    }
    for e in entries.flatten() {
        let Ok(t) = e.file_type() else { continue };
        let path = e.path();
        if t.is_dir() {
            walk(&path, out, depth + 1);
        } else if t.is_file() && matches!(e.file_name().to_str(), Some("suite.yaml" | "suite.yml"))
        {
            out.push(path);
        }
    }
}

fn read_docs(path: &Path) -> Result<Vec<Value>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!(
            "{}: larger than {} MiB",
            path.display(),
            MAX_FILE >> 20
        ));
    }
    crate::manifests::documents(&path.display().to_string(), &bytes, 1000)
}

fn read_one(path: &Path) -> Result<Value, String> {
    read_docs(path)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{}: empty", path.display()))
}

/// Runs suites, compiling each template file once.
pub struct Runner {
    time_limit: Duration,
    compiled: HashMap<PathBuf, Result<(Template, Policy), String>>,
}

impl Runner {
    pub fn new(time_limit: Duration) -> Runner {
        Runner {
            time_limit,
            compiled: HashMap::new(),
        }
    }

    /// Runs every suite under `paths`.
    pub fn run(&mut self, paths: &[PathBuf]) -> Result<Report, GatekeeperError> {
        let mut report = Report::default();
        for suite in find_suites(paths)? {
            self.suite(&suite, &mut report);
        }
        Ok(report)
    }

    fn template(&mut self, path: &Path) -> Result<(Template, Policy), String> {
        let limit = self.time_limit;
        self.compiled
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let t = Template::from_document(read_one(path)?).map_err(|e| e.to_string())?;
                let p = Policy::compile(&t, limit).map_err(|e| e.to_string())?;
                Ok((t, p))
            })
            .clone()
    }

    fn suite(&mut self, path: &Path, report: &mut Report) {
        let name = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut error = |test: &str, case: &str, reason: String| {
            report.results.push(CaseResult {
                suite: name.clone(),
                test: test.to_string(),
                case: case.to_string(),
                outcome: Outcome::Error,
                reason,
            })
        };
        let suite = match read_one(path) {
            Ok(s) => s,
            Err(e) => return error("", "", e),
        };
        if suite.get("kind").and_then(Value::as_str) != Some("Suite") {
            return error("", "", format!("{name}: kind is not Suite"));
        }
        let tests = suite
            .get("tests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for test in &tests {
            let results = self.test(dir, test);
            for (case, outcome, reason) in results {
                report.results.push(CaseResult {
                    suite: name.clone(),
                    test: field(test, "name"),
                    case,
                    outcome,
                    reason,
                });
            }
        }
    }

    fn test(&mut self, dir: &Path, test: &Value) -> Vec<(String, Outcome, String)> {
        let cases: Vec<Value> = test
            .get("cases")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let all_error = |reason: String| {
            if cases.is_empty() {
                return vec![(String::new(), Outcome::Error, reason)];
            }
            cases
                .iter()
                .map(|c| (field(c, "name"), Outcome::Error, reason.clone()))
                .collect()
        };
        let (template, policy) = match self.template(&dir.join(field(test, "template"))) {
            Ok(t) => t,
            Err(e) => return all_error(e),
        };
        let constraint_path = dir.join(field(test, "constraint"));
        let constraint = read_one(&constraint_path).and_then(|doc| {
            let c = Constraint::from_document(&doc).map_err(|e| e.to_string())?;
            if c.kind != template.kind {
                return Err(format!(
                    "the constraint's kind {} is not the template's {}",
                    c.kind, template.kind
                ));
            }
            let problems = template
                .schema
                .as_ref()
                .map(|s| schema::validate(s, &c.parameters))
                .unwrap_or_default();
            if !problems.is_empty() {
                return Err(problems.join("; "));
            }
            Ok(c)
        });
        // `invalid: true`: the test expects the constraint to be refused.
        if test.get("invalid").and_then(Value::as_bool) == Some(true) {
            let outcome = match &constraint {
                Err(_) => (Outcome::Pass, String::new()),
                Ok(_) => (
                    Outcome::Fail,
                    "the constraint was expected to be invalid".into(),
                ),
            };
            return vec![(String::new(), outcome.0, outcome.1)];
        }
        let constraint = match constraint {
            Ok(c) => c,
            Err(e) => return all_error(e),
        };
        cases
            .iter()
            .map(|case| {
                let name = field(case, "name");
                match run_case(dir, &policy, &constraint, case) {
                    Ok(None) => (name, Outcome::Pass, String::new()),
                    Ok(Some(why)) => (name, Outcome::Fail, why),
                    Err(e) => (name, Outcome::Error, e),
                }
            })
            .collect()
    }
}

fn field(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `Ok(None)` when every assertion holds, `Ok(Some(why))` when one does not.
fn run_case(
    dir: &Path,
    policy: &Policy,
    constraint: &Constraint,
    case: &Value,
) -> Result<Option<String>, String> {
    let object = read_one(&dir.join(field(case, "object")))?;
    let mut inventory = Vec::new();
    for p in case
        .get("inventory")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        inventory.extend(read_docs(&dir.join(p))?);
    }
    let mut policy = if inventory.is_empty() {
        policy.clone()
    } else {
        policy
            .with_inventory(review::inventory(&inventory))
            .map_err(|e| e.to_string())?
    };
    let probe = Review::from_document(object.clone(), None);
    let namespace_object = probe.namespace.as_ref().and_then(|ns| {
        inventory
            .iter()
            .find(|o| {
                o.get("kind").and_then(Value::as_str) == Some("Namespace")
                    && o.pointer("/metadata/name").and_then(Value::as_str) == Some(ns)
            })
            .cloned()
    });
    let review = Review::from_document(object, namespace_object);
    let violations =
        super::evaluate(&mut policy, constraint, &review).map_err(|e| e.to_string())?;
    let assertions = case
        .get("assertions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if assertions.is_empty() {
        return Err("the case has no assertions".into());
    }
    for a in &assertions {
        let matching: Vec<&str> = match a.get("message").and_then(Value::as_str) {
            Some(pattern) => {
                let re = regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| format!("message pattern: {e}"))?;
                violations
                    .iter()
                    .map(|v| v.msg.as_str())
                    .filter(|m| re.is_match(m))
                    .collect()
            }
            None => violations.iter().map(|v| v.msg.as_str()).collect(),
        };
        let n = matching.len();
        let ok = match a.get("violations") {
            None | Some(Value::Null) => n > 0,
            Some(Value::String(s)) if s == "yes" => n > 0,
            Some(Value::String(s)) if s == "no" => n == 0,
            Some(Value::Bool(b)) => (n > 0) == *b,
            Some(Value::Number(x)) if x.as_u64().is_some() => n as u64 == x.as_u64().unwrap_or(0),
            Some(Value::String(s)) if s.parse::<u64>().is_ok() => {
                n as u64 == s.parse::<u64>().unwrap_or(0)
            }
            Some(other) => {
                return Err(format!(
                    "assertion violations: {other} is not yes, no or a count"
                ))
            }
        };
        if !ok {
            let what = a
                .get("message")
                .and_then(Value::as_str)
                .map(|m| format!(" matching '{m}'"))
                .unwrap_or_default();
            let expected = a.get("violations").map_or("yes".to_string(), |v| {
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            });
            let seen: Vec<&str> = violations.iter().map(|v| v.msg.as_str()).take(3).collect();
            return Ok(Some(format!(
                "expected violations{what}: {expected}, got {n}{}",
                if seen.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", seen.join(" | "))
                }
            )));
        }
    }
    Ok(None)
}
