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
use distkit_testkit::runtimes::{abandon_in_flight, one_worker_runtime, run_concurrently};

#[test]
fn a_runtime_shut_down_mid_flight_leaves_the_counter_usable() {
    let server = distkit_testkit::RedisServer::start();
    let keeper = one_worker_runtime();
    let conn = keeper.block_on(server.connection_manager());
    let prefix = DistkitRedisKey::try_from(distkit_testkit::unique_prefix("ic_shutdown")).unwrap();
    let counter = keeper.block_on(async {
        StrictInstanceAwareCounter::new(StrictInstanceAwareCounterOptions::new(prefix, conn))
    });
    let key = Arc::new(DistkitRedisKey::try_from("k").unwrap());
    let call = || {
        let (counter, key) = (counter.clone(), key.clone());
        async move { counter.inc(&key, 1).await }
    };

    // Redis frozen: two calls go inline and hang, the others queue.
    abandon_in_flight(&server, 6, call);

    // No call may wait for a drain of the runtime that shut down.
    for result in run_concurrently(&keeper, 6, Duration::from_secs(10), call) {
        result.unwrap();
    }
}
