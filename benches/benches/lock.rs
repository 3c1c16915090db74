//! Benchmarks of distkit's lock primitive (filled in with the primitive).

use criterion::{Criterion, criterion_group, criterion_main};

fn lock(_c: &mut Criterion) {}

criterion_group!(benches, lock);
criterion_main!(benches);
