//! Raw redis-rs baselines on one connection: `HINCRBY`, and a trivial
//! script by `EVALSHA`, at 1 and 64 concurrent callers. Every primitive's
//! bench compares itself with these figures from the same run.

use criterion::{Criterion, criterion_group, criterion_main};
use distkit_benches::{bench_raw_evalsha, bench_raw_hincrby, connection, runtime};

fn baseline(c: &mut Criterion) {
    let rt = runtime();
    let conn = connection(&rt);
    let mut group = c.benchmark_group("baseline");
    for callers in [1u64, 64] {
        bench_raw_hincrby(&mut group, &rt, &conn, "hincrby", callers);
        bench_raw_evalsha(&mut group, &rt, &conn, "evalsha", callers);
    }
    group.finish();
}

criterion_group!(benches, baseline);
criterion_main!(benches);
