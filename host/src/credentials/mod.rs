//! AWS credentials for the customer accounts: traceable session names, per-phase session
//! policies, and the IAM policies `salve iam` prints for permission reviews.
//!
//! The session policies are the IAM half of least privilege: the read session can only read the
//! one resource, the write session can only make the plan's writes to it, so AWS itself refuses
//! anything the plan did not say.

pub mod assume;
pub mod iam;
pub mod session_name;
pub mod session_policy;

pub use assume::{
    AccountRole, AssumeRoleFailure, ExternalIdSource, RoleAssumer, SessionFor, SessionRequest,
};
pub use session_name::session_name;
pub use session_policy::{
    group_read_policy, group_reads_tags_by_api, read_policy, write_policy, PolicyDocument,
    SessionPolicy, TAGGING_API_ACTION,
};
