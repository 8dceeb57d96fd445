//! In-memory binders for benchmarks and offline tests: the capability code without AWS.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use salve_kind_s3_bucket::host::InMemoryS3Bucket;

use crate::capabilities::{Binding, BoxFuture};
use crate::credentials::{AssumeRoleFailure, SessionPolicy};
use crate::finding::Finding;
use crate::pipeline::{BackendBinder, SessionFor};

/// Binds each finding to its own in-memory bucket with no public access block, the same bucket
/// for its read and write sessions: many findings at once, each with a fix to make.
#[derive(Default)]
pub struct BucketPerFinding(Mutex<HashMap<String, Arc<InMemoryS3Bucket>>>);

impl BackendBinder for BucketPerFinding {
    fn bind<'a>(
        &'a self,
        finding: &'a Finding,
        _policy: &'a SessionPolicy,
        _on_behalf: SessionFor<'a>,
    ) -> BoxFuture<'a, Result<Binding, AssumeRoleFailure>> {
        let bucket = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(finding.id.clone())
            .or_insert_with(|| Arc::new(InMemoryS3Bucket::with(None)))
            .clone();
        Box::pin(async move { Ok(salve_kind_s3_bucket::host::bind(bucket)) })
    }
}
