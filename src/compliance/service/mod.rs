//! Stored policies and exceptions, scan ingest and temporary exceptions. Every change is audited
//! in its own transaction.

use chrono::{NaiveDate, Utc};

use super::model::*;
use crate::http::ApiError;
use crate::images;
use crate::store::StoreError;

/// Errors of the compliance domain.
#[derive(Debug, thiserror::Error)]
pub enum ComplianceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Image(#[from] images::ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ComplianceError> for ApiError {
    fn from(e: ComplianceError) -> Self {
        match e {
            ComplianceError::Invalid(m) => ApiError::bad_request(m),
            ComplianceError::NotFound(_) => ApiError::not_found(e.to_string()),
            ComplianceError::Forbidden(m) => ApiError::forbidden(m),
            ComplianceError::Image(i) => i.into(),
            ComplianceError::Store(s) => ApiError::internal(s),
        }
    }
}

pub use crate::audit::ActorEvent;
pub use crate::http::Actor;

/// Today in UTC (exception dates are UTC days).
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Entries an exception may list per field (clusters, policies, namespaces), and a policy per
/// cluster list; every one is checked on every evaluation.
pub(super) const MAX_LISTED: usize = 100;

mod exceptions;
mod ingest;
mod policies;

pub use exceptions::*;
pub use ingest::*;
pub use policies::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Role;
    use crate::images::{self, ScanState};
    use crate::store::Store;

    const DEBIAN: &[u8] = include_bytes!("../../../tests/fixtures/trivy/debian-buster.trivy.json");

    fn setup() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &crate::app::migrations()).unwrap();
        let new = crate::clusters::NewCluster {
            name: "prod".into(),
            ..Default::default()
        };
        crate::clusters::create(&store, "t", "", new).unwrap();
        (dir, store)
    }

    #[test]
    fn rescans_are_queued_when_the_period_passes() {
        let (_d, store) = setup();
        let res = ingest_trivy(&store, "t", "prod", "registry.local/app:1", DEBIAN).unwrap();
        assert_eq!(queue_due_rescans(&store).unwrap(), 0, "just scanned");
        // Age the scan past the default policy's 7 days.
        store
            .write(|w| {
                let mut i = w.get(&images::IMAGES, &res.image.id)?.unwrap();
                i.last_scan.as_mut().unwrap().at -= chrono::Duration::days(8);
                w.put(&images::IMAGES, &i.id, &i)
            })
            .unwrap();
        assert_eq!(queue_due_rescans(&store).unwrap(), 1);
        assert_eq!(queue_due_rescans(&store).unwrap(), 0, "queued once");
        let i = images::get(&store, res.image.id).unwrap();
        assert!(
            matches!(&i.scan_state, ScanState::Queued { reason, .. } if reason.contains("every 7 days")),
            "{:?}",
            i.scan_state
        );
        // A new upload clears the queue state.
        ingest_trivy(&store, "t", "prod", "registry.local/app:1", DEBIAN).unwrap();
        assert_eq!(
            images::get(&store, res.image.id).unwrap().scan_state,
            ScanState::Scanned
        );
    }

    #[test]
    fn expired_exceptions_are_deactivated() {
        let (_d, store) = setup();
        let admin = Actor {
            name: "a".into(),
            role: Some(Role::Admin),
            user_id: None,
            ip: String::new(),
        };
        let past = today() - chrono::Duration::days(1);
        let e = ExceptionInput {
            title: "old".into(),
            start_date: Some(past - chrono::Duration::days(10)),
            end_date: Some(past),
            ..Default::default()
        };
        let old = create_exception(&store, &admin, e).unwrap();
        let current = create_exception(
            &store,
            &admin,
            ExceptionInput {
                title: "current".into(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(deactivate_expired(&store).unwrap(), 1);
        assert_eq!(
            get_exception(&store, old.id).unwrap().status,
            ExceptionStatus::Inactive
        );
        assert_eq!(
            get_exception(&store, current.id).unwrap().status,
            ExceptionStatus::Active
        );
        assert_eq!(deactivate_expired(&store).unwrap(), 0);
    }
}
