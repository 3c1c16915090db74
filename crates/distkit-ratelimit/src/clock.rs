//! Time for the in-process parts of the limiter (the local provider and the
//! hybrid fast path), injected so tests about windows run instantly.
//!
//! The Redis provider never reads these clocks: its windows follow Redis
//! server time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A monotonic clock: time elapsed since an arbitrary origin fixed when the
/// clock was made.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time since the clock's origin. Never goes backwards.
    fn now(&self) -> Duration;
}

/// The real monotonic clock ([`Instant`]), the default.
///
/// ```
/// use distkit_ratelimit::{Clock, MonotonicClock};
/// let clock = MonotonicClock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to, for tests. Clones share the time.
///
/// ```
/// use std::time::Duration;
/// use distkit_ratelimit::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now(), Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

/// A millisecond clock read from an atomic: one process-wide background
/// thread (started on first use, living for the rest of the process)
/// stores the time every millisecond, so a read costs an atomic load instead
/// of a system clock read. Use it for hot local or hybrid limiters.
///
/// Its reading may lag real time by the ticker's scheduling delay (a few
/// milliseconds on a loaded machine). A lagging clock only delays the moment
/// usage leaves a window (the limiter admits later, never more); for the
/// hybrid fast path it adds to the network latency in the over-admission
/// bound. If the ticker thread cannot be started, it reads [`Instant`].
///
/// ```
/// use distkit_ratelimit::{Clock, CoarseClock};
/// let clock = CoarseClock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct CoarseClock {
    ticker: &'static Ticker,
}

#[derive(Debug)]
struct Ticker {
    origin: Instant,
    now_ms: AtomicU64,
    running: bool,
}

static TICKER: OnceLock<Ticker> = OnceLock::new();

fn ticker() -> &'static Ticker {
    TICKER.get_or_init(|| {
        let running = std::thread::Builder::new()
            .name("distkit-coarse-clock".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(Duration::from_millis(1));
                    if let Some(ticker) = TICKER.get() {
                        let now = millis(ticker.origin.elapsed());
                        ticker.now_ms.fetch_max(now, Ordering::Relaxed);
                    }
                }
            })
            .is_ok();
        Ticker {
            origin: Instant::now(),
            now_ms: AtomicU64::new(0),
            running,
        }
    })
}

impl CoarseClock {
    /// The shared coarse clock (starts the ticker on first use).
    pub fn new() -> Self {
        Self { ticker: ticker() }
    }
}

impl Default for CoarseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for CoarseClock {
    fn now(&self) -> Duration {
        if self.ticker.running {
            Duration::from_millis(self.ticker.now_ms.load(Ordering::Relaxed))
        } else {
            self.ticker.origin.elapsed()
        }
    }
}

/// Whole milliseconds of `time`, saturating (the unit every window works in).
#[inline]
pub(crate) fn millis(time: Duration) -> u64 {
    u64::try_from(time.as_millis()).unwrap_or(u64::MAX)
}
