//! Workloads on distkit's own primitives for the fault rounds, the soak and
//! the fleet binary: the same shape as `distkit_testkit::workloads` (which
//! drives raw Redis commands), with the primitive's calls instead.
//!
//! - [`StrictCounterWorkload`]: `inc`, `get`, `set`, `inc_if`, `set_if` of a
//!   [`StrictCounter`] on a few keys, recorded for the linearizability check.
//! - [`LaxCounterWorkload`]: increments on [`LaxCounter`]s (one per worker),
//!   recorded in a [`LaxLedger`]; reads must never go backwards.
//! - [`LockWorkload`]: a [`Mutex`] or [`RwLock`] per worker on one lock key;
//!   each hold is recorded with the interval in which its guard said
//!   `Acquired`.
//! - [`InstanceCounterWorkload`]: every worker is an instance of a
//!   [`StrictInstanceAwareCounter`]; its slices go to a [`LaxLedger`] keyed
//!   by instance and key; [`LaxInstanceCounterWorkload`] the same with
//!   [`LaxInstanceAwareCounter`]s, whose slices must match exactly.
//!
//! Errors are classified like raw replies: an error that proves the call
//! never ran (a typed refusal, or a Redis error that
//! [`never_applied`] accepts) is a failed operation; every other error leaves
//! the outcome unknown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use distkit::counter::{CounterOptions, CounterTrait, LaxCounter, StrictCounter};
use distkit::icounter::{
    InstanceAwareCounterTrait, LaxInstanceAwareCounter, LaxInstanceAwareCounterOptions,
    StrictInstanceAwareCounter, StrictInstanceAwareCounterOptions,
};
use distkit::lock::{
    LockGuardState, LockOptions, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use distkit::{CounterComparator, DistkitError, DistkitRedisKey, RedisConnection};
use distkit_testkit::faults::{Endpoint, WORKER_RESPONSE_TIMEOUT, WorkerConnection};
use distkit_testkit::history::{
    Clock, Comparison, CounterCall, CounterOp, CounterRet, History, LaxLedger, LockAcquisition,
    LockLog, LockMode, PendingOperation,
};
use distkit_testkit::workloads::{ERROR_BACKOFF, SplitMix, never_applied, random_counter_call};

/// A distkit connection over a test-kit worker connection (short response
/// timeout; `retries(0)` on a cluster).
pub fn connection(worker: WorkerConnection) -> RedisConnection {
    match worker {
        WorkerConnection::Single(manager) => manager.into(),
        WorkerConnection::Cluster(cluster) => cluster.into(),
    }
}

/// A fresh distkit connection to `endpoint`, as a user would open it: a
/// cluster through [`RedisConnection::open_cluster_with`] (so the fault
/// rounds check distkit's own redirect handling), a single node with its
/// client attached as [`RedisConnection::open`] does (so locks subscribe to
/// release notifications instead of polling; the subscriber connections
/// made from that client have no timeouts, as with `open`), commands with
/// the test kit's short response timeout; retried until the target accepts
/// connections.
pub async fn connect(endpoint: &Endpoint) -> RedisConnection {
    let urls = match endpoint {
        Endpoint::Single(url) => {
            let conn = connection(endpoint.connection().await);
            let client = distkit::redis::Client::open(url.as_str())
                .unwrap_or_else(|e| panic!("bad url {url}: {e}"));
            return conn.with_client(distkit::ClientConfig::Single(client));
        }
        Endpoint::Cluster(urls) => urls,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let builder = distkit::redis::cluster::ClusterClient::builder(urls.clone())
            .response_timeout(WORKER_RESPONSE_TIMEOUT)
            .connection_timeout(WORKER_RESPONSE_TIMEOUT);
        match RedisConnection::open_cluster_with(builder).await {
            Ok(conn) => return conn,
            Err(error) if Instant::now() > deadline => {
                panic!("cannot connect to {urls:?}: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Whether `error` proves the operation changed nothing: a typed refusal
/// raised before any write (bad input, overflow), or a Redis error that
/// [`never_applied`] accepts.
pub fn refused(error: &DistkitError) -> bool {
    match error {
        DistkitError::InvalidKey(_)
        | DistkitError::InvalidArgument { .. }
        | DistkitError::CounterOverflow { .. } => true,
        DistkitError::Redis { source, .. } => never_applied(source),
        _ => false,
    }
}

/// Records `result` on `pending`: `Ok`, failed when [`refused`], unknown
/// otherwise. Returns whether it was `Ok`.
pub fn record<Op, Ret>(
    pending: PendingOperation<Op, Ret>,
    result: Result<Ret, DistkitError>,
) -> bool {
    match result {
        Ok(ret) => {
            pending.ok(ret);
            true
        }
        Err(error) if refused(&error) => {
            pending.failed(error);
            false
        }
        Err(error) => {
            pending.unknown(error);
            false
        }
    }
}

/// The distkit comparator for a model comparison.
pub fn comparator(comparison: Comparison) -> CounterComparator {
    match comparison {
        Comparison::Eq(v) => CounterComparator::Eq(v),
        Comparison::Ne(v) => CounterComparator::Ne(v),
        Comparison::Lt(v) => CounterComparator::Lt(v),
        Comparison::Gt(v) => CounterComparator::Gt(v),
        Comparison::Le(v) => CounterComparator::Le(v),
        Comparison::Ge(v) => CounterComparator::Ge(v),
        Comparison::Nil => CounterComparator::Nil,
    }
}

/// A random strict counter call: the raw mix (increments, reads,
/// overwrites) plus conditional increments and sets.
pub fn random_strict_call(rng: &mut SplitMix) -> CounterCall {
    if rng.below(5) != 0 {
        return random_counter_call(rng);
    }
    let operand = rng.below(60) as i64;
    let comparison = match rng.below(7) {
        0 => Comparison::Eq(operand),
        1 => Comparison::Ne(operand),
        2 => Comparison::Lt(operand),
        3 => Comparison::Gt(operand),
        4 => Comparison::Le(operand),
        5 => Comparison::Ge(operand),
        _ => Comparison::Nil,
    };
    if rng.below(2) == 0 {
        CounterCall::IncIf(comparison, 1 + rng.below(5) as i64)
    } else {
        CounterCall::SetIf(comparison, rng.below(100) as i64)
    }
}

/// Runs `call` on `counter` and records it in `history` as `process`.
/// Returns whether the call succeeded.
pub async fn strict_counter_step(
    counter: &StrictCounter,
    history: &History<CounterOp, CounterRet>,
    process: u64,
    key: &DistkitRedisKey,
    call: CounterCall,
) -> bool {
    let pending = history.invoke(process, CounterOp::new(key.as_str(), call));
    let result = match call {
        CounterCall::Inc(n) => counter.inc(key, n).await.map(CounterRet::Value),
        CounterCall::Get => counter.get(key).await.map(CounterRet::Value),
        CounterCall::Set(v) => counter.set(key, v).await.map(CounterRet::Value),
        CounterCall::IncIf(c, n) => counter
            .inc_if(key, comparator(c), n)
            .await
            .map(|(new, old)| CounterRet::Pair(new, old)),
        CounterCall::SetIf(c, v) => counter
            .set_if(key, comparator(c), v)
            .await
            .map(|(new, old)| CounterRet::Pair(new, old)),
    };
    record(pending, result)
}

/// Key names valid as [`DistkitRedisKey`]s, replaced by fresh ones every
/// `lifetime` so each key (each part the checker searches) sees few faults.
#[derive(Debug, Clone)]
struct RotatingKeys {
    keys: u64,
    lifetime: Duration,
    start: Instant,
}

impl RotatingKeys {
    fn key(&self, slot: u64) -> DistkitRedisKey {
        let lifetime = self.lifetime.as_millis().max(1);
        let epoch = self.start.elapsed().as_millis() / lifetime;
        DistkitRedisKey::try_from(format!("e{epoch}k{slot}")).expect("a valid key name")
    }
}

/// [`StrictCounter`] traffic from every worker on two shared keys, each
/// replaced every two seconds.
#[derive(Debug, Clone)]
pub struct StrictCounterWorkload {
    prefix: DistkitRedisKey,
    keys: RotatingKeys,
}

impl StrictCounterWorkload {
    /// Traffic under `prefix`.
    pub fn new(prefix: DistkitRedisKey) -> Self {
        Self {
            prefix,
            keys: RotatingKeys {
                keys: 2,
                lifetime: Duration::from_secs(2),
                start: Instant::now(),
            },
        }
    }

    /// One worker's loop (its own connection and counter), until `running`
    /// turns false.
    pub async fn run(
        self,
        endpoint: &Endpoint,
        process: u64,
        history: History<CounterOp, CounterRet>,
        running: impl Fn() -> bool,
    ) {
        let counter = StrictCounter::new(CounterOptions::new(
            self.prefix.clone(),
            connect(endpoint).await,
        ));
        let mut rng = SplitMix::new(process.wrapping_mul(7919).wrapping_add(3));
        while running() {
            let key = self.keys.key(rng.below(self.keys.keys));
            let call = random_strict_call(&mut rng);
            if !strict_counter_step(&counter, &history, process, &key, call).await {
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

/// Reads that went backwards, collected across workers.
#[derive(Debug, Clone, Default)]
pub struct Regressions(Arc<StdMutex<Vec<String>>>);

impl Regressions {
    fn push(&self, what: String) {
        self.0.lock().expect("regressions lock").push(what);
    }

    /// Every regression seen.
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("regressions lock").clone()
    }
}

/// [`LaxCounter`] traffic: every worker has its own lax counter (its own
/// connection, a 20 ms lag) and adds 1..=9 to two shared keys, reading now
/// and then. Every `inc` that returned `Ok` goes to the ledger (one that
/// failed must count for nothing); after the
/// rounds each worker flushes until Redis confirms, so the stored values
/// must equal the acknowledged sums exactly. Reads of an increment-only
/// counter must never go backwards.
#[derive(Debug, Clone)]
pub struct LaxCounterWorkload {
    prefix: DistkitRedisKey,
    keys: u64,
}

impl LaxCounterWorkload {
    /// Traffic on two keys under `prefix`.
    pub fn new(prefix: DistkitRedisKey) -> Self {
        Self { prefix, keys: 2 }
    }

    /// The keys this workload writes.
    pub fn keys(&self) -> Vec<DistkitRedisKey> {
        (0..self.keys)
            .map(|slot| DistkitRedisKey::try_from(format!("lax{slot}")).expect("a valid key"))
            .collect()
    }

    /// The prefix the counters use.
    pub fn prefix(&self) -> &DistkitRedisKey {
        &self.prefix
    }

    /// One worker's loop until `running` turns false, then a flush that is
    /// retried until Redis confirms it (or `flush_deadline` passes, which
    /// the check then reports as lost increments).
    pub async fn run(
        self,
        endpoint: &Endpoint,
        process: u64,
        ledger: LaxLedger,
        regressions: Regressions,
        running: impl Fn() -> bool,
    ) {
        let counter = LaxCounter::new(
            CounterOptions::new(self.prefix.clone(), connect(endpoint).await)
                .with_allowed_lag(Duration::from_millis(20)),
        );
        let keys = self.keys();
        let mut rng = SplitMix::new(process.wrapping_add(101));
        let mut last_read: HashMap<String, i64> = HashMap::new();
        while running() {
            let Some(key) = keys.get(rng.below(self.keys) as usize) else {
                break;
            };
            if rng.below(5) == 0 {
                if let Ok(value) = counter.get(key).await {
                    let last = last_read.entry(key.as_str().to_string()).or_insert(0);
                    if value < *last {
                        regressions.push(format!(
                            "worker {process}: lax get({key}) returned {value} after {last}"
                        ));
                    }
                    *last = value;
                }
            } else {
                let delta = 1 + rng.below(9) as i64;
                // An `inc` of a key not in memory reads it from Redis first
                // and may fail; a failed `inc` must count for nothing,
                // which the final check verifies.
                if counter.inc(key, delta).await.is_ok() {
                    ledger.acknowledged(key.as_str(), delta);
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(error) = counter.flush().await {
            if Instant::now() > deadline {
                regressions.push(format!("worker {process}: final flush failed: {error}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The slices instances read at the end of a run, by
/// [`InstanceCounterWorkload::slice_name`]; shared across workers.
#[derive(Debug, Clone, Default)]
pub struct Finals(Arc<StdMutex<HashMap<String, i64>>>);

impl Finals {
    /// Reads `counter`'s slice of every key (instance `process`), retrying
    /// until Redis answers or `deadline` passes (the check then reports the
    /// missing slice).
    pub async fn read<C: InstanceAwareCounterTrait + ?Sized>(
        &self,
        counter: &C,
        process: u64,
        keys: &[DistkitRedisKey],
        deadline: Instant,
    ) {
        for key in keys {
            loop {
                match counter.get(key).await {
                    Ok((_, slice)) => {
                        self.0
                            .lock()
                            .expect("finals lock")
                            .insert(InstanceCounterWorkload::slice_name(process, key), slice);
                        break;
                    }
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(_) => break,
                }
            }
        }
    }

    /// Every slice read.
    pub fn all(&self) -> HashMap<String, i64> {
        self.0.lock().expect("finals lock").clone()
    }
}

/// Which lock a [`LockWorkload`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A [`Mutex`].
    Mutex,
    /// An [`RwLock`]: two reads for every write.
    RwLock,
}

/// A guard of any kind, for the workload's bookkeeping.
enum Held {
    Mutex(MutexGuard),
    Read(RwLockReadGuard),
    Write(RwLockWriteGuard),
}

impl Held {
    fn state(&self) -> LockGuardState {
        match self {
            Held::Mutex(g) => g.state(),
            Held::Read(g) => g.state(),
            Held::Write(g) => g.state(),
        }
    }

    fn describe(&self) -> (String, u64, LockMode) {
        match self {
            Held::Mutex(g) => (
                g.owner_token().to_string(),
                g.fencing_token(),
                LockMode::Exclusive,
            ),
            Held::Read(g) => (
                g.owner_token().to_string(),
                g.fencing_token(),
                LockMode::Shared,
            ),
            Held::Write(g) => (
                g.owner_token().to_string(),
                g.fencing_token(),
                LockMode::Exclusive,
            ),
        }
    }

    async fn release(self) {
        let _ = match self {
            Held::Mutex(g) => g.release().await,
            Held::Read(g) => g.release().await,
            Held::Write(g) => g.release().await,
        };
    }
}

/// A lock per worker on one lock key, with lease `ttl`. A hold lasts up to
/// half a TTL (longer than the ttl/3 renewal period now and then) in steps
/// of 5 ms; the interval recorded ends at the last step at which the guard
/// still said `Acquired` (the time is read *before* the state, so the
/// guard's word covers it). Fencing tokens are recorded for the token
/// check.
#[derive(Debug, Clone)]
pub struct LockWorkload {
    key: DistkitRedisKey,
    ttl: Duration,
    kind: LockKind,
}

impl LockWorkload {
    /// A lock of `kind` on `key` with lease `ttl`.
    pub fn new(kind: LockKind, key: DistkitRedisKey, ttl: Duration) -> Self {
        Self { key, ttl, kind }
    }

    /// One worker's loop until `running` turns false.
    pub async fn run(
        self,
        endpoint: &Endpoint,
        process: u64,
        log: LockLog,
        clock: Clock,
        running: impl Fn() -> bool,
    ) {
        let options = LockOptions::builder(self.key.clone(), connect(endpoint).await)
            .ttl(self.ttl)
            .retry_interval(Duration::from_millis(50))
            .build()
            .expect("valid lock options");
        let mutex = Mutex::new(options.clone());
        let rwlock = RwLock::new(options);
        let mut rng = SplitMix::new(process.wrapping_add(17));
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        while running() {
            let invoked = clock.now_ns();
            let acquired = match self.kind {
                LockKind::Mutex => mutex.try_lock_with_timeout(self.ttl).await.map(Held::Mutex),
                LockKind::RwLock if rng.below(3) == 0 => rwlock
                    .try_write_with_timeout(self.ttl)
                    .await
                    .map(Held::Write),
                LockKind::RwLock => rwlock.try_read_with_timeout(self.ttl).await.map(Held::Read),
            };
            let Ok(guard) = acquired else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let acquired = clock.now_ns();
            // Never valid unless the guard says so at least once.
            let mut valid_through = invoked;
            let hold = Duration::from_millis(rng.below(ttl_ms / 2 + 1));
            let started = Instant::now();
            loop {
                let now = clock.now_ns();
                if guard.state() != LockGuardState::Acquired {
                    break;
                }
                valid_through = now;
                if started.elapsed() >= hold || !running() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let released = clock.now_ns();
            let (owner, token, mode) = guard.describe();
            guard.release().await;
            log.record(LockAcquisition {
                holder: format!("w{process}/{owner}"),
                mode,
                acquire_invoked_ns: invoked,
                acquired_ns: acquired,
                released_ns: Some(released),
                lease_valid_until_ns: valid_through,
                fencing_token: Some(token),
            });
        }
    }
}

/// [`LaxInstanceAwareCounter`] traffic: every worker is one lax instance
/// (its own connection, id `w<process>`) adding 1..=5 to two shared keys.
/// Every `inc` that returned `Ok` goes to the ledger under
/// [`InstanceCounterWorkload::slice_name`]; after the rounds each worker
/// flushes until Redis confirms, then reads its slices: they must equal the
/// acknowledged sums exactly.
#[derive(Debug, Clone)]
pub struct LaxInstanceCounterWorkload {
    inner: InstanceCounterWorkload,
}

impl LaxInstanceCounterWorkload {
    /// Traffic on two keys under `prefix`, with a threshold longer than any
    /// fault.
    pub fn new(prefix: DistkitRedisKey) -> Self {
        Self {
            inner: InstanceCounterWorkload::new(prefix),
        }
    }

    /// The strict view of the same counter, for the final check.
    pub fn strict(&self) -> &InstanceCounterWorkload {
        &self.inner
    }

    /// One worker's loop until `running` turns false; then a confirmed
    /// flush and its final slices, stored in `finals`.
    pub async fn run(
        self,
        endpoint: &Endpoint,
        process: u64,
        ledger: LaxLedger,
        finals: Finals,
        running: impl Fn() -> bool,
    ) {
        let options =
            LaxInstanceAwareCounterOptions::new(self.inner.prefix.clone(), connect(endpoint).await)
                .with_dead_instance_threshold_ms(self.inner.threshold_ms)
                .with_instance_id(
                    DistkitRedisKey::try_from(format!("w{process}")).expect("a valid id"),
                );
        let counter = LaxInstanceAwareCounter::new(options);
        let keys = self.inner.keys();
        let mut rng = SplitMix::new(process.wrapping_add(404));
        while running() {
            let Some(key) = keys.get(rng.below(self.inner.keys) as usize) else {
                break;
            };
            let delta = 1 + rng.below(5) as i64;
            let name = InstanceCounterWorkload::slice_name(process, key);
            match counter.inc(key, delta).await {
                Ok(_) => ledger.acknowledged(&name, delta),
                Err(_) => tokio::time::sleep(ERROR_BACKOFF).await,
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while counter.flush().await.is_err() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        finals.read(&*counter, process, &keys, deadline).await;
    }
}

/// [`StrictInstanceAwareCounter`] traffic: every worker is one instance
/// (its own connection and id `w<process>`) adding 1..=5 to two shared
/// keys. Acknowledged and unknown increments go to the ledger under
/// [`InstanceCounterWorkload::slice_name`]; after the rounds each worker
/// reads its slices (retrying until Redis answers), and the final check
/// compares them with the ledger and the cumulative with their sum.
#[derive(Debug, Clone)]
pub struct InstanceCounterWorkload {
    prefix: DistkitRedisKey,
    keys: u64,
    threshold_ms: u64,
}

impl InstanceCounterWorkload {
    /// Traffic on two keys under `prefix`; the dead-instance threshold is
    /// longer than any fault, so no instance may lose its slice.
    pub fn new(prefix: DistkitRedisKey) -> Self {
        Self {
            prefix,
            keys: 2,
            threshold_ms: 60_000,
        }
    }

    /// Sets the dead-instance threshold.
    pub fn threshold_ms(mut self, threshold_ms: u64) -> Self {
        self.threshold_ms = threshold_ms;
        self
    }

    /// Sets the number of keys.
    pub fn key_count(mut self, keys: u64) -> Self {
        self.keys = keys.max(1);
        self
    }

    /// The keys this workload writes.
    pub fn keys(&self) -> Vec<DistkitRedisKey> {
        (0..self.keys)
            .map(|slot| DistkitRedisKey::try_from(format!("ic{slot}")).expect("a valid key"))
            .collect()
    }

    /// The ledger name of instance `process`'s slice of `key`.
    pub fn slice_name(process: u64, key: &DistkitRedisKey) -> String {
        format!("w{process}/{key}")
    }

    /// An instance of the counter on `conn` (`process`: its id).
    pub fn instance(
        &self,
        conn: RedisConnection,
        process: Option<u64>,
    ) -> Arc<StrictInstanceAwareCounter> {
        let mut options = StrictInstanceAwareCounterOptions::new(self.prefix.clone(), conn)
            .with_dead_instance_threshold_ms(self.threshold_ms);
        if let Some(process) = process {
            options = options.with_instance_id(
                DistkitRedisKey::try_from(format!("w{process}")).expect("a valid id"),
            );
        }
        StrictInstanceAwareCounter::new(options)
    }

    /// One worker's loop until `running` turns false; then its final
    /// slices, stored in `finals` under [`Self::slice_name`].
    pub async fn run(
        self,
        endpoint: &Endpoint,
        process: u64,
        ledger: LaxLedger,
        finals: Finals,
        running: impl Fn() -> bool,
    ) {
        let counter = self.instance(connect(endpoint).await, Some(process));
        let keys = self.keys();
        // Eight callers share the instance, so calls beyond two in flight
        // leave in combined script runs (with merged increments), under the
        // same faults as single calls.
        let caller = |task: u64| {
            let (counter, keys, ledger, running) = (&counter, &keys, &ledger, &running);
            async move {
                let mut rng = SplitMix::new(process.wrapping_add(303).wrapping_add(task << 32));
                while running() {
                    let Some(key) = keys.get(rng.below(self.keys) as usize) else {
                        break;
                    };
                    let delta = 1 + rng.below(5) as i64;
                    let name = Self::slice_name(process, key);
                    match counter.inc(key, delta).await {
                        Ok(_) => ledger.acknowledged(&name, delta),
                        Err(error) if refused(&error) => {
                            tokio::time::sleep(ERROR_BACKOFF).await;
                        }
                        Err(_) => {
                            ledger.unknown(&name, delta);
                            tokio::time::sleep(ERROR_BACKOFF).await;
                        }
                    }
                }
            }
        };
        tokio::join!(
            caller(0),
            caller(1),
            caller(2),
            caller(3),
            caller(4),
            caller(5),
            caller(6),
            caller(7)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        finals.read(&*counter, process, &keys, deadline).await;
    }
}
