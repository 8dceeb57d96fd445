//! The call-time check: which capability calls a fixer may make in which phase.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::Plan;
use salve_contract::{Access, CapabilityFunction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Check,
    Plan,
    Apply,
    Verify,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Check => "check",
            Phase::Plan => "plan",
            Phase::Apply => "apply",
            Phase::Verify => "verify",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallResult {
    Ok,
    Denied,
    AwsError,
}

/// One capability call as the audit record shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilityCall {
    pub phase: Phase,
    pub function: String,
    pub action: &'static str,
    #[serde(serialize_with = "serialize_access")]
    pub access: Access,
    pub result: CallResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    pub duration_us: u64,
}

/// The contract crate has no serde; the record spells the access the way it always has.
pub fn serialize_access<S: serde::Serializer>(access: &Access, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(access.as_str())
}

/// Decides every capability call. Reads pass in every phase; writes pass only during `apply`, only
/// for actions the approved plan lists, and only as many times as it lists them.
#[derive(Debug)]
pub struct CallGate {
    phase: Phase,
    /// Remaining write calls per IAM action during `apply`.
    allowance: BTreeMap<String, u32>,
    planned: BTreeMap<String, u32>,
    calls: Vec<CapabilityCall>,
    max_calls: usize,
}

impl CallGate {
    pub fn new(max_calls: usize) -> CallGate {
        CallGate {
            phase: Phase::Check,
            allowance: BTreeMap::new(),
            planned: BTreeMap::new(),
            calls: Vec::new(),
            max_calls,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Enters a read-only phase.
    pub fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.allowance.clear();
    }

    /// Enters `apply` with the approved plan: each listed change allows one call of its action.
    pub fn enter_apply(&mut self, approved: &Plan) {
        self.phase = Phase::Apply;
        self.allowance.clear();
        for change in &approved.changes {
            *self.allowance.entry(change.action.clone()).or_default() += 1;
        }
        self.planned = self.allowance.clone();
    }

    pub fn calls(&self) -> &[CapabilityCall] {
        &self.calls
    }

    /// Allows or denies one call; the `Err` is the exact denial message the fixer receives.
    pub fn authorize(&mut self, function: &CapabilityFunction) -> Result<(), String> {
        let action = function.iam_action;
        if self.calls.len() >= self.max_calls {
            return Err(format!(
                "{action} denied: the fixer reached the limit of {} capability calls",
                self.max_calls
            ));
        }
        if function.access == Access::Read {
            return Ok(());
        }
        if self.phase != Phase::Apply {
            return Err(format!(
                "{action} denied: it is a write, and writes are allowed only during apply, not during {}",
                self.phase.as_str()
            ));
        }
        match self.allowance.get_mut(action) {
            None => Err(format!("{action} denied: the approved plan does not list it")),
            Some(0) => Err(format!(
                "{action} denied: the approved plan lists it {} time(s) and it was already called that often",
                self.planned.get(action).copied().unwrap_or(0)
            )),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
        }
    }

    pub fn record(
        &mut self,
        function: &CapabilityFunction,
        result: CallResult,
        detail: Option<String>,
        request: Option<Value>,
        response: Option<Value>,
        duration: Duration,
    ) {
        self.calls.push(CapabilityCall {
            phase: self.phase,
            function: format!("{}.{}", function.interface, function.function),
            action: function.iam_action,
            access: function.access,
            result,
            detail,
            request,
            response,
            duration_us: duration.as_micros().min(u64::MAX as u128) as u64,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Change;
    use salve_contract::ResourceScope;

    const S3_GET_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
        interface: "s3-bucket",
        function: "get-public-access-block",
        iam_action: "s3:GetBucketPublicAccessBlock",
        access: Access::Read,
        scope: ResourceScope::FindingResource,
    };
    const S3_PUT_PUBLIC_ACCESS_BLOCK: CapabilityFunction = CapabilityFunction {
        interface: "s3-bucket",
        function: "put-public-access-block",
        iam_action: "s3:PutBucketPublicAccessBlock",
        access: Access::Write,
        scope: ResourceScope::FindingResource,
    };
    const SG_REVOKE_INGRESS: CapabilityFunction = CapabilityFunction {
        interface: "security-group",
        function: "revoke-ingress",
        iam_action: "ec2:RevokeSecurityGroupIngress",
        access: Access::Write,
        scope: ResourceScope::FindingResource,
    };

    fn plan_with(actions: &[&str]) -> Plan {
        Plan {
            changes: actions
                .iter()
                .map(|a| Change {
                    action: a.to_string(),
                    description: String::new(),
                    before: None,
                    after: None,
                })
                .collect(),
            summary: String::new(),
        }
    }

    #[test]
    fn writes_are_denied_outside_apply() {
        let mut gate = CallGate::new(10);
        gate.enter(Phase::Plan);
        assert_eq!(gate.authorize(&S3_GET_PUBLIC_ACCESS_BLOCK), Ok(()));
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK),
            Err("s3:PutBucketPublicAccessBlock denied: it is a write, and writes are allowed only during apply, not during plan".into())
        );
    }

    #[test]
    fn apply_allows_only_planned_actions_as_often_as_planned() {
        let mut gate = CallGate::new(10);
        gate.enter_apply(&plan_with(&["s3:PutBucketPublicAccessBlock"]));
        assert_eq!(
            gate.authorize(&SG_REVOKE_INGRESS),
            Err("ec2:RevokeSecurityGroupIngress denied: the approved plan does not list it".into())
        );
        assert_eq!(gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK), Ok(()));
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK),
            Err("s3:PutBucketPublicAccessBlock denied: the approved plan lists it 1 time(s) and it was already called that often".into())
        );
    }

    #[test]
    fn the_call_limit_applies_to_reads_too() {
        let mut gate = CallGate::new(1);
        gate.record(
            &S3_GET_PUBLIC_ACCESS_BLOCK,
            CallResult::Ok,
            None,
            None,
            None,
            Duration::ZERO,
        );
        assert_eq!(
            gate.authorize(&S3_GET_PUBLIC_ACCESS_BLOCK),
            Err("s3:GetBucketPublicAccessBlock denied: the fixer reached the limit of 1 capability calls".into())
        );
    }
}
