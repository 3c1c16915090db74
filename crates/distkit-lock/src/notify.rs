//! Release notifications: how waiters learn at once that a lock was released.
//!
//! A release that can let a waiter in publishes a message on the lock's
//! release channel (`PUBLISH` on a single node, `SPUBLISH` on a cluster, so
//! the message stays on the shard that owns the lock's slot). A write
//! release publishes only while a waiter mark exists: every busy attempt of
//! a waiter marks it for three retry intervals, longer than the waiter waits
//! before its next attempt, and a waiter removes its mark only when it stops
//! waiting (`scripts/lock/README.md` has the
//! argument that no wake-up is lost). One lock object keeps at most one
//! dedicated subscriber connection, opened when its first waiter starts
//! waiting and closed after 5 to 10 s without waiters. Waiters watch a
//! sequence number the subscriber bumps on every message.
//!
//! The subscription is only an accelerator: when no client configuration is
//! known, subscribing fails, or a message is lost, waiters poll at the
//! lock's `retry_interval`, so a missed message costs at most one interval.

use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use distkit_core::{ClientConfig, RedisConnection};
use futures_util::StreamExt;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// A subscriber closes at the first idle check (every `LINGER`) that finds
/// no waiter and none for `LINGER`: 5 to 10 s after the last waiter left.
const LINGER: Duration = Duration::from_secs(5);
/// After a failed subscription, how long waiters poll before subscribing again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Connecting,
    Ready,
}

#[derive(Debug, Default)]
struct Registry {
    waiters: usize,
    running: bool,
    last_failure: Option<Instant>,
    last_waiter_left: Option<Instant>,
}

#[derive(Debug)]
struct Shared {
    channel: String,
    connection: RedisConnection,
    sequence: watch::Sender<u64>,
    phase: watch::Sender<Phase>,
    registry: StdMutex<Registry>,
}

/// The release-notification hub of one lock object.
#[derive(Debug)]
pub(crate) struct Notifier {
    shared: Arc<Shared>,
}

/// One waiter's view of the release notifications; dropping it ends the
/// waiter's interest.
#[derive(Debug)]
pub(crate) struct Subscription {
    shared: Arc<Shared>,
    sequence: watch::Receiver<u64>,
}

impl Notifier {
    pub(crate) fn new(channel: String, connection: RedisConnection) -> Self {
        Self {
            shared: Arc::new(Shared {
                channel,
                connection,
                sequence: watch::channel(0).0,
                phase: watch::channel(Phase::Idle).0,
                registry: StdMutex::new(Registry::default()),
            }),
        }
    }

    /// Registers a waiter, starting the subscriber if needed, and waits (at
    /// most `max_wait`) until the subscription is confirmed or has failed.
    /// A caller that attempts the lock after this returns cannot miss a
    /// release message while the subscription holds.
    pub(crate) async fn subscribe(&self, max_wait: Duration) -> Subscription {
        let start = {
            let mut registry = lock_registry(&self.shared.registry);
            registry.waiters += 1;
            let backing_off = registry
                .last_failure
                .is_some_and(|at| at.elapsed() < FAILURE_BACKOFF);
            let start = !registry.running
                && !backing_off
                && self.shared.connection.client().is_some()
                && tokio::runtime::Handle::try_current().is_ok();
            if start {
                registry.running = true;
                self.shared.phase.send_replace(Phase::Connecting);
            }
            start
        };
        if start {
            tokio::spawn(run_subscriber(Arc::downgrade(&self.shared)));
        }
        let subscription = Subscription {
            shared: self.shared.clone(),
            sequence: self.shared.sequence.subscribe(),
        };
        let mut phase = self.shared.phase.subscribe();
        let _ = tokio::time::timeout(max_wait, phase.wait_for(|p| *p != Phase::Connecting)).await;
        subscription
    }
}

impl Subscription {
    /// Marks every notification so far as seen; call before an attempt.
    pub(crate) fn mark_seen(&mut self) {
        self.sequence.borrow_and_update();
    }

    /// Waits until a notification arrives after the last `mark_seen`, or
    /// `max_wait` passes.
    pub(crate) async fn wait(&mut self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.sequence.changed()).await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut registry = lock_registry(&self.shared.registry);
        registry.waiters = registry.waiters.saturating_sub(1);
        registry.last_waiter_left = Some(Instant::now());
    }
}

fn lock_registry(registry: &StdMutex<Registry>) -> std::sync::MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

enum MessageSource {
    Single(redis::aio::PubSubStream),
    Cluster {
        // Kept alive for the subscription; messages arrive on `receiver`.
        _connection: redis::cluster_async::ClusterConnection,
        receiver: mpsc::UnboundedReceiver<PushInfo>,
    },
}

impl MessageSource {
    /// The next message on the channel; `None` when the subscription ended.
    async fn next(&mut self) -> Option<()> {
        match self {
            MessageSource::Single(stream) => stream.next().await.map(|_| ()),
            MessageSource::Cluster { receiver, .. } => loop {
                let push = receiver.recv().await?;
                match push.kind {
                    PushKind::SMessage | PushKind::Message => return Some(()),
                    PushKind::SUnsubscribe | PushKind::Disconnection => return None,
                    _ => continue,
                }
            },
        }
    }
}

async fn run_subscriber(weak: Weak<Shared>) {
    let Some(shared) = weak.upgrade() else { return };
    let source = connect(&shared).await;
    let mut source = match source {
        Ok(source) => source,
        Err(error) => {
            tracing::debug!(channel = %shared.channel, %error, "distkit lock: subscribe failed; polling");
            finish(&shared, true);
            return;
        }
    };
    shared.phase.send_replace(Phase::Ready);
    drop(shared);
    // Checked on a fixed period, so a busy channel cannot keep an unused
    // subscriber open.
    let mut idle_check = tokio::time::interval_at(Instant::now() + LINGER, LINGER);
    loop {
        tokio::select! {
            message = source.next() => {
                let Some(shared) = weak.upgrade() else { return };
                match message {
                    Some(()) => {
                        shared.sequence.send_modify(|n| *n = n.wrapping_add(1));
                    }
                    None => {
                        // Wake waiters so they retry (and resubscribe) at once.
                        finish(&shared, false);
                        shared.sequence.send_modify(|n| *n = n.wrapping_add(1));
                        return;
                    }
                }
            }
            _ = idle_check.tick() => {
                let Some(shared) = weak.upgrade() else { return };
                let mut registry = lock_registry(&shared.registry);
                let idle = registry.waiters == 0
                    && registry.last_waiter_left.is_none_or(|at| at.elapsed() >= LINGER);
                if idle {
                    registry.running = false;
                    shared.phase.send_replace(Phase::Idle);
                    return;
                }
            }
        }
    }
}

fn finish(shared: &Shared, failed: bool) {
    let mut registry = lock_registry(&shared.registry);
    registry.running = false;
    if failed {
        registry.last_failure = Some(Instant::now());
    }
    shared.phase.send_replace(Phase::Idle);
}

async fn connect(shared: &Shared) -> redis::RedisResult<MessageSource> {
    match shared.connection.client() {
        Some(ClientConfig::Single(client)) => {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channel).await?;
            Ok(MessageSource::Single(pubsub.into_on_message()))
        }
        Some(ClientConfig::Cluster(client)) => connect_cluster(shared, client).await,
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "no client configuration to open a subscriber connection",
        ))),
    }
}

/// Sharded subscription on a cluster. Sharded pub/sub through redis-rs needs
/// RESP3: the user's own cluster client is tried first (it keeps their
/// credentials and TLS settings); when it speaks RESP2, a RESP3 client to the
/// cluster's master nodes (found with `CLUSTER SLOTS`) is used instead.
async fn connect_cluster(
    shared: &Shared,
    client: &redis::cluster::ClusterClient,
) -> redis::RedisResult<MessageSource> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let config = redis::cluster::ClusterConfig::new().set_push_sender(sender);
    let mut connection = client.get_async_connection_with_config(config).await?;
    if connection.ssubscribe(&shared.channel).await.is_ok() {
        return Ok(MessageSource::Cluster {
            _connection: connection,
            receiver,
        });
    }
    let urls = master_urls(&shared.connection).await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let resp3 = redis::cluster::ClusterClientBuilder::new(urls)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(sender)
        .build()?;
    let mut connection = resp3.get_async_connection().await?;
    connection.ssubscribe(&shared.channel).await?;
    Ok(MessageSource::Cluster {
        _connection: connection,
        receiver,
    })
}

async fn master_urls(connection: &RedisConnection) -> redis::RedisResult<Vec<String>> {
    let mut connection = connection.clone();
    let slots: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut connection)
        .await?;
    let mut urls = Vec::new();
    if let Value::Array(ranges) = slots {
        for range in ranges {
            let Value::Array(fields) = range else {
                continue;
            };
            let Some(Value::Array(master)) = fields.get(2) else {
                continue;
            };
            let host = match master.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Some(Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = master.get(1) else {
                continue;
            };
            let url = format!("redis://{host}:{port}/");
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    if urls.is_empty() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "CLUSTER SLOTS named no master",
        )));
    }
    Ok(urls)
}
