//! Read sessions shared by the findings of one payload.
//!
//! Every finding needs a read session (check, plan, the tag read, the read-back). One STS call
//! per finding for it is a third of an S3 fix's AWS calls. The findings of one payload that
//! pass triage and are handled by the same fixer in the same account and region share one read
//! session instead, whose policy lists exactly their resources: the fixer's read actions on
//! those ARNs, nothing else. Least privilege stays exact in what the session may do (read), and
//! in which resources it may do it on (the payload's own). Each finding's capability is still
//! bound to its one resource, so a fixer cannot ask for another's.
//!
//! With `[metadata] tag-read = "tagging-api"`, a group of a kind whose tag read is a call of
//! its own (S3) also reads its resources' tags in one Resource Groups Tagging API call per 100
//! (see `FindingRun::group_tags`). Its policy then adds `tag:GetResources` on `*`, which IAM
//! cannot narrow: the session could read any resource's tags in its account and region, though
//! salve asks only for the group's ARNs.
//!
//! What it costs: the session is named for the group (`salve-read-<payload>-<n>`), not for one
//! finding, so CloudTrail attributes its reads to the group; each finding's record names the
//! session it read through. Write sessions stay per finding and per plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use salve_core::Tags;

use crate::credentials::session_policy::MAX_SESSION_POLICY_CHARS;
use crate::credentials::{group_read_policy, SessionPolicy};
use crate::ingest::{IngestOutcome, Ingested};
use crate::policy::metadata::Metadata;
use crate::policy::Verdict;
use crate::registry::Selection;

use super::Pipeline;

/// The findings of one payload that read through one session.
#[derive(Debug)]
pub(crate) struct ReadGroup {
    /// The session's name and tag value.
    pub id: String,
    /// Every resource the session may read, in payload order.
    pub arns: Vec<String>,
    /// The session's policy, made once for the group: every member binds with it, and the
    /// Tagging API read reuses it (and so the session).
    pub policy: SessionPolicy,
    /// With `[metadata] tag-read = "tagging-api"`, the group's one Tagging API answer, read by
    /// the first of its findings to reach its decision; the others wait for it.
    pub tags: tokio::sync::OnceCell<GroupTags>,
}

/// How old a read group's Tagging API answer may be when a finding is decided on it. A payload
/// of a few hundred findings runs in seconds; a large `salve process` file can run for minutes,
/// and its later findings then read their own tags rather than decide on an old answer.
pub(crate) const MAX_GROUP_TAG_AGE: Duration = Duration::from_secs(30);

/// A read group's one Tagging API answer (ARN → tags, or why the read failed), and when it came.
#[derive(Debug)]
pub(crate) struct GroupTags {
    pub read_at: Instant,
    pub answer: Result<BTreeMap<String, Tags>, String>,
}

impl GroupTags {
    /// The tags `arn` is decided on, or why it must be read on its own: the read failed, the
    /// answer is older than [`MAX_GROUP_TAG_AGE`], or it does not name `arn`. Only an answer
    /// that names the resource is taken, so an ARN the Tagging API spells differently, or a
    /// resource it has not indexed yet, never passes as untagged.
    pub fn for_resource(&self, arn: &str, now: Instant) -> Result<Tags, String> {
        let all = self.answer.as_ref().map_err(Clone::clone)?;
        let age = now.saturating_duration_since(self.read_at);
        if age > MAX_GROUP_TAG_AGE {
            return Err(format!(
                "the read group's Tagging API answer is {} s old (at most {} s is used)",
                age.as_secs(),
                MAX_GROUP_TAG_AGE.as_secs()
            ));
        }
        all.get(arn).cloned().ok_or_else(|| {
            format!("{arn} is not in the read group's Tagging API answer (never tagged, or not indexed yet)")
        })
    }
}

impl ReadGroup {
    pub fn covers(&self, arn: &str) -> bool {
        self.arns.iter().any(|a| a == arn)
    }
}

/// What findings must have in common to share a read session: account, region and fixer (by
/// digest), so one policy's actions serve them all.
type SharedBy<'a> = (&'a str, &'a str, &'a str);
/// A message's index in the payload and its resource.
type Member<'a> = (usize, &'a str);

impl Pipeline {
    /// The read group of each message (by index) that shares one; a finding alone in its
    /// account, region and fixer gets its own session as before.
    pub(crate) fn read_groups(
        &self,
        payload_sha256: &str,
        items: &[Ingested],
    ) -> HashMap<usize, Arc<ReadGroup>> {
        let policy = &self.config.policy;
        let mode = self.config.tag_read;
        let mut by_fixer: HashMap<SharedBy<'_>, (_, Vec<Member<'_>>)> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let IngestOutcome::Finding(f) = &item.outcome else {
                continue;
            };
            // Only findings that will open a read session are listed in one.
            let metadata = Metadata::from_tags(
                policy.tag_keys(),
                &f.resource.tags,
                None,
                policy.restricted_environments(),
            );
            if policy.triage(f, &metadata).verdict != Verdict::Remediate {
                continue;
            }
            let Selection::Ready(fixer) = self.registry.select(f) else {
                continue;
            };
            let r = &f.resource;
            by_fixer
                .entry((&r.account_id, &r.region, &fixer.sha256))
                .or_insert_with(|| (fixer, Vec::new()))
                .1
                .push((index, &r.arn));
        }
        let mut keys: Vec<_> = by_fixer.keys().copied().collect();
        keys.sort_unstable();
        let mut groups = HashMap::new();
        let mut n = 0;
        for key in keys {
            let (fixer, members) = &by_fixer[&key];
            // The chunk being filled: its messages, and its distinct resources.
            let (mut indices, mut arns): (Vec<usize>, Vec<&str>) = (Vec::new(), Vec::new());
            let mut flush = |indices: &mut Vec<usize>, arns: &mut Vec<&str>| {
                if arns.len() > 1 {
                    let group = Arc::new(ReadGroup {
                        id: format!(
                            "read-{}-{n}",
                            &payload_sha256[..12.min(payload_sha256.len())]
                        ),
                        arns: arns.iter().map(|a| a.to_string()).collect(),
                        policy: group_read_policy(fixer, arns, mode),
                        tags: tokio::sync::OnceCell::new(),
                    });
                    n += 1;
                    for index in indices.iter() {
                        groups.insert(*index, group.clone());
                    }
                }
                indices.clear();
                arns.clear();
            };
            for &(index, arn) in members {
                if !arns.contains(&arn) {
                    arns.push(arn);
                    if arns.len() > 1
                        && group_read_policy(fixer, &arns, mode).json().len()
                            > MAX_SESSION_POLICY_CHARS
                    {
                        arns.pop();
                        flush(&mut indices, &mut arns);
                        arns.push(arn);
                    }
                }
                indices.push(index);
            }
            flush(&mut indices, &mut arns);
        }
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(read_at: Instant) -> GroupTags {
        let tags: Tags = [("owner".to_string(), "platform".to_string())].into();
        GroupTags {
            read_at,
            answer: Ok([("arn:aws:s3:::a".to_string(), tags)].into()),
        }
    }

    #[test]
    fn only_a_fresh_answer_that_names_the_resource_is_taken() {
        let t0 = Instant::now();
        let read = answer(t0);
        let fresh = read.for_resource("arn:aws:s3:::a", t0 + Duration::from_secs(5));
        assert_eq!(fresh.map(|t| t["owner"].clone()), Ok("platform".into()));

        let absent = read.for_resource("arn:aws:s3:::b", t0).unwrap_err();
        assert!(absent.contains("is not in the read group's"), "{absent}");

        let old = read
            .for_resource(
                "arn:aws:s3:::a",
                t0 + MAX_GROUP_TAG_AGE + Duration::from_secs(1),
            )
            .unwrap_err();
        assert!(old.contains("31 s old"), "{old}");

        let failed = GroupTags {
            read_at: t0,
            answer: Err("tag:GetResources: AccessDenied".into()),
        };
        assert_eq!(
            failed.for_resource("arn:aws:s3:::a", t0),
            Err("tag:GetResources: AccessDenied".into())
        );
    }
}
