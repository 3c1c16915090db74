//! Benchmarks of the instance-aware counters, next to the raw baselines of
//! the same run: strict `inc` at 1 and 64 callers (vs a trivial EVALSHA),
//! lax `inc` on a warm key, and the cost of a call that also cleans up 200
//! entries of dead instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use distkit::DistkitRedisKey;
use distkit::icounter::{
    InstanceAwareCounterTrait, LaxInstanceAwareCounter, LaxInstanceAwareCounterOptions,
    StrictInstanceAwareCounter, StrictInstanceAwareCounterOptions,
};
use distkit_benches::{bench_raw_evalsha, connection, run_concurrent, runtime};

fn prefix(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).expect("prefix")
}

fn icounter(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let mut group = c.benchmark_group("icounter");
    let key = Arc::new(DistkitRedisKey::try_from("bench").expect("key"));
    for callers in [1u64, 64] {
        bench_raw_evalsha(&mut group, &rt, &conn, "baseline_evalsha", callers);
        let counter = rt.block_on(async {
            StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
                prefix("bench_strict"),
                conn.clone(),
            ))
        });
        let key = key.clone();
        group.bench_function(format!("strict_inc/{callers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let counter = counter.clone();
                let key = key.clone();
                run_concurrent(callers, iters, move |_| {
                    let counter = counter.clone();
                    let key = key.clone();
                    async move {
                        counter.inc(&key, 1).await.expect("inc");
                    }
                })
            })
        });
    }

    let lax = rt.block_on(async {
        LaxInstanceAwareCounter::new(LaxInstanceAwareCounterOptions::new(
            prefix("bench_lax"),
            conn.clone(),
        ))
    });
    rt.block_on(lax.inc(&key, 1)).expect("warm up");
    group.bench_function("lax_inc_warm", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let lax = lax.clone();
            let key = key.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    lax.inc(&key, 1).await.expect("inc");
                }
                start.elapsed()
            }
        })
    });

    // A survivor's `get` while dead instances wait for cleanup: each call
    // also removes 200 dead entries (the budget). Compared with a plain get.
    let cleanup_prefix = prefix("bench_cleanup");
    let survivor = rt.block_on(async {
        StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
            cleanup_prefix.clone(),
            conn.clone(),
        ))
    });
    group.bench_function("strict_get/no_dead_instances", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let survivor = survivor.clone();
            let key = key.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    survivor.get(&key).await.expect("get");
                }
                start.elapsed()
            }
        })
    });
    let generation = Arc::new(AtomicU64::new(0));
    group.bench_function("strict_get/cleaning_200_dead_entries", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let survivor = survivor.clone();
            let key = key.clone();
            let mut raw = conn.clone();
            let base = format!("distkit:icounter:{{{}}}", cleanup_prefix.as_str());
            let generation = generation.clone();
            async move {
                // iters * 200 dead entries, spread over dead instances of 10 000 entries
                let entries = iters * 200;
                let g = generation.fetch_add(1, Ordering::Relaxed);
                let mut written = 0;
                let mut instance = 0;
                while written < entries {
                    let id = format!("dead{g}x{instance}");
                    let n = (entries - written).min(10_000);
                    let mut pipe = redis::pipe();
                    for chunk_start in (0..n).step_by(1_000) {
                        let (mut data, mut contrib) = (redis::cmd("HSET"), redis::cmd("ZADD"));
                        data.arg(format!("{base}:data"));
                        contrib.arg(format!("{base}:contrib"));
                        for i in chunk_start..(chunk_start + 1_000).min(n) {
                            let entry = format!("{id}:k{i}");
                            // a current slice of 1 on a key record
                            data.arg(&entry).arg("0:1");
                            data.arg(format!("k{i}")).arg("0:0");
                            contrib.arg(0).arg(&entry);
                        }
                        pipe.add_command(data).add_command(contrib);
                    }
                    // straight into the cleanup queue, and make the scan due
                    pipe.cmd("ZADD").arg(format!("{base}:dead")).arg(0).arg(&id);
                    pipe.cmd("HSET")
                        .arg(format!("{base}:meta"))
                        .arg("check_at")
                        .arg(0);
                    let () = pipe.query_async(&mut raw).await.expect("setup");
                    written += n;
                    instance += 1;
                }
                let start = Instant::now();
                for _ in 0..iters {
                    survivor.get(&key).await.expect("get");
                }
                start.elapsed()
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = icounter
}
criterion_main!(benches);
