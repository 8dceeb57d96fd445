//! What every kind module of contract 0.2.0 has besides its capability: the `Fixer` trait, plan
//! and outcome helpers, the context, and the export glue. Each kind module invokes
//! [`kind_module!`] after binding its own world, so the code is written once and the types are
//! the kind's own.

/// Expands inside a kind module whose `__bindings` module holds that kind's 0.2.0 world.
// Each is unused when no enabled kind feature needs it.
#[allow(unused_macros)]
macro_rules! kind_module {
    (export_macro: $export:ident) => {
        use __bindings::exports::salve as __exports;

        pub use __bindings::salve::fixer::results::Outcome;
        crate::kind::kind_common!(export_macro: $export);

        /// What a fixer implements. The host calls these; see the crate docs for the order and
        /// the rules.
        pub trait Fixer {
            /// Read only: is the resource compliant right now?
            fn check() -> Result<bool>;
            /// Read only: the calls that would make the resource compliant.
            fn plan() -> Result<Plan>;
            /// Make exactly the calls of `plan`, which is the plan the host approved.
            fn apply(plan: Plan) -> Result<Outcome>;
            /// Read only: the calls that undo a fix whose `apply` returned `rollback` (its
            /// [`Outcome::with_rollback`] JSON; [`rollback_data`] reads it). The host gates them
            /// and hands them to [`Fixer::apply`] like any plan, so `apply` must make these calls
            /// too. `force` is set when a person insists on a rollback this fixer calls unsafe;
            /// without it, answer [`FixerError::Denied`] with the reason. The default declares
            /// no rollback.
            fn plan_rollback(rollback: String, force: bool) -> Result<Option<Plan>> {
                let _ = (rollback, force);
                Ok(None)
            }
            /// The fix as edits of the Terraform that declares the resource: `blocks[0]` is the
            /// resource's own block, the rest configure it from outside. Each edit names a
            /// located block; the host refuses any other, and any result that does not parse or
            /// is not formatted as `terraform fmt` formats. The default edits no Terraform.
            fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
                let _ = blocks;
                Ok(None)
            }
        }

        /// The rollback data a fix returned, read back into the type it was written from.
        pub fn rollback_data<T: serde::de::DeserializeOwned>(rollback: &str) -> Result<T> {
            $crate::__private::from_json(rollback).map_err(|e| {
                FixerError::InvalidInput(format!(
                    "the rollback data is not what this fixer wrote: {e}"
                ))
            })
        }

        impl Plan {
            /// A plan with no calls yet: the resource is compliant unless calls are added.
            pub fn new(summary: impl Into<String>) -> Self {
                Plan {
                    calls: Vec::new(),
                    summary: summary.into(),
                }
            }

            /// The plan of a resource that is already compliant.
            pub fn compliant(summary: impl Into<String>) -> Self {
                Self::new(summary)
            }

            /// Adds one call, exactly as `apply` will make it.
            pub fn call(mut self, call: Call, description: impl Into<String>) -> Self {
                self.calls.push(PlannedCall {
                    call,
                    description: description.into(),
                });
                self
            }

            /// True when the plan proposes no call.
            pub fn is_compliant(&self) -> bool {
                self.calls.is_empty()
            }
        }

        impl Outcome {
            /// Done, with nothing to undo by.
            pub fn done() -> Self {
                Outcome { rollback: None }
            }

            /// Done; `value` (as JSON) is what the change can be reversed with.
            pub fn with_rollback<T: serde::Serialize + ?Sized>(value: &T) -> Self {
                Outcome {
                    rollback: Some($crate::__private::to_json(value)),
                }
            }
        }

    };
}

/// Expands inside an IaC-only kind module (`KindSpec::iac_only`), whose world's `fixer` exports
/// only `check`: nothing live can fix such a kind, so there is no plan, apply or rollback.
#[allow(unused_macros)]
macro_rules! iac_only_kind_module {
    (export_macro: $export:ident) => {
        use __bindings::exports::salve as __exports;

        crate::kind::kind_common!(export_macro: $export);

        /// What a fixer of an IaC-only kind implements: whether the resource is compliant, and
        /// the fix as an edit of its Terraform, which the host opens as a pull request.
        pub trait Fixer {
            /// Read only: is the resource compliant right now?
            fn check() -> Result<bool>;
            /// The fix as edits of the Terraform that declares the resource: `blocks[0]` is the
            /// resource's own block. Each edit names a located block; the host refuses any
            /// other, and any result that does not parse or is not formatted as `terraform fmt`
            /// formats. The default edits no Terraform.
            fn terraform(blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
                let _ = blocks;
                Ok(None)
            }
        }
    };
}

/// What every kind module has: the common types, the errors' helpers, the context, and the
/// export macro.
#[allow(unused_macros)]
macro_rules! kind_common {
    (export_macro: $export:ident) => {
        pub use __bindings::salve::fixer::iac::{BlockText, Edit, LocatedBlock};
        pub use __bindings::salve::fixer::types::{
            AwsError, Finding, FixerError, Resource, Severity,
        };

        /// The result type of every fixer method and capability call.
        pub type Result<T, E = FixerError> = core::result::Result<T, E>;

        impl FixerError {
            /// The resource is in a state this fixer does not handle.
            pub fn unexpected_state(message: impl Into<String>) -> Self {
                FixerError::UnexpectedState(message.into())
            }

            /// The finding or plan is not usable.
            pub fn invalid_input(message: impl Into<String>) -> Self {
                FixerError::InvalidInput(message.into())
            }

            /// The fixer refuses: a rollback that needs `force`, say.
            pub fn denied(message: impl Into<String>) -> Self {
                FixerError::Denied(message.into())
            }
        }

        /// The finding this fixer was started for, and the host's log.
        pub mod context {
            use super::__bindings::salve::fixer::context as raw;
            pub use raw::LogLevel;

            /// The finding being remediated, including its resource.
            pub fn finding() -> super::Finding {
                raw::current_finding()
            }

            /// Writes a line to the fixer's log, which the host keeps (bounded) in the record.
            pub fn log(level: LogLevel, message: &str) {
                raw::log(level, message)
            }

            /// An operator-supplied setting for this fixer from the host's configuration.
            pub fn setting(key: &str) -> Option<String> {
                raw::setting(key)
            }
        }

        #[doc(hidden)]
        pub use __bindings::$export as __export;
    };
}

#[allow(unused_imports)]
pub(crate) use iac_only_kind_module;
#[allow(unused_imports)]
pub(crate) use kind_common;
#[allow(unused_imports)]
pub(crate) use kind_module;
