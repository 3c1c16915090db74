//! Helpers shared by distkit's integration tests (the tests live in
//! `tests/tests/`).

use distkit::{DistkitRedisKey, RedisConnection};

pub mod verify;
pub mod workloads;

/// A unique, valid prefix for one test.
pub fn prefix(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).expect("valid test prefix")
}

/// A connection to the shared single-node server.
pub async fn single_node() -> RedisConnection {
    distkit_testkit::shared_server()
        .connection_manager()
        .await
        .into()
}

/// A connection to the shared 3-master cluster.
pub async fn cluster() -> RedisConnection {
    distkit_testkit::shared_cluster().connection().await.into()
}

/// A connection to the shared single-node server whose requests may take
/// up to `response_timeout` (the redis-rs default is 500 ms): for calls
/// that do a lot of work in one script, such as batches of 10 000 updates
/// on a loaded machine.
pub async fn single_node_with_timeout(response_timeout: std::time::Duration) -> RedisConnection {
    let config = distkit::redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout));
    distkit::redis::Client::open(distkit_testkit::shared_server().url())
        .expect("a valid URL")
        .get_connection_manager_with_config(config)
        .await
        .expect("connect to the shared server")
        .into()
}

/// A connection to the shared cluster with a longer response timeout (see
/// [`single_node_with_timeout`]).
pub async fn cluster_with_timeout(response_timeout: std::time::Duration) -> RedisConnection {
    distkit::redis::cluster::ClusterClient::builder(distkit_testkit::shared_cluster().urls())
        .response_timeout(response_timeout)
        .retries(0)
        .build()
        .expect("a valid cluster configuration")
        .get_async_connection()
        .await
        .expect("connect to the shared cluster")
        .into()
}
