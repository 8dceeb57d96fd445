//! The typed stages of an audit record that only the pipeline produces: the resource's tag read,
//! the sessions, the decision with the stage it was made at, and the evidence of a fix.
//!
//! They serialise to the JSON the log has always held, so old logs read into them, and readers
//! (`fixer test`, metrics, the terminal report) use fields instead of looking strings up in a
//! `serde_json::Value`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capabilities::{Change, PlannedCall, ReadBack};
use crate::credentials::{AssumeRoleFailure, PolicyDocument, SessionFor, SessionPolicy};
use crate::finding::Finding;
use crate::policy::Decision;

/// A reference to another record of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLink {
    pub sequence: u64,
    pub record_hash: String,
}

/// A person's approval of a plan that went to review, as the record of the run it allowed
/// keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The review record whose plan was approved.
    pub approves: RecordLink,
    /// The review reasons the approval overrode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<String>,
    /// The plan made now differed from the reviewed one, and the approver accepted it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub accepted_new_plan: bool,
}

/// A person's rollback of a fix (`salve rollback`), as the record of the run keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reversal {
    pub by: String,
    pub reason: String,
    /// The `remediated` record whose change this run undoes.
    pub reverses: RecordLink,
    /// The person insisted on a rollback the fixer calls unsafe.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// The review reasons the person's rollback overrode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<String>,
}

/// The resource's own tags as the host read them, or why it could not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceTags {
    /// The IAM action of the tag read.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The tags came with the describe the fixer's `check` had already made in this finding's
    /// read session (EC2 and RDS return tags with the resource), not from a call of their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// The tags came from one Tagging API read of the whole read group (`[metadata] tag-read =
    /// "tagging-api"`), made when the group's first finding reached its decision: the group's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_group: Option<String>,
    /// Why the read group's Tagging API read did not answer for this resource, so it was read
    /// on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_miss: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionPhase {
    Read,
    Write,
}

impl SessionPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionPhase::Read => "read",
            SessionPhase::Write => "write",
        }
    }
}

/// One assumed-role session: its phase, name and exact policy, or why it could not be had.
/// Credentials and the external ID never appear here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub phase: SessionPhase,
    pub session_name: String,
    pub policy: PolicyDocument,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<AssumeRoleFailure>,
}

impl SessionRecord {
    pub fn new(
        phase: SessionPhase,
        finding: &Finding,
        on_behalf: SessionFor<'_>,
        policy: &SessionPolicy,
        failure: Option<&AssumeRoleFailure>,
    ) -> SessionRecord {
        SessionRecord {
            phase,
            session_name: crate::credentials::session_name(on_behalf.session_id(finding)),
            policy: policy.document.clone(),
            failure: failure.cloned(),
        }
    }
}

/// Where in the path a decision was made: triage (before any AWS call) or decide (after the
/// plan and the tag read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionStage {
    Triage,
    Decide,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedDecision {
    pub stage: DecisionStage,
    #[serde(flatten)]
    pub decision: Decision,
}

/// One planned call and what the host read back for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReadBack {
    pub call: PlannedCall,
    /// How many reads it took (a polled kind reads until the outcome holds or the bound ends).
    pub attempts: u32,
    #[serde(flatten)]
    pub read_back: ReadBack,
}

/// The host's read-back after apply: one result per planned call, or why the resource could not
/// be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReadBackEvidence {
    Calls(Vec<CallReadBack>),
    Error { error: String },
}

/// What the record holds as proof of its outcome. Every field after `compliant_before` is
/// written only once apply ran, and then always, as `null` where there is nothing to say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub compliant_before: bool,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub after: Option<AfterApply>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AfterApply {
    pub compliant_after: Option<bool>,
    pub applied: Option<Vec<Change>>,
    pub apply_error: Option<String>,
    pub read_back: Option<ReadBackEvidence>,
}
