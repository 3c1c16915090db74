//! What a lock object shares with its guards: keys, scripts, options and the
//! release notifier.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use distkit_core::{KeyLayout, LuaScript, RedisConnection};

use crate::LockOptions;
use crate::notify::Notifier;
use crate::renewal::Renewals;

/// How long the fence key outlives the last acquisition. Monotonicity does
/// not depend on it (tokens are at least the server time in microseconds);
/// it only keeps tokens strictly increasing when several acquisitions fall
/// within one microsecond or the server clock steps back a little.
pub(crate) const FENCE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

pub(crate) static ACQUIRE_WRITE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock/acquire_write",
        include_str!("../scripts/acquire_write.lua"),
    )
});
pub(crate) static ACQUIRE_READ: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock/acquire_read",
        include_str!("../scripts/acquire_read.lua"),
    )
});
pub(crate) static RELEASE_WRITE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock/release_write",
        include_str!("../scripts/release_write.lua"),
    )
});
pub(crate) static RELEASE_READ: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock/release_read",
        include_str!("../scripts/release_read.lua"),
    )
});
pub(crate) static RENEW_WRITE: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock/renew_write",
        include_str!("../scripts/renew_write.lua"),
    )
});
pub(crate) static RENEW_READ: LazyLock<LuaScript> =
    LazyLock::new(|| LuaScript::new("lock/renew_read", include_str!("../scripts/renew_read.lua")));
pub(crate) static CANCEL_WAIT: LazyLock<LuaScript> = LazyLock::new(|| {
    LuaScript::new(
        "lock/cancel_wait",
        include_str!("../scripts/cancel_wait.lua"),
    )
});

/// The Redis keys of one lock (all share the hash tag `{key}`).
#[derive(Debug)]
pub(crate) struct Keys {
    pub(crate) owner: String,
    pub(crate) readers: String,
    pub(crate) pending: String,
    pub(crate) fence: String,
    /// The callers that wait (zset token -> mark expiry): write releases
    /// publish only while one exists.
    pub(crate) waiters: String,
    pub(crate) channel: String,
}

impl Keys {
    pub(crate) fn new(options: &LockOptions) -> Self {
        let segments: Vec<&distkit_core::DistkitRedisKey> = options.namespace.iter().collect();
        let layout = KeyLayout::with_segments("lock", &segments, &options.key);
        Self {
            owner: layout.key(&["owner"]),
            readers: layout.key(&["readers"]),
            pending: layout.key(&["pending"]),
            fence: layout.key(&["fence"]),
            waiters: layout.key(&["waiters"]),
            channel: layout.key(&["released"]),
        }
    }
}

/// State shared by a lock object and every guard it handed out.
#[derive(Debug)]
pub(crate) struct LockCore {
    pub(crate) options: LockOptions,
    pub(crate) keys: Keys,
    /// `PUBLISH` on a single node, `SPUBLISH` (shard channel) on a cluster.
    pub(crate) publish: &'static str,
    pub(crate) notifier: Notifier,
    /// Leases not yet old enough for a renewal task, and their scheduler.
    pub(crate) renewals: Renewals,
}

impl LockCore {
    pub(crate) fn new(options: LockOptions) -> Self {
        let keys = Keys::new(&options);
        let publish = if options.connection.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let notifier = Notifier::new(keys.channel.clone(), options.connection.clone());
        Self {
            options,
            keys,
            publish,
            notifier,
            renewals: Renewals::default(),
        }
    }

    pub(crate) fn connection(&self) -> RedisConnection {
        self.options.connection.clone()
    }

    pub(crate) fn key_name(&self) -> String {
        self.options.key.as_str().to_owned()
    }

    /// A fresh owner token: `<owner_id>:<128 random bits in hex>`. Unique per
    /// acquisition, so two guards of one lock object never share an identity.
    pub(crate) fn new_token(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = (count, std::process::id(), nanos);
        let high = RandomState::new().hash_one(seed);
        let low = RandomState::new().hash_one((seed, high));
        format!("{}:{high:016x}{low:016x}", self.options.owner_id)
    }
}

pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}
