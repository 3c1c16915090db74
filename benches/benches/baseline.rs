//! Raw redis-rs baselines on one connection: `HINCRBY`, and a trivial
//! script by `EVALSHA`, at 1 and 64 concurrent callers. Every primitive's
//! bench compares itself with these figures from the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use distkit_benches::{connection, run_concurrent, runtime, trivial_script};

fn baseline(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let script = trivial_script();
    let mut group = c.benchmark_group("baseline");
    for callers in [1u64, 64] {
        let hincrby_conn = conn.clone();
        group.bench_function(format!("hincrby/{callers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let conn = hincrby_conn.clone();
                run_concurrent(callers, iters, move |_| {
                    let mut conn = conn.clone();
                    async move {
                        let _: i64 = redis::cmd("HINCRBY")
                            .arg("bench:baseline")
                            .arg("f")
                            .arg(1)
                            .query_async(&mut conn)
                            .await
                            .expect("HINCRBY");
                    }
                })
            })
        });
        let evalsha_conn = conn.clone();
        let script = script.clone();
        group.bench_function(format!("evalsha/{callers}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let conn = evalsha_conn.clone();
                let script = script.clone();
                run_concurrent(callers, iters, move |_| {
                    let mut conn = conn.clone();
                    let script = script.clone();
                    async move {
                        let _: i64 = script
                            .key("bench:baseline")
                            .arg("f")
                            .arg(1)
                            .invoke_async(&mut conn)
                            .await
                            .expect("EVALSHA");
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, baseline);
criterion_main!(benches);
