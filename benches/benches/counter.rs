//! Benchmarks of distkit's counter primitive (filled in with the primitive).

use criterion::{Criterion, criterion_group, criterion_main};

fn counter(_c: &mut Criterion) {}

criterion_group!(benches, counter);
criterion_main!(benches);
