//! LaxCounter: buffering, flushing, reconciliation of `set`/`del`/`clear`
//! with the buffer, races, eviction and shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cluster, key, prefix, single};
use distkit_counter::{
    CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter, RedisConnection, StrictCounter,
};

const LIVENESS_DEADLINE: Duration = Duration::from_secs(10);

/// Polls `read` until it returns `expected` or the liveness deadline passes.
async fn eventually_equals<F, Fut>(expected: i64, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = i64>,
{
    let deadline = tokio::time::Instant::now() + LIVENESS_DEADLINE;
    loop {
        let value = read().await;
        if value == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "value stayed {value}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn background_flush_stores_buffered_increments(conn: RedisConnection) {
    let options = CounterOptions::new(prefix("bg_flush"), conn);
    let lax = LaxCounter::new(options.clone());
    let audit = StrictCounter::new(options);
    let k = key("k");
    for _ in 0..100 {
        lax.inc(&k, 1).await.unwrap();
    }
    assert_eq!(lax.get(&k).await.unwrap(), 100);
    eventually_equals(100, || async { audit.get(&k).await.unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_flush_stores_buffered_increments_single_node() {
    background_flush_stores_buffered_increments(single().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_flush_stores_buffered_increments_cluster() {
    background_flush_stores_buffered_increments(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_script_applies_a_sequence_once_per_instance() {
    // The lost-reply case at the protocol level: the same batch sent twice.
    let mut conn = single().await;
    let source = distkit_counter::script_sources()
        .into_iter()
        .find(|(name, _)| *name == "counter/flush")
        .unwrap()
        .1;
    let p = prefix("flush_once");
    let values = format!("distkit:counter:{{{p}}}:values");
    let record = format!("distkit:counter:{{{p}}}:flush:instance_a");
    let script = redis::Script::new(source);
    let call = |sequence: u64| {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&values)
            .key(&record)
            .arg(sequence)
            .arg(60_000)
            .arg("k")
            .arg(5);
        invocation
    };
    let first: Vec<i64> = call(1).invoke_async(&mut conn).await.unwrap();
    assert_eq!(first, vec![1, 5, 0]);
    let retry: Vec<i64> = call(1).invoke_async(&mut conn).await.unwrap();
    assert_eq!(
        retry,
        vec![0, 5, 0],
        "a retried sequence is not applied again"
    );
    let next: Vec<i64> = call(2).invoke_async(&mut conn).await.unwrap();
    assert_eq!(next, vec![1, 10, 0]);
    let late: Vec<i64> = call(1).invoke_async(&mut conn).await.unwrap();
    assert_eq!(late, vec![0, 10, 0], "an older sequence is never applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_overrides_buffered_increments_and_keeps_later_ones() {
    let options = CounterOptions::new(prefix("set_reconcile"), single().await)
        .with_allowed_lag(Duration::from_secs(3600));
    let lax = LaxCounter::new(options.clone());
    let audit = StrictCounter::new(options);
    let k = key("k");
    lax.inc(&k, 5).await.unwrap();
    assert_eq!(lax.set(&k, 100).await.unwrap(), 100);
    assert_eq!(audit.get(&k).await.unwrap(), 100);
    assert_eq!(lax.get(&k).await.unwrap(), 100);
    assert_eq!(lax.inc(&k, 1).await.unwrap(), 101);
    lax.flush().await.unwrap();
    assert_eq!(audit.get(&k).await.unwrap(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_values_are_not_resurrected_by_buffered_deltas() {
    let options = CounterOptions::new(prefix("del_reconcile"), single().await)
        .with_allowed_lag(Duration::from_secs(3600));
    let lax = LaxCounter::new(options.clone());
    let audit = StrictCounter::new(options);
    let (a, b) = (key("a"), key("b"));
    lax.inc(&a, 3).await.unwrap();
    lax.inc(&b, 4).await.unwrap();
    assert_eq!(lax.del(&a).await.unwrap(), 3);
    lax.flush().await.unwrap();
    assert_eq!(
        audit.get_all(&[&a, &b]).await.unwrap(),
        vec![(&a, 0), (&b, 4)]
    );
    lax.inc(&b, 1).await.unwrap();
    lax.clear().await.unwrap();
    lax.flush().await.unwrap();
    assert_eq!(
        audit.get_all(&[&a, &b]).await.unwrap(),
        vec![(&a, 0), (&b, 0)]
    );
    assert_eq!(lax.get(&b).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_of_one_prefix_see_each_others_flushes() {
    let options = CounterOptions::new(prefix("shared"), single().await)
        .with_allowed_lag(Duration::from_millis(2));
    let a = LaxCounter::new(options.clone());
    let b = LaxCounter::new(options.clone());
    let strict = StrictCounter::new(options);
    let k = key("k");
    a.inc(&k, 2).await.unwrap();
    b.inc(&k, 3).await.unwrap();
    strict.inc(&k, 4).await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    assert_eq!(strict.get(&k).await.unwrap(), 9);
    eventually_equals(9, || async { a.get(&k).await.unwrap() }).await;
    eventually_equals(9, || async { b.get(&k).await.unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_go_backwards_for_processes_that_only_increment() {
    let options = CounterOptions::new(prefix("monotonic"), single().await)
        .with_allowed_lag(Duration::from_millis(1));
    let writer = LaxCounter::new(options.clone());
    let reader = LaxCounter::new(options.clone());
    let k = key("k");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for counter in [writer.clone(), reader.clone()] {
        let (k, stop) = (k.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut last = i64::MIN;
            let mut rounds = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let value = counter.inc(&k, 1).await.unwrap();
                assert!(value > last, "inc went from {last} to {value}");
                let read = counter.get(&k).await.unwrap();
                assert!(read >= value, "get {read} after inc returned {value}");
                last = read;
                rounds += 1;
                if rounds.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            rounds
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    writer.flush().await.unwrap();
    reader.flush().await.unwrap();
    assert_eq!(
        StrictCounter::new(options).get(&k).await.unwrap(),
        total as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_never_panic_and_settle_on_the_stored_value() {
    let options = CounterOptions::new(prefix("races"), single().await)
        .with_allowed_lag(Duration::from_millis(1));
    let lax = LaxCounter::new(options.clone());
    let keys: Vec<DistkitRedisKey> = (0..4).map(|i| key(&format!("k{i}"))).collect();
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let (lax, keys) = (lax.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..300u64 {
                let k = &keys[((task + round) % 4) as usize];
                match (task + round) % 11 {
                    0 => {
                        lax.set(k, round as i64).await.unwrap();
                    }
                    1 => {
                        lax.del(k).await.unwrap();
                    }
                    2 if task == 0 => lax.clear().await.unwrap(),
                    3 => {
                        lax.inc_all(&[(k, 1), (&keys[0], 1)]).await.unwrap();
                    }
                    4 => {
                        lax.get(k).await.unwrap();
                    }
                    _ => {
                        lax.inc(k, 1).await.unwrap();
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    lax.flush().await.unwrap();
    let audit = StrictCounter::new(options);
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    let stored = audit.get_all(&refs).await.unwrap();
    let local = lax.get_all(&refs).await.unwrap();
    assert_eq!(stored, local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_keys_are_evicted_after_flushing() {
    let options = CounterOptions::new(prefix("evict"), single().await)
        .with_allowed_lag(Duration::from_millis(1));
    let lax = LaxCounter::new(options.clone());
    let keys: Vec<DistkitRedisKey> = (0..1000).map(|i| key(&format!("k{i}"))).collect();
    for k in &keys {
        lax.inc(k, 1).await.unwrap();
    }
    assert_eq!(lax.cached_keys(), 1000);
    eventually_equals(0, || async { lax.cached_keys() as i64 }).await;
    // Nothing was lost on the way out, and evicted keys reload on demand.
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    let audit = StrictCounter::new(options);
    assert!(
        audit
            .get_all(&refs)
            .await
            .unwrap()
            .iter()
            .all(|(_, v)| *v == 1)
    );
    assert_eq!(lax.inc(&keys[0], 1).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_and_dropping_flushes_what_is_left() {
    let options = CounterOptions::new(prefix("shutdown"), single().await)
        .with_allowed_lag(Duration::from_secs(3600));
    let audit = StrictCounter::new(options.clone());
    let k = key("k");
    let lax = LaxCounter::new(options.clone());
    lax.inc(&k, 2).await.unwrap();
    lax.shutdown().await.unwrap();
    assert_eq!(audit.get(&k).await.unwrap(), 2);
    lax.inc(&k, 3).await.unwrap();
    drop(lax);
    eventually_equals(5, || async { audit.get(&k).await.unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_sees_the_stored_value_and_a_stale_one_is_refreshed() {
    let options = CounterOptions::new(prefix("refresh"), single().await)
        .with_allowed_lag(Duration::from_millis(1));
    let lax = LaxCounter::new(options.clone());
    let strict = StrictCounter::new(options);
    let k = key("k");
    strict.set(&k, 40).await.unwrap();
    assert_eq!(lax.get(&k).await.unwrap(), 40);
    strict.inc(&k, 2).await.unwrap();
    eventually_equals(42, || async { lax.get(&k).await.unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_delta_wider_than_i64_is_flushed_exactly() {
    // From 2^60 down by i64::MAX and 2 more: every value fits in i64, the
    // buffered delta (-i64::MAX - 2) does not.
    let options = CounterOptions::new(prefix("wide_delta"), single().await)
        .with_allowed_lag(Duration::from_secs(3600));
    let lax = LaxCounter::new(options.clone());
    let k = key("k");
    lax.set(&k, 1 << 60).await.unwrap();
    lax.dec(&k, i64::MAX).await.unwrap();
    assert_eq!(lax.dec(&k, 2).await.unwrap(), (1 << 60) - i64::MAX - 2);
    lax.flush().await.unwrap();
    let audit = StrictCounter::new(options);
    assert_eq!(audit.get(&k).await.unwrap(), (1 << 60) - i64::MAX - 2);
    assert_eq!(lax.refused_overflows(), 0);
}
