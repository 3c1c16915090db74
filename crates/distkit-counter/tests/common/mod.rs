//! Shared setup of the counter crate's tests.
#![allow(dead_code)]

use std::sync::Arc;

use distkit_counter::{
    CounterOptions, DistkitRedisKey, LaxCounter, RedisConnection, StrictCounter,
};

pub fn prefix(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(distkit_testkit::unique_prefix(name)).unwrap()
}

pub fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(name).unwrap()
}

pub async fn single() -> RedisConnection {
    distkit_testkit::shared_server()
        .connection_manager()
        .await
        .into()
}

pub async fn cluster() -> RedisConnection {
    distkit_testkit::shared_cluster().connection().await.into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Strict,
    Lax,
}

/// A counter of either flavour, plus a strict counter on the same prefix
/// to audit what is stored in Redis.
pub struct Pair {
    pub counter: Counter,
    pub audit: Arc<StrictCounter>,
}

pub enum Counter {
    Strict(Arc<StrictCounter>),
    Lax(Arc<LaxCounter>),
}

impl Counter {
    /// Makes sure everything this counter buffered is stored.
    pub async fn settle(&self) {
        if let Counter::Lax(lax) = self {
            lax.flush().await.unwrap();
        }
    }
}

pub fn pair(flavor: Flavor, options: CounterOptions) -> Pair {
    let audit = StrictCounter::new(options.clone());
    let counter = match flavor {
        Flavor::Strict => Counter::Strict(StrictCounter::new(options)),
        Flavor::Lax => Counter::Lax(LaxCounter::new(options)),
    };
    Pair { counter, audit }
}

/// Calls a `CounterTrait` method on whichever flavour `$counter` is.
#[macro_export]
macro_rules! on {
    ($counter:expr, $method:ident ( $($arg:expr),* )) => {
        match &$counter {
            $crate::common::Counter::Strict(c) => c.$method($($arg),*).await,
            $crate::common::Counter::Lax(c) => c.$method($($arg),*).await,
        }
    };
}

/// Generates one test per flavour and topology for a scenario
/// `async fn(Flavor, RedisConnection)`.
#[macro_export]
macro_rules! each_counter {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn strict_single_node() {
                    super::$scenario(Flavor::Strict, single().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn lax_single_node() {
                    super::$scenario(Flavor::Lax, single().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn strict_cluster() {
                    super::$scenario(Flavor::Strict, cluster().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn lax_cluster() {
                    super::$scenario(Flavor::Lax, cluster().await).await;
                }
            }
        )*
    };
}
