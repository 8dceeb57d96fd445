//! `AWS::RDS::DBInstance` on contract 0.2.0: whether the finding's DB instance is publicly
//! accessible.
//!
//! This file is the kind's part of `salve-sdk` (its feature `rds-instance`).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: ["../wit/v0.2.0", "../kinds/rds-instance/wit"],
        world: "salve:rds-instance/rds-instance-fixer-complete",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_rds_instance_fixer",
        default_bindings_module: "salve_sdk::rds_instance::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use salve_kind_rds_instance as kind;

pub use __bindings::salve::rds_instance::capability::{
    describe_instance, set_publicly_accessible, Instance,
};
#[doc(hidden)]
pub use __exports::rds_instance::fixer::Guest as __Guest;
pub use __exports::rds_instance::fixer::{Call, FixPlan as Plan, PlannedCall};
#[doc(hidden)]
pub use __exports::rds_instance::rollback::Guest as __RollbackGuest;
#[doc(hidden)]
pub use __exports::rds_instance::terraform::Guest as __TerraformGuest;

/// The resource type the manifest declares.
pub const RESOURCE_TYPE: &str = kind::SPEC.name;
/// The IAM action of [`describe_instance`].
pub const DESCRIBE_INSTANCE: &str = kind::DESCRIBE_INSTANCE.iam_action;
/// The IAM action of [`set_publicly_accessible`].
pub const SET_PUBLICLY_ACCESSIBLE: &str = kind::SET_PUBLICLY_ACCESSIBLE.iam_action;

crate::kind::kind_module!(export_macro: __export_rds_instance_fixer);
