//! `AWS::EC2::Volume` on contract 0.2.0: the finding's one EBS volume. The kind is IaC-only (a
//! volume cannot be encrypted in place), so a fixer of it checks and edits Terraform only.
//!
//! This file is the kind's part of `salve-sdk` (its feature `ebs-volume`).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: ["../wit/v0.2.0", "../kinds/ebs-volume/wit"],
        world: "salve:ebs-volume/ebs-volume-fixer-complete",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_ebs_volume_fixer",
        default_bindings_module: "salve_sdk::ebs_volume::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use salve_kind_ebs_volume as kind;

pub use __bindings::salve::ebs_volume::capability::{describe_volume, Volume};
#[doc(hidden)]
pub use __exports::ebs_volume::fixer::Guest as __Guest;
#[doc(hidden)]
pub use __exports::ebs_volume::terraform::Guest as __TerraformGuest;

/// The resource type the manifest declares.
pub const RESOURCE_TYPE: &str = kind::SPEC.name;
/// The IAM action of [`describe_volume`].
pub const DESCRIBE_VOLUME: &str = kind::DESCRIBE_VOLUME.iam_action;

crate::kind::iac_only_kind_module!(export_macro: __export_ebs_volume_fixer);
