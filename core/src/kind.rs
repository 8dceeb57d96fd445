//! What a resource kind implements on the host side, and the binding of a kind's backend to one
//! finding's resource.

use std::any::Any;
use std::sync::Arc;

use aws_types::SdkConfig;
use salve_contract::{Arn, KindSpec};

use crate::{AwsError, BoxFuture, Capabilities, FixerPre, PlannedCall, TagRead};
use salve_contract::ContractVersion;

/// A kind's backend, bound to one resource through one session (or held in memory). The host
/// reads tags through it; the kind's capability functions reach their own backend type through
/// [`Capabilities::backend`].
pub trait KindBackend: Send + Sync + 'static {
    fn kind(&self) -> &'static KindSpec;
    /// The resource's own tags, for the eligibility metadata. The host reads them during the
    /// plan phase; fixers cannot.
    fn read_tags(&self) -> BoxFuture<'_, Result<TagRead, AwsError>>;
    fn as_any(&self) -> &dyn Any;
}

/// A backend bound to a finding's resource.
pub type Binding = Arc<dyn KindBackend>;

/// The resource a session's backend is bound to.
#[derive(Debug, Clone, Copy)]
pub struct BoundResource<'a> {
    /// The short name or ID, as the kind's [`KindHost::resource_name`] returned it.
    pub name: &'a str,
    pub account_id: &'a str,
    pub region: &'a str,
}

/// Everything the host needs from a kind beyond its [`KindSpec`]. The host's registry holds one
/// entry per kind; nothing outside a kind's folder matches on its type name.
pub trait KindHost: 'static {
    const SPEC: &'static KindSpec;

    /// Links the kind's capability interface of contract `version`. Only the kind of the fixer
    /// being loaded is linked, so a fixer that imports another kind's interface cannot be
    /// instantiated.
    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        version: ContractVersion,
        get: fn(&mut T) -> &mut Capabilities,
    ) -> anyhow::Result<()>;

    /// The kind's contract 0.2.0 `fixer` export of a linked component.
    fn fixer_pre_v0_2<T: Send + 'static>(
        pre: wasmtime::component::InstancePre<T>,
    ) -> wasmtime::Result<Box<dyn FixerPre<T>>>;

    /// Reads the resource through `binding` and says whether `call`'s declared outcome holds.
    /// The host asks this after apply, before the fixer's own `check()`: evidence comes from
    /// the resource, not from the fixer.
    fn read_back<'a>(
        call: &'a PlannedCall,
        binding: &'a Binding,
    ) -> BoxFuture<'a, Result<ReadBack, AwsError>>;

    /// The real backend, reaching the resource through `session` (an assumed-role session).
    /// `path_style` is set when every call goes to one endpoint override (a local stand-in).
    fn aws_backend(session: &SdkConfig, resource: BoundResource<'_>, path_style: bool) -> Binding;

    /// Checks that `arn` names a resource of this kind in `account` and `region`, and returns
    /// its short name (bucket name, group ID). The error says what such an ARN looks like.
    fn resource_name(arn: &Arn<'_>, account: &str, region: &str) -> Result<String, String>;

    /// The one spelling of the resource's ARN, so two spellings are one resource.
    fn canonical_arn(arn: &Arn<'_>, name: &str, account: &str, region: &str) -> String;

    /// The ARN for a bare ID (`sg-…`, a bucket name) that a source sent instead of an ARN, when
    /// the ID alone says it is this kind (`typed` is set when the source named the kind).
    fn arn_for_id(id: &str, typed: bool, account: &str, region: &str) -> Option<String>;

    /// Whether `arn` itself names a resource of this kind.
    fn names_arn(arn: &Arn<'_>) -> bool;
}

/// What the host read back for one planned call after apply.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadBack {
    /// Whether the call's declared outcome holds now.
    pub holds: bool,
    /// The state the planned call declares, as JSON.
    pub expected: serde_json::Value,
    /// The state the host read, as JSON.
    pub actual: serde_json::Value,
    /// The read itself, as the kind's read capability would have answered it, so the fixer's
    /// `verify` can be answered by it. Not recorded: `actual` is.
    #[serde(skip)]
    pub observed: Option<crate::ObservedRead>,
}

/// Declares a kind's binding: the newtype the store holds (`$binding`), `bind`, and its
/// [`KindBackend`] implementation, for a backend trait with a `tags()` read.
#[macro_export]
macro_rules! kind_binding {
    ($binding:ident, $backend:path, $spec:expr) => {
        /// The kind's backend as the store holds it.
        #[derive(Clone)]
        pub struct $binding(pub std::sync::Arc<dyn $backend>);

        /// Binds a backend (AWS or in memory) as this kind's.
        pub fn bind(backend: std::sync::Arc<dyn $backend>) -> $crate::Binding {
            std::sync::Arc::new($binding(backend))
        }

        /// The kind's own backend of `binding`, which the host read-back is handed.
        fn bound(
            binding: &$crate::Binding,
        ) -> Result<std::sync::Arc<dyn $backend>, $crate::AwsError> {
            binding
                .as_any()
                .downcast_ref::<$binding>()
                .map(|b| b.0.clone())
                .ok_or_else(|| {
                    $crate::internal_error(&format!(
                        "the binding is not a {} backend",
                        $spec.interface
                    ))
                })
        }

        impl $crate::KindBackend for $binding {
            fn kind(&self) -> &'static $crate::contract::KindSpec {
                &$spec
            }

            fn read_tags(
                &self,
            ) -> $crate::BoxFuture<'_, Result<$crate::TagRead, $crate::AwsError>> {
                self.0.tags()
            }

            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
    };
}

/// A kind's security-critical attributes by Terraform attribute name, normalised so that what a
/// state declares and what AWS reports compare with `==`: rules sorted, descriptions and tags
/// left out (they are not security drift).
pub type SecurityAttributes = std::collections::BTreeMap<String, serde_json::Value>;

/// One resource instance as a Terraform state records it, with the instances of the resource
/// types that configure it (`Terraform::configured_by`, e.g. `aws_security_group_rule`).
#[derive(Debug, Clone, Copy)]
pub struct StateInstance<'a> {
    /// The value of the kind's first ID attribute (bucket name, group ID, region).
    pub id: &'a str,
    pub attributes: &'a serde_json::Map<String, serde_json::Value>,
    pub configured_by: &'a [(&'a str, &'a serde_json::Map<String, serde_json::Value>)],
    /// The account and region the workspace deploys to.
    pub account_id: &'a str,
    pub region: &'a str,
}

/// What a state declares about one resource, as drift compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct Declared {
    pub arn: String,
    /// Only the attributes the state sets: one it leaves unset is not compared.
    pub attributes: SecurityAttributes,
}

/// A kind's side of drift detection: its security-critical attributes, from a Terraform state
/// and from AWS. Every kind with a `terraform` spec implements it.
pub trait KindDrift: 'static {
    /// The security-critical attributes `instance` declares; the error names the attribute
    /// that could not be read.
    fn declared(instance: StateInstance<'_>) -> Result<Declared, String>;

    /// The live security-critical attributes of each resource of `read.ids` (see [`LiveOne`]),
    /// read in as few calls as the API allows (one describe for many groups), or,
    /// where it reads one resource a call, `read.concurrency` at a time. Returns one entry per
    /// ID, in order.
    fn live(read: LiveRead<'_>) -> BoxFuture<'_, Result<Vec<LiveOne>, AwsError>>;
}

/// One resource as [`KindDrift::live`] read it: its attributes, `None` when it does not exist,
/// or why it alone could not be read (a bucket whose policy denies the read), so the other
/// resources of the read are still compared. An `Err` of the whole read fails them all.
pub type LiveOne = Result<Option<SecurityAttributes>, AwsError>;

/// What a kind's [`KindDrift::live`] reads, and how.
#[derive(Debug, Clone, Copy)]
pub struct LiveRead<'a> {
    /// The workspace's read session.
    pub session: &'a SdkConfig,
    /// The session's account.
    pub account_id: &'a str,
    pub ids: &'a [String],
    /// S3 by path rather than virtual host (an endpoint override such as moto's).
    pub path_style: bool,
    /// How many single-resource reads may be in flight at once (`[drift] concurrency`).
    pub concurrency: usize,
}

/// Whether an AWS error code says the resource does not exist.
pub fn is_not_found(code: &str) -> bool {
    code.ends_with("NotFound")
        || code.ends_with("NotFoundFault")
        || code == "NoSuchBucket"
        || code == "ResourceNotFoundException"
}

/// Reads `ids` `batch` at a time through `read`, which answers the resources of one batch that
/// exist, with their attributes; an ID no batch answered is a resource that does not exist.
pub async fn read_in_batches<F, Fut>(
    ids: &[String],
    batch: usize,
    mut read: F,
) -> Result<Vec<LiveOne>, AwsError>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, SecurityAttributes)>, AwsError>>,
{
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(batch.max(1)) {
        found.extend(read(chunk.to_vec()).await?);
    }
    Ok(ids.iter().map(|id| Ok(found.remove(id))).collect())
}

/// Reads `ids` one resource a call, up to `concurrency` at once, for an API without a batch
/// read (S3). The answers keep `ids`' order, and a read that fails fails only its resource.
pub async fn read_each<F, Fut>(ids: &[String], concurrency: usize, read: F) -> Vec<LiveOne>
where
    F: Fn(&String) -> Fut,
    Fut: std::future::Future<Output = LiveOne>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(ids)
        .map(read)
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// The body of a kind's [`KindDrift::live`] for an API that describes by filter, a page at a
/// time (EC2, RDS): `ids` are read `batch` at a time, each batch as one `$filter` named `$name`,
/// and every resource `$describe` returns in `$items` becomes `$id` (an `Option<&str>`) and
/// `$live` (its `SecurityAttributes`), with `$item` bound to it. A filter, not an ID list,
/// because one deleted resource would fail an ID list's whole batch; a missing one is simply
/// not answered.
#[macro_export]
macro_rules! live_by_filter {
    (
        $client:expr, $ids:expr, $batch:expr,
        $filter:ty, $name:literal, $describe:ident, $items:ident,
        |$item:ident| ($id:expr, $live:expr) $(,)?
    ) => {{
        let client = $client;
        Box::pin($crate::read_in_batches($ids, $batch, move |chunk| {
            let client = client.clone();
            async move {
                let filter = <$filter>::builder()
                    .name($name)
                    .set_values(Some(chunk))
                    .build();
                let mut pages = client.$describe().filters(filter).into_paginator().send();
                let mut found = Vec::new();
                while let Some(page) = pages.next().await {
                    for $item in page.map_err($crate::to_aws_error)?.$items() {
                        let live = $live;
                        found.extend($id.map(|id| (id.to_string(), live)));
                    }
                }
                Ok(found)
            }
        }))
    }};
}

/// The two [`KindHost`] methods that only name a kind's generated bindings, written inside the
/// kind's `impl KindHost`: `add_to_linker`, which links the capability interface of the
/// fixer's contract version, and `fixer_pre_v0_2`, which loads the `V0_2Pre` that
/// [`fixer_exports_v0_2!`](crate::fixer_exports_v0_2) declares. Each version names the module
/// bindgen generated for the kind's capability interface. A kind first in contract 0.2.0 names
/// no `v0_1`, and a 0.1.0 fixer of it fails to link, naming the kind.
#[macro_export]
macro_rules! kind_host_bindings {
    ($(v0_1: $($v0_1:ident)::+,)? v0_2: $($v0_2:ident)::+ $(,)?) => {
        fn add_to_linker<T: Send + 'static>(
            linker: &mut wasmtime::component::Linker<T>,
            version: $crate::contract::ContractVersion,
            get: fn(&mut T) -> &mut $crate::Capabilities,
        ) -> anyhow::Result<()> {
            match version {
                $crate::contract::ContractVersion::V0_1 => {
                    $crate::kind_host_bindings!(@v0_1 [$($($v0_1)::+)?] linker, get)
                }
                $crate::contract::ContractVersion::V0_2 => $($v0_2)::+::add_to_linker::<
                    T,
                    wasmtime::component::HasSelf<$crate::Capabilities>,
                >(linker, get)?,
            }
            Ok(())
        }

        fn fixer_pre_v0_2<T: Send + 'static>(
            pre: wasmtime::component::InstancePre<T>,
        ) -> wasmtime::Result<Box<dyn $crate::FixerPre<T>>> {
            Ok(Box::new(V0_2Pre::new(pre)?))
        }
    };
    (@v0_1 [] $linker:ident, $get:ident) => {
        anyhow::bail!("{} has no contract 0.1.0 interface", Self::SPEC.name)
    };
    (@v0_1 [$($v0_1:ident)::+] $linker:ident, $get:ident) => {
        $($v0_1)::+::add_to_linker::<T, wasmtime::component::HasSelf<$crate::Capabilities>>(
            $linker, $get,
        )?
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    /// Later reads finish first here, yet the answers keep the IDs' order, and no more than
    /// `concurrency` reads are ever in flight.
    #[tokio::test]
    async fn read_each_keeps_the_order_and_the_bound() {
        let names = ids(&["a", "b", "c", "d", "e"]);
        let (in_flight, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let read = |id: &String| {
            let (id, in_flight, most) = (id.clone(), &in_flight, &most);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                // "a" yields five times and "e" once, so later reads finish first.
                for _ in 0..(5 - (id.as_bytes()[0] - b'a')) {
                    tokio::task::yield_now().await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok((id != "c").then(|| SecurityAttributes::from([(id, serde_json::json!(1))])))
            }
        };
        let out = read_each(&names, 2, read).await;
        let keys: Vec<Option<String>> = out
            .iter()
            .map(|a| {
                let a = a.as_ref().expect("every read succeeds");
                a.as_ref().and_then(|a| a.keys().next().cloned())
            })
            .collect();
        let expected = ["a", "b", "", "d", "e"].map(|k| (!k.is_empty()).then(|| k.to_string()));
        assert_eq!(
            keys, expected,
            "one answer per ID, in order; c does not exist"
        );
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_read_fails_only_its_resource() {
        let names = ids(&["a", "denied", "b"]);
        let out = read_each(&names, 0, |id: &String| {
            let id = id.clone();
            async move {
                if id == "denied" {
                    return Err(crate::aws_error::not_in_response("AccessDenied", &id));
                }
                Ok(Some(SecurityAttributes::new()))
            }
        })
        .await;
        let codes: Vec<Option<String>> = out
            .iter()
            .map(|r| r.as_ref().err().map(|e| e.code.clone()))
            .collect();
        assert_eq!(codes, [None, Some("AccessDenied".into()), None]);
    }
}
