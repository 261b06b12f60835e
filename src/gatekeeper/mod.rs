//! Gatekeeper, evaluated natively: ConstraintTemplates compiled with regorus, constraints
//! matched as Gatekeeper matches them, and gator's suite runner (`bulwark gatekeeper verify`).

pub mod api;
pub mod audit;
pub mod catalog;
pub mod compat;
pub mod constraint;
pub mod enforce;
pub mod engine;
pub mod exceptions;
pub mod form;
pub mod library;
pub mod metrics;
mod pages;
pub mod push;
pub mod render;
pub mod review;
pub mod schema;
pub mod search;
pub mod template;
pub mod verify;

pub use constraint::{Action, Constraint, Match};
pub use engine::{Policy, Violation};
pub use review::Review;
pub use template::Template;

/// What can go wrong reading, compiling, storing or evaluating policy.
#[derive(Debug, thiserror::Error)]
pub enum GatekeeperError {
    #[error("{0}")]
    NotFound(String),
    /// The change would break something that depends on what it changes.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The cluster's API server refused or could not be reached.
    #[error("{0}")]
    Cluster(String),
    /// A template, constraint or object that is not what it should be.
    #[error("{0}")]
    Invalid(String),
    /// Rego the compiler refuses.
    #[error("the template's Rego does not compile: {0}")]
    Compile(String),
    /// An evaluation that failed (time limit, builtin error): never a violation.
    #[error("evaluation failed: {0}")]
    Evaluation(String),
}

/// Evaluates one constraint on one review: no violations when the constraint does not match.
pub fn evaluate(
    policy: &mut Policy,
    constraint: &Constraint,
    review: &Review,
) -> Result<Vec<Violation>, GatekeeperError> {
    if !constraint.matcher.matches(review) {
        return Ok(Vec::new());
    }
    engine::check_object(&review.object)?;
    let input = engine::input(
        regorus::Value::from(review.to_value()),
        regorus::Value::from(constraint.parameters.clone()),
    );
    policy.evaluate(input)
}

impl From<GatekeeperError> for crate::http::ApiError {
    fn from(e: GatekeeperError) -> Self {
        use crate::http::ApiError;
        match e {
            GatekeeperError::NotFound(m) => ApiError::not_found(m),
            GatekeeperError::Conflict(m) => ApiError::conflict(m),
            GatekeeperError::Store(e) => e.into(),
            GatekeeperError::Cluster(m) => ApiError::new(
                actix_web::http::StatusCode::BAD_GATEWAY,
                "kube_unreachable",
                m,
            ),
            e @ (GatekeeperError::Invalid(_)
            | GatekeeperError::Compile(_)
            | GatekeeperError::Evaluation(_)) => ApiError::bad_request(e.to_string()),
        }
    }
}
