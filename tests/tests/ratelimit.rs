//! The native rate limiter through the facade (`distkit::ratelimit`), against
//! real Redis: single node and the 3-master cluster, several instances on
//! separate connections, a Redis restart, and a differential test against
//! trypema's local provider.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use distkit::ratelimit::{
    Decision, DistkitError, DistkitRedisKey, HybridOptions, HybridRateLimiter, LocalOptions,
    LocalRateLimiter, RateLimit, RedisConnection, RedisOptions, RedisRateLimiter, Strategy, Window,
};
use distkit_tests::{cluster, prefix, single_node};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(name).unwrap()
}

fn limit(capacity: u64, window_ms: u64, bucket_ms: u64) -> RateLimit {
    RateLimit::per_window(capacity, Window::new(ms(window_ms), ms(bucket_ms)).unwrap()).unwrap()
}

fn redis_limiter(conn: RedisConnection, name: &str, limit: RateLimit) -> RedisRateLimiter {
    RedisRateLimiter::new(RedisOptions::new(prefix(name), conn, limit))
}

// ---------------------------------------------------------------- Redis ----

async fn admits_up_to_the_limit_then_rejects(conn: RedisConnection) {
    let limiter = redis_limiter(conn, "rl_limit", limit(5, 10_000, 1000));
    let user = key("user");
    for expected_remaining in (0..5).rev() {
        let decision = limiter.inc(&user, 1).await.unwrap();
        assert!(decision.is_allowed());
        assert_eq!(decision.remaining(), expected_remaining);
        assert_eq!(decision.limit(), 5);
    }
    let refused = limiter.inc(&user, 1).await.unwrap();
    assert!(refused.is_rejected());
    let retry_after = refused.retry_after().unwrap();
    // All five landed within a few ms, in at most two 1 s buckets: the first
    // bucket leaves the window between 9 and 10 s from now.
    assert!(
        retry_after > ms(8_000) && retry_after <= ms(10_000),
        "{retry_after:?}"
    );
    assert!(refused.reset_after() >= retry_after);
    // A weighted call never crosses the limit, on another key.
    let other = key("other");
    assert!(limiter.inc(&other, 4).await.unwrap().is_allowed());
    let crossing = limiter.inc(&other, 4).await.unwrap();
    assert!(crossing.is_rejected());
    assert_eq!(crossing.remaining(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_admits_up_to_the_limit_then_rejects_single_node() {
    admits_up_to_the_limit_then_rejects(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_admits_up_to_the_limit_then_rejects_cluster() {
    admits_up_to_the_limit_then_rejects(cluster().await).await;
}

/// Usage leaves the window bucket by bucket, on Redis server time: waiting
/// the `retry_after` the server gave is enough, and not more.
async fn slides_across_bucket_boundaries(conn: RedisConnection) {
    let limiter = redis_limiter(conn, "rl_slide", limit(4, 600, 100));
    let user = key("user");
    assert!(limiter.inc(&user, 2).await.unwrap().is_allowed());
    // Move to a later bucket before spending the rest.
    let first = limiter.inc(&user, 3).await.unwrap();
    assert!(first.is_rejected());
    tokio::time::sleep(ms(150)).await;
    assert!(limiter.inc(&user, 2).await.unwrap().is_allowed());
    let refused = limiter.inc(&user, 2).await.unwrap();
    assert!(refused.is_rejected());
    let retry_after = refused.retry_after().unwrap();
    assert!(retry_after <= ms(600));
    // Only the first 2 units need to leave; the later 2 stay longer.
    assert!(refused.reset_after() > retry_after);
    tokio::time::sleep(retry_after + ms(5)).await;
    let after = limiter.inc(&user, 2).await.unwrap();
    assert!(after.is_allowed(), "{after:?}");
    assert!(limiter.inc(&user, 1).await.unwrap().is_rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slides_across_bucket_boundaries_single_node() {
    slides_across_bucket_boundaries(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_slides_across_bucket_boundaries_cluster() {
    slides_across_bucket_boundaries(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_expire_on_their_own() {
    let namespace = prefix("rl_ttl");
    let limiter = RedisRateLimiter::new(RedisOptions::new(
        namespace.clone(),
        single_node().await,
        limit(5, 2000, 200),
    ));
    limiter.inc(&key("user"), 1).await.unwrap();
    let mut conn = distkit_testkit::shared_server().connection_manager().await;
    let name = format!("distkit:ratelimit:{namespace}:{{user}}:absolute");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 2000 && pttl <= 2200, "PTTL {pttl}");
}

/// Every limited key is its own hash tag: on the cluster, keys land on all
/// three masters, and each call still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_limited_keys_over_all_shards() {
    let namespace = prefix("rl_spread");
    let limiter = RedisRateLimiter::new(RedisOptions::new(
        namespace.clone(),
        cluster().await,
        limit(2, 10_000, 1000),
    ));
    for i in 0..30 {
        let user = key(&format!("user{i}"));
        assert!(limiter.inc(&user, 2).await.unwrap().is_allowed());
        assert!(limiter.inc(&user, 1).await.unwrap().is_rejected());
    }
    let pattern = format!("distkit:ratelimit:{namespace}:*");
    let mut per_node = Vec::new();
    for url in distkit_testkit::shared_cluster().urls() {
        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        per_node.push(keys.len());
    }
    assert_eq!(per_node.iter().sum::<usize>(), 30);
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys per node {per_node:?}"
    );
}

/// Instances on separate connections share one budget exactly.
async fn instances_share_one_budget(instances: usize, conn: impl Fn() -> RedisConnection) {
    let namespace = prefix("rl_shared");
    let capacity = 50;
    let limiters: Vec<Arc<RedisRateLimiter>> = (0..instances)
        .map(|_| {
            Arc::new(RedisRateLimiter::new(RedisOptions::new(
                namespace.clone(),
                conn(),
                limit(capacity, 30_000, 1000),
            )))
        })
        .collect();
    let tasks: Vec<_> = limiters
        .into_iter()
        .map(|limiter| {
            tokio::spawn(async move {
                let mut admitted = 0u64;
                for _ in 0..40 {
                    if limiter.inc(&key("shared"), 1).await.unwrap().is_allowed() {
                        admitted += 1;
                    }
                }
                admitted
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, capacity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_instances_share_one_budget_single_node() {
    let server = distkit_testkit::shared_server();
    for instances in [2, 3] {
        let mut conns = Vec::new();
        for _ in 0..instances {
            conns.push(RedisConnection::from(server.connection_manager().await));
        }
        let conns = Mutex::new(conns);
        instances_share_one_budget(instances, || conns.lock().unwrap().pop().unwrap()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_instances_share_one_budget_cluster() {
    for instances in [2, 3] {
        let mut conns = Vec::new();
        for _ in 0..instances {
            conns.push(cluster().await);
        }
        let conns = Mutex::new(conns);
        instances_share_one_budget(instances, || conns.lock().unwrap().pop().unwrap()).await;
    }
}

/// Suppressed on Redis: the factor rises with load, and the admitted count
/// of the suppressed calls matches their admission probabilities (seeded
/// client draws) within 4 standard deviations.
async fn suppressed_factor_predicts_admissions(conn: RedisConnection) {
    let limiter = RedisRateLimiter::new(
        RedisOptions::new(prefix("rl_suppressed"), conn, limit(50, 30_000, 1000))
            .strategy(Strategy::suppressed(10.0).unwrap())
            .seed(42),
    );
    let user = key("user");
    let (mut previous, mut expected, mut variance, mut admitted) = (0.0f64, 0.0, 0.0, 0.0);
    for _ in 0..600 {
        let decision = limiter.inc(&user, 1).await.unwrap();
        let factor = decision.suppression_factor().unwrap();
        assert!(factor >= previous, "{factor} < {previous}");
        previous = factor;
        if factor > 0.0 && factor < 1.0 {
            let p = 1.0 - factor;
            expected += p;
            variance += p * (1.0 - p);
            if decision.is_allowed() {
                admitted += 1.0;
            }
        }
    }
    assert!((previous - (1.0 - 50.0 / 600.0)).abs() < 1e-9, "{previous}");
    let sigma: f64 = variance.sqrt();
    assert!(
        (admitted - expected).abs() <= 4.0 * sigma + 1.0,
        "admitted {admitted}, expected {expected} ± {sigma}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_factor_predicts_admissions_single_node() {
    suppressed_factor_predicts_admissions(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_factor_predicts_admissions_cluster() {
    suppressed_factor_predicts_admissions(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_surfaces_errors_then_recovers() {
    let server = distkit_testkit::RedisServer::start();
    let conn: RedisConnection = server.connection_manager().await.into();
    let limiter = redis_limiter(conn, "rl_restart", limit(100, 10_000, 1000));
    let user = key("user");
    assert!(limiter.inc(&user, 1).await.unwrap().is_allowed());
    server.kill();
    let error = limiter.inc(&user, 1).await.unwrap_err();
    assert!(
        matches!(error, DistkitError::Redis { .. }) && error.is_connection_error(),
        "{error:?}"
    );
    server.restart();
    // The connection manager reconnects in the background; the first calls
    // after the restart may still see the old connection fail.
    let mut recovered = None;
    for _ in 0..100 {
        match limiter.inc(&user, 1).await {
            Ok(decision) => {
                recovered = Some(decision);
                break;
            }
            Err(error) => {
                assert!(error.is_connection_error(), "{error:?}");
                tokio::time::sleep(ms(50)).await;
            }
        }
    }
    // The restarted server kept no data (no persistence): a fresh window.
    let decision = recovered.expect("the limiter recovers after the restart");
    assert!(decision.is_allowed());
    assert_eq!(decision.remaining(), 99);
}

// --------------------------------------------------------------- Hybrid ----

async fn hybrid_admits_up_to_the_limit(conn: RedisConnection) {
    let options =
        HybridOptions::new(prefix("rl_hybrid"), conn, limit(25, 10_000, 1000), 10).unwrap();
    let limiter = HybridRateLimiter::new(options);
    let user = key("user");
    let mut admitted = 0;
    let mut fast = 0;
    let mut last = None;
    for _ in 0..40 {
        if let Some(decision) = limiter.try_inc(&user, 1).unwrap() {
            fast += 1;
            if decision.is_allowed() {
                admitted += 1;
            }
            last = Some(decision);
            continue;
        }
        let decision = limiter.inc(&user, 1).await.unwrap();
        if decision.is_allowed() {
            admitted += 1;
        }
        last = Some(decision);
    }
    // One instance leases 10 + 10 + 5: exactly the capacity.
    assert_eq!(admitted, 25);
    assert!(fast >= 30, "{fast} calls decided in memory");
    let last: Decision = last.unwrap();
    assert!(last.is_rejected());
    assert!(last.retry_after().unwrap() <= ms(10_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_admits_up_to_the_limit_single_node() {
    hybrid_admits_up_to_the_limit(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_admits_up_to_the_limit_cluster() {
    hybrid_admits_up_to_the_limit(cluster().await).await;
}

/// The documented bound: N hybrid instances on separate connections,
/// started together and hammering one key for three windows, never admit
/// more than `ceiling + N × slice` in any span of `window - bucket`, where
/// the ceiling is the capacity (absolute) or the hard limit (suppressed).
/// Spans are measured on the client clock, shortened by 50 ms for the offset
/// between client and server time. Returns every decision.
async fn hybrid_instances_stay_within_the_bound(
    conns: Vec<RedisConnection>,
    strategy: Strategy,
    ceiling: u64,
) -> Vec<Decision> {
    const CAPACITY: u64 = 200;
    const SLICE: u64 = 10;
    const WINDOW_MS: u64 = 1000;
    const BUCKET_MS: u64 = 100;
    let instances = conns.len() as u64;
    let namespace = prefix("rl_hybrid_bound");
    let start = Instant::now();
    let deadline = start + ms(3 * WINDOW_MS);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let options = HybridOptions::new(
                namespace.clone(),
                conn,
                limit(CAPACITY, WINDOW_MS, BUCKET_MS),
                SLICE,
            )
            .unwrap()
            .strategy(strategy);
            let limiter = HybridRateLimiter::new(options);
            tokio::spawn(async move {
                let user = key("hot");
                let mut decisions = Vec::new();
                while Instant::now() < deadline {
                    let decision = match limiter.try_inc(&user, 1).unwrap() {
                        Some(decision) => decision,
                        None => limiter.inc(&user, 1).await.unwrap(),
                    };
                    decisions.push((Instant::now(), decision));
                    tokio::task::yield_now().await;
                }
                decisions
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        decisions.extend(task.await.unwrap());
    }
    let mut admitted_at: Vec<Instant> = decisions
        .iter()
        .filter(|(_, decision)| decision.is_allowed())
        .map(|(at, _)| *at)
        .collect();
    admitted_at.sort();
    let span = ms(WINDOW_MS - BUCKET_MS - 50);
    let mut most = 0;
    let mut first = 0;
    for (last, at) in admitted_at.iter().enumerate() {
        while *at - admitted_at[first] > span {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    let bound = (ceiling + instances * SLICE) as usize;
    assert!(most <= bound, "{most} admitted in one span, bound {bound}");
    // The limiter is not merely refusing: over three windows at least two
    // windows' worth went through.
    assert!(
        admitted_at.len() as u64 >= 2 * CAPACITY,
        "{} admitted",
        admitted_at.len()
    );
    decisions
        .into_iter()
        .map(|(_, decision)| decision)
        .collect()
}

async fn separate_connections(cluster_mode: bool, count: usize) -> Vec<RedisConnection> {
    let mut conns = Vec::new();
    for _ in 0..count {
        conns.push(if cluster_mode {
            cluster().await
        } else {
            distkit_testkit::shared_server()
                .connection_manager()
                .await
                .into()
        });
    }
    conns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hybrid_instances_stay_within_capacity_plus_n_slices_single_node() {
    let conns = separate_connections(false, 4).await;
    hybrid_instances_stay_within_the_bound(conns, Strategy::Absolute, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hybrid_instances_stay_within_capacity_plus_n_slices_cluster() {
    let conns = separate_connections(true, 4).await;
    hybrid_instances_stay_within_the_bound(conns, Strategy::Absolute, 200).await;
}

/// Checks suppressed decisions: every factor is in [0, 1], and the calls
/// decided by a draw (0 < factor < 1) were admitted as often as their
/// factors predict, within 4 standard deviations. Returns how many draws.
fn assert_draws_match_factors(decisions: &[Decision]) -> usize {
    let (mut draws, mut expected, mut variance, mut admitted) = (0usize, 0.0f64, 0.0f64, 0.0f64);
    for decision in decisions {
        let factor = decision.suppression_factor().unwrap();
        assert!((0.0..=1.0).contains(&factor), "{factor}");
        if factor == 1.0 {
            assert!(decision.is_rejected());
        }
        if factor > 0.0 && factor < 1.0 {
            draws += 1;
            let p = 1.0 - factor;
            expected += p;
            variance += p * (1.0 - p);
            admitted += f64::from(u8::from(decision.is_allowed()));
        }
    }
    let sigma = variance.sqrt();
    assert!(
        (admitted - expected).abs() <= 4.0 * sigma + 1.0,
        "admitted {admitted}, expected {expected} ± {sigma}"
    );
    draws
}

/// Four suppressed hybrid instances hammering one key: admissions stay
/// within `hard + N × slice` per span, calls past the capacity are drawn
/// with the factor they carry, and past the hard limit refused (factor 1).
async fn four_suppressed_hybrid_instances(cluster_mode: bool) {
    let conns = separate_connections(cluster_mode, 4).await;
    let decisions =
        hybrid_instances_stay_within_the_bound(conns, Strategy::suppressed(1.5).unwrap(), 300)
            .await;
    let draws = assert_draws_match_factors(&decisions);
    assert!(draws > 0, "some calls were drawn");
    assert!(
        decisions
            .iter()
            .any(|decision| decision.suppression_factor() == Some(1.0)),
        "the hard limit was reached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_suppressed_hybrid_instances_stay_within_hard_limit_plus_n_slices_single_node() {
    four_suppressed_hybrid_instances(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_suppressed_hybrid_instances_stay_within_hard_limit_plus_n_slices_cluster() {
    four_suppressed_hybrid_instances(true).await;
}

/// One suppressed hybrid instance: below the capacity every call passes
/// (factor 0, mostly decided in memory); past it the factor rises with the
/// offered load exactly as `1 - capacity / observed` over all calls, and the
/// admitted count of the drawn calls matches their factors.
async fn hybrid_suppressed_factor_rises_with_load(conn: RedisConnection) {
    let limiter = HybridRateLimiter::new(
        HybridOptions::new(
            prefix("rl_hybrid_suppressed"),
            conn,
            limit(50, 30_000, 1000),
            10,
        )
        .unwrap()
        .strategy(Strategy::suppressed(10.0).unwrap())
        .seed(42),
    );
    let user = key("user");
    let mut decisions = Vec::new();
    let mut fast = 0;
    let mut previous = 0.0f64;
    for call in 1..=600u64 {
        let decision = match limiter.try_inc(&user, 1).unwrap() {
            Some(decision) => {
                fast += 1;
                decision
            }
            None => limiter.inc(&user, 1).await.unwrap(),
        };
        let factor = decision.suppression_factor().unwrap();
        assert!(factor >= previous, "call {call}: {factor} < {previous}");
        previous = factor;
        if call <= 50 {
            assert!(decision.is_allowed(), "call {call} is below the capacity");
            assert_eq!(factor, 0.0);
        } else {
            assert_eq!(factor, 1.0 - 50.0 / call as f64, "call {call}");
        }
        decisions.push(decision);
    }
    assert!(fast >= 400, "{fast} of 600 calls decided in memory");
    assert_eq!(assert_draws_match_factors(&decisions), 550);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_suppressed_factor_rises_with_load_single_node() {
    hybrid_suppressed_factor_rises_with_load(single_node().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_suppressed_factor_rises_with_load_cluster() {
    hybrid_suppressed_factor_rises_with_load(cluster().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_hands_back_unused_leases() {
    let namespace = prefix("rl_hand_back");
    let conn = single_node().await;
    let window = limit(20, 10_000, 100);
    let a = HybridRateLimiter::new(
        HybridOptions::new(namespace.clone(), conn.clone(), window, 15).unwrap(),
    );
    let b = HybridRateLimiter::new(HybridOptions::new(namespace, conn, window, 15).unwrap());
    let user = key("user");
    assert!(a.inc(&user, 1).await.unwrap().is_allowed()); // a leases 15
    // b finds only 5 free.
    let mut b_admitted = 0;
    for _ in 0..10 {
        if b.inc(&user, 1).await.unwrap().is_allowed() {
            b_admitted += 1;
        }
    }
    assert_eq!(b_admitted, 5);
    // Once a's lease bucket has ended, reconcile hands its 14 unused units back.
    tokio::time::sleep(ms(150)).await;
    a.reconcile().await;
    tokio::time::sleep(ms(150)).await; // b's refusal was cached for its retry_after at most
    let mut b_after = 0;
    for _ in 0..20 {
        let decision = match b.try_inc(&user, 1).unwrap() {
            Some(decision) => decision,
            None => b.inc(&user, 1).await.unwrap(),
        };
        if decision.is_allowed() {
            b_after += 1;
        }
    }
    assert_eq!(b_after, 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_restart_surfaces_errors_then_recovers() {
    let server = distkit_testkit::RedisServer::start();
    let conn: RedisConnection = server.connection_manager().await.into();
    // 1 s buckets: the lease taken before the restart stays usable in memory
    // for the rest of its bucket, so the test waits for it to end.
    let options = HybridOptions::new(
        prefix("rl_hybrid_restart"),
        conn,
        limit(100, 10_000, 1000),
        5,
    )
    .unwrap();
    let limiter = HybridRateLimiter::new(options);
    let user = key("user");
    assert!(limiter.inc(&user, 5).await.unwrap().is_allowed());
    server.kill();
    tokio::time::sleep(ms(1000)).await; // the lease's bucket has ended
    let error = limiter.inc(&user, 1).await.unwrap_err();
    assert!(
        matches!(error, DistkitError::Redis { .. }) && error.is_connection_error(),
        "{error:?}"
    );
    server.restart();
    let mut recovered = None;
    for _ in 0..100 {
        match limiter.inc(&user, 1).await {
            Ok(decision) => {
                recovered = Some(decision);
                break;
            }
            Err(error) => {
                assert!(error.is_connection_error(), "{error:?}");
                tokio::time::sleep(ms(50)).await;
            }
        }
    }
    assert!(recovered.expect("the hybrid limiter recovers").is_allowed());
}

// --------------------------------------------------------- vs trypema ----

/// Differential test against trypema's local absolute limiter.
///
/// Method: trypema reads the real clock, so both limiters run on real time
/// with a 1 s window of 100 ms buckets, and calls come in bursts that last a
/// few milliseconds, far less than the window. Inside a burst nothing leaves
/// either window, so every decision depends only on the totals, never on
/// sub-bucket timing. Between bursts the test waits a full window, after
/// which both windows are empty. Seeded random sequences over several keys
/// and costs 1..=3 are fed to both:
/// - unit-cost calls must get identical decisions, and `retry_after` agrees
///   within one bucket (ours counts from the bucket start, trypema from its
///   first call);
/// - the only allowed difference is the documented trypema defect: it
///   admits a weighted call that crosses the limit. When that happens the
///   test checks that it is that case, and stops comparing that key.
#[test]
fn decisions_match_trypema_local_where_trypema_is_right() {
    use distkit::trypema::local::LocalRateLimiterProvider;
    use distkit::trypema::{
        BucketSize, RateLimit as TrypemaRate, RateLimitDecision, RateLimiterBuilder, WindowSize,
    };

    let capacity = 20;
    let mut rng = 0x5EED_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut crossings = 0;
    let mut compared = 0;
    for round in 0..3 {
        let trypema = LocalRateLimiterProvider::builder()
            .window_size(WindowSize::seconds_or_panic(1))
            .bucket_size(BucketSize::milliseconds_or_panic(100))
            .disable_cleanup()
            .build()
            .unwrap();
        let rate = TrypemaRate::per_second_or_panic(capacity as f64);
        let ours = LocalRateLimiter::new(LocalOptions::new(limit(capacity, 1000, 100)));
        for burst in 0..2 {
            if burst > 0 {
                std::thread::sleep(ms(1100));
            }
            let started = Instant::now();
            let mut diverged = [false; 4];
            for _ in 0..120 {
                let k = (next() % 4) as usize;
                let name = format!("r{round}k{k}");
                let weighted = round > 0;
                let cost = if weighted { 1 + next() % 3 } else { 1 };
                let theirs = trypema.absolute().inc(&name, &rate, cost);
                let mine = ours.inc(&name, cost).unwrap();
                if diverged[k] {
                    continue;
                }
                compared += 1;
                match (&theirs, mine.is_allowed()) {
                    (RateLimitDecision::Allowed, true) => {}
                    (RateLimitDecision::Rejected { retry_after, .. }, false) => {
                        if cost == 1 {
                            let ours_retry = mine.retry_after().unwrap();
                            assert!(
                                ours_retry <= *retry_after + ms(20)
                                    && ours_retry + ms(120) >= *retry_after,
                                "retry_after {ours_retry:?} vs trypema {retry_after:?}"
                            );
                        }
                    }
                    (RateLimitDecision::Allowed, false) => {
                        // trypema admitted a call that crosses the limit.
                        assert!(cost > 1 && cost > mine.remaining(), "{cost} {mine:?}");
                        crossings += 1;
                        diverged[k] = true;
                    }
                    (theirs, _) => panic!("trypema {theirs:?}, ours {mine:?}, cost {cost}"),
                }
            }
            // The burst stayed far inside one window.
            assert!(
                started.elapsed() < ms(500),
                "burst took {:?}",
                started.elapsed()
            );
        }
    }
    assert!(compared > 400, "{compared}");
    assert!(
        crossings > 0,
        "the weighted rounds should hit the documented difference"
    );
}

#[test]
fn trypema_admits_crossing_calls_where_the_native_limiter_does_not() {
    use distkit::trypema::local::LocalRateLimiterProvider;
    use distkit::trypema::{
        RateLimit as TrypemaRate, RateLimitDecision, RateLimiterBuilder, WindowSize,
    };

    let trypema = LocalRateLimiterProvider::builder()
        .window_size(WindowSize::seconds_or_panic(1))
        .disable_cleanup()
        .build()
        .unwrap();
    let rate = TrypemaRate::per_second_or_panic(10.0);
    assert!(matches!(
        trypema.absolute().inc("k", &rate, 9),
        RateLimitDecision::Allowed
    ));
    assert!(matches!(
        trypema.absolute().inc("k", &rate, 9),
        RateLimitDecision::Allowed
    ));
    // And a fractional capacity is rounded down: 0.5/s over 1 s never admits.
    let half = TrypemaRate::per_second_or_panic(0.5);
    assert!(matches!(
        trypema.absolute().inc("h", &half, 1),
        RateLimitDecision::Allowed
    ));
    assert!(!matches!(
        trypema.absolute().inc("h", &half, 1),
        RateLimitDecision::Allowed
    ));

    let ours = LocalRateLimiter::new(LocalOptions::new(limit(10, 1000, 100)));
    assert!(ours.inc("k", 9).unwrap().is_allowed());
    assert!(ours.inc("k", 9).unwrap().is_rejected());
}

/// A trypema local suppressed provider with a 1 s window of 100 ms buckets,
/// the given hard-limit factor, and its factor cache at the minimum (1 ms).
fn trypema_suppressed(
    hard_limit_factor: f64,
) -> std::sync::Arc<distkit::trypema::local::LocalRateLimiterProvider> {
    use distkit::trypema::local::LocalRateLimiterProvider;
    use distkit::trypema::{
        BucketSize, HardLimitFactor, RateLimiterBuilder, SuppressionFactorCachePeriod, WindowSize,
    };
    LocalRateLimiterProvider::builder()
        .window_size(WindowSize::seconds_or_panic(1))
        .bucket_size(BucketSize::milliseconds_or_panic(100))
        .hard_limit_factor(HardLimitFactor::new_or_panic(hard_limit_factor))
        .suppression_factor_cache_period(SuppressionFactorCachePeriod::milliseconds_or_panic(1))
        .disable_cleanup()
        .build()
        .unwrap()
}

/// trypema's suppressed decision as (allowed, factor); `Allowed` is factor 0.
fn trypema_suppressed_decision(decision: &distkit::trypema::RateLimitDecision) -> (bool, f64) {
    use distkit::trypema::RateLimitDecision;
    match decision {
        RateLimitDecision::Allowed => (true, 0.0),
        RateLimitDecision::Suppressed {
            suppression_factor,
            is_allowed,
            ..
        } => (*is_allowed, *suppression_factor),
        other => panic!("unexpected suppressed decision {other:?}"),
    }
}

/// Differential test against trypema's local suppressed limiter.
///
/// Method: trypema draws with `rand` and caches its factor, and neither its
/// clock nor its randomness can be injected from outside the crate. So its
/// cache is set to the minimum (1 ms) and calls are 2 ms apart, each key's
/// calls form one burst far shorter than the 1 s window (nothing leaves it,
/// and trypema's "last second" rate equals its window count), and the load
/// stays below the hard limit. Then both factors depend only on the number
/// of calls seen, never on the draws, and are compared **exactly**:
/// - calls 1..=capacity: both admit with factor 0;
/// - call capacity + 1: trypema computes its factor from the calls *before*
///   this one (`1 - capacity / capacity = 0`) and admits it unconditionally;
///   ours counts the call being decided (`1 - capacity / (capacity + 1)`).
///   This is the documented difference: trypema ignores the call's own
///   cost, so a call (of any weight) that crosses the capacity always passes;
/// - from then on, trypema's factor at call k is bit-for-bit ours at call
///   k - 1 (the same formula, one call later).
///
/// The decisions themselves differ only by the draws: for each limiter, the
/// number of drawn calls admitted matches the sum of their admission
/// probabilities within 4 standard deviations.
#[test]
fn suppressed_factors_match_trypema_local_one_call_later() {
    const CAPACITY: u64 = 20;
    const CALLS: u64 = 55; // below trypema's hard limit of 60 observed calls
    let trypema = trypema_suppressed(3.0);
    let rate = distkit::trypema::RateLimit::per_second_or_panic(CAPACITY as f64);
    let clock = distkit::ratelimit::ManualClock::new();
    let ours = LocalRateLimiter::with_clock(
        LocalOptions::new(limit(CAPACITY, 1000, 100))
            .strategy(Strategy::suppressed(3.0).unwrap())
            .seed(7),
        clock,
    );
    let mut theirs_draws = (0.0f64, 0.0f64, 0.0f64); // (admitted, expected, variance)
    let mut ours_draws = (0.0f64, 0.0f64, 0.0f64);
    let tally = |draws: &mut (f64, f64, f64), allowed: bool, factor: f64| {
        let p = 1.0 - factor;
        draws.0 += f64::from(u8::from(allowed));
        draws.1 += p;
        draws.2 += p * (1.0 - p);
    };
    for k in 0..12 {
        let name = format!("k{k}");
        let started = Instant::now();
        let mut ours_factors = vec![f64::NAN]; // 1-based
        for call in 1..=CALLS {
            let (theirs_allowed, theirs_factor) =
                trypema_suppressed_decision(&trypema.suppressed().inc(&name, &rate, 1));
            let mine = ours.inc(&name, 1).unwrap();
            let ours_factor = mine.suppression_factor().unwrap();
            ours_factors.push(ours_factor);
            if call <= CAPACITY {
                assert!(theirs_allowed && mine.is_allowed(), "call {call}");
                assert_eq!((theirs_factor, ours_factor), (0.0, 0.0), "call {call}");
            } else if call == CAPACITY + 1 {
                assert!(theirs_allowed, "trypema admits the crossing call");
                assert_eq!(theirs_factor, 0.0);
                assert_eq!(ours_factor, 1.0 - CAPACITY as f64 / call as f64);
                tally(&mut ours_draws, mine.is_allowed(), ours_factor);
            } else {
                assert_eq!(
                    theirs_factor.to_bits(),
                    ours_factors[call as usize - 1].to_bits(),
                    "call {call}: trypema {theirs_factor}, ours one call earlier"
                );
                tally(&mut theirs_draws, theirs_allowed, theirs_factor);
                tally(&mut ours_draws, mine.is_allowed(), ours_factor);
            }
            std::thread::sleep(ms(2));
        }
        // The burst stayed far inside one window.
        assert!(
            started.elapsed() < ms(600),
            "burst took {:?}",
            started.elapsed()
        );
    }
    for (who, (admitted, expected, variance)) in [("trypema", theirs_draws), ("ours", ours_draws)] {
        let sigma = variance.sqrt();
        assert!(
            (admitted - expected).abs() <= 4.0 * sigma + 1.0,
            "{who}: admitted {admitted}, expected {expected} ± {sigma}"
        );
    }
}

/// trypema's hard limit looks at observed load (admitted *and* refused
/// calls): once `capacity × hard_limit_factor` calls were seen, it refuses
/// every call with factor 1, although far fewer were admitted, so under a
/// sustained 3× overload a key gets nothing for the rest of the window. The
/// native limiter applies the hard limit to admitted units, as documented:
/// past the capacity it keeps drawing with `1 - capacity / observed` until
/// `hard` units were admitted.
#[test]
fn trypema_suppressed_cuts_off_on_observed_load_where_the_native_limiter_keeps_drawing() {
    const CAPACITY: u64 = 10;
    let trypema = trypema_suppressed(3.0);
    let rate = distkit::trypema::RateLimit::per_second_or_panic(CAPACITY as f64);
    let ours = LocalRateLimiter::with_clock(
        LocalOptions::new(limit(CAPACITY, 1000, 100))
            .strategy(Strategy::suppressed(3.0).unwrap())
            .seed(11),
        distkit::ratelimit::ManualClock::new(),
    );
    let (mut theirs_admitted, mut ours_admitted) = (0u64, 0u64);
    for call in 1..=40u64 {
        let (theirs_allowed, theirs_factor) =
            trypema_suppressed_decision(&trypema.suppressed().inc("k", &rate, 1));
        let mine = ours.inc("k", 1).unwrap();
        if call > 30 {
            // 30 calls seen: trypema's hard limit, whatever it admitted.
            assert_eq!(theirs_factor, 1.0, "call {call}");
            assert!(!theirs_allowed);
            assert!(theirs_admitted < 30, "trypema admitted {theirs_admitted}");
            // Ours: still below the hard limit of 30 admitted units.
            assert!(ours_admitted < 30);
            assert_eq!(
                mine.suppression_factor(),
                Some(1.0 - CAPACITY as f64 / call as f64)
            );
        }
        theirs_admitted += u64::from(theirs_allowed);
        ours_admitted += u64::from(mine.is_allowed());
        std::thread::sleep(ms(2));
    }
}

/// trypema's suppression factor ignores the cost of the call being decided:
/// with 10 of 10 units admitted, a call of cost 9 gets factor 0 and passes
/// for sure. The native factor counts it: `1 - 10 / (10 + 9)`.
#[test]
fn trypema_suppressed_ignores_the_cost_of_the_call_where_the_native_limiter_counts_it() {
    const CAPACITY: u64 = 10;
    let trypema = trypema_suppressed(3.0);
    let rate = distkit::trypema::RateLimit::per_second_or_panic(CAPACITY as f64);
    let ours = LocalRateLimiter::with_clock(
        LocalOptions::new(limit(CAPACITY, 1000, 100))
            .strategy(Strategy::suppressed(3.0).unwrap())
            .seed(3),
        distkit::ratelimit::ManualClock::new(),
    );
    for _ in 0..CAPACITY {
        assert_eq!(
            trypema_suppressed_decision(&trypema.suppressed().inc("k", &rate, 1)),
            (true, 0.0)
        );
        assert!(ours.inc("k", 1).unwrap().is_allowed());
    }
    std::thread::sleep(ms(2)); // past trypema's 1 ms factor cache
    assert_eq!(
        trypema_suppressed_decision(&trypema.suppressed().inc("k", &rate, 9)),
        (true, 0.0),
        "trypema admits the weighted crossing call unconditionally"
    );
    assert_eq!(
        ours.inc("k", 9).unwrap().suppression_factor(),
        Some(1.0 - 10.0 / 19.0)
    );
}
