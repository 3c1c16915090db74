//! Test support for distkit: real Redis servers, started and thrown away by
//! the tests themselves.
//!
//! - [`shared_server`]: one `redis-server` per test binary on a free loopback
//!   port (or the server at `REDIS_URL` when that variable is set), reused by
//!   every test of the binary and stopped when the binary exits.
//! - [`RedisServer::start`]: a dedicated server a test may kill and restart.
//! - [`shared_cluster`] / [`RedisCluster::start`]: a local 3-master Redis
//!   Cluster on free ports.
//! - [`unique_prefix`]: a key prefix no other test (or run) uses.
//! - [`FaultProxy`]: a loopback TCP proxy that cuts connections, refuses new
//!   ones, pauses or delays traffic.
//! - [`AclCut`]: cuts one client off every node of a cluster (its ACL user
//!   disabled, its connections killed) while the others go on.
//! - [`history`]: record concurrent histories and check them (linearizability,
//!   lock exclusion and fencing, lax sums).
//! - [`faults`]: run a workload through rounds of faults (cut, pause,
//!   restart), then check what it recorded.
//! - [`icounter`]: raw runs of the instance-aware counters' script.
//! - [`runtimes`]: a primitive shared by two runtimes, one of which shuts
//!   down with its calls in flight.
//!
//! A missing `redis-server` is a test failure with a message that says how to
//! install it, never a silent skip.
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! let server = distkit_testkit::shared_server();
//! let mut conn = server.connection_manager().await;
//! let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
//! assert_eq!(pong, "PONG");
//! # }
//! ```
// Test support: a failed setup is a failed test, so this crate panics with
// a clear message instead of returning errors.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acl;
mod cluster;
pub mod faults;
pub mod history;
pub mod icounter;
mod ports;
mod prefix;
mod proxy;
pub mod runtimes;
mod server;
pub mod workloads;

pub use acl::AclCut;
pub use cluster::{RedisCluster, shared_cluster};
pub use prefix::unique_prefix;
pub use proxy::FaultProxy;
pub use server::{RedisServer, ServerOptions, shared_server};
