//! Read sessions shared by the findings of one payload, or of one queue batch.
//!
//! Every finding needs a read session (check, plan, the tag read, the read-back). One STS call
//! per finding for it is a sixth of an S3 fix's AWS calls. The findings of one payload (or of
//! the messages of one queue batch: a queue delivers a finding a message) that pass triage and
//! are handled by the same fixer in the same account and region share one read session instead,
//! whose policy lists exactly their resources: the fixer's read actions on those ARNs, nothing
//! else. Least privilege stays exact in what the session may do (read), and in which resources
//! it may do it on (the batch's own). Each finding's capability is still bound to its one
//! resource, so a fixer cannot ask for another's.
//!
//! With `[metadata] tag-read = "tagging-api"`, a group of a kind whose tag read is a call of
//! its own (S3) also reads its resources' tags in one Resource Groups Tagging API call per 100
//! (see `FindingRun::group_tags`). Its policy then adds `tag:GetResources` on `*`, which IAM
//! cannot narrow: the session could read any resource's tags in its account and region, though
//! salve asks only for the group's ARNs.
//!
//! What it costs: the session is named for the group (`salve-read-<payload>-<n>`, or the
//! batch's digest in place of the payload's), not for one finding, so CloudTrail attributes its
//! reads to the group; each finding's record names the session it read through. Write sessions
//! stay per finding and per plan.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use salve_core::Tags;
use sha2::{Digest, Sha256};

use crate::base::{hex, sha256_hex};
use crate::credentials::session_policy::MAX_SESSION_POLICY_CHARS;
use crate::credentials::{group_read_policy, SessionPolicy};
use crate::ingest::{self, IngestOutcome, Ingested};
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
/// Where a finding sits (its payload in the batch, its message in that payload) and its
/// resource.
type Member<'a> = ((usize, usize), &'a str);

/// What a caught panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A payload ingested ahead of its run, with the read sessions its findings share with the
/// payloads it arrived with (the messages of one queue batch). It owns its bytes, so it can
/// never run with another payload's findings.
pub struct Prepared {
    pub(crate) payload: Vec<u8>,
    pub(crate) payload_sha256: String,
    /// Its messages, or what a panic in ingest said (a bug: see [`Pipeline::prepare`]).
    pub(crate) items: Result<Vec<Ingested>, String>,
    /// The read group of each message (by index) that shares one.
    pub(crate) groups: HashMap<usize, Arc<ReadGroup>>,
}

impl Pipeline {
    /// Ingests `payloads` (the messages of one queue batch, or one payload) and groups the
    /// findings of all of them into shared read sessions: a queue delivers one finding a
    /// message, so grouping within a message alone would give every finding a session of its
    /// own. Grouping is by account, region and fixer, in the order given.
    ///
    /// This runs where the batch is received (the daemon's loop, the Lambda batch's collector),
    /// outside the message tasks that contain a panic to one message. So a panic in ingest (a
    /// bug no payload may trigger, which the fuzz tests look for) is caught here and raised
    /// again when that payload runs, inside its task: that message is retried, as before, and
    /// the others run without sharing with it.
    pub fn prepare(&self, payloads: Vec<Vec<u8>>) -> Vec<Prepared> {
        let mut prepared: Vec<Prepared> = payloads.into_iter().map(|p| self.ingested(p)).collect();
        self.group(&mut prepared);
        prepared
    }

    /// [`Pipeline::prepare`] for one payload on its own (`salve process`, a dead-letter
    /// replay): its findings share read sessions only with each other.
    pub fn prepare_one(&self, payload: Vec<u8>) -> Prepared {
        let mut one = [self.ingested(payload)];
        self.group(&mut one);
        let [prepared] = one;
        prepared
    }

    /// A payload ingested, not yet grouped; a panic in ingest is kept to be raised in its task.
    fn ingested(&self, payload: Vec<u8>) -> Prepared {
        Prepared {
            payload_sha256: sha256_hex(&payload),
            items: std::panic::catch_unwind(AssertUnwindSafe(|| {
                ingest::ingest(&payload, &self.config.ingest)
            }))
            .map_err(|panic| panic_text(panic.as_ref())),
            payload,
            groups: HashMap::new(),
        }
    }

    /// Gives each of `prepared` the read groups its findings share with the others'.
    fn group(&self, prepared: &mut [Prepared]) {
        // Named for the whole batch: one payload alone keeps the name it always had.
        let seed = match &*prepared {
            [one] => one.payload_sha256.clone(),
            all => {
                let mut h = Sha256::new();
                for p in all {
                    h.update(p.payload_sha256.as_bytes());
                }
                hex(&h.finalize())
            }
        };
        let items: Vec<&[Ingested]> = prepared
            .iter()
            .map(|p| p.items.as_deref().unwrap_or_default())
            .collect();
        let grouped =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.read_groups(&seed, &items)));
        drop(items);
        match grouped {
            Ok(groups) => {
                for (p, groups) in prepared.iter_mut().zip(groups) {
                    p.groups = groups;
                }
            }
            // Every finding then reads through a session of its own, as a lone finding does.
            Err(panic) => tracing::error!(
                "grouping a batch's reads failed ({}); each finding reads through its own session",
                panic_text(panic.as_ref())
            ),
        }
    }

    /// The read group of each message (by payload, then index) that shares one; a finding
    /// alone in its account, region and fixer gets its own session as before.
    fn read_groups(
        &self,
        seed: &str,
        payloads: &[&[Ingested]],
    ) -> Vec<HashMap<usize, Arc<ReadGroup>>> {
        let policy = &self.config.policy;
        let mode = self.config.tag_read;
        let mut by_fixer: HashMap<SharedBy<'_>, (_, Vec<Member<'_>>)> = HashMap::new();
        for (at, items) in payloads.iter().enumerate() {
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
                    .push(((at, index), &r.arn));
            }
        }
        let mut keys: Vec<_> = by_fixer.keys().copied().collect();
        keys.sort_unstable();
        let mut groups = vec![HashMap::new(); payloads.len()];
        let mut n = 0;
        for key in keys {
            let (fixer, members) = &by_fixer[&key];
            // The chunk being filled: its messages, and its distinct resources.
            let (mut places, mut arns): (Vec<(usize, usize)>, Vec<&str>) = (Vec::new(), Vec::new());
            // Two findings make a group, even about one resource (two sources, or two controls
            // one fixer handles): they run one after another, and each still reads fresh, since
            // the read cache is the finding's, not the session's.
            let mut flush = |places: &mut Vec<(usize, usize)>, arns: &mut Vec<&str>| {
                if places.len() > 1 {
                    let group = Arc::new(ReadGroup {
                        id: format!("read-{}-{n}", &seed[..12.min(seed.len())]),
                        arns: arns.iter().map(|a| a.to_string()).collect(),
                        policy: group_read_policy(fixer, arns, mode),
                        tags: tokio::sync::OnceCell::new(),
                    });
                    n += 1;
                    for &(at, index) in places.iter() {
                        groups[at].insert(index, group.clone());
                    }
                }
                places.clear();
                arns.clear();
            };
            // The chunk's policy length, measured once it lists two ARNs (`pair`); from there
            // each ARN adds what it adds, so the policy is not rebuilt for every finding.
            let (mut chars, mut pair) = (0, None::<SessionPolicy>);
            for &(place, arn) in members {
                if !arns.contains(&arn) {
                    let with = match (arns.as_slice(), &pair) {
                        ([], _) => 0,
                        ([first], _) => {
                            let two = group_read_policy(fixer, &[first, arn], mode);
                            let len = two.json().len();
                            pair = Some(two);
                            len
                        }
                        (_, Some(two)) => chars + two.chars_added_by(arn),
                        (more, None) => group_read_policy(fixer, more, mode).json().len(),
                    };
                    if !arns.is_empty() && with > MAX_SESSION_POLICY_CHARS {
                        flush(&mut places, &mut arns);
                        (chars, pair) = (0, None);
                    } else {
                        chars = with;
                    }
                    arns.push(arn);
                }
                places.push(place);
            }
            flush(&mut places, &mut arns);
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
