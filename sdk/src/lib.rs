//! # salve-sdk: write a salve fixer as one struct and three methods
//!
//! A *fixer* is a WebAssembly component that the salve host runs in a sandbox to remediate one
//! cloud security finding. It can touch only the resource named in the finding, and only through
//! the module of that resource's kind ([`s3_bucket`] or [`security_group`], each behind the cargo
//! feature of the same name; enable one). The host calls it in four steps:
//!
//! 1. `Fixer::check`: read only, is the resource compliant?
//! 2. `Fixer::plan`: read only, which calls would make it compliant? A plan is the kind's typed
//!    calls with their arguments (`Call::PutPublicAccessBlock(config)`); no calls means "already
//!    compliant".
//! 3. `Fixer::apply`: make the approved plan's calls. The host lets through only calls equal to a
//!    planned call, argument for argument, each once. Then the host reads the resource back itself
//!    and compares it with what each call declares; a fix counts only if that holds.
//! 4. `Fixer::check` again: the finding counts as remediated only if this says `true` too.
//!
//! Writes during `check` and `plan` fail with `FixerError::Denied`. A kind module binds only its
//! own contract world, so calling another kind's capability does not compile.
//!
//! ## A complete fixer
//!
//! ```ignore
//! // Cargo.toml: salve-sdk = { path = "…", features = ["s3-bucket"] }
//! use salve_sdk::s3_bucket::{self, Call, Fixer, Outcome, Plan, PublicAccessBlock, Result};
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
//!         if Self::check()? {
//!             return Ok(Plan::compliant("public access is already blocked"));
//!         }
//!         Ok(Plan::new("block all public access")
//!             .call(Call::PutPublicAccessBlock(BLOCK_ALL), "turn on all four settings"))
//!     }
//!
//!     fn apply(plan: Plan) -> Result<Outcome> {
//!         let previous = s3_bucket::get_public_access_block()?;
//!         for planned in plan.calls {
//!             let Call::PutPublicAccessBlock(config) = planned.call;
//!             s3_bucket::put_public_access_block(config)?;
//!         }
//!         Ok(Outcome::with_rollback(&previous))
//!     }
//! }
//!
//! salve_sdk::register_fixer!(BlockPublicAccess, kind: s3_bucket, controls: ["S3.8"]);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component the host loads.
//!
//! Fixers written against contract 0.1.0 (a plan that names IAM actions) use [`v0_1`]; their
//! components keep loading.

// Each kind's module lives in the kind's folder, beside its contract.
#[cfg(feature = "ebs-encryption-by-default")]
#[path = "../../kinds/ebs-encryption-by-default/sdk.rs"]
pub mod ebs_encryption_by_default;
#[cfg(feature = "ebs-volume")]
#[path = "../../kinds/ebs-volume/sdk.rs"]
pub mod ebs_volume;
#[cfg(any(
    feature = "s3-bucket",
    feature = "security-group",
    feature = "ebs-encryption-by-default",
    feature = "rds-instance",
    feature = "network-acl",
    feature = "ebs-volume"
))]
pub mod hcl_text;
mod kind;
#[cfg(feature = "network-acl")]
#[path = "../../kinds/network-acl/sdk.rs"]
pub mod network_acl;
#[cfg(feature = "rds-instance")]
#[path = "../../kinds/rds-instance/sdk.rs"]
pub mod rds_instance;
#[cfg(feature = "s3-bucket")]
#[path = "../../kinds/s3-bucket/sdk.rs"]
pub mod s3_bucket;
#[cfg(feature = "security-group")]
#[path = "../../kinds/security-group/sdk.rs"]
pub mod security_group;
pub mod v0_1;

#[doc(hidden)]
pub mod __private {
    /// Serialising plain generated records cannot fail; a fallback keeps fixers panic-free.
    pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
        serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"unserialisable\":\"{e}\"}}"))
    }

    pub fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The manifest's length: every part, one after the other.
    pub const fn manifest_len(parts: &[&str]) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < parts.len() {
            n += parts[i].len();
            i += 1;
        }
        n
    }

    /// The manifest's bytes, so it can live in a custom section.
    pub const fn manifest_bytes<const N: usize>(parts: &[&str]) -> [u8; N] {
        let mut out = [0u8; N];
        let mut at = 0;
        let mut i = 0;
        while i < parts.len() {
            let bytes = parts[i].as_bytes();
            let mut j = 0;
            while j < bytes.len() {
                out[at] = bytes[j];
                at += 1;
                j += 1;
            }
            i += 1;
        }
        out
    }
}

/// Registers a fixer as this component's export, and declares what it handles.
///
/// `kind: s3_bucket` (a kind module, contract 0.2.0) or `resource_type: "AWS::S3::Bucket"`
/// (contract 0.1.0, [`v0_1`]) picks the world the host checks the fixer against; `controls`
/// lists the Security Hub control IDs and Wiz rule IDs it remediates. Both are written into the
/// `salve-fixer-manifest` custom section, which the host reads without running the fixer.
#[macro_export]
macro_rules! register_fixer {
    ($fixer:ty, kind: $kind:ident, controls: [$($control:literal),* $(,)?] $(,)?) => {
        struct __SalveExport;

        impl $crate::$kind::__Guest for __SalveExport {
            fn check() -> $crate::$kind::Result<bool> {
                <$fixer as $crate::$kind::Fixer>::check()
            }
            fn plan() -> $crate::$kind::Result<$crate::$kind::Plan> {
                <$fixer as $crate::$kind::Fixer>::plan()
            }
            fn apply(plan: $crate::$kind::Plan) -> $crate::$kind::Result<$crate::$kind::Outcome> {
                <$fixer as $crate::$kind::Fixer>::apply(plan)
            }
        }

        impl $crate::$kind::__RollbackGuest for __SalveExport {
            fn plan_rollback(
                rollback: String,
                force: bool,
            ) -> $crate::$kind::Result<Option<$crate::$kind::Plan>> {
                <$fixer as $crate::$kind::Fixer>::plan_rollback(rollback, force)
            }
        }

        impl $crate::$kind::__TerraformGuest for __SalveExport {
            fn edits(
                blocks: Vec<$crate::$kind::LocatedBlock>,
            ) -> $crate::$kind::Result<Option<Vec<$crate::$kind::Edit>>> {
                <$fixer as $crate::$kind::Fixer>::terraform(blocks)
            }
        }

        $crate::$kind::__export!(__SalveExport with_types_in $crate::$kind::__bindings);

        $crate::register_fixer!(@manifest $crate::$kind::RESOURCE_TYPE, [$($control),*]);
    };
    ($fixer:ty, iac_only_kind: $kind:ident, controls: [$($control:literal),* $(,)?] $(,)?) => {
        struct __SalveExport;

        impl $crate::$kind::__Guest for __SalveExport {
            fn check() -> $crate::$kind::Result<bool> {
                <$fixer as $crate::$kind::Fixer>::check()
            }
        }

        impl $crate::$kind::__TerraformGuest for __SalveExport {
            fn edits(
                blocks: Vec<$crate::$kind::LocatedBlock>,
            ) -> $crate::$kind::Result<Option<Vec<$crate::$kind::Edit>>> {
                <$fixer as $crate::$kind::Fixer>::terraform(blocks)
            }
        }

        $crate::$kind::__export!(__SalveExport with_types_in $crate::$kind::__bindings);

        $crate::register_fixer!(@manifest $crate::$kind::RESOURCE_TYPE, [$($control),*]);
    };
    ($fixer:ty, resource_type: $resource_type:literal, controls: [$($control:literal),* $(,)?] $(,)?) => {
        struct __SalveExport;

        impl $crate::v0_1::__Guest for __SalveExport {
            fn check() -> $crate::v0_1::Result<bool> {
                <$fixer as $crate::v0_1::Fixer>::check()
            }
            fn plan() -> $crate::v0_1::Result<$crate::v0_1::Plan> {
                <$fixer as $crate::v0_1::Fixer>::plan()
            }
            fn apply(plan: $crate::v0_1::Plan) -> $crate::v0_1::Result<$crate::v0_1::Outcome> {
                <$fixer as $crate::v0_1::Fixer>::apply(plan)
            }
        }

        $crate::v0_1::__bindings::__export_all_capabilities!(__SalveExport with_types_in $crate::v0_1::__bindings);

        $crate::register_fixer!(@manifest $resource_type, [$($control),*]);
    };
    (@manifest $resource_type:expr, [$($control:literal),*]) => {
        const __SALVE_MANIFEST: &[&str] = &[
            "name=", env!("CARGO_PKG_NAME"), "\n",
            "version=", env!("CARGO_PKG_VERSION"), "\n",
            "resource-type=", $resource_type, "\n",
            $("control=", $control, "\n",)*
        ];

        #[cfg_attr(target_family = "wasm", link_section = "salve-fixer-manifest")]
        #[used]
        static __SALVE_MANIFEST_SECTION: [u8; $crate::__private::manifest_len(__SALVE_MANIFEST)] =
            $crate::__private::manifest_bytes(__SALVE_MANIFEST);
    };
}
