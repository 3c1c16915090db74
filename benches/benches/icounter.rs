//! Benchmarks of the instance-aware counters, next to the raw baselines of
//! the same run: strict `inc` at 1 and 64 callers (vs a trivial EVALSHA),
//! lax `inc` on a warm key, and the cost of a call that also cleans up 200
//! entries of dead instances.
//!
//! `icounter/interleaved_1_caller` runs, for one caller, in turn (round-robin
//! with a rotating start, so that a shared, loaded machine slows them alike):
//! raw `HINCRBY`, a raw trivial `EVALSHA`, `StrictCounter::inc`,
//! `StrictInstanceAwareCounter::inc`, `apply.lua` called directly for the
//! same `inc` (the difference is the client side), and two floors: a script
//! doing only the two writes any instance-aware `inc` needs, and a `MULTI`
//! doing those writes plus a liveness TTL, the least a protocol without
//! scripts would send. The time reported is the instance-aware `inc`'s; the
//! ratios to `StrictCounter::inc` (quartiles over criterion's samples) are
//! printed after the group.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use distkit::DistkitRedisKey;
use distkit::counter::{CounterOptions, CounterTrait, StrictCounter};
use distkit::icounter::{
    InstanceAwareCounterTrait, LaxInstanceAwareCounter, LaxInstanceAwareCounterOptions,
    StrictInstanceAwareCounter, StrictInstanceAwareCounterOptions,
};
use distkit_benches::{
    Interleaved, bench_raw_evalsha, connection, raw_evalsha, raw_hincrby, run_concurrent, runtime,
    trivial_script,
};
use distkit_testkit::icounter;
use redis::aio::ConnectionManager;

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

    interleaved_1_caller(&mut group, &rt, &conn, &key);

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

const INTERLEAVED: [&str; 7] = [
    "raw_hincrby",
    "raw_evalsha",
    "strict_counter_inc",
    "strict_icounter_inc",
    "raw_apply_inc",
    "floor_script_two_writes",
    "floor_multi_three_writes",
];

/// The least any script-based instance-aware `inc` must do: add the delta
/// to the cumulative and to the caller's slice (no liveness, no epochs).
const FLOOR_SCRIPT: &str = "redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[3])
return redis.call('HINCRBY', KEYS[1], ARGV[2], ARGV[3])";

/// The least a protocol without scripts would send for one `inc`: a
/// `MULTI` adding to the cumulative and the slice and refreshing a liveness
/// key's TTL (with no check of epochs or of the caller's own liveness).
async fn floor_multi(conn: &mut ConnectionManager) {
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("HINCRBY")
        .arg("bench:floor")
        .arg("k")
        .arg(1)
        .cmd("HINCRBY")
        .arg("bench:floor")
        .arg("me:k")
        .arg(1)
        .cmd("SET")
        .arg("bench:floor:alive:me")
        .arg(1)
        .arg("PX")
        .arg(30_000)
        .query_async(conn)
        .await
        .expect("MULTI");
}

/// Everything the one-caller comparison needs (see the module docs).
struct OneCaller {
    conn: ConnectionManager,
    key: Arc<DistkitRedisKey>,
    trivial: Arc<redis::Script>,
    counter: Arc<StrictCounter>,
    icounter: Arc<StrictInstanceAwareCounter>,
    /// `apply.lua` exactly as the crate sends it, and the keys it works on.
    apply: redis::Script,
    apply_base: String,
    floor: redis::Script,
}

impl OneCaller {
    async fn run(&self, which: usize) {
        let mut conn = self.conn.clone();
        match which {
            0 => raw_hincrby(&mut conn).await,
            1 => raw_evalsha(&mut conn, &self.trivial, "bench:baseline").await,
            2 => {
                self.counter.inc(&self.key, 1).await.expect("inc");
            }
            3 => {
                self.icounter.inc(&self.key, 1).await.expect("inc");
            }
            4 => {
                // one inc of 1 by instance `raw-bench`, without the crate:
                // the difference to the line above is the client side
                let inc = ["inc", "bench", "1", "nil", "0", "0", "0", "0"];
                let apply = icounter::apply(&self.apply, &self.apply_base, "raw-bench", 0, &[inc]);
                let _: redis::Value = apply.invoke_async(&mut conn).await.expect("apply.lua");
            }
            5 => {
                let _: i64 = self
                    .floor
                    .key("bench:floor")
                    .arg("k")
                    .arg("me:k")
                    .arg(1)
                    .invoke_async(&mut conn)
                    .await
                    .expect("EVALSHA");
            }
            _ => floor_multi(&mut conn).await,
        }
    }
}

/// One caller: the raw baselines, `StrictCounter::inc`, the strict
/// instance-aware `inc` and its floors, interleaved (see the module docs).
fn interleaved_1_caller(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    conn: &ConnectionManager,
    key: &Arc<DistkitRedisKey>,
) {
    let [(_, apply_source)] = distkit::icounter::script_sources();
    let bench = Arc::new(OneCaller {
        conn: conn.clone(),
        key: key.clone(),
        trivial: trivial_script(),
        counter: StrictCounter::new(CounterOptions::new(prefix("bench_plain"), conn.clone())),
        icounter: rt.block_on(async {
            StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(
                prefix("bench_interleaved"),
                conn.clone(),
            ))
        }),
        apply: redis::Script::new(apply_source),
        apply_base: format!(
            "distkit:icounter:{{{}}}",
            prefix("bench_raw_apply").as_str()
        ),
        floor: redis::Script::new(FLOOR_SCRIPT),
    });
    let interleaved = Interleaved::new("icounter/interleaved_1_caller", &INTERLEAVED, 2, 3);
    group.bench_function("interleaved_1_caller", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let (bench, interleaved) = (bench.clone(), interleaved.clone());
            async move { interleaved.sample(iters, |which| bench.run(which)).await }
        })
    });
    interleaved.report();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = icounter
}
criterion_main!(benches);
