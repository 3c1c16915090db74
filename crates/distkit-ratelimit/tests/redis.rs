//! The Redis and hybrid providers of this crate alone, against real Redis
//! (single node and cluster), and interoperability with the vendored scripts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use distkit_ratelimit::{
    DistkitRedisKey, HybridOptions, HybridRateLimiter, RateLimit, RedisConnection, RedisOptions,
    RedisRateLimiter, Window,
};
use distkit_testkit::{shared_cluster, shared_server, unique_prefix};

fn namespace(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(unique_prefix(name)).unwrap()
}

fn limit(capacity: u64) -> RateLimit {
    let window = Window::new(Duration::from_secs(10), Duration::from_secs(1)).unwrap();
    RateLimit::per_window(capacity, window).unwrap()
}

async fn redis_and_hybrid_share_one_budget(conn: RedisConnection) {
    let namespace = namespace("crate_shared");
    let user = DistkitRedisKey::try_from("user").unwrap();
    let redis = RedisRateLimiter::new(RedisOptions::new(namespace.clone(), conn.clone(), limit(8)));
    let hybrid = HybridRateLimiter::new(HybridOptions::new(namespace, conn, limit(8), 3).unwrap());
    assert!(redis.inc(&user, 4).await.unwrap().is_allowed());
    let mut hybrid_admitted = 0;
    for _ in 0..10 {
        if hybrid.inc(&user, 1).await.unwrap().is_allowed() {
            hybrid_admitted += 1;
        }
    }
    assert_eq!(hybrid_admitted, 4);
    assert!(redis.inc(&user, 1).await.unwrap().is_rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_hybrid_share_one_budget_single_node() {
    redis_and_hybrid_share_one_budget(shared_server().connection_manager().await.into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_and_hybrid_share_one_budget_cluster() {
    redis_and_hybrid_share_one_budget(shared_cluster().connection().await.into()).await;
}

/// A service that vendors `scripts/ratelimit/absolute_inc.lua` and calls it
/// with the documented key and arguments shares the budget with the crate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendored_script_interoperates_with_the_crate() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/ratelimit/absolute_inc.lua"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let namespace = namespace("crate_vendored");
    let mut conn = shared_server().connection_manager().await;
    let key = format!("distkit:ratelimit:{namespace}:{{user}}:absolute");
    let reply: Vec<i64> = redis::Script::new(&source)
        .key(&key)
        .arg(1000) // bucket ms
        .arg(10) // buckets per window
        .arg(5) // capacity
        .arg(3) // cost
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(&reply[..2], &[1, 3]);
    let limiter = RedisRateLimiter::new(RedisOptions::new(namespace, conn, limit(5)));
    let user = DistkitRedisKey::try_from("user").unwrap();
    assert_eq!(limiter.inc(&user, 2).await.unwrap().remaining(), 0);
    assert!(limiter.inc(&user, 1).await.unwrap().is_rejected());
}
