//! The trypema re-export through the facade: local, Redis and hybrid providers
//! with the absolute and suppressed strategies, on the user's own
//! `ConnectionManager`.
//!
//! trypema's Redis scripts touch several keys without a shared hash tag and
//! take only a single-node `ConnectionManager`, so they are tested on a single
//! node only; distkit's native limiter (`distkit::ratelimit`) is the one that
//! runs on Redis Cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use distkit::trypema::hybrid::{HybridRateLimiterProvider, SyncInterval};
use distkit::trypema::local::LocalRateLimiterProvider;
use distkit::trypema::redis::{ConnectionManager, RedisKey, RedisRateLimiterProvider};
use distkit::trypema::{BucketSize, RateLimit, RateLimitDecision, RateLimiterBuilder, WindowSize};

async fn connection_manager() -> ConnectionManager {
    distkit_testkit::shared_server().connection_manager().await
}

fn redis_prefix(name: &str) -> RedisKey {
    RedisKey::try_from(distkit_testkit::unique_prefix(name)).unwrap()
}

fn is_allowed(decision: &RateLimitDecision) -> bool {
    match decision {
        RateLimitDecision::Allowed => true,
        RateLimitDecision::Rejected { .. } => false,
        RateLimitDecision::Suppressed { is_allowed, .. } => *is_allowed,
    }
}

#[test]
fn local_absolute_admits_up_to_the_limit_then_rejects_with_retry_after() {
    let provider = LocalRateLimiterProvider::builder()
        .window_size(WindowSize::seconds_or_panic(10))
        .bucket_size(BucketSize::milliseconds_or_panic(100))
        .disable_cleanup()
        .build()
        .unwrap();
    let rate = RateLimit::per_second_or_panic(1.0); // 10 per 10 s window
    for _ in 0..10 {
        assert!(matches!(
            provider.absolute().inc("user", &rate, 1),
            RateLimitDecision::Allowed
        ));
    }
    match provider.absolute().inc("user", &rate, 1) {
        RateLimitDecision::Rejected { retry_after, .. } => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn local_suppressed_exposes_a_suppression_factor_past_the_limit() {
    let provider = LocalRateLimiterProvider::builder()
        .window_size(WindowSize::seconds_or_panic(10))
        .disable_cleanup()
        .build()
        .unwrap();
    let rate = RateLimit::per_second_or_panic(1.0);
    let mut saw_suppressed = false;
    for _ in 0..40 {
        if let RateLimitDecision::Suppressed {
            suppression_factor, ..
        } = provider.suppressed().inc("user", &rate, 1)
        {
            assert!((0.0..=1.0).contains(&suppression_factor));
            saw_suppressed = true;
        }
    }
    assert!(saw_suppressed);
    assert!(provider.suppressed().get_suppression_factor("user") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_absolute_shares_the_limit_through_the_users_connection_manager() {
    let provider = RedisRateLimiterProvider::builder(connection_manager().await)
        .prefix(redis_prefix("trypema_redis_abs"))
        .window_size(WindowSize::seconds_or_panic(10))
        .bucket_size(BucketSize::milliseconds_or_panic(100))
        .disable_cleanup()
        .build()
        .unwrap();
    let key = RedisKey::try_from("user").unwrap();
    let rate = RateLimit::per_second_or_panic(0.5); // 5 per 10 s window
    let mut admitted = 0;
    for _ in 0..8 {
        if is_allowed(&provider.absolute().inc(&key, &rate, 1).await.unwrap()) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    assert_eq!(provider.absolute().get(&key).await.unwrap(), 5);
    match provider.absolute().is_allowed(&key).await.unwrap() {
        RateLimitDecision::Rejected { retry_after, .. } => {
            assert!(retry_after <= Duration::from_secs(10));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_suppressed_reports_the_factor() {
    let provider = RedisRateLimiterProvider::builder(connection_manager().await)
        .prefix(redis_prefix("trypema_redis_sup"))
        .window_size(WindowSize::seconds_or_panic(10))
        .disable_cleanup()
        .build()
        .unwrap();
    let key = RedisKey::try_from("user").unwrap();
    let rate = RateLimit::per_second_or_panic(1.0);
    for _ in 0..30 {
        provider.suppressed().inc(&key, &rate, 1).await.unwrap();
    }
    let factor = provider
        .suppressed()
        .get_suppression_factor(&key)
        .await
        .unwrap();
    assert!(factor > 0.0 && factor <= 1.0, "factor {factor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_absolute_rejects_once_the_limit_is_reached() {
    let provider = HybridRateLimiterProvider::builder(connection_manager().await)
        .prefix(redis_prefix("trypema_hybrid_abs"))
        .window_size(WindowSize::seconds_or_panic(10))
        .sync_interval(SyncInterval::milliseconds_or_panic(10))
        .disable_cleanup()
        .build()
        .unwrap();
    let key = RedisKey::try_from("user").unwrap();
    let rate = RateLimit::per_second_or_panic(1.0); // 10 per window
    let mut admitted = 0;
    for _ in 0..30 {
        if is_allowed(&provider.absolute().inc(&key, &rate, 1).await.unwrap()) {
            admitted += 1;
        }
    }
    // One instance: its local state sees every one of its own calls.
    assert_eq!(admitted, 10);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!is_allowed(
        &provider.absolute().inc(&key, &rate, 1).await.unwrap()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_suppressed_reports_the_factor() {
    let provider = HybridRateLimiterProvider::builder(connection_manager().await)
        .prefix(redis_prefix("trypema_hybrid_sup"))
        .window_size(WindowSize::seconds_or_panic(10))
        .sync_interval(SyncInterval::milliseconds_or_panic(10))
        .disable_cleanup()
        .build()
        .unwrap();
    let key = RedisKey::try_from("user").unwrap();
    let rate = RateLimit::per_second_or_panic(1.0);
    let mut saw_suppressed = false;
    for _ in 0..40 {
        if let RateLimitDecision::Suppressed {
            suppression_factor, ..
        } = provider.suppressed().inc(&key, &rate, 1).await.unwrap()
        {
            assert!((0.0..=1.0).contains(&suppression_factor));
            saw_suppressed = true;
        }
    }
    assert!(saw_suppressed);
}
