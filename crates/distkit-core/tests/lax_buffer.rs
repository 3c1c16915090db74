//! The lax buffer's mechanics against an in-memory backend: batches are
//! resent unchanged until confirmed and applied once, idle keys are evicted,
//! and no add is lost when it races an eviction.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use distkit_core::lax::{
    EVICT_AFTER_TICKS, LaxAdd, LaxBackend, LaxBatchEntry, LaxBuffer, LaxFlushed, LaxRemote,
};
use distkit_core::{DistkitError, DistkitRedisKey};

/// Stored values in memory, with the idempotency record a Redis script
/// keeps: a sequence at or below the last applied one is only read.
struct Memory {
    buffer: LaxBuffer,
    stored: Mutex<HashMap<String, i64>>,
    last_sequence: AtomicU64,
    /// When set, the next send is applied but its reply is "lost".
    lose_next_reply: AtomicBool,
    sends: AtomicU64,
}

impl Memory {
    fn new() -> Arc<Self> {
        let tick = Duration::from_millis(20);
        Arc::new(Self {
            buffer: LaxBuffer::new(tick, tick),
            stored: Mutex::default(),
            last_sequence: AtomicU64::new(0),
            lose_next_reply: AtomicBool::new(false),
            sends: AtomicU64::new(0),
        })
    }

    fn stored(&self, key: &str) -> i64 {
        *self.stored.lock().unwrap().get(key).unwrap_or(&0)
    }
}

impl LaxBackend for Memory {
    fn buffer(&self) -> &LaxBuffer {
        &self.buffer
    }

    async fn load(&self, keys: &[&DistkitRedisKey]) -> Result<Vec<LaxRemote>, DistkitError> {
        let stored = self.stored.lock().unwrap();
        Ok(keys
            .iter()
            .map(|k| LaxRemote::new(*stored.get(k.as_str()).unwrap_or(&0)))
            .collect())
    }

    async fn send(
        &self,
        sequence: u64,
        batch: &[LaxBatchEntry],
    ) -> Result<Vec<LaxFlushed>, DistkitError> {
        self.sends.fetch_add(1, Ordering::Relaxed);
        let mut stored = self.stored.lock().unwrap();
        let duplicate = sequence <= self.last_sequence.load(Ordering::Relaxed);
        if !duplicate {
            self.last_sequence.store(sequence, Ordering::Relaxed);
        }
        let results = batch
            .iter()
            .map(|entry| {
                let value = stored.entry(entry.key().as_str().to_owned()).or_insert(0);
                if !duplicate {
                    *value += i64::try_from(entry.delta()).unwrap();
                }
                LaxFlushed::Applied(LaxRemote::new(*value))
            })
            .collect();
        if self.lose_next_reply.swap(false, Ordering::Relaxed) {
            return Err(DistkitError::unexpected_reply("test", "reply lost"));
        }
        Ok(results)
    }
}

fn key(name: &str) -> DistkitRedisKey {
    DistkitRedisKey::try_from(name).unwrap()
}

async fn add(backend: &Memory, key: &DistkitRedisKey, delta: i64) -> i64 {
    match backend.buffer.add(key, delta, |_, view| view) {
        LaxAdd::Added(view) => view,
        LaxAdd::Overflow => panic!("overflow"),
        LaxAdd::Cold => backend
            .buffer
            .add_cold(backend, key, delta, |_, view| view)
            .await
            .unwrap()
            .unwrap(),
    }
}

/// The whole-add future: lazy (nothing before the first poll), loads a
/// cold key first, adds exactly once even when polled again, and turns an
/// `i64` overflow into a typed error that changes nothing.
#[tokio::test]
async fn add_operation_is_lazy_adds_once_and_refuses_overflow() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    let backend = Memory::new();
    backend
        .stored
        .lock()
        .unwrap()
        .insert("k".to_owned(), i64::MAX - 2);
    let k = key("k");
    drop(LaxBuffer::add_operation(
        &backend,
        "inc",
        &k,
        1,
        1,
        |_, view| view,
    ));
    assert_eq!(
        backend.buffer.cached_keys(),
        0,
        "an unpolled add loaded the key"
    );

    // Cold: loaded, then added.
    let added = LaxBuffer::add_operation(&backend, "inc", &k, 1, 1, |_, view| view).await;
    assert_eq!(added.unwrap(), i64::MAX - 1);

    // Warm, polled by hand: ready at once, and pending (not added again)
    // when polled after completion.
    let mut warm = std::pin::pin!(LaxBuffer::add_operation(
        &backend,
        "inc",
        &k,
        1,
        1,
        |_, view| view
    ));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(warm.as_mut().poll(&mut cx), Poll::Ready(Ok(v)) if v == i64::MAX));
    assert!(warm.as_mut().poll(&mut cx).is_pending());
    assert_eq!(backend.buffer.get(&k, |cell| cell.view()), Some(i64::MAX));

    // Overflow: a typed error naming the operation, key and operand.
    let refused = LaxBuffer::add_operation(&backend, "dec", &k, 1, -1, |_, view| view).await;
    match refused {
        Err(DistkitError::CounterOverflow {
            operation,
            key,
            operand,
        }) => {
            assert_eq!((operation, key.as_str(), operand), ("dec", "k", -1));
        }
        other => panic!("expected an overflow, got {other:?}"),
    }
    assert_eq!(backend.buffer.get(&k, |cell| cell.view()), Some(i64::MAX));
    backend.buffer.flush(&*backend).await.unwrap();
    assert_eq!(backend.stored("k"), i64::MAX);
}

#[tokio::test]
async fn batch_whose_reply_was_lost_is_resent_and_applied_once() {
    let backend = Memory::new();
    let k = key("k");
    add(&backend, &k, 5).await;
    backend.lose_next_reply.store(true, Ordering::Relaxed);
    assert!(backend.buffer.flush(&*backend).await.is_err());
    assert_eq!(backend.stored("k"), 5);
    // Meanwhile more increments wait in the view.
    assert_eq!(add(&backend, &k, 1).await, 6);
    backend.buffer.flush(&*backend).await.unwrap();
    assert_eq!(backend.stored("k"), 6);
    assert_eq!(backend.buffer.get(&k, |cell| cell.view()), Some(6));
}

#[tokio::test]
async fn idle_keys_are_evicted_and_a_later_add_on_a_cached_handle_is_kept() {
    let backend = Memory::new();
    let k = key("k");
    add(&backend, &k, 1).await;
    backend.buffer.flush(&*backend).await.unwrap();
    for _ in 0..=EVICT_AFTER_TICKS {
        backend.buffer.tick(&*backend).await;
    }
    assert_eq!(backend.buffer.cached_keys(), 0);
    // This thread's cache still holds the evicted cell: the add lands there
    // and is handed back to the map.
    assert_eq!(add(&backend, &k, 2).await, 3);
    assert_eq!(backend.buffer.cached_keys(), 1);
    backend.buffer.flush(&*backend).await.unwrap();
    assert_eq!(backend.stored("k"), 3);
}

#[tokio::test]
async fn an_add_on_an_evicted_handle_moves_to_the_keys_new_cell() {
    let backend = Memory::new();
    let k = key("k");
    add(&backend, &k, 1).await;
    backend.buffer.flush(&*backend).await.unwrap();
    for _ in 0..=EVICT_AFTER_TICKS {
        backend.buffer.tick(&*backend).await;
    }
    // Another thread loads the key again (a new cell) ...
    let other = Arc::clone(&backend);
    let k2 = k.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async { add(&other, &k2, 10).await })
    })
    .join()
    .unwrap();
    // ... and this thread's cached handle to the old cell is not used.
    assert_eq!(add(&backend, &k, 2).await, 13);
    backend.buffer.flush(&*backend).await.unwrap();
    assert_eq!(backend.stored("k"), 13);
}

#[test]
fn adds_racing_flushes_and_evictions_are_all_stored() {
    const THREADS: i64 = 4;
    const ADDS: i64 = 20_000;
    let backend = Memory::new();
    let keys: Vec<DistkitRedisKey> = (0..32).map(|i| key(&format!("k{i}"))).collect();
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (backend, done) = (Arc::clone(&backend), Arc::clone(&done));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            while !done.load(Ordering::Relaxed) {
                rt.block_on(backend.buffer.tick(&*backend));
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (backend, keys) = (Arc::clone(&backend), keys.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for i in 0..ADDS {
                        // Sparse, uneven use, so that keys go idle and are
                        // evicted while other threads still cache them.
                        let index = ((i * 7 + t * 13) % 32) as usize;
                        add(&backend, &keys[index], 1).await;
                        if i % 64 == 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                })
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(backend.buffer.flush(&*backend)).unwrap();
    let total: i64 = keys.iter().map(|k| backend.stored(k.as_str())).sum();
    assert_eq!(total, THREADS * ADDS);
    assert!(backend.sends.load(Ordering::Relaxed) > 1);
}
