//! KubeSec from the command line (`bulwark kubesec`, kubesec's JSON and exit status) and the
//! API (`POST /api/v1/kubesec`), with multi-document YAML, JSON, other kinds, YAML bombs and
//! bodies past the limit.

use std::process::Command;

use bulwark::http::{Role, Scope};
use serde_json::Value;

use crate::support::{call, Caller, InProcess};

const BIN: &str = env!("CARGO_BIN_EXE_bulwark");

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/kubesec/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn kubesec(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("kubesec")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_command_line_prints_kubesec_json_and_fails_low_scores() {
    let (code, out) = kubesec(&["--format", "json", &fixture("score-1-cap-drop-all.yml")]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["score"], 2);
    assert_eq!(v[0]["message"], "Passed with a score of 2 points");
    assert_eq!(v[0]["fileName"], fixture("score-1-cap-drop-all.yml"));
    for bad in [
        "score-0-cap-sys-admin.yml",
        "score-0-cap-chown.yml",
        "multi.yml",
    ] {
        let (code, out) = kubesec(&[&fixture(bad)]);
        assert_eq!(code, 2, "{bad}: {out}");
        assert!(serde_json::from_str::<Value>(&out).unwrap().is_array());
    }
    // One array across files, one entry per document.
    let (_, out) = kubesec(&[&fixture("multi.yml"), &fixture("score-1-pod-default.yml")]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 6);
    let (code, out) = kubesec(&["-f", "table", &fixture("score-0-cap-sys-admin.yml")]);
    assert_eq!(code, 2);
    assert!(out.contains("CapSysAdmin") && out.contains("FAIL"), "{out}");
    let (code, _) = kubesec(&["/nonexistent.yaml"]);
    assert_eq!(code, 1);
}

#[actix_web::test]
async fn the_api_scores_manifests() {
    let t = InProcess::new();
    let ro = t.user("ro@example.com", Role::ReadOnly);
    let key = t.key(ro, &[Scope::Read]);
    let app = t.service().await;
    let body = std::fs::read(fixture("multi.yml")).unwrap();
    let (s, v, _) = call(
        &app,
        Caller::bearer(&key).post_bytes("/api/v1/kubesec", body),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 5);
    assert_eq!(v[0]["object"], "DaemonSet/fluentd.kube-system");
    assert_eq!(v[0]["fileName"], "API");
    let json = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"hostPID":true,"containers":[{"name":"c"}]}}"#;
    let (s, v, _) = call(
        &app,
        Caller::bearer(&key).post_bytes("/api/v1/kubesec", json.to_vec()),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v[0]["score"], -9, "{v}");
    let (s, text, h) = call(
        &app,
        Caller::bearer(&key).post_bytes("/api/v1/kubesec?format=csv", json.to_vec()),
    )
    .await;
    assert_eq!(s, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = text.as_str().unwrap();
    assert!(
        text.starts_with("object,valid,score,message,class,rule,points,selector,reason\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Pod/p.default,true,-9,") && text.contains(",critical,HostPID,-9,"),
        "{text}"
    );
    let (_, v, _) = call(
        &app,
        Caller::bearer(&key).post_bytes("/api/v1/kubesec", b"just: config\n".to_vec()),
    )
    .await;
    assert_eq!(v[0]["valid"], false, "{v}");
    let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (c, p) in ('b'..='j').zip('a'..='i') {
        bomb.push_str(&format!(
            "{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    for (body, want) in [
        (bomb.into_bytes(), 400),
        (b"kind: [".to_vec(), 400),
        (vec![b'#'; (8 << 20) + 1], 413),
    ] {
        let (s, v, _) = call(
            &app,
            Caller::bearer(&key).post_bytes("/api/v1/kubesec", body),
        )
        .await;
        assert_eq!(s, want, "{v}");
    }
}
