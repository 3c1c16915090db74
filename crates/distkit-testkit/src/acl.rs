//! Cutting one client off a Redis Cluster while the rest keep going.

use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterClientBuilder};

use crate::RedisCluster;

/// Cuts one client off every node of a cluster, and lets it back.
///
/// A [`FaultProxy`](crate::FaultProxy) can only stand in front of a
/// cluster's seed connection (nodes advertise their own ports), so this
/// fault is made in Redis itself: the client connects as its own ACL user
/// (through [`client_builder`](Self::client_builder)), and [`cut`](Self::cut)
/// disables that user and kills its connections on every node. Every
/// request and reconnection of that client then fails at once, while other
/// clients and Redis' clock go on; [`heal`](Self::heal) enables the user
/// again. The user is left (disabled) on the throwaway cluster.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// let cluster = distkit_testkit::shared_cluster();
/// let cut = distkit_testkit::AclCut::new(cluster, "cut-example").await;
/// let client = cut.client_builder(cluster).build().unwrap();
/// let mut conn = client.get_async_connection().await.unwrap();
/// cut.cut().await;
/// let refused: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
/// assert!(refused.is_err());
/// cut.heal().await;
/// # }
/// ```
#[derive(Clone)]
pub struct AclCut {
    user: String,
    admins: Vec<MultiplexedConnection>,
}

impl std::fmt::Debug for AclCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclCut")
            .field("user", &self.user)
            .field("nodes", &self.admins.len())
            .finish()
    }
}

impl AclCut {
    const PASSWORD: &'static str = "distkit-testkit-cut";

    /// Creates the ACL user `user` (all keys, channels and commands) on every
    /// node of `cluster`.
    pub async fn new(cluster: &RedisCluster, user: &str) -> Self {
        let mut admins = Vec::new();
        for url in cluster.urls() {
            let connection = redis::Client::open(url.as_str())
                .unwrap_or_else(|e| panic!("distkit-testkit: bad node url {url}: {e}"))
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("distkit-testkit: cannot reach node {url}: {e}"));
            admins.push(connection);
        }
        let cut = Self {
            user: user.to_owned(),
            admins,
        };
        cut.acl(&["on", &format!(">{}", Self::PASSWORD), "~*", "&*", "+@all"])
            .await;
        cut
    }

    /// A cluster client builder that connects as this cut's user; add
    /// timeouts and build it as usual.
    pub fn client_builder(&self, cluster: &RedisCluster) -> ClusterClientBuilder {
        ClusterClient::builder(cluster.urls())
            .username(self.user.clone())
            .password(Self::PASSWORD)
    }

    /// Cuts the user off: disabled on every node, its connections killed.
    pub async fn cut(&self) {
        self.acl(&["off"]).await;
        for admin in &self.admins {
            let mut admin = admin.clone();
            let _: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("USER")
                .arg(&self.user)
                .query_async(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("distkit-testkit: CLIENT KILL USER failed: {e}"));
        }
    }

    /// Lets the user back in: its client reconnects on its next request.
    pub async fn heal(&self) {
        self.acl(&["on"]).await;
    }

    async fn acl(&self, rules: &[&str]) {
        for admin in &self.admins {
            let mut admin = admin.clone();
            let () = redis::cmd("ACL")
                .arg("SETUSER")
                .arg(&self.user)
                .arg(rules)
                .query_async(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("distkit-testkit: ACL SETUSER failed: {e}"));
        }
    }
}
