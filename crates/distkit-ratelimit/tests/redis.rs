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
    RedisRateLimiter, Strategy, Window,
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

/// A service that vendors `scripts/`, assembles `absolute_inc.lua` as
/// documented (`lib/window.lua`, a newline, the script) and calls it with the
/// documented key and arguments shares the budget with the crate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendored_script_interoperates_with_the_crate() {
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts");
    let library = std::fs::read_to_string(format!("{scripts}/lib/window.lua")).unwrap();
    let script = std::fs::read_to_string(format!("{scripts}/ratelimit/absolute_inc.lua")).unwrap();
    let source = format!("{library}\n{script}");
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
    // Compact reply: the run's reset time, then the admitted total.
    assert_eq!(reply.len(), 2, "{reply:?}");
    assert!((1..=10_000).contains(&reply[0]), "{reply:?}");
    assert_eq!(reply[1], 3);
    let limiter = RedisRateLimiter::new(RedisOptions::new(namespace, conn, limit(5)));
    let user = DistkitRedisKey::try_from("user").unwrap();
    assert_eq!(limiter.inc(&user, 2).await.unwrap().remaining(), 0);
    assert!(limiter.inc(&user, 1).await.unwrap().is_rejected());
}

/// Every script the crate sends is its file under `scripts/ratelimit/`,
/// preceded by each library its header requires (`-- requires: lib/...`),
/// joined by newlines.
#[test]
fn the_crate_sends_exactly_the_script_files() {
    let scripts = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts"));
    let sources = distkit_ratelimit::script_sources();
    let mut files: Vec<String> = std::fs::read_dir(scripts.join("ratelimit"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".lua"))
        .collect();
    files.sort();
    let mut names: Vec<String> = sources
        .iter()
        .map(|(name, _)| format!("{}.lua", name.trim_start_matches("ratelimit/")))
        .collect();
    names.sort();
    assert_eq!(names, files, "every file is sent, and nothing else");
    for (name, source) in sources {
        let file = std::fs::read_to_string(scripts.join(format!("{name}.lua"))).unwrap();
        let mut expected = String::new();
        for line in file.lines() {
            if let Some(library) = line.strip_prefix("-- requires: ") {
                expected.push_str(&std::fs::read_to_string(scripts.join(library)).unwrap());
                expected.push('\n');
            }
        }
        expected.push_str(&file);
        assert_eq!(source, expected, "{name}");
    }
}

/// The Redis and hybrid suppressed limiters share one key's window: load
/// seen by one raises the factor of the other.
async fn suppressed_redis_and_hybrid_share_one_window(conn: RedisConnection) {
    let namespace = namespace("crate_suppressed_shared");
    let strategy = Strategy::suppressed(2.0).unwrap();
    let redis = RedisRateLimiter::new(
        RedisOptions::new(namespace.clone(), conn.clone(), limit(5)).strategy(strategy),
    );
    let hybrid = HybridRateLimiter::new(
        HybridOptions::new(namespace, conn, limit(5), 2)
            .unwrap()
            .strategy(strategy),
    );
    let user = DistkitRedisKey::try_from("user").unwrap();
    for _ in 0..5 {
        assert_eq!(
            redis.inc(&user, 1).await.unwrap().suppression_factor(),
            Some(0.0)
        );
    }
    // Six calls observed, five admitted: the hybrid limiter draws.
    let decision = hybrid.inc(&user, 1).await.unwrap();
    assert_eq!(decision.suppression_factor(), Some(1.0 - 5.0 / 6.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_redis_and_hybrid_share_one_window_single_node() {
    suppressed_redis_and_hybrid_share_one_window(shared_server().connection_manager().await.into())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_redis_and_hybrid_share_one_window_cluster() {
    suppressed_redis_and_hybrid_share_one_window(shared_cluster().connection().await.into()).await;
}

/// The stored layout keeps its invariants while the window slides: every
/// running total equals the sum of its bucket fields, no bucket field lies
/// below the pruning cursor, and the hash has a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_totals_match_the_buckets_while_the_window_slides() {
    let namespace = namespace("crate_totals");
    let conn = shared_server().connection_manager().await;
    let window = Window::new(Duration::from_millis(300), Duration::from_millis(30)).unwrap();
    let limit = RateLimit::per_window(1000, window).unwrap();
    let absolute = RedisRateLimiter::new(RedisOptions::new(namespace.clone(), conn.clone(), limit));
    let suppressed = RedisRateLimiter::new(
        RedisOptions::new(namespace.clone(), conn.clone(), limit)
            .strategy(Strategy::suppressed(2.0).unwrap()),
    );
    let user = DistkitRedisKey::try_from("user").unwrap();
    let mut conn = conn;
    for round in 0..40u64 {
        assert!(
            absolute
                .inc(&user, 1 + round % 3)
                .await
                .unwrap()
                .is_allowed()
        );
        assert!(
            suppressed
                .inc(&user, 1 + round % 2)
                .await
                .unwrap()
                .is_allowed()
        );
        tokio::time::sleep(Duration::from_millis(7 + round % 11)).await;
        for (part, series) in [("absolute", &[""][..]), ("suppressed", &["a", "o"][..])] {
            let key = format!("distkit:ratelimit:{namespace}:{{user}}:{part}");
            let fields: std::collections::HashMap<String, i64> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            let cursor = fields["h"];
            for prefix in series {
                let total = fields[&format!("{prefix}t")];
                let mut sum = 0;
                for (field, value) in &fields {
                    if let Some(index) = field
                        .strip_prefix(prefix)
                        .and_then(|index| index.parse::<i64>().ok())
                    {
                        assert!(
                            index >= cursor,
                            "{part}: bucket {index} below cursor {cursor}"
                        );
                        sum += value;
                    }
                }
                assert_eq!(total, sum, "{part}: total {prefix}t");
            }
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(ttl > 0 && ttl <= 360, "{part}: ttl {ttl}");
        }
    }
}

/// `INFO commandstats`: how many script calls the server ran so far.
async fn script_calls(conn: &mut redis::aio::ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|line| line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:"))
        .filter_map(|line| {
            line.split([':', ','])
                .find_map(|field| field.strip_prefix("calls="))
                .and_then(|calls| calls.parse::<u64>().ok())
        })
        .sum()
}

/// Many concurrent calls on one key from one limiter leave in combined
/// script runs, and every caller still gets its own, linearizable decision:
/// with unit costs, the admitted calls report the admitted totals 1, 2, ...,
/// capacity exactly once each, and every later call is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_key_are_combined_and_each_decided_once() {
    // A server of its own, so its script count is this test's alone.
    let server = distkit_testkit::RedisServer::start();
    let mut admin = server.connection_manager().await;
    const CAPACITY: u64 = 150;
    const CALLS: u64 = 400;
    let limiter = std::sync::Arc::new(RedisRateLimiter::new(RedisOptions::new(
        namespace("crate_combined"),
        server.connection_manager().await,
        limit(CAPACITY),
    )));
    let user = DistkitRedisKey::try_from("hot").unwrap();
    limiter.inc(&user, 1).await.unwrap(); // loads the script
    let before = script_calls(&mut admin).await;
    let tasks: Vec<_> = (0..CALLS)
        .map(|_| {
            let (limiter, user) = (limiter.clone(), user.clone());
            tokio::spawn(async move { limiter.inc(&user, 1).await.unwrap() })
        })
        .collect();
    let mut admitted_totals = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let decision = task.await.unwrap();
        if decision.is_allowed() {
            admitted_totals.push(CAPACITY - decision.remaining());
        } else {
            refused += 1;
            assert_eq!(decision.remaining(), 0);
            assert!(decision.retry_after().unwrap() <= Duration::from_secs(10));
        }
    }
    let runs = script_calls(&mut admin).await - before;
    admitted_totals.sort_unstable();
    // the first call took one unit
    assert_eq!(admitted_totals, (2..=CAPACITY).collect::<Vec<_>>());
    assert_eq!(refused, CALLS - (CAPACITY - 1));
    assert!(runs < CALLS, "{runs} script runs for {CALLS} calls");
    // nothing stays behind in the limiter: a later call is decided alone
    assert!(limiter.inc(&user, 1).await.unwrap().is_rejected());
}

/// The suppressed strategy combined: admissions never pass the hard limit,
/// and every decision carries a factor consistent with its outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_suppressed_calls_are_combined_within_the_hard_limit() {
    const CAPACITY: u64 = 100;
    let limiter = std::sync::Arc::new(RedisRateLimiter::new(
        RedisOptions::new(
            namespace("crate_combined_suppressed"),
            shared_server().connection_manager().await,
            limit(CAPACITY),
        )
        .strategy(Strategy::suppressed(1.5).unwrap()),
    ));
    let user = DistkitRedisKey::try_from("hot").unwrap();
    let tasks: Vec<_> = (0..600)
        .map(|_| {
            let (limiter, user) = (limiter.clone(), user.clone());
            tokio::spawn(async move { limiter.inc(&user, 1).await.unwrap() })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        let decision = task.await.unwrap();
        let factor = decision.suppression_factor().unwrap();
        assert!((0.0..=1.0).contains(&factor), "{factor}");
        if decision.is_allowed() {
            admitted += 1;
            assert!(factor < 1.0);
        } else {
            assert!(factor > 0.0);
        }
    }
    assert!(admitted >= CAPACITY, "{admitted}");
    assert!(admitted <= 150, "{admitted} past the hard limit");
}

/// Calls that were queued behind inline ones when their runtime shut down
/// leave nothing stuck: the limiter, used from another runtime, sends
/// concurrent calls on the same key again.
#[test]
fn a_runtime_shut_down_mid_flight_leaves_the_key_usable() {
    use distkit_testkit::runtimes::{abandon_in_flight, one_worker_runtime, run_concurrently};
    let server = distkit_testkit::RedisServer::start();
    let keeper = one_worker_runtime();
    let conn = keeper.block_on(server.connection_manager());
    let limiter = std::sync::Arc::new(RedisRateLimiter::new(RedisOptions::new(
        namespace("crate_shutdown"),
        conn,
        limit(1_000),
    )));
    let user = std::sync::Arc::new(DistkitRedisKey::try_from("user").unwrap());
    let call = || {
        let (limiter, user) = (limiter.clone(), user.clone());
        async move { limiter.inc(&user, 1).await }
    };

    // Redis frozen: two calls go inline and hang, the others queue.
    abandon_in_flight(&server, 6, call);

    // No call may wait for a drain of the runtime that shut down.
    for decision in run_concurrently(&keeper, 6, Duration::from_secs(10), call) {
        assert!(decision.unwrap().is_allowed());
    }
}
