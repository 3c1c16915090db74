//! [`LaxInstanceAwareCounter`]: lock-free local `inc`/`dec`, flushed in
//! batches.
//!
//! The buffer is `distkit_core::lax::LaxBuffer`, the same as
//! `distkit_counter::LaxCounter`'s: each key this instance touched has a
//! cell holding the local view of this instance's slice (confirmed slice
//! plus pending delta) and the last cumulative Redis reported. The warm
//! `inc`/`dec` finds the cell in a per-thread cache of cell handles and adds
//! with one compare-and-swap: no lock, no allocation, no clock read.
//!
//! # Flushes
//!
//! Every `flush_interval` the pending deltas of every dirty key go to Redis
//! in one `icounter/apply` call carrying this instance's flush sequence
//! (continued from the last one Redis recorded for the instance id). A delta
//! leaves the buffer only when Redis confirmed it; a batch whose reply was
//! lost is resent unchanged and applied at most once. Keys read with `get`
//! are refreshed by the same call. A tick with nothing to send sends
//! nothing: the strict counter's background heartbeat keeps an idle
//! instance alive.
//!
//! # Writes that act on Redis at once
//!
//! Every operation other than `inc`, `dec` and `inc_all` (and the reads)
//! runs on the strict counter underneath, under the flush lock, after
//! flushing: every delta recorded **before** the call started is in Redis
//! when it runs (the call fails if that flush fails), so a `set` overwrites
//! it, a `del` removes it, a conditional write compares against it. A delta
//! recorded **while** the call runs is ordered after it and flushed later.
//!
//! # Reads
//!
//! `get` returns the local estimate `(cumulative, slice)` when the key was
//! refreshed within `allowed_lag`: the values Redis last reported plus the
//! deltas not yet confirmed. Otherwise it reads Redis (one round trip) and
//! caches the key.
//!
//! # Memory
//!
//! A key with nothing pending that was neither written nor read for 50
//! flush intervals (1 s with the default) is evicted from memory; the next
//! operation on it reloads it.

use std::future::Future;
use std::sync::{Arc, Mutex};

use distkit_core::lax::{LaxBackend, LaxBatchEntry, LaxBuffer, LaxCell, LaxFlushed, LaxRemote};
use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey};
use tokio::task::JoinHandle;

use crate::instance::InstanceInfo;
use crate::protocol::{Op, OpKind};
use crate::{
    InstanceAwareCounterTrait, LaxInstanceAwareCounterOptions, StrictInstanceAwareCounter,
};

/// The strict counter underneath and the buffer in front of it.
struct LaxInner {
    strict: Arc<StrictInstanceAwareCounter>,
    buffer: LaxBuffer,
}

/// `(cumulative, slice)` as this instance sees them: the last values Redis
/// reported plus the pending delta.
#[inline]
fn estimate(cell: &LaxCell, view: i64) -> (i64, i64) {
    let pending = i128::from(view) - i128::from(cell.confirmed());
    let cumulative = i128::from(cell.aux()) + pending;
    let cumulative =
        i64::try_from(cumulative).unwrap_or(if cumulative < 0 { i64::MIN } else { i64::MAX });
    (cumulative, view)
}

fn remote((cumulative, slice): (i64, i64)) -> LaxRemote {
    LaxRemote {
        value: slice,
        aux: cumulative,
    }
}

impl LaxBackend for LaxInner {
    fn buffer(&self) -> &LaxBuffer {
        &self.buffer
    }

    async fn load(&self, keys: &[&DistkitRedisKey]) -> Result<Vec<LaxRemote>, DistkitError> {
        let values = self.strict.get_all(keys).await?;
        Ok(values
            .into_iter()
            .map(|(_, cumulative, slice)| remote((cumulative, slice)))
            .collect())
    }

    async fn send(
        &self,
        sequence: u64,
        batch: &[LaxBatchEntry],
    ) -> Result<Vec<LaxFlushed>, DistkitError> {
        // A delta outside the i64 range cannot travel: it is refused here
        // (and the key only read).
        let deltas: Vec<Option<i64>> = batch
            .iter()
            .map(|entry| i64::try_from(entry.delta()).ok())
            .collect();
        // A batch that a reply of another run showed applied (its own reply
        // was lost) is resent as reads: Redis holds its deltas, even if the
        // record of its sequence went with a full cleanup of this instance.
        let applied = self.strict.flush_applied(sequence);
        let ops: Vec<Op> = batch
            .iter()
            .zip(&deltas)
            .map(|(entry, delta)| match delta {
                Some(delta) if *delta != 0 && !applied => Op::new(
                    OpKind::Inc,
                    entry.key().as_str(),
                    *delta,
                    CounterComparator::Nil,
                ),
                _ => Op::new(OpKind::Get, entry.key().as_str(), 0, CounterComparator::Nil),
            })
            .collect();
        // Until confirmed, the batch's deltas are pending: a run that
        // restores this instance's removed entries (it came back after being
        // declared dead) adds them where Redis had applied the batch.
        self.strict.set_pending(
            sequence,
            ops.iter()
                .filter(|op| op.kind == OpKind::Inc)
                .map(|op| (op.key.clone(), op.value))
                .collect(),
        );
        let results = self.strict.apply_flush(&ops, sequence).await?;
        self.strict.clear_pending(sequence);
        Ok(results
            .into_iter()
            .zip(&deltas)
            .map(|(result, delta)| match (result, delta) {
                (Some(values), Some(_)) => LaxFlushed::Applied(remote(values)),
                (Some(values), None) => LaxFlushed::Refused(Some(remote(values))),
                (None, _) => LaxFlushed::Refused(None),
            })
            .collect())
    }

    async fn last_sequence(&self) -> Result<u64, DistkitError> {
        let mut conn = self.strict.connection();
        let last: Option<u64> = distkit_core::redis::cmd("HGET")
            .arg(self.strict.flushes_key())
            .arg(self.strict.instance_id())
            .query_async(&mut conn)
            .await
            .map_err(|e| DistkitError::redis("icounter.flush", e))?;
        Ok(last.unwrap_or(0))
    }
}

impl LaxInner {
    /// Local estimates of `keys`, reading from Redis (and caching) the keys
    /// not refreshed within the allowed lag.
    async fn get_all<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let mut values = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            match self.buffer.get(key, |cell| estimate(cell, cell.view())) {
                Some((cumulative, slice)) => values.push((*key, cumulative, slice)),
                None => {
                    values.push((*key, 0, 0));
                    missing.push(index);
                }
            }
        }
        if !missing.is_empty() {
            let missing_keys: Vec<&DistkitRedisKey> = missing
                .iter()
                .filter_map(|i| keys.get(*i).copied())
                .collect();
            let cells = self.buffer.load(self, &missing_keys, true).await?;
            for (index, cell) in missing.iter().zip(cells) {
                if let Some(slot) = values.get_mut(*index) {
                    let (cumulative, slice) = estimate(&cell, cell.view());
                    slot.1 = cumulative;
                    slot.2 = slice;
                }
            }
        }
        Ok(values)
    }

    /// Runs `operation` on the strict counter with the buffer flushed and
    /// the flush lock held, then settles the cells of the keys it returned.
    async fn settled_all<'a, F>(
        &self,
        operation: F,
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>
    where
        F: Future<Output = Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError>>,
    {
        let guard = self.buffer.lock_flushed(self).await?;
        let values = operation.await?;
        for (key, cumulative, slice) in &values {
            guard.settle(key, remote((*cumulative, *slice)));
        }
        Ok(values)
    }

    /// As [`settled_all`](Self::settled_all) for one key.
    async fn settled<F>(
        &self,
        key: &DistkitRedisKey,
        operation: F,
    ) -> Result<(i64, i64), DistkitError>
    where
        F: Future<Output = Result<(i64, i64), DistkitError>>,
    {
        let guard = self.buffer.lock_flushed(self).await?;
        let values = operation.await?;
        guard.settle(key, remote(values));
        Ok(values)
    }
}

/// An instance-aware counter that buffers `inc`/`dec` in memory.
///
/// `inc` and `dec` on a warm key are a lock-free atomic add and return the
/// local estimate `(cumulative, slice)`: the last values Redis reported plus
/// the deltas not yet confirmed. Every `flush_interval` all pending deltas
/// go to Redis in one script call carrying a per-instance flush sequence: a
/// delta leaves the buffer only when Redis confirmed it, and a batch that is
/// resent after a lost reply is applied at most once. Flushes also stamp
/// the instance's heartbeat. Every other operation flushes first and then
/// runs on the strict counter (see the crate docs for the exact rule).
///
/// Pending deltas are lost if the process dies before they are flushed:
/// call [`shutdown`](Self::shutdown) (or [`flush`](Self::flush)) before a
/// planned exit. Dropping the counter starts a best-effort final flush on
/// the current Tokio runtime.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// use distkit_icounter::{
///     DistkitRedisKey, InstanceAwareCounterTrait, LaxInstanceAwareCounter,
///     LaxInstanceAwareCounterOptions,
/// };
/// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_lax"))?;
/// let counter = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(prefix, conn));
/// let key = DistkitRedisKey::try_from("connections")?;
/// assert_eq!(counter.inc(&key, 1).await?, (1, 1));
/// counter.flush().await?;
/// assert_eq!(counter.strict().get(&key).await?, (1, 1));
/// # Ok(()) }
/// ```
pub struct LaxInstanceAwareCounter {
    inner: Arc<LaxInner>,
    flush_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LaxInstanceAwareCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaxInstanceAwareCounter")
            .field("strict", &self.inner.strict)
            .field("buffer", &self.inner.buffer)
            .finish_non_exhaustive()
    }
}

impl Drop for LaxInstanceAwareCounter {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.flush_task.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        // Best effort: flush what is still buffered on the current runtime.
        LaxBuffer::spawn_final_flush(Arc::clone(&self.inner));
    }
}

impl LaxInstanceAwareCounter {
    /// Creates the counter and starts its flush loop (every
    /// `flush_interval`, while the returned `Arc` lives).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// use distkit_icounter::{DistkitRedisKey, LaxInstanceAwareCounter, LaxInstanceAwareCounterOptions};
    /// let counter = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(
    ///     DistkitRedisKey::try_from("my_app")?,
    ///     conn,
    /// ));
    /// assert!(!counter.instance_id().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn new(options: LaxInstanceAwareCounterOptions) -> Arc<Self> {
        let inner = Arc::new(LaxInner {
            strict: {
                let strict = StrictInstanceAwareCounter::new(options.strict());
                strict.remember_zero_slices();
                strict
            },
            buffer: LaxBuffer::new(options.flush_interval, options.allowed_lag),
        });
        let task = LaxBuffer::spawn_flush_loop(&inner);
        Arc::new(Self {
            inner,
            flush_task: Mutex::new(task),
        })
    }

    /// This instance's id.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// let options = LaxInstanceAwareCounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn)
    ///     .with_instance_id(DistkitRedisKey::try_from("worker-7")?);
    /// assert_eq!(LaxInstanceAwareCounter::new(options).instance_id(), "worker-7");
    /// # Ok(()) }
    /// ```
    pub fn instance_id(&self) -> &str {
        self.inner.strict.instance_id()
    }

    /// The strict counter underneath (same instance id): reads through it
    /// see only flushed deltas.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_lax_strict"))?;
    /// let lax = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(prefix, conn));
    /// assert_eq!(lax.strict().instance_id(), lax.instance_id());
    /// # Ok(()) }
    /// ```
    pub fn strict(&self) -> &Arc<StrictInstanceAwareCounter> {
        &self.inner.strict
    }

    /// Sends every pending delta to Redis now (one call), after resending a
    /// batch whose outcome is unknown.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a batch leaves the buffer only once Redis confirmed it;
    /// a batch interrupted half-way is kept and resent with the same
    /// sequence, which Redis applies at most once.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_flush"))?;
    /// # let key = DistkitRedisKey::try_from("k")?;
    /// let counter = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(prefix, conn));
    /// counter.inc(&key, 3).await?;
    /// counter.flush().await?;
    /// assert_eq!(counter.strict().get(&key).await?, (3, 3));
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), DistkitError> {
        self.inner.buffer.flush(&*self.inner).await
    }

    /// Flushes pending deltas and stops the flush loop; call before the
    /// process exits so no delta is lost.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_shutdown"))?;
    /// let counter = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(prefix, conn));
    /// counter.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<(), DistkitError> {
        if let Ok(mut slot) = self.flush_task.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
        self.flush().await
    }

    /// How many keys are cached in memory (quiet keys are evicted).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_cached"))?;
    /// let counter = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(prefix, conn));
    /// counter.inc(&DistkitRedisKey::try_from("k")?, 1).await?;
    /// assert_eq!(counter.cached_keys(), 1);
    /// # Ok(()) }
    /// ```
    pub fn cached_keys(&self) -> usize {
        self.inner.buffer.cached_keys()
    }

    /// How many flushed deltas Redis refused because a stored value would
    /// have left the `i64` range; each is dropped and logged with
    /// `tracing::error!` (the `inc` that recorded it had returned `Ok`).
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), distkit_icounter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # use distkit_icounter::*;
    /// let counter = LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(
    ///     DistkitRedisKey::try_from("my_app")?,
    ///     conn,
    /// ));
    /// assert_eq!(counter.refused_overflows(), 0);
    /// # Ok(()) }
    /// ```
    pub fn refused_overflows(&self) -> u64 {
        self.inner.buffer.refused_overflows()
    }
}

impl InstanceAwareCounterTrait for LaxInstanceAwareCounter {
    fn instance_id(&self) -> &str {
        self.inner.strict.instance_id()
    }

    // The hand-written future of the whole add: no async state machine
    // around the warm path.
    fn inc(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<(i64, i64), DistkitError>> + Send {
        LaxBuffer::add_operation(&self.inner, "icounter.inc", key, count, count, estimate)
    }

    async fn dec(&self, key: &DistkitRedisKey, count: i64) -> Result<(i64, i64), DistkitError> {
        let negated = count
            .checked_neg()
            .ok_or_else(|| DistkitError::CounterOverflow {
                operation: "icounter.dec",
                key: key.as_str().to_owned(),
                operand: count,
            })?;
        LaxBuffer::add_operation(&self.inner, "icounter.dec", key, negated, count, estimate).await
    }

    async fn get(&self, key: &DistkitRedisKey) -> Result<(i64, i64), DistkitError> {
        if let Some(values) = self
            .inner
            .buffer
            .get(key, |cell| estimate(cell, cell.view()))
        {
            return Ok(values);
        }
        let values = Box::pin(self.inner.get_all(&[key])).await?;
        values
            .first()
            .map(|(_, cumulative, slice)| (*cumulative, *slice))
            .ok_or_else(|| DistkitError::unexpected_reply("icounter.get", "no value"))
    }

    async fn set(&self, key: &DistkitRedisKey, count: i64) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        inner.settled(key, inner.strict.set(key, count)).await
    }

    async fn set_on_instance(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        inner
            .settled(key, inner.strict.set_on_instance(key, count))
            .await
    }

    async fn del(&self, key: &DistkitRedisKey) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        let guard = inner.buffer.lock_flushed(&**inner).await?;
        let values = inner.strict.del(key).await?;
        guard.settle(key, LaxRemote::default());
        Ok(values)
    }

    async fn del_on_instance(&self, key: &DistkitRedisKey) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        let guard = inner.buffer.lock_flushed(&**inner).await?;
        let (cumulative, removed) = inner.strict.del_on_instance(key).await?;
        guard.settle(key, remote((cumulative, 0)));
        Ok((cumulative, removed))
    }

    async fn clear(&self) -> Result<(), DistkitError> {
        let inner = &self.inner;
        let guard = inner.buffer.lock_flushed(&**inner).await?;
        inner.strict.clear().await?;
        guard.settle_all(|_| LaxRemote::default(), false);
        Ok(())
    }

    async fn clear_on_instance(&self) -> Result<(), DistkitError> {
        let inner = &self.inner;
        let guard = inner.buffer.lock_flushed(&**inner).await?;
        inner.strict.clear_on_instance().await?;
        // This instance's slices are 0 now; the cumulatives are read again.
        guard.settle_all(
            |cell| LaxRemote {
                value: 0,
                aux: cell.aux().saturating_sub(cell.confirmed()),
            },
            true,
        );
        Ok(())
    }

    async fn inc_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        inner
            .settled(key, inner.strict.inc_if(key, cmp, count))
            .await
    }

    async fn set_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        inner
            .settled(key, inner.strict.set_if(key, cmp, count))
            .await
    }

    async fn set_on_instance_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        let inner = &self.inner;
        inner
            .settled(key, inner.strict.set_on_instance_if(key, cmp, count))
            .await
    }

    async fn get_all<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        self.inner.get_all(keys).await
    }

    async fn get_all_on_instance<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64)>, DistkitError> {
        let values = self.inner.get_all(keys).await?;
        Ok(values
            .into_iter()
            .map(|(key, _, slice)| (key, slice))
            .collect())
    }

    async fn inc_all<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let mut out = Vec::with_capacity(updates.len());
        for (key, count) in updates {
            let (cumulative, slice) = LaxBuffer::add_operation(
                &self.inner,
                "icounter.inc_all",
                key,
                *count,
                *count,
                estimate,
            )
            .await?;
            out.push((*key, cumulative, slice));
        }
        Ok(out)
    }

    async fn inc_all_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let inner = &self.inner;
        inner.settled_all(inner.strict.inc_all_if(updates)).await
    }

    async fn set_all<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let inner = &self.inner;
        inner.settled_all(inner.strict.set_all(updates)).await
    }

    async fn set_all_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let inner = &self.inner;
        inner.settled_all(inner.strict.set_all_if(updates)).await
    }

    async fn set_all_on_instance<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let inner = &self.inner;
        inner
            .settled_all(inner.strict.set_all_on_instance(updates))
            .await
    }

    async fn set_all_on_instance_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let inner = &self.inner;
        inner
            .settled_all(inner.strict.set_all_on_instance_if(updates))
            .await
    }

    async fn live_instances(&self) -> Result<Vec<InstanceInfo>, DistkitError> {
        self.inner.strict.live_instances().await
    }
}
