use serde_json::json;

use super::*;

fn fixture(name: &str) -> Vec<Report> {
    let path = format!(
        "{}/tests/fixtures/kubesec/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    scan(name, &std::fs::read(&path).unwrap()).unwrap()
}

fn ids(list: &[RuleRef]) -> Vec<&str> {
    list.iter().map(|r| r.id).collect()
}

#[test]
fn upstream_fixtures_score_as_kubesec_scores_them() {
    for (file, score, critical) in [
        ("score-0-cap-sys-admin.yml", -30, vec!["CapSysAdmin"]),
        ("score-0-cap-chown.yml", 0, vec![]),
        ("score-1-cap-drop-all.yml", 2, vec![]),
        ("score-1-pod-default.yml", 1, vec![]),
        ("score-1-dep-ro-root-fs.yml", 1, vec![]),
        ("score-1-dep-seccon-run-as-user-10001.yml", 1, vec![]),
        ("score-1-dep-seccon-run-as-user-1.yml", 0, vec![]),
        ("score-2-pod-serviceaccount.yml", 4, vec![]),
        ("score-5-pod-serviceaccount.yml", 6, vec![]),
        ("score-0-statefulset-no-sec.yml", 0, vec![]),
        ("score-1-statefulset-volumeclaimtemplate.yml", 2, vec![]),
        (
            "score-0-daemonset-mount-docker-socket.yml",
            -9,
            vec!["DockerSock"],
        ),
        (
            "score-0-daemonset-securitycontext-privileged.yml",
            -62,
            // Equal points go by selector: `/proc` before `/var/run/docker.sock`.
            vec![
                "Privileged",
                "HostNetwork",
                "HostPID",
                "ProcMount",
                "DockerSock",
            ],
        ),
        (
            "allowPrivilegeEscalation.yaml",
            -4,
            vec!["AllowPrivilegeEscalation"],
        ),
    ] {
        let r = &fixture(file)[0];
        assert_eq!(r.score, score, "{file}: {r:#?}");
        assert_eq!(ids(&r.scoring.critical), critical, "{file}");
        assert!(r.valid, "{file}");
        let want = if score >= 0 { "Passed" } else { "Failed" };
        assert!(r.message.starts_with(want), "{file}: {}", r.message);
    }
    let r = &fixture("sockshop-carts-dep.yaml")[0];
    assert!(r.score > 0, "{r:#?}");
}

#[test]
fn points_count_once_per_rule_not_per_container() {
    // kubesec's own vector: two containers, both read-only and non-root, score 2.
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"hostNetwork": null, "containers": [
            {"name": "a", "securityContext": {"readOnlyRootFilesystem": true, "runAsNonRoot": true}},
            {"name": "b", "securityContext": {"readOnlyRootFilesystem": true, "runAsNonRoot": true}}]}}}});
    let r = score(&d, "d.json");
    assert_eq!(r.score, 2);
    assert_eq!(
        ids(&r.scoring.passed),
        ["RunAsNonRoot", "ReadOnlyRootFilesystem"]
    );
    assert_eq!(r.object, "Deployment/d.default");
    // The pod's security context counts for containers that leave the field unset.
    let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "x"},
        "spec": {"securityContext": {"runAsUser": 20000, "seccompProfile": {"type": "Unconfined"}},
                 "containers": [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 0}}]}});
    let r = score(&p, "p");
    assert_eq!(ids(&r.scoring.passed), ["RunAsUser"]);
    assert_eq!(ids(&r.scoring.critical), ["SeccompUnconfined"]);
    assert_eq!(r.score, 0);
    assert!(!r.passes(), "a critical rule fails the object");
}

#[test]
fn lists_are_in_kubesec_order_and_the_json_has_its_shape() {
    let r = &fixture("score-0-daemonset-securitycontext-privileged.yml")[0];
    let points: Vec<i64> = r.scoring.critical.iter().map(|x| x.points).collect();
    assert_eq!(points, [-30, -9, -9, -9, -9]);
    let advise: Vec<i64> = r.scoring.advise.iter().map(|x| x.points).collect();
    assert!(advise.windows(2).all(|w| w[0] >= w[1]), "{advise:?}");
    let v = serde_json::to_value(r).unwrap();
    for k in ["object", "valid", "fileName", "message", "score", "scoring"] {
        assert!(v.get(k).is_some(), "{k} in {v}");
    }
    assert_eq!(
        v["scoring"]["critical"][0],
        json!({"id": "Privileged", "selector": "containers[] .securityContext .privileged == true",
               "reason": r.scoring.critical[0].reason, "points": -30})
    );
}

#[test]
fn multiple_documents_other_kinds_and_hostile_yaml() {
    let reports = fixture("multi.yml");
    assert_eq!(reports.len(), 5);
    let unsupported = reports
        .iter()
        .filter(|r| r.message == "This resource kind is not supported by kubesec")
        .count();
    assert_eq!(unsupported, 3, "{reports:#?}");
    let bindings = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: open}\nsubjects:\n- {kind: User, name: system:anonymous}\n";
    let r = &scan("b.yaml", bindings.as_bytes()).unwrap()[0];
    assert_eq!(
        (r.score, ids(&r.scoring.critical)),
        (-30, vec!["BindingsToSystemAnonymous"])
    );
    // Not Kubernetes: reported as not valid, nothing scored.
    let r = &scan("x.yaml", b"name: just some config\nitems: [1, 2]\n").unwrap()[0];
    assert!(!r.valid && r.object == "Unknown" && !r.passes(), "{r:#?}");
    // A billion laughs stops at the reader's limit instead of filling memory.
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, prev) in ('b'..='j').zip('a'..='i') {
        bomb.push_str(&format!(
            "{i}: &{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    assert!(scan("bomb.yaml", bomb.as_bytes()).is_err());
    for bad in [
        &b"key: [unclosed"[..],
        b"",
        b"---\n---\n",
        &[0xff, 0xfe][..],
    ] {
        assert!(
            scan("bad", bad).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(scan("big", &vec![b' '; MAX_BYTES + 1]).is_err());
}
