//! Benchmarks of distkit's locks, next to the raw baseline they are judged
//! by (two `EVALSHA` round trips on the same connection):
//!
//! - `lock/two_raw_evalsha`: the baseline, two trivial scripts in sequence;
//! - `lock/mutex_acquire_release`: uncontended `try_lock` + `release`;
//! - `lock/read_acquire_release`: uncontended `try_read` + `release`;
//! - `lock/hand_off_gap_8`: 8 contenders (own connections, pub/sub wake-ups,
//!   `retry_interval` 1 s); the measured time per iteration is the gap from
//!   a holder starting its release to the next holder returning from `lock()`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use distkit::lock::{LockOptions, Mutex, RwLock};
use distkit::{DistkitRedisKey, RedisConnection};
use distkit_benches::{connection, runtime, trivial_script};

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).expect("key")
}

async fn with_client() -> RedisConnection {
    RedisConnection::open(&distkit_testkit::shared_server().url())
        .await
        .expect("connection")
}

fn lock(c: &mut Criterion) {
    let rt = runtime();
    let raw = connection(&rt);
    let script = trivial_script();
    let conn: RedisConnection = raw.clone().into();
    let mut group = c.benchmark_group("lock");

    group.bench_function("two_raw_evalsha", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            let script = script.clone();
            async move {
                for _ in 0..2 {
                    let _: i64 = script
                        .key("bench:lock:baseline")
                        .arg("f")
                        .arg(1)
                        .invoke_async(&mut conn)
                        .await
                        .expect("EVALSHA");
                }
            }
        })
    });

    let mutex = Mutex::new(LockOptions::new(key("bench_mutex"), conn.clone()));
    group.bench_function("mutex_acquire_release", |b| {
        b.to_async(&rt).iter(|| {
            let mutex = mutex.clone();
            async move {
                let guard = mutex.try_lock().await.expect("uncontended");
                guard.release().await.expect("release");
            }
        })
    });

    let rwlock = RwLock::new(LockOptions::new(key("bench_rw"), conn.clone()));
    group.bench_function("read_acquire_release", |b| {
        b.to_async(&rt).iter(|| {
            let rwlock = rwlock.clone();
            async move {
                let guard = rwlock.try_read().await.expect("uncontended");
                guard.release().await.expect("release");
            }
        })
    });

    let contended_key = key("bench_hand_off");
    let mutexes: Vec<Arc<Mutex>> = rt.block_on(async {
        let mut mutexes = Vec::new();
        for _ in 0..8 {
            mutexes.push(Mutex::new(
                LockOptions::builder(contended_key.clone(), with_client().await)
                    .retry_interval(Duration::from_secs(1))
                    .build()
                    .expect("options"),
            ));
        }
        mutexes
    });
    group.bench_function("hand_off_gap_8", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let mutexes = mutexes.clone();
            async move { hand_off_gaps(&mutexes, iters).await }
        })
    });
    group.finish();
}

/// Runs `iters` hand-offs among the contenders and returns the summed gaps.
async fn hand_off_gaps(mutexes: &[Arc<Mutex>], iters: u64) -> Duration {
    let shared = Arc::new(std::sync::Mutex::new((
        0u64,
        None::<Instant>,
        Duration::ZERO,
    )));
    let mut tasks = Vec::new();
    for mutex in mutexes {
        let mutex = mutex.clone();
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let guard = mutex.lock().await.expect("lock");
                let done = {
                    let mut state = shared.lock().expect("state");
                    if let Some(released) = state.1.take() {
                        state.2 += released.elapsed();
                        state.0 += 1;
                    }
                    let done = state.0 >= iters;
                    if !done {
                        state.1 = Some(Instant::now());
                    }
                    done
                };
                guard.release().await.expect("release");
                if done {
                    return;
                }
            }
        }));
    }
    // The first task to see the target reached stops; the others stop at
    // their next acquisition.
    for task in tasks {
        task.await.expect("contender");
    }
    shared.lock().expect("state").2
}

criterion_group!(benches, lock);
criterion_main!(benches);
