//! Benchmarks of distkit's icounter primitive (filled in with the primitive).

use criterion::{Criterion, criterion_group, criterion_main};

fn icounter(_c: &mut Criterion) {}

criterion_group!(benches, icounter);
criterion_main!(benches);
