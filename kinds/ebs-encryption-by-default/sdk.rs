//! `AWS::EC2::EbsEncryptionByDefault` on contract 0.2.0: EBS encryption by default in the
//! finding's account and region.
//!
//! This file is the kind's part of `salve-sdk` (its feature `ebs-encryption-by-default`).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: ["../wit/v0.2.0", "../kinds/ebs-encryption-by-default/wit"],
        world: "salve:ebs-encryption-by-default/ebs-encryption-by-default-fixer-complete",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_ebs_encryption_by_default_fixer",
        default_bindings_module: "salve_sdk::ebs_encryption_by_default::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use salve_kind_ebs_encryption_by_default as kind;

pub use __bindings::salve::ebs_encryption_by_default::capability::{
    disable_encryption_by_default, enable_encryption_by_default, get_encryption_by_default,
};
#[doc(hidden)]
pub use __exports::ebs_encryption_by_default::fixer::Guest as __Guest;
pub use __exports::ebs_encryption_by_default::fixer::{Call, FixPlan as Plan, PlannedCall};
#[doc(hidden)]
pub use __exports::ebs_encryption_by_default::rollback::Guest as __RollbackGuest;
#[doc(hidden)]
pub use __exports::ebs_encryption_by_default::terraform::Guest as __TerraformGuest;

/// The resource type the manifest declares.
pub const RESOURCE_TYPE: &str = kind::SPEC.name;
/// The IAM action of [`get_encryption_by_default`].
pub const GET_ENCRYPTION_BY_DEFAULT: &str = kind::GET_ENCRYPTION_BY_DEFAULT.iam_action;
/// The IAM action of [`enable_encryption_by_default`].
pub const ENABLE_ENCRYPTION_BY_DEFAULT: &str = kind::ENABLE_ENCRYPTION_BY_DEFAULT.iam_action;
/// The IAM action of [`disable_encryption_by_default`].
pub const DISABLE_ENCRYPTION_BY_DEFAULT: &str = kind::DISABLE_ENCRYPTION_BY_DEFAULT.iam_action;

crate::kind::kind_module!(export_macro: __export_ebs_encryption_by_default_fixer);
