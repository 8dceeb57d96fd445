//! The host's own plan: what every contract version's plan becomes once it crosses the sandbox
//! boundary. The gate, the policies, the session policies and the audit record read this, never
//! a version's generated types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::salve::fixer::types as v0_1;

/// A write call with its arguments, as the host sees it: `function` is `interface.function`
/// (`s3-bucket.put-public-access-block`) and `args` the arguments as JSON, the same JSON the
/// capability records for the call. A call in `apply` passes the gate only if it equals one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCall {
    pub function: String,
    pub args: Value,
}

/// One proposed change. Under contract 0.2 `call` holds the typed call and `action` is the host's
/// own reading of it; under 0.1 the fixer names only the action, and `call` is absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// IAM action, e.g. "s3:PutBucketPublicAccessBlock".
    pub action: String,
    pub description: String,
    /// 0.1 only: JSON of the state before the change, as the fixer describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// 0.1 only: JSON of the state after the change, as the fixer describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<PlannedCall>,
}

/// What a fixer proposes. No changes means the resource is already compliant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub summary: String,
}

impl Change {
    /// A contract 0.2.0 change: the call of `function` with `args`, the JSON the capability
    /// records for the same call, so the gate can compare them. The action is the host's reading
    /// of the function, never the fixer's.
    pub fn typed(
        function: &salve_contract::CapabilityFunction,
        args: Value,
        description: String,
    ) -> Change {
        Change {
            action: function.iam_action.to_string(),
            description,
            before: None,
            after: None,
            call: Some(PlannedCall {
                function: function.call_name(),
                args,
            }),
        }
    }
}

impl Plan {
    /// Whether every change is a typed call (contract 0.2): then the gate compares arguments and
    /// the host reads the resource back.
    pub fn is_typed(&self) -> bool {
        !self.changes.is_empty() && self.changes.iter().all(|c| c.call.is_some())
    }
}

/// What `apply` returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The changes made. Under 0.2 these are the planned calls the gate let through and AWS
    /// accepted, not a list the fixer wrote.
    pub applied: Vec<Change>,
    /// JSON the fixer (or a human) can reverse the change with.
    pub rollback: Option<String>,
}

impl From<v0_1::Change> for Change {
    fn from(c: v0_1::Change) -> Change {
        Change {
            action: c.action,
            description: c.description,
            before: c.before,
            after: c.after,
            call: None,
        }
    }
}

impl From<&Change> for v0_1::Change {
    fn from(c: &Change) -> v0_1::Change {
        v0_1::Change {
            action: c.action.clone(),
            description: c.description.clone(),
            before: c.before.clone(),
            after: c.after.clone(),
        }
    }
}

impl From<v0_1::Plan> for Plan {
    fn from(p: v0_1::Plan) -> Plan {
        Plan {
            changes: p.changes.into_iter().map(Change::from).collect(),
            summary: p.summary,
        }
    }
}

impl From<&Plan> for v0_1::Plan {
    fn from(p: &Plan) -> v0_1::Plan {
        v0_1::Plan {
            changes: p.changes.iter().map(v0_1::Change::from).collect(),
            summary: p.summary.clone(),
        }
    }
}

impl From<v0_1::Outcome> for Outcome {
    fn from(o: v0_1::Outcome) -> Outcome {
        Outcome {
            applied: o.applied.into_iter().map(Change::from).collect(),
            rollback: o.rollback,
        }
    }
}
