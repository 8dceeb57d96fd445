//! `AWS::EC2::NetworkAcl` on contract 0.2.0: the finding's network ACL entries. Writes reach
//! ingress entries only.
//!
//! This file is the kind's part of `salve-sdk` (its feature `network-acl`).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: ["../wit/v0.2.0", "../kinds/network-acl/wit"],
        world: "salve:network-acl/network-acl-fixer-complete",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_network_acl_fixer",
        default_bindings_module: "salve_sdk::network_acl::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use salve_kind_network_acl as kind;

pub use __bindings::salve::network_acl::capability::{
    create_ingress_entry, delete_ingress_entry, describe_entries, replace_ingress_entry, AclEntry,
};
#[doc(hidden)]
pub use __exports::network_acl::fixer::Guest as __Guest;
pub use __exports::network_acl::fixer::{Call, FixPlan as Plan, PlannedCall};
#[doc(hidden)]
pub use __exports::network_acl::rollback::Guest as __RollbackGuest;
#[doc(hidden)]
pub use __exports::network_acl::terraform::Guest as __TerraformGuest;

/// The resource type the manifest declares.
pub const RESOURCE_TYPE: &str = kind::SPEC.name;
/// The IAM action of [`describe_entries`].
pub const DESCRIBE_ENTRIES: &str = kind::DESCRIBE_ENTRIES.iam_action;
/// The IAM action of [`delete_ingress_entry`].
pub const DELETE_INGRESS_ENTRY: &str = kind::DELETE_INGRESS_ENTRY.iam_action;
/// The IAM action of [`replace_ingress_entry`].
pub const REPLACE_INGRESS_ENTRY: &str = kind::REPLACE_INGRESS_ENTRY.iam_action;
/// The IAM action of [`create_ingress_entry`].
pub const CREATE_INGRESS_ENTRY: &str = kind::CREATE_INGRESS_ENTRY.iam_action;

crate::kind::kind_module!(export_macro: __export_network_acl_fixer);
