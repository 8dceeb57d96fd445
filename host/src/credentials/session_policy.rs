//! Inline session policies, one per phase. The read policy allows the fixer's read actions (and
//! the host's tag read) on the finding's resource; the write policy allows exactly the approved
//! plan's write actions on it. Where IAM has no resource-level permission for an action, the
//! action table says so and the statement uses `"*"`.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::capabilities::Plan;
use crate::kinds::{self, Access, ResourceScope};
use crate::runtime::LoadedFixer;

/// A session policy as AWS takes it, with the actions it allows for the audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPolicy {
    pub document: Value,
}

impl SessionPolicy {
    pub fn json(&self) -> String {
        self.document.to_string()
    }
}

fn statements(sid: &str, grants: &BTreeSet<(ResourceScope, &str)>, arn: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for (scope, suffix, resource) in [
        (ResourceScope::FindingResource, "", json!(arn)),
        (ResourceScope::AllResources, "Unscoped", json!("*")),
    ] {
        let actions: Vec<&str> = grants
            .iter()
            .filter(|(s, _)| *s == scope)
            .map(|(_, a)| *a)
            .collect();
        if !actions.is_empty() {
            out.push(json!({
                "Sid": format!("{sid}{suffix}"),
                "Effect": "Allow",
                "Action": actions,
                "Resource": resource,
            }));
        }
    }
    out
}

fn document(statements: Vec<Value>) -> SessionPolicy {
    SessionPolicy {
        document: json!({ "Version": "2012-10-17", "Statement": statements }),
    }
}

/// The read phase (check, plan, verify): the fixer's imported read actions and the tag read.
pub fn read_policy(fixer: &LoadedFixer, resource_arn: &str) -> SessionPolicy {
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
    document(statements("SalveRead", &grants, resource_arn))
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
    document(statements("SalveWrite", &grants, resource_arn))
}
