//! Rust: `Cargo.lock`, every `[[package]]` (the project's own crates included, as Trivy lists
//! them).

/// Every package a `Cargo.lock` records.
pub fn cargo_lock(text: &str) -> Result<Vec<(String, String)>, String> {
    super::python::toml_packages(text, "Cargo.lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_packages_and_refuses_garbage() {
        let lock = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"serde\"]\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"00\"\n";
        assert_eq!(
            cargo_lock(lock).unwrap(),
            vec![
                ("app".to_string(), "0.1.0".to_string()),
                ("serde".into(), "1.0.200".into())
            ]
        );
        assert!(cargo_lock("[[package]\n").is_err());
        assert_eq!(cargo_lock("version = 4\n").unwrap(), vec![]);
    }
}
