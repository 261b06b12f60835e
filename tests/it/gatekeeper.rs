//! `bulwark gatekeeper verify`: the gatekeeper-library's own suites (tests/fixtures), gator's
//! JSON and exit status, failing and broken suites, and hostile templates.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

fn library() -> String {
    format!(
        "{}/tests/fixtures/gatekeeper-library/library",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn verify(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["gatekeeper", "verify"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_gatekeeper_library_suites_all_pass() {
    let (code, out) = verify(&["--format", "json", &library()]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 270, "every case of the 49 suites");
    let failing: Vec<&Value> = results.iter().filter(|r| r["outcome"] != "pass").collect();
    assert!(failing.is_empty(), "{failing:#?}");
    assert_eq!(v["summary"]["passed"], 270);
    for r in results.iter().take(3) {
        for k in ["suite", "test", "case"] {
            assert!(r[k].is_string(), "{r}");
        }
    }
    // Text: one line per case and a summary.
    let (code, out) = verify(&[&format!("{}/general/requiredlabels", library())]);
    assert_eq!(code, 0);
    assert!(out.contains("PASS "), "{out}");
    assert!(
        out.contains("5 cases: 5 passed, 0 failed, 0 errors"),
        "{out}"
    );
}

#[test]
fn failing_and_broken_suites_are_reported_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(
        Path::new(&format!("{}/general/requiredlabels", library())),
        &root.join("labels"),
    );
    // An allowed object asserted to violate: a failing case with the reason.
    let suite = root.join("labels/suite.yaml");
    let text = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(
        &suite,
        text.replacen("violations: no", "violations: yes", 1),
    )
    .unwrap();
    // A suite naming files that do not exist, and one whose template does not compile.
    std::fs::create_dir_all(root.join("missing")).unwrap();
    std::fs::write(
        root.join("missing/suite.yaml"),
        "kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n- name: t\n  template: nope.yaml\n  constraint: nope.yaml\n  cases:\n  - name: c\n    object: nope.yaml\n    assertions:\n    - violations: no\n",
    )
    .unwrap();
    copy_dir(
        Path::new(&format!("{}/general/requiredlabels", library())),
        &root.join("broken"),
    );
    let template = root.join("broken/template.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replace("count(missing) > 0", "count(missing) > > 0"),
    )
    .unwrap();
    let (code, out) = verify(&["--format", "json", root.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let results = v["results"].as_array().unwrap();
    let of = |suite: &str| -> Vec<&Value> {
        results
            .iter()
            .filter(|r| r["suite"].as_str().unwrap().contains(suite))
            .collect()
    };
    let labels = of("/labels/");
    assert_eq!(labels.iter().filter(|r| r["outcome"] == "fail").count(), 1);
    let failed = labels.iter().find(|r| r["outcome"] == "fail").unwrap();
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("expected violations: yes, got 0"),
        "{failed}"
    );
    let missing = of("/missing/");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["outcome"], "error");
    assert!(missing[0]["reason"].as_str().unwrap().contains("nope.yaml"));
    let broken = of("/broken/");
    assert!(!broken.is_empty());
    assert!(
        broken.iter().all(|r| r["outcome"] == "error"),
        "{broken:#?}"
    );
    assert!(broken[0]["reason"]
        .as_str()
        .unwrap()
        .contains("does not compile"));
    // A path that does not exist: exit 2 with the reason.
    let (code, out) = verify(&["/nonexistent/suites"]);
    assert_eq!(code, 2);
    assert!(out.contains("/nonexistent/suites"), "{out}");
}
