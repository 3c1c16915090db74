//! Counters through the `distkit` facade: concurrency across instances and
//! connections, both flavours, single node and cluster; the shared storage
//! between flavours; and the scripts the crate sends are the files of
//! `scripts/counter/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use distkit::counter::{CounterOptions, CounterTrait, LaxCounter, StrictCounter};
use distkit::{CounterComparator, DistkitRedisKey, RedisConnection};
use distkit_tests::{cluster, prefix, single_node};

const INSTANCES: usize = 4;
const TASKS: usize = 16;
const INCS: usize = 1000;

async fn hammer<C: CounterTrait + 'static>(counters: Vec<Arc<C>>, key: &DistkitRedisKey) {
    let mut tasks = Vec::new();
    for counter in counters {
        for _ in 0..TASKS {
            let (counter, key) = (counter.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..INCS {
                    counter.inc(&key, 1).await.unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn strict_instances_sum_exactly<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = RedisConnection>,
{
    let p = prefix("concurrent_strict");
    let key = DistkitRedisKey::try_from("hits").unwrap();
    let mut counters = Vec::new();
    for _ in 0..INSTANCES {
        counters.push(StrictCounter::new(CounterOptions::new(
            p.clone(),
            connect().await,
        )));
    }
    hammer(counters.clone(), &key).await;
    assert_eq!(
        counters[0].get(&key).await.unwrap(),
        (INSTANCES * TASKS * INCS) as i64
    );
}

async fn lax_instances_sum_exactly_after_flush<F, Fut>(connect: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = RedisConnection>,
{
    let p = prefix("concurrent_lax");
    let key = DistkitRedisKey::try_from("hits").unwrap();
    let mut counters = Vec::new();
    for _ in 0..INSTANCES {
        counters.push(LaxCounter::new(CounterOptions::new(
            p.clone(),
            connect().await,
        )));
    }
    hammer(counters.clone(), &key).await;
    for counter in &counters {
        counter.flush().await.unwrap();
    }
    let audit = StrictCounter::new(CounterOptions::new(p, connect().await));
    assert_eq!(
        audit.get(&key).await.unwrap(),
        (INSTANCES * TASKS * INCS) as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_instances_on_separate_connections_sum_exactly_single_node() {
    strict_instances_sum_exactly(single_node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_instances_on_separate_connections_sum_exactly_cluster() {
    strict_instances_sum_exactly(cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_instances_on_separate_connections_sum_exactly_single_node() {
    lax_instances_sum_exactly_after_flush(single_node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_instances_on_separate_connections_sum_exactly_cluster() {
    lax_instances_sum_exactly_after_flush(cluster).await;
}

async fn strict_audits_what_lax_flushed(conn: RedisConnection) {
    let options =
        CounterOptions::new(prefix("audit"), conn).with_allowed_lag(Duration::from_millis(5));
    let lax = LaxCounter::new(options.clone());
    let strict = StrictCounter::new(options);
    let key = DistkitRedisKey::try_from("orders").unwrap();
    lax.inc(&key, 40).await.unwrap();
    lax.flush().await.unwrap();
    assert_eq!(strict.inc(&key, 2).await.unwrap(), 42);
    assert_eq!(
        strict
            .inc_if(&key, CounterComparator::Eq(42), 1)
            .await
            .unwrap(),
        (43, 42)
    );
    assert_eq!(lax.set(&key, 7).await.unwrap(), 7);
    assert_eq!(strict.get(&key).await.unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_audits_what_lax_flushed_single_node() {
    strict_audits_what_lax_flushed(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_audits_what_lax_flushed_cluster() {
    strict_audits_what_lax_flushed(cluster().await).await;
}

#[test]
fn the_crate_sends_exactly_the_script_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let library = std::fs::read_to_string(dir.join("lib/int64.lua")).unwrap();
    let sources = distkit::counter::script_sources();
    assert_eq!(sources.len(), 4);
    for (name, source) in sources {
        let file = std::fs::read_to_string(dir.join(format!("{name}.lua"))).unwrap();
        if file.contains("-- requires: lib/int64.lua") {
            assert_eq!(source, format!("{library}\n{file}"), "{name}");
        } else {
            assert_eq!(source, file, "{name}");
        }
    }
}

/// One completed call in a concurrent history, with its real-time interval.
struct Call {
    start: std::time::Instant,
    end: std::time::Instant,
    is_inc: bool,
    value: i64,
}

/// Checks a history of `inc(key, 1)` and `get(key)` calls on one counter
/// (starting at 0) for linearizability. For unit increments it suffices that:
/// the increments returned 1..=n, each once; an increment that finished
/// before another started returned less; and a `get` returned at least the
/// number of increments finished before it started and at most the number
/// started before it finished.
fn assert_linearizable(history: &[Call]) {
    let incs: Vec<&Call> = history.iter().filter(|c| c.is_inc).collect();
    let mut values: Vec<i64> = incs.iter().map(|c| c.value).collect();
    values.sort_unstable();
    let expected: Vec<i64> = (1..=incs.len() as i64).collect();
    assert_eq!(
        values, expected,
        "every increment takes effect exactly once"
    );
    for a in &incs {
        for b in &incs {
            if a.end < b.start {
                assert!(
                    a.value < b.value,
                    "real-time order violated: {} then {}",
                    a.value,
                    b.value
                );
            }
        }
    }
    for get in history.iter().filter(|c| !c.is_inc) {
        let finished_before = incs.iter().filter(|i| i.end < get.start).count() as i64;
        let started_before = incs.iter().filter(|i| i.start < get.end).count() as i64;
        assert!(
            finished_before <= get.value && get.value <= started_before,
            "get returned {} outside [{finished_before}, {started_before}]",
            get.value
        );
    }
}

async fn strict_history_is_linearizable(conn: RedisConnection) {
    let counter = StrictCounter::new(CounterOptions::new(prefix("linearizable"), conn));
    let key = DistkitRedisKey::try_from("k").unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let (counter, key) = (counter.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let mut calls = Vec::new();
            for round in 0..60 {
                let is_inc = (task + round) % 3 != 0;
                let start = std::time::Instant::now();
                let value = if is_inc {
                    counter.inc(&key, 1).await.unwrap()
                } else {
                    counter.get(&key).await.unwrap()
                };
                let end = std::time::Instant::now();
                calls.push(Call {
                    start,
                    end,
                    is_inc,
                    value,
                });
            }
            calls
        }));
    }
    let mut history = Vec::new();
    for task in tasks {
        history.extend(task.await.unwrap());
    }
    assert_linearizable(&history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_history_is_linearizable_single_node() {
    strict_history_is_linearizable(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_history_is_linearizable_cluster() {
    strict_history_is_linearizable(cluster().await).await;
}

#[test]
fn invalid_counter_keys_are_typed_errors_before_any_call() {
    for bad in ["", "a:b", "{tag}", "two words"] {
        let error: distkit::DistkitError = DistkitRedisKey::try_from(bad).unwrap_err().into();
        assert!(
            matches!(error, distkit::DistkitError::InvalidKey(_)),
            "{bad:?}"
        );
    }
}
