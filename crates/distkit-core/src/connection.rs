//! One connection type over a single Redis node or a Redis Cluster.

use std::fmt;

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

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
    Cluster {
        connection: ClusterConnection,
        /// Whether distkit follows redirects itself: set when distkit built
        /// the client with `retries(0)` (see [`RedisConnection::open_cluster`]).
        follow_redirects: bool,
    },
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
    /// A `url` that does not parse is an
    /// [`InvalidArgument`](DistkitError::InvalidArgument) naming it (with any
    /// password masked); a server that cannot be reached is a
    /// [`Redis`](DistkitError::Redis) error.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let error = distkit_core::RedisConnection::open("localhost:6379").await.unwrap_err();
    /// assert!(error.to_string().contains("`localhost:6379` is not a Redis URL"));
    /// # }
    /// ```
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), distkit_core::DistkitError> {
    /// let conn = distkit_core::RedisConnection::open("redis://127.0.0.1/").await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(url: &str) -> Result<Self, DistkitError> {
        let client = redis::Client::open(url).map_err(|e| {
            DistkitError::invalid_argument(
                "url",
                format!("`{}` is not a Redis URL: {e}", without_password(url)),
            )
        })?;
        let manager = client
            .get_connection_manager()
            .await
            .map_err(|e| DistkitError::redis("connection.open", e))?;
        Ok(Self::from(manager).with_client(ClientConfig::Single(client)))
    }

    /// Opens a cluster connection through the given seed nodes and keeps the
    /// client so primitives can open dedicated connections.
    ///
    /// The connection never sends a request twice. By default the redis-rs
    /// cluster client re-sends a request whose connection dropped, even when
    /// the server had already run it, which applies a non-idempotent call
    /// (an increment) twice. Connections opened here are built with
    /// `retries(0)`, and distkit itself retries only what the cluster
    /// refused without running it: `MOVED` and `ASK` redirects (to the node
    /// they name), `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, and
    /// connections refused or not yet open, a few times over about half a
    /// second. A call whose outcome is unknown (a timeout, a dropped
    /// connection) fails with its error.
    ///
    /// A `ClusterConnection` passed in through `From` keeps the retry
    /// policy it was built with.
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
        Self::open_cluster_with(ClusterClient::builder(nodes.to_vec())).await
    }

    /// As [`open_cluster`](Self::open_cluster), from a client builder that
    /// carries the caller's settings (TLS, credentials, timeouts); its retry
    /// count is replaced by `0` for the reason given there.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), distkit_core::DistkitError> {
    /// use std::time::Duration;
    /// let builder = redis::cluster::ClusterClient::builder(vec!["redis://127.0.0.1:7000/"])
    ///     .response_timeout(Duration::from_secs(2));
    /// let conn = distkit_core::RedisConnection::open_cluster_with(builder).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_cluster_with(builder: ClusterClientBuilder) -> Result<Self, DistkitError> {
        let client = builder
            .retries(0)
            .build()
            .map_err(|e| DistkitError::redis("connection.open_cluster", e))?;
        let connection = client
            .get_async_connection()
            .await
            .map_err(|e| DistkitError::redis("connection.open_cluster", e))?;
        Ok(Self {
            link: Link::Cluster {
                connection,
                follow_redirects: true,
            },
            client: Some(ClientConfig::Cluster(Box::new(client))),
        })
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
        matches!(self.link, Link::Cluster { .. })
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
            link: Link::Cluster {
                connection,
                follow_redirects: false,
            },
            client: None,
        }
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.link {
            Link::Single(_) => "single",
            Link::Cluster { .. } => "cluster",
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
            Link::Cluster {
                connection,
                follow_redirects: false,
            } => connection.req_packed_command(cmd),
            Link::Cluster {
                connection,
                follow_redirects: true,
            } => Box::pin(command_following_redirects(connection, cmd)),
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
            Link::Cluster {
                connection,
                follow_redirects: false,
            } => connection.req_packed_commands(pipeline, offset, count),
            Link::Cluster {
                connection,
                follow_redirects: true,
            } => Box::pin(pipeline_following_redirects(
                connection, pipeline, offset, count,
            )),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(c) => c.get_db(),
            Link::Cluster { connection, .. } => connection.get_db(),
        }
    }
}

/// Attempts after the first for a request the cluster refused unrun.
const REFUSED_RETRIES: u32 = 6;

/// The pause before retry `attempt` (1-based) of a refused request that
/// names no node to go to: 10, 20, 40, ... ms, about 630 ms in all.
fn refused_backoff(attempt: u32) -> Duration {
    Duration::from_millis(10u64 << attempt.saturating_sub(1).min(6))
}

/// Whether `error` proves the request was not run: a redirect, a cluster
/// state refusal, or no connection to send it on.
fn refused_unrun(error: &RedisError) -> bool {
    match error.kind() {
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::BusyLoading
        ),
        ErrorKind::ClusterConnectionNotFound => true,
        _ => error.is_connection_refusal(),
    }
}

/// The node a `MOVED` or `ASK` error sends the request to.
fn redirect_target(error: &RedisError) -> Option<SingleNodeRoutingInfo> {
    let (address, _slot) = error.redirect_node()?;
    let (host, port) = address.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_string(),
        port: port.parse().ok()?,
    })
}

fn is_ask(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::Ask)
}

/// Sends `cmd` once, and again only while the cluster refuses it unrun:
/// to the node a redirect names (after `ASKING` for `ASK`), or after a
/// pause for the other refusals.
async fn command_following_redirects(
    connection: &mut ClusterConnection,
    cmd: &Cmd,
) -> RedisResult<Value> {
    let mut result = connection.req_packed_command(cmd).await;
    for attempt in 1..=REFUSED_RETRIES {
        let error = match &result {
            Err(error) if refused_unrun(error) => error,
            _ => return result,
        };
        result = match redirect_target(error) {
            Some(node) if is_ask(error) => {
                let mut asking = redis::pipe();
                asking.cmd("ASKING").add_command(cmd.clone());
                connection
                    .route_pipeline(asking, 1, 1, node)
                    .await
                    .and_then(|mut replies| {
                        replies.pop().ok_or_else(|| {
                            RedisError::from((ErrorKind::Client, "no reply after ASKING"))
                        })
                    })
                    .and_then(Value::extract_error)
            }
            Some(node) => {
                connection
                    .route_command(cmd.clone(), RoutingInfo::SingleNode(node))
                    .await
            }
            None => {
                tokio::time::sleep(refused_backoff(attempt)).await;
                connection.req_packed_command(cmd).await
            }
        };
    }
    result
}

/// Sends `pipeline` once, and again only when every reply shows the
/// cluster refused it unrun (the commands of a distkit pipeline share one
/// slot, so a redirect refuses all of them); a pipeline that ran in part is
/// never re-sent.
async fn pipeline_following_redirects(
    connection: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let mut result = connection
        .req_packed_commands(pipeline, offset, count)
        .await;
    for attempt in 1..=REFUSED_RETRIES {
        let refused = match &result {
            Err(error) => refused_unrun(error),
            Ok(replies) => {
                !replies.is_empty()
                    && replies.iter().all(|reply| match reply {
                        Value::ServerError(error) => {
                            refused_unrun(&RedisError::from(error.clone()))
                        }
                        _ => false,
                    })
            }
        };
        if !refused {
            return result;
        }
        // Redis-rs refreshes its slot map on a redirect; give it a moment.
        tokio::time::sleep(refused_backoff(attempt)).await;
        result = connection
            .req_packed_commands(pipeline, offset, count)
            .await;
    }
    result
}

/// `url` with the user information (`user:password@`) masked, for error
/// messages.
fn without_password(url: &str) -> String {
    // everything up to the last `@` is masked: never too little
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
