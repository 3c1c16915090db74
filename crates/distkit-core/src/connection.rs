//! One connection type over a single Redis node or a Redis Cluster.

use std::fmt;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::DistkitError;

/// A cheap-to-clone handle to Redis: a single node behind a
/// [`ConnectionManager`] or a Redis Cluster behind a [`ClusterConnection`].
///
/// Every distkit options type takes `impl Into<RedisConnection>`, so both
/// connection kinds can be passed as they are. Clones share the underlying
/// multiplexed connection; reconnection is the Redis client's job.
///
/// Primitives that need a dedicated connection of their own (pub/sub for
/// lock hand-off) can only open one when they know the client configuration:
/// build the handle with [`RedisConnection::open`],
/// [`RedisConnection::open_cluster`] or [`RedisConnection::with_client`] to
/// give it to them. Without it they fall back to polling.
///
/// ```no_run
/// use distkit_core::RedisConnection;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let manager = client.get_connection_manager().await?;
/// let conn: RedisConnection = manager.into();
/// assert!(!conn.is_cluster());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisConnection {
    link: Link,
    client: Option<ClientConfig>,
}

#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// The client configuration a connection was made from, for primitives that
/// must open dedicated connections (such as pub/sub subscribers).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientConfig {
    /// A single-node client.
    Single(redis::Client),
    /// A Redis Cluster client.
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl RedisConnection {
    /// Opens a [`ConnectionManager`] to the single node at `url` and keeps the
    /// client so primitives can open dedicated connections.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), distkit_core::DistkitError> {
    /// let conn = distkit_core::RedisConnection::open("redis://127.0.0.1/").await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(url: &str) -> Result<Self, DistkitError> {
        let client =
            redis::Client::open(url).map_err(|e| DistkitError::redis("connection.open", e))?;
        let manager = client
            .get_connection_manager()
            .await
            .map_err(|e| DistkitError::redis("connection.open", e))?;
        Ok(Self::from(manager).with_client(ClientConfig::Single(client)))
    }

    /// Opens a cluster connection through the given seed nodes and keeps the
    /// client so primitives can open dedicated connections.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), distkit_core::DistkitError> {
    /// let conn = distkit_core::RedisConnection::open_cluster(&[
    ///     "redis://127.0.0.1:7000/",
    ///     "redis://127.0.0.1:7001/",
    /// ])
    /// .await?;
    /// assert!(conn.is_cluster());
    /// # Ok(()) }
    /// ```
    pub async fn open_cluster(nodes: &[&str]) -> Result<Self, DistkitError> {
        let client = redis::cluster::ClusterClient::new(nodes.to_vec())
            .map_err(|e| DistkitError::redis("connection.open_cluster", e))?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| DistkitError::redis("connection.open_cluster", e))?;
        Ok(Self::from(connection).with_client(ClientConfig::Cluster(Box::new(client))))
    }

    /// Attaches the client configuration this connection was made from.
    ///
    /// ```no_run
    /// use distkit_core::{ClientConfig, RedisConnection};
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let manager = client.get_connection_manager().await?;
    /// let conn = RedisConnection::from(manager).with_client(ClientConfig::Single(client));
    /// assert!(conn.client().is_some());
    /// # Ok(()) }
    /// ```
    pub fn with_client(mut self, client: ClientConfig) -> Self {
        self.client = Some(client);
        self
    }

    /// The client configuration, when known.
    ///
    /// ```no_run
    /// # async fn demo(conn: distkit_core::RedisConnection) {
    /// if conn.client().is_none() {
    ///     println!("no dedicated connections: pub/sub features poll instead");
    /// }
    /// # }
    /// ```
    pub fn client(&self) -> Option<&ClientConfig> {
        self.client.as_ref()
    }

    /// Whether this handle talks to a Redis Cluster.
    ///
    /// ```no_run
    /// # async fn demo(conn: distkit_core::RedisConnection) {
    /// let mode = if conn.is_cluster() { "cluster" } else { "single node" };
    /// # }
    /// ```
    pub fn is_cluster(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(manager: ConnectionManager) -> Self {
        Self {
            link: Link::Single(manager),
            client: None,
        }
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(connection: ClusterConnection) -> Self {
        Self {
            link: Link::Cluster(connection),
            client: None,
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.link {
            Link::Single(_) => "single",
            Link::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisConnection")
            .field("kind", &kind)
            .field("has_client", &self.client.is_some())
            .finish()
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.link {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.link {
            Link::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}
