//! The lease behind every guard: renewal, loss detection and release.

use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::LockError;
use crate::core::{LockCore, RELEASE_READ, RELEASE_WRITE, RENEW_READ, RENEW_WRITE, millis};
use crate::renewal::{Renewals, renewal_period};

/// The state of a guard's lease, as known locally (reading it does no I/O).
///
/// ```
/// use distkit_lock::LockGuardState;
/// assert_ne!(LockGuardState::Acquired, LockGuardState::Lost);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockGuardState {
    /// The lease is held and being renewed.
    Acquired,
    /// The lease is gone: a renewal found another owner or none, or could
    /// not reach Redis before the lease would have run out. Another owner
    /// may hold the lock now; stop the critical section.
    Lost,
    /// The guard released its lease.
    Released,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseKind {
    Write,
    Read,
}

#[derive(Debug)]
pub(crate) struct LeaseShared {
    core: Arc<LockCore>,
    kind: LeaseKind,
    token: String,
    state: watch::Sender<LockGuardState>,
    /// Local monotonic instant before which the lease is proven held: the
    /// send time of the last successful acquire or renew plus the ttl.
    valid_until: StdMutex<Instant>,
    /// The renewal task, once the lock's scheduler spawned it (see
    /// [`crate::renewal`]).
    renewal_task: StdMutex<Option<JoinHandle<()>>>,
}

impl LeaseShared {
    fn state(&self) -> LockGuardState {
        *self.state.borrow()
    }

    fn mark_lost(&self) {
        self.state.send_if_modified(|state| {
            if *state == LockGuardState::Acquired {
                *state = LockGuardState::Lost;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn set_renewal_task(&self, task: JoinHandle<()>) {
        *self
            .renewal_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    fn take_renewal_task(&self) -> Option<JoinHandle<()>> {
        self.renewal_task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    fn valid_until(&self) -> Instant {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_valid_until(&self, instant: Instant) {
        *self
            .valid_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = instant;
    }

    /// The instant at which the guard declares itself lost without proof of
    /// renewal: a safety margin before the lease could run out in Redis.
    fn lost_at(&self) -> Instant {
        self.valid_until() - safety_margin(self.core.options.ttl)
    }

    async fn renew_once(&self) -> Result<bool, LockError> {
        let mut connection = self.core.connection();
        let script = match self.kind {
            LeaseKind::Write => &*RENEW_WRITE,
            LeaseKind::Read => &*RENEW_READ,
        };
        let key = match self.kind {
            LeaseKind::Write => &self.core.keys.owner,
            LeaseKind::Read => &self.core.keys.readers,
        };
        let sent = Instant::now();
        let renewed: i64 = script
            .call()
            .key(key)
            .arg(&self.token)
            .arg(millis(self.core.options.ttl))
            .invoke(&mut connection)
            .await?;
        if renewed == 1 {
            if self.state() == LockGuardState::Acquired {
                self.set_valid_until(sent + self.core.options.ttl);
            }
            Ok(true)
        } else {
            self.mark_lost();
            Ok(false)
        }
    }

    async fn release_once(&self) -> Result<bool, LockError> {
        let mut connection = self.core.connection();
        let keys = &self.core.keys;
        let call = match self.kind {
            LeaseKind::Write => RELEASE_WRITE.call().key(&keys.owner).key(&keys.waiters),
            LeaseKind::Read => RELEASE_READ.call().key(&keys.readers),
        };
        let released: i64 = call
            .arg(&self.token)
            .arg(self.core.publish)
            .arg(&self.core.keys.channel)
            .invoke(&mut connection)
            .await?;
        Ok(released == 1)
    }
}

/// How long before the proven end of the lease a guard gives it up: a tenth
/// of the ttl. The local deadline already starts when the request was sent,
/// before Redis started the ttl, so the margin only absorbs timer lateness.
fn safety_margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(1))
}

/// The machinery every guard type wraps.
#[derive(Debug)]
pub(crate) struct Lease {
    shared: Arc<LeaseShared>,
    fencing_token: u64,
    attempt: u32,
    /// The registration with the lock's renewal scheduler, until stopped.
    renewal: Option<u64>,
    runtime: Option<Handle>,
    finished: bool,
}

impl Lease {
    pub(crate) fn start(
        core: Arc<LockCore>,
        kind: LeaseKind,
        token: String,
        fencing_token: u64,
        attempt: u32,
        sent: Instant,
    ) -> Self {
        let ttl = core.options.ttl;
        let shared = Arc::new(LeaseShared {
            core,
            kind,
            token,
            state: watch::channel(LockGuardState::Acquired).0,
            valid_until: StdMutex::new(sent + ttl),
            renewal_task: StdMutex::new(None),
        });
        let runtime = Handle::try_current().ok();
        let renewal = Renewals::register(&shared.core, &shared, sent);
        Self {
            shared,
            fencing_token,
            attempt,
            renewal,
            runtime,
            finished: false,
        }
    }

    /// Stops renewing: removes the registration, or aborts the renewal task
    /// when the scheduler already spawned it.
    fn stop_renewal(&mut self) {
        if let Some(id) = self.renewal.take() {
            self.shared.core.renewals.unregister(id);
            if let Some(task) = self.shared.take_renewal_task() {
                task.abort();
            }
        }
    }

    pub(crate) fn state(&self) -> LockGuardState {
        if self.shared.state() == LockGuardState::Acquired
            && Instant::now() >= self.shared.lost_at()
        {
            // The renewal task may be late (busy runtime); time alone proves
            // the loss.
            self.shared.mark_lost();
        }
        self.shared.state()
    }

    pub(crate) fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(crate) fn owner_token(&self) -> &str {
        &self.shared.token
    }

    pub(crate) async fn lost(&self) {
        let mut receiver = self.shared.state.subscribe();
        let _ = receiver
            .wait_for(|state| *state == LockGuardState::Lost)
            .await;
    }

    pub(crate) async fn renew(&self) -> Result<(), LockError> {
        if self.state() != LockGuardState::Acquired {
            return Err(LockError::NotOwner {
                key: self.shared.core.key_name(),
            });
        }
        if self.shared.renew_once().await? {
            Ok(())
        } else {
            Err(LockError::NotOwner {
                key: self.shared.core.key_name(),
            })
        }
    }

    pub(crate) async fn release(mut self) -> Result<LockGuardState, LockError> {
        self.finished = true;
        self.stop_renewal();
        if self.state() != LockGuardState::Acquired {
            return Ok(LockGuardState::Lost);
        }
        let released = self.shared.release_once().await?;
        let state = if released {
            LockGuardState::Released
        } else {
            LockGuardState::Lost
        };
        self.shared.state.send_replace(state);
        Ok(state)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop_renewal();
        if self.finished || self.shared.state() != LockGuardState::Acquired {
            return;
        }
        let shared = self.shared.clone();
        let release = async move {
            match shared.release_once().await {
                Ok(true) => {
                    shared.state.send_replace(LockGuardState::Released);
                }
                Ok(false) => shared.mark_lost(),
                Err(error) => {
                    tracing::debug!(%error, "distkit lock: background release failed; the lease expires by ttl");
                }
            }
        };
        // Prefer the current runtime; outside one, the runtime the guard
        // was acquired on; without any, the lease simply expires by its ttl.
        match Handle::try_current().ok().or_else(|| self.runtime.clone()) {
            Some(handle) => {
                drop(handle.spawn(release));
            }
            None => {
                tracing::debug!(
                    "distkit lock: guard dropped outside a runtime; the lease expires by ttl"
                );
            }
        }
    }
}

/// Renews the lease every ttl/3 (the first renewal is due one period after
/// `sent`) until it is released, dropped or lost.
pub(crate) async fn renewal_loop(weak: Weak<LeaseShared>, sent: Instant) {
    let Some(ttl) = weak.upgrade().map(|shared| shared.core.options.ttl) else {
        return;
    };
    let period = renewal_period(ttl);
    let retry_after_error = (ttl / 15).max(Duration::from_millis(1));
    let mut renew_at = sent + period;
    loop {
        let Some(lost_at) = weak.upgrade().map(|shared| shared.lost_at()) else {
            return;
        };
        tokio::time::sleep_until(renew_at.min(lost_at)).await;
        let Some(shared) = weak.upgrade() else { return };
        if shared.state() != LockGuardState::Acquired {
            return;
        }
        let now = Instant::now();
        let lost_at = shared.lost_at();
        if now >= lost_at {
            shared.mark_lost();
            return;
        }
        let sent = now;
        match tokio::time::timeout(lost_at - now, shared.renew_once()).await {
            Ok(Ok(true)) => renew_at = sent + period,
            Ok(Ok(false)) => return,
            Ok(Err(error)) => {
                tracing::debug!(%error, "distkit lock: renewal failed; retrying");
                renew_at = Instant::now() + retry_after_error;
            }
            Err(_) => {
                shared.mark_lost();
                return;
            }
        }
    }
}
