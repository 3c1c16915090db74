//! Shared setup of the distkit benchmarks: a Redis to measure against (the
//! server at `REDIS_URL`, or a throwaway one) and the raw baselines every
//! primitive is compared with.

use std::sync::Arc;

use redis::aio::ConnectionManager;

/// A multi-threaded runtime for async benchmarks.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One connection manager to the benchmark server.
pub fn connection(runtime: &tokio::runtime::Runtime) -> ConnectionManager {
    runtime.block_on(distkit_testkit::shared_server().connection_manager())
}

/// A trivial Lua script: the raw-script baseline (`HINCRBY` through `EVALSHA`).
pub fn trivial_script() -> Arc<redis::Script> {
    Arc::new(redis::Script::new(
        "return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])",
    ))
}

/// Runs `op` `iters` times from `callers` concurrent tasks sharing `conn`,
/// and returns the elapsed time.
pub async fn run_concurrent<F, Fut>(callers: u64, iters: u64, op: F) -> std::time::Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let start = std::time::Instant::now();
    let per_caller = iters.div_ceil(callers);
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                op(caller * per_caller + i).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("bench task");
    }
    start.elapsed()
}

/// One raw `HINCRBY` of `bench:baseline`: the plain-command baseline.
pub async fn raw_hincrby(conn: &mut ConnectionManager) {
    let _: i64 = redis::cmd("HINCRBY")
        .arg("bench:baseline")
        .arg("f")
        .arg(1)
        .query_async(conn)
        .await
        .expect("HINCRBY");
}

/// One run of the trivial script ([`trivial_script`]) on `key`: the
/// raw-script baseline.
pub async fn raw_evalsha(conn: &mut ConnectionManager, script: &redis::Script, key: &str) {
    let _: i64 = script
        .key(key)
        .arg("f")
        .arg(1)
        .invoke_async(conn)
        .await
        .expect("EVALSHA");
}

/// Adds the raw `HINCRBY` baseline at `callers` concurrent callers to `group`,
/// as `<name>/<callers>`, over `conn`.
pub fn bench_raw_hincrby(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    conn: &ConnectionManager,
    name: &str,
    callers: u64,
) {
    group.bench_function(format!("{name}/{callers}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let conn = conn.clone();
            run_concurrent(callers, iters, move |_| {
                let mut conn = conn.clone();
                async move { raw_hincrby(&mut conn).await }
            })
        })
    });
}

/// Adds the raw trivial-script (`EVALSHA`) baseline at `callers` concurrent
/// callers to `group`, as `<name>/<callers>`, over `conn`.
pub fn bench_raw_evalsha(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    conn: &ConnectionManager,
    name: &str,
    callers: u64,
) {
    let script = trivial_script();
    group.bench_function(format!("{name}/{callers}"), |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let (conn, script) = (conn.clone(), script.clone());
            run_concurrent(callers, iters, move |_| {
                let (mut conn, script) = (conn.clone(), script.clone());
                async move { raw_evalsha(&mut conn, &script, "bench:baseline").await }
            })
        })
    });
}

/// Benchmarks run in turn, round-robin with a rotating start, so that a
/// shared, loaded machine slows them alike. Each criterion sample of the
/// measured one ([`sample`](Self::sample)) runs them all and keeps their
/// sums; [`report`](Self::report) prints their ratios to the baseline.
#[derive(Debug)]
pub struct Interleaved {
    title: &'static str,
    names: &'static [&'static str],
    baseline: usize,
    measured: usize,
    samples: std::sync::Mutex<Vec<(Vec<std::time::Duration>, u64)>>,
}

impl Interleaved {
    /// The benchmarks `names`, compared with `names[baseline]`; criterion
    /// gets the time of `names[measured]`.
    pub fn new(
        title: &'static str,
        names: &'static [&'static str],
        baseline: usize,
        measured: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            title,
            names,
            baseline,
            measured,
            samples: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// One criterion sample: `iters` rounds of every benchmark
    /// (`run(which)` runs benchmark `which` once); returns the measured
    /// one's time.
    pub async fn sample<F, Fut>(&self, iters: u64, run: F) -> std::time::Duration
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let count = self.names.len();
        let mut sums = vec![std::time::Duration::ZERO; count];
        for round in 0..iters {
            let first = usize::try_from(round % count as u64).expect("small");
            for step in 0..count {
                let which = (first + step) % count;
                let start = std::time::Instant::now();
                run(which).await;
                sums[which] += start.elapsed();
            }
        }
        let measured = sums[self.measured];
        self.samples.lock().expect("samples").push((sums, iters));
        measured
    }

    /// Prints, for each benchmark, its time relative to the baseline over
    /// the samples: quartiles of the per-sample ratios, and the median time
    /// per call.
    pub fn report(&self) {
        let samples = self.samples.lock().expect("samples");
        if samples.is_empty() {
            return;
        }
        let quartiles = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
            (at(0.25), at(0.5), at(0.75))
        };
        println!(
            "{}: {} samples, ratio to {} (q1 / median / q3), median time per call",
            self.title,
            samples.len(),
            self.names[self.baseline]
        );
        for (which, name) in self.names.iter().enumerate() {
            let ratios = samples
                .iter()
                .map(|(s, _)| s[which].as_secs_f64() / s[self.baseline].as_secs_f64())
                .collect();
            let per_call = samples
                .iter()
                .map(|(s, iters)| s[which].as_secs_f64() * 1e6 / *iters as f64)
                .collect();
            let (q1, median, q3) = quartiles(ratios);
            let (_, micros, _) = quartiles(per_call);
            println!("  {name:<28} {q1:.3} / {median:.3} / {q3:.3}   {micros:.1} µs");
        }
    }
}
