//! What the store holds for one fixer run: WASI (empty), limits, the capabilities, the captured
//! output and the CPU clock. A leaf module: the kinds' registry links against this type.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::StoreLimits;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::BoundedOutput;
use crate::capabilities::Capabilities;

/// Ticks of the epoch; each one charges the running fixer's CPU clock.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
#[error("CPU time limit of {} ms exceeded", .0.as_millis())]
pub(super) struct CpuLimitExceeded(pub(super) Duration);

/// Guest CPU time of the current phase, measured from the epoch callbacks the guest's own code
/// triggers: while it runs, they come every [`EPOCH_TICK`]; a longer gap means it was not
/// running (blocked in a host call, a WASI sleep, or waiting to be polled), and only one tick of
/// it counts. Subtracting host-call time from wall time instead would bill a WASI sleep as CPU
/// and report the wrong limit.
pub(super) struct CpuClock {
    pub(super) budget: Duration,
    pub(super) used: Duration,
    pub(super) last_tick: Instant,
}

impl CpuClock {
    pub(super) fn start_phase(&mut self) {
        self.used = Duration::ZERO;
        self.last_tick = Instant::now();
    }

    pub(super) fn tick(&mut self) -> Duration {
        let now = Instant::now();
        self.used += now.duration_since(self.last_tick).min(2 * EPOCH_TICK);
        self.last_tick = now;
        self.used
    }
}

pub struct SandboxState {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    pub(super) capabilities: Capabilities,
    pub(super) stdout: BoundedOutput,
    pub(super) stderr: BoundedOutput,
    pub(super) cpu: CpuClock,
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl SandboxState {
    /// The projection every salve interface is linked through.
    pub fn capabilities_mut(&mut self) -> &mut Capabilities {
        &mut self.capabilities
    }
}
