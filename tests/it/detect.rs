//! `bulwark detect` through the real binary: the interface other tools script against (one
//! JSON object per finding with `type`, `sensitivity`, `masked` and, for JSON, `path`), every
//! input format, and no raw value anywhere in what it prints.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn detect(args: &[&str], stdin: &[u8]) -> (Vec<Value>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .arg("detect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    if stdout.starts_with('[') {
        let whole: Value = serde_json::from_str(&stdout).unwrap();
        return (vec![whole], String::from_utf8_lossy(&o.stderr).into_owned());
    }
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&o.stderr).into_owned())
}

const RAW: &[&str] = &[
    "4539578763621486",
    "536-90-4399",
    "ada@analytical.engineering",
    "AKIAZ7VRSQ5TLE4MCUGQ",
    "GB82WEST12345698765432",
    "Tr0ub4dor&3",
];

#[test]
fn json_findings_with_paths_and_nothing_raw() {
    let doc = br#"{"customer":{"email":"ada@analytical.engineering","ssn":"536-90-4399","password":"Tr0ub4dor&3"},
        "payment":{"card":"4539578763621486","cvv":"123","iban":"GB82WEST12345698765432"},
        "deploy":{"aws_access_key_id":"AKIAZ7VRSQ5TLE4MCUGQ"},
        "decoys":{"card":"4539578763621487","ssn":"936-90-4399","email":"someone@example.com","key":"AKIAIOSFODNN7EXAMPLE","password":"${DB_PASSWORD}"}}"#;
    let (findings, stderr) = detect(&["-", "--format", "json"], doc);
    let got: Vec<(String, String)> = findings
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("pii.email", "$.customer.email"),
        ("id.us_ssn", "$.customer.ssn"),
        ("sec.password", "$.customer.password"),
        ("pci.pan", "$.payment.card"),
        ("pci.cvv", "$.payment.cvv"),
        ("fin.iban", "$.payment.iban"),
        ("sec.aws_akid", "$.deploy.aws_access_key_id"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    );
    for f in &findings {
        assert!(f["sensitivity"].is_string() && f["masked"].is_string());
    }
    assert_eq!(findings[3]["masked"], "1111111111111111");
    let all = serde_json::to_string(&findings).unwrap() + &stderr;
    for raw in RAW {
        assert!(!all.contains(raw), "{raw} leaked: {all}");
    }
    assert!(
        stderr.contains("combinations: pci.card_with_security_data"),
        "{stderr}"
    );
    // The array form carries the same findings.
    let (array, _) = detect(&["--format", "json-array"], doc);
    assert_eq!(array.len(), 1);
    assert_eq!(array[0].as_array().unwrap().len(), findings.len());
}

#[test]
fn text_ndjson_csv_and_form_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"2026-11-23 login ok user=ada password=Tr0ub4dor&3\ncard on file 4539 5787 6362 1486 ssn 536-90-4399\n";
    let (f, _) = detect(&[], text);
    let types: Vec<&str> = f.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["sec.password", "pci.pan", "id.us_ssn"]);
    assert_eq!(f[1]["line"], 2);
    let ndjson = b"{\"email\":\"ada@analytical.engineering\"}\n{\"card\":\"4539578763621486\"}\n";
    let (f, _) = detect(&["--input", "ndjson"], ndjson);
    assert_eq!(f.len(), 2);
    assert_eq!(f[1]["line"], 2);
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "name,email,ssn\n\"Lovelace, Ada\",ada@analytical.engineering,536904399\n",
    )
    .unwrap();
    let (f, _) = detect(&[csv.to_str().unwrap()], b"");
    let got: Vec<(&str, &str)> = f
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![("pii.email", "$[0].email"), ("id.us_ssn", "$[0].ssn")]
    );
    let (f, _) = detect(
        &["--input", "form"],
        b"email=ada%40analytical.engineering&cvv=123&note=hi",
    );
    assert_eq!(f.len(), 2);
    // Garbage is not an error: nothing found.
    let (f, _) = detect(&["--input", "json"], b"\xff\xfe{{{[[[");
    assert!(f.is_empty());
}

/// Custom types from the configuration file, and a clear error for a bad one.
#[test]
fn custom_types_come_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bulwark.toml");
    std::fs::write(
        &cfg,
        "[[detect.custom]]\nid = \"acme.employee_id\"\nsensitivity = \"High\"\nvalue = '\\bEMP-\\d{6}\\b'\n\n[[detect.custom]]\nid = \"acme.loyalty\"\nkey = \"(?i)loyalty\"\n",
    )
    .unwrap();
    let run = |cfg: &std::path::Path, input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bulwark"))
            .arg("--config")
            .arg(cfg)
            .args(["detect", "--input", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run(
        &cfg,
        br#"{"note":"badge EMP-123456 issued","loyaltyNumber":"X99","other":"X99"}"#,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let found: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<(&str, &str)> = found
        .iter()
        .map(|f| (f["type"].as_str().unwrap(), f["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        types,
        vec![
            ("acme.employee_id", "$.note"),
            ("acme.loyalty", "$.loyaltyNumber")
        ]
    );
    assert_eq!(found[0]["sensitivity"], "High");
    assert_eq!(found[0]["masked"], "***-111111");
    std::fs::write(
        &cfg,
        "[[detect.custom]]\nid = \"Bad Id\"\nvalue = '(unclosed'\n",
    )
    .unwrap();
    let o = run(&cfg, b"{}");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("detect.custom[0].id") && err.contains("detect.custom[0].value"),
        "{err}"
    );
}
