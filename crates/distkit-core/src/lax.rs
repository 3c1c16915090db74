//! The local buffer shared by the lax counters: per-key cells with a
//! lock-free pending delta, idempotent batched flushes, eviction of idle
//! keys, and the `Weak`-owned flush loop.
//!
//! [`LaxBuffer`] holds the mechanics; a [`LaxBackend`] (one per primitive)
//! says how a batch of deltas and a read of stored values travel to Redis.
//!
//! # Cells
//!
//! Each key this process touched has a [`LaxCell`] holding the *view* (the
//! value Redis last confirmed plus every local delta it has not confirmed
//! yet) and the *confirmed* value; the pending delta is `view - confirmed`.
//! A cell can also carry one more confirmed number, `aux`, which the
//! primitive defines (the instance-aware counter keeps the cumulative there).
//!
//! # The warm path
//!
//! [`LaxBuffer::add`] finds the cell in a small per-thread cache of cell
//! handles (direct-mapped by a hash of the key, checked against the key
//! itself), falling back to the shared map on a miss, and adds with one
//! compare-and-swap that refuses `i64` overflow. A cache hit takes no lock,
//! allocates nothing, reads no clock and writes no shared memory besides the
//! cell itself, so threads working on different keys do not contend.
//! [`LaxBuffer::add_operation`] wraps it in a hand-written future for the
//! primitives' `inc`/`dec`: the slot hash and key comparison read whole
//! words (no call to `memcpy` or `memcmp`), and no `async fn` state machine
//! copies the arguments on the first poll.
//!
//! # Flushing
//!
//! Every tick (the flush interval) the pending delta of every dirty key goes
//! into one batch, sent with a per-instance sequence number that the backend
//! records in the same Redis call, so a batch whose reply was lost and that
//! is sent again is applied at most once. A batch stays *in flight* until
//! Redis confirmed it: on error it is resent unchanged (same sequence, same
//! deltas) before any newer batch is built. On confirmation the cell's
//! confirmed value becomes the stored value and the view is corrected by
//! what other processes changed, so a process that only increments never
//! sees its reads go backwards.
//!
//! # Eviction
//!
//! A key with nothing pending that was neither written nor read for
//! [`EVICT_AFTER_TICKS`] ticks is removed from the map. A per-thread cache
//! may still hold its cell: eviction marks the cell first and re-checks its
//! pending delta, and an add re-checks the mark after adding (both
//! sequentially consistent), so at least one side sees the other. An add that
//! landed on an evicted cell moves its delta to the live cell of the key (or
//! puts the cell back): no delta is lost.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use distkit_core::lax::{LaxAdd, LaxBackend, LaxBatchEntry, LaxBuffer, LaxFlushed, LaxRemote};
//! use distkit_core::{DistkitError, DistkitRedisKey};
//!
//! /// A backend that keeps the "stored" values in memory.
//! struct Memory {
//!     buffer: LaxBuffer,
//!     stored: Mutex<HashMap<String, i64>>,
//! }
//!
//! impl LaxBackend for Memory {
//!     fn buffer(&self) -> &LaxBuffer {
//!         &self.buffer
//!     }
//!     async fn load(&self, keys: &[&DistkitRedisKey]) -> Result<Vec<LaxRemote>, DistkitError> {
//!         let stored = self.stored.lock().unwrap();
//!         Ok(keys.iter().map(|k| LaxRemote::new(*stored.get(k.as_str()).unwrap_or(&0))).collect())
//!     }
//!     async fn send(&self, _sequence: u64, batch: &[LaxBatchEntry]) -> Result<Vec<LaxFlushed>, DistkitError> {
//!         let mut stored = self.stored.lock().unwrap();
//!         Ok(batch
//!             .iter()
//!             .map(|entry| {
//!                 let value = stored.entry(entry.key().as_str().to_owned()).or_insert(0);
//!                 *value += i64::try_from(entry.delta()).unwrap();
//!                 LaxFlushed::Applied(LaxRemote::new(*value))
//!             })
//!             .collect())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), DistkitError> {
//! let tick = Duration::from_millis(20);
//! let backend = Memory { buffer: LaxBuffer::new(tick, tick), stored: Mutex::default() };
//! let key = DistkitRedisKey::try_from("views")?;
//! let buffer = backend.buffer();
//! // A cold key is loaded first; then an add is an atomic add in memory.
//! assert!(matches!(buffer.add(&key, 2, |_, view| view), LaxAdd::Cold));
//! assert_eq!(buffer.add_cold(&backend, &key, 2, |_, view| view).await?, Some(2));
//! assert_eq!(buffer.add(&key, 3, |_, view| view).added(), Some(5));
//! assert_eq!(backend.stored.lock().unwrap().get("views"), None);
//! buffer.flush(&backend).await?;
//! assert_eq!(backend.stored.lock().unwrap().get("views"), Some(&5));
//! # Ok(()) }
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};
use tokio::task::JoinHandle;

use crate::fastkey::{self, InlineKey};
use crate::{DistkitError, DistkitRedisKey, spawn_weak_loop};

/// A key with nothing pending, neither written nor read for this many ticks,
/// is evicted from memory.
pub const EVICT_AFTER_TICKS: u32 = 50;
/// Attempts of the final flush started by [`LaxBuffer::spawn_final_flush`].
const FINAL_FLUSH_ATTEMPTS: u32 = 5;
/// Slots of the per-thread cache of cell handles (a power of two).
const CACHE_SLOTS: usize = 4096;

/// Values Redis reported for one key: the primitive's value and its
/// optional second number (`aux`, 0 when unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LaxRemote {
    /// The stored value the buffer tracks (a counter's value, an instance's
    /// slice).
    pub value: i64,
    /// A second stored number kept beside it (the instance-aware counter's
    /// cumulative).
    pub aux: i64,
}

impl LaxRemote {
    /// A remote value without a second number.
    ///
    /// ```
    /// # use distkit_core::lax::LaxRemote;
    /// assert_eq!(LaxRemote::new(7), LaxRemote { value: 7, aux: 0 });
    /// ```
    pub fn new(value: i64) -> Self {
        Self { value, aux: 0 }
    }
}

/// The outcome of one entry of a flushed batch, in batch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaxFlushed {
    /// Redis applied the delta (or had applied it in an earlier attempt);
    /// the values after it.
    Applied(LaxRemote),
    /// Redis refused the delta (the stored value would leave the `i64`
    /// range): the delta is dropped. The values as stored, when known; when
    /// not, the key is read again before it is served.
    Refused(Option<LaxRemote>),
}

/// How a primitive talks to Redis for its [`LaxBuffer`].
///
/// Both methods are called with the buffer's flush lock held, one at a time.
pub trait LaxBackend: Send + Sync + 'static {
    /// The buffer this backend serves.
    fn buffer(&self) -> &LaxBuffer;

    /// Reads the stored values of `keys`, in order (0 for a missing key).
    fn load(
        &self,
        keys: &[&DistkitRedisKey],
    ) -> impl Future<Output = Result<Vec<LaxRemote>, DistkitError>> + Send;

    /// Applies `batch` under `sequence` and returns one outcome per entry in
    /// order. Must be idempotent per sequence: a batch sent again after a
    /// lost reply is not applied twice, and its reply still reports the
    /// current values. An entry with a delta of 0 only asks for the current
    /// values (a read key being refreshed).
    fn send(
        &self,
        sequence: u64,
        batch: &[LaxBatchEntry],
    ) -> impl Future<Output = Result<Vec<LaxFlushed>, DistkitError>> + Send;

    /// The last sequence Redis recorded for this instance (0 if none); read
    /// once, before the first flush. Instances whose id is new on every
    /// start keep the default.
    fn last_sequence(&self) -> impl Future<Output = Result<u64, DistkitError>> + Send {
        async { Ok(0) }
    }
}

/// The local state of one key (see the [module docs](self)).
///
/// The fields the warm path reads come first and together (`repr(C)`), so
/// that a cache hit touches one cache line of the cell.
#[derive(Debug)]
#[repr(C)]
pub struct LaxCell {
    /// Id of the buffer owning the cell (cache slots are shared by buffers).
    buffer: u64,
    /// Confirmed value plus every local delta not yet confirmed.
    view: AtomicI64,
    /// Removed from the map (or being removed): adds must go elsewhere.
    evicted: AtomicBool,
    /// The key's bytes when short: compared without following a pointer.
    inline_key: InlineKey,
    key: DistkitRedisKey,
    /// The value as last confirmed by Redis. Written only under the flush
    /// lock.
    confirmed: AtomicI64,
    /// The second confirmed number (see [`LaxRemote::aux`]).
    aux: AtomicI64,
    /// Set by reads; the next tick refreshes the key and clears it.
    read: AtomicBool,
    /// Ticks since the key was last flushed, read or refreshed.
    idle_ticks: AtomicU32,
}

impl LaxCell {
    fn new(buffer: u64, key: DistkitRedisKey, remote: LaxRemote, read: bool) -> Self {
        Self {
            buffer,
            inline_key: InlineKey::new(key.as_str()),
            key,
            view: AtomicI64::new(remote.value),
            evicted: AtomicBool::new(false),
            confirmed: AtomicI64::new(remote.value),
            aux: AtomicI64::new(remote.aux),
            read: AtomicBool::new(read),
            idle_ticks: AtomicU32::new(0),
        }
    }

    /// Whether this is the cell of `key`.
    #[inline(always)]
    fn is_key(&self, key: &str) -> bool {
        self.inline_key.matches(key, self.key.as_str())
    }

    /// The key of this cell.
    pub fn key(&self) -> &DistkitRedisKey {
        &self.key
    }

    /// The local view: confirmed value plus pending delta.
    #[inline]
    pub fn view(&self) -> i64 {
        self.view.load(Ordering::Acquire)
    }

    /// The value Redis last confirmed.
    #[inline]
    pub fn confirmed(&self) -> i64 {
        self.confirmed.load(Ordering::Acquire)
    }

    /// The second confirmed number (see [`LaxRemote::aux`]).
    #[inline]
    pub fn aux(&self) -> i64 {
        self.aux.load(Ordering::Acquire)
    }

    /// The delta not yet confirmed. It can leave the `i64` range (a view
    /// moved from near `i64::MAX` to near `i64::MIN` in memory), hence
    /// `i128`.
    pub fn pending(&self) -> i128 {
        i128::from(self.view.load(Ordering::SeqCst)) - i128::from(self.confirmed())
    }

    /// Adds `delta` to the view unless that overflows `i64`; the new view.
    /// Sequentially consistent, to pair with eviction (module docs).
    #[inline(always)]
    fn add(&self, delta: i64) -> Option<i64> {
        self.view
            .fetch_update(Ordering::SeqCst, Ordering::Acquire, |v| {
                v.checked_add(delta)
            })
            .ok()
            .map(|old| old.wrapping_add(delta))
    }

    /// Redis confirmed `remote`, which includes `confirmed_delta` of this
    /// cell's pending delta. Called under the flush lock.
    fn settle(&self, remote: LaxRemote, confirmed_delta: i128) {
        let confirmed = self.confirmed();
        let correction = i128::from(remote.value) - i128::from(confirmed) - confirmed_delta;
        // The view is exact modulo 2^64 and the true value fits in i64, so
        // wrapping arithmetic lands on it.
        self.view.fetch_add(correction as i64, Ordering::AcqRel);
        self.confirmed.store(remote.value, Ordering::Release);
        self.aux.store(remote.aux, Ordering::Release);
        self.idle_ticks.store(0, Ordering::Relaxed);
    }

    /// Makes the next read of this key go to Redis.
    fn mark_stale(&self, stale_after_ticks: u32) {
        self.idle_ticks
            .fetch_max(stale_after_ticks, Ordering::Relaxed);
    }

    /// Moves every pending delta out of this (evicted) cell. Under the flush
    /// lock, so `confirmed` is stable.
    fn take_pending(&self) -> i128 {
        let confirmed = self.confirmed();
        match self
            .view
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |_| Some(confirmed))
        {
            Ok(view) | Err(view) => i128::from(view) - i128::from(confirmed),
        }
    }
}

/// One key of a batch: its cell and the delta sent for it.
#[derive(Debug)]
pub struct LaxBatchEntry {
    cell: Arc<LaxCell>,
    delta: i128,
}

impl LaxBatchEntry {
    /// The key.
    pub fn key(&self) -> &DistkitRedisKey {
        &self.cell.key
    }

    /// The delta to apply (0: only refresh the key's values).
    pub fn delta(&self) -> i128 {
        self.delta
    }
}

/// One flush call: sent again unchanged until Redis confirms it.
#[derive(Debug)]
struct Batch {
    sequence: u64,
    entries: Vec<LaxBatchEntry>,
}

#[derive(Debug)]
struct FlushState {
    /// Sequence of the next batch; 0 until read from the backend.
    next_sequence: u64,
    in_flight: Option<Batch>,
    evictable: usize,
}

/// The result of the warm [`LaxBuffer::add`].
#[derive(Debug)]
#[must_use]
pub enum LaxAdd<R> {
    /// The delta was added; what the reader returned.
    Added(R),
    /// The view would leave the `i64` range; nothing was added.
    Overflow,
    /// The key is not cached: call [`LaxBuffer::add_cold`].
    Cold,
}

impl<R> LaxAdd<R> {
    /// The reader's result if the delta was added.
    ///
    /// ```
    /// # use distkit_core::lax::LaxAdd;
    /// assert_eq!(LaxAdd::Added(3).added(), Some(3));
    /// assert_eq!(LaxAdd::<i64>::Overflow.added(), None);
    /// ```
    pub fn added(self) -> Option<R> {
        match self {
            Self::Added(value) => Some(value),
            Self::Overflow | Self::Cold => None,
        }
    }
}

/// The boxed future of a cold add (see [`LaxAddOperation`]).
/// Owns what it uses (a clone of the backend's `Arc` and of the key), so the
/// warm future borrows its arguments under their own lifetimes.
type ColdAdd<R> = Pin<Box<dyn Future<Output = Result<Option<R>, DistkitError>> + Send>>;

/// Where a [`LaxAddOperation`] is.
enum AddState<R> {
    /// Not polled yet: the warm path runs on the first poll.
    Warm,
    /// The key was not cached: loading it, then adding.
    Cold(ColdAdd<R>),
    /// Completed; polled again, it stays pending.
    Done,
}

/// The future of a whole lax add ([`LaxBuffer::add_operation`]): the warm
/// path on the first poll, the boxed cold path when the key is not cached,
/// and [`DistkitError::CounterOverflow`] when the view would leave the `i64`
/// range.
///
/// Written by hand rather than as an `async fn`: an `async fn` moves its
/// arguments into its state on the first poll, which on the warm path costs
/// as much as the add itself. Like every future it does nothing until
/// polled, and the delta is added at most once (a completed future polled
/// again stays pending).
#[must_use = "futures do nothing unless polled"]
pub struct LaxAddOperation<'b, 'k, B, R, F> {
    backend: &'b Arc<B>,
    operation: &'static str,
    key: &'k DistkitRedisKey,
    delta: i64,
    operand: i64,
    read: F,
    state: AddState<R>,
}

impl<B, R, F> std::fmt::Debug for LaxAddOperation<'_, '_, B, R, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            AddState::Warm => "warm",
            AddState::Cold(_) => "cold",
            AddState::Done => "done",
        };
        f.debug_struct("LaxAddOperation")
            .field("operation", &self.operation)
            .field("key", &self.key)
            .field("delta", &self.delta)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<B, R, F> Future for LaxAddOperation<'_, '_, B, R, F>
where
    B: LaxBackend,
    R: Send + 'static,
    F: Fn(&LaxCell, i64) -> R + Copy + Send + Sync + Unpin + 'static,
{
    type Output = Result<R, DistkitError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let AddState::Warm = this.state {
            match this.backend.buffer().add(this.key, this.delta, this.read) {
                LaxAdd::Added(value) => {
                    this.state = AddState::Done;
                    return Poll::Ready(Ok(value));
                }
                LaxAdd::Overflow => {
                    this.state = AddState::Done;
                    return Poll::Ready(Err(this.overflow()));
                }
                LaxAdd::Cold => {
                    let (backend, key) = (Arc::clone(this.backend), this.key.clone());
                    let (delta, read) = (this.delta, this.read);
                    this.state = AddState::Cold(Box::pin(async move {
                        backend
                            .buffer()
                            .add_cold(&*backend, &key, delta, read)
                            .await
                    }));
                }
            }
        }
        // Done: polled after completion, which the contract allows to stay
        // pending; nothing is added twice.
        let AddState::Cold(cold) = &mut this.state else {
            return Poll::Pending;
        };
        let outcome = match cold.as_mut().poll(cx) {
            Poll::Ready(outcome) => outcome,
            Poll::Pending => return Poll::Pending,
        };
        this.state = AddState::Done;
        Poll::Ready(outcome.and_then(|added| added.ok_or_else(|| this.overflow())))
    }
}

impl<B, R, F> LaxAddOperation<'_, '_, B, R, F> {
    #[cold]
    fn overflow(&self) -> DistkitError {
        DistkitError::CounterOverflow {
            operation: self.operation,
            key: self.key.as_str().to_owned(),
            operand: self.operand,
        }
    }
}

/// The outcome of a cache lookup and add, before the eviction re-check.
enum Warm<R> {
    Added(R),
    Overflow,
    Missing,
}

thread_local! {
    /// Per-thread handles of recently used cells, shared by every buffer of
    /// the thread (a cell knows its buffer's id). 32 KiB per thread that
    /// used a lax buffer.
    static CELL_CACHE: RefCell<Vec<Option<Arc<LaxCell>>>> = const { RefCell::new(Vec::new()) };
}

/// Ids of buffers, never reused (a cached cell of a dropped buffer must never
/// match a new one).
static NEXT_BUFFER_ID: AtomicU64 = AtomicU64::new(1);

/// The local buffer of one lax primitive (see the [module docs](self)).
pub struct LaxBuffer {
    id: u64,
    /// Keyed with ahash's randomly seeded hasher: several times faster than
    /// SipHash on short keys, and still resistant to chosen-key collisions.
    cells: DashMap<DistkitRedisKey, Arc<LaxCell>, ahash::RandomState>,
    flush: AsyncMutex<FlushState>,
    flush_interval: Duration,
    stale_after_ticks: u32,
    refused_overflows: AtomicU64,
}

impl std::fmt::Debug for LaxBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaxBuffer")
            .field("cached_keys", &self.cells.len())
            .field("flush_interval", &self.flush_interval)
            .field("stale_after_ticks", &self.stale_after_ticks)
            .finish_non_exhaustive()
    }
}

/// The flush lock, held with nothing buffered before it was taken still
/// pending: writes that act on Redis directly run under it and then settle
/// the cells on the values Redis returned.
#[derive(Debug)]
pub struct LaxFlushGuard<'a> {
    buffer: &'a LaxBuffer,
    _state: MutexGuard<'a, FlushState>,
}

impl LaxFlushGuard<'_> {
    /// Sets the cached cell of `key` (if any) to the values Redis returned.
    /// Deltas recorded since the lock was taken stay pending.
    pub fn settle(&self, key: &DistkitRedisKey, remote: LaxRemote) {
        if let Some(cell) = self.buffer.cells.get(key) {
            cell.settle(remote, 0);
        }
    }

    /// Settles every cached cell on what `remote` computes from it; with
    /// `stale`, their next read goes to Redis.
    pub fn settle_all(&self, remote: impl Fn(&LaxCell) -> LaxRemote, stale: bool) {
        for item in self.buffer.cells.iter() {
            let cell = item.value();
            cell.settle(remote(cell), 0);
            if stale {
                cell.mark_stale(self.buffer.stale_after_ticks);
            }
        }
    }

    /// Makes the next read of `key` go to Redis.
    pub fn mark_stale(&self, key: &DistkitRedisKey) {
        if let Some(cell) = self.buffer.cells.get(key) {
            cell.mark_stale(self.buffer.stale_after_ticks);
        }
    }
}

impl LaxBuffer {
    /// A buffer flushed every `flush_interval`, whose reads trust a cell
    /// refreshed within `allowed_lag` (counted in ticks, rounded up, plus the
    /// tick in progress).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let buffer = distkit_core::lax::LaxBuffer::new(Duration::from_millis(20), Duration::from_millis(20));
    /// assert_eq!(buffer.cached_keys(), 0);
    /// ```
    pub fn new(flush_interval: Duration, allowed_lag: Duration) -> Self {
        let flush_interval = flush_interval.max(Duration::from_millis(1));
        let lag_ticks = allowed_lag.as_nanos().div_ceil(flush_interval.as_nanos());
        Self {
            id: NEXT_BUFFER_ID.fetch_add(1, Ordering::Relaxed),
            cells: DashMap::with_hasher(ahash::RandomState::new()),
            flush: AsyncMutex::new(FlushState {
                next_sequence: 0,
                in_flight: None,
                evictable: 0,
            }),
            flush_interval,
            stale_after_ticks: u32::try_from(lag_ticks)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
            refused_overflows: AtomicU64::new(0),
        }
    }

    /// The flush interval (at least 1 ms).
    pub fn flush_interval(&self) -> Duration {
        self.flush_interval
    }

    /// How many keys are cached.
    pub fn cached_keys(&self) -> usize {
        self.cells.len()
    }

    /// How many flushed deltas Redis refused (see [`LaxFlushed::Refused`]).
    pub fn refused_overflows(&self) -> u64 {
        self.refused_overflows.load(Ordering::Relaxed)
    }

    /// The warm path: adds `delta` to the cached cell of `key` and returns
    /// `read(cell, new view)`. Never waits, allocates only when a thread
    /// caches its first cell.
    #[inline]
    pub fn add<R>(
        &self,
        key: &DistkitRedisKey,
        delta: i64,
        read: impl FnOnce(&LaxCell, i64) -> R,
    ) -> LaxAdd<R> {
        match self.warm_add(key, delta, read) {
            Warm::Added(value) => LaxAdd::Added(value),
            Warm::Overflow => LaxAdd::Overflow,
            Warm::Missing => LaxAdd::Cold,
        }
    }

    #[inline(always)]
    fn warm_add<R>(
        &self,
        key: &DistkitRedisKey,
        delta: i64,
        read: impl FnOnce(&LaxCell, i64) -> R,
    ) -> Warm<R> {
        let slot = fastkey::slot(self.id, key.as_str(), CACHE_SLOTS);
        CELL_CACHE.with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                return self.add_uncached(key, delta, read);
            };
            if cache.is_empty() {
                cache.resize_with(CACHE_SLOTS, || None);
            }
            let Some(slot) = cache.get_mut(slot) else {
                return self.add_uncached(key, delta, read);
            };
            if let Some(cell) = slot.as_ref()
                && cell.buffer == self.id
                && cell.is_key(key.as_str())
                && !cell.evicted.load(Ordering::Relaxed)
            {
                return self.add_to(cell, delta, read);
            }
            // A miss. The slot is taken over only when it holds nothing
            // useful (empty, evicted, or a cell nobody else holds), so two
            // hot keys of one slot do not churn reference counts: the one
            // that lost goes through the map.
            let vacant = slot.as_ref().is_none_or(|cell| {
                cell.evicted.load(Ordering::Relaxed) || Arc::strong_count(cell) == 1
            });
            if !vacant {
                return self.add_uncached(key, delta, read);
            }
            let Some(cell) = self.cells.get(key).map(|cell| Arc::clone(&cell)) else {
                return Warm::Missing;
            };
            self.add_to(slot.insert(cell), delta, read)
        })
    }

    /// The warm path through the map, under its shard read lock (eviction,
    /// which takes the write lock, cannot take the cell out meanwhile).
    fn add_uncached<R>(
        &self,
        key: &DistkitRedisKey,
        delta: i64,
        read: impl FnOnce(&LaxCell, i64) -> R,
    ) -> Warm<R> {
        let Some(cell) = self.cells.get(key) else {
            return Warm::Missing;
        };
        match cell.add(delta) {
            Some(view) => Warm::Added(read(&cell, view)),
            None => Warm::Overflow,
        }
    }

    #[inline(always)]
    fn add_to<R>(
        &self,
        cell: &Arc<LaxCell>,
        delta: i64,
        read: impl FnOnce(&LaxCell, i64) -> R,
    ) -> Warm<R> {
        let Some(view) = cell.add(delta) else {
            return Warm::Overflow;
        };
        if cell.evicted.load(Ordering::SeqCst) {
            let live = self.hand_over(cell);
            return Warm::Added(read(&live, live.view()));
        }
        Warm::Added(read(cell, view))
    }

    /// The whole add of an `inc` / `dec`: adds `delta` to `key` (loading the
    /// key first when it is not cached) and resolves to `read(cell, new
    /// view)`, or to [`DistkitError::CounterOverflow`] (naming `operation`,
    /// `key` and `operand`) when the view would leave the `i64` range.
    ///
    /// # Cancel safety
    ///
    /// As [`add_cold`](Self::add_cold): nothing is added before the key is
    /// cached, and a warm add completes within one poll.
    pub fn add_operation<'b, 'k, B: LaxBackend, R, F>(
        backend: &'b Arc<B>,
        operation: &'static str,
        key: &'k DistkitRedisKey,
        delta: i64,
        operand: i64,
        read: F,
    ) -> LaxAddOperation<'b, 'k, B, R, F>
    where
        F: Fn(&LaxCell, i64) -> R + Copy,
    {
        LaxAddOperation {
            backend,
            operation,
            key,
            delta,
            operand,
            read,
            state: AddState::Warm,
        }
    }

    /// Adds `delta` to `key`, loading the key from Redis first if it is not
    /// cached (call it when [`add`](Self::add) returned [`LaxAdd::Cold`]).
    /// Returns `read(cell, new view)`, or `None` if the view would overflow
    /// `i64`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the delta is added (at once, in memory) only after the
    /// key was loaded; a future dropped before that added nothing.
    pub async fn add_cold<B: LaxBackend, R>(
        &self,
        backend: &B,
        key: &DistkitRedisKey,
        delta: i64,
        read: impl Fn(&LaxCell, i64) -> R,
    ) -> Result<Option<R>, DistkitError> {
        loop {
            match self.warm_add(key, delta, &read) {
                Warm::Added(value) => return Ok(Some(value)),
                Warm::Overflow => return Ok(None),
                Warm::Missing => {
                    self.load(backend, &[key], false).await?;
                }
            }
        }
    }

    /// Moves the pending delta of an evicted `cell`, which an add reached
    /// after eviction took it out of the map, to the live cell of its key
    /// (re-inserting `cell` itself if the key has none). Needs no flush
    /// lock: an evicted cell is never part of a batch, so its confirmed
    /// value is stable, and a live cell just sees more pending delta.
    #[cold]
    fn hand_over(&self, cell: &Arc<LaxCell>) -> Arc<LaxCell> {
        let live = self
            .cells
            .entry(cell.key.clone())
            .or_insert_with(|| {
                cell.evicted.store(false, Ordering::SeqCst);
                Arc::clone(cell)
            })
            .clone();
        if !Arc::ptr_eq(&live, cell) {
            let pending = cell.take_pending();
            // Exact modulo 2^64 (as in `settle`).
            live.view.fetch_add(pending as i64, Ordering::AcqRel);
        }
        live
    }

    /// The local view of a cached key refreshed within the allowed lag, as
    /// `read(cell)`; marks the key read, so flushes keep refreshing it.
    #[inline]
    pub fn get<R>(&self, key: &DistkitRedisKey, read: impl FnOnce(&LaxCell) -> R) -> Option<R> {
        let cell = self.cells.get(key)?;
        if cell.idle_ticks.load(Ordering::Relaxed) >= self.stale_after_ticks {
            return None;
        }
        if !cell.read.load(Ordering::Relaxed) {
            cell.read.store(true, Ordering::Relaxed);
        }
        Some(read(&cell))
    }

    /// Reads `keys` from Redis and caches them; returns their cells, in
    /// order. Keys already cached are refreshed, unless a batch is in flight
    /// (then the stored value may or may not include it, and the local view
    /// stands). With `read`, the keys are refreshed by the next flushes.
    pub async fn load<B: LaxBackend>(
        &self,
        backend: &B,
        keys: &[&DistkitRedisKey],
        read: bool,
    ) -> Result<Vec<Arc<LaxCell>>, DistkitError> {
        let state = self.flush.lock().await;
        let values = backend.load(keys).await?;
        if values.len() != keys.len() {
            return Err(DistkitError::unexpected_reply(
                "lax.load",
                format!("asked for {} values, got {}", keys.len(), values.len()),
            ));
        }
        let mut cells = Vec::with_capacity(keys.len());
        for (key, remote) in keys.iter().zip(values) {
            let cell = match self.cells.get(*key) {
                Some(cell) => {
                    if state.in_flight.is_none() {
                        cell.settle(remote, 0);
                    }
                    Arc::clone(&cell)
                }
                None => self
                    .cells
                    .entry((*key).clone())
                    .or_insert_with(|| {
                        Arc::new(LaxCell::new(self.id, (*key).clone(), remote, read))
                    })
                    .clone(),
            };
            if read {
                cell.read.store(true, Ordering::Relaxed);
            }
            cells.push(cell);
        }
        Ok(cells)
    }

    /// Sends every buffered delta now (after resending a batch in flight)
    /// and waits for Redis to confirm.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a batch interrupted half-way stays in flight and is
    /// resent, unchanged, by the next flush; Redis applies it at most once.
    pub async fn flush<B: LaxBackend>(&self, backend: &B) -> Result<(), DistkitError> {
        let mut state = self.flush.lock().await;
        self.flush_locked(backend, &mut state, false).await
    }

    /// Flushes, then returns the flush lock: nothing recorded before the
    /// call is pending while the guard lives.
    pub async fn lock_flushed<B: LaxBackend>(
        &self,
        backend: &B,
    ) -> Result<LaxFlushGuard<'_>, DistkitError> {
        let mut state = self.flush.lock().await;
        self.flush_locked(backend, &mut state, false).await?;
        Ok(LaxFlushGuard {
            buffer: self,
            _state: state,
        })
    }

    /// One background tick: flushes (unless a flush or a write is already
    /// running), refreshes read keys, counts idle ones and evicts keys idle
    /// for [`EVICT_AFTER_TICKS`].
    pub async fn tick<B: LaxBackend>(&self, backend: &B) {
        let Ok(mut state) = self.flush.try_lock() else {
            return;
        };
        if let Err(error) = self.flush_locked(backend, &mut state, true).await {
            tracing::warn!(%error, "distkit: lax flush failed; it will be retried");
            return;
        }
        if state.in_flight.is_none() && state.evictable > 0 {
            state.evictable = 0;
            self.evict_idle();
        }
    }

    fn evict_idle(&self) {
        self.cells.retain(|_, cell| {
            let idle = cell.idle_ticks.load(Ordering::Relaxed) >= EVICT_AFTER_TICKS
                && !cell.read.load(Ordering::Relaxed)
                && cell.pending() == 0;
            if !idle {
                return true;
            }
            // Pairs with the add's re-check (module docs): an add either
            // shows up here or sees the mark.
            cell.evicted.store(true, Ordering::SeqCst);
            if cell.pending() != 0 || cell.read.load(Ordering::SeqCst) {
                cell.evicted.store(false, Ordering::SeqCst);
                return true;
            }
            false
        });
    }

    async fn flush_locked<B: LaxBackend>(
        &self,
        backend: &B,
        state: &mut FlushState,
        tick: bool,
    ) -> Result<(), DistkitError> {
        if state.next_sequence == 0 {
            state.next_sequence = backend.last_sequence().await?.saturating_add(1);
        }
        if let Some(batch) = &state.in_flight {
            self.send(backend, batch).await?;
            state.in_flight = None;
        }
        if let Some(batch) = self.take_batch(state, tick) {
            let batch = state.in_flight.insert(batch);
            self.send(backend, batch).await?;
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
                entries.push(LaxBatchEntry {
                    cell: Arc::clone(cell),
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
        state.next_sequence = state.next_sequence.saturating_add(1);
        Some(Batch { sequence, entries })
    }

    async fn send<B: LaxBackend>(&self, backend: &B, batch: &Batch) -> Result<(), DistkitError> {
        let results = backend.send(batch.sequence, &batch.entries).await?;
        if results.len() != batch.entries.len() {
            return Err(DistkitError::unexpected_reply(
                "lax.flush",
                format!(
                    "sent {} deltas, got {} results",
                    batch.entries.len(),
                    results.len()
                ),
            ));
        }
        for (entry, result) in batch.entries.iter().zip(results) {
            let cell = &entry.cell;
            match result {
                LaxFlushed::Applied(remote) => cell.settle(remote, entry.delta),
                LaxFlushed::Refused(remote) => {
                    self.refused_overflows.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        key = cell.key.as_str(),
                        delta = entry.delta,
                        "distkit: lax delta dropped: the stored value would overflow i64"
                    );
                    match remote {
                        Some(remote) => cell.settle(remote, entry.delta),
                        None => {
                            let unchanged = LaxRemote {
                                value: cell.confirmed(),
                                aux: cell.aux(),
                            };
                            cell.settle(unchanged, entry.delta);
                            cell.mark_stale(self.stale_after_ticks);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts the flush loop of `owner`: a tick every flush interval, holding
    /// only a `Weak` reference (see [`spawn_weak_loop`]).
    pub fn spawn_flush_loop<B: LaxBackend>(owner: &Arc<B>) -> Option<JoinHandle<()>> {
        let period = owner.buffer().flush_interval;
        spawn_weak_loop(owner, period, |owner| async move {
            owner.buffer().tick(&*owner).await;
        })
    }

    /// Best effort, when the last user handle of `owner` is dropped: flushes
    /// what is still buffered on the current Tokio runtime (a few attempts,
    /// one flush interval apart). Does nothing outside a runtime.
    pub fn spawn_final_flush<B: LaxBackend>(owner: Arc<B>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            for _ in 0..FINAL_FLUSH_ATTEMPTS {
                match owner.buffer().flush(&*owner).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, "distkit: final lax flush failed");
                        tokio::time::sleep(owner.buffer().flush_interval).await;
                    }
                }
            }
        });
    }
}
