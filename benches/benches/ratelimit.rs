//! Rate-limit decisions, native limiter next to trypema in the same run:
//! local decision on a warm key, hybrid fast path, Redis decision at 1 and
//! 64 concurrent callers on one connection, with the raw `EVALSHA` baseline.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use distkit::ratelimit::{
    CoarseClock, DistkitRedisKey, HybridOptions, HybridRateLimiter, LocalOptions, LocalRateLimiter,
    RateLimit, RedisOptions, RedisRateLimiter, Window,
};
use distkit::trypema::hybrid::{HybridRateLimiterProvider, SyncInterval};
use distkit::trypema::local::LocalRateLimiterProvider;
use distkit::trypema::redis::{RedisKey, RedisRateLimiterProvider};
use distkit::trypema::{BucketSize, RateLimit as TrypemaRate, RateLimiterBuilder, WindowSize};
use distkit_benches::{bench_raw_evalsha, connection, run_concurrent, runtime};

/// A window that never fills during a bench: every decision is an admission.
fn huge_limit() -> RateLimit {
    let window = Window::new(Duration::from_secs(10), Duration::from_secs(1)).expect("window");
    RateLimit::per_window(1 << 50, window).expect("limit")
}

fn trypema_rate() -> TrypemaRate {
    TrypemaRate::per_second_or_panic(1e12)
}

fn namespace(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).expect("namespace")
}

fn local(c: &mut Criterion) {
    let mut group = c.benchmark_group("ratelimit/local");
    let native = LocalRateLimiter::new(LocalOptions::new(huge_limit()));
    native.inc("warm", 1).expect("warm up");
    group.bench_function("native", |b| {
        b.iter(|| native.inc(std::hint::black_box("warm"), 1))
    });
    let coarse = LocalRateLimiter::with_clock(LocalOptions::new(huge_limit()), CoarseClock::new());
    coarse.inc("warm", 1).expect("warm up");
    group.bench_function("native_coarse_clock", |b| {
        b.iter(|| coarse.inc(std::hint::black_box("warm"), 1))
    });
    let trypema = LocalRateLimiterProvider::builder()
        .window_size(WindowSize::seconds_or_panic(10))
        .bucket_size(BucketSize::milliseconds_or_panic(1000))
        .disable_cleanup()
        .build()
        .expect("trypema local");
    let rate = trypema_rate();
    trypema.absolute().inc("warm", &rate, 1);
    group.bench_function("trypema", |b| {
        b.iter(|| {
            trypema
                .absolute()
                .inc(std::hint::black_box("warm"), &rate, 1)
        })
    });
    group.finish();
}

fn hybrid(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let mut group = c.benchmark_group("ratelimit/hybrid_fast_path");
    let key = DistkitRedisKey::try_from("warm").expect("key");
    let native = rt.block_on(async {
        let options = HybridOptions::new(
            namespace("bench_hybrid"),
            conn.clone(),
            huge_limit(),
            1 << 40,
        )
        .expect("options");
        let limiter = HybridRateLimiter::new(options);
        limiter.inc(&key, 1).await.expect("lease");
        limiter
    });
    let coarse = rt.block_on(async {
        let options = HybridOptions::new(
            namespace("bench_hybrid_coarse"),
            conn.clone(),
            huge_limit(),
            1 << 40,
        )
        .expect("options");
        let limiter = HybridRateLimiter::with_clock(options, CoarseClock::new());
        limiter.inc(&key, 1).await.expect("lease");
        limiter
    });
    group.bench_function("native_coarse_clock", |b| {
        b.iter(|| match coarse.try_inc(&key, 1).expect("cost") {
            Some(decision) => decision,
            None => rt.block_on(coarse.inc(&key, 1)).expect("lease"),
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| match native.try_inc(&key, 1).expect("cost") {
            Some(decision) => decision,
            // A new bucket: one lease call per bucket (1 s).
            None => rt.block_on(native.inc(&key, 1)).expect("lease"),
        })
    });
    let trypema = rt.block_on(async {
        HybridRateLimiterProvider::builder(conn.clone())
            .prefix(
                RedisKey::try_from(distkit_testkit::unique_prefix("bench_thybrid"))
                    .expect("prefix"),
            )
            .window_size(WindowSize::seconds_or_panic(10))
            .bucket_size(BucketSize::milliseconds_or_panic(1000))
            .sync_interval(SyncInterval::milliseconds_or_panic(10))
            .disable_cleanup()
            .build()
            .expect("trypema hybrid")
    });
    let trypema_key = RedisKey::try_from("warm").expect("key");
    let rate = trypema_rate();
    rt.block_on(trypema.absolute().inc(&trypema_key, &rate, 1))
        .expect("warm up");
    group.bench_function("trypema", |b| {
        b.iter(|| {
            match trypema
                .absolute()
                .try_inc(trypema_key.as_key_ref(), 1)
                .expect("try_inc")
            {
                Some(decision) => decision,
                None => rt
                    .block_on(trypema.absolute().inc(&trypema_key, &rate, 1))
                    .expect("inc"),
            }
        })
    });
    group.finish();
}

fn redis(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let native = Arc::new(RedisRateLimiter::new(RedisOptions::new(
        namespace("bench_redis"),
        conn.clone(),
        huge_limit(),
    )));
    let trypema = rt.block_on(async {
        RedisRateLimiterProvider::builder(conn.clone())
            .prefix(
                RedisKey::try_from(distkit_testkit::unique_prefix("bench_tredis")).expect("prefix"),
            )
            .window_size(WindowSize::seconds_or_panic(10))
            .bucket_size(BucketSize::milliseconds_or_panic(1000))
            .disable_cleanup()
            .build()
            .expect("trypema redis")
    });
    let mut group = c.benchmark_group("ratelimit/redis");
    for callers in [1u64, 64] {
        bench_raw_evalsha(&mut group, &rt, &conn, "evalsha_baseline", callers);
        let limiter = native.clone();
        let key = Arc::new(DistkitRedisKey::try_from("warm").expect("key"));
        group.bench_function(format!("native/{callers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (limiter, key) = (limiter.clone(), key.clone());
                run_concurrent(callers, iters, move |_| {
                    let (limiter, key) = (limiter.clone(), key.clone());
                    async move {
                        limiter.inc(&key, 1).await.expect("inc");
                    }
                })
            })
        });
        let provider = trypema.clone();
        group.bench_function(format!("trypema/{callers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let provider = provider.clone();
                run_concurrent(callers, iters, move |_| {
                    let provider = provider.clone();
                    async move {
                        let key = RedisKey::try_from("warm").expect("key");
                        provider
                            .absolute()
                            .inc(&key, &trypema_rate(), 1)
                            .await
                            .expect("inc");
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, local, hybrid, redis);
criterion_main!(benches);
