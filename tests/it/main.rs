//! Bulwark's integration tests: one test binary (each extra binary costs a link), one module
//! per area. In-process tests drive the assembled actix app; end-to-end tests spawn the real
//! `bulwark` binary on a free loopback port and talk HTTPS to it.

mod admission;
mod api;
mod audits;
mod authz;
mod browser;
mod bundles;
mod cluster_chart;
mod compliance;
mod console;
mod dar;
mod detect;
mod falco;
mod gatekeeper;
mod helm_chart;
mod hostile;
mod inventory;
mod kube_sync;
mod kubesec;
mod lifecycle;
mod lists;
mod migration;
mod native_scans;
mod notify;
mod onboarding;
mod outbound;
mod packaging;
mod posture;
mod registry;
mod scan_cli;
mod scanner;
mod sensor;
mod signatures;
mod sso;
mod support;
mod tidy;
mod trivy_parity;
mod vulndb;
mod webhook_install;
mod workloads;
