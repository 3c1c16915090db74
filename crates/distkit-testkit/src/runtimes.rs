//! Runtimes for tests of what outlives a Tokio runtime: a primitive shared
//! by two runtimes, one of which shuts down with its calls in flight.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::RedisServer;

/// A multi-thread runtime with one worker and every driver enabled.
///
/// ```
/// let runtime = distkit_testkit::runtimes::one_worker_runtime();
/// assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
/// ```
pub fn one_worker_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("distkit-testkit: cannot build a runtime: {e}"))
}

/// Starts `calls` copies of `call()` on a runtime of their own while
/// `server` is frozen, so they stay in flight (sent, or queued behind the
/// ones sent), then shuts that runtime down with them still in flight and
/// thaws `server`. Whatever the calls' futures had set up is dropped mid-way.
///
/// ```no_run
/// let server = distkit_testkit::RedisServer::start();
/// distkit_testkit::runtimes::abandon_in_flight(&server, 6, || async { /* a call */ });
/// ```
pub fn abandon_in_flight<F, Fut>(server: &RedisServer, calls: usize, call: F)
where
    F: Fn() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    server.freeze();
    let doomed = one_worker_runtime();
    for _ in 0..calls {
        doomed.spawn(call());
    }
    std::thread::sleep(Duration::from_millis(300));
    doomed.shutdown_timeout(Duration::from_secs(5));
    server.thaw();
}

/// Runs `calls` copies of `call()` at once on `runtime` and returns their
/// outputs in order; panics when they are not all done within `limit`.
///
/// ```
/// use std::time::Duration;
/// let runtime = distkit_testkit::runtimes::one_worker_runtime();
/// let outputs = distkit_testkit::runtimes::run_concurrently(&runtime, 3, Duration::from_secs(1), || async { 7 });
/// assert_eq!(outputs, vec![7, 7, 7]);
/// ```
pub fn run_concurrently<F, Fut>(
    runtime: &Runtime,
    calls: usize,
    limit: Duration,
    call: F,
) -> Vec<Fut::Output>
where
    F: Fn() -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let handles: Vec<_> = (0..calls).map(|_| runtime.spawn(call())).collect();
    runtime.block_on(async {
        let all = async {
            let mut outputs = Vec::with_capacity(handles.len());
            for handle in handles {
                outputs.push(
                    handle
                        .await
                        .unwrap_or_else(|e| panic!("distkit-testkit: a call panicked: {e}")),
                );
            }
            outputs
        };
        tokio::time::timeout(limit, all)
            .await
            .unwrap_or_else(|_| panic!("distkit-testkit: the calls took longer than {limit:?}"))
    })
}
