//! Benchmarks of distkit's counters, next to the raw baselines of the same
//! run (`HINCRBY` and a trivial `EVALSHA` over the same connection):
//!
//! - `counter/strict_inc/{1,64}`: `StrictCounter::inc` at 1 and 64
//!   concurrent callers on one connection;
//! - `counter/baseline_hincrby/{1,64}`, `counter/baseline_evalsha/{1,64}`:
//!   the raw commands, same shape;
//! - `counter/lax_inc/*`: `LaxCounter::inc(&key, 1).await` on warm keys
//!   (one key, 1 000 keys round-robin, two threads on one key, two threads
//!   on a key each), awaited in a loop inside one task per thread;
//! - `counter/strict_get_all_100`, `counter/strict_inc_all_100`: batches of
//!   100 keys, one round trip each.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use distkit::DistkitRedisKey;
use distkit::counter::{CounterOptions, CounterTrait, LaxCounter, StrictCounter};
use distkit_benches::{bench_raw_evalsha, bench_raw_hincrby, connection, run_concurrent, runtime};

fn bench_prefix(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).expect("prefix")
}

fn strict_vs_baselines(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let strict = StrictCounter::new(CounterOptions::new(
        bench_prefix("bench_strict"),
        conn.clone(),
    ));
    let key = DistkitRedisKey::try_from("hits").expect("key");
    let mut group = c.benchmark_group("counter");
    for callers in [1u64, 64] {
        let counter = strict.clone();
        let k = key.clone();
        group.bench_function(format!("strict_inc/{callers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (counter, k) = (counter.clone(), k.clone());
                run_concurrent(callers, iters, move |_| {
                    let (counter, k) = (counter.clone(), k.clone());
                    async move {
                        counter.inc(&k, 1).await.expect("inc");
                    }
                })
            })
        });
        bench_raw_hincrby(&mut group, &rt, &conn, "baseline_hincrby", callers);
        bench_raw_evalsha(&mut group, &rt, &conn, "baseline_evalsha", callers);
    }

    let keys: Vec<DistkitRedisKey> = (0..100)
        .map(|i| DistkitRedisKey::try_from(format!("k{i}")).expect("key"))
        .collect();
    let refs: Vec<&DistkitRedisKey> = keys.iter().collect();
    let updates: Vec<(&DistkitRedisKey, i64)> = keys.iter().map(|k| (k, 1)).collect();
    group.bench_function("strict_get_all_100", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(strict.get_all(&refs).await.expect("get_all")) })
    });
    group.bench_function("strict_inc_all_100", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(strict.inc_all(&updates).await.expect("inc_all")) })
    });
    group.finish();
}

fn lax_warm_inc(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let _guard = rt.enter();
    let lax = LaxCounter::new(CounterOptions::new(bench_prefix("bench_lax"), conn));
    let key = DistkitRedisKey::try_from("hits").expect("key");
    let keys: Vec<DistkitRedisKey> = (0..1000)
        .map(|i| DistkitRedisKey::try_from(format!("k{i}")).expect("key"))
        .collect();
    let mut group = c.benchmark_group("counter");
    // Each sample is one `block_on` of an async loop: what is timed is
    // `counter.inc(&key, 1).await` as a caller's task runs it.
    group.bench_function("lax_inc/warm_single_key", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                lax.inc(&key, 1).await.expect("warm up");
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(lax.inc(black_box(&key), 1).await.expect("inc"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("lax_inc/warm_1000_keys", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                // Keys quiet for about a second are evicted: warm them
                // again (untimed) before each sample.
                for k in &keys {
                    lax.inc(k, 1).await.expect("warm up");
                }
                let start = Instant::now();
                for k in keys.iter().cycle().take(iters as usize) {
                    black_box(lax.inc(black_box(k), 1).await.expect("inc"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("lax_inc/warm_single_key_2_threads", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async { lax.inc(&key, 1).await.expect("warm up") });
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..2 {
                    scope.spawn(|| {
                        rt.handle().block_on(async {
                            for _ in 0..iters {
                                black_box(lax.inc(black_box(&key), 1).await.expect("inc"));
                            }
                        })
                    });
                }
            });
            // Time per call with two threads calling at once.
            start.elapsed() / 2
        })
    });
    group.bench_function("lax_inc/warm_2_keys_2_threads", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                lax.inc(&keys[0], 1).await.expect("warm up");
                lax.inc(&keys[1], 1).await.expect("warm up");
            });
            let start = Instant::now();
            std::thread::scope(|scope| {
                for k in &keys[..2] {
                    scope.spawn(|| {
                        rt.handle().block_on(async {
                            for _ in 0..iters {
                                black_box(lax.inc(black_box(k), 1).await.expect("inc"));
                            }
                        })
                    });
                }
            });
            // Time per call with two threads calling at once, one key each.
            start.elapsed() / 2
        })
    });
    group.finish();
    // Leave nothing buffered behind.
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), lax.flush()).await;
    });
    drop(Arc::clone(&lax));
}

criterion_group!(benches, strict_vs_baselines, lax_warm_inc);
criterion_main!(benches);
