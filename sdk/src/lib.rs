//! # salve-sdk: write a salve fixer as one struct and three methods
//!
//! A *fixer* is a WebAssembly component that the salve host runs in a sandbox to remediate one
//! cloud security finding. It can touch only the resource named in the finding, and only through
//! the capability module of that resource's type ([`s3_bucket`] or [`security_group`]). The host
//! calls it in four steps:
//!
//! 1. [`Fixer::check`]: read only, is the resource compliant?
//! 2. [`Fixer::plan`]: read only, which changes would make it compliant? Every [`Change`] names
//!    the IAM action that performs it; an empty plan means "already compliant".
//! 3. [`Fixer::apply`]: carry out the approved plan. The host lets through only the actions the
//!    plan lists, each as often as the plan lists it. Return rollback data where the change can be
//!    reversed.
//! 4. [`Fixer::check`] again: the finding counts as remediated only if this says `true`.
//!
//! Writes during `check` and `plan` fail with [`FixerError::Denied`]. So does calling a
//! capability of another resource type: the host refuses to even load such a fixer.
//!
//! ## A complete fixer
//!
//! ```no_run
//! use salve_sdk::s3_bucket::{self, PublicAccessBlock};
//! use salve_sdk::{Change, Fixer, Outcome, Plan, Result};
//!
//! const BLOCK_ALL: PublicAccessBlock = PublicAccessBlock {
//!     block_public_acls: true,
//!     ignore_public_acls: true,
//!     block_public_policy: true,
//!     restrict_public_buckets: true,
//! };
//!
//! struct BlockPublicAccess;
//!
//! impl Fixer for BlockPublicAccess {
//!     fn check() -> Result<bool> {
//!         Ok(s3_bucket::get_public_access_block()? == Some(BLOCK_ALL))
//!     }
//!
//!     fn plan() -> Result<Plan> {
//!         let current = s3_bucket::get_public_access_block()?;
//!         if current == Some(BLOCK_ALL) {
//!             return Ok(Plan::compliant("public access is already blocked"));
//!         }
//!         Ok(Plan::new("block all public access").with(
//!             Change::new(s3_bucket::PUT_PUBLIC_ACCESS_BLOCK, "turn on all four settings")
//!                 .before(&current)
//!                 .after(&BLOCK_ALL),
//!         ))
//!     }
//!
//!     fn apply(plan: Plan) -> Result<Outcome> {
//!         let previous = s3_bucket::get_public_access_block()?;
//!         s3_bucket::put_public_access_block(BLOCK_ALL)?;
//!         Ok(Outcome::applied(plan).with_rollback(&previous))
//!     }
//! }
//!
//! salve_sdk::register_fixer!(BlockPublicAccess, resource_type: "AWS::S3::Bucket", controls: ["S3.8"]);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component the host loads.

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: "../wit/since_v0.1.0",
        world: "all-capabilities",
        pub_export_macro: true,
        export_macro_name: "__export_all_capabilities",
        default_bindings_module: "salve_sdk::__bindings",
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

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    // Serialising plain generated records cannot fail; a fallback keeps fixers panic-free anyway.
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"))
}

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
pub mod __private {
    pub use crate::__bindings::exports::salve::fixer::fixer::Guest;

    /// Copies a string into a fixed array so it can live in a custom section.
    pub const fn manifest_bytes<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
}

/// Registers a [`Fixer`] as this component's export, and declares what it handles.
///
/// `resource_type` picks the world the host checks the fixer against (`"AWS::S3::Bucket"` or
/// `"AWS::EC2::SecurityGroup"`); `controls` lists the Security Hub control IDs and Wiz rule IDs it
/// remediates. Both are written into the `salve-fixer-manifest` custom section, which the host
/// reads without running the fixer.
#[macro_export]
macro_rules! register_fixer {
    ($fixer:ty, resource_type: $resource_type:literal, controls: [$($control:literal),* $(,)?] $(,)?) => {
        struct __SalveExport;

        impl $crate::__private::Guest for __SalveExport {
            fn check() -> $crate::Result<bool> {
                <$fixer as $crate::Fixer>::check()
            }
            fn plan() -> $crate::Result<$crate::Plan> {
                <$fixer as $crate::Fixer>::plan()
            }
            fn apply(plan: $crate::Plan) -> $crate::Result<$crate::Outcome> {
                <$fixer as $crate::Fixer>::apply(plan)
            }
        }

        $crate::__bindings::__export_all_capabilities!(__SalveExport with_types_in $crate::__bindings);

        const __SALVE_MANIFEST: &str = concat!(
            "name=", env!("CARGO_PKG_NAME"), "\n",
            "version=", env!("CARGO_PKG_VERSION"), "\n",
            "resource-type=", $resource_type, "\n",
            $("control=", $control, "\n",)*
        );

        #[cfg_attr(target_family = "wasm", link_section = "salve-fixer-manifest")]
        #[used]
        static __SALVE_MANIFEST_SECTION: [u8; __SALVE_MANIFEST.len()] =
            $crate::__private::manifest_bytes(__SALVE_MANIFEST);
    };
}
