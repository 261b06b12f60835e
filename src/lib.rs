//! Bulwark: an on-prem Kubernetes security appliance in one binary.
//!
//! See `ARCHITECTURE.md` for the map. Shared infrastructure: [`config`], [`store`], [`search`],
//! [`http`], [`jobs`]. Domains: [`auth`], [`audit`], [`clusters`], [`system`]. [`app`] assembles
//! them; [`cli`] is the command line.

pub mod admission;
pub mod app;
pub mod audit;
pub mod audits;
pub mod auth;
pub mod cli;
pub mod clusters;
pub mod compliance;
pub mod config;
pub mod dar;
pub mod datamap;
pub mod detect;
pub mod gatekeeper;
pub mod http;
pub mod images;
pub mod jobs;
pub mod kubesec;
pub mod manifests;
pub mod memory;
pub mod notify;
pub mod outbound;
pub mod posture;
pub mod registries;
pub mod runtime;
pub mod scanner;
pub mod search;
pub mod secrets;
pub mod sensor;
pub mod sso;
pub mod store;
pub mod system;
pub mod trust;
pub mod vulndb;
pub mod workloads;
