//! In-memory backends: the capability code without AWS, for benchmarks and offline tests of the
//! sandbox. They count writes so a test can prove what reached the "resource".

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::s3_bucket::S3BucketBackend;
use super::salve::fixer::s3_bucket::PublicAccessBlock;
use super::salve::fixer::security_group::IngressRule;
use super::security_group::SecurityGroupBackend;
use super::{AwsError, BoxFuture, ResourceBackend, Tags};
use crate::credentials::{AssumeRoleFailure, SessionPolicy};
use crate::finding::Finding;
use crate::pipeline::BackendBinder;

#[derive(Default)]
pub struct InMemoryS3Bucket {
    pub config: Mutex<Option<PublicAccessBlock>>,
    pub writes: AtomicUsize,
    pub tags: Tags,
}

impl InMemoryS3Bucket {
    pub fn with(config: Option<PublicAccessBlock>) -> InMemoryS3Bucket {
        InMemoryS3Bucket {
            config: Mutex::new(config),
            writes: AtomicUsize::new(0),
            tags: Tags::new(),
        }
    }

    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

fn poisoned() -> AwsError {
    AwsError {
        code: "InternalError".into(),
        message: "in-memory backend lock poisoned".into(),
        request_id: None,
        retryable: false,
    }
}

impl S3BucketBackend for InMemoryS3Bucket {
    fn get_public_access_block(
        &self,
    ) -> BoxFuture<'_, Result<Option<PublicAccessBlock>, AwsError>> {
        Box::pin(async move { Ok(*self.config.lock().map_err(|_| poisoned())?) })
    }

    fn put_public_access_block(
        &self,
        config: PublicAccessBlock,
    ) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            *self.config.lock().map_err(|_| poisoned())? = Some(config);
            Ok(())
        })
    }

    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone()) })
    }
}

#[derive(Default)]
pub struct InMemorySecurityGroup {
    pub rules: Mutex<Vec<IngressRule>>,
    pub writes: AtomicUsize,
    pub tags: Tags,
}

impl InMemorySecurityGroup {
    pub fn with(rules: Vec<IngressRule>) -> InMemorySecurityGroup {
        InMemorySecurityGroup {
            rules: Mutex::new(rules),
            writes: AtomicUsize::new(0),
            tags: Tags::new(),
        }
    }
}

fn same_rule(a: &IngressRule, b: &IngressRule) -> bool {
    // EC2 matches revokes on protocol, ports and source; descriptions do not count.
    a.protocol == b.protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.source == b.source
}

impl SecurityGroupBackend for InMemorySecurityGroup {
    fn tags(&self) -> BoxFuture<'_, Result<Tags, AwsError>> {
        Box::pin(async move { Ok(self.tags.clone()) })
    }

    fn describe_ingress(&self) -> BoxFuture<'_, Result<Vec<IngressRule>, AwsError>> {
        Box::pin(async move { Ok(self.rules.lock().map_err(|_| poisoned())?.clone()) })
    }

    fn revoke_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut current = self.rules.lock().map_err(|_| poisoned())?;
            current.retain(|r| !rules.iter().any(|x| same_rule(r, x)));
            Ok(())
        })
    }

    fn authorize_ingress(&self, rules: Vec<IngressRule>) -> BoxFuture<'_, Result<(), AwsError>> {
        Box::pin(async move {
            self.writes.fetch_add(1, Ordering::SeqCst);
            self.rules.lock().map_err(|_| poisoned())?.extend(rules);
            Ok(())
        })
    }
}

/// Binds each finding to its own in-memory bucket with no public access block, the same bucket
/// for its read and write sessions: many findings at once, each with a fix to make.
#[derive(Default)]
pub struct BucketPerFinding(Mutex<HashMap<String, Arc<InMemoryS3Bucket>>>);

impl BackendBinder for BucketPerFinding {
    fn bind<'a>(
        &'a self,
        finding: &'a Finding,
        _policy: &'a SessionPolicy,
    ) -> BoxFuture<'a, Result<ResourceBackend, AssumeRoleFailure>> {
        let bucket = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(finding.id.clone())
            .or_insert_with(|| Arc::new(InMemoryS3Bucket::with(None)))
            .clone();
        Box::pin(async move { Ok(ResourceBackend::S3Bucket(bucket)) })
    }
}
