//! One finding's read cache: a read the host already made is answered again without AWS.
//!
//! A finding reads the same resource in `check`, `plan` and `apply`, and the host reads it back
//! after the write before `verify` reads it again. Each of those reads would be an AWS round trip
//! for an answer the host already holds. The cache keeps the host's own responses (never
//! anything the fixer wrote), keyed by the function and its full request, and:
//! - forgets everything when the gate lets a write through, since a write can change any read;
//! - forgets everything when the pipeline says so (before `verify`, so `verify` never sees a
//!   state from before the write), and then holds only what the host read back after it.
//!
//! A cached answer is recorded as a call with result `cached`, so the record still shows every
//! read the fixer asked for, and which of them reached AWS.

use serde::de::DeserializeOwned;
use serde_json::Value;

use salve_contract::CapabilityFunction;

/// Responses larger than this (as JSON) are not kept: the cache must not grow a store past
/// what a few reads of one resource need.
const MAX_CACHED_JSON: usize = 64 * 1024;

/// Entries kept at most; a fixer that reads many different things is served by AWS.
const MAX_ENTRIES: usize = 16;

/// One read as the host made it: the function, its full request, and its full response.
#[derive(Debug, Clone)]
pub struct ObservedRead {
    pub function: &'static CapabilityFunction,
    pub request: Option<Value>,
    pub response: Value,
}

impl ObservedRead {
    /// A read without arguments (every kind's state read) and its answer.
    pub fn of<T: serde::Serialize>(
        function: &'static CapabilityFunction,
        answer: &T,
    ) -> Option<ObservedRead> {
        serde_json::to_value(answer)
            .ok()
            .map(|response| ObservedRead {
                function,
                request: None,
                response,
            })
    }
}

impl PartialEq for ObservedRead {
    fn eq(&self, other: &ObservedRead) -> bool {
        same_function(self.function, other.function)
            && self.request == other.request
            && self.response == other.response
    }
}

#[derive(Debug, Default)]
pub(crate) struct ReadCache {
    entries: Vec<ObservedRead>,
}

impl ReadCache {
    /// The cached answer to `function(request)`, as the capability returns it. A response that
    /// no longer fits the type (never expected) is treated as a miss.
    pub(crate) fn answer<T: DeserializeOwned>(
        &self,
        function: &CapabilityFunction,
        request: Option<&Value>,
    ) -> Option<(T, &Value)> {
        let hit = self
            .entries
            .iter()
            .find(|e| same_function(e.function, function) && e.request.as_ref() == request)?;
        let value = T::deserialize(&hit.response).ok()?;
        Some((value, &hit.response))
    }

    pub(crate) fn remember(&mut self, read: ObservedRead) {
        if crate::json_len(&read.response) > MAX_CACHED_JSON {
            return;
        }
        self.entries
            .retain(|e| !(same_function(e.function, read.function) && e.request == read.request));
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.remove(0);
        }
        self.entries.push(read);
    }

    pub(crate) fn forget(&mut self) {
        self.entries.clear();
    }
}

fn same_function(a: &CapabilityFunction, b: &CapabilityFunction) -> bool {
    a.interface == b.interface && a.function == b.function
}

#[cfg(test)]
mod tests {
    use super::*;
    use salve_contract::{Access, ResourceScope};

    static GET: CapabilityFunction = CapabilityFunction {
        interface: "s3-bucket",
        function: "get-public-access-block",
        iam_action: "s3:GetBucketPublicAccessBlock",
        access: Access::Read,
        scope: ResourceScope::FindingResource,
    };
    static DESCRIBE: CapabilityFunction = CapabilityFunction {
        interface: "security-group",
        function: "describe-ingress",
        iam_action: "ec2:DescribeSecurityGroups",
        access: Access::Read,
        scope: ResourceScope::AllResources,
    };

    fn read(
        function: &'static CapabilityFunction,
        request: Option<Value>,
        response: Value,
    ) -> ObservedRead {
        ObservedRead {
            function,
            request,
            response,
        }
    }

    #[test]
    fn answers_only_the_same_function_and_request() {
        let mut cache = ReadCache::default();
        cache.remember(read(&GET, None, serde_json::json!(true)));
        assert_eq!(cache.answer::<bool>(&GET, None).map(|a| a.0), Some(true));
        assert!(cache.answer::<bool>(&DESCRIBE, None).is_none());
        let arg = serde_json::json!({"rule": 100});
        assert!(cache.answer::<bool>(&GET, Some(&arg)).is_none());
        // A response of another shape is a miss, not a wrong answer.
        assert!(cache.answer::<String>(&GET, None).is_none());
    }

    #[test]
    fn forgets_everything_and_replaces_the_same_read() {
        let mut cache = ReadCache::default();
        cache.remember(read(&GET, None, serde_json::json!(false)));
        cache.remember(read(&GET, None, serde_json::json!(true)));
        assert_eq!(cache.entries.len(), 1);
        assert_eq!(cache.answer::<bool>(&GET, None).map(|a| a.0), Some(true));
        cache.forget();
        assert!(cache.answer::<bool>(&GET, None).is_none());
    }

    #[test]
    fn large_responses_are_not_kept() {
        let mut cache = ReadCache::default();
        let big = Value::String("x".repeat(MAX_CACHED_JSON + 1));
        cache.remember(read(&GET, None, big));
        assert!(cache.answer::<String>(&GET, None).is_none());
    }
}
