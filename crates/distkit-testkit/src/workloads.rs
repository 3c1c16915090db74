//! Workloads on raw Redis commands (no distkit primitive), recording into a
//! [`History`] or a [`LockLog`]: they prove the recorder, the checkers and
//! the fault rounds end to end, and show how a primitive's workload is
//! written (replace the Redis commands with the primitive's calls).
//!
//! - [`RawCounterWorkload`]: `INCRBY` / `GET` / `SET` on a few keys, a
//!   linearizable counter; [`RawCounterWorkload::stale_reads`] turns it into
//!   a deliberately broken client that serves reads from a local cache.
//! - [`RawLockWorkload`]: `SET NX PX` with a fencing token from `INCR` in
//!   the same script; [`RawLockWorkload::ignore_lease`] is a deliberately
//!   broken holder that keeps acting after its lease ended.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;

use crate::faults::Worker;
use crate::history::{
    Clock, CounterCall, CounterOp, CounterRet, History, LockAcquisition, LockLog, LockMode,
};

/// A small deterministic generator (SplitMix64), so workloads are
/// reproducible from a seed and need no dependency.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// A random counter call: half increments (1..=5), a third reads, the rest
/// overwrites (0..100).
pub fn random_counter_call(rng: &mut SplitMix) -> CounterCall {
    match rng.below(20) {
        0..=9 => CounterCall::Inc(1 + rng.below(5) as i64),
        10..=16 => CounterCall::Get,
        _ => CounterCall::Set(rng.below(100) as i64),
    }
}

/// Whether `error` proves the command never ran: the connection was
/// refused or never found, or the server rejected the command before
/// running it (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`,
/// `READONLY`, `LOADING`). Every other error (a reset, a timeout, a dropped
/// connection) leaves the outcome unknown. An error raised *inside* a Lua
/// script is not in this list: the script may have written before it.
pub fn never_applied(error: &redis::RedisError) -> bool {
    error.is_connection_refusal()
        || error.kind() == redis::ErrorKind::ClusterConnectionNotFound
        || matches!(
            error.code(),
            Some(
                "MOVED"
                    | "ASK"
                    | "TRYAGAIN"
                    | "CLUSTERDOWN"
                    | "MASTERDOWN"
                    | "READONLY"
                    | "LOADING"
            )
        )
}

/// Records `reply` on `pending`: `Ok`, failed when [`never_applied`],
/// unknown otherwise. Returns whether it was `Ok`.
pub fn record_reply<Op, Ret>(
    pending: crate::history::PendingOperation<Op, Ret>,
    reply: redis::RedisResult<Ret>,
) -> bool {
    match reply {
        Ok(ret) => {
            pending.ok(ret);
            true
        }
        Err(e) if never_applied(&e) => {
            pending.failed(e);
            false
        }
        Err(e) => {
            pending.unknown(e);
            false
        }
    }
}

/// Runs `op` with raw commands (`INCRBY`, `GET`, `SET`) and records it in
/// `history` as `process` (errors as [`record_reply`] says). Conditional
/// calls are not raw commands and are recorded as failed. Returns whether
/// the call succeeded, so callers can back off after errors.
pub async fn raw_counter_step<C: ConnectionLike + Send>(
    conn: &mut C,
    history: &History<CounterOp, CounterRet>,
    process: u64,
    op: CounterOp,
) -> bool {
    let key = op.key.clone();
    let call = op.call;
    let pending = history.invoke(process, op);
    match call {
        CounterCall::Inc(n) => {
            let reply: redis::RedisResult<i64> = redis::cmd("INCRBY")
                .arg(&key)
                .arg(n)
                .query_async(conn)
                .await;
            record_reply(pending, reply.map(CounterRet::Value))
        }
        CounterCall::Get => {
            let reply: redis::RedisResult<Option<i64>> =
                redis::cmd("GET").arg(&key).query_async(conn).await;
            record_reply(pending, reply.map(|v| CounterRet::Value(v.unwrap_or(0))))
        }
        CounterCall::Set(v) => {
            let reply: redis::RedisResult<()> =
                redis::cmd("SET").arg(&key).arg(v).query_async(conn).await;
            record_reply(pending, reply.map(|()| CounterRet::Value(v)))
        }
        CounterCall::IncIf(..) | CounterCall::SetIf(..) => {
            pending.failed("not a raw command");
            false
        }
    }
}

/// Pause after a failed call, so a worker does not spin on a dead server.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Raw `INCRBY` / `GET` / `SET` traffic from every worker on a few shared
/// keys. Keys are replaced by fresh ones every
/// [`key_lifetime`](Self::key_lifetime), so each key (each part the checker
/// searches) sees few faults: a key with many operations of unknown
/// outcome is expensive to prove *not* linearizable.
#[derive(Debug, Clone)]
pub struct RawCounterWorkload {
    prefix: String,
    keys: u64,
    key_lifetime: Duration,
    stale_reads: bool,
    start: Instant,
}

/// How long a broken [`RawCounterWorkload::stale_reads`] client serves a
/// read from its cache.
const STALE_FOR: Duration = Duration::from_millis(200);

impl RawCounterWorkload {
    /// Traffic on keys under `prefix`: two live keys, each replaced every
    /// two seconds.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            keys: 2,
            key_lifetime: Duration::from_secs(2),
            stale_reads: false,
            start: Instant::now(),
        }
    }

    /// The deliberately broken client: reads come from a per-worker cache
    /// refreshed every 200 ms, so they miss recent increments.
    pub fn stale_reads(mut self) -> Self {
        self.stale_reads = true;
        self
    }

    /// How long a key is used before the next one.
    pub fn key_lifetime(mut self, lifetime: Duration) -> Self {
        self.key_lifetime = lifetime;
        self
    }

    /// Number of keys live at once.
    pub fn keys(mut self, keys: u64) -> Self {
        self.keys = keys.max(1);
        self
    }

    fn key(&self, slot: u64) -> String {
        let lifetime = self.key_lifetime.as_millis().max(1);
        let epoch = self.start.elapsed().as_millis() / lifetime;
        format!("{}:e{epoch}:k{slot}", self.prefix)
    }

    /// One worker's loop, until the rounds end.
    pub async fn run(self, worker: Worker, history: History<CounterOp, CounterRet>) {
        let mut conn = worker.endpoint().connection().await;
        let process = worker.index() as u64;
        let mut rng = SplitMix::new(process.wrapping_mul(7919).wrapping_add(1));
        let mut cache: HashMap<String, (i64, Instant)> = HashMap::new();
        while worker.running() {
            let key = self.key(rng.below(self.keys));
            let call = random_counter_call(&mut rng);
            if self.stale_reads && call == CounterCall::Get {
                if let Some((value, at)) = cache.get(&key)
                    && at.elapsed() < STALE_FOR
                {
                    let value = *value;
                    history
                        .invoke(process, CounterOp::new(key, call))
                        .ok(CounterRet::Value(value));
                    continue;
                }
                let reply: redis::RedisResult<Option<i64>> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await;
                if let Ok(value) = reply {
                    cache.insert(key.clone(), (value.unwrap_or(0), Instant::now()));
                }
                continue;
            }
            if !raw_counter_step(&mut conn, &history, process, CounterOp::new(key, call)).await {
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
}

const ACQUIRE: &str = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then \
     return redis.call('INCR', KEYS[2]) end return 0";
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) end return 0";

/// A raw lock: `SET key owner NX PX ttl` plus `INCR` of a token key in one
/// script (the fencing token), released by a compare-and-delete script.
/// Each holder trusts its lease until `acquire invoked + ttl` and holds for
/// a random time up to an eighth of the TTL.
#[derive(Debug, Clone)]
pub struct RawLockWorkload {
    prefix: String,
    ttl: Duration,
    ignore_lease: bool,
}

impl RawLockWorkload {
    /// A lock under `prefix` (hash tag `{prefix}`) with lease `ttl`.
    pub fn new(prefix: impl Into<String>, ttl: Duration) -> Self {
        Self {
            prefix: prefix.into(),
            ttl,
            ignore_lease: false,
        }
    }

    /// The deliberately broken holder: it holds for up to twice the TTL
    /// and believes it holds until it releases, whatever its lease says.
    pub fn ignore_lease(mut self) -> Self {
        self.ignore_lease = true;
        self
    }

    /// One worker's loop, until the rounds end; times from `clock`.
    pub async fn run(self, worker: Worker, log: LockLog, clock: Clock) {
        let mut conn = worker.endpoint().connection().await;
        let lock_key = format!("{{{}}}:lock", self.prefix);
        let token_key = format!("{{{}}}:token", self.prefix);
        let acquire = redis::Script::new(ACQUIRE);
        let release = redis::Script::new(RELEASE);
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let ttl_ns = u64::try_from(self.ttl.as_nanos()).unwrap_or(u64::MAX);
        let mut rng = SplitMix::new(worker.index() as u64 + 17);
        let mut attempt = 0u64;
        while worker.running() {
            attempt += 1;
            let owner = format!("w{}-{attempt}", worker.index());
            let invoked = clock.now_ns();
            let reply: redis::RedisResult<i64> = acquire
                .key(&lock_key)
                .key(&token_key)
                .arg(&owner)
                .arg(ttl_ms)
                .invoke_async(&mut conn)
                .await;
            let token = match reply {
                Ok(token) if token > 0 => token,
                Ok(_) => {
                    tokio::time::sleep(Duration::from_millis(1 + rng.below(3))).await;
                    continue;
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let acquired = clock.now_ns();
            let max_hold = if self.ignore_lease {
                ttl_ms * 2
            } else {
                ttl_ms / 2
            };
            tokio::time::sleep(Duration::from_millis(rng.below(max_hold.max(1)))).await;
            let released = clock.now_ns();
            let _: redis::RedisResult<i64> = release
                .key(&lock_key)
                .arg(&owner)
                .invoke_async(&mut conn)
                .await;
            log.record(LockAcquisition {
                holder: owner,
                mode: LockMode::Exclusive,
                acquire_invoked_ns: invoked,
                acquired_ns: acquired,
                released_ns: Some(released),
                lease_valid_until_ns: if self.ignore_lease {
                    u64::MAX
                } else {
                    invoked.saturating_add(ttl_ns)
                },
                fencing_token: u64::try_from(token).ok(),
            });
        }
    }
}

/// A raw lax counter: each worker adds small increments locally and
/// flushes their sum with one `INCRBY` every few increments. An
/// acknowledged flush goes to the [`LaxLedger`](crate::history::LaxLedger) as acknowledged; a flush
/// of unknown outcome as unknown (and is not sent again); a flush that
/// provably never ran is kept for the next one.
/// [`RawLaxWorkload::retry_unknown_flushes`] is the deliberately broken
/// client that resends a flush of unknown outcome, counting it once.
#[derive(Debug, Clone)]
pub struct RawLaxWorkload {
    prefix: String,
    keys: u64,
    retry_unknown: bool,
}

impl RawLaxWorkload {
    /// Lax traffic on two keys under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            keys: 2,
            retry_unknown: false,
        }
    }

    /// The deliberately broken client: a flush that failed with an unknown
    /// outcome is sent again until acknowledged, and counted once.
    pub fn retry_unknown_flushes(mut self) -> Self {
        self.retry_unknown = true;
        self
    }

    /// The keys this workload writes.
    pub fn keys(&self) -> Vec<String> {
        (0..self.keys)
            .map(|slot| format!("{}:lax{slot}", self.prefix))
            .collect()
    }

    /// One worker's loop, until the rounds end.
    pub async fn run(self, worker: Worker, ledger: crate::history::LaxLedger) {
        let mut conn = worker.endpoint().connection().await;
        let keys = self.keys();
        let mut rng = SplitMix::new(worker.index() as u64 + 101);
        let mut pending: HashMap<String, i64> = HashMap::new();
        while worker.running() {
            let Some(key) = keys.get(rng.below(self.keys) as usize) else {
                break;
            };
            *pending.entry(key.clone()).or_default() += 1 + rng.below(9) as i64;
            if rng.below(4) != 0 {
                continue;
            }
            let delta = pending.remove(key).unwrap_or(0);
            loop {
                let reply: redis::RedisResult<i64> = redis::cmd("INCRBY")
                    .arg(key)
                    .arg(delta)
                    .query_async(&mut conn)
                    .await;
                match reply {
                    Ok(_) => ledger.acknowledged(key, delta),
                    Err(e) if never_applied(&e) => {
                        *pending.entry(key.clone()).or_default() += delta;
                    }
                    Err(_) if self.retry_unknown && worker.running() => {
                        tokio::time::sleep(ERROR_BACKOFF).await;
                        continue;
                    }
                    Err(_) => ledger.unknown(key, delta),
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // What is left locally was never sent: nothing to account for.
    }
}
