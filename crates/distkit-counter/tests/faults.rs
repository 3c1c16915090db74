//! Faults while counters work: connections cut, Redis paused, frozen or
//! restarted. Lax counters must end with exactly the sum of the increments
//! whose `inc` returned (no loss, no double count); strict counters count
//! every `inc` that returned `Ok` exactly once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{key, prefix};
use distkit_counter::{
    CounterOptions, CounterTrait, DistkitRedisKey, LaxCounter, RedisConnection, StrictCounter,
};
use distkit_testkit::{FaultProxy, RedisServer, ServerOptions, shared_server};

const RECOVERY_DEADLINE: Duration = Duration::from_secs(20);

/// A connection manager to `url` that gives up on a reply after 300 ms, so
/// faults surface as errors instead of hanging calls.
async fn impatient_connection(url: &str) -> RedisConnection {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_millis(300)))
        .set_connection_timeout(Some(Duration::from_millis(300)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(100));
    redis::Client::open(url)
        .unwrap()
        .get_connection_manager_with_config(config)
        .await
        .unwrap()
        .into()
}

/// Flushes until Redis accepts (after the fault healed).
async fn flush_until_confirmed(lax: &LaxCounter) {
    let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    loop {
        match lax.flush().await {
            Ok(()) => return,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "flush never recovered: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn stored_total(audit: &StrictCounter, keys: &[DistkitRedisKey]) -> i64 {
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    audit
        .get_all(&refs)
        .await
        .unwrap()
        .iter()
        .map(|(_, v)| *v)
        .sum()
}

/// Increments `keys` from `tasks` tasks until `stop`; returns the sum of the
/// increments whose `inc` returned `Ok` and of those that returned `Err`.
fn spawn_load<C: CounterTrait + 'static>(
    counter: Arc<C>,
    keys: Vec<DistkitRedisKey>,
    tasks: u64,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(i64, i64)>> {
    (0..tasks)
        .map(|task| {
            let (counter, keys, stop) = (counter.clone(), keys.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0i64, 0i64);
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = &keys[((task + round) % keys.len() as u64) as usize];
                    let delta = 1 + (round % 3) as i64;
                    match counter.inc(k, delta).await {
                        Ok(_) => ok += delta,
                        Err(_) => failed += delta,
                    }
                    round += 1;
                    if round.is_multiple_of(16) {
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                }
                (ok, failed)
            })
        })
        .collect()
}

async fn join_load(tasks: Vec<tokio::task::JoinHandle<(i64, i64)>>) -> (i64, i64) {
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (o, f) = task.await.unwrap();
        ok += o;
        failed += f;
    }
    (ok, failed)
}

fn keys(n: usize) -> Vec<DistkitRedisKey> {
    (0..n).map(|i| key(&format!("k{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_total_is_exact_across_connection_cuts_and_pauses() {
    let proxy = FaultProxy::start(shared_server().port());
    let conn = impatient_connection(&proxy.url()).await;
    let options =
        CounterOptions::new(prefix("lax_cuts"), conn).with_allowed_lag(Duration::from_millis(5));
    let audit = StrictCounter::new(CounterOptions::new(
        options.prefix.clone(),
        shared_server().connection_manager().await,
    ));
    let lax = LaxCounter::new(options);
    let keys = keys(8);
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(lax.clone(), keys.clone(), 4, stop.clone());
    for round in 0..12 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        if round % 2 == 0 {
            proxy.cut();
        } else {
            // Requests and replies stall: some flushes reach Redis but their
            // replies are lost to the response timeout, and get retried.
            proxy.pause();
            tokio::time::sleep(Duration::from_millis(350)).await;
            proxy.resume();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, _failed) = join_load(load).await;
    flush_until_confirmed(&lax).await;
    assert_eq!(stored_total(&audit, &keys).await, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_total_is_exact_across_a_redis_restart() {
    let server = RedisServer::start_with(ServerOptions::default().appendonly(true));
    let conn = impatient_connection(&server.url()).await;
    let options =
        CounterOptions::new(prefix("lax_restart"), conn).with_allowed_lag(Duration::from_millis(5));
    let lax = LaxCounter::new(options.clone());
    let keys = keys(8);
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(lax.clone(), keys.clone(), 4, stop.clone());
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.restart(); // SIGKILL, then the same port and data directory
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.restart();
    tokio::time::sleep(Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, _failed) = join_load(load).await;
    flush_until_confirmed(&lax).await;
    let audit = StrictCounter::new(CounterOptions::new(
        options.prefix.clone(),
        server.connection_manager().await,
    ));
    assert_eq!(stored_total(&audit, &keys).await, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_whose_reply_was_lost_is_not_applied_twice() {
    let server = RedisServer::start();
    let conn = impatient_connection(&server.url()).await;
    let options =
        CounterOptions::new(prefix("lost_reply"), conn).with_allowed_lag(Duration::from_secs(3600));
    let lax = LaxCounter::new(options.clone());
    let audit = StrictCounter::new(CounterOptions::new(
        options.prefix.clone(),
        server.connection_manager().await,
    ));
    let k = key("k");
    // Load the flush script first, so the request below runs as soon as
    // Redis wakes up.
    lax.inc(&key("warm_up"), 1).await.unwrap();
    lax.flush().await.unwrap();

    lax.inc(&k, 7).await.unwrap();
    server.freeze();
    assert!(lax.flush().await.is_err(), "the reply cannot arrive");
    server.thaw();
    // The request was delivered: Redis applies it once it runs again.
    let deadline = tokio::time::Instant::now() + RECOVERY_DEADLINE;
    while audit.get(&k).await.unwrap() != 7 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the batch never landed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The counter does not know it landed and sends it again, with more.
    lax.inc(&k, 1).await.unwrap();
    flush_until_confirmed(&lax).await;
    assert_eq!(audit.get(&k).await.unwrap(), 8);
    assert_eq!(lax.get(&k).await.unwrap(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_counts_every_acknowledged_inc_once_across_cuts() {
    let proxy = FaultProxy::start(shared_server().port());
    let conn = impatient_connection(&proxy.url()).await;
    let options = CounterOptions::new(prefix("strict_cuts"), conn);
    let strict = StrictCounter::new(options.clone());
    let audit = StrictCounter::new(CounterOptions::new(
        options.prefix.clone(),
        shared_server().connection_manager().await,
    ));
    let keys = keys(4);
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(strict, keys.clone(), 8, stop.clone());
    for round in 0..8 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        if round % 2 == 0 {
            proxy.cut();
        } else {
            proxy.pause();
            tokio::time::sleep(Duration::from_millis(350)).await;
            proxy.resume();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failed) = join_load(load).await;
    let stored = stored_total(&audit, &keys).await;
    // Every `inc` that returned Ok is stored exactly once. One that returned
    // Err may or may not have been applied (its reply may be what was lost),
    // but never more than once: so the stored total lies between the two.
    assert!(
        acknowledged > 0 && failed > 0,
        "ok {acknowledged}, failed {failed}"
    );
    assert!(
        acknowledged <= stored && stored <= acknowledged + failed,
        "stored {stored}, acknowledged {acknowledged}, failed {failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lax_total_is_exact_across_a_frozen_cluster() {
    let cluster = distkit_testkit::shared_cluster();
    let options = CounterOptions::new(prefix("lax_cluster_freeze"), cluster.connection().await)
        .with_allowed_lag(Duration::from_millis(5));
    let lax = LaxCounter::new(options.clone());
    let audit = StrictCounter::new(options);
    let keys = keys(8);
    let stop = Arc::new(AtomicBool::new(false));
    let load = spawn_load(lax.clone(), keys.clone(), 4, stop.clone());
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        for node in cluster.nodes() {
            node.freeze();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for node in cluster.nodes() {
            node.thaw();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, _failed) = join_load(load).await;
    flush_until_confirmed(&lax).await;
    assert_eq!(stored_total(&audit, &keys).await, acknowledged);
}
