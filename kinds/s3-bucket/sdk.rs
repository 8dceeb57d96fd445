//! `AWS::S3::Bucket` on contract 0.2.0: the bucket's public access block.
//!
//! Every function is bound to the finding's bucket; none takes a bucket name.
//!
//! This file is the kind's part of `salve-sdk` (its feature `s3-bucket`).

#[doc(hidden)]
pub mod __bindings {
    wit_bindgen::generate!({
        path: ["../wit/v0.2.0", "../kinds/s3-bucket/wit"],
        world: "salve:s3-bucket/s3-bucket-fixer-complete",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_s3_bucket_fixer",
        default_bindings_module: "salve_sdk::s3_bucket::__bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

use salve_kind_s3_bucket as kind;

pub use __bindings::salve::s3_bucket::capability::{
    delete_public_access_block, get_public_access_block, put_public_access_block, PublicAccessBlock,
};
#[doc(hidden)]
pub use __exports::s3_bucket::fixer::Guest as __Guest;
pub use __exports::s3_bucket::fixer::{Call, FixPlan as Plan, PlannedCall};
#[doc(hidden)]
pub use __exports::s3_bucket::rollback::Guest as __RollbackGuest;
#[doc(hidden)]
pub use __exports::s3_bucket::terraform::Guest as __TerraformGuest;

/// The resource type the manifest declares.
pub const RESOURCE_TYPE: &str = kind::SPEC.name;
/// The IAM action of [`get_public_access_block`].
pub const GET_PUBLIC_ACCESS_BLOCK: &str = kind::GET_PUBLIC_ACCESS_BLOCK.iam_action;
/// The IAM action of [`put_public_access_block`].
pub const PUT_PUBLIC_ACCESS_BLOCK: &str = kind::PUT_PUBLIC_ACCESS_BLOCK.iam_action;
/// The IAM action of [`delete_public_access_block`] (S3 authorizes it with the put's).
pub const DELETE_PUBLIC_ACCESS_BLOCK: &str = kind::DELETE_PUBLIC_ACCESS_BLOCK.iam_action;

crate::kind::kind_module!(export_macro: __export_s3_bucket_fixer);
