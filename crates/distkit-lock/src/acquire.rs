//! The acquisition loop shared by `Mutex` and `RwLock`: try, then wait for a
//! release notification or the retry interval, within the caller's bound.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::LockError;
use crate::core::{ACQUIRE_READ, ACQUIRE_WRITE, CANCEL_WAIT, FENCE_TTL, LockCore, millis};
use crate::lease::{Lease, LeaseKind};
use crate::notify::Subscription;

/// How long an acquisition may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bound {
    /// One attempt; busy is [`LockError::WouldBlock`].
    Once,
    /// Until acquired, or until the deadline when there is one.
    Wait(Option<Duration>),
    /// At most this many attempts, and within the deadline when there is one.
    Attempts(u32, Option<Duration>),
}

/// What is being acquired.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// A mutex lease: exclusive, no pending-writer mark.
    Mutex,
    /// An `RwLock` write lease: exclusive, marks itself pending while waiting.
    Write,
    /// An `RwLock` read lease.
    Read,
}

/// The marks a waiting acquisition may have left in Redis for `token`: a
/// waiter mark, and for an `RwLock` writer a pending-writer mark. Removed
/// when the wait ends without the lease (at once, or from `Drop` when the
/// waiting future is dropped), so a cancelled caller leaves nothing behind
/// and a cancelled writer never blocks readers; the acquire script removes
/// them when the lease is taken.
struct WaitMarks {
    core: Arc<LockCore>,
    token: String,
    armed: bool,
}

impl WaitMarks {
    /// Removes the marks now. Stays armed until the call is done, so a
    /// future dropped meanwhile still removes them from `Drop`.
    async fn cancel(mut self) {
        if let Err(error) = cancel_wait(&self.core, &self.token).await {
            tracing::debug!(%error, "distkit lock: wait marks not removed; they expire");
        }
        self.armed = false;
    }
}

impl Drop for WaitMarks {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let core = self.core.clone();
        let token = std::mem::take(&mut self.token);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            drop(handle.spawn(async move {
                if let Err(error) = cancel_wait(&core, &token).await {
                    tracing::debug!(%error, "distkit lock: wait marks not removed; they expire");
                }
            }));
        }
    }
}

async fn cancel_wait(core: &LockCore, token: &str) -> Result<(), LockError> {
    let mut connection = core.connection();
    let _: i64 = CANCEL_WAIT
        .call()
        .key(&core.keys.pending)
        .key(&core.keys.waiters)
        .arg(token)
        .arg(core.publish)
        .arg(&core.keys.channel)
        .invoke(&mut connection)
        .await?;
    Ok(())
}

/// How long a waiter or pending-writer mark lives without refresh: three
/// retry intervals, at least 500 ms. A waiting caller refreshes its marks on
/// every attempt, at least once per retry interval; the floor keeps a short
/// retry interval from dropping a writer's preference on a slow round trip.
fn pending_ttl(core: &LockCore) -> Duration {
    (core.options.retry_interval * 3).max(Duration::from_millis(500))
}

/// What one attempt found.
enum Attempt {
    /// The lease is taken, with this fencing token.
    Acquired(u64),
    /// Another holder has it.
    Busy,
    /// Free, but other callers wait: this first attempt of a waiting caller
    /// queued behind them (no barging, see `scripts/lock/README.md`).
    Queued,
}

/// One attempt. A busy or queued attempt of a caller that will wait
/// (`waits`) marks the caller as a waiter for [`pending_ttl`], at least
/// three retry intervals: longer than the caller waits before its next
/// attempt, so every release it has not seen yet publishes a message.
/// `marked`: an earlier attempt left a waiter mark, which the script removes
/// when the lease is taken.
async fn attempt(
    core: &LockCore,
    target: Target,
    token: &str,
    mark_pending: bool,
    waits: bool,
    marked: bool,
) -> Result<Attempt, LockError> {
    let mut connection = core.connection();
    let keys = &core.keys;
    let waiting = if waits { millis(pending_ttl(core)) } else { 0 };
    let call = match target {
        Target::Mutex | Target::Write => {
            let pending = if mark_pending {
                millis(pending_ttl(core))
            } else {
                0
            };
            ACQUIRE_WRITE
                .call()
                .key(&keys.owner)
                .key(&keys.readers)
                .key(&keys.pending)
                .key(&keys.fence)
                .key(&keys.waiters)
                .arg(token)
                .arg(millis(core.options.ttl))
                .arg(pending)
                .arg(millis(FENCE_TTL))
                .arg(waiting)
                .arg(u8::from(marked))
        }
        Target::Read => ACQUIRE_READ
            .call()
            .key(&keys.owner)
            .key(&keys.readers)
            .key(&keys.pending)
            .key(&keys.fence)
            .key(&keys.waiters)
            .arg(token)
            .arg(millis(core.options.ttl))
            .arg(millis(FENCE_TTL))
            .arg(waiting)
            .arg(u8::from(marked)),
    };
    let (acquired, detail): (i64, String) = call.invoke(&mut connection).await?;
    if acquired != 1 {
        return Ok(if detail == "waiters" {
            Attempt::Queued
        } else {
            Attempt::Busy
        });
    }
    detail.parse::<u64>().map(Attempt::Acquired).map_err(|_| {
        LockError::Redis(distkit_core::DistkitError::unexpected_reply(
            "lock.acquire",
            format!("fencing token is not an unsigned integer: {detail:?}"),
        ))
    })
}

/// Acquires `target` on `core` within `bound`.
pub(crate) async fn acquire(
    core: &Arc<LockCore>,
    target: Target,
    bound: Bound,
) -> Result<Lease, LockError> {
    let started = Instant::now();
    let token = core.new_token();
    let kind = match target {
        Target::Mutex | Target::Write => LeaseKind::Write,
        Target::Read => LeaseKind::Read,
    };
    let deadline = match bound {
        Bound::Once => None,
        Bound::Wait(limit) | Bound::Attempts(_, limit) => limit.map(|d| started + d),
    };
    let waits = !matches!(bound, Bound::Once);
    let mark_pending = matches!(target, Target::Write) && waits;
    // Armed before the first call: a call whose reply is lost may still
    // have left marks.
    let mut marks = waits.then(|| WaitMarks {
        core: core.clone(),
        token: token.clone(),
        armed: true,
    });
    let mut subscription: Option<Subscription> = None;
    let mut attempts: u32 = 0;
    // Every earlier attempt was busy or queued (an error ends the loop), and
    // such an attempt of a waiting caller leaves a waiter mark.
    let mut marked = false;
    loop {
        if let Some(subscription) = subscription.as_mut() {
            subscription.mark_seen();
        }
        let sent = Instant::now();
        let outcome = attempt(core, target, &token, mark_pending, waits, marked).await;
        marked = waits;
        let fencing_token = match outcome {
            Ok(Attempt::Acquired(fencing_token)) => {
                attempts = attempts.saturating_add(1);
                fencing_token
            }
            // The lease was free: retry at once as a marked waiter, without
            // counting this attempt against the bound (only a first attempt
            // can queue, so this happens at most once).
            Ok(Attempt::Queued) if waits => continue,
            Ok(Attempt::Busy | Attempt::Queued) => {
                attempts = attempts.saturating_add(1);
                let give_up = match bound {
                    Bound::Once => Some(LockError::WouldBlock {
                        key: core.key_name(),
                    }),
                    Bound::Attempts(max, _) if attempts >= max => {
                        Some(LockError::RetriesExhausted {
                            key: core.key_name(),
                            attempts,
                        })
                    }
                    _ => match deadline {
                        Some(deadline) if Instant::now() >= deadline => Some(LockError::Timeout {
                            key: core.key_name(),
                            waited: started.elapsed(),
                        }),
                        _ => None,
                    },
                };
                if let Some(error) = give_up {
                    if let Some(marks) = marks.take() {
                        marks.cancel().await;
                    }
                    return Err(error);
                }
                let mut pause = core.options.retry_interval;
                if let Some(deadline) = deadline {
                    pause = pause.min(deadline.saturating_duration_since(Instant::now()));
                }
                match subscription.as_mut() {
                    Some(subscription) => subscription.wait(pause).await,
                    // First wait: subscribe, then retry at once, so a release
                    // between the failed attempt and the subscription is not
                    // missed.
                    None => subscription = Some(core.notifier.subscribe(pause).await),
                }
                continue;
            }
            Err(error) => {
                if let Some(marks) = marks.take() {
                    marks.cancel().await;
                }
                return Err(error);
            }
        };
        // The acquire script removed this caller's marks.
        if let Some(mut marks) = marks.take() {
            marks.armed = false;
        }
        return Ok(Lease::start(
            core.clone(),
            kind,
            token,
            fencing_token,
            attempts,
            sent,
        ));
    }
}
