//! One member of a fleet of OS processes working against one Redis (or one
//! cluster), recording its history to a file as it goes, so a test can
//! SIGKILL members mid-run, then merge the files and check them.
//!
//! ```text
//! fleet --workload counter --process 3 --out /tmp/p3.log --prefix run1 \
//!       [--url redis://127.0.0.1:6379/ | --cluster URL,URL,URL] \
//!       [--duration-ms 3000] [--keys 2] [--seed 1]
//! ```
//!
//! `--primitive` is an alias of `--workload`. `--url` defaults to `REDIS_URL`. Histories are written with
//! `distkit_testkit::history::History::with_log` on the wall clock (the
//! only clock OS processes share; see `Clock::Wall` for its limits), one
//! line per invocation and per return; a member killed mid-operation leaves
//! an invocation without a return, which the merge reads as an unknown
//! outcome.
//!
//! Workloads: `counter` (raw `INCRBY` / `GET` / `SET`). A new workload is a
//! new arm in `main` and a function like `counter` that records into its
//! own history type.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use distkit_testkit::faults::Endpoint;
use distkit_testkit::history::{CounterOp, CounterRet, History};
use distkit_testkit::workloads::{ERROR_BACKOFF, SplitMix, random_counter_call, raw_counter_step};

struct Args {
    workload: String,
    process: u64,
    out: PathBuf,
    prefix: String,
    endpoint: Endpoint,
    duration: Duration,
    keys: u64,
    seed: u64,
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
        // icounter / lock: added with their primitives.
        other => Err(format!("unknown workload {other:?} (known: counter)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet: {e}");
            ExitCode::FAILURE
        }
    }
}
