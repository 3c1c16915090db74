#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Instance-aware counters through the facade: single node and 3-master
//! cluster, dead instances, recovery, epochs, a SIGKILLed child process,
//! scale, and a model-based test.

use std::sync::Arc;
use std::time::Duration;

use distkit::icounter::{
    InstanceAwareCounterTrait, LaxInstanceAwareCounter, LaxInstanceAwareCounterOptions,
    StrictInstanceAwareCounter, StrictInstanceAwareCounterOptions,
};
use distkit::{CounterComparator, DistkitRedisKey, RedisConnection};
use distkit_tests::{cluster, prefix, single_node};

const THRESHOLD_MS: u64 = 1_000;
/// Longer than the threshold: an instance silent this long is dead.
const PAST_THRESHOLD: Duration = Duration::from_millis(1_300);

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(name).unwrap()
}

fn instance(
    prefix: &DistkitRedisKey,
    conn: RedisConnection,
    id: &str,
) -> Arc<StrictInstanceAwareCounter> {
    StrictInstanceAwareCounter::new(
        StrictInstanceAwareCounterOptions::new(prefix.clone(), conn)
            .with_dead_instance_threshold_ms(THRESHOLD_MS)
            .with_instance_id(key(id)),
    )
}

/// Runs a scenario on a single node and on the cluster.
macro_rules! on_both {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single_node() {
                super::$scenario(|| Box::pin(distkit_tests::single_node())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$scenario(|| Box::pin(distkit_tests::cluster())).await;
            }
        }
    };
}

type Connect = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = RedisConnection> + Send>>;

async fn every_operation_returns_cumulative_and_slice(connect: Connect) {
    let p = prefix("ic_ops");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let k = key("k");
    let other = key("other");
    assert_eq!(a.inc(&k, 5).await.unwrap(), (5, 5));
    assert_eq!(b.inc(&k, 3).await.unwrap(), (8, 3));
    assert_eq!(b.dec(&k, 4).await.unwrap(), (4, -1));
    assert_eq!(a.get(&k).await.unwrap(), (4, 5));
    assert_eq!(a.set_on_instance(&k, 10).await.unwrap(), (9, 10));
    assert_eq!(
        a.set_on_instance_if(&k, CounterComparator::Eq(0), 1)
            .await
            .unwrap(),
        (9, 10)
    );
    assert_eq!(
        a.inc_if(&k, CounterComparator::Gt(100), 1).await.unwrap(),
        (9, 10)
    );
    assert_eq!(
        a.inc_if(&k, CounterComparator::Le(9), 1).await.unwrap(),
        (10, 11)
    );
    assert_eq!(b.del_on_instance(&k).await.unwrap(), (11, -1));
    assert_eq!(
        a.get_all(&[&k, &other]).await.unwrap(),
        vec![(&k, 11, 11), (&other, 0, 0)]
    );
    assert_eq!(
        b.inc_all(&[(&k, 2), (&other, 7), (&k, 1)]).await.unwrap(),
        vec![(&k, 13, 2), (&other, 7, 7), (&k, 14, 3)]
    );
    assert_eq!(
        b.get_all_on_instance(&[&other, &k]).await.unwrap(),
        vec![(&other, 7), (&k, 3)]
    );
    assert_eq!(
        a.inc_all_if(&[
            (&k, CounterComparator::Eq(14), 1),
            (&other, CounterComparator::Eq(0), 1)
        ])
        .await
        .unwrap(),
        vec![(&k, 15, 12), (&other, 7, 0)]
    );
    assert_eq!(
        a.set_all_on_instance(&[(&k, 0), (&other, 1)])
            .await
            .unwrap(),
        vec![(&k, 3, 0), (&other, 8, 1)]
    );
    assert_eq!(
        a.set_all_on_instance_if(&[
            (&k, CounterComparator::Eq(0), 2),
            (&other, CounterComparator::Eq(0), 9)
        ])
        .await
        .unwrap(),
        vec![(&k, 5, 2), (&other, 8, 1)]
    );
    assert_eq!(
        a.set_if(&k, CounterComparator::Ne(5), 1).await.unwrap(),
        (5, 2)
    );
    assert_eq!(a.set_all(&[(&k, 100)]).await.unwrap(), vec![(&k, 100, 100)]);
    // b's slice on k belongs to the old epoch: reset, not counted
    assert_eq!(b.get(&k).await.unwrap(), (100, 0));
    assert_eq!(
        b.set_all_if(&[
            (&k, CounterComparator::Eq(100), 50),
            (&other, CounterComparator::Eq(0), 1)
        ])
        .await
        .unwrap(),
        vec![(&k, 50, 50), (&other, 8, 7)]
    );
    assert_eq!(a.get(&k).await.unwrap(), (50, 0));
    assert_eq!(b.del(&k).await.unwrap(), (50, 0));
    assert_eq!(a.get(&k).await.unwrap(), (0, 0));
    b.clear_on_instance().await.unwrap();
    assert_eq!(a.get(&other).await.unwrap(), (1, 1));
    a.clear().await.unwrap();
    assert_eq!(a.get(&other).await.unwrap(), (0, 0));
    assert_eq!(b.inc(&other, 1).await.unwrap(), (1, 1));
}
on_both!(operations, every_operation_returns_cumulative_and_slice);

async fn extremes_are_exact_and_overflow_is_an_error(connect: Connect) {
    let p = prefix("ic_exact");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let k = key("k");
    assert_eq!(
        a.inc(&k, i64::MAX - 1).await.unwrap(),
        (i64::MAX - 1, i64::MAX - 1)
    );
    assert_eq!(a.inc(&k, 1).await.unwrap(), (i64::MAX, i64::MAX));
    let error = b.inc(&k, 1).await.unwrap_err();
    assert!(
        matches!(error, distkit::DistkitError::CounterOverflow { .. }),
        "{error}"
    );
    assert_eq!(b.get(&k).await.unwrap(), (i64::MAX, 0));
    assert_eq!(b.dec(&k, i64::MAX).await.unwrap(), (0, -i64::MAX));
    assert_eq!(a.get(&k).await.unwrap(), (0, i64::MAX));
}
on_both!(exactness, extremes_are_exact_and_overflow_is_an_error);

async fn dropped_instance_slice_disappears_after_threshold(connect: Connect) {
    let p = prefix("ic_drop");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let k = key("k");
    a.inc(&k, 10).await.unwrap();
    b.inc(&k, 5).await.unwrap();
    drop(a);
    // well within the threshold: still counted
    assert_eq!(b.get(&k).await.unwrap(), (15, 5));
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(b.get(&k).await.unwrap(), (5, 5));
    let live = b.live_instances().await.unwrap();
    assert_eq!(
        live.iter()
            .map(|i| i.instance_id.as_str())
            .collect::<Vec<_>>(),
        vec!["b"]
    );
}
on_both!(
    dropped_instance,
    dropped_instance_slice_disappears_after_threshold
);

async fn idle_live_instance_keeps_its_slice(connect: Connect) {
    let p = prefix("ic_idle");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let k = key("k");
    a.inc(&k, 10).await.unwrap();
    // a stays idle for three thresholds; its background heartbeat keeps it
    tokio::time::sleep(PAST_THRESHOLD * 3).await;
    assert_eq!(b.get(&k).await.unwrap(), (10, 0));
    assert_eq!(a.get(&k).await.unwrap(), (10, 10));
}
on_both!(idle_instance, idle_live_instance_keeps_its_slice);

async fn five_instances_lose_only_the_dead_ones(connect: Connect) {
    let p = prefix("ic_five");
    let k = key("k");
    let mut fleet = Vec::new();
    for i in 0..5 {
        let counter = instance(&p, connect().await, &format!("n{i}"));
        counter.inc(&k, 1 << i).await.unwrap();
        fleet.push(counter);
    }
    assert_eq!(fleet[0].get(&k).await.unwrap(), (31, 1));
    let dead_3 = fleet.remove(3);
    let dead_1 = fleet.remove(1);
    drop((dead_1, dead_3));
    tokio::time::sleep(PAST_THRESHOLD).await;
    // several survivors notice at the same moment: subtracted exactly once
    let reads = futures_join(fleet.iter().map(|c| {
        let c = Arc::clone(c);
        let k = k.clone();
        async move { c.get(&k).await.unwrap().0 }
    }))
    .await;
    assert!(reads.iter().all(|&total| total == 1 + 4 + 16), "{reads:?}");
    assert_eq!(fleet[2].get(&k).await.unwrap(), (21, 16));
}
on_both!(five_instances, five_instances_lose_only_the_dead_ones);

async fn futures_join<F: std::future::Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn negative_slices_are_cleaned_like_positive_ones(connect: Connect) {
    let p = prefix("ic_negative");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let k = key("k");
    b.inc(&k, 10).await.unwrap();
    a.dec(&k, 4).await.unwrap();
    assert_eq!(b.get(&k).await.unwrap(), (6, 10));
    drop(a);
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(b.get(&k).await.unwrap(), (10, 10));
}
on_both!(
    negative_slices,
    negative_slices_are_cleaned_like_positive_ones
);

async fn epoch_bump_while_an_instance_is_stale(connect: Connect) {
    let p = prefix("ic_epoch");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let k = key("k");
    a.inc(&k, 10).await.unwrap();
    b.inc(&k, 5).await.unwrap();
    // global reset by b: a's slice of 10 belongs to the old epoch
    assert_eq!(b.set(&k, 100).await.unwrap(), (100, 100));
    // a resets its slice before contributing again: no double counting
    assert_eq!(a.inc(&k, 1).await.unwrap(), (101, 1));
    assert_eq!(b.del(&k).await.unwrap(), (101, 0));
    assert_eq!(a.get(&k).await.unwrap(), (0, 0));
    a.inc(&k, 2).await.unwrap();
    b.inc(&k, 3).await.unwrap();
    b.set(&k, 7).await.unwrap();
    // a dies holding an old-epoch slice: cleanup must not subtract it
    drop(a);
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(b.get(&k).await.unwrap(), (7, 7));
}
on_both!(epochs, epoch_bump_while_an_instance_is_stale);

async fn clear_on_instance_never_subtracts_old_epochs(connect: Connect) {
    let p = prefix("ic_clear_inst");
    let a = instance(&p, connect().await, "a");
    let b = instance(&p, connect().await, "b");
    let (k1, k2) = (key("k1"), key("k2"));
    a.inc(&k1, 10).await.unwrap();
    a.inc(&k2, 20).await.unwrap();
    b.inc(&k1, 1).await.unwrap();
    b.set(&k2, 5).await.unwrap();
    a.clear_on_instance().await.unwrap();
    assert_eq!(b.get(&k1).await.unwrap(), (1, 1));
    assert_eq!(b.get(&k2).await.unwrap(), (5, 5));
    assert_eq!(a.del_on_instance(&k2).await.unwrap(), (5, 0));
    assert_eq!(a.get(&k1).await.unwrap(), (1, 0));
}
on_both!(
    clear_on_instance,
    clear_on_instance_never_subtracts_old_epochs
);

async fn lax_flushes_deltas_and_keeps_heartbeat(connect: Connect) {
    let p = prefix("ic_lax");
    let lax = LaxInstanceAwareCounter::new(
        LaxInstanceAwareCounterOptions::new(p.clone(), connect().await)
            .with_dead_instance_threshold_ms(THRESHOLD_MS)
            .with_instance_id(key("lax")),
    );
    let strict = instance(&p, connect().await, "strict");
    let k = key("k");
    for _ in 0..1000 {
        lax.inc(&k, 1).await.unwrap();
    }
    lax.dec(&k, 10).await.unwrap();
    lax.flush().await.unwrap();
    assert_eq!(strict.get(&k).await.unwrap(), (990, 0));
    // idle past the threshold: flushes and the heartbeat keep it alive
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(strict.get(&k).await.unwrap(), (990, 0));
    // a global op flushes pending deltas first, then acts
    lax.inc(&k, 5).await.unwrap();
    assert_eq!(lax.set(&k, 1).await.unwrap(), (1, 1));
    assert_eq!(strict.inc(&k, 1).await.unwrap(), (2, 1));
    lax.shutdown().await.unwrap();
    drop(lax);
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(strict.get(&k).await.unwrap(), (1, 1));
}
on_both!(lax, lax_flushes_deltas_and_keeps_heartbeat);

// Concurrent calls of one instance: beyond two in flight they are combined
// into one script run, yet each is applied once, atomically, with its own
// result (every +1 sees a distinct slice) or its own error.
async fn concurrent_calls_are_each_applied_once(connect: Connect) {
    const TASKS: i64 = 64;
    const PER_TASK: i64 = 20;
    let p = prefix("ic_concurrent");
    let a = instance(&p, connect().await, "a");
    let (k, near_max) = (key("k"), key("near_max"));
    a.set_on_instance(&near_max, i64::MAX - TASKS / 2)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let a = a.clone();
        let (k, near_max) = (k.clone(), near_max.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..PER_TASK {
                let (cumulative, slice) = a.inc(&k, 1).await.unwrap();
                assert_eq!(cumulative, slice);
                seen.push(slice);
            }
            let overflowed = match a.inc(&near_max, 1).await {
                Ok(_) => false,
                Err(distkit::DistkitError::CounterOverflow { .. }) => true,
                Err(other) => panic!("{other}"),
            };
            (seen, overflowed)
        }));
    }
    let mut all = Vec::new();
    let mut overflows = 0;
    for task in tasks {
        let (seen, overflowed) = task.await.unwrap();
        all.extend(seen);
        overflows += i64::from(overflowed);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=TASKS * PER_TASK).collect::<Vec<_>>());
    assert_eq!(
        a.get(&k).await.unwrap(),
        (TASKS * PER_TASK, TASKS * PER_TASK)
    );
    // exactly the increments that fit below i64::MAX were applied
    assert_eq!(overflows, TASKS / 2);
    assert_eq!(a.get(&near_max).await.unwrap(), (i64::MAX, i64::MAX));
    // a's memory holds the last slice of every key, also where one combined
    // run changed a key many times: declared dead (its heartbeat aged in the
    // documented layout) and cleaned up by b, a restores exactly that.
    let mut raw = connect().await;
    let base = format!("distkit:icounter:{{{}}}", p.as_str());
    let b = instance(&p, connect().await, "b");
    // a's background heartbeat may refresh it in between: then age it again
    let mut declared_dead = false;
    for _ in 0..20 {
        let () = distkit::redis::pipe()
            .cmd("ZADD")
            .arg(format!("{base}:instances"))
            .arg(0)
            .arg("a")
            .cmd("HSET")
            .arg(format!("{base}:meta"))
            .arg("h:a")
            .arg(0)
            .arg("check_at")
            .arg(0)
            .query_async(&mut raw)
            .await
            .unwrap();
        if b.get(&k).await.unwrap() == (0, 0) {
            declared_dead = true;
            break;
        }
    }
    assert!(declared_dead);
    assert_eq!(
        a.get(&near_max).await.unwrap(),
        (i64::MAX, i64::MAX),
        "restored"
    );
    assert_eq!(b.get(&k).await.unwrap(), (TASKS * PER_TASK, 0));
}
on_both!(concurrent, concurrent_calls_are_each_applied_once);

// Single node: the fault proxy covers a single-node connection (on a
// cluster it would only cover the seed connection; see the ACL cut and the
// frozen-shard tests below for faults on the cluster).
async fn proxied(proxy: &distkit_testkit::FaultProxy) -> RedisConnection {
    let client = distkit::redis::Client::open(proxy.url()).unwrap();
    let config = distkit::redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(300)))
        .set_connection_timeout(Some(Duration::from_millis(300)));
    client
        .get_connection_manager_with_config(config)
        .await
        .unwrap()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_instance_back_within_threshold_keeps_its_slices() {
    let server = distkit_testkit::shared_server();
    let proxy = distkit_testkit::FaultProxy::start(server.port());
    let p = prefix("ic_pause_short");
    let a = instance(&p, proxied(&proxy).await, "a");
    let b = instance(&p, single_node().await, "b");
    let (k1, k2) = (key("k1"), key("k2"));
    a.inc(&k1, 10).await.unwrap();
    a.inc(&k2, 20).await.unwrap();
    proxy.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        b.get_all(&[&k1, &k2]).await.unwrap(),
        vec![(&k1, 10, 0), (&k2, 20, 0)]
    );
    proxy.resume();
    assert_eq!(a.get(&k1).await.unwrap(), (10, 10));
    assert_eq!(
        b.get_all(&[&k1, &k2]).await.unwrap(),
        vec![(&k1, 10, 0), (&k2, 20, 0)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_instance_recovers_every_key_once_when_back() {
    let server = distkit_testkit::shared_server();
    let proxy = distkit_testkit::FaultProxy::start(server.port());
    let p = prefix("ic_pause_long");
    let a = instance(&p, proxied(&proxy).await, "a");
    let b = instance(&p, single_node().await, "b");
    let keys: Vec<DistkitRedisKey> = (0..5).map(|i| key(&format!("k{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        a.inc(k, 10 + i as i64).await.unwrap();
        b.inc(k, 1).await.unwrap();
    }
    a.dec(&keys[0], 30).await.unwrap(); // a negative slice: -20
    proxy.partition();
    tokio::time::sleep(PAST_THRESHOLD).await;
    // b's next operation removes a: only b's slices remain
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    let seen: Vec<i64> = b
        .get_all(&refs)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c, _)| c)
        .collect();
    assert_eq!(seen, vec![1; 5]);
    proxy.heal();
    // a comes back by touching one key; every key is restored, once
    let mut back = None;
    for _ in 0..50 {
        match a.get(&keys[4]).await {
            Ok(v) => {
                back = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(back, Some((15, 14)));
    let seen: Vec<(i64, i64)> = b
        .get_all(&refs)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c, s)| (c, s))
        .collect();
    assert_eq!(seen, vec![(-19, 1), (12, 1), (13, 1), (14, 1), (15, 1)]);
    // a's own view is unchanged, and repeated reads never add again
    for _ in 0..3 {
        assert_eq!(a.get(&keys[0]).await.unwrap(), (-19, -20));
    }
}

// Faults on Redis Cluster. The fault proxy only covers a cluster's seed
// connection (nodes advertise their own ports), so the shard holding the
// prefix's hash tag is frozen instead (SIGSTOP): every instance loses it at
// once, and Redis' clock runs on. A dedicated cluster: freezing a node of the
// shared one would stall the other tests of this binary. Freezes stay below
// the cluster's node timeout (2 s), so the shard is never marked failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_cluster_shard_cleans_dead_once_and_survivors_recover() {
    let cluster = distkit_testkit::RedisCluster::start();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let p = prefix("ic_cluster_freeze");
    let node = cluster
        .owner_of(&format!("distkit:icounter:{{{}}}:meta", p.as_str()))
        .unwrap();
    let mut fleet = Vec::new();
    for id in ["a", "b", "c"] {
        let conn = RedisConnection::open_cluster(&urls).await.unwrap();
        fleet.push(Some(instance(&p, conn, id)));
    }
    let keys: Vec<DistkitRedisKey> = (0..5).map(|i| key(&format!("k{i}"))).collect();
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    // a: 10 + i on every key (k0 then -20), b: 1 on every key, c: -2 on k0, 5 on k2
    let (a_slices, b_slices) = ([-20, 11, 12, 13, 14], [1; 5]);
    for (i, k) in keys.iter().enumerate() {
        let a = fleet[0].as_ref().unwrap();
        a.inc(k, 10 + i as i64).await.unwrap();
        fleet[1].as_ref().unwrap().inc(k, 1).await.unwrap();
    }
    fleet[0].as_ref().unwrap().dec(&keys[0], 30).await.unwrap();
    let c = fleet[2].as_ref().unwrap();
    c.inc(&keys[0], -2).await.unwrap();
    c.inc(&keys[2], 5).await.unwrap();
    let with_c = [-21, 12, 18, 14, 15];
    let without_c = [-19, 12, 13, 14, 15];
    async fn view(c: &StrictInstanceAwareCounter, refs: &[&DistkitRedisKey]) -> Vec<(i64, i64)> {
        // calls queued or timed out around a freeze may fail: retry reads
        for _ in 0..100 {
            if let Ok(values) = c.get_all(refs).await {
                return values.into_iter().map(|(_, t, s)| (t, s)).collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never answered", c.instance_id());
    }
    async fn settle(c: &StrictInstanceAwareCounter) {
        for _ in 0..100 {
            if c.heartbeat().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never answered", c.instance_id());
    }
    let expect = |totals: &[i64; 5], slices: &[i64; 5]| -> Vec<(i64, i64)> {
        totals.iter().copied().zip(slices.iter().copied()).collect()
    };

    // 1. Frozen for well under the threshold: nobody is declared dead.
    node.freeze();
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.thaw();
    let a = fleet[0].as_ref().unwrap();
    assert_eq!(view(a, &refs).await, expect(&with_c, &a_slices));
    assert_eq!(a.live_instances().await.unwrap().len(), 3);

    // 2. c stops; the shard is then frozen for longer than the threshold.
    // When it thaws, the queued heartbeats of a and b run in any order: the
    // first one finds every other heartbeat expired (by Redis' clock) and
    // declares the others dead. c's slices are subtracted exactly once; a
    // and b, live all along, come back and restore every key they hold.
    fleet[2] = None;
    node.freeze();
    tokio::time::sleep(PAST_THRESHOLD).await;
    node.thaw();
    let (a, b) = (fleet[0].as_ref().unwrap(), fleet[1].as_ref().unwrap());
    // once each has answered (and restored what it held), both are whole
    settle(a).await;
    settle(b).await;
    assert_eq!(view(a, &refs).await, expect(&without_c, &a_slices));
    assert_eq!(view(b, &refs).await, expect(&without_c, &b_slices));
    // every later call, of either instance, sees the same: nothing added or
    // subtracted twice
    for _ in 0..3 {
        b.heartbeat().await.unwrap();
        a.heartbeat().await.unwrap();
        assert_eq!(view(a, &refs).await, expect(&without_c, &a_slices));
        assert_eq!(view(b, &refs).await, expect(&without_c, &b_slices));
    }
    let mut live: Vec<String> = a
        .live_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.instance_id)
        .collect();
    live.sort();
    assert_eq!(live, vec!["a", "b"]);
}

// One instance cut off on Redis Cluster while the others keep going: the
// fault proxy cannot stand in front of every node, so the instance connects
// as its own ACL user, which the cut disables on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_instance_on_cluster_recovers_every_key_once_when_back() {
    let cluster = distkit_testkit::shared_cluster();
    let p = prefix("ic_cluster_cut");
    let cut = distkit_testkit::AclCut::new(cluster, &format!("cut-{}", p.as_str())).await;
    let builder = cut
        .client_builder(cluster)
        .response_timeout(Duration::from_millis(300))
        .connection_timeout(Duration::from_millis(300));
    let a = instance(
        &p,
        RedisConnection::open_cluster_with(builder).await.unwrap(),
        "a",
    );
    let b = instance(&p, distkit_tests::cluster().await, "b");
    let keys: Vec<DistkitRedisKey> = (0..5).map(|i| key(&format!("k{i}"))).collect();
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    for (i, k) in keys.iter().enumerate() {
        a.inc(k, 10 + i as i64).await.unwrap();
        b.inc(k, 1).await.unwrap();
    }
    a.dec(&keys[0], 30).await.unwrap(); // a negative slice: -20

    // Cut for well under the threshold: a keeps its slices.
    cut.cut().await;
    assert!(a.get(&keys[1]).await.is_err(), "a is cut off");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let totals = |values: Vec<(&DistkitRedisKey, i64, i64)>| -> Vec<i64> {
        values.into_iter().map(|(_, c, _)| c).collect()
    };
    assert_eq!(
        totals(b.get_all(&refs).await.unwrap()),
        vec![-19, 12, 13, 14, 15]
    );

    // Cut for longer than the threshold: b's next operation removes a.
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(totals(b.get_all(&refs).await.unwrap()), vec![1; 5]);
    let live: Vec<String> = b
        .live_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.instance_id)
        .collect();
    assert_eq!(live, vec!["b"]);

    // a comes back by touching one key; every key is restored, once.
    cut.heal().await;
    let mut back = None;
    for _ in 0..50 {
        match a.get(&keys[4]).await {
            Ok(v) => {
                back = Some(v);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(back, Some((15, 14)));
    let seen: Vec<(i64, i64)> = b
        .get_all(&refs)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, c, s)| (c, s))
        .collect();
    assert_eq!(seen, vec![(-19, 1), (12, 1), (13, 1), (14, 1), (15, 1)]);
    // a's own view is unchanged, and repeated reads never add again
    for _ in 0..3 {
        assert_eq!(a.get(&keys[0]).await.unwrap(), (-19, -20));
        assert_eq!(
            totals(b.get_all(&refs).await.unwrap()),
            vec![-19, 12, 13, 14, 15]
        );
    }
    let mut live: Vec<String> = b
        .live_instances()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.instance_id)
        .collect();
    live.sort();
    assert_eq!(live, vec!["a", "b"]);
}

// A real process as a fleet member: the test binary runs itself as a child
// that increments by 7 and waits to be killed.
const CHILD_ENV: &str = "DISTKIT_ICOUNTER_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // only meaningful in the child
    };
    let (url_kind, prefix_name) = spec.split_once('|').unwrap();
    let conn = if url_kind == "cluster" {
        cluster().await
    } else {
        single_node().await
    };
    let p = DistkitRedisKey::try_from(prefix_name).unwrap();
    let child = instance(&p, conn, "child");
    child.inc(&key("k"), 7).await.unwrap();
    println!("CHILD_READY");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

async fn sigkilled_process_slice_vanishes_once(kind: &str, conn: RedisConnection) {
    use tokio::io::AsyncBufReadExt;
    let p = prefix("ic_sigkill");
    let parent = instance(&p, conn, "parent");
    let k = key("k");
    parent.inc(&k, 1).await.unwrap();
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    if kind == "cluster" {
        command.env(
            "REDIS_CLUSTER_URLS",
            distkit_testkit::shared_cluster().urls().join(","),
        );
    } else {
        command.env("REDIS_URL", distkit_testkit::shared_server().url());
    }
    let mut child = command
        .args([
            "--exact",
            "sigkill_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{kind}|{}", p.as_str()))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("CHILD_READY") {
            break;
        }
    }
    assert_eq!(parent.get(&k).await.unwrap(), (8, 1));
    let pid = child.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().await.unwrap();
    tokio::time::sleep(PAST_THRESHOLD).await;
    assert_eq!(parent.get(&k).await.unwrap(), (1, 1));
    // exactly once: later calls do not subtract again
    assert_eq!(parent.get(&k).await.unwrap(), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_process_slice_vanishes_once_single_node() {
    sigkilled_process_slice_vanishes_once("single", single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_process_slice_vanishes_once_cluster() {
    sigkilled_process_slice_vanishes_once("cluster", cluster().await).await;
}

// Scale: 100 000 keys, 3 dead instances holding a slice on every key. Every
// call stays answered and removes a bounded number of entries; later calls
// finish the work.
const SCALE_KEYS: usize = 100_000;
const DEAD_INSTANCES: usize = 3;
const CLEANUP_BUDGET: usize = 200;

async fn scale_cleanup_is_bounded_per_call(connect: Connect) {
    let p = prefix("ic_scale");
    let mut raw = connect().await;
    let base = format!("distkit:icounter:{{{}}}", p.as_str());
    let layout = |part: &str| format!("{base}:{part}");
    // Pipelined setup, written in the documented layout (scripts/icounter/README.md):
    // data holds "<key>" -> "<epoch>:<cumulative>" and
    // "<instance>:<key>" -> "<epoch>:<slice>", contrib indexes the entries.
    for chunk in (0..SCALE_KEYS).collect::<Vec<_>>().chunks(2_000) {
        let mut pipe = distkit::redis::pipe();
        let total = (1..=DEAD_INSTANCES as i64).sum::<i64>();
        let mut data = distkit::redis::cmd("HSET");
        data.arg(layout("data"));
        for i in chunk {
            data.arg(format!("k{i}")).arg(format!("0:{total}"));
        }
        pipe.add_command(data);
        for d in 0..DEAD_INSTANCES {
            let (mut slices, mut contrib) =
                (distkit::redis::cmd("HSET"), distkit::redis::cmd("ZADD"));
            slices.arg(layout("data"));
            contrib.arg(layout("contrib"));
            for i in chunk {
                let entry = format!("dead{d}:k{i}");
                slices.arg(&entry).arg(format!("0:{}", d + 1));
                contrib.arg(0).arg(&entry);
            }
            pipe.add_command(slices).add_command(contrib);
        }
        let () = pipe.query_async(&mut raw).await.unwrap();
    }
    for d in 0..DEAD_INSTANCES {
        let () = distkit::redis::cmd("ZADD")
            .arg(layout("instances"))
            .arg(0)
            .arg(format!("dead{d}"))
            .query_async(&mut raw)
            .await
            .unwrap();
    }
    // a long threshold: the background heartbeat stays out of the measurement
    let survivor = StrictInstanceAwareCounter::new(
        StrictInstanceAwareCounterOptions::new(p.clone(), connect().await)
            .with_dead_instance_threshold_ms(60_000)
            .with_instance_id(key("survivor")),
    );
    let (first, last) = (key("k0"), key(&format!("k{}", SCALE_KEYS - 1)));
    let entries = |mut conn: RedisConnection| {
        let contrib = layout("contrib");
        async move {
            distkit::redis::cmd("ZCARD")
                .arg(contrib)
                .query_async::<usize>(&mut conn)
                .await
                .unwrap()
        }
    };
    let mut remaining = entries(raw.clone()).await;
    assert_eq!(remaining, SCALE_KEYS * DEAD_INSTANCES);
    survivor.inc(&first, 5).await.unwrap();
    let mut calls = 1;
    loop {
        let now = entries(raw.clone()).await;
        // one call removes at most the budget
        assert!(
            remaining.saturating_sub(now) <= CLEANUP_BUDGET,
            "{remaining} -> {now}"
        );
        remaining = now;
        if remaining == 1 {
            break; // only the survivor's entry is left
        }
        let (cumulative, slice) = survivor.get(&last).await.unwrap();
        assert_eq!(slice, 0);
        assert!((0..=6).contains(&cumulative), "{cumulative}");
        calls += 1;
    }
    assert!(
        calls >= SCALE_KEYS * DEAD_INSTANCES / CLEANUP_BUDGET,
        "{calls}"
    );
    assert_eq!(survivor.get(&first).await.unwrap(), (5, 5));
    assert_eq!(survivor.get(&last).await.unwrap(), (0, 0));
    // every key: only the survivor's slice is left
    let all: Vec<DistkitRedisKey> = (1..SCALE_KEYS).map(|i| key(&format!("k{i}"))).collect();
    for chunk in all.chunks(1_000) {
        let refs: Vec<&DistkitRedisKey> = chunk.iter().collect();
        let values = survivor.get_all(&refs).await.unwrap();
        assert!(values.iter().all(|(_, c, s)| (*c, *s) == (0, 0)));
    }
}

/// The scale scenario writes and reads 100 000 keys' worth of entries in
/// large pipelines and batches, which can take longer than redis-rs'
/// default 500 ms response timeout on a loaded machine; the bound under
/// test is the work per call, so its connections wait longer for replies.
mod scale {
    const PATIENT: std::time::Duration = std::time::Duration::from_secs(30);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_node() {
        super::scale_cleanup_is_bounded_per_call(|| {
            Box::pin(distkit_tests::single_node_with_timeout(PATIENT))
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster() {
        super::scale_cleanup_is_bounded_per_call(|| {
            Box::pin(distkit_tests::cluster_with_timeout(PATIENT))
        })
        .await;
    }
}

// Model-based test: random operations of three instances on a few keys,
// every reply checked against an in-memory model of the fleet; then one
// instance dies and the invariant "cumulative == sum of current-epoch
// slices of live instances" is checked on every key.
#[derive(Default, Clone)]
struct ModelKey {
    epoch: u64,
    slices: std::collections::HashMap<usize, (i64, u64)>,
}

impl ModelKey {
    fn slice(&self, i: usize) -> i64 {
        match self.slices.get(&i) {
            Some(&(value, epoch)) if epoch == self.epoch => value,
            _ => 0,
        }
    }
    fn total(&self, alive: &[bool]) -> i64 {
        (0..alive.len())
            .filter(|&i| alive[i])
            .map(|i| self.slice(i))
            .sum()
    }
    fn put(&mut self, i: usize, value: i64) {
        self.slices.insert(i, (value, self.epoch));
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn value(&mut self) -> i64 {
        self.below(41) as i64 - 20
    }
}

async fn fleet_matches_the_model(connect: Connect) {
    const INSTANCES: usize = 3;
    const KEYS: usize = 4;
    let p = prefix("ic_model");
    let mut fleet = Vec::new();
    for i in 0..INSTANCES {
        fleet.push(Some(instance(&p, connect().await, &format!("m{i}"))));
    }
    let keys: Vec<DistkitRedisKey> = (0..KEYS).map(|i| key(&format!("k{i}"))).collect();
    let mut model = vec![ModelKey::default(); KEYS];
    let alive = [true; INSTANCES];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for step in 0..400 {
        let i = rng.below(INSTANCES as u64) as usize;
        let k = rng.below(KEYS as u64) as usize;
        let c = fleet[i].as_ref().unwrap();
        let m = &mut model[k];
        let op = rng.below(100);
        let (got, want, what) = if op < 35 {
            let d = rng.value();
            let want_slice = m.slice(i) + d;
            m.put(i, want_slice);
            (
                c.inc(&keys[k], d).await.unwrap(),
                (m.total(&alive), want_slice),
                "inc",
            )
        } else if op < 45 {
            let x = rng.value();
            let d = rng.value();
            if m.total(&alive) > x {
                let s = m.slice(i) + d;
                m.put(i, s);
            }
            let want = (m.total(&alive), m.slice(i));
            (
                c.inc_if(&keys[k], CounterComparator::Gt(x), d)
                    .await
                    .unwrap(),
                want,
                "inc_if",
            )
        } else if op < 55 {
            (
                c.get(&keys[k]).await.unwrap(),
                (m.total(&alive), m.slice(i)),
                "get",
            )
        } else if op < 65 {
            let v = rng.value();
            m.put(i, v);
            (
                c.set_on_instance(&keys[k], v).await.unwrap(),
                (m.total(&alive), v),
                "set_on_instance",
            )
        } else if op < 72 {
            let v = rng.value();
            m.epoch = 1_000 + step;
            m.put(i, v);
            (c.set(&keys[k], v).await.unwrap(), (v, v), "set")
        } else if op < 78 {
            let old = m.total(&alive);
            m.epoch = 1_000 + step;
            m.put(i, 0);
            (c.del(&keys[k]).await.unwrap(), (old, 0), "del")
        } else if op < 88 {
            let s = m.slice(i);
            m.put(i, 0);
            (
                c.del_on_instance(&keys[k]).await.unwrap(),
                (m.total(&alive), s),
                "del_on_instance",
            )
        } else if op < 93 {
            c.clear_on_instance().await.unwrap();
            for mk in model.iter_mut() {
                if mk.slice(i) != 0 {
                    mk.put(i, 0);
                }
            }
            let m = &model[k];
            (
                c.get(&keys[k]).await.unwrap(),
                (m.total(&alive), m.slice(i)),
                "clear_on_instance",
            )
        } else if op < 95 {
            c.clear().await.unwrap();
            for (n, mk) in model.iter_mut().enumerate() {
                mk.epoch = 1_000_000 + step * 10 + n as u64;
            }
            (c.get(&keys[k]).await.unwrap(), (0, 0), "clear")
        } else {
            let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
            let all = c.get_all(&refs).await.unwrap();
            for (n, (_, total, slice)) in all.iter().enumerate() {
                assert_eq!(
                    (*total, *slice),
                    (model[n].total(&alive), model[n].slice(i)),
                    "step {step} get_all"
                );
            }
            let m = &model[k];
            (
                (m.total(&alive), m.slice(i)),
                (m.total(&alive), m.slice(i)),
                "get_all",
            )
        };
        assert_eq!(got, want, "step {step}: {what} by m{i} on k{k}");
    }
    // one instance dies: its current-epoch slices vanish, nothing else moves
    fleet[1] = None;
    let alive = [true, false, true];
    tokio::time::sleep(PAST_THRESHOLD).await;
    let survivor = fleet[0].as_ref().unwrap();
    for (n, k) in keys.iter().enumerate() {
        assert_eq!(
            survivor.get(k).await.unwrap(),
            (model[n].total(&alive), model[n].slice(0)),
            "k{n} after death"
        );
    }
}
on_both!(model, fleet_matches_the_model);
