//! The bad-input sweep: every public entry point that takes user input is
//! fed boundary and random values (keys, counts near `i64::MIN`/`MAX`,
//! every comparator, batches of 0 and 10 000 entries, lock TTLs and owner
//! ids, rates and windows). Each call must return a typed error or the
//! result an in-memory model predicts; none may panic; a refused call must
//! leave Redis exactly as it was.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::time::Duration;

use distkit::counter::{CounterOptions, CounterTrait, LaxCounter, StrictCounter};
use distkit::icounter::{
    InstanceAwareCounterTrait, StrictInstanceAwareCounter, StrictInstanceAwareCounterOptions,
};
use distkit::lock::{LockError, LockOptions, Mutex, RwLock};
use distkit::{CounterComparator, DistkitError, DistkitRedisKey, RedisConnection};
use distkit_testkit::workloads::SplitMix;
use distkit_tests::{cluster_with_timeout, prefix, single_node, single_node_with_timeout};

/// Values where i64 arithmetic goes wrong.
const EDGES: [i64; 11] = [
    i64::MIN,
    i64::MIN + 1,
    i64::MIN / 2,
    -(1 << 53) - 1,
    -1,
    0,
    1,
    (1 << 53) + 1,
    i64::MAX / 2,
    i64::MAX - 1,
    i64::MAX,
];

fn edge(rng: &mut SplitMix) -> i64 {
    EDGES[rng.below(EDGES.len() as u64) as usize]
}

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(name).unwrap()
}

// ---------------------------------------------------------------- keys

/// The documented key rule, written independently of the implementation.
fn key_is_valid(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 255
        && !text
            .chars()
            .any(|c| matches!(c, ':' | '{' | '}') || c.is_whitespace() || c.is_control())
}

#[test]
fn keys_are_accepted_exactly_when_the_rule_allows_them() {
    let alphabet: Vec<char> = "ab09_-.:{}\t\n \u{0}\u{7f}\u{85}\u{a0}é🦀/\\\"'"
        .chars()
        .collect();
    let mut rng = SplitMix::new(7);
    let mut checked = 0;
    for length in [0usize, 1, 2, 16, 254, 255, 256, 300] {
        for _ in 0..200 {
            let text: String = (0..length)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            // Mostly-valid strings too, so long valid keys get tested.
            let mostly: String = (0..length)
                .map(|i| {
                    if i % 97 == 13 {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    } else {
                        'k'
                    }
                })
                .collect();
            for candidate in [text, mostly] {
                let parsed = DistkitRedisKey::try_from(candidate.clone());
                assert_eq!(
                    parsed.is_ok(),
                    key_is_valid(&candidate),
                    "{candidate:?} (len {})",
                    candidate.len()
                );
                if let Err(error) = parsed {
                    let error: DistkitError = error.into();
                    assert!(matches!(error, DistkitError::InvalidKey(_)), "{error}");
                    assert!(!error.to_string().is_empty());
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 3000);
}

// ---------------------------------------------------------------- counters

/// What one counter call should do, by checked i64 arithmetic.
#[derive(Debug, Clone, Copy)]
enum Call {
    Inc(i64),
    Dec(i64),
    Set(i64),
    IncIf(CounterComparator, i64),
    SetIf(CounterComparator, i64),
    Del,
}

fn random_comparator(rng: &mut SplitMix) -> CounterComparator {
    let operand = edge(rng);
    match rng.below(7) {
        0 => CounterComparator::Eq(operand),
        1 => CounterComparator::Ne(operand),
        2 => CounterComparator::Lt(operand),
        3 => CounterComparator::Gt(operand),
        4 => CounterComparator::Le(operand),
        5 => CounterComparator::Ge(operand),
        _ => CounterComparator::Nil,
    }
}

fn random_call(rng: &mut SplitMix) -> Call {
    match rng.below(6) {
        0 => Call::Inc(edge(rng)),
        1 => Call::Dec(edge(rng)),
        2 => Call::Set(edge(rng)),
        3 => Call::IncIf(random_comparator(rng), edge(rng)),
        4 => Call::SetIf(random_comparator(rng), edge(rng)),
        _ => Call::Del,
    }
}

fn holds(comparator: CounterComparator, current: i64) -> bool {
    match comparator {
        CounterComparator::Eq(v) => current == v,
        CounterComparator::Ne(v) => current != v,
        CounterComparator::Lt(v) => current < v,
        CounterComparator::Gt(v) => current > v,
        CounterComparator::Le(v) => current <= v,
        CounterComparator::Ge(v) => current >= v,
        CounterComparator::Nil => true,
    }
}

/// The model's answer: `Ok((returned, new value))`, or `Err(())` for a
/// refusal that changes nothing.
fn expected(call: Call, current: i64) -> Result<((i64, i64), i64), ()> {
    match call {
        Call::Inc(n) => current.checked_add(n).map(|v| ((v, v), v)).ok_or(()),
        Call::Dec(n) => n
            .checked_neg()
            .and_then(|m| current.checked_add(m))
            .map(|v| ((v, v), v))
            .ok_or(()),
        Call::Set(v) => Ok(((v, v), v)),
        Call::IncIf(c, n) if holds(c, current) => {
            current.checked_add(n).map(|v| ((v, current), v)).ok_or(())
        }
        Call::IncIf(..) => Ok(((current, current), current)),
        Call::SetIf(c, v) if holds(c, current) => Ok(((v, current), v)),
        Call::SetIf(..) => Ok(((current, current), current)),
        Call::Del => Ok(((current, current), 0)),
    }
}

/// Runs `call`; `(returned pair, or the single value twice)`.
async fn run<C: CounterTrait>(
    counter: &C,
    key: &DistkitRedisKey,
    call: Call,
) -> Result<(i64, i64), DistkitError> {
    match call {
        Call::Inc(n) => counter.inc(key, n).await.map(|v| (v, v)),
        Call::Dec(n) => counter.dec(key, n).await.map(|v| (v, v)),
        Call::Set(v) => counter.set(key, v).await.map(|v| (v, v)),
        Call::IncIf(c, n) => counter.inc_if(key, c, n).await,
        Call::SetIf(c, v) => counter.set_if(key, c, v).await,
        Call::Del => counter.del(key).await.map(|v| (v, v)),
    }
}

fn is_refusal(error: &DistkitError) -> bool {
    matches!(
        error,
        DistkitError::CounterOverflow { .. } | DistkitError::InvalidArgument { .. }
    )
}

/// Random boundary calls on three keys, each checked against the model,
/// and the stored value read back after every call.
async fn counter_matches_the_model<C: CounterTrait>(counter: &C, seed: u64, calls: usize) {
    let keys = [key("a"), key("b"), key("c")];
    let mut model: HashMap<&str, i64> = HashMap::new();
    let mut rng = SplitMix::new(seed);
    let mut refused = 0;
    for step in 0..calls {
        let key = &keys[rng.below(3) as usize];
        let call = random_call(&mut rng);
        let current = model.get(key.as_str()).copied().unwrap_or(0);
        let got = run(counter, key, call).await;
        match (expected(call, current), got) {
            (Ok((returned, new)), Ok(pair)) => {
                assert_eq!(pair, returned, "step {step}: {call:?} on {current}");
                model.insert(key.as_str(), new);
            }
            (Err(()), Err(error)) => {
                assert!(is_refusal(&error), "step {step}: {call:?}: {error}");
                refused += 1;
            }
            (want, got) => panic!("step {step}: {call:?} on {current}: want {want:?}, got {got:?}"),
        }
        let stored = counter.get(key).await.unwrap();
        assert_eq!(
            stored,
            model.get(key.as_str()).copied().unwrap_or(0),
            "step {step}: {call:?} left {stored}"
        );
    }
    assert!(refused > 0, "the sweep hit overflows");
}

async fn batches_are_all_or_nothing<C: CounterTrait>(counter: &C) {
    // Empty batches are valid no-ops.
    assert!(counter.get_all(&[]).await.unwrap().is_empty());
    assert!(counter.inc_all(&[]).await.unwrap().is_empty());
    assert!(counter.set_all(&[]).await.unwrap().is_empty());
    assert!(counter.inc_all_if(&[]).await.unwrap().is_empty());
    assert!(counter.set_all_if(&[]).await.unwrap().is_empty());

    // 10 000 entries over 100 keys, applied in order.
    let keys: Vec<DistkitRedisKey> = (0..100).map(|i| key(&format!("batch{i}"))).collect();
    let updates: Vec<(&DistkitRedisKey, i64)> = (0..10_000).map(|i| (&keys[i % 100], 1)).collect();
    let applied = counter.inc_all(&updates).await.unwrap();
    assert_eq!(applied.len(), 10_000);
    assert_eq!(
        applied[9_999].1, 100,
        "the last of 100 increments of one key"
    );
    let before = counter
        .get_all(&keys.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(before.iter().all(|(_, v)| *v == 100));

    // One overflowing entry in the middle of 10 000: nothing is written.
    let max = key("batchmax");
    counter.set(&max, i64::MAX).await.unwrap();
    let mut poisoned: Vec<(&DistkitRedisKey, i64)> =
        (0..10_000).map(|i| (&keys[i % 100], 1)).collect();
    poisoned[5_000] = (&max, 1);
    let error = counter.inc_all(&poisoned).await.unwrap_err();
    assert!(is_refusal(&error), "{error}");
    let conditional: Vec<(&DistkitRedisKey, CounterComparator, i64)> = (0..10_000)
        .map(|i| match i {
            7_000 => (&max, CounterComparator::Nil, 1),
            _ => (&keys[i % 100], CounterComparator::Ge(0), 1),
        })
        .collect();
    let error = counter.inc_all_if(&conditional).await.unwrap_err();
    assert!(is_refusal(&error), "{error}");
    let after = counter
        .get_all(&keys.iter().collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(after, before, "a refused batch wrote nothing");
    assert_eq!(counter.get(&max).await.unwrap(), i64::MAX);
}

async fn strict_counter_sweep(conn: RedisConnection) {
    let counter = StrictCounter::new(CounterOptions::new(prefix("bad-strict"), conn));
    counter_matches_the_model(&*counter, 11, 600).await;
    batches_are_all_or_nothing(&*counter).await;
}

/// A single lax counter is the only writer of its keys, so its local view
/// must match the model exactly, flushes or not.
async fn lax_counter_sweep(conn: RedisConnection) {
    let counter = LaxCounter::new(CounterOptions::new(prefix("bad-lax"), conn));
    counter_matches_the_model(&*counter, 12, 600).await;
    batches_are_all_or_nothing(&*counter).await;
    counter.flush().await.unwrap();
}

/// Batches of 10 000 updates run for tens of milliseconds inside Redis and
/// longer on a loaded machine: more than the 500 ms redis-rs allows a reply
/// by default (see "Large batches" in the README).
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_counter_bad_input_single_node() {
    strict_counter_sweep(single_node_with_timeout(BATCH_TIMEOUT).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_counter_bad_input_cluster() {
    strict_counter_sweep(cluster_with_timeout(BATCH_TIMEOUT).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_counter_bad_input_single_node() {
    lax_counter_sweep(single_node_with_timeout(BATCH_TIMEOUT).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_counter_bad_input_cluster() {
    lax_counter_sweep(cluster_with_timeout(BATCH_TIMEOUT).await).await;
}

// ------------------------------------------------- instance-aware counters

/// One instance alone: its slice and the cumulative follow the model;
/// overflowing calls are refused and change neither.
async fn icounter_sweep(conn: RedisConnection) {
    let counter = StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
        prefix("bad-icounter"),
        conn,
    ));
    let keys = [key("a"), key("b")];
    let mut model: HashMap<&str, i64> = HashMap::new();
    let mut rng = SplitMix::new(21);
    let mut refused = 0;
    for step in 0..400 {
        let key = &keys[rng.below(2) as usize];
        let current = model.get(key.as_str()).copied().unwrap_or(0);
        let call = random_call(&mut rng);
        let got = match call {
            Call::Inc(n) => counter.inc(key, n).await,
            Call::Dec(n) => counter.dec(key, n).await,
            Call::Set(v) => counter.set(key, v).await,
            Call::IncIf(c, n) => counter.inc_if(key, c, n).await,
            Call::SetIf(c, v) => counter.set_on_instance_if(key, c, v).await,
            Call::Del => counter.del(key).await,
        };
        match (expected(call, current), got) {
            (Ok((_, new)), Ok(_)) => {
                model.insert(key.as_str(), new);
            }
            (Err(()), Err(error)) => {
                assert!(is_refusal(&error), "step {step}: {call:?}: {error}");
                refused += 1;
            }
            (want, got) => panic!("step {step}: {call:?} on {current}: want {want:?}, got {got:?}"),
        }
        let (cumulative, slice) = counter.get(key).await.unwrap();
        let want = model.get(key.as_str()).copied().unwrap_or(0);
        assert_eq!((cumulative, slice), (want, want), "step {step}: {call:?}");
    }
    assert!(refused > 0, "the sweep hit overflows");
    // Empty batches are valid no-ops.
    assert!(counter.get_all(&[]).await.unwrap().is_empty());
    assert!(counter.inc_all(&[]).await.unwrap().is_empty());
    assert!(counter.set_all(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icounter_bad_input_single_node() {
    icounter_sweep(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icounter_bad_input_cluster() {
    icounter_sweep(cluster_with_timeout(BATCH_TIMEOUT).await).await;
}

// ---------------------------------------------------------------- locks

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_options_are_validated_and_extremes_never_panic() {
    let conn = single_node().await;
    let lock_key = prefix("bad-lock");
    let ttls = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_millis(1),
        Duration::from_millis(10),
        Duration::from_secs(30),
        Duration::from_secs(u64::MAX / 4),
        Duration::MAX,
    ];
    let owners = [
        String::new(),
        "o".to_string(),
        "worker-1".to_string(),
        "a:b".to_string(),
        "{tag}".to_string(),
        "two words".to_string(),
        "x".repeat(255),
        "x".repeat(10_000),
        "é🦀".to_string(),
    ];
    let intervals = [Duration::ZERO, Duration::from_millis(5), Duration::MAX];
    let mut built = 0;
    for ttl in ttls {
        for owner in &owners {
            for interval in intervals {
                let options = LockOptions::builder(lock_key.clone(), conn.clone())
                    .ttl(ttl)
                    .owner_id(owner.clone())
                    .retry_interval(interval)
                    .max_wait(Duration::from_millis(50))
                    .build();
                let Ok(options) = options else {
                    let error = options.unwrap_err();
                    assert!(
                        matches!(
                            error,
                            LockError::InvalidTtl { .. }
                                | LockError::InvalidOwner { .. }
                                | LockError::InvalidRetryInterval { .. }
                        ),
                        "{ttl:?} {owner:?} {interval:?}: {error}"
                    );
                    continue;
                };
                built += 1;
                // A valid configuration locks and unlocks, whatever its extremes.
                let mutex = Mutex::new(options.clone());
                let guard = mutex
                    .try_lock()
                    .await
                    .unwrap_or_else(|e| panic!("{ttl:?} {owner:?} {interval:?}: {e}"));
                assert!(guard.fencing_token() > 0);
                guard.release().await.unwrap();
                let rwlock = RwLock::new(options);
                let read = rwlock.try_read().await.unwrap();
                read.release().await.unwrap();
            }
        }
    }
    assert!(built > 0);
    // Zero bounds on waiting are valid: one attempt, then the typed error.
    let options = LockOptions::new(prefix("bad-lock-wait"), conn);
    let mutex = Mutex::new(options.clone());
    let held = mutex.try_lock().await.unwrap();
    let other = Mutex::new(options);
    assert!(other.try_lock_with_timeout(Duration::ZERO).await.is_err());
    assert!(other.try_lock_with_retries(0).await.is_err());
    held.release().await.unwrap();
    other.try_lock_with_timeout(Duration::ZERO).await.unwrap();
}

// ---------------------------------------------------------------- rate limits

/// Every rate, window and cost at the edges: construction returns a limit
/// or a typed error; a valid limit decides (local, Redis and hybrid) or
/// refuses the cost with a typed error; nothing panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_validate_every_edge_and_never_panic() {
    use distkit::ratelimit::{
        HybridOptions, HybridRateLimiter, LocalOptions, LocalRateLimiter, Rate, RateLimit,
        RateLimitError, RedisOptions, RedisRateLimiter, Strategy, Window,
    };

    let amounts = [
        0.0,
        -0.0,
        -1.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        1e-9,
        0.5,
        1.0,
        1e6,
        1e300,
        f64::MAX,
    ];
    let durations = [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(1500),
        Duration::from_millis(1),
        Duration::from_millis(100),
        Duration::from_secs(1),
        Duration::from_secs(3600 * 24 * 365),
        Duration::MAX,
    ];
    for factor in [f64::NAN, -1.0, 0.0, 0.5, 1.0, 1.5, 3.0, f64::INFINITY] {
        if let Err(error) = Strategy::suppressed(factor) {
            assert!(!error.to_string().is_empty(), "{factor}");
        }
    }
    let mut windows = Vec::new();
    for size in durations {
        for bucket in durations {
            match Window::new(size, bucket) {
                Ok(window) => windows.push(window),
                Err(error) => assert!(!error.to_string().is_empty(), "{size:?}/{bucket:?}"),
            }
        }
    }
    assert!(!windows.is_empty());
    let mut limits = Vec::new();
    for amount in amounts {
        for per in durations {
            let rate = match Rate::new(amount, per) {
                Ok(rate) => rate,
                Err(error) => {
                    assert!(
                        matches!(error, RateLimitError::InvalidRate { .. }),
                        "{amount}/{per:?}: {error}"
                    );
                    continue;
                }
            };
            for window in &windows {
                if let Ok(limit) = RateLimit::new(rate, *window) {
                    limits.push(limit);
                }
            }
        }
    }
    assert!(limits.len() > 10, "some limits are valid");

    let conn = single_node().await;
    let namespace = prefix("bad-ratelimit");
    assert!(matches!(
        HybridOptions::new(namespace.clone(), conn.clone(), limits[0], 0),
        Err(RateLimitError::ZeroSlice)
    ));
    for (i, limit) in limits.iter().enumerate() {
        let capacity = limit.capacity();
        let costs = [0, 1, capacity, capacity.saturating_add(1), u64::MAX];
        let local = LocalRateLimiter::new(LocalOptions::new(*limit));
        for cost in costs {
            match local.inc("k", cost) {
                Ok(_) => assert!(cost >= 1 && cost <= capacity, "{limit:?} cost {cost}"),
                Err(error) => assert!(
                    matches!(
                        error,
                        RateLimitError::ZeroCost | RateLimitError::CostExceedsCapacity { .. }
                    ),
                    "{limit:?} cost {cost}: {error}"
                ),
            }
        }
        // Redis round trips for a sample of the valid limits.
        if i % 7 != 0 {
            continue;
        }
        let key = key(&format!("k{i}"));
        let redis =
            RedisRateLimiter::new(RedisOptions::new(namespace.clone(), conn.clone(), *limit));
        let hybrid = HybridRateLimiter::new(
            HybridOptions::new(namespace.clone(), conn.clone(), *limit, 1).unwrap(),
        );
        for cost in costs {
            let results = [redis.inc(&key, cost).await, hybrid.inc(&key, cost).await];
            for result in results {
                match result {
                    Ok(_) => assert!(cost >= 1 && cost <= capacity, "{limit:?} cost {cost}"),
                    Err(DistkitError::RateLimit(_)) | Err(DistkitError::InvalidArgument { .. }) => {
                        assert!(cost == 0 || cost > capacity, "{limit:?} cost {cost}")
                    }
                    Err(error) => panic!("{limit:?} cost {cost}: {error}"),
                }
            }
        }
    }
}
