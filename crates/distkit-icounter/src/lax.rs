//! [`LaxInstanceAwareCounter`]: lock-free local `inc`/`dec`, flushed in
//! batches.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey, spawn_weak_loop};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::instance::InstanceInfo;
use crate::protocol::{Op, OpKind};
use crate::{
    InstanceAwareCounterTrait, LaxInstanceAwareCounterOptions, StrictInstanceAwareCounter,
};

/// Local state of one key.
#[derive(Debug)]
struct Cell {
    /// Deltas not yet sent.
    pending: AtomicI64,
    /// Deltas sent in a batch whose reply has not arrived.
    in_flight: AtomicI64,
    /// Last cumulative and slice reported by Redis.
    cumulative: AtomicI64,
    slice: AtomicI64,
    /// When the remote values were last refreshed.
    fetched_at: Mutex<Option<Instant>>,
}

impl Cell {
    fn new() -> Self {
        Self {
            pending: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
            cumulative: AtomicI64::new(0),
            slice: AtomicI64::new(0),
            fetched_at: Mutex::new(None),
        }
    }

    fn estimate(&self) -> (i64, i64) {
        let local = self
            .pending
            .load(Ordering::Acquire)
            .saturating_add(self.in_flight.load(Ordering::Acquire));
        (
            self.cumulative
                .load(Ordering::Acquire)
                .saturating_add(local),
            self.slice.load(Ordering::Acquire).saturating_add(local),
        )
    }

    fn store_remote(&self, cumulative: i64, slice: i64) {
        self.cumulative.store(cumulative, Ordering::Release);
        self.slice.store(slice, Ordering::Release);
        if let Ok(mut at) = self.fetched_at.lock() {
            *at = Some(Instant::now());
        }
    }

    fn fresh(&self, allowed_lag: Duration) -> bool {
        self.fetched_at
            .lock()
            .ok()
            .and_then(|at| *at)
            .is_some_and(|at| at.elapsed() <= allowed_lag)
    }
}

/// A batch sent to Redis, kept until Redis confirmed it.
#[derive(Debug)]
struct Batch {
    seq: u64,
    deltas: Vec<(String, i64)>,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Sequence of the next batch; 0 until read from Redis.
    next_seq: u64,
    /// A batch whose outcome is unknown (the call failed): resent as is,
    /// with the same sequence, before anything else.
    unconfirmed: Option<Batch>,
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
/// runs on the strict counter.
///
/// Pending deltas are lost if the counter is dropped without
/// [`shutdown`](Self::shutdown) (or a final [`flush`](Self::flush)).
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
    strict: Arc<StrictInstanceAwareCounter>,
    cells: DashMap<String, Arc<Cell>>,
    flush_state: tokio::sync::Mutex<FlushState>,
    allowed_lag: Duration,
    flush_task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LaxInstanceAwareCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaxInstanceAwareCounter")
            .field("strict", &self.strict)
            .field("cells", &self.cells.len())
            .field("allowed_lag", &self.allowed_lag)
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
        let counter = Arc::new(Self {
            strict: StrictInstanceAwareCounter::new(options.strict()),
            cells: DashMap::new(),
            flush_state: tokio::sync::Mutex::new(FlushState::default()),
            allowed_lag: options.allowed_lag,
            flush_task: Mutex::new(None),
        });
        let task = spawn_weak_loop(&counter, options.flush_interval, |counter| async move {
            if let Err(error) = counter.flush().await {
                tracing::debug!(instance = %counter.instance_id(), %error, "distkit: icounter flush failed; retried next tick");
            }
        });
        if let Ok(mut slot) = counter.flush_task.lock() {
            *slot = task;
        }
        counter
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
        self.strict.instance_id()
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
        &self.strict
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
        let mut state = self.flush_state.lock().await;
        if state.next_seq == 0 {
            state.next_seq = self.last_flush_seq().await?.saturating_add(1);
        }
        if let Some(batch) = state.unconfirmed.take() {
            // Keep it until confirmed, even if this future is dropped.
            state.unconfirmed = Some(Batch {
                seq: batch.seq,
                deltas: batch.deltas.clone(),
            });
            self.send(&batch).await?;
            state.unconfirmed = None;
        }
        let mut deltas = Vec::new();
        for entry in self.cells.iter() {
            let delta = entry.pending.swap(0, Ordering::AcqRel);
            if delta != 0 {
                entry.in_flight.fetch_add(delta, Ordering::AcqRel);
                deltas.push((entry.key().clone(), delta));
            }
        }
        let batch = Batch {
            seq: state.next_seq,
            deltas,
        };
        state.next_seq = state.next_seq.saturating_add(1);
        state.unconfirmed = Some(Batch {
            seq: batch.seq,
            deltas: batch.deltas.clone(),
        });
        self.send(&batch).await?;
        state.unconfirmed = None;
        Ok(())
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

    async fn last_flush_seq(&self) -> Result<u64, DistkitError> {
        let mut conn = self.strict.connection();
        let last: Option<u64> = distkit_core::redis::cmd("HGET")
            .arg(self.strict.flushes_key())
            .arg(self.instance_id())
            .query_async(&mut conn)
            .await
            .map_err(|e| DistkitError::redis("icounter.flush", e))?;
        Ok(last.unwrap_or(0))
    }

    async fn send(&self, batch: &Batch) -> Result<(), DistkitError> {
        let ops: Vec<Op> = batch
            .deltas
            .iter()
            .map(|(key, delta)| Op::new(OpKind::Inc, key, *delta, CounterComparator::Nil))
            .collect();
        // An empty batch is a heartbeat.
        let results = self.strict.apply_flush(&ops, batch.seq).await?;
        for ((key, delta), result) in batch.deltas.iter().zip(results) {
            if let Some(cell) = self.cells.get(key) {
                match result {
                    Some((cumulative, slice)) => cell.store_remote(cumulative, slice),
                    None => tracing::error!(
                        key,
                        delta,
                        "distkit: icounter flush would overflow i64; delta dropped"
                    ),
                }
                cell.in_flight.fetch_sub(*delta, Ordering::AcqRel);
            }
        }
        Ok(())
    }

    fn cell(&self, key: &DistkitRedisKey) -> Option<Arc<Cell>> {
        self.cells.get(key.as_str()).map(|cell| Arc::clone(&cell))
    }

    async fn cold_cell(&self, key: &DistkitRedisKey) -> Result<Arc<Cell>, DistkitError> {
        if let Some(cell) = self.cell(key) {
            return Ok(cell);
        }
        let (cumulative, slice) = self.strict.get(key).await?;
        let cell = self
            .cells
            .entry(key.as_str().to_owned())
            .or_insert_with(|| {
                let cell = Cell::new();
                cell.store_remote(cumulative, slice);
                Arc::new(cell)
            })
            .clone();
        Ok(cell)
    }

    fn add(cell: &Cell, key: &DistkitRedisKey, delta: i64) -> Result<(i64, i64), DistkitError> {
        cell.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                pending.checked_add(delta)
            })
            .map_err(|_| DistkitError::CounterOverflow {
                operation: "icounter.inc",
                key: key.as_str().to_owned(),
                operand: delta,
            })?;
        Ok(cell.estimate())
    }

    async fn local_add(
        &self,
        key: &DistkitRedisKey,
        delta: i64,
    ) -> Result<(i64, i64), DistkitError> {
        if let Some(cell) = self.cell(key) {
            return Self::add(&cell, key, delta);
        }
        let cell = self.cold_cell(key).await?;
        Self::add(&cell, key, delta)
    }

    fn record(&self, key: &DistkitRedisKey, values: (i64, i64)) -> (i64, i64) {
        match self.cell(key) {
            Some(cell) => {
                cell.store_remote(values.0, values.1);
                cell.estimate()
            }
            None => values,
        }
    }

    fn record_all<'a>(
        &self,
        values: Vec<(&'a DistkitRedisKey, i64, i64)>,
    ) -> Vec<(&'a DistkitRedisKey, i64, i64)> {
        values
            .into_iter()
            .map(|(key, cumulative, slice)| {
                let (cumulative, slice) = self.record(key, (cumulative, slice));
                (key, cumulative, slice)
            })
            .collect()
    }
}

#[async_trait]
impl InstanceAwareCounterTrait for LaxInstanceAwareCounter {
    fn instance_id(&self) -> &str {
        self.strict.instance_id()
    }

    async fn inc(&self, key: &DistkitRedisKey, count: i64) -> Result<(i64, i64), DistkitError> {
        self.local_add(key, count).await
    }

    async fn dec(&self, key: &DistkitRedisKey, count: i64) -> Result<(i64, i64), DistkitError> {
        let negated = count
            .checked_neg()
            .ok_or_else(|| DistkitError::CounterOverflow {
                operation: "icounter.dec",
                key: key.as_str().to_owned(),
                operand: count,
            })?;
        self.local_add(key, negated).await
    }

    async fn get(&self, key: &DistkitRedisKey) -> Result<(i64, i64), DistkitError> {
        if let Some(cell) = self.cell(key)
            && cell.fresh(self.allowed_lag)
        {
            return Ok(cell.estimate());
        }
        let values = self.strict.get(key).await?;
        match self.cell(key) {
            Some(_) => Ok(self.record(key, values)),
            None => Ok(values),
        }
    }

    async fn set(&self, key: &DistkitRedisKey, count: i64) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let values = self.strict.set(key, count).await?;
        Ok(self.record(key, values))
    }

    async fn set_on_instance(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let values = self.strict.set_on_instance(key, count).await?;
        Ok(self.record(key, values))
    }

    async fn del(&self, key: &DistkitRedisKey) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let values = self.strict.del(key).await?;
        self.record(key, (0, 0));
        Ok(values)
    }

    async fn del_on_instance(&self, key: &DistkitRedisKey) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let (cumulative, removed) = self.strict.del_on_instance(key).await?;
        self.record(key, (cumulative, 0));
        Ok((cumulative, removed))
    }

    async fn clear(&self) -> Result<(), DistkitError> {
        self.flush().await?;
        self.strict.clear().await?;
        for cell in self.cells.iter() {
            cell.store_remote(0, 0);
        }
        Ok(())
    }

    async fn clear_on_instance(&self) -> Result<(), DistkitError> {
        self.flush().await?;
        self.strict.clear_on_instance().await?;
        for cell in self.cells.iter() {
            if let Ok(mut at) = cell.fetched_at.lock() {
                *at = None;
            }
        }
        Ok(())
    }

    async fn inc_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let values = self.strict.inc_if(key, cmp, count).await?;
        Ok(self.record(key, values))
    }

    async fn set_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let values = self.strict.set_if(key, cmp, count).await?;
        Ok(self.record(key, values))
    }

    async fn set_on_instance_if(
        &self,
        key: &DistkitRedisKey,
        cmp: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        self.flush().await?;
        let values = self.strict.set_on_instance_if(key, cmp, count).await?;
        Ok(self.record(key, values))
    }

    async fn get_all<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        let values = self.strict.get_all(keys).await?;
        Ok(self.record_all(values))
    }

    async fn get_all_on_instance<'a>(
        &self,
        keys: &[&'a DistkitRedisKey],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64)>, DistkitError> {
        let values = self.get_all(keys).await?;
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
            let (cumulative, slice) = self.local_add(key, *count).await?;
            out.push((*key, cumulative, slice));
        }
        Ok(out)
    }

    async fn inc_all_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        self.flush().await?;
        let values = self.strict.inc_all_if(updates).await?;
        Ok(self.record_all(values))
    }

    async fn set_all<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        self.flush().await?;
        let values = self.strict.set_all(updates).await?;
        Ok(self.record_all(values))
    }

    async fn set_all_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        self.flush().await?;
        let values = self.strict.set_all_if(updates).await?;
        Ok(self.record_all(values))
    }

    async fn set_all_on_instance<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        self.flush().await?;
        let values = self.strict.set_all_on_instance(updates).await?;
        Ok(self.record_all(values))
    }

    async fn set_all_on_instance_if<'a>(
        &self,
        updates: &[(&'a DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'a DistkitRedisKey, i64, i64)>, DistkitError> {
        self.flush().await?;
        let values = self.strict.set_all_on_instance_if(updates).await?;
        Ok(self.record_all(values))
    }

    async fn live_instances(&self) -> Result<Vec<InstanceInfo>, DistkitError> {
        self.strict.live_instances().await
    }
}
