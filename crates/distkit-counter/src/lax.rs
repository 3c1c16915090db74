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
//! Each key this process touched has a cell in a `DashMap`, holding two
//! numbers: the *local view* (the stored value last confirmed by Redis plus
//! every local delta Redis has not confirmed yet) and the *confirmed remote*
//! value. `inc` adds to the local view (a compare-and-swap that refuses
//! `i64` overflow) while holding the map's shard read lock: no mutex, no
//! allocation, no clock read. The difference `view - remote` is the pending
//! delta.
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
//! confirms, the cell's confirmed remote value becomes the stored value and
//! the view is corrected by what other processes added, so a process that
//! only increments never sees its reads go backwards.
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
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use distkit_core::{CounterComparator, DistkitError, DistkitRedisKey, spawn_weak_loop};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::strict::{negate, single_result, zip_keys, zip_pairs};
use crate::{CounterOptions, CounterTrait};

/// How long the per-instance flush record (last applied sequence) lives.
const FLUSH_RECORD_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// A cached key not flushed, read or refreshed for this many ticks is read
/// from Redis again by `get`.
const STALE_AFTER_TICKS: u32 = 2;
/// A clean, unread key is evicted after this many quiet ticks.
const EVICT_AFTER_TICKS: u32 = 50;
/// Attempts of the final flush started when the last handle is dropped.
const FINAL_FLUSH_ATTEMPTS: u32 = 5;

/// The local state of one key.
#[derive(Debug)]
struct Cell {
    /// Confirmed remote value plus every local delta not yet confirmed.
    view: AtomicI64,
    /// The stored value as last confirmed by Redis. Written only while the
    /// flush lock is held.
    remote: AtomicI64,
    /// Set by reads; the next tick refreshes the key and clears it.
    read: AtomicBool,
    /// Ticks since the key was last flushed, read or refreshed.
    idle_ticks: AtomicU32,
}

impl Cell {
    fn new(value: i64, read: bool) -> Self {
        Self {
            view: AtomicI64::new(value),
            remote: AtomicI64::new(value),
            read: AtomicBool::new(read),
            idle_ticks: AtomicU32::new(0),
        }
    }

    /// Adds `count` to the local view unless that overflows `i64`.
    #[inline]
    fn add(&self, count: i64) -> Option<i64> {
        self.view
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                v.checked_add(count)
            })
            .ok()
            .map(|old| old.wrapping_add(count))
    }

    /// The pending delta. It can leave the `i64` range (a value moved from
    /// near `i64::MAX` to near `i64::MIN` in memory), hence `i128`.
    fn pending(&self) -> i128 {
        i128::from(self.view.load(Ordering::Acquire))
            - i128::from(self.remote.load(Ordering::Acquire))
    }

    /// Redis confirmed `stored`, which includes `confirmed_delta` of this
    /// cell's pending delta. Called with the flush lock held.
    fn settle(&self, stored: i64, confirmed_delta: i128) {
        let remote = self.remote.load(Ordering::Acquire);
        let correction = i128::from(stored) - i128::from(remote) - confirmed_delta;
        // The view is exact modulo 2^64 and the true value fits in i64, so
        // wrapping arithmetic lands on it.
        self.view.fetch_add(correction as i64, Ordering::AcqRel);
        self.remote.store(stored, Ordering::Release);
        self.idle_ticks.store(0, Ordering::Relaxed);
    }
}

struct BatchEntry {
    key: DistkitRedisKey,
    cell: Arc<Cell>,
    delta: i128,
}

/// One flush call: sent again unchanged until Redis confirms it.
struct Batch {
    sequence: u64,
    entries: Vec<BatchEntry>,
}

struct FlushState {
    next_sequence: u64,
    in_flight: Option<Batch>,
    evictable: usize,
}

struct LaxInner {
    store: Store,
    /// Keyed with ahash's randomly seeded hasher: several times faster than
    /// SipHash on short keys, and still resistant to chosen-key collisions.
    cells: DashMap<DistkitRedisKey, Arc<Cell>, ahash::RandomState>,
    flush: AsyncMutex<FlushState>,
    instance_id: String,
    flush_key: String,
    allowed_lag: Duration,
    refused_overflows: AtomicU64,
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
            .field("allowed_lag", &self.inner.allowed_lag)
            .field("cached_keys", &self.inner.cells.len())
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

fn overflow(operation: &'static str, key: &DistkitRedisKey, operand: i64) -> DistkitError {
    DistkitError::CounterOverflow {
        operation,
        key: key.as_str().to_owned(),
        operand,
    }
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
            cells: DashMap::with_hasher(ahash::RandomState::new()),
            flush: AsyncMutex::new(FlushState {
                next_sequence: 1,
                in_flight: None,
                evictable: 0,
            }),
            instance_id,
            flush_key,
            allowed_lag,
            refused_overflows: AtomicU64::new(0),
        });
        let background = spawn_weak_loop(&inner, allowed_lag, |inner| async move {
            inner.tick().await;
        });
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
        self.inner.flush().await
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
        self.inner.flush().await
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
        self.inner.cells.len()
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
        self.inner.refused_overflows.load(Ordering::Relaxed)
    }
}

impl Drop for LaxCounter {
    fn drop(&mut self) {
        // Best effort: flush what is still buffered on the current runtime.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.inner.clone();
        runtime.spawn(async move {
            for _ in 0..FINAL_FLUSH_ATTEMPTS {
                match inner.flush().await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, "distkit: final lax counter flush failed");
                        tokio::time::sleep(inner.allowed_lag).await;
                    }
                }
            }
        });
    }
}

impl LaxInner {
    async fn tick(&self) {
        let Ok(mut state) = self.flush.try_lock() else {
            return; // an explicit flush or a write is running
        };
        if let Err(error) = self.flush_locked(&mut state, true).await {
            tracing::warn!(%error, "distkit: lax counter flush failed; it will be retried");
            return;
        }
        if state.in_flight.is_none() && state.evictable > 0 {
            state.evictable = 0;
            self.cells.retain(|_, cell| {
                !(cell.idle_ticks.load(Ordering::Relaxed) >= EVICT_AFTER_TICKS
                    && !cell.read.load(Ordering::Relaxed)
                    && cell.pending() == 0)
            });
        }
    }

    async fn flush(&self) -> Result<(), DistkitError> {
        let mut state = self.flush.lock().await;
        self.flush_locked(&mut state, false).await
    }

    /// Locks the flush state and flushes everything buffered so far.
    async fn lock_flushed(&self) -> Result<MutexGuard<'_, FlushState>, DistkitError> {
        let mut state = self.flush.lock().await;
        self.flush_locked(&mut state, false).await?;
        Ok(state)
    }

    /// Resends the batch in flight (if any), then sends a new batch with
    /// every pending delta. On a tick, read keys are refreshed too and idle
    /// keys are counted.
    async fn flush_locked(&self, state: &mut FlushState, tick: bool) -> Result<(), DistkitError> {
        if let Some(batch) = &state.in_flight {
            self.send(batch).await?;
            state.in_flight = None;
        }
        if let Some(batch) = self.take_batch(state, tick) {
            let batch = state.in_flight.insert(batch);
            self.send(batch).await?;
            state.in_flight = None;
        }
        Ok(())
    }

    fn take_batch(&self, state: &mut FlushState, tick: bool) -> Option<Batch> {
        let mut entries = Vec::new();
        let mut evictable = 0;
        for item in self.cells.iter() {
            let cell = item.value();
            let delta = cell.pending();
            let read = tick && cell.read.swap(false, Ordering::AcqRel);
            if delta != 0 || read {
                entries.push(BatchEntry {
                    key: item.key().clone(),
                    cell: cell.clone(),
                    delta,
                });
            } else if tick {
                let idle = cell.idle_ticks.load(Ordering::Relaxed).saturating_add(1);
                cell.idle_ticks.store(idle, Ordering::Relaxed);
                if idle >= EVICT_AFTER_TICKS {
                    evictable += 1;
                }
            }
        }
        if tick {
            state.evictable = evictable;
        }
        if entries.is_empty() {
            return None;
        }
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        Some(Batch { sequence, entries })
    }

    async fn send(&self, batch: &Batch) -> Result<(), DistkitError> {
        let (_applied, flushed) = self
            .store
            .flush(
                &self.flush_key,
                batch.sequence,
                FLUSH_RECORD_TTL_MS,
                batch.entries.iter().map(|e| (&e.key, e.delta)),
            )
            .await?;
        for (entry, result) in batch.entries.iter().zip(flushed) {
            if result.refused {
                self.refused_overflows.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    key = entry.key.as_str(),
                    delta = entry.delta,
                    stored = result.value,
                    "distkit: lax counter delta dropped: the stored value would overflow i64"
                );
            }
            entry.cell.settle(result.value, entry.delta);
        }
        Ok(())
    }

    /// Reads `keys` from Redis and caches them; returns their cells. Keys
    /// already cached are refreshed, unless a batch is in flight (then the
    /// stored value may or may not include it, and the local view stands).
    async fn load(
        &self,
        keys: &[&DistkitRedisKey],
        read: bool,
    ) -> Result<Vec<Arc<Cell>>, DistkitError> {
        let state = self.flush.lock().await;
        let values = self.store.get_many(keys).await?;
        let mut cells = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(values) {
            let cell = match self.cells.get(*key) {
                Some(cell) => {
                    if state.in_flight.is_none() {
                        cell.settle(value, 0);
                    }
                    cell.clone()
                }
                None => self
                    .cells
                    .entry((*key).clone())
                    .or_insert_with(|| Arc::new(Cell::new(value, read)))
                    .clone(),
            };
            if read {
                cell.read.store(true, Ordering::Relaxed);
            }
            cells.push(cell);
        }
        drop(state);
        Ok(cells)
    }

    /// The local view of a cached, fresh key.
    #[inline]
    fn warm_get(&self, key: &DistkitRedisKey) -> Option<i64> {
        let cell = self.cells.get(key)?;
        if cell.idle_ticks.load(Ordering::Relaxed) >= STALE_AFTER_TICKS {
            return None;
        }
        if !cell.read.load(Ordering::Relaxed) {
            cell.read.store(true, Ordering::Relaxed);
        }
        Some(cell.view.load(Ordering::Acquire))
    }

    /// The warm path: adds to a cached key. The add happens under the shard
    /// read lock, so eviction (which takes the write lock and checks the
    /// pending delta) cannot remove the cell between the lookup and the add.
    #[inline]
    fn try_add(
        &self,
        operation: &'static str,
        key: &DistkitRedisKey,
        delta: i64,
        operand: i64,
    ) -> Option<Result<i64, DistkitError>> {
        let cell = self.cells.get(key)?;
        Some(
            cell.add(delta)
                .ok_or_else(|| overflow(operation, key, operand)),
        )
    }

    async fn add(
        &self,
        operation: &'static str,
        key: &DistkitRedisKey,
        delta: i64,
        operand: i64,
    ) -> Result<i64, DistkitError> {
        if let Some(result) = self.try_add(operation, key, delta, operand) {
            return result;
        }
        // The cold path is boxed so that the future of a warm `inc` stays
        // small (it is built and moved on every call).
        Box::pin(self.add_cold(operation, key, delta, operand)).await
    }

    async fn add_cold(
        &self,
        operation: &'static str,
        key: &DistkitRedisKey,
        delta: i64,
        operand: i64,
    ) -> Result<i64, DistkitError> {
        loop {
            self.load(&[key], false).await?;
            if let Some(result) = self.try_add(operation, key, delta, operand) {
                return result;
            }
        }
    }

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
        let _state = self.lock_flushed().await?;
        let result = if increment {
            self.store.inc_if_many(operation, updates).await?
        } else {
            self.store.set_if_many(operation, updates).await?
        };
        for ((key, _, _), (new, _)) in updates.iter().zip(&result) {
            self.settle_key(key, *new);
        }
        Ok(result)
    }

    /// Settles the cached cell of `key` (if any) on a value Redis returned
    /// while the flush lock is held and nothing is in flight.
    fn settle_key(&self, key: &DistkitRedisKey, stored: i64) {
        if let Some(cell) = self.cells.get(key) {
            cell.settle(stored, 0);
        }
    }
}

impl CounterTrait for LaxCounter {
    async fn inc(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        self.inner.add("inc", key, count, count).await
    }

    async fn dec(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        let delta = negate(count)?;
        self.inner.add("dec", key, delta, count).await
    }

    async fn get(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        if let Some(value) = self.inner.warm_get(key) {
            return Ok(value);
        }
        let cells = Box::pin(self.inner.load(&[key], true)).await?;
        cells
            .first()
            .map(|cell| cell.view.load(Ordering::Acquire))
            .ok_or_else(|| DistkitError::unexpected_reply("counter.get", "no value"))
    }

    async fn set(&self, key: &DistkitRedisKey, count: i64) -> Result<i64, DistkitError> {
        let _state = self.inner.lock_flushed().await?;
        let value = self.inner.store.set(key, count).await?;
        self.inner.settle_key(key, value);
        Ok(value)
    }

    async fn del(&self, key: &DistkitRedisKey) -> Result<i64, DistkitError> {
        let _state = self.inner.lock_flushed().await?;
        let removed = self.inner.store.del(key).await?;
        self.inner.settle_key(key, 0);
        Ok(removed)
    }

    async fn clear(&self) -> Result<(), DistkitError> {
        let _state = self.inner.lock_flushed().await?;
        self.inner.store.clear().await?;
        for item in self.inner.cells.iter() {
            item.value().settle(0, 0);
        }
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
            match self.inner.warm_get(key) {
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
            let cells = self.inner.load(&missing_keys, true).await?;
            for (index, cell) in missing.iter().zip(cells) {
                if let Some(slot) = values.get_mut(*index) {
                    *slot = cell.view.load(Ordering::Acquire);
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
        let _state = self.inner.lock_flushed().await?;
        self.inner.store.set_many(updates).await?;
        for (key, value) in updates {
            self.inner.settle_key(key, *value);
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
