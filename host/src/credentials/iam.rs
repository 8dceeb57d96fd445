//! The IAM policies `salve iam` prints for per-customer permission reviews.
//!
//! The customer role allows the union of the installed fixers' actions, and nothing else; each
//! session narrows it to one resource and one phase. The trust policy lets only the platform role
//! assume it, only with the external ID, and lets the platform set the source identity and the
//! session tags that tie a CloudTrail entry to a finding.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::credentials::{group_reads_tags_by_api, TAGGING_API_ACTION};
use crate::kinds::ResourceScope;
use crate::policy::metadata::TagReadMode;
use crate::runtime::LoadedFixer;

/// The customer role's permissions: every action any installed fixer can ask for, plus each
/// resource type's tag read, plus `tag:GetResources` where `tag_read` has read groups use the
/// Tagging API. The role serves every finding, so each action is granted on every resource of
/// its type in the account (`account`, or any when `None`); `"*"` is kept only for actions IAM
/// cannot scope. The session policy is what narrows each session to one ARN.
pub fn customer_role_policy(
    fixers: &[LoadedFixer],
    account: Option<&str>,
    tag_read: TagReadMode,
) -> Value {
    // Resource pattern → (statement ID, actions).
    let mut grants: BTreeMap<String, (String, BTreeSet<&str>)> = BTreeMap::new();
    for f in fixers {
        let kind = f.resource_type;
        let scoped = kind.arn_pattern(account);
        let mut grant = |scope: ResourceScope, action: &'static str| {
            let (resource, sid) = match scope {
                ResourceScope::FindingResource => (scoped.clone(), statement_id(kind.interface)),
                ResourceScope::AllResources => ("*".to_string(), "SalveUnscoped".to_string()),
            };
            grants
                .entry(resource)
                .or_insert_with(|| (sid, BTreeSet::new()))
                .1
                .insert(action);
        };
        for c in &f.imports.functions {
            grant(c.scope, c.iam_action);
        }
        grant(kind.tags_scope, kind.tags_action);
        if group_reads_tags_by_api(f, tag_read) {
            grant(ResourceScope::AllResources, TAGGING_API_ACTION);
        }
    }
    let statements: Vec<Value> = grants
        .into_iter()
        .map(|(resource, (sid, actions))| {
            json!({
                "Sid": sid,
                "Effect": "Allow",
                "Action": actions,
                "Resource": resource,
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// `s3-bucket` → `SalveS3Bucket`: statement IDs are alphanumeric.
fn statement_id(interface: &str) -> String {
    let mut sid = String::from("Salve");
    for part in interface.split('-') {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            sid.push(first.to_ascii_uppercase());
            sid.extend(chars.filter(char::is_ascii_alphanumeric));
        }
    }
    sid
}

/// Who may assume the customer role: the platform role, with the external ID.
pub fn customer_trust_policy(platform_role_arn: &str, external_id: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SalvePlatformAssumeRole",
                "Effect": "Allow",
                "Principal": { "AWS": platform_role_arn },
                "Action": "sts:AssumeRole",
                "Condition": { "StringEquals": { "sts:ExternalId": external_id } }
            },
            {
                "Sid": "SalvePlatformTraceability",
                "Effect": "Allow",
                "Principal": { "AWS": platform_role_arn },
                "Action": ["sts:SetSourceIdentity", "sts:TagSession"]
            }
        ]
    })
}

/// What the platform's own role needs: to assume the customer roles (with source identity and
/// session tags), to consume its queues, to publish to its notification topics, and to log.
pub fn platform_role_policy(
    customer_role_arns: &[String],
    queue_arns: &[String],
    topic_arns: &[String],
    audit_sink: Option<(&str, &str)>,
) -> Value {
    let mut statements = Vec::new();
    if !customer_role_arns.is_empty() {
        statements.push(json!({
            "Sid": "AssumeCustomerRoles",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
            "Resource": customer_role_arns,
        }));
    }
    if !queue_arns.is_empty() {
        statements.push(json!({
            "Sid": "ConsumeFindingQueues",
            "Effect": "Allow",
            "Action": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:SendMessage"
            ],
            "Resource": queue_arns,
        }));
    }
    if !topic_arns.is_empty() {
        statements.push(json!({
            "Sid": "NotifyHumans",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": topic_arns,
        }));
    }
    if let Some((bucket, prefix)) = audit_sink {
        // Put ships records; Get compares an object that is already there (an upload whose
        // answer was lost); List finds where a restarted process left off.
        statements.push(json!({
            "Sid": "ShipAuditRecords",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*"),
        }));
        statements.push(json!({
            "Sid": "ResumeAuditRecords",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": format!("arn:aws:s3:::{bucket}"),
            "Condition": { "StringLike": { "s3:prefix": [format!("{prefix}*")] } },
        }));
    }
    statements.push(json!({
        "Sid": "WriteLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "arn:aws:logs:*:*:*",
    }));
    json!({ "Version": "2012-10-17", "Statement": statements })
}
