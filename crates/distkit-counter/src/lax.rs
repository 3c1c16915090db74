//! [`LaxCounter`]: increments buffered in memory, flushed to Redis in the
//! background every `allowed_lag`.
//!
//! Use it for high-rate metrics (page views, API calls) where a read may lag
//! the fleet's true total by a few tens of milliseconds: `inc` on a warm key
//! is an atomic add in memory, and one Lua script call per `allowed_lag`
//! carries every dirty key to Redis. Use [`StrictCounter`](crate::StrictCounter)
//! when every read must reflect every write at once.
//!
//! # How it works
//!
//! The buffer is `distkit_core::lax::LaxBuffer`, shared with the lax
//! instance-aware counter. Each key this process touched has a cell holding
//! two numbers: the *local view* (the stored value last confirmed by Redis
//! plus every local delta Redis has not confirmed yet) and the *confirmed*
//! value; the difference is the pending delta. `inc` finds the cell in a
//! small per-thread cache of cell handles (the shared map only on a miss)
//! and adds to the local view with one compare-and-swap that refuses `i64`
//! overflow: no lock, no allocation, no clock read.
//!
//! Every `allowed_lag` a background task (holding only a `Weak` reference)
//! takes the pending delta of every dirty key into one *batch* and sends it
//! as one `counter/flush` script call. The batch carries this instance's
//! random id and a sequence number; the script records the last sequence
//! applied per instance, so a batch whose reply was lost and that is sent
//! again is not applied twice. A batch stays *in flight* until Redis
//! confirmed it: on error it is resent, unchanged (same sequence, same
//! deltas), on the next tick, and no newer batch is built meanwhile.
//! Increments made meanwhile simply wait in the local view. When Redis
//! confirms, the cell's confirmed value becomes the stored value and the
//! view is corrected by what other processes added, so a process that only
//! increments never sees its reads go backwards.
//!
//! # Reads
//!
//! `get` returns the local view when the key was flushed or refreshed in the
//! last two ticks; keys that are read are refreshed by the next flush (their
//! current stored value comes back in the same script call). A key that was
//! quiet for longer, or is not cached, is read from Redis (one round trip).
//!
//! # Writes that act on Redis at once
//!
//! `set`, `del`, `clear`, and the conditional and batch writes (`inc_if`,
//! `set_if`, `inc_all`, `set_all`, `inc_all_if`, `set_all_if`) go to Redis
//! at once, exactly as on a `StrictCounter`. The rule for the buffer: every
//! delta recorded **before** the call started is flushed first (the call
//! fails if that flush fails), so the operation covers it: a `set` overwrites
//! it, a `del` or `clear` deletes it, a conditional write compares against
//! it. No buffered delta is ever dropped, and none can land after the
//! operation and resurrect a deleted value. A delta recorded **while** the
//! call runs (from another task) is ordered after it and flushed later.
//!
//! # Memory
//!
//! A key that stayed flushed and untouched for 50 ticks (1 s with the default
//! lag) is evicted from memory; the next operation on it reloads it.
//!
//! # Limits
//!
//! - Buffered increments that were never confirmed are lost if the process
//!   dies. Call [`LaxCounter::flush`] or [`LaxCounter::shutdown`] before a
//!   planned exit; dropping the last handle starts a best-effort final flush
//!   on the current Tokio runtime.
//! - The idempotency record of an instance lives 24 hours after its last
//!   flush; a retry is never that late in practice.
//! - If a flushed delta would push the stored value out of the `i64` range
//!   (other processes brought it close), Redis refuses that key's delta; it
//!   is dropped, logged with `tracing::error!`, and counted in
//!   [`LaxCounter::refused_overflows`]. The `inc` that recorded it already
//!   returned `Ok`.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use distkit_core::lax::{LaxBackend, LaxBatchEntry, LaxBuffer, LaxFlushed, LaxRemote};
use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey};
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::strict::{negate, single_result, zip_keys, zip_pairs};
use crate::{CounterOptions, CounterTrait};

/// How long the per-instance flush record (last applied sequence) lives.
const FLUSH_RECORD_TTL_MS: u64 = 24 * 60 * 60 * 1000;

struct LaxInner {
    store: Store,
    buffer: LaxBuffer,
    instance_id: String,
    flush_key: String,
}

impl LaxBackend for LaxInner {
    fn buffer(&self) -> &LaxBuffer {
        &self.buffer
    }

    async fn load(&self, keys: &[&DistkitRedisKey]) -> Result<Vec<LaxRemote>, DistkitError> {
        let values = self.store.get_many(keys).await?;
        Ok(values.into_iter().map(LaxRemote::new).collect())
    }

    async fn send(
        &self,
        sequence: u64,
        batch: &[LaxBatchEntry],
    ) -> Result<Vec<LaxFlushed>, DistkitError> {
        let (_applied, flushed) = self
            .store
            .flush(
                &self.flush_key,
                sequence,
                FLUSH_RECORD_TTL_MS,
                batch.iter().map(|entry| (entry.key(), entry.delta())),
            )
            .await?;
        Ok(flushed
            .into_iter()
            .map(|result| {
                let remote = LaxRemote::new(result.value);
                if result.refused {
                    LaxFlushed::Refused(Some(remote))
                } else {
                    LaxFlushed::Applied(remote)
                }
            })
            .collect())
    }
}

/// A distributed counter that buffers increments in memory and flushes them
/// to Redis every [`allowed_lag`](CounterOptions::allowed_lag).
///
/// See the [module documentation](crate::lax) for the flush protocol, the
/// rule for `set`/`del`/`clear`, and the limits. Values are shared with every
/// [`StrictCounter`](crate::StrictCounter) and `LaxCounter` of the same prefix.
///
/// # Cancel safety
///
/// `inc`, `dec` and `get` on a cached key complete without awaiting. Dropping
/// a [`flush`](Self::flush) future never loses a delta: a batch that was
/// being sent stays in flight and is resent (idempotently) by the next flush.
/// Dropping a write that acts on Redis (`set`, `del`, ...) after its request
/// went out does not take the request back.
///
/// ```
/// use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter, StrictCounter};
///
/// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
/// # let conn = distkit_testkit::shared_server().connection_manager().await;
/// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_lax"))?;
/// let options = CounterOptions::new(prefix, conn);
/// let views = DistkitRedisKey::try_from("views")?;
/// let lax = LaxCounter::new(options.clone());
/// for _ in 0..1000 {
///     lax.inc(&views, 1).await?;
/// }
/// assert_eq!(lax.get(&views).await?, 1000); // the local view
/// lax.flush().await?; // or wait about `allowed_lag`
/// assert_eq!(StrictCounter::new(options).get(&views).await?, 1000);
/// # Ok(()) }
/// ```
pub struct LaxCounter {
    inner: Arc<LaxInner>,
    background: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LaxCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaxCounter")
            .field("values_key", &self.inner.store.values_key())
            .field("instance_id", &self.inner.instance_id)
            .field("allowed_lag", &self.inner.buffer.flush_interval())
            .field("cached_keys", &self.inner.buffer.cached_keys())
            .finish_non_exhaustive()
    }
}

/// 128 random bits as hex, from the standard library's randomly keyed hasher.
fn random_instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut id = String::with_capacity(32);
    for salt in 0..2u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id
}

impl LaxCounter {
    /// A lax counter over `options.prefix`, flushing every
    /// `options.allowed_lag`. The background flush starts when called inside
    /// a Tokio runtime; outside one, only explicit [`flush`](Self::flush)es
    /// reach Redis.
    ///
    /// ```
    /// use distkit_counter::{CounterOptions, DistkitRedisKey, LaxCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// let counter = LaxCounter::new(CounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn));
    /// # Ok(()) }
    /// ```
    pub fn new(options: CounterOptions) -> Arc<Self> {
        let store = Store::new(&options.prefix, options.connection);
        let instance_id = random_instance_id();
        let flush_key = store.layout_key(&["flush", &instance_id]);
        let allowed_lag = options.allowed_lag.max(Duration::from_millis(1));
        let inner = Arc::new(LaxInner {
            store,
            buffer: LaxBuffer::new(allowed_lag, allowed_lag),
            instance_id,
            flush_key,
        });
        let background = LaxBuffer::spawn_flush_loop(&inner);
        Arc::new(Self { inner, background })
    }

    /// Sends every buffered delta to Redis now and waits for the
    /// confirmation. When it returns `Ok`, every increment made before the
    /// call is stored in Redis.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a batch whose send was interrupted stays in flight and
    /// the next flush resends it; Redis applies it at most once.
    ///
    /// ```
    /// # use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_flush"))?;
    /// let counter = LaxCounter::new(CounterOptions::new(prefix, conn));
    /// counter.inc(&DistkitRedisKey::try_from("k")?, 3).await?;
    /// counter.flush().await?;
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<(), DistkitError> {
        self.inner.buffer.flush(&*self.inner).await
    }

    /// Stops the background flush and flushes everything buffered. Later
    /// increments are buffered and reach Redis only through
    /// [`flush`](Self::flush) (or the final flush when the counter is
    /// dropped).
    ///
    /// # Cancel safety
    ///
    /// As for [`flush`](Self::flush); the background task is stopped either way.
    ///
    /// ```
    /// # use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_shutdown"))?;
    /// let counter = LaxCounter::new(CounterOptions::new(prefix, conn));
    /// counter.inc(&DistkitRedisKey::try_from("k")?, 3).await?;
    /// counter.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown(&self) -> Result<(), DistkitError> {
        if let Some(background) = &self.background {
            background.abort();
        }
        self.inner.buffer.flush(&*self.inner).await
    }

    /// How many keys are cached in memory (quiet keys are evicted).
    ///
    /// ```
    /// # use distkit_counter::{CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// # let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("doc_cached"))?;
    /// let counter = LaxCounter::new(CounterOptions::new(prefix, conn));
    /// counter.inc(&DistkitRedisKey::try_from("k")?, 1).await?;
    /// assert_eq!(counter.cached_keys(), 1);
    /// # Ok(()) }
    /// ```
    pub fn cached_keys(&self) -> usize {
        self.inner.buffer.cached_keys()
    }

    /// This instance's random id, which names its flush record in Redis.
    ///
    /// ```
    /// # use distkit_counter::{CounterOptions, DistkitRedisKey, LaxCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// let counter = LaxCounter::new(CounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn));
    /// assert_eq!(counter.instance_id().len(), 32);
    /// # Ok(()) }
    /// ```
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// How many flushed deltas Redis refused because the stored value would
    /// have left the `i64` range (see the module docs).
    ///
    /// ```
    /// # use distkit_counter::{CounterOptions, DistkitRedisKey, LaxCounter};
    /// # #[tokio::main] async fn main() -> Result<(), distkit_counter::DistkitError> {
    /// # let conn = distkit_testkit::shared_server().connection_manager().await;
    /// let counter = LaxCounter::new(CounterOptions::new(DistkitRedisKey::try_from("my_app")?, conn));
    /// assert_eq!(counter.refused_overflows(), 0);
    /// # Ok(()) }
    /// ```
    pub fn refused_overflows(&self) -> u64 {
        self.inner.buffer.refused_overflows()
    }
}

impl Drop for LaxCounter {
    fn drop(&mut self) {
        // Best effort: flush what is still buffered on the current runtime.
        LaxBuffer::spawn_final_flush(Arc::clone(&self.inner));
    }
}

impl LaxInner {
    /// A conditional (or batch) write on Redis, after flushing the buffer;
    /// `increment` selects `inc_if` over `set_if` semantics.
    async fn conditional(
        &self,
        operation: &'static str,
        increment: bool,
        updates: &[(&DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(i64, i64)>, DistkitError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let guard = self.buffer.lock_flushed(self).await?;
        let result = if increment {
            self.store.inc_if_many(operation, updates).await?
        } else {
            self.store.set_if_many(operation, updates).await?
        };
        for ((key, _, _), (new, _)) in updates.iter().zip(&result) {
            guard.settle(key, LaxRemote::new(*new));
        }
        Ok(result)
    }
}

impl CounterTrait for LaxCounter {
    // The hand-written future of the whole add: no async state machine
    // around the warm path.
    fn inc(
        &self,
        key: &DistkitRedisKey,
        count: i64,
    ) -> impl Future<Output = Result<i64, DistkitError>> + Send {
        LaxBuffer::add_operation(&self.inner, "inc", key, count, count, |_, view| view)
    }

    async fn dec(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        let delta = negate(count)?;
        LaxBuffer::add_operation(&self.inner, "dec", key, delta, count, |_, view| view).await
    }

    async fn get(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        if let Some(value) = self.inner.buffer.get(key, |cell| cell.view()) {
            return Ok(value);
        }
        let cells = Box::pin(self.inner.buffer.load(&*self.inner, &[key], true)).await?;
        cells
            .first()
            .map(|cell| cell.view())
            .ok_or_else(|| DistkitError::unexpected_reply("counter.get", "no value"))
    }

    async fn set(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        let guard = self.inner.buffer.lock_flushed(&*self.inner).await?;
        let value = self.inner.store.set(key, count).await?;
        guard.settle(key, LaxRemote::new(value));
        Ok(value)
    }

    async fn del(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        let guard = self.inner.buffer.lock_flushed(&*self.inner).await?;
        let removed = self.inner.store.del(key).await?;
        guard.settle(key, LaxRemote::new(0));
        Ok(removed)
    }

    async fn clear(&self) -> Result<(), DistkitError> {
        let guard = self.inner.buffer.lock_flushed(&*self.inner).await?;
        self.inner.store.clear().await?;
        guard.settle_all(|_| LaxRemote::new(0), false);
        Ok(())
    }

    async fn inc_if(
        &self,
        key: &DistkitRedisKey,
        comparator: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        single_result(
            self.inner
                .conditional("inc_if", true, &[(key, comparator, count)])
                .await?,
            "counter.inc_if",
        )
    }

    async fn set_if(
        &self,
        key: &DistkitRedisKey,
        comparator: CounterComparator,
        count: i64,
    ) -> Result<(i64, i64), DistkitError> {
        single_result(
            self.inner
                .conditional("set_if", false, &[(key, comparator, count)])
                .await?,
            "counter.set_if",
        )
    }

    async fn get_all<'k>(
        &self,
        keys: &[&'k DistkitRedisKey],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError> {
        let mut values = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            match self.inner.buffer.get(key, |cell| cell.view()) {
                Some(value) => values.push(value),
                None => {
                    values.push(0);
                    missing.push(index);
                }
            }
        }
        if !missing.is_empty() {
            let missing_keys: Vec<&DistkitRedisKey> = missing
                .iter()
                .filter_map(|i| keys.get(*i).copied())
                .collect();
            let cells = self
                .inner
                .buffer
                .load(&*self.inner, &missing_keys, true)
                .await?;
            for (index, cell) in missing.iter().zip(cells) {
                if let Some(slot) = values.get_mut(*index) {
                    *slot = cell.view();
                }
            }
        }
        Ok(zip_keys(keys.iter().copied(), values))
    }

    async fn inc_all<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError> {
        let conditional: Vec<_> = updates
            .iter()
            .map(|(key, delta)| (*key, CounterComparator::Nil, *delta))
            .collect();
        let result = self
            .inner
            .conditional("inc_all", true, &conditional)
            .await?;
        Ok(zip_keys(
            updates.iter().map(|(k, _)| *k),
            result.into_iter().map(|(new, _)| new).collect(),
        ))
    }

    async fn set_all<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64)>, DistkitError> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let guard = self.inner.buffer.lock_flushed(&*self.inner).await?;
        self.inner.store.set_many(updates).await?;
        for (key, value) in updates {
            guard.settle(key, LaxRemote::new(*value));
        }
        Ok(updates.to_vec())
    }

    async fn inc_all_if<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64, i64)>, DistkitError> {
        let result = self.inner.conditional("inc_all_if", true, updates).await?;
        Ok(zip_pairs(updates.iter().map(|(k, _, _)| *k), result))
    }

    async fn set_all_if<'k>(
        &self,
        updates: &[(&'k DistkitRedisKey, CounterComparator, i64)],
    ) -> Result<Vec<(&'k DistkitRedisKey, i64, i64)>, DistkitError> {
        let result = self.inner.conditional("set_all_if", false, updates).await?;
        Ok(zip_pairs(updates.iter().map(|(k, _, _)| *k), result))
    }
}
