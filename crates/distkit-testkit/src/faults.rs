//! Fault rounds: run a concurrent workload while the Redis under it is cut
//! off, paused and restarted, round after round; then check what the
//! workload recorded.
//!
//! A round on a single node (behind a [`FaultProxy`], `appendonly yes` with
//! `appendfsync always`, so acknowledged writes survive a restart):
//!
//! 1. steady traffic;
//! 2. **cut** every connection;
//! 3. **pause** all traffic for [`FaultPlan::pause`] (set it longer than
//!    the lock TTL under test);
//! 4. **restart** Redis (SIGKILL, start again on the same port and data);
//! 5. let the clients **recover**.
//!
//! A round on a cluster (no proxy can cover a cluster, nodes advertise their
//! own ports): **cut** with `CLIENT KILL TYPE normal` on every node;
//! **freeze** one node (SIGSTOP) for the pause; **kill and restart** another
//! node; wait for `cluster_state:ok`; recover.
//!
//! ```no_run
//! use std::time::Duration;
//! use distkit_testkit::faults::{FaultPlan, FaultTarget};
//! use distkit_testkit::history::*;
//!
//! # #[tokio::main(flavor = "multi_thread")] async fn main() {
//! let target = FaultTarget::single();
//! let history: History<CounterOp, CounterRet> = History::new();
//! let recorder = history.clone();
//! let report = FaultPlan::rounds(10)
//!     .run(&target, 4, move |worker| {
//!         let history = recorder.clone();
//!         async move {
//!             let mut conn = worker.endpoint().connection().await;
//!             while worker.running() {
//!                 let pending = history.invoke(worker.index() as u64, CounterOp::new("k", CounterCall::Inc(1)));
//!                 let reply: redis::RedisResult<i64> =
//!                     redis::cmd("INCRBY").arg("k").arg(1).query_async(&mut conn).await;
//!                 pending.finish(reply.map(CounterRet::Value));
//!             }
//!         }
//!     })
//!     .await;
//! check_linearizable(&CounterModel, &history.operations(), CheckOptions::default())
//!     .assert_linearizable();
//! println!("{report}");
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{FaultProxy, RedisCluster, RedisServer, ServerOptions};

/// A Redis to inject faults into: a single node behind a proxy, or a
/// 3-master cluster; both with `appendonly yes`.
#[derive(Debug)]
pub struct FaultTarget {
    kind: TargetKind,
}

#[derive(Debug)]
enum TargetKind {
    Single {
        server: Arc<RedisServer>,
        proxy: FaultProxy,
    },
    Cluster {
        cluster: Arc<RedisCluster>,
    },
}

/// Where workers connect: cloneable and `Send`, handed to every worker.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A single node (the proxy's URL).
    Single(String),
    /// Cluster seed URLs.
    Cluster(Vec<String>),
}

/// A connection for a worker: a `ConnectionManager` or a cluster
/// connection, both reconnecting on their own after faults.
#[derive(Clone)]
pub enum WorkerConnection {
    /// To a single node.
    Single(redis::aio::ConnectionManager),
    /// To a cluster.
    Cluster(redis::cluster_async::ClusterConnection),
}

impl fmt::Debug for WorkerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerConnection::Single(_) => f.write_str("WorkerConnection::Single"),
            WorkerConnection::Cluster(_) => f.write_str("WorkerConnection::Cluster"),
        }
    }
}

impl redis::aio::ConnectionLike for WorkerConnection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            WorkerConnection::Single(c) => c.req_packed_command(cmd),
            WorkerConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            WorkerConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            WorkerConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            WorkerConnection::Single(c) => c.get_db(),
            WorkerConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// Per-request timeout of [`Endpoint::connection`]: short, so requests
/// stuck behind a pause fail (with an unknown outcome) instead of waiting.
pub const WORKER_RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

impl Endpoint {
    /// A new connection with [`WORKER_RESPONSE_TIMEOUT`]; retries until it
    /// connects (the target may be in the middle of a fault).
    ///
    /// Cluster connections are built with `retries(0)`: by default the
    /// redis-rs cluster client resends a request whose connection dropped,
    /// which applies a non-idempotent command (`INCRBY`, an increment
    /// script) twice when the first copy had already run. The fault rounds
    /// catch that as a linearizability violation.
    pub async fn connection(&self) -> WorkerConnection {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = match self {
                Endpoint::Single(url) => {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_response_timeout(Some(WORKER_RESPONSE_TIMEOUT))
                        .set_connection_timeout(Some(WORKER_RESPONSE_TIMEOUT));
                    match redis::Client::open(url.as_str()) {
                        Ok(client) => client
                            .get_connection_manager_with_config(config)
                            .await
                            .map(WorkerConnection::Single),
                        Err(e) => Err(e),
                    }
                }
                Endpoint::Cluster(urls) => {
                    match redis::cluster::ClusterClient::builder(urls.clone())
                        .response_timeout(WORKER_RESPONSE_TIMEOUT)
                        .connection_timeout(WORKER_RESPONSE_TIMEOUT)
                        // redis-rs retries a request whose connection dropped,
                        // even after the server ran it: an INCRBY applied
                        // twice. Workers must see such errors as unknown.
                        .retries(0)
                        .build()
                    {
                        Ok(client) => client
                            .get_async_connection()
                            .await
                            .map(WorkerConnection::Cluster),
                        Err(e) => Err(e),
                    }
                }
            };
            match attempt {
                Ok(conn) => return conn,
                Err(e) if Instant::now() > deadline => {
                    panic!("distkit-testkit: cannot connect to {self:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Endpoint::Cluster(_))
    }
}

impl FaultTarget {
    /// A dedicated single node with `appendonly yes`, behind a [`FaultProxy`].
    pub fn single() -> Self {
        let server = RedisServer::start_with(ServerOptions::default().appendonly(true));
        let proxy = FaultProxy::start(server.port());
        Self {
            kind: TargetKind::Single {
                server: Arc::new(server),
                proxy,
            },
        }
    }

    /// A dedicated 3-master cluster whose nodes run `appendonly yes`.
    pub fn cluster() -> Self {
        let cluster = RedisCluster::start_with(ServerOptions::default().appendonly(true));
        Self {
            kind: TargetKind::Cluster {
                cluster: Arc::new(cluster),
            },
        }
    }

    /// Where workers connect.
    pub fn endpoint(&self) -> Endpoint {
        match &self.kind {
            TargetKind::Single { proxy, .. } => Endpoint::Single(proxy.url()),
            TargetKind::Cluster { cluster } => Endpoint::Cluster(cluster.urls()),
        }
    }

    /// The server (single node) or `None` (cluster).
    pub fn server(&self) -> Option<&RedisServer> {
        match &self.kind {
            TargetKind::Single { server, .. } => Some(server),
            TargetKind::Cluster { .. } => None,
        }
    }

    /// The proxy (single node) or `None` (cluster).
    pub fn proxy(&self) -> Option<&FaultProxy> {
        match &self.kind {
            TargetKind::Single { proxy, .. } => Some(proxy),
            TargetKind::Cluster { .. } => None,
        }
    }

    /// The cluster, or `None` (single node).
    pub fn cluster_nodes(&self) -> Option<&RedisCluster> {
        match &self.kind {
            TargetKind::Cluster { cluster } => Some(cluster),
            TargetKind::Single { .. } => None,
        }
    }

    /// Runs one round of faults; returns how many faults it injected.
    async fn round(&self, plan: &FaultPlan, round: usize) -> u64 {
        let half = plan.steady / 2;
        match &self.kind {
            TargetKind::Single { server, proxy } => {
                proxy.cut();
                tokio::time::sleep(half).await;
                proxy.pause();
                tokio::time::sleep(plan.pause).await;
                proxy.resume();
                tokio::time::sleep(half).await;
                let server = server.clone();
                join_blocking(move || server.restart()).await;
                3
            }
            TargetKind::Cluster { cluster } => {
                let nodes = cluster.nodes().len().max(1);
                let handle = cluster.clone();
                join_blocking(move || kill_clients(&handle)).await;
                tokio::time::sleep(half).await;
                let frozen = round % nodes;
                if let Some(node) = cluster.nodes().get(frozen) {
                    node.freeze();
                    tokio::time::sleep(plan.pause).await;
                    node.thaw();
                }
                let handle = cluster.clone();
                join_blocking(move || wait_cluster_ok(&handle)).await;
                tokio::time::sleep(half).await;
                let restarted = (round + 1) % nodes;
                let handle = cluster.clone();
                join_blocking(move || {
                    if let Some(node) = handle.nodes().get(restarted) {
                        node.restart();
                    }
                    wait_cluster_ok(&handle);
                })
                .await;
                3
            }
        }
    }
}

async fn join_blocking(work: impl FnOnce() + Send + 'static) {
    if let Err(e) = tokio::task::spawn_blocking(work).await {
        panic!("distkit-testkit: fault injection failed: {e}");
    }
}

fn kill_clients(cluster: &RedisCluster) {
    for node in cluster.nodes() {
        let mut conn = node.blocking_connection();
        let _: redis::RedisResult<redis::Value> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .query(&mut conn);
    }
}

fn wait_cluster_ok(cluster: &RedisCluster) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = cluster.nodes().iter().all(|node| {
            node.client()
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                .is_ok_and(|info| info.contains("cluster_state:ok"))
        });
        if ok {
            return;
        }
        if Instant::now() > deadline {
            panic!("distkit-testkit: the cluster did not recover cluster_state:ok in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a worker gets: its index, where to connect, and when to stop.
#[derive(Debug, Clone)]
pub struct Worker {
    index: usize,
    endpoint: Endpoint,
    stop: Arc<AtomicBool>,
}

impl Worker {
    /// 0..workers; use it as the history's process id.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether the rounds are still going; loop on it.
    pub fn running(&self) -> bool {
        !self.stop.load(Ordering::Acquire)
    }
}

/// How many rounds (or how long), and the timing of one round.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    /// Rounds to run (`None`: as many as fit in `duration`).
    pub rounds: Option<usize>,
    /// Keep starting rounds until this much time has passed.
    pub duration: Option<Duration>,
    /// Fault-free traffic before the first round and between faults.
    pub steady: Duration,
    /// How long traffic is paused (or a cluster node frozen) each round;
    /// make it longer than the lock TTL under test.
    pub pause: Duration,
    /// Fault-free time after the restart, for clients to reconnect.
    pub recovery: Duration,
}

impl FaultPlan {
    /// `rounds` rounds with CI-sized timings (steady 300 ms, pause 1 s,
    /// recovery 300 ms).
    pub fn rounds(rounds: usize) -> Self {
        Self {
            rounds: Some(rounds),
            duration: None,
            steady: Duration::from_millis(300),
            pause: Duration::from_secs(1),
            recovery: Duration::from_millis(300),
        }
    }

    /// As many rounds as start within `duration`.
    pub fn for_duration(duration: Duration) -> Self {
        Self {
            rounds: None,
            duration: Some(duration),
            ..Self::rounds(0)
        }
    }

    /// Sets the pause (or freeze) length.
    pub fn pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Sets the fault-free traffic time.
    pub fn steady(mut self, steady: Duration) -> Self {
        self.steady = steady;
        self
    }

    /// Runs `workers` copies of `workload` against `target` while the
    /// rounds go on; each copy must return soon after
    /// [`Worker::running`] turns false. Returns when every copy has.
    pub async fn run<W, F>(&self, target: &FaultTarget, workers: usize, workload: W) -> FaultReport
    where
        W: Fn(Worker) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let endpoint = target.endpoint();
        let mut tasks = Vec::with_capacity(workers);
        for index in 0..workers {
            tasks.push(tokio::spawn(workload(Worker {
                index,
                endpoint: endpoint.clone(),
                stop: stop.clone(),
            })));
        }
        let faults = AtomicU64::new(0);
        let mut rounds = 0usize;
        tokio::time::sleep(self.steady).await;
        loop {
            let more = match (self.rounds, self.duration) {
                (Some(limit), _) => rounds < limit,
                (None, Some(duration)) => started.elapsed() < duration,
                (None, None) => false,
            };
            if !more {
                break;
            }
            faults.fetch_add(target.round(self, rounds).await, Ordering::Relaxed);
            tokio::time::sleep(self.recovery).await;
            rounds += 1;
        }
        tokio::time::sleep(self.steady).await;
        stop.store(true, Ordering::Release);
        for task in tasks {
            if let Err(e) = task.await {
                panic!("distkit-testkit: a workload task failed: {e}");
            }
        }
        FaultReport {
            rounds,
            faults: faults.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        }
    }
}

/// What a run of [`FaultPlan::run`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultReport {
    /// Rounds completed.
    pub rounds: usize,
    /// Faults injected (three per round).
    pub faults: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rounds, {} faults in {:.1} s",
            self.rounds,
            self.faults,
            self.elapsed.as_secs_f64()
        )
    }
}
