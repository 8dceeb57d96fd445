//! A fixer's exports, whichever contract version it was built against. The runtime calls these;
//! each version converts between its generated types and the host's [`Plan`] and [`Outcome`].

use wasmtime::Store;

use crate::bindings::salve::fixer::types as v0_1;
pub use crate::v0_2::salve::fixer::iac::{BlockText, Edit, LocatedBlock};
use crate::{BoxFuture, FixerCore, FixerCorePre, FixerError, Outcome, Plan};

type Call<'a, R> = BoxFuture<'a, wasmtime::Result<Result<R, FixerError>>>;

/// A loaded fixer, ready to be instantiated in a fresh store.
pub trait FixerPre<T: 'static>: Send + Sync {
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<T>,
    ) -> BoxFuture<'a, wasmtime::Result<Box<dyn FixerInstance<T>>>>;
}

/// One instance's `check`, `plan` and `apply`, and its optional `rollback`.
pub trait FixerInstance<T: 'static>: Send + Sync {
    fn check<'a>(&'a self, store: &'a mut Store<T>) -> Call<'a, bool>;
    fn plan<'a>(&'a self, store: &'a mut Store<T>) -> Call<'a, Plan>;
    fn apply<'a>(&'a self, store: &'a mut Store<T>, plan: &'a Plan) -> Call<'a, Outcome>;
    /// Whether the component exports `rollback` at all.
    fn exports_rollback(&self) -> bool;
    /// The calls that undo a fix whose outcome returned `rollback`; `None` when the fixer
    /// declares no rollback (or does not export it).
    fn plan_rollback<'a>(
        &'a self,
        store: &'a mut Store<T>,
        rollback: &'a str,
        force: bool,
    ) -> Call<'a, Option<Plan>>;
    /// Whether the component exports `terraform` at all.
    fn exports_terraform(&self) -> bool;
    /// The fix as edits of the located Terraform blocks; `None` when the component does not
    /// export `terraform`.
    fn terraform_edits<'a>(
        &'a self,
        store: &'a mut Store<T>,
        blocks: &'a [LocatedBlock],
    ) -> Call<'a, Option<Vec<Edit>>>;
}

/// A fixer built against contract 0.1.0: its plan names IAM actions, not calls.
pub struct V0_1Pre<T: 'static>(pub FixerCorePre<T>);

impl<T: Send + 'static> FixerPre<T> for V0_1Pre<T> {
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<T>,
    ) -> BoxFuture<'a, wasmtime::Result<Box<dyn FixerInstance<T>>>> {
        Box::pin(async move {
            let bindings = self.0.instantiate_async(store).await?;
            Ok(Box::new(V0_1(bindings)) as Box<dyn FixerInstance<T>>)
        })
    }
}

struct V0_1(FixerCore);

impl<T: Send + 'static> FixerInstance<T> for V0_1 {
    fn check<'a>(&'a self, store: &'a mut Store<T>) -> Call<'a, bool> {
        Box::pin(async move { self.0.salve_fixer_fixer().call_check(store).await })
    }

    fn plan<'a>(&'a self, store: &'a mut Store<T>) -> Call<'a, Plan> {
        Box::pin(async move {
            Ok(self
                .0
                .salve_fixer_fixer()
                .call_plan(store)
                .await?
                .map(Plan::from))
        })
    }

    fn apply<'a>(&'a self, store: &'a mut Store<T>, plan: &'a Plan) -> Call<'a, Outcome> {
        Box::pin(async move {
            let plan = v0_1::Plan::from(plan);
            Ok(self
                .0
                .salve_fixer_fixer()
                .call_apply(store, &plan)
                .await?
                .map(Outcome::from))
        })
    }

    fn exports_rollback(&self) -> bool {
        false
    }

    // Contract 0.1.0 has no rollback export.
    fn plan_rollback<'a>(
        &'a self,
        _store: &'a mut Store<T>,
        _rollback: &'a str,
        _force: bool,
    ) -> Call<'a, Option<Plan>> {
        Box::pin(async { Ok(Ok(None)) })
    }

    fn exports_terraform(&self) -> bool {
        false
    }

    fn terraform_edits<'a>(
        &'a self,
        _store: &'a mut Store<T>,
        _blocks: &'a [LocatedBlock],
    ) -> Call<'a, Option<Vec<Edit>>> {
        Box::pin(async { Ok(Ok(None)) })
    }
}

/// Implements [`FixerPre`] (as `V0_2Pre<T>`) for a kind's contract 0.2.0 world. The kind names
/// the generated modules of its `fixer` export (`typed`) and of its optional `rollback` export,
/// and two conversions of one call: `host_call` from its typed call to the capability function
/// and the arguments as JSON, `guest_call` back. The plans, and the calls themselves, are the
/// same for every kind.
#[macro_export]
macro_rules! fixer_exports_v0_2 {
    (
        typed: $typed:ident,
        rollback: $rollback:ident,
        terraform: $terraform:ident,
        host_call: $host_call:ident,
        guest_call: $guest_call:ident $(,)?
    ) => {
        /// A loaded fixer built against contract 0.2.0. The exports are looked up per
        /// interface, not per world, because `rollback` is optional: a component without it
        /// loads and declares no rollback.
        pub struct V0_2Pre<T: 'static> {
            pre: wasmtime::component::InstancePre<T>,
            fixer: $typed::GuestIndices,
            rollback: Option<$rollback::GuestIndices>,
            terraform: Option<$terraform::GuestIndices>,
        }

        impl<T: 'static> V0_2Pre<T> {
            /// Fails when the component does not export the kind's `fixer`.
            pub fn new(pre: wasmtime::component::InstancePre<T>) -> wasmtime::Result<Self> {
                let fixer = $typed::GuestIndices::new(&pre)?;
                let rollback = $rollback::GuestIndices::new(&pre).ok();
                let terraform = $terraform::GuestIndices::new(&pre).ok();
                Ok(V0_2Pre {
                    pre,
                    fixer,
                    rollback,
                    terraform,
                })
            }
        }

        impl<T: Send + 'static> $crate::FixerPre<T> for V0_2Pre<T> {
            fn instantiate<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Box<dyn $crate::FixerInstance<T>>>> {
                Box::pin(async move {
                    let instance = self.pre.instantiate_async(&mut *store).await?;
                    let fixer = self.fixer.load(&mut *store, &instance)?;
                    Ok(Box::new(V0_2Instance {
                        fixer,
                        instance,
                        rollback: self.rollback.clone(),
                        terraform: self.terraform.clone(),
                    }) as Box<dyn $crate::FixerInstance<T>>)
                })
            }
        }

        struct V0_2Instance {
            fixer: $typed::Guest,
            instance: wasmtime::component::Instance,
            // Loaded (and type-checked) only when a rollback is planned, so a fix pays nothing
            // for it.
            rollback: Option<$rollback::GuestIndices>,
            terraform: Option<$terraform::GuestIndices>,
        }

        mod v0_2_plans {
            use super::$typed as typed;

            pub(super) fn to_host(p: typed::FixPlan) -> $crate::Plan {
                $crate::Plan {
                    changes: p
                        .calls
                        .into_iter()
                        .map(|c| {
                            let (function, args) = super::$host_call(c.call);
                            $crate::Change::typed(function, args, c.description)
                        })
                        .collect(),
                    summary: p.summary,
                }
            }

            pub(super) fn to_guest(p: &$crate::Plan) -> Result<typed::FixPlan, String> {
                let calls = p
                    .changes
                    .iter()
                    .map(|c| {
                        let call = c.call.as_ref().ok_or_else(|| {
                            format!("change {:?} has no typed call", c.description)
                        })?;
                        Ok(typed::PlannedCall {
                            call: super::$guest_call(call)?,
                            description: c.description.clone(),
                        })
                    })
                    .collect::<Result<_, String>>()?;
                Ok(typed::FixPlan {
                    calls,
                    summary: p.summary.clone(),
                })
            }
        }

        impl<T: Send + 'static> $crate::FixerInstance<T> for V0_2Instance {
            fn check<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<bool, $crate::FixerError>>> {
                Box::pin(async move { self.fixer.call_check(store).await })
            }

            fn plan<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<$crate::Plan, $crate::FixerError>>>
            {
                Box::pin(async move {
                    Ok(self
                        .fixer
                        .call_plan(store)
                        .await?
                        .map(v0_2_plans::to_host))
                })
            }

            fn apply<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
                plan: &'a $crate::Plan,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<$crate::Outcome, $crate::FixerError>>>
            {
                Box::pin(async move {
                    let plan = match v0_2_plans::to_guest(plan) {
                        Ok(plan) => plan,
                        Err(e) => return Ok(Err($crate::FixerError::InvalidInput(e))),
                    };
                    Ok(self
                        .fixer
                        .call_apply(store, &plan)
                        .await?
                        .map(|o| $crate::Outcome {
                            // The host fills these in from the calls its gate let through.
                            applied: Vec::new(),
                            rollback: o.rollback,
                        }))
                })
            }

            fn exports_rollback(&self) -> bool {
                self.rollback.is_some()
            }

            fn plan_rollback<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
                rollback: &'a str,
                force: bool,
            ) -> $crate::BoxFuture<
                'a,
                wasmtime::Result<Result<Option<$crate::Plan>, $crate::FixerError>>,
            > {
                Box::pin(async move {
                    let Some(indices) = &self.rollback else {
                        return Ok(Ok(None));
                    };
                    let guest = indices.load(&mut *store, &self.instance)?;
                    Ok(guest
                        .call_plan_rollback(store, rollback, force)
                        .await?
                        .map(|p| p.map(v0_2_plans::to_host)))
                })
            }

            $crate::fixer_exports_v0_2_terraform!();
        }
    };
}

/// [`FixerPre`] (as `V0_2Pre<T>`) for an IaC-only kind's contract 0.2.0 world, whose `fixer`
/// exports only `check` (`typed`) and whose optional `terraform` export edits the code. Its plan
/// is always empty, with `reason` (why nothing live can fix the kind) as the summary, and its
/// `apply` is refused: such a fixer has no write to make.
#[macro_export]
macro_rules! fixer_exports_v0_2_iac_only {
    (
        typed: $typed:ident,
        terraform: $terraform:ident,
        reason: $reason:expr $(,)?
    ) => {
        /// A loaded IaC-only fixer built against contract 0.2.0.
        pub struct V0_2Pre<T: 'static> {
            pre: wasmtime::component::InstancePre<T>,
            fixer: $typed::GuestIndices,
            terraform: Option<$terraform::GuestIndices>,
        }

        impl<T: 'static> V0_2Pre<T> {
            /// Fails when the component does not export the kind's `fixer`.
            pub fn new(pre: wasmtime::component::InstancePre<T>) -> wasmtime::Result<Self> {
                let fixer = $typed::GuestIndices::new(&pre)?;
                let terraform = $terraform::GuestIndices::new(&pre).ok();
                Ok(V0_2Pre {
                    pre,
                    fixer,
                    terraform,
                })
            }
        }

        impl<T: Send + 'static> $crate::FixerPre<T> for V0_2Pre<T> {
            fn instantiate<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Box<dyn $crate::FixerInstance<T>>>> {
                Box::pin(async move {
                    let instance = self.pre.instantiate_async(&mut *store).await?;
                    let fixer = self.fixer.load(&mut *store, &instance)?;
                    Ok(Box::new(V0_2Instance {
                        fixer,
                        instance,
                        terraform: self.terraform.clone(),
                    }) as Box<dyn $crate::FixerInstance<T>>)
                })
            }
        }

        struct V0_2Instance {
            fixer: $typed::Guest,
            instance: wasmtime::component::Instance,
            terraform: Option<$terraform::GuestIndices>,
        }

        impl<T: Send + 'static> $crate::FixerInstance<T> for V0_2Instance {
            fn check<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<bool, $crate::FixerError>>> {
                Box::pin(async move { self.fixer.call_check(store).await })
            }

            fn plan<'a>(
                &'a self,
                _store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<$crate::Plan, $crate::FixerError>>>
            {
                Box::pin(async move {
                    Ok(Ok($crate::Plan {
                        changes: Vec::new(),
                        summary: format!("no live change: {}", $reason),
                    }))
                })
            }

            fn apply<'a>(
                &'a self,
                _store: &'a mut wasmtime::Store<T>,
                _plan: &'a $crate::Plan,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<$crate::Outcome, $crate::FixerError>>>
            {
                Box::pin(async move {
                    Ok(Err($crate::FixerError::Denied(format!(
                        "this kind has no live change: {}",
                        $reason
                    ))))
                })
            }

            fn exports_rollback(&self) -> bool {
                false
            }

            fn plan_rollback<'a>(
                &'a self,
                _store: &'a mut wasmtime::Store<T>,
                _rollback: &'a str,
                _force: bool,
            ) -> $crate::BoxFuture<
                'a,
                wasmtime::Result<Result<Option<$crate::Plan>, $crate::FixerError>>,
            > {
                Box::pin(async { Ok(Ok(None)) })
            }

            $crate::fixer_exports_v0_2_terraform!();
        }
    };
}

/// The `terraform` methods of a contract 0.2.0 [`FixerInstance`], the same for every kind: the
/// instance holds the optional export's indices (`terraform`) and its `instance`.
#[doc(hidden)]
#[macro_export]
macro_rules! fixer_exports_v0_2_terraform {
    () => {
        fn exports_terraform(&self) -> bool {
            self.terraform.is_some()
        }

        fn terraform_edits<'a>(
            &'a self,
            store: &'a mut wasmtime::Store<T>,
            blocks: &'a [$crate::LocatedBlock],
        ) -> $crate::BoxFuture<
            'a,
            wasmtime::Result<Result<Option<Vec<$crate::Edit>>, $crate::FixerError>>,
        > {
            Box::pin(async move {
                let Some(indices) = &self.terraform else {
                    return Ok(Ok(None));
                };
                let guest = indices.load(&mut *store, &self.instance)?;
                guest.call_edits(store, blocks).await
            })
        }
    };
}
