//! Background loops owned through a `Weak` reference.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Runs `tick` every `period` for as long as `owner` is alive.
///
/// The task holds only a [`Weak`] reference: before each tick it upgrades it,
/// and ends as soon as the owner has been dropped, so a background flusher or
/// heartbeat never keeps its primitive alive. The strong reference lives only
/// for the duration of one tick. Missed ticks are delayed, not bunched up.
///
/// Returns `None` (and logs a warning) when called outside a Tokio runtime,
/// where no task can be spawned; callers then rely on explicit calls.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ticks = Arc::new(AtomicU32::new(0));
/// let handle = distkit_core::spawn_weak_loop(&ticks, Duration::from_millis(1), |ticks| async move {
///     ticks.fetch_add(1, Ordering::Relaxed);
/// })
/// .unwrap();
/// tokio::time::sleep(Duration::from_millis(20)).await;
/// drop(ticks); // the loop sees the owner gone and ends
/// handle.await.unwrap();
/// # }
/// ```
pub fn spawn_weak_loop<T, F, Fut>(
    owner: &Arc<T>,
    period: Duration,
    mut tick: F,
) -> Option<JoinHandle<()>>
where
    T: Send + Sync + 'static,
    F: FnMut(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("distkit: no Tokio runtime; background loop not started");
        return None;
    };
    let weak: Weak<T> = Arc::downgrade(owner);
    let period = period.max(Duration::from_millis(1));
    Some(runtime.spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(owner) = weak.upgrade() else { break };
            tick(owner).await;
        }
    }))
}
