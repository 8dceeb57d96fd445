//! The IAM policies `salve iam` prints for per-customer permission reviews.
//!
//! The customer role allows the union of the installed fixers' actions, and nothing else; each
//! session narrows it to one resource and one phase. The trust policy lets only the platform role
//! assume it, only with the external ID, and lets the platform set the source identity and the
//! session tags that tie a CloudTrail entry to a finding.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::runtime::LoadedFixer;

/// The customer role's permissions: every action any installed fixer can ask for, plus each
/// resource type's tag read. Resources are `"*"` here because the role serves every finding; the
/// session policy is what narrows each session to one ARN.
pub fn customer_role_policy(fixers: &[LoadedFixer]) -> Value {
    let mut actions: BTreeSet<&str> = BTreeSet::new();
    for f in fixers {
        actions.extend(f.imports.functions.iter().map(|c| c.iam_action));
        actions.insert(f.resource_type.tags_action);
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "SalveFixers",
            "Effect": "Allow",
            "Action": actions,
            "Resource": "*",
        }]
    })
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
