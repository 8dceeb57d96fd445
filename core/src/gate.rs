//! The call-time check: which capability calls a fixer may make in which phase.

use std::collections::BTreeMap;
use std::time::Duration;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Plan, PlannedCall};
use salve_contract::{Access, CapabilityFunction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallResult {
    Ok,
    Denied,
    AwsError,
    /// A read answered from this finding's read cache: it did not reach AWS.
    Cached,
}

impl CallResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Denied => "denied",
            CallResult::AwsError => "aws-error",
            CallResult::Cached => "cached",
        }
    }
}

/// One capability call as the audit record shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapabilityCall {
    pub phase: Phase,
    pub function: String,
    pub action: Cow<'static, str>,
    #[serde(
        serialize_with = "serialize_access",
        deserialize_with = "deserialize_access"
    )]
    pub access: Access,
    pub result: CallResult,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    pub duration_us: u64,
    /// The index of the approved plan's change this write call carried out (contract 0.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<usize>,
}

/// How one call went, for [`CallGate::record`].
#[derive(Debug)]
pub struct CallRecord {
    pub result: CallResult,
    pub detail: Option<String>,
    pub request: Option<Value>,
    pub response: Option<Value>,
    pub duration: Duration,
    /// The planned call it carried out (contract 0.2).
    pub planned: Option<usize>,
}

/// The contract crate has no serde; the record spells the access the way it always has.
pub fn serialize_access<S: serde::Serializer>(access: &Access, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(access.as_str())
}

pub fn deserialize_access<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Access, D::Error> {
    match <Cow<'de, str>>::deserialize(d)?.as_ref() {
        "read" => Ok(Access::Read),
        "write" => Ok(Access::Write),
        other => Err(serde::de::Error::unknown_variant(other, &["read", "write"])),
    }
}

/// Decides every capability call. Reads pass in every phase; writes pass only during `apply`, only
/// for actions the approved plan lists, and only as many times as it lists them.
#[derive(Debug)]
pub struct CallGate {
    phase: Phase,
    /// Remaining write calls per IAM action during `apply`.
    allowance: BTreeMap<String, u32>,
    planned: BTreeMap<String, u32>,
    /// Under contract 0.2: the approved plan's typed calls, each usable once.
    typed: Vec<(PlannedCall, bool)>,
    calls: Vec<CapabilityCall>,
    max_calls: usize,
}

impl CallGate {
    pub fn new(max_calls: usize) -> CallGate {
        CallGate {
            phase: Phase::Check,
            allowance: BTreeMap::new(),
            planned: BTreeMap::new(),
            typed: Vec::new(),
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
        self.typed.clear();
    }

    /// Enters `apply` with the approved plan. A typed plan (contract 0.2) allows each planned
    /// call once, with exactly its arguments; a 0.1 plan allows one call of each listed action.
    pub fn enter_apply(&mut self, approved: &Plan) {
        self.phase = Phase::Apply;
        self.allowance.clear();
        self.typed = approved
            .changes
            .iter()
            .filter_map(|c| c.call.clone())
            .map(|c| (c, false))
            .collect();
        if self.typed.is_empty() {
            for change in &approved.changes {
                *self.allowance.entry(change.action.clone()).or_default() += 1;
            }
        }
        self.planned = self.allowance.clone();
    }

    pub fn calls(&self) -> &[CapabilityCall] {
        &self.calls
    }

    /// The indices of the approved plan's changes whose call the gate let through and AWS
    /// accepted (contract 0.2).
    pub fn accepted(&self) -> impl Iterator<Item = usize> + '_ {
        self.calls
            .iter()
            .filter(|c| c.result == CallResult::Ok)
            .filter_map(|c| c.planned)
    }

    /// Allows or denies one call; the `Err` is the exact denial message the fixer receives. A
    /// write under a typed plan returns the index of the planned call it uses up.
    pub fn authorize(
        &mut self,
        function: &CapabilityFunction,
        request: Option<&Value>,
    ) -> Result<Option<usize>, String> {
        let action = function.iam_action;
        if self.calls.len() >= self.max_calls {
            return Err(format!(
                "{action} denied: the fixer reached the limit of {} capability calls",
                self.max_calls
            ));
        }
        if function.access == Access::Read {
            return Ok(None);
        }
        if self.phase != Phase::Apply {
            return Err(format!(
                "{action} denied: it is a write, and writes are allowed only during apply, not during {}",
                self.phase.as_str()
            ));
        }
        if !self.typed.is_empty() {
            let args = request.unwrap_or(&Value::Null);
            let same =
                |(c, _): &(PlannedCall, bool)| function.is_called(&c.function) && c.args == *args;
            return match self.typed.iter().position(|t| same(t) && !t.1) {
                Some(i) => {
                    self.typed[i].1 = true;
                    Ok(Some(i))
                }
                None if self.typed.iter().any(same) => Err(format!(
                    "{action} denied: the approved plan's call of {} with these arguments was already made",
                    function.call_name()
                )),
                None => Err(format!(
                    "{action} denied: the approved plan has no call of {} with these arguments",
                    function.call_name()
                )),
            };
        }
        match self.allowance.get_mut(action) {
            None => Err(format!("{action} denied: the approved plan does not list it")),
            Some(0) => Err(format!(
                "{action} denied: the approved plan lists it {} time(s) and it was already called that often",
                self.planned.get(action).copied().unwrap_or(0)
            )),
            Some(left) => {
                *left -= 1;
                Ok(None)
            }
        }
    }

    pub fn record(&mut self, function: &CapabilityFunction, call: CallRecord) {
        self.calls.push(CapabilityCall {
            phase: self.phase,
            function: function.call_name(),
            action: Cow::Borrowed(function.iam_action),
            access: function.access,
            result: call.result,
            detail: call.detail,
            request: call.request,
            response: call.response,
            duration_us: call.duration.as_micros().min(u64::MAX as u128) as u64,
            planned: call.planned,
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
                    call: None,
                })
                .collect(),
            summary: String::new(),
        }
    }

    #[test]
    fn writes_are_denied_outside_apply() {
        let mut gate = CallGate::new(10);
        gate.enter(Phase::Plan);
        assert_eq!(gate.authorize(&S3_GET_PUBLIC_ACCESS_BLOCK, None), Ok(None));
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK, None),
            Err("s3:PutBucketPublicAccessBlock denied: it is a write, and writes are allowed only during apply, not during plan".into())
        );
    }

    #[test]
    fn apply_allows_only_planned_actions_as_often_as_planned() {
        let mut gate = CallGate::new(10);
        gate.enter_apply(&plan_with(&["s3:PutBucketPublicAccessBlock"]));
        assert_eq!(
            gate.authorize(&SG_REVOKE_INGRESS, None),
            Err("ec2:RevokeSecurityGroupIngress denied: the approved plan does not list it".into())
        );
        assert_eq!(gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK, None), Ok(None));
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK, None),
            Err("s3:PutBucketPublicAccessBlock denied: the approved plan lists it 1 time(s) and it was already called that often".into())
        );
    }

    #[test]
    fn the_call_limit_applies_to_reads_too() {
        let mut gate = CallGate::new(1);
        gate.record(
            &S3_GET_PUBLIC_ACCESS_BLOCK,
            CallRecord {
                result: CallResult::Ok,
                detail: None,
                request: None,
                response: None,
                duration: Duration::ZERO,
                planned: None,
            },
        );
        assert_eq!(
            gate.authorize(&S3_GET_PUBLIC_ACCESS_BLOCK, None),
            Err("s3:GetBucketPublicAccessBlock denied: the fixer reached the limit of 1 capability calls".into())
        );
    }

    #[test]
    fn a_typed_plan_allows_each_call_once_with_exactly_its_arguments() {
        let all = serde_json::json!({"block-public-acls": true, "ignore-public-acls": true,
            "block-public-policy": true, "restrict-public-buckets": true});
        let none = serde_json::json!({"block-public-acls": false, "ignore-public-acls": false,
            "block-public-policy": false, "restrict-public-buckets": false});
        let mut plan = plan_with(&["s3:PutBucketPublicAccessBlock"]);
        plan.changes[0].call = Some(PlannedCall {
            function: "s3-bucket.put-public-access-block".into(),
            args: all.clone(),
        });
        let mut gate = CallGate::new(10);
        gate.enter_apply(&plan);
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK, Some(&none)),
            Err("s3:PutBucketPublicAccessBlock denied: the approved plan has no call of s3-bucket.put-public-access-block with these arguments".into())
        );
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK, Some(&all)),
            Ok(Some(0))
        );
        assert_eq!(
            gate.authorize(&S3_PUT_PUBLIC_ACCESS_BLOCK, Some(&all)),
            Err("s3:PutBucketPublicAccessBlock denied: the approved plan's call of s3-bucket.put-public-access-block with these arguments was already made".into())
        );
    }
}
