#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! A strict counter outlives a runtime that shut down while its calls were
//! in flight and queued: nothing is left waiting for a drain task of that
//! runtime.

use std::sync::Arc;
use std::time::Duration;

use distkit_icounter::{
    DistkitRedisKey, InstanceAwareCounterTrait, StrictInstanceAwareCounter,
    StrictInstanceAwareCounterOptions,
};

#[test]
fn a_runtime_shut_down_mid_flight_leaves_the_counter_usable() {
    let server = distkit_testkit::RedisServer::start();
    let keeper = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let conn = keeper.block_on(server.connection_manager());
    let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("ic_shutdown")).unwrap();
    let counter = keeper.block_on(async {
        StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn))
    });
    let key = Arc::new(DistkitRedisKey::try_from("k").unwrap());

    // Redis frozen: two calls go inline and hang, the others queue.
    server.freeze();
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..6 {
        let (counter, key) = (counter.clone(), key.clone());
        doomed.spawn(async move { counter.inc(&key, 1).await });
    }
    std::thread::sleep(Duration::from_millis(300));
    doomed.shutdown_timeout(Duration::from_secs(5));
    server.thaw();

    keeper.block_on(async {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (counter, key) = (counter.clone(), key.clone());
                tokio::spawn(async move { counter.inc(&key, 1).await })
            })
            .collect();
        let all = async {
            let mut results = Vec::new();
            for handle in handles {
                results.push(handle.await.unwrap());
            }
            results
        };
        let results = tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("no call may wait for a drain of the runtime that shut down");
        for result in results {
            result.unwrap();
        }
    });
}
