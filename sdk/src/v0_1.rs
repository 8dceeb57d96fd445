//! Contract 0.1.0, frozen: one package for every kind, and a plan that names IAM actions. Fixers
//! built with it keep loading; new fixers use a kind module (`salve_sdk::s3_bucket`, …), whose
//! plan is typed calls the host can hold the fixer to.
//!
//! Register a 0.1.0 fixer with `register_fixer!(T, resource_type: "AWS::S3::Bucket", controls:
//! [...])`.

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit/since_v0.1.0",
        world: "all-capabilities",
        pub_export_macro: true,
        export_macro_name: "__export_all_capabilities",
        default_bindings_module: "salve_sdk::v0_1::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use __bindings::salve::fixer::{context as raw_context, types};

pub use types::{AwsError, Change, Finding, FixerError, Outcome, Plan, Resource, Severity};

/// The result type of every fixer method and capability call.
pub type Result<T, E = FixerError> = core::result::Result<T, E>;

/// What a fixer implements. The host calls these; see the crate docs for the order and the rules.
pub trait Fixer {
    /// Read only: is the resource compliant right now?
    fn check() -> Result<bool>;
    /// Read only: the changes that would make the resource compliant.
    fn plan() -> Result<Plan>;
    /// Carry out `plan`, which is the plan the host approved.
    fn apply(plan: Plan) -> Result<Outcome>;
}

/// The finding this fixer was started for, and the host's log.
pub mod context {
    pub use super::raw_context::LogLevel;
    use super::Finding;

    /// The finding being remediated, including its resource.
    pub fn finding() -> Finding {
        super::raw_context::current_finding()
    }

    /// Writes a line to the fixer's log, which the host keeps (bounded) in the audit record.
    pub fn log(level: LogLevel, message: &str) {
        super::raw_context::log(level, message)
    }

    /// An operator-supplied setting for this fixer from the host's configuration.
    pub fn setting(key: &str) -> Option<String> {
        super::raw_context::setting(key)
    }
}

/// Capabilities bound to the finding's S3 bucket.
pub mod s3_bucket {
    pub use super::__bindings::salve::fixer::s3_bucket::{
        get_public_access_block, put_public_access_block, PublicAccessBlock,
    };

    use salve_kind_s3_bucket as kind;

    /// The IAM action of [`get_public_access_block`].
    pub const GET_PUBLIC_ACCESS_BLOCK: &str = kind::GET_PUBLIC_ACCESS_BLOCK.iam_action;
    /// The IAM action of [`put_public_access_block`].
    pub const PUT_PUBLIC_ACCESS_BLOCK: &str = kind::PUT_PUBLIC_ACCESS_BLOCK.iam_action;
}

/// Capabilities bound to the finding's EC2 security group.
pub mod security_group {
    pub use super::__bindings::salve::fixer::security_group::{
        authorize_ingress, describe_ingress, revoke_ingress, IngressRule, RuleSource,
    };

    use salve_kind_security_group as kind;

    /// The IAM action of [`describe_ingress`].
    pub const DESCRIBE_INGRESS: &str = kind::DESCRIBE_INGRESS.iam_action;
    /// The IAM action of [`revoke_ingress`].
    pub const REVOKE_INGRESS: &str = kind::REVOKE_INGRESS.iam_action;
    /// The IAM action of [`authorize_ingress`].
    pub const AUTHORIZE_INGRESS: &str = kind::AUTHORIZE_INGRESS.iam_action;
}

use crate::__private::to_json;

impl Plan {
    /// An empty plan with a summary: nothing to do yet.
    pub fn new(summary: impl Into<String>) -> Self {
        Plan {
            changes: Vec::new(),
            summary: summary.into(),
        }
    }

    /// The plan of a resource that is already compliant.
    pub fn compliant(summary: impl Into<String>) -> Self {
        Self::new(summary)
    }

    /// Adds one change.
    pub fn with(mut self, change: Change) -> Self {
        self.changes.push(change);
        self
    }

    /// True when the plan proposes no change.
    pub fn is_compliant(&self) -> bool {
        self.changes.is_empty()
    }

    /// The planned changes that use `action`.
    pub fn changes_for<'a>(&'a self, action: &'a str) -> impl Iterator<Item = &'a Change> + 'a {
        self.changes.iter().filter(move |c| c.action == action)
    }
}

impl Change {
    /// A change performed by the IAM action `action`.
    pub fn new(action: &str, description: impl Into<String>) -> Self {
        Change {
            action: action.to_string(),
            description: description.into(),
            before: None,
            after: None,
        }
    }

    /// Records the state before the change, as JSON.
    pub fn before<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.before = Some(to_json(value));
        self
    }

    /// Records the state after the change, as JSON.
    pub fn after<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.after = Some(to_json(value));
        self
    }
}

impl Outcome {
    /// Every change of `plan` was applied.
    pub fn applied(plan: Plan) -> Self {
        Outcome {
            applied: plan.changes,
            rollback: None,
        }
    }

    /// Attaches rollback data: whatever JSON lets the change be reversed.
    pub fn with_rollback<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        self.rollback = Some(to_json(value));
        self
    }
}

impl FixerError {
    /// The resource is in a state this fixer does not handle.
    pub fn unexpected_state(message: impl Into<String>) -> Self {
        FixerError::UnexpectedState(message.into())
    }

    /// The finding or plan is not usable.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        FixerError::InvalidInput(message.into())
    }
}

#[doc(hidden)]
pub use __bindings::exports::salve::fixer::fixer::Guest as __Guest;
