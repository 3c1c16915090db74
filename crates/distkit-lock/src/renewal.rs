//! When a lease gets its renewal task: only once it has lived long enough to
//! need a renewal.
//!
//! A lease is first renewed ttl/3 after it was acquired, and most leases are
//! released long before. Spawning a renewal task at every acquisition (and
//! aborting it at release) costs a task, a timer and a wake-up of a runtime
//! worker per acquire+release: on a busy two-core machine about a tenth of
//! an uncontended acquire+release. Instead, each lock object keeps its young
//! leases in a registry, and one scheduler task spawns a lease's renewal task
//! half a period (ttl/6) after the acquisition. The renewal task then waits
//! for the first renewal on its own timer, so renewals run exactly when they
//! did with a task per lease, and a late scheduler (busy runtime) has half a
//! period of slack. Registering and unregistering a lease is a short
//! critical section on a local mutex, with no wake-up.
//!
//! The scheduler never needs waking either: it sleeps until the earliest
//! promotion, and at most half a period. A lease registered while it sleeps
//! was sent after it fell asleep, so its promotion is due at least half a
//! period later, after the scheduler wakes. After three wake-ups without
//! young leases the scheduler ends; the next registration starts another.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::core::LockCore;
use crate::lease::{LeaseShared, renewal_loop};

/// How many wake-ups without young leases the scheduler waits before ending.
const IDLE_WAKE_UPS: u32 = 3;

/// The young leases of one lock object and their scheduler.
#[derive(Debug, Default)]
pub(crate) struct Renewals {
    state: StdMutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    young: BTreeMap<u64, Young>,
    scheduler: Option<JoinHandle<()>>,
}

/// A lease whose renewal task has not been spawned yet.
#[derive(Debug)]
struct Young {
    /// When the acquisition request was sent (the lease's proven start).
    sent: Instant,
    lease: Weak<LeaseShared>,
}

impl Renewals {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `lease` (acquired with a request sent at `sent`) for
    /// renewal, starting the scheduler on the current runtime when none
    /// runs. Returns the registration to pass to [`unregister`], or `None`
    /// outside a Tokio runtime (the lease then simply runs out).
    ///
    /// [`unregister`]: Renewals::unregister
    pub(crate) fn register(
        core: &Arc<LockCore>,
        lease: &Arc<LeaseShared>,
        sent: Instant,
    ) -> Option<u64> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let mut state = core.renewals.state();
        let id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
        state.young.insert(
            id,
            Young {
                sent,
                lease: Arc::downgrade(lease),
            },
        );
        // A scheduler whose runtime shut down is finished too.
        if state.scheduler.as_ref().is_none_or(JoinHandle::is_finished) {
            state.scheduler = Some(runtime.spawn(schedule(Arc::downgrade(core))));
        }
        Some(id)
    }

    /// Removes a registration. Once this returns, the lease's renewal task,
    /// if the scheduler already spawned it, is in the lease's task slot.
    pub(crate) fn unregister(&self, id: u64) {
        self.state().young.remove(&id);
    }
}

/// The scheduler of one lock object: spawns each young lease's renewal task
/// half a renewal period after its acquisition.
async fn schedule(core: Weak<LockCore>) {
    let mut idle = 0;
    loop {
        let wake_at = {
            let Some(core) = core.upgrade() else { return };
            let lead = renewal_period(core.options.ttl) / 2;
            let now = Instant::now();
            let mut state = core.renewals.state();
            let due: Vec<u64> = state
                .young
                .iter()
                .filter(|(_, young)| young.sent + lead <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in due {
                if let Some(young) = state.young.remove(&id) {
                    start_renewal(young);
                }
            }
            if state.young.is_empty() {
                idle += 1;
                if idle >= IDLE_WAKE_UPS {
                    state.scheduler = None;
                    return;
                }
            } else {
                idle = 0;
            }
            let earliest = state.young.values().map(|young| young.sent + lead).min();
            earliest.map_or(now + lead, |due| due.min(now + lead))
        };
        tokio::time::sleep_until(wake_at).await;
    }
}

/// Spawns the renewal task of a lease that is still held, and stores its
/// handle where release and drop find it. Called with the registry locked,
/// so an `unregister` that returns has seen either the young entry or the
/// stored handle.
fn start_renewal(young: Young) {
    let Some(shared) = young.lease.upgrade() else {
        return;
    };
    let handle = tokio::spawn(renewal_loop(young.lease, young.sent));
    shared.set_renewal_task(handle);
}

/// How often a lease is renewed: every ttl/3.
pub(crate) fn renewal_period(ttl: Duration) -> Duration {
    ttl / 3
}
