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
