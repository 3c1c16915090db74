//! Benchmarks of distkit's ratelimit primitive (filled in with the primitive).

use criterion::{Criterion, criterion_group, criterion_main};

fn ratelimit(_c: &mut Criterion) {}

criterion_group!(benches, ratelimit);
criterion_main!(benches);
