//! A fixer's exports, whichever contract version it was built against. The runtime calls these;
//! each version converts between its generated types and the host's [`Plan`] and [`Outcome`].

use wasmtime::Store;

use crate::bindings::salve::fixer::types as v0_1;
use crate::{BoxFuture, FixerCore, FixerCorePre, FixerError, Outcome, Plan};

type Call<'a, R> = BoxFuture<'a, wasmtime::Result<Result<R, FixerError>>>;

/// A loaded fixer, ready to be instantiated in a fresh store.
pub trait FixerPre<T: 'static>: Send + Sync {
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<T>,
    ) -> BoxFuture<'a, wasmtime::Result<Box<dyn FixerInstance<T>>>>;
}

/// One instance's `check`, `plan` and `apply`.
pub trait FixerInstance<T: 'static>: Send + Sync {
    fn check<'a>(&'a self, store: &'a mut Store<T>) -> Call<'a, bool>;
    fn plan<'a>(&'a self, store: &'a mut Store<T>) -> Call<'a, Plan>;
    fn apply<'a>(&'a self, store: &'a mut Store<T>, plan: &'a Plan) -> Call<'a, Outcome>;
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
}

/// Implements [`FixerPre`] (as `V0_2Pre<T>`) for a kind's contract 0.2.0 world. The kind names
/// its generated world, the accessor and module (`typed`) of its `fixer` export, and two
/// conversions of one call: `host_call` from its typed call to the capability function and the
/// arguments as JSON, `guest_call` back. The plans, and the calls themselves, are the same for
/// every kind.
#[macro_export]
macro_rules! fixer_exports_v0_2 {
    (
        world: $world:ty,
        world_pre: $world_pre:ident,
        accessor: $accessor:ident,
        typed: $typed:ident,
        host_call: $host_call:ident,
        guest_call: $guest_call:ident $(,)?
    ) => {
        /// A loaded fixer built against contract 0.2.0.
        pub struct V0_2Pre<T: 'static>(pub $world_pre<T>);

        impl<T: Send + 'static> $crate::FixerPre<T> for V0_2Pre<T> {
            fn instantiate<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Box<dyn $crate::FixerInstance<T>>>> {
                Box::pin(async move {
                    let bindings = self.0.instantiate_async(store).await?;
                    Ok(Box::new(V0_2Instance(bindings)) as Box<dyn $crate::FixerInstance<T>>)
                })
            }
        }

        struct V0_2Instance($world);

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
                Box::pin(async move { self.0.$accessor().call_check(store).await })
            }

            fn plan<'a>(
                &'a self,
                store: &'a mut wasmtime::Store<T>,
            ) -> $crate::BoxFuture<'a, wasmtime::Result<Result<$crate::Plan, $crate::FixerError>>>
            {
                Box::pin(async move {
                    Ok(self
                        .0
                        .$accessor()
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
                        .0
                        .$accessor()
                        .call_apply(store, &plan)
                        .await?
                        .map(|o| $crate::Outcome {
                            // The host fills these in from the calls its gate let through.
                            applied: Vec::new(),
                            rollback: o.rollback,
                        }))
                })
            }
        }
    };
}
