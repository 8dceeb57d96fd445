//! A resource's tags as the host reads them for eligibility (owner, environment, exception).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;

use crate::AwsError;

/// A resource's tags, key to value.
pub type Tags = BTreeMap<String, String>;

/// Tags as an SDK describes them, `(key, value)`: one without a key is dropped, and a missing
/// value is empty.
pub fn tags_from<'a>(pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Tags {
    pairs
        .into_iter()
        .filter_map(|(key, value)| Some((key?.to_string(), value.unwrap_or_default().to_string())))
        .collect()
}

/// The host's tag read of a finding's resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRead {
    pub tags: Tags,
    /// The tags came with a describe this finding's read session had already made (for the
    /// fixer's `check`), so reading them cost no call of its own.
    pub reused: bool,
}

impl From<Tags> for TagRead {
    fn from(tags: Tags) -> TagRead {
        TagRead {
            tags,
            reused: false,
        }
    }
}

/// The tags of the last describe a backend made. EC2 and RDS return a resource's tags with the
/// resource, so the host's tag read can take them from the describe the fixer's `check` already
/// caused instead of describing the resource again: one call fewer per finding, on APIs that
/// throttle per account.
///
/// What it holds is never older than this finding: a backend is made for one finding (even when
/// its read session is shared by a batch's findings) and never shared, and the host reads tags
/// after `plan` and before any write.
#[derive(Debug, Default)]
pub struct DescribedTags(Mutex<Option<Tags>>);

impl DescribedTags {
    /// Keeps the tags a describe returned, replacing older ones.
    pub fn keep(&self, tags: Tags) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tags);
    }

    fn take(&self) -> Option<Tags> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The resource with ID `id` out of a describe's `items`; its tags are kept for the tag
    /// read. A response without it gets the service's own not-found `code` (`noun id was not in
    /// the response`): a resource deleted since the finding may come back as an empty list
    /// rather than an error, and retries and rollbacks must treat both alike.
    pub fn pick<'a, T: Clone + 'a>(
        &self,
        items: &'a [T],
        id: &str,
        id_of: impl Fn(&'a T) -> Option<&'a str>,
        tags: impl Fn(&T) -> Tags,
        (code, noun): (&str, &str),
    ) -> Result<T, AwsError> {
        let item = items
            .iter()
            .find(|i| id_of(i) == Some(id))
            .cloned()
            .ok_or_else(|| crate::aws_error::not_in_response(code, &format!("{noun} {id}")))?;
        self.keep(tags(&item));
        Ok(item)
    }

    /// The kept tags, used at most once; otherwise the tags `describe` keeps (through
    /// [`pick`](Self::pick)) as it reads the resource now, taken so no later read reuses them.
    pub async fn read_or<T>(
        &self,
        describe: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<TagRead, AwsError> {
        if let Some(tags) = self.take() {
            return Ok(TagRead { tags, reused: true });
        }
        describe.await?;
        self.take()
            .map(TagRead::from)
            .ok_or_else(|| crate::internal_error("the describe kept no tags: it must pick"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_without_a_key_are_dropped_and_missing_values_are_empty() {
        let read = tags_from([
            (Some("owner"), Some("platform")),
            (None, Some("orphan")),
            (Some("salve:exception"), None),
        ]);
        assert_eq!(
            read,
            tags(&[("owner", "platform"), ("salve:exception", "")])
        );
    }

    #[tokio::test]
    async fn pick_finds_the_resource_by_id_and_keeps_only_its_tags() {
        let described = DescribedTags::default();
        let items = [("sg-1", "a"), ("sg-2", "b")];
        let tags_of = |i: &(&str, &str)| tags(&[("owner", i.1)]);
        let found = described.pick(
            &items,
            "sg-2",
            |i| Some(i.0),
            tags_of,
            ("NotFound", "group"),
        );
        assert_eq!(found, Ok(("sg-2", "b")));
        let read = described
            .read_or(async { panic!("the pick kept tags") as Result<(), _> })
            .await;
        assert_eq!(read.map(|r| r.tags), Ok(tags(&[("owner", "b")])));

        let missing = described.pick(
            &items,
            "sg-3",
            |i| Some(i.0),
            tags_of,
            ("NotFound", "group"),
        );
        let err = missing.expect_err("sg-3 is not in the response");
        assert_eq!(err.code, "NotFound");
        assert_eq!(err.message, "group sg-3 was not in the response");
        let fresh = described
            .read_or(async {
                described.keep(Tags::new());
                Ok(())
            })
            .await;
        assert_eq!(fresh.map(|r| r.reused), Ok(false), "a miss keeps nothing");
    }

    #[tokio::test]
    async fn kept_tags_answer_one_read_then_the_resource_is_described_again() {
        let described = DescribedTags::default();
        let fresh = tags(&[("environment", "prod")]);
        let describe = || async {
            described.keep(fresh.clone());
            Ok(())
        };
        let first = described.read_or(describe()).await;
        assert_eq!(first, Ok(TagRead::from(fresh.clone())));

        described.keep(tags(&[("environment", "dev")]));
        described.keep(tags(&[("owner", "platform")]));
        let reused = described
            .read_or(async { panic!("kept tags must answer without a describe") as Result<(), _> })
            .await;
        let expected = TagRead {
            tags: tags(&[("owner", "platform")]),
            reused: true,
        };
        assert_eq!(reused, Ok(expected));
        let again = described.read_or(describe()).await;
        assert_eq!(again, Ok(TagRead::from(fresh.clone())));
    }
}
