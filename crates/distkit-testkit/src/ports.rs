use std::net::{TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback port that is free now (and, with `with_bus`, whose cluster bus
/// port `port + 10000` is free too), never handed out twice by this process.
pub(crate) fn free_port(with_bus: bool) -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    // Mix the process id in so parallel test binaries start apart.
    let mut candidate = 20_000 + (std::process::id() as u16 % 20_000);
    for _ in 0..40_000 {
        candidate = if candidate >= 40_000 {
            20_000
        } else {
            candidate + 1
        };
        if handed_out.contains(&candidate) {
            continue;
        }
        if is_free(candidate) && (!with_bus || is_free(candidate + 10_000)) {
            handed_out.push(candidate);
            return candidate;
        }
    }
    panic!("distkit-testkit: no free loopback port between 20000 and 40000");
}

/// Waits until something accepts TCP connections on `port`.
pub(crate) fn wait_for_listen(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
