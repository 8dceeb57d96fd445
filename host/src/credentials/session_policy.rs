//! Inline session policies, one per phase. The read policy allows the fixer's read actions (and
//! the host's tag read) on the finding's resource; the write policy allows exactly the approved
//! plan's write actions on it. Where IAM has no resource-level permission for an action, the
//! action table says so and the statement uses `"*"`.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capabilities::Plan;
use crate::kinds::{self, Access, ResourceScope};
use crate::policy::metadata::TagReadMode;
use crate::runtime::LoadedFixer;

/// A session policy as AWS takes it, and as the audit record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPolicy {
    pub document: PolicyDocument,
}

/// The subset of the IAM policy grammar salve writes: allow statements, each with its actions on
/// one resource (the finding's, or `*` where IAM has no resource-level permission).
///
/// Fields are in alphabetical order, as the JSON has always been: the document is part of the
/// AssumeRole request that `fixer test` cases record and of every hashed audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub statement: Vec<PolicyStatement>,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyStatement {
    pub action: Vec<String>,
    pub effect: String,
    pub resource: Resources,
    pub sid: String,
}

/// A statement's `Resource`: one ARN (or `*`) as a string, as every policy has been written, or
/// the exact list of a read session shared by a payload's findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Resources {
    One(String),
    Many(Vec<String>),
}

impl From<String> for Resources {
    fn from(arn: String) -> Resources {
        Resources::One(arn)
    }
}

impl Resources {
    fn of(arns: &[&str]) -> Resources {
        match arns {
            [one] => Resources::One(one.to_string()),
            many => Resources::Many(many.iter().map(|a| a.to_string()).collect()),
        }
    }
}

/// The longest session policy STS takes, in characters of its JSON text. A packed-size limit
/// applies too; plain ARN lists stay well under it at this length.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

impl SessionPolicy {
    pub fn json(&self) -> String {
        serde_json::to_string(&self.document).unwrap_or_default()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(&self.document).unwrap_or(Value::Null)
    }

    /// How many characters `arn` would add to this policy's JSON, for a shared read policy that
    /// already lists at least two ARNs: its JSON string and a comma where a statement lists
    /// them (once, by construction), nothing where every action is unscoped. A read group is
    /// sized this way as ARNs join it, without building its policy for each.
    pub fn chars_added_by(&self, arn: &str) -> usize {
        let listed = self
            .document
            .statement
            .iter()
            .filter(|s| matches!(s.resource, Resources::Many(_)))
            .count();
        // Only `"`, `\`, and control characters are escaped: to two characters, or six.
        let escaped: usize = arn
            .chars()
            .map(|c| match c {
                '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
                c if (c as u32) < 0x20 => 6,
                c => c.len_utf8(),
            })
            .sum();
        listed * (escaped + 2 + 1)
    }

    /// Every action the policy allows, in statement order.
    pub fn actions(&self) -> impl Iterator<Item = &str> {
        self.document
            .statement
            .iter()
            .flat_map(|s| s.action.iter().map(String::as_str))
    }
}

fn statements(
    sid: &str,
    grants: &BTreeSet<(ResourceScope, &str)>,
    arns: &[&str],
) -> Vec<PolicyStatement> {
    let mut out = Vec::new();
    for (scope, suffix, resource) in [
        (ResourceScope::FindingResource, "", Resources::of(arns)),
        (
            ResourceScope::AllResources,
            "Unscoped",
            Resources::of(&["*"]),
        ),
    ] {
        let action: Vec<String> = grants
            .iter()
            .filter(|(s, _)| *s == scope)
            .map(|(_, a)| a.to_string())
            .collect();
        if !action.is_empty() {
            out.push(PolicyStatement {
                sid: format!("{sid}{suffix}"),
                effect: "Allow".into(),
                action,
                resource,
            });
        }
    }
    out
}

fn document(statement: Vec<PolicyStatement>) -> SessionPolicy {
    SessionPolicy {
        document: PolicyDocument {
            version: "2012-10-17".into(),
            statement,
        },
    }
}

/// The read phase (check, plan, verify): the fixer's imported read actions and the tag read, on
/// the finding's resource.
pub fn read_policy(fixer: &LoadedFixer, resource_arns: &[&str]) -> SessionPolicy {
    read_grants(fixer, resource_arns, false)
}

/// The IAM action of the Resource Groups Tagging API read (`[metadata] tag-read = "tagging-api"`).
pub const TAGGING_API_ACTION: &str = "tag:GetResources";

/// Whether a read session shared by findings of `fixer`'s kind reads their tags through the
/// Tagging API: only when configured, and only for a kind whose tag read costs a call.
pub fn group_reads_tags_by_api(fixer: &LoadedFixer, mode: TagReadMode) -> bool {
    mode == TagReadMode::TaggingApi && fixer.resource_type.tags_cost_a_call()
}

/// A read session shared by the findings of a payload or a queue batch (see
/// `pipeline::read_groups`): the read policy on each of their resources, plus
/// `tag:GetResources` on `*` when the group reads its tags in one Tagging API call (IAM has no
/// resource-level permission for it).
pub fn group_read_policy(
    fixer: &LoadedFixer,
    resource_arns: &[&str],
    mode: TagReadMode,
) -> SessionPolicy {
    read_grants(fixer, resource_arns, group_reads_tags_by_api(fixer, mode))
}

fn read_grants(fixer: &LoadedFixer, resource_arns: &[&str], tagging_api: bool) -> SessionPolicy {
    let mut grants: BTreeSet<(ResourceScope, &str)> = fixer
        .imports
        .functions
        .iter()
        .filter(|f| f.access == Access::Read)
        .map(|f| (f.scope, f.iam_action))
        .collect();
    grants.insert((
        fixer.resource_type.tags_scope,
        fixer.resource_type.tags_action,
    ));
    if tagging_api {
        grants.insert((ResourceScope::AllResources, TAGGING_API_ACTION));
    }
    document(statements("SalveRead", &grants, resource_arns))
}

/// The write phase: exactly the write actions the approved plan lists. An action that is not a
/// write capability of the fixer's resource type is left out, so it can never be granted; the
/// decision has already sent such a plan to review.
pub fn write_policy(fixer: &LoadedFixer, plan: &Plan, resource_arn: &str) -> SessionPolicy {
    let grants: BTreeSet<(ResourceScope, &str)> = plan
        .changes
        .iter()
        .filter_map(|c| kinds::function_for_action(fixer.resource_type, &c.action))
        .filter(|f| f.access == Access::Write)
        .map(|f| (f.scope, f.iam_action))
        .collect();
    document(statements("SalveWrite", &grants, &[resource_arn]))
}

/// A drift read of one kind in one account: the kind's read actions, on every resource of the
/// kind in that account (drift reads many resources at once; it never writes).
pub fn drift_policy(kind: &crate::kinds::KindSpec, account_id: &str) -> SessionPolicy {
    let grants: BTreeSet<(ResourceScope, &str)> = kind
        .functions
        .iter()
        .filter(|f| f.access == Access::Read)
        .map(|f| (f.scope, f.iam_action))
        .collect();
    let resources = kind.arn_pattern.replace("{account}", account_id);
    document(statements("SalveDriftRead", &grants, &[&resources]))
}
