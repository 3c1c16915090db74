use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::server::{RedisServer, ServerOptions, ensure_cli_installed};

/// A local Redis Cluster of three masters (no replicas) on free loopback
/// ports, or the cluster named by `REDIS_CLUSTER_URLS` (comma-separated seed
/// URLs) when that is set.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// let cluster = distkit_testkit::shared_cluster();
/// let mut conn = cluster.connection().await;
/// let _: () = redis::cmd("SET").arg("{tag}a").arg(1).query_async(&mut conn).await.unwrap();
/// # }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    urls: Vec<String>,
    nodes: Vec<RedisServer>,
}

/// The cluster every test of this binary shares, formed on first use.
///
/// ```no_run
/// let urls = distkit_testkit::shared_cluster().urls();
/// ```
pub fn shared_cluster() -> &'static RedisCluster {
    static SHARED: OnceLock<RedisCluster> = OnceLock::new();
    SHARED.get_or_init(|| match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(urls) if !urls.trim().is_empty() => RedisCluster {
            urls: urls.split(',').map(|u| u.trim().to_string()).collect(),
            nodes: Vec::new(),
        },
        _ => RedisCluster::start(),
    })
}

impl RedisCluster {
    /// Starts three `redis-server --cluster-enabled yes` nodes, joins them
    /// with `redis-cli --cluster create`, and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    /// Like [`start`](Self::start), with options for every node.
    pub fn start_with(options: ServerOptions) -> Self {
        ensure_cli_installed();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let node_options = options
                .clone()
                .arg("--cluster-enabled")
                .arg("yes")
                .arg("--cluster-config-file")
                .arg("nodes.conf")
                .arg("--cluster-node-timeout")
                .arg("2000");
            nodes.push(RedisServer::start_fresh(true, node_options));
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot run redis-cli: {e}"));
        if !output.status.success() {
            panic!(
                "distkit-testkit: redis-cli --cluster create failed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let cluster = Self {
            urls: nodes.iter().map(|n| n.url()).collect(),
            nodes,
        };
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all_ok = self.nodes.iter().all(|node| {
                let mut conn = node.blocking_connection();
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut conn)
                    .unwrap_or_default();
                let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query(&mut conn)
                    .unwrap_or_default();
                info.contains("cluster_state:ok") && slots.len() == 3
            });
            if all_ok {
                return;
            }
            if Instant::now() > deadline {
                panic!("distkit-testkit: the cluster did not reach cluster_state:ok in 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The seed URLs of the nodes.
    pub fn urls(&self) -> Vec<String> {
        self.urls.clone()
    }

    /// The nodes (empty for an external `REDIS_CLUSTER_URLS` cluster).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// A cluster client.
    pub fn client(&self) -> redis::cluster::ClusterClient {
        redis::cluster::ClusterClient::new(self.urls.clone())
            .unwrap_or_else(|e| panic!("distkit-testkit: bad cluster urls {:?}: {e}", self.urls))
    }

    /// A new async cluster connection.
    pub async fn connection(&self) -> redis::cluster_async::ClusterConnection {
        self.client()
            .get_async_connection()
            .await
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot connect to the cluster: {e}"))
    }

    /// The node that serves `key`'s slot (`None` for an external
    /// `REDIS_CLUSTER_URLS` cluster), to freeze or kill one shard.
    ///
    /// ```no_run
    /// let cluster = distkit_testkit::RedisCluster::start();
    /// let node = cluster.owner_of("{app}values").unwrap();
    /// node.freeze();
    /// node.thaw();
    /// ```
    pub fn owner_of(&self, key: &str) -> Option<&RedisServer> {
        let slot = i64::from(self.key_slot(key));
        let mut conn = self.nodes.first()?.blocking_connection();
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("distkit-testkit: CLUSTER SLOTS failed: {e}"));
        let port = ranges.iter().find_map(|range| match range {
            redis::Value::Array(fields) => match fields.as_slice() {
                [
                    redis::Value::Int(start),
                    redis::Value::Int(end),
                    redis::Value::Array(master),
                    ..,
                ] if (*start..=*end).contains(&slot) => match master.get(1) {
                    Some(redis::Value::Int(port)) => Some(*port),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })?;
        self.nodes.iter().find(|n| i64::from(n.port()) == port)
    }

    /// The hash slot of `key`, as the cluster computes it.
    pub fn key_slot(&self, key: &str) -> u16 {
        let url = self
            .urls
            .first()
            .unwrap_or_else(|| panic!("distkit-testkit: cluster without nodes"));
        let mut conn = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot connect to {url}: {e}"));
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("distkit-testkit: CLUSTER KEYSLOT failed: {e}"))
    }
}
