//! `AWS::EC2::SecurityGroup` on contract 0.2.0: the group's ingress rules.
//!
//! Every function is bound to the finding's group; none takes a group ID.
//!
//! This file is the kind's part of `salve-sdk` (its feature `security-group`).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: ["../wit/v0.2.0", "../kinds/security-group/wit"],
        world: "salve:security-group/security-group-fixer-complete",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_security_group_fixer",
        default_bindings_module: "salve_sdk::security_group::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use salve_kind_security_group as kind;

pub use __bindings::salve::security_group::capability::{
    authorize_ingress, describe_ingress, revoke_ingress, IngressRule, RuleSource,
};
#[doc(hidden)]
pub use __exports::security_group::fixer::Guest as __Guest;
pub use __exports::security_group::fixer::{Call, FixPlan as Plan, PlannedCall};
#[doc(hidden)]
pub use __exports::security_group::rollback::Guest as __RollbackGuest;
#[doc(hidden)]
pub use __exports::security_group::terraform::Guest as __TerraformGuest;

/// The resource type the manifest declares.
pub const RESOURCE_TYPE: &str = kind::SPEC.name;
/// The IAM action of [`describe_ingress`].
pub const DESCRIBE_INGRESS: &str = kind::DESCRIBE_INGRESS.iam_action;
/// The IAM action of [`revoke_ingress`].
pub const REVOKE_INGRESS: &str = kind::REVOKE_INGRESS.iam_action;
/// The IAM action of [`authorize_ingress`].
pub const AUTHORIZE_INGRESS: &str = kind::AUTHORIZE_INGRESS.iam_action;

crate::kind::kind_module!(export_macro: __export_security_group_fixer);
