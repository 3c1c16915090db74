//! One member of a fleet of OS processes working against one Redis (or one
//! cluster), recording its history to a file as it goes, so a test can
//! SIGKILL members mid-run, then merge the files and check them.
//!
//! ```text
//! fleet --workload counter --process 3 --out /tmp/p3.log --prefix run1 \
//!       [--url redis://127.0.0.1:6379/ | --cluster URL,URL,URL] \
//!       [--duration-ms 3000] [--keys 2] [--seed 1] [--threshold-ms 3000] \
//!       [--ttl-ms 500] [--file /tmp/shared.txt]
//! ```
//!
//! `--primitive` is an alias of `--workload`. `--url` defaults to
//! `REDIS_URL`. Workloads:
//!
//! - `counter`: raw `INCRBY` / `GET` / `SET`; `strict-counter`: the same mix
//!   plus `inc_if` / `set_if` on a distkit `StrictCounter`. Both write a
//!   history with `History::with_log` on the wall clock (the only clock OS
//!   processes share; see `Clock::Wall` for its limits), one line per
//!   invocation and per return; a member killed mid-operation leaves an
//!   invocation without a return, which the merge reads as an unknown
//!   outcome.
//! - `icounter`: one `StrictInstanceAwareCounter` instance (id `w<process>`,
//!   dead-instance threshold `--threshold-ms`) adding 1..=5 to `--keys`
//!   keys; `--out` gets a ledger line per increment (`ack KEY DELTA` or
//!   `unknown KEY DELTA`) and, at the end, `final KEY SLICE CUMULATIVE` per
//!   key.
//! - `lock`: a distkit `Mutex` (lease `--ttl-ms`) taken over and over; inside
//!   the critical section the member writes to the shared `--file` through a
//!   fencing "storage" that rejects a token not above the last one it
//!   accepted (`accept P TOKEN` / `reject P TOKEN`), then appends
//!   `start P TOKEN`, waits a little and appends `end P TOKEN`. Overlapping
//!   holders interleave those lines; stale holders get rejected.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use distkit::DistkitRedisKey;
use distkit::counter::{CounterOptions, StrictCounter};
use distkit::icounter::InstanceAwareCounterTrait;
use distkit::lock::{LockGuardState, LockOptions, Mutex};
use distkit_testkit::faults::Endpoint;
use distkit_testkit::history::{CounterOp, CounterRet, History};
use distkit_testkit::workloads::{ERROR_BACKOFF, SplitMix, random_counter_call, raw_counter_step};
use distkit_tests::workloads::{
    InstanceCounterWorkload, connect, random_strict_call, refused, strict_counter_step,
};

struct Args {
    workload: String,
    process: u64,
    out: PathBuf,
    prefix: String,
    endpoint: Endpoint,
    duration: Duration,
    keys: u64,
    seed: u64,
    threshold_ms: u64,
    ttl: Duration,
    file: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let name = flag
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {flag:?}"))?;
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        flags.insert(name.to_string(), value);
    }
    let take = |name: &str| flags.get(name).cloned();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        take(name).map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("--{name} {v:?}: {e}"))
        })
    };
    let endpoint = match (
        take("cluster"),
        take("url").or_else(|| std::env::var("REDIS_URL").ok()),
    ) {
        (Some(urls), _) => Endpoint::Cluster(urls.split(',').map(str::to_string).collect()),
        (None, Some(url)) => Endpoint::Single(url),
        (None, None) => return Err("give --url, --cluster or REDIS_URL".into()),
    };
    Ok(Args {
        workload: take("workload")
            .or_else(|| take("primitive"))
            .unwrap_or_else(|| "counter".into()),
        process: number("process", u64::from(std::process::id()))?,
        out: take("out").ok_or("--out is required")?.into(),
        prefix: take("prefix").ok_or("--prefix is required")?,
        endpoint,
        duration: Duration::from_millis(number("duration-ms", 3000)?),
        keys: number("keys", 2)?.max(1),
        seed: number("seed", 1)?,
        threshold_ms: number("threshold-ms", 3000)?,
        ttl: Duration::from_millis(number("ttl-ms", 500)?),
        file: take("file").map(PathBuf::from),
    })
}

/// Raw counter traffic on `keys` fixed keys until the duration is over.
async fn counter(args: &Args) -> Result<(), String> {
    let history: History<CounterOp, CounterRet> =
        History::with_log(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut conn = args.endpoint.connection().await;
    let mut rng = SplitMix::new(args.seed ^ args.process.wrapping_mul(0x9E37_79B9));
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let key = format!("{}:k{}", args.prefix, rng.below(args.keys));
        let call = random_counter_call(&mut rng);
        if !raw_counter_step(&mut conn, &history, args.process, CounterOp::new(key, call)).await {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    Ok(())
}

fn key(name: String) -> Result<DistkitRedisKey, String> {
    DistkitRedisKey::try_from(name).map_err(|e| e.to_string())
}

/// Strict counter traffic (with conditional calls) on `keys` fixed keys.
async fn strict_counter(args: &Args) -> Result<(), String> {
    let history: History<CounterOp, CounterRet> =
        History::with_log(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let counter = StrictCounter::new(CounterOptions::new(
        key(args.prefix.clone())?,
        connect(&args.endpoint).await,
    ));
    let mut rng = SplitMix::new(args.seed ^ args.process.wrapping_mul(0x9E37_79B9));
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let key = key(format!("k{}", rng.below(args.keys)))?;
        let call = random_strict_call(&mut rng);
        if !strict_counter_step(&counter, &history, args.process, &key, call).await {
            tokio::time::sleep(ERROR_BACKOFF).await;
        }
    }
    Ok(())
}

/// Appends `line` to `out` at once (a SIGKILL loses nothing written).
fn append(out: &mut File, line: &str) -> Result<(), String> {
    out.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())
}

/// One instance of an instance-aware counter, writing its ledger.
async fn icounter(args: &Args) -> Result<(), String> {
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    let workload = InstanceCounterWorkload::new(key(args.prefix.clone())?)
        .threshold_ms(args.threshold_ms)
        .key_count(args.keys);
    let counter = workload.instance(connect(&args.endpoint).await, Some(args.process));
    let keys = workload.keys();
    let mut rng = SplitMix::new(args.seed ^ args.process.wrapping_mul(0x9E37_79B9));
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let Some(key) = keys.get(rng.below(args.keys) as usize) else {
            break;
        };
        let delta = 1 + rng.below(5) as i64;
        match counter.inc(key, delta).await {
            Ok(_) => append(&mut out, &format!("ack {key} {delta}"))?,
            Err(error) if refused(&error) => tokio::time::sleep(ERROR_BACKOFF).await,
            Err(_) => {
                append(&mut out, &format!("unknown {key} {delta}"))?;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for key in &keys {
        let (cumulative, slice) = counter.get(key).await.map_err(|e| e.to_string())?;
        append(&mut out, &format!("final {key} {slice} {cumulative}"))?;
    }
    Ok(())
}

/// The fencing "storage": accepts a write only with a token above every
/// token it accepted before, atomically across processes (an OS file lock
/// on the ledger file).
fn storage_accepts(ledger: &Path, process: u64, token: u64) -> Result<bool, String> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(ledger)
        .map_err(|e| format!("{}: {e}", ledger.display()))?;
    file.lock().map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    file.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let last = text
        .lines()
        .filter_map(|line| line.strip_prefix("accept "))
        .filter_map(|rest| rest.split(' ').nth(1)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let accepted = token > last;
    let verdict = if accepted { "accept" } else { "reject" };
    append(&mut file, &format!("{verdict} {process} {token}"))?;
    file.unlock().map_err(|e| e.to_string())?;
    Ok(accepted)
}

/// Takes the lock over and over; writes through the fencing storage and
/// appends start/end lines to the shared file inside the critical section.
async fn lock(args: &Args) -> Result<(), String> {
    let shared = args.file.as_ref().ok_or("--file is required for lock")?;
    let ledger = shared.with_extension("storage");
    let options = LockOptions::builder(key(args.prefix.clone())?, connect(&args.endpoint).await)
        .ttl(args.ttl)
        .retry_interval(Duration::from_millis(100))
        .build()
        .map_err(|e| e.to_string())?;
    let mutex = Mutex::new(options);
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(shared)
        .map_err(|e| format!("{}: {e}", shared.display()))?;
    let mut rng = SplitMix::new(args.seed ^ args.process.wrapping_mul(0x9E37_79B9));
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let Ok(guard) = mutex.try_lock_with_timeout(args.ttl).await else {
            continue;
        };
        let token = guard.fencing_token();
        if storage_accepts(&ledger, args.process, token)? {
            append(&mut out, &format!("start {} {token}", args.process))?;
            tokio::time::sleep(Duration::from_millis(1 + rng.below(5))).await;
            if guard.state() == LockGuardState::Acquired {
                append(&mut out, &format!("end {} {token}", args.process))?;
            }
        }
        let _ = guard.release().await;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.workload.as_str() {
        "counter" => counter(&args).await,
        "strict-counter" => strict_counter(&args).await,
        "icounter" => icounter(&args).await,
        "lock" => lock(&args).await,
        other => Err(format!(
            "unknown workload {other:?} (known: counter, strict-counter, icounter, lock)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {e}");
            ExitCode::FAILURE
        }
    }
}
