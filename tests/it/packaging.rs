//! What the .deb takes from the binary: a manual page per command and completions for bash,
//! zsh and fish, generated from the command line itself (so a new flag is documented and
//! completed without anyone remembering to). The package is built and proved by
//! packaging/build-deb.sh and packaging/test-deb.sh, which tests/run-all.sh runs after this.

use std::process::Command;

#[test]
fn manual_pages_and_completions_follow_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_bulwark");
    for (what, sub) in [("man", "man"), ("completions", "completions")] {
        let out = Command::new(bin)
            .args(["generate", what])
            .arg(dir.path().join(sub))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let page = std::fs::read_to_string(dir.path().join("man/bulwark-crawl.1")).unwrap();
    assert!(page.contains(".TH BULWARK-CRAWL 1"), "{page}");
    assert!(
        page.contains("\\-\\-source"),
        "every flag is on its page: {page}"
    );
    for cmd in [
        "bulwark.1",
        "bulwark-serve.1",
        "bulwark-db-import.1",
        "bulwark-user-add.1",
    ] {
        assert!(dir.path().join("man").join(cmd).is_file(), "{cmd}");
    }
    let bash = std::fs::read_to_string(dir.path().join("completions/bulwark.bash")).unwrap();
    assert!(
        bash.contains("crawl") && bash.contains("--format"),
        "bash completes subcommands and flags"
    );
    let zsh = std::fs::read_to_string(dir.path().join("completions/_bulwark")).unwrap();
    assert!(
        zsh.starts_with("#compdef bulwark"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    let fish = std::fs::read_to_string(dir.path().join("completions/bulwark.fish")).unwrap();
    assert!(fish.contains("complete -c bulwark"));
}
