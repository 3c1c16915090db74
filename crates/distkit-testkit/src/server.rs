use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::ports::free_port;

const INSTALL_HINT: &str = "distkit's tests need `redis-server` (and `redis-cli`) on PATH. \
Install them with `make setup`, or `sudo apt-get install -y redis-server` on Debian/Ubuntu, \
or `brew install redis` on macOS; or point REDIS_URL at a running Redis.";

/// How a dedicated server is started.
///
/// ```
/// let options = distkit_testkit::ServerOptions::default().appendonly(true);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    appendonly: bool,
    extra_args: Vec<String>,
}

impl ServerOptions {
    /// Persist every write to an append-only file, so data survives
    /// [`RedisServer::restart`].
    pub fn appendonly(mut self, on: bool) -> Self {
        self.appendonly = on;
        self
    }

    /// Extra `redis-server` arguments, such as `["--maxmemory", "10mb"]`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }
}

/// A `redis-server` process on a loopback port, or an external server named
/// by `REDIS_URL`.
///
/// The process runs under a small shell watchdog that kills it when the test
/// binary exits, so no stray servers are left behind even when statics are
/// never dropped. Dropping a dedicated server stops it at once.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// let server = distkit_testkit::RedisServer::start();
/// server.kill(); // crash it
/// server.restart(); // same port, same data directory
/// let _conn = server.connection_manager().await;
/// # }
/// ```
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    port: Option<u16>,
    dir: PathBuf,
    options: ServerOptions,
    process: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    watchdog: Child,
    pid: u32,
}

/// The server every test of this binary shares: started on first use on a
/// free port, or the one at `REDIS_URL` when that is set.
///
/// ```no_run
/// let url = distkit_testkit::shared_server().url();
/// ```
pub fn shared_server() -> &'static RedisServer {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(|| match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => RedisServer::external(url.trim().to_string()),
        _ => RedisServer::start(),
    })
}

impl RedisServer {
    /// Starts a dedicated server with default options (no persistence).
    pub fn start() -> Self {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a dedicated server with `options`.
    pub fn start_with(options: ServerOptions) -> Self {
        Self::start_fresh(false, options)
    }

    /// Starts a server on a fresh port (with its cluster bus port free too
    /// when `with_bus`). Should the port be taken between the check and the
    /// server's `bind` (by a process outside the test kit), the server is
    /// started again on another port.
    pub(crate) fn start_fresh(with_bus: bool, options: ServerOptions) -> Self {
        let mut attempt = 1;
        loop {
            let server = Self::new_on(free_port(with_bus), options.clone());
            match server.spawn() {
                Ok(()) => return server,
                Err(log) if attempt < 5 && log.contains("Address already in use") => attempt += 1,
                Err(log) => panic!(
                    "distkit-testkit: redis-server on port {} did not come up. Log:\n{log}",
                    server.port()
                ),
            }
        }
    }

    fn new_on(port: u16, options: ServerOptions) -> Self {
        // A server of its own in this process: the directory is never
        // shared, even by a server started on a port already in use.
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("distkit-testkit-{}-{port}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot create {}: {e}", dir.display()));
        Self {
            url: format!("redis://127.0.0.1:{port}/"),
            port: Some(port),
            dir,
            options,
            process: Mutex::new(None),
        }
    }

    fn external(url: String) -> Self {
        Self {
            url,
            port: None,
            dir: PathBuf::new(),
            options: ServerOptions::default(),
            process: Mutex::new(None),
        }
    }

    /// The `redis://` URL of the server.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The loopback port (panics for an external `REDIS_URL` server).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or_else(|| {
            panic!(
                "distkit-testkit: the REDIS_URL server has no known port; use RedisServer::start()"
            )
        })
    }

    /// The data directory of the server.
    pub fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// A client for this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url.as_str())
            .unwrap_or_else(|e| panic!("distkit-testkit: bad url {}: {e}", self.url))
    }

    /// A new `ConnectionManager` (its own connection) to this server.
    pub async fn connection_manager(&self) -> redis::aio::ConnectionManager {
        self.connection_manager_with(redis::aio::ConnectionManagerConfig::new())
            .await
    }

    /// A new `ConnectionManager` with the given configuration.
    pub async fn connection_manager_with(
        &self,
        config: redis::aio::ConnectionManagerConfig,
    ) -> redis::aio::ConnectionManager {
        self.client()
            .get_connection_manager_with_config(config)
            .await
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot connect to {}: {e}", self.url))
    }

    /// A blocking connection, for setup and inspection.
    pub fn blocking_connection(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot connect to {}: {e}", self.url))
    }

    /// The process id of the running `redis-server`.
    pub fn pid(&self) -> Option<u32> {
        self.lock_process().as_ref().map(|r| r.pid)
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(&self) {
        self.signal_and_reap("KILL", true);
    }

    /// Stops the server with SIGTERM (a graceful shutdown).
    pub fn stop(&self) {
        self.signal_and_reap("TERM", true);
    }

    /// Freezes the process with SIGSTOP: connections stay open, nothing is
    /// answered, until [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "STOP");
        }
    }

    /// Resumes a [`freeze`](Self::freeze)d process with SIGCONT.
    pub fn thaw(&self) {
        if let Some(pid) = self.pid() {
            signal(pid, "CONT");
        }
    }

    /// Starts the server again on the same port and data directory (killing
    /// it first if it still runs).
    pub fn restart(&self) {
        self.kill();
        if let Err(log) = self.spawn() {
            panic!(
                "distkit-testkit: redis-server on port {} did not come back. Log:\n{log}",
                self.port()
            );
        }
    }

    fn lock_process(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Signals the server and reaps it; with `wait_for_port`, also waits
    /// (up to 10 s) until its port can be bound again.
    fn signal_and_reap(&self, name: &str, wait_for_port: bool) {
        let taken = self.lock_process().take();
        if let Some(mut running) = taken {
            signal(running.pid, name);
            if name == "STOP" {
                return;
            }
            // A stopped process ignores TERM until continued.
            signal(running.pid, "CONT");
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_alive(running.pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if process_alive(running.pid) {
                signal(running.pid, "KILL");
            }
            let _ = running.watchdog.wait();
            if let Some(port) = self.port.filter(|_| wait_for_port) {
                // Wait until the port is released so a restart can bind it.
                let deadline = Instant::now() + Duration::from_secs(10);
                while std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// Runs `redis-server` on this server's port and waits until it answers;
    /// on failure returns its log.
    fn spawn(&self) -> Result<(), String> {
        let Some(port) = self.port else {
            panic!("distkit-testkit: cannot start or restart the external REDIS_URL server");
        };
        ensure_installed();
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--save".into(),
            String::new(),
            "--logfile".into(),
            "redis.log".into(),
            "--daemonize".into(),
            "no".into(),
            "--protected-mode".into(),
            "no".into(),
            "--appendonly".into(),
            if self.options.appendonly { "yes" } else { "no" }.into(),
        ];
        if self.options.appendonly {
            args.extend(["--appendfsync".into(), "always".into()]);
        }
        args.extend(self.options.extra_args.iter().cloned());
        // The watchdog starts redis-server, prints its pid, and kills it (and
        // removes the data directory) as soon as the test binary is gone.
        let script = format!(
            "redis-server \"$@\" & child=$!; echo $child; \
             ( while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.2; done; \
               if kill -0 $child 2>/dev/null; then kill -9 $child; rm -rf '{dir}'; fi ) >/dev/null 2>&1 & \
             wait $child",
            parent = std::process::id(),
            dir = self.dir.display(),
        );
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Not inherited: a test harness that captures the test's stderr
            // through a pipe (rustdoc running doctests) waits for EOF on it,
            // which the server would hold open until the watchdog kills it,
            // and the watchdog waits for the test process to be reaped: a
            // deadlock. The server logs to `redis.log` in its directory.
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("distkit-testkit: cannot run sh: {e}"));
        let mut line = String::new();
        if let Some(stdout) = watchdog.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let pid: u32 = line.trim().parse().unwrap_or_else(|_| {
            panic!("distkit-testkit: redis-server did not start (watchdog said {line:?})")
        });
        *self.lock_process() = Some(Running { watchdog, pid });
        let ready = self.wait_ready(pid);
        if ready.is_err() {
            // Reap the watchdog of a server that never came up; its port
            // may belong to another process, so do not wait for it.
            self.signal_and_reap("KILL", false);
        }
        ready
    }

    /// Waits until the server started as `pid` answers on this server's
    /// port. A server that answers with another process id is not this one
    /// (another process listens on the port): this one exits when its bind
    /// fails, and its log is returned, as for any server that exits early.
    fn wait_ready(&self, pid: u32) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let log = || std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        loop {
            if !process_alive(pid) {
                return Err(log());
            }
            let info: redis::RedisResult<String> = self
                .client()
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| {
                    c.set_read_timeout(Some(Duration::from_secs(1)))?;
                    redis::cmd("INFO").arg("server").query(&mut c)
                });
            let answered_by = info.ok().and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("process_id:"))
                    .and_then(|id| id.trim().parse::<u32>().ok())
            });
            if answered_by == Some(pid) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} never became ready (answered by process {answered_by:?}, started {pid})\n{}",
                    self.url,
                    log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.port.is_some() {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ensure_installed() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            panic!("distkit-testkit: `redis-server` was not found on PATH. {INSTALL_HINT}");
        }
    });
}

pub(crate) fn ensure_cli_installed() {
    let found = Command::new("redis-cli")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        panic!("distkit-testkit: `redis-cli` was not found on PATH. {INSTALL_HINT}");
    }
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn process_alive(pid: u32) -> bool {
    // A zombie still answers `kill -0`; /proc tells the state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => Command::new("kill")
            .arg("-0")
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_held_by_another_server_is_reported_not_adopted() {
        let other = RedisServer::start();
        let clash = RedisServer::new_on(other.port(), ServerOptions::default());
        let started = Instant::now();
        let log = clash
            .spawn()
            .expect_err("the port belongs to another server");
        assert!(log.contains("Address already in use"), "{log}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // the other server is untouched
        let pong: String = redis::cmd("PING")
            .query(&mut other.blocking_connection())
            .expect("ping");
        assert_eq!(pong, "PONG");
    }

    #[test]
    fn a_port_held_by_something_else_is_reported() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let clash = RedisServer::new_on(port, ServerOptions::default());
        let log = clash.spawn().expect_err("the port is taken");
        assert!(log.contains("Address already in use"), "{log}");
    }

    #[test]
    fn a_fresh_start_lands_on_a_port_of_its_own() {
        let server = RedisServer::start();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut server.blocking_connection())
            .expect("info");
        assert!(info.contains(&format!("tcp_port:{}", server.port())));
        assert_eq!(
            server.pid(),
            info.lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .and_then(|p| p.trim().parse().ok())
        );
    }
}
