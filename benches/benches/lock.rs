//! Benchmarks of distkit's locks, next to the raw baseline they are judged
//! by (two `EVALSHA` round trips on the same connection):
//!
//! - `lock/two_raw_evalsha`: the baseline, two trivial scripts in sequence;
//! - `lock/raw_lock_scripts`: the mutex's own acquire and release scripts
//!   called by `EVALSHA` directly, without the library around them: the
//!   difference to the baseline is the scripts' server-side work, the
//!   difference to `mutex_acquire_release` the client side;
//! - `lock/mutex_acquire_release`: uncontended `try_lock` + `release`;
//! - `lock/read_acquire_release`: uncontended `try_read` + `release`;
//! - `lock/interleaved`: the four above in turn, round-robin with a rotating
//!   start, so that a shared, loaded machine slows them alike; the time
//!   reported is the mutex pair's, and the ratios to the baseline (median
//!   and quartiles over criterion's samples) are printed after the group;
//! - `lock/hand_off_gap_8`: 8 contenders (own connections, pub/sub wake-ups,
//!   `retry_interval` 1 s); the measured time per iteration is the gap from
//!   a holder starting its release to the next holder returning from `lock()`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use distkit::lock::{LockOptions, Mutex, RwLock};
use distkit::{DistkitRedisKey, RedisConnection};
use distkit_benches::{Interleaved, connection, raw_evalsha, runtime, trivial_script};
use redis::aio::ConnectionManager;

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).expect("key")
}

/// One of the lock scripts, as embedded in `distkit-lock`.
fn lock_script(name: &str) -> redis::Script {
    let (_, source) = distkit::lock::SCRIPT_SOURCES
        .iter()
        .find(|(script, _)| *script == name)
        .expect("lock script");
    redis::Script::new(source)
}

async fn with_client() -> RedisConnection {
    RedisConnection::open(&distkit_testkit::shared_server().url())
        .await
        .expect("connection")
}

/// Everything the uncontended benches need.
struct Uncontended {
    raw: ConnectionManager,
    trivial: Arc<redis::Script>,
    acquire: redis::Script,
    release: redis::Script,
    /// owner, readers, pending, fence, waiting, channel of the raw-scripts
    /// lock.
    names: [String; 6],
    tokens: AtomicU64,
    mutex: Arc<Mutex>,
    rwlock: Arc<RwLock>,
}

impl Uncontended {
    /// The baseline: two trivial scripts by `EVALSHA`.
    async fn two_raw_evalsha(&self) {
        let mut conn = self.raw.clone();
        for _ in 0..2 {
            raw_evalsha(&mut conn, &self.trivial, "bench:lock:baseline").await;
        }
    }

    /// The mutex's acquire and release scripts, without the library.
    async fn raw_lock_scripts(&self) {
        let mut conn = self.raw.clone();
        let names = &self.names;
        let token = format!("bench:{:032x}", self.tokens.fetch_add(1, Ordering::Relaxed));
        let (acquired, _fence): (i64, String) = self
            .acquire
            .key(&names[0])
            .key(&names[1])
            .key(&names[2])
            .key(&names[3])
            .key(&names[4])
            .arg(&token)
            .arg(30_000)
            .arg(0)
            .arg(86_400_000)
            .arg(0)
            .arg(0)
            .invoke_async(&mut conn)
            .await
            .expect("acquire script");
        assert_eq!(acquired, 1);
        let released: i64 = self
            .release
            .key(&names[0])
            .key(&names[4])
            .arg(&token)
            .arg("PUBLISH")
            .arg(&names[5])
            .invoke_async(&mut conn)
            .await
            .expect("release script");
        assert_eq!(released, 1);
    }

    async fn mutex_acquire_release(&self) {
        let guard = self.mutex.try_lock().await.expect("uncontended");
        guard.release().await.expect("release");
    }

    async fn read_acquire_release(&self) {
        let guard = self.rwlock.try_read().await.expect("uncontended");
        guard.release().await.expect("release");
    }

    async fn run(&self, which: usize) {
        match which {
            0 => self.two_raw_evalsha().await,
            1 => self.raw_lock_scripts().await,
            2 => self.mutex_acquire_release().await,
            _ => self.read_acquire_release().await,
        }
    }
}

const NAMES: [&str; 4] = [
    "two_raw_evalsha",
    "raw_lock_scripts",
    "mutex_acquire_release",
    "read_acquire_release",
];

fn lock(c: &mut Criterion) {
    let rt = runtime();
    let raw = connection(&rt);
    let conn: RedisConnection = raw.clone().into();
    let base = format!("distkit:lock:{{{}}}", key("bench_raw_scripts").as_str());
    let bench = Arc::new(Uncontended {
        raw,
        trivial: trivial_script(),
        acquire: lock_script("acquire_write"),
        release: lock_script("release_write"),
        names: [
            "owner", "readers", "pending", "fence", "waiters", "released",
        ]
        .map(|part| format!("{base}:{part}")),
        tokens: AtomicU64::new(0),
        mutex: Mutex::new(LockOptions::new(key("bench_mutex"), conn.clone())),
        rwlock: RwLock::new(LockOptions::new(key("bench_rw"), conn.clone())),
    });
    let mut group = c.benchmark_group("lock");

    for (which, name) in NAMES.iter().enumerate() {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                let bench = bench.clone();
                async move { bench.run(which).await }
            })
        });
    }

    let interleaved = Interleaved::new("lock/interleaved", &NAMES, 0, 2);
    group.bench_function("interleaved", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (bench, interleaved) = (bench.clone(), interleaved.clone());
            async move { interleaved.sample(iters, |which| bench.run(which)).await }
        })
    });
    interleaved.report();

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
