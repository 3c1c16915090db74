//! The locks against a real Redis: single node and 3-master cluster.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use distkit_lock::{
    DistkitRedisKey, LockError, LockGuardState, LockOptions, Mutex, RedisConnection, RwLock,
};
use distkit_testkit::{FaultProxy, shared_cluster, shared_server, unique_prefix};

#[derive(Clone, Copy, Debug)]
enum Mode {
    Single,
    Cluster,
}

/// A new handle with its own connection and client configuration (so it can
/// subscribe to release notifications).
async fn connect(mode: Mode) -> RedisConnection {
    match mode {
        Mode::Single => RedisConnection::open(&shared_server().url()).await.unwrap(),
        Mode::Cluster => {
            let urls = shared_cluster().urls();
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            RedisConnection::open_cluster(&urls).await.unwrap()
        }
    }
}

fn new_key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(unique_prefix(name)).unwrap()
}

fn options(key: &DistkitRedisKey, conn: RedisConnection) -> distkit_lock::LockOptionsBuilder {
    LockOptions::builder(key.clone(), conn)
}

/// Runs `$body(mode)` as two tests: single node and cluster.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn single_node() {
                super::$name(super::Mode::Single).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name(super::Mode::Cluster).await;
            }
        }
    };
}

/// Checks that the critical sections recorded as (enter, exit) never overlap.
struct Exclusion {
    holders: AtomicUsize,
    violated: AtomicBool,
}

impl Exclusion {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            holders: AtomicUsize::new(0),
            violated: AtomicBool::new(false),
        })
    }
    fn enter(&self) {
        if self.holders.fetch_add(1, Ordering::SeqCst) != 0 {
            self.violated.store(true, Ordering::SeqCst);
        }
    }
    fn exit(&self) {
        self.holders.fetch_sub(1, Ordering::SeqCst);
    }
}

both!(handles_on_separate_connections_exclude_each_other);
async fn handles_on_separate_connections_exclude_each_other(mode: Mode) {
    let key = new_key("mutex_handles");
    let exclusion = Exclusion::new();
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mutex = Mutex::new(options(&key, connect(mode).await).build().unwrap());
        let exclusion = exclusion.clone();
        let tokens = tokens.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                let guard = mutex.lock().await.unwrap();
                exclusion.enter();
                tokens.lock().unwrap().push(guard.fencing_token());
                tokio::task::yield_now().await;
                exclusion.exit();
                assert_eq!(guard.release().await.unwrap(), LockGuardState::Released);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        !exclusion.violated.load(Ordering::SeqCst),
        "two holders at once"
    );
    let tokens = tokens.lock().unwrap();
    assert_eq!(tokens.len(), 400);
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens not increasing"
    );
}

both!(tasks_sharing_one_mutex_exclude_each_other);
async fn tasks_sharing_one_mutex_exclude_each_other(mode: Mode) {
    let mutex = Mutex::new(
        options(&new_key("mutex_shared"), connect(mode).await)
            .build()
            .unwrap(),
    );
    let exclusion = Exclusion::new();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mutex = mutex.clone();
        let exclusion = exclusion.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let guard = mutex.lock().await.unwrap();
                exclusion.enter();
                tokio::task::yield_now().await;
                exclusion.exit();
                guard.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        !exclusion.violated.load(Ordering::SeqCst),
        "two holders at once"
    );
}

both!(tasks_sharing_one_rwlock_writers_exclude_each_other_and_readers);
async fn tasks_sharing_one_rwlock_writers_exclude_each_other_and_readers(mode: Mode) {
    let lock = RwLock::new(
        options(&new_key("rw_shared"), connect(mode).await)
            .build()
            .unwrap(),
    );
    let writers = Exclusion::new();
    let readers = Arc::new(AtomicUsize::new(0));
    let overlap = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let lock = lock.clone();
        let writers = writers.clone();
        let readers = readers.clone();
        let overlap = overlap.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                if i % 2 == 0 {
                    let guard = lock.write().await.unwrap();
                    writers.enter();
                    if readers.load(Ordering::SeqCst) != 0 {
                        overlap.store(true, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                    writers.exit();
                    guard.release().await.unwrap();
                } else {
                    let guard = lock.read().await.unwrap();
                    readers.fetch_add(1, Ordering::SeqCst);
                    if writers.holders.load(Ordering::SeqCst) != 0 {
                        overlap.store(true, Ordering::SeqCst);
                    }
                    tokio::task::yield_now().await;
                    readers.fetch_sub(1, Ordering::SeqCst);
                    guard.release().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        !writers.violated.load(Ordering::SeqCst),
        "two writers at once"
    );
    assert!(
        !overlap.load(Ordering::SeqCst),
        "a reader and a writer at once"
    );
}

both!(every_guard_has_its_own_owner_token);
async fn every_guard_has_its_own_owner_token(mode: Mode) {
    let lock = RwLock::new(
        options(&new_key("tokens"), connect(mode).await)
            .build()
            .unwrap(),
    );
    let a = lock.read().await.unwrap();
    let b = lock.read().await.unwrap();
    assert_ne!(a.owner_token(), b.owner_token());
    assert!(b.fencing_token() > a.fencing_token());
    assert_eq!(a.release().await.unwrap(), LockGuardState::Released);
    // Releasing one reader leaves the other's lease alone.
    assert_eq!(b.state(), LockGuardState::Acquired);
    b.renew().await.unwrap();
    assert_eq!(b.release().await.unwrap(), LockGuardState::Released);
}

both!(try_lock_on_a_held_lock_would_block);
async fn try_lock_on_a_held_lock_would_block(mode: Mode) {
    let key = new_key("would_block");
    let mutex = Mutex::new(options(&key, connect(mode).await).build().unwrap());
    let other = Mutex::new(options(&key, connect(mode).await).build().unwrap());
    let guard = mutex.try_lock().await.unwrap();
    assert_eq!(guard.acquired_on_attempt(), 1);
    let error = other.try_lock().await.unwrap_err();
    assert!(matches!(error, LockError::WouldBlock { .. }), "{error:?}");
    // The same object is no exception: identity belongs to the acquisition.
    assert!(matches!(
        mutex.try_lock().await,
        Err(LockError::WouldBlock { .. })
    ));
    guard.release().await.unwrap();
    other.try_lock().await.unwrap().release().await.unwrap();
}

both!(waiting_is_bounded_by_timeout_retries_and_max_wait);
async fn waiting_is_bounded_by_timeout_retries_and_max_wait(mode: Mode) {
    let key = new_key("bounded");
    let holder = Mutex::new(options(&key, connect(mode).await).build().unwrap());
    let guard = holder.lock().await.unwrap();
    let waiter = Mutex::new(
        options(&key, connect(mode).await)
            .retry_interval(Duration::from_millis(20))
            .max_wait(Duration::from_millis(120))
            .build()
            .unwrap(),
    );

    match waiter
        .try_lock_with_timeout(Duration::from_millis(100))
        .await
    {
        Err(LockError::Timeout { waited, key: k }) => {
            assert!(waited >= Duration::from_millis(100), "{waited:?}");
            assert_eq!(k, key.as_str());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    match waiter.try_lock_with_retries(3).await {
        Err(LockError::RetriesExhausted { attempts, .. }) => assert_eq!(attempts, 4),
        other => panic!("expected retries exhausted, got {other:?}"),
    }
    match waiter.lock().await {
        Err(LockError::Timeout { waited, .. }) => assert!(waited >= Duration::from_millis(120)),
        other => panic!("expected max_wait to time out, got {other:?}"),
    }
    let rw = RwLock::new(
        options(&new_key("bounded_rw"), connect(mode).await)
            .retry_interval(Duration::from_millis(20))
            .build()
            .unwrap(),
    );
    let writer = rw.write().await.unwrap();
    assert!(matches!(
        rw.try_read().await,
        Err(LockError::WouldBlock { .. })
    ));
    assert!(matches!(
        rw.try_read_with_timeout(Duration::from_millis(50)).await,
        Err(LockError::Timeout { .. })
    ));
    assert!(matches!(
        rw.try_write_with_retries(1).await,
        Err(LockError::RetriesExhausted { attempts: 2, .. })
    ));
    writer.release().await.unwrap();
    guard.release().await.unwrap();
    // A wait that succeeds reports the attempt it succeeded on.
    let guard = holder.lock().await.unwrap();
    let waiting = tokio::spawn({
        let waiter = waiter.clone();
        async move { waiter.try_lock_with_timeout(Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    guard.release().await.unwrap();
    let acquired = waiting.await.unwrap().unwrap();
    assert!(acquired.acquired_on_attempt() >= 2);
}

#[tokio::test]
async fn invalid_options_are_typed_errors() {
    let conn: RedisConnection = shared_server().connection_manager().await.into();
    let key = new_key("invalid");
    let ttl = |d| options(&key, conn.clone()).ttl(d).build().unwrap_err();
    assert!(matches!(ttl(Duration::ZERO), LockError::InvalidTtl { .. }));
    assert!(matches!(
        ttl(Duration::from_millis(29)),
        LockError::InvalidTtl { .. }
    ));
    assert!(matches!(
        ttl(Duration::from_secs(90_000)),
        LockError::InvalidTtl { .. }
    ));
    for owner in ["", "two words", "tab\there", &"x".repeat(129)] {
        let error = options(&key, conn.clone())
            .owner_id(owner)
            .build()
            .unwrap_err();
        assert!(
            matches!(error, LockError::InvalidOwner { .. }),
            "{owner:?}: {error:?}"
        );
    }
    let error = options(&key, conn.clone())
        .retry_interval(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(error, LockError::InvalidRetryInterval { .. }));
    let wide: distkit_lock::DistkitError = ttl(Duration::ZERO).into();
    assert!(wide.to_string().contains("invalid lock ttl"));
}

both!(a_guard_whose_lease_was_taken_can_neither_renew_nor_release_it);
async fn a_guard_whose_lease_was_taken_can_neither_renew_nor_release_it(mode: Mode) {
    let key = new_key("taken");
    let conn = connect(mode).await;
    let mutex = Mutex::new(options(&key, conn.clone()).build().unwrap());
    let stale = mutex.lock().await.unwrap();
    // The lease vanishes (expiry, eviction, a failover that lost it).
    let owner_key = format!("distkit:lock:{{{}}}:owner", key.as_str());
    let mut raw = conn.clone();
    let _: () = redis::cmd("DEL")
        .arg(&owner_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    let current = mutex.lock().await.unwrap();
    assert!(current.fencing_token() > stale.fencing_token());
    assert!(matches!(
        stale.renew().await,
        Err(LockError::NotOwner { .. })
    ));
    assert_eq!(stale.state(), LockGuardState::Lost);
    tokio::time::timeout(Duration::from_secs(1), stale.lost())
        .await
        .unwrap();
    assert_eq!(stale.release().await.unwrap(), LockGuardState::Lost);
    // The later holder is untouched.
    assert_eq!(current.state(), LockGuardState::Acquired);
    assert!(matches!(
        mutex.try_lock().await,
        Err(LockError::WouldBlock { .. })
    ));
    assert_eq!(current.release().await.unwrap(), LockGuardState::Released);
}

both!(renewal_that_finds_another_owner_turns_the_guard_lost);
async fn renewal_that_finds_another_owner_turns_the_guard_lost(mode: Mode) {
    let key = new_key("renew_lost");
    let conn = connect(mode).await;
    let lock = RwLock::new(
        options(&key, conn.clone())
            .ttl(Duration::from_millis(300))
            .build()
            .unwrap(),
    );
    let writer = lock.write().await.unwrap();
    let mut raw = conn.clone();
    let owner_key = format!("distkit:lock:{{{}}}:owner", key.as_str());
    let _: () = redis::cmd("SET")
        .arg(&owner_key)
        .arg("someone-else")
        .query_async(&mut raw)
        .await
        .unwrap();
    // The background renewal (every ttl/3) notices.
    tokio::time::timeout(Duration::from_secs(2), writer.lost())
        .await
        .unwrap();
    assert_eq!(writer.state(), LockGuardState::Lost);
    assert_eq!(writer.release().await.unwrap(), LockGuardState::Lost);
    let still: String = redis::cmd("GET")
        .arg(&owner_key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(still, "someone-else");
}

both!(leases_are_renewed_while_the_guard_lives);
async fn leases_are_renewed_while_the_guard_lives(mode: Mode) {
    let key = new_key("renewed");
    let ttl = Duration::from_millis(300);
    let lock = RwLock::new(options(&key, connect(mode).await).ttl(ttl).build().unwrap());
    let reader = lock.read().await.unwrap();
    let mutex = Mutex::new(
        options(&new_key("renewed_m"), connect(mode).await)
            .ttl(ttl)
            .build()
            .unwrap(),
    );
    let guard = mutex.lock().await.unwrap();
    tokio::time::sleep(ttl * 4).await;
    assert_eq!(reader.state(), LockGuardState::Acquired);
    assert_eq!(guard.state(), LockGuardState::Acquired);
    assert!(matches!(
        lock.try_write().await,
        Err(LockError::WouldBlock { .. })
    ));
    assert!(matches!(
        mutex.try_lock().await,
        Err(LockError::WouldBlock { .. })
    ));
    assert_eq!(reader.release().await.unwrap(), LockGuardState::Released);
    assert_eq!(guard.release().await.unwrap(), LockGuardState::Released);
}

both!(renewal_starts_for_leases_taken_while_the_scheduler_sleeps_or_after_it_ended);
async fn renewal_starts_for_leases_taken_while_the_scheduler_sleeps_or_after_it_ended(mode: Mode) {
    // Renewal tasks are spawned by one scheduler per lock object when a
    // lease's first renewal falls due; the scheduler ends after a few idle
    // periods and is started again by the next acquisition.
    let ttl = Duration::from_millis(300);
    let lock = RwLock::new(
        options(&new_key("scheduler"), connect(mode).await)
            .ttl(ttl)
            .build()
            .unwrap(),
    );
    for _ in 0..20 {
        let guard = lock.read().await.unwrap();
        assert_eq!(guard.release().await.unwrap(), LockGuardState::Released);
    }
    // Long enough for the scheduler to end.
    tokio::time::sleep(ttl * 3).await;
    let first = lock.read().await.unwrap();
    tokio::time::sleep(ttl / 6).await;
    let second = lock.read().await.unwrap(); // while the scheduler sleeps
    tokio::time::sleep(ttl * 4).await;
    assert_eq!(first.state(), LockGuardState::Acquired);
    assert_eq!(second.state(), LockGuardState::Acquired);
    assert_eq!(first.release().await.unwrap(), LockGuardState::Released);
    assert_eq!(second.release().await.unwrap(), LockGuardState::Released);
}

both!(fencing_tokens_increase_across_expiry_and_deleted_keys);
async fn fencing_tokens_increase_across_expiry_and_deleted_keys(mode: Mode) {
    let key = new_key("fencing");
    let conn = connect(mode).await;
    let mutex = Mutex::new(options(&key, conn.clone()).build().unwrap());
    let lock = RwLock::new(options(&key, conn.clone()).build().unwrap());
    let mut last = 0;
    for round in 0..3 {
        let guard = mutex.lock().await.unwrap();
        assert!(guard.fencing_token() > last, "round {round}");
        last = guard.fencing_token();
        guard.release().await.unwrap();
        let reader = lock.read().await.unwrap();
        assert!(reader.fencing_token() > last);
        last = reader.fencing_token();
        reader.release().await.unwrap();
        // Every key of the lock disappears, as after ttl expiry or eviction.
        let mut raw = conn.clone();
        for part in ["owner", "readers", "pending", "fence"] {
            let _: () = redis::cmd("DEL")
                .arg(format!("distkit:lock:{{{}}}:{part}", key.as_str()))
                .query_async(&mut raw)
                .await
                .unwrap();
        }
    }
    // Expiry: a short lease that is never released nor renewed.
    let short = Mutex::new(
        options(&key, conn.clone())
            .ttl(Duration::from_millis(60))
            .build()
            .unwrap(),
    );
    let abandoned = short.lock().await.unwrap();
    assert!(abandoned.fencing_token() > last);
    last = abandoned.fencing_token();
    // Outside the runtime's reach no renewal happens: leak the renewal by
    // letting the lease run out on the server while the guard is kept.
    let owner_key = format!("distkit:lock:{{{}}}:owner", key.as_str());
    let mut raw = conn.clone();
    let _: () = redis::cmd("PEXPIRE")
        .arg(&owner_key)
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    let next = mutex.lock().await.unwrap();
    assert!(next.fencing_token() > last);
    next.release().await.unwrap();
    assert_eq!(abandoned.release().await.unwrap(), LockGuardState::Lost);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_cut_off_by_the_network_turns_lost_before_another_acquires() {
    let server = shared_server();
    let proxy = FaultProxy::start(server.port());
    let via_proxy = RedisConnection::open(&proxy.url()).await.unwrap();
    let key = new_key("cut_off");
    let ttl = Duration::from_millis(600);
    let holder = Mutex::new(options(&key, via_proxy).ttl(ttl).build().unwrap());
    let guard = Arc::new(holder.lock().await.unwrap());
    let lost_fired = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let guard = guard.clone();
        let lost_fired = lost_fired.clone();
        async move {
            guard.lost().await;
            lost_fired.store(true, Ordering::SeqCst);
        }
    });
    let other = Mutex::new(
        options(&key, RedisConnection::open(&server.url()).await.unwrap())
            .ttl(ttl)
            .retry_interval(Duration::from_millis(10))
            .build()
            .unwrap(),
    );
    proxy.pause();
    let paused_at = Instant::now();
    let taken = other
        .try_lock_with_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    // Redis only gives the lock away after the lease ran out, and by then
    // the cut-off holder already knows it lost it.
    // The last renewal was sent at most ttl/3 before the pause, so the lease
    // ran out no sooner than 2/3 of the ttl after it.
    assert!(
        paused_at.elapsed() >= ttl / 2,
        "taken after {:?}",
        paused_at.elapsed()
    );
    assert_eq!(guard.state(), LockGuardState::Lost);
    tokio::time::timeout(Duration::from_millis(100), watcher)
        .await
        .unwrap()
        .unwrap();
    assert!(lost_fired.load(Ordering::SeqCst));
    assert!(taken.fencing_token() > guard.fencing_token());
    proxy.heal();
    let guard = Arc::into_inner(guard).unwrap();
    assert_eq!(guard.release().await.unwrap(), LockGuardState::Lost);
    assert_eq!(taken.state(), LockGuardState::Acquired);
    assert_eq!(taken.release().await.unwrap(), LockGuardState::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_whose_server_connection_is_refused_turns_lost() {
    let server = shared_server();
    let proxy = FaultProxy::start(server.port());
    let key = new_key("partitioned");
    let ttl = Duration::from_millis(600);
    let holder = Mutex::new(
        options(&key, RedisConnection::open(&proxy.url()).await.unwrap())
            .ttl(ttl)
            .build()
            .unwrap(),
    );
    let guard = holder.lock().await.unwrap();
    proxy.partition();
    tokio::time::timeout(ttl * 2, guard.lost()).await.unwrap();
    assert_eq!(guard.state(), LockGuardState::Lost);
    proxy.heal();
    let other = Mutex::new(
        options(&key, RedisConnection::open(&server.url()).await.unwrap())
            .build()
            .unwrap(),
    );
    let next = other
        .try_lock_with_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(guard.release().await.unwrap(), LockGuardState::Lost);
    next.release().await.unwrap();
}

both!(hand_off_is_driven_by_release_notifications);
async fn hand_off_is_driven_by_release_notifications(mode: Mode) {
    let key = new_key("hand_off");
    // Polling alone would make every hand-off cost up to a second.
    let retry_interval = Duration::from_secs(1);
    let events = Arc::new(std::sync::Mutex::new(Vec::<(Instant, Instant)>::new()));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mutex = Mutex::new(
            options(&key, connect(mode).await)
                .retry_interval(retry_interval)
                .build()
                .unwrap(),
        );
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let guard = mutex.lock().await.unwrap();
                let acquired = Instant::now();
                tokio::time::sleep(Duration::from_millis(2)).await;
                let releasing = Instant::now();
                guard.release().await.unwrap();
                events.lock().unwrap().push((acquired, releasing));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut events = events.lock().unwrap().clone();
    events.sort();
    let gaps: Vec<Duration> = events
        .windows(2)
        .map(|w| w[1].0.saturating_duration_since(w[0].1))
        .collect();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).unwrap();
    let max = gaps.iter().max().unwrap();
    println!(
        "{mode:?}: hand-off gap over {} hand-offs: mean {mean:?}, max {max:?}",
        gaps.len()
    );
    assert!(
        mean < Duration::from_millis(250),
        "mean hand-off gap {mean:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_publish_only_when_someone_waits() {
    use futures_util::StreamExt;
    let key = new_key("publish_when_waited");
    let channel = format!("distkit:lock:{{{}}}:released", key.as_str());
    let client = redis::Client::open(shared_server().url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut messages = pubsub.into_on_message();
    let quiet = Duration::from_millis(200);
    let mutex = Mutex::new(
        options(&key, connect(Mode::Single).await)
            .retry_interval(Duration::from_secs(5))
            .build()
            .unwrap(),
    );

    // Uncontended, and after a failed try_lock (which does not wait): no
    // message.
    for _ in 0..3 {
        mutex.try_lock().await.unwrap().release().await.unwrap();
    }
    let held = mutex.try_lock().await.unwrap();
    assert!(mutex.try_lock().await.is_err());
    held.release().await.unwrap();
    assert!(
        tokio::time::timeout(quiet, messages.next()).await.is_err(),
        "a release nobody waited for published"
    );

    // With a waiter: the release publishes and wakes it long before its
    // 5 s poll.
    let held = mutex.try_lock().await.unwrap();
    let waiter = {
        let mutex = mutex.clone();
        tokio::spawn(async move { mutex.lock().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let released = Instant::now();
    held.release().await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), messages.next())
        .await
        .expect("a release with a waiter publishes")
        .unwrap();
    let guard = waiter.await.unwrap();
    assert!(released.elapsed() < Duration::from_secs(2));
    guard.release().await.unwrap();
}

both!(hand_off_falls_back_to_polling_without_a_client);
async fn hand_off_falls_back_to_polling_without_a_client(mode: Mode) {
    // Built from a bare connection: no client to open a subscriber with.
    let conn: RedisConnection = match mode {
        Mode::Single => shared_server().connection_manager().await.into(),
        Mode::Cluster => shared_cluster().connection().await.into(),
    };
    let key = new_key("polling");
    let mutex = Mutex::new(
        options(&key, conn)
            .retry_interval(Duration::from_millis(20))
            .build()
            .unwrap(),
    );
    let guard = mutex.lock().await.unwrap();
    let waiter = tokio::spawn({
        let mutex = mutex.clone();
        async move { mutex.try_lock_with_timeout(Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    guard.release().await.unwrap();
    let next = waiter.await.unwrap().unwrap();
    assert!(next.acquired_on_attempt() >= 2);
    next.release().await.unwrap();
}

both!(readers_share_and_writers_exclude);
async fn readers_share_and_writers_exclude(mode: Mode) {
    let key = new_key("rw_basic");
    let lock = RwLock::new(options(&key, connect(mode).await).build().unwrap());
    let other = RwLock::new(options(&key, connect(mode).await).build().unwrap());
    let a = lock.try_read().await.unwrap();
    let b = other.try_read().await.unwrap();
    assert!(matches!(
        other.try_write().await,
        Err(LockError::WouldBlock { .. })
    ));
    a.release().await.unwrap();
    assert!(matches!(
        lock.try_write().await,
        Err(LockError::WouldBlock { .. })
    ));
    b.release().await.unwrap();
    let writer = lock.try_write().await.unwrap();
    assert!(matches!(
        other.try_write().await,
        Err(LockError::WouldBlock { .. })
    ));
    assert!(matches!(
        other.try_read().await,
        Err(LockError::WouldBlock { .. })
    ));
    writer.release().await.unwrap();
    other.try_read().await.unwrap().release().await.unwrap();
}

both!(a_waiting_writer_holds_back_new_readers);
async fn a_waiting_writer_holds_back_new_readers(mode: Mode) {
    let key = new_key("preference");
    let lock = RwLock::new(options(&key, connect(mode).await).build().unwrap());
    let other = RwLock::new(options(&key, connect(mode).await).build().unwrap());
    let reader = lock.read().await.unwrap();
    let writer = tokio::spawn({
        let other = other.clone();
        async move { other.write().await }
    });
    // Wait until the writer's pending mark is visible to readers.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match lock.try_read().await {
            Err(LockError::WouldBlock { .. }) => break,
            Ok(extra) => {
                extra.release().await.unwrap();
            }
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "writer never marked itself pending"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A new reader waits behind the writer.
    let late_reader = tokio::spawn({
        let lock = lock.clone();
        async move { lock.read().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!late_reader.is_finished());
    reader.release().await.unwrap();
    let writer = writer.await.unwrap().unwrap();
    assert!(!late_reader.is_finished());
    writer.release().await.unwrap();
    late_reader.await.unwrap().unwrap().release().await.unwrap();
}

both!(a_cancelled_writer_does_not_block_readers);
async fn a_cancelled_writer_does_not_block_readers(mode: Mode) {
    let key = new_key("cancelled_writer");
    let conn = connect(mode).await;
    // Pending marks would live 3 s on their own: only the cancel frees readers sooner.
    let lock = RwLock::new(
        options(&key, conn.clone())
            .retry_interval(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let reader = lock.read().await.unwrap();
    let gave_up = lock
        .try_write_with_timeout(Duration::from_millis(100))
        .await;
    assert!(matches!(gave_up, Err(LockError::Timeout { .. })));
    lock.try_read().await.unwrap().release().await.unwrap();

    let cancelled = tokio::time::timeout(Duration::from_millis(100), lock.write()).await;
    assert!(cancelled.is_err(), "the write cannot have succeeded");
    let pending_key = format!("distkit:lock:{{{}}}:pending", key.as_str());
    let mut raw = conn.clone();
    let started = Instant::now();
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&pending_key)
            .query_async(&mut raw)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "pending mark left behind"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lock.try_read().await.unwrap().release().await.unwrap();
    reader.release().await.unwrap();
    // Nothing else is left in Redis either.
    for part in ["owner", "readers", "pending", "waiters"] {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(format!("distkit:lock:{{{}}}:{part}", key.as_str()))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(exists, 0, "{part} left behind");
    }
}

both!(a_crashed_writer_blocks_readers_only_until_its_mark_expires);
async fn a_crashed_writer_blocks_readers_only_until_its_mark_expires(mode: Mode) {
    let key = new_key("crashed_writer");
    let conn = connect(mode).await;
    let lock = RwLock::new(
        options(&key, conn.clone())
            .retry_interval(Duration::from_millis(20))
            .build()
            .unwrap(),
    );
    // A writer process that died while waiting leaves its mark behind.
    let mut raw = conn.clone();
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut raw).await.unwrap();
    let expiry = seconds * 1000 + micros / 1000 + 300;
    let pending_key = format!("distkit:lock:{{{}}}:pending", key.as_str());
    let _: () = redis::cmd("ZADD")
        .arg(&pending_key)
        .arg(expiry)
        .arg("crashed-writer")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(matches!(
        lock.try_read().await,
        Err(LockError::WouldBlock { .. })
    ));
    let started = Instant::now();
    let reader = lock
        .try_read_with_timeout(Duration::from_secs(3))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    reader.release().await.unwrap();
}

both!(dropping_a_waiting_lock_future_leaves_nothing_behind);
async fn dropping_a_waiting_lock_future_leaves_nothing_behind(mode: Mode) {
    let key = new_key("drop_waiting");
    let conn = connect(mode).await;
    // Marks would live 3 s on their own: only the cancel removes them sooner.
    let mutex = Mutex::new(
        options(&key, conn.clone())
            .retry_interval(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    let guard = mutex.lock().await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(150), mutex.lock()).await;
    assert!(waited.is_err());
    assert_eq!(guard.release().await.unwrap(), LockGuardState::Released);
    let mut raw = conn.clone();
    // The dropped future's marks are removed by a background task.
    let waiters_key = format!("distkit:lock:{{{}}}:waiters", key.as_str());
    wait_until(Duration::from_secs(1), "waiter mark left behind", || {
        let mut raw = raw.clone();
        let waiters_key = waiters_key.clone();
        async move {
            let exists: i64 = redis::cmd("EXISTS")
                .arg(&waiters_key)
                .query_async(&mut raw)
                .await
                .unwrap();
            exists == 0
        }
    })
    .await;
    for part in ["owner", "readers", "pending", "waiters"] {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(format!("distkit:lock:{{{}}}:{part}", key.as_str()))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(exists, 0, "{part} left behind");
    }
}

both!(waiters_leave_no_marks_behind);
async fn waiters_leave_no_marks_behind(mode: Mode) {
    let key = new_key("waiters_marks");
    let conn = connect(mode).await;
    // Marks would live 3 s on their own: only cancels remove them sooner.
    let opts = || {
        options(&key, conn.clone())
            .retry_interval(Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let lock = RwLock::new(opts());
    let mutex = Mutex::new(opts());
    let writer = lock.write().await.unwrap();
    // A reader and a mutex waiter that give up, a writer whose future is
    // dropped, and a reader that waits until it is handed the lock.
    assert!(matches!(
        lock.try_read_with_timeout(Duration::from_millis(60)).await,
        Err(LockError::Timeout { .. })
    ));
    assert!(matches!(
        mutex.try_lock_with_retries(2).await,
        Err(LockError::RetriesExhausted { .. })
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(60), lock.write())
            .await
            .is_err()
    );
    let waiting_reader = tokio::spawn({
        let lock = lock.clone();
        async move { lock.read().await }
    });
    let base = format!("distkit:lock:{{{}}}", key.as_str());
    let mut raw = conn.clone();
    // Only the reader that still waits is marked: the others removed their
    // marks when they stopped waiting (the dropped writer from a background
    // task, which removes its pending mark in the same script).
    wait_until(Duration::from_secs(1), "one waiter mark", || {
        let mut raw = raw.clone();
        let base = base.clone();
        async move {
            let (pending, waiting): (i64, i64) = redis::pipe()
                .cmd("EXISTS")
                .arg(format!("{base}:pending"))
                .cmd("ZCARD")
                .arg(format!("{base}:waiters"))
                .query_async(&mut raw)
                .await
                .unwrap();
            pending == 0 && waiting == 1
        }
    })
    .await;
    assert_eq!(writer.release().await.unwrap(), LockGuardState::Released);
    let reader = waiting_reader.await.unwrap().unwrap();
    assert!(reader.acquired_on_attempt() > 1);
    assert_eq!(reader.release().await.unwrap(), LockGuardState::Released);
    for part in ["owner", "readers", "pending", "waiters"] {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(format!("distkit:lock:{{{}}}:{part}", key.as_str()))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(exists, 0, "{part} left behind");
    }
}

both!(dropping_a_guard_releases_in_the_background);
async fn dropping_a_guard_releases_in_the_background(mode: Mode) {
    let key = new_key("drop_guard");
    let mutex = Mutex::new(options(&key, connect(mode).await).build().unwrap());
    drop(mutex.lock().await.unwrap());
    let again = mutex
        .try_lock_with_timeout(Duration::from_secs(2))
        .await
        .unwrap();
    // Woken by the release message, not by the 30 s ttl.
    again.release().await.unwrap();
}

#[test]
fn dropping_a_guard_outside_a_runtime_does_not_panic() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = new_key("drop_outside");
    let (mutex, guard) = runtime.block_on(async {
        let conn = RedisConnection::open(&shared_server().url()).await.unwrap();
        let mutex = Mutex::new(options(&key, conn).build().unwrap());
        let guard = mutex.lock().await.unwrap();
        (mutex, guard)
    });
    // Dropped on a thread without a runtime: released on the runtime the
    // guard was acquired on.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    runtime.block_on(async {
        mutex
            .try_lock_with_timeout(Duration::from_secs(2))
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    });
    // With that runtime gone too, dropping does nothing (the ttl expires).
    let guard = runtime.block_on(async { mutex.lock().await.unwrap() });
    drop(runtime);
    drop(guard);
}

#[test]
fn scripts_are_the_files_in_scripts_lock() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/lock");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".lua"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = distkit_lock::SCRIPT_SOURCES
        .iter()
        .map(|(name, _)| format!("{name}.lua"))
        .collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
    for (name, source) in distkit_lock::SCRIPT_SOURCES {
        let file = std::fs::read_to_string(dir.join(format!("{name}.lua"))).unwrap();
        assert_eq!(&file, source, "{name}");
    }
}

/// The port of the cluster node that owns `key`'s slot.
fn owner_port(cluster: &distkit_testkit::RedisCluster, key: &str) -> u16 {
    let slot = i64::from(cluster.key_slot(key));
    let mut conn = cluster.nodes()[0].blocking_connection();
    let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn).unwrap();
    for range in ranges {
        let redis::Value::Array(fields) = range else {
            continue;
        };
        let (redis::Value::Int(start), redis::Value::Int(end)) = (&fields[0], &fields[1]) else {
            continue;
        };
        if (*start..=*end).contains(&slot) {
            let redis::Value::Array(master) = &fields[2] else {
                panic!("bad CLUSTER SLOTS entry")
            };
            let redis::Value::Int(port) = master[1] else {
                panic!("bad CLUSTER SLOTS port")
            };
            return u16::try_from(port).unwrap();
        }
    }
    panic!("no node owns slot {slot}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_whose_cluster_shard_freezes_turns_lost_before_the_lease_ends() {
    // A dedicated cluster: freezing a node of the shared one would stall
    // every other test of this binary.
    let cluster = distkit_testkit::RedisCluster::start();
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let key = new_key("frozen_shard");
    let port = owner_port(
        &cluster,
        &format!("distkit:lock:{{{}}}:owner", key.as_str()),
    );
    let node = cluster.nodes().iter().find(|n| n.port() == port).unwrap();
    let ttl = Duration::from_millis(600);
    let holder = Mutex::new(
        options(&key, RedisConnection::open_cluster(&urls).await.unwrap())
            .ttl(ttl)
            .build()
            .unwrap(),
    );
    let guard = holder.lock().await.unwrap();
    node.freeze();
    let frozen_at = Instant::now();
    // The shard cannot answer renewals: the guard gives the lease up before
    // it could have ended in Redis (at most one ttl after the freeze).
    tokio::time::timeout(ttl * 2, guard.lost()).await.unwrap();
    let lost_after = frozen_at.elapsed();
    assert!(lost_after < ttl, "lost only after {lost_after:?}");
    assert_eq!(guard.state(), LockGuardState::Lost);
    // Keep the shard frozen past the lease, then let it run again: the lease
    // has expired by Redis' own clock and another owner gets the lock.
    tokio::time::sleep_until((frozen_at + ttl + ttl / 3).into()).await;
    node.thaw();
    let other = Mutex::new(
        options(&key, RedisConnection::open_cluster(&urls).await.unwrap())
            .build()
            .unwrap(),
    );
    let next = other
        .try_lock_with_timeout(Duration::from_secs(10))
        .await
        .unwrap();
    assert!(next.fencing_token() > guard.fencing_token());
    assert_eq!(guard.release().await.unwrap(), LockGuardState::Lost);
    assert_eq!(next.release().await.unwrap(), LockGuardState::Released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_cut_off_a_cluster_turns_lost_before_another_acquires() {
    // Only the holder is cut off (its own ACL user disabled on every node,
    // its connections killed): the others, and Redis' clock, go on.
    let cluster = shared_cluster();
    let key = new_key("cluster_cut");
    let cut = distkit_testkit::AclCut::new(cluster, &format!("cut-{}", key.as_str())).await;
    let builder = cut
        .client_builder(cluster)
        .response_timeout(Duration::from_millis(200))
        .connection_timeout(Duration::from_millis(200));
    let ttl = Duration::from_millis(600);
    let holder = Mutex::new(
        options(
            &key,
            RedisConnection::open_cluster_with(builder).await.unwrap(),
        )
        .ttl(ttl)
        .build()
        .unwrap(),
    );
    let guard = Arc::new(holder.lock().await.unwrap());
    let lost_fired = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let guard = guard.clone();
        let lost_fired = lost_fired.clone();
        async move {
            guard.lost().await;
            lost_fired.store(true, Ordering::SeqCst);
        }
    });
    let other = Mutex::new(
        options(&key, connect(Mode::Cluster).await)
            .ttl(ttl)
            .retry_interval(Duration::from_millis(10))
            .build()
            .unwrap(),
    );
    cut.cut().await;
    let cut_at = Instant::now();
    let taken = other
        .try_lock_with_timeout(Duration::from_secs(5))
        .await
        .unwrap();
    // Redis gives the lock away only after the lease ran out (the last
    // renewal was sent at most ttl/3 before the cut), and by then the
    // cut-off holder already knows it lost it.
    assert!(
        cut_at.elapsed() >= ttl / 2,
        "taken after {:?}",
        cut_at.elapsed()
    );
    assert_eq!(guard.state(), LockGuardState::Lost);
    tokio::time::timeout(Duration::from_millis(100), watcher)
        .await
        .unwrap()
        .unwrap();
    assert!(lost_fired.load(Ordering::SeqCst));
    assert!(taken.fencing_token() > guard.fencing_token());
    cut.heal().await;
    let guard = Arc::into_inner(guard).unwrap();
    // Back in touch, the old guard can neither release nor disturb the
    // new holder.
    assert_eq!(guard.release().await.unwrap(), LockGuardState::Lost);
    assert_eq!(taken.state(), LockGuardState::Acquired);
    assert_eq!(taken.release().await.unwrap(), LockGuardState::Released);
}

both!(fencing_tokens_stay_above_a_fence_ahead_of_the_server_clock);
async fn fencing_tokens_stay_above_a_fence_ahead_of_the_server_clock(mode: Mode) {
    // A fence ahead of the clock: a burst within one microsecond, or a
    // server clock that stepped back. Tokens continue from the fence.
    let key = new_key("fence_ahead");
    let conn = connect(mode).await;
    let fence_key = format!("distkit:lock:{{{}}}:fence", key.as_str());
    let mut raw = conn.clone();
    for (stored, expected) in [
        ("9000000000000000", 9_000_000_000_000_001u64),
        ("12345678901234567", 12_345_678_901_234_568),
    ] {
        let _: () = redis::cmd("SET")
            .arg(&fence_key)
            .arg(stored)
            .query_async(&mut raw)
            .await
            .unwrap();
        let mutex = Mutex::new(options(&key, conn.clone()).build().unwrap());
        let guard = mutex.lock().await.unwrap();
        assert_eq!(guard.fencing_token(), expected);
        guard.release().await.unwrap();
        let lock = RwLock::new(options(&key, conn.clone()).build().unwrap());
        let reader = lock.read().await.unwrap();
        assert_eq!(reader.fencing_token(), expected + 1);
        reader.release().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resp3_cluster_client_is_used_for_sharded_notifications() {
    // With a RESP3 cluster client the subscriber rides on the user's own
    // client configuration; a release wakes the waiter long before its poll.
    let urls: Vec<String> = shared_cluster()
        .urls()
        .iter()
        .map(|url| format!("{}/?protocol=resp3", url.trim_end_matches('/')))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let key = new_key("resp3");
    let retry_interval = Duration::from_secs(5);
    let holder = Mutex::new(
        options(&key, RedisConnection::open_cluster(&urls).await.unwrap())
            .retry_interval(retry_interval)
            .build()
            .unwrap(),
    );
    let waiter = Mutex::new(
        options(&key, RedisConnection::open_cluster(&urls).await.unwrap())
            .retry_interval(retry_interval)
            .build()
            .unwrap(),
    );
    let guard = holder.lock().await.unwrap();
    let waiting = tokio::spawn(async move {
        let guard = waiter.lock().await.unwrap();
        (Instant::now(), guard)
    });
    // Let the waiter subscribe and settle into its wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released_at = Instant::now();
    guard.release().await.unwrap();
    let (acquired_at, next) = waiting.await.unwrap();
    let gap = acquired_at.saturating_duration_since(released_at);
    assert!(gap < retry_interval / 5, "woken after {gap:?}");
    next.release().await.unwrap();
}

/// Polls `done` until it holds, failing with `what` after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// No barging, at the script level: a waiting caller's first attempt does
/// not take a free lock while another caller's waiter mark is live; its
/// marked retry does, and a single try is not affected.
#[tokio::test]
async fn a_first_attempt_queues_behind_live_waiters() {
    let source = distkit_lock::SCRIPT_SOURCES
        .iter()
        .find(|(name, _)| *name == "acquire_write")
        .unwrap()
        .1;
    let script = redis::Script::new(source);
    let base = format!("distkit:lock:{{{}}}", unique_prefix("no_barging"));
    let [owner, readers, pending, fence, waiters] =
        ["owner", "readers", "pending", "fence", "waiters"].map(|k| format!("{base}:{k}"));
    let mut conn = shared_server().connection_manager().await;
    let attempt = |token: &'static str, waiter_ttl: u64, marked: u8| {
        let mut invocation = script.prepare_invoke();
        invocation
            .key(&owner)
            .key(&readers)
            .key(&pending)
            .key(&fence)
            .key(&waiters)
            .arg(token)
            .arg(10_000)
            // as an RwLock writer: pending-writer marks when busy
            .arg(waiter_ttl)
            .arg(60_000)
            .arg(waiter_ttl)
            .arg(marked);
        invocation
    };
    // another caller waits (its mark is live for a minute)
    mark_waiting(&mut conn, &waiters, "w").await;

    let first: (i64, String) = attempt("a", 1_500, 0)
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(first, (0, "waiters".to_string()));
    assert!(
        zscore(&mut conn, &waiters, "a").await.is_some(),
        "the queued caller is marked as a waiter"
    );
    assert_eq!(
        zscore(&mut conn, &pending, "a").await,
        None,
        "a queued writer holds back no reader: no pending-writer mark"
    );

    let retry: (i64, String) = attempt("a", 1_500, 1)
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(retry.0, 1, "a marked waiter takes the free lock");
    assert_eq!(
        zscore(&mut conn, &waiters, "a").await,
        None,
        "its waiter mark goes with the lease"
    );
    let _: () = redis::cmd("DEL")
        .arg(&owner)
        .query_async(&mut conn)
        .await
        .unwrap();

    let single_try: (i64, String) = attempt("t", 0, 0).invoke_async(&mut conn).await.unwrap();
    assert_eq!(single_try.0, 1, "a single try takes a free lock");
}

/// The attempt that queues behind other waiters is not counted: a bounded
/// acquisition of a free lock succeeds on its first counted attempt even
/// while another caller waits (here: a live waiter mark of a caller that is
/// not really there).
async fn bounded_acquisition_of_a_free_lock_is_not_refused_by_waiters(mode: Mode) {
    let key = new_key("queued_uncounted");
    let waiters = format!("distkit:lock:{{{}}}:waiters", key.as_str());
    let mutex = Mutex::new(options(&key, connect(mode).await).build().unwrap());
    let mut conn = match mode {
        Mode::Single => RedisConnection::from(shared_server().connection_manager().await),
        Mode::Cluster => RedisConnection::from(shared_cluster().connection().await),
    };
    mark_waiting(&mut conn, &waiters, "someone").await;
    let guard = mutex.try_lock_with_retries(0).await.unwrap();
    assert_eq!(guard.acquired_on_attempt(), 1);
    guard.release().await.unwrap();

    mark_waiting(&mut conn, &waiters, "someone").await;
    let guard = mutex.try_lock_with_timeout(Duration::ZERO).await.unwrap();
    assert_eq!(guard.acquired_on_attempt(), 1);
    guard.release().await.unwrap();
}

both!(bounded_acquisition_of_a_free_lock_is_not_refused_by_waiters);

/// Marks `token` as waiting on the lock whose waiters set is `waiters`,
/// live for a minute of server time, as a waiting caller's attempt would.
async fn mark_waiting(conn: &mut impl redis::aio::ConnectionLike, waiters: &str, token: &str) {
    let (seconds, _): (u64, u64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(waiters)
        .arg((seconds + 60) * 1000)
        .arg(token)
        .query_async(conn)
        .await
        .unwrap();
}

/// The score of `member` in the zset `key`, if it is there.
async fn zscore(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    member: &str,
) -> Option<f64> {
    redis::cmd("ZSCORE")
        .arg(key)
        .arg(member)
        .query_async(conn)
        .await
        .unwrap()
}
