use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A loopback TCP proxy in front of a server, for injecting network faults.
///
/// Connect clients to [`url`](Self::url) instead of the server. The proxy
/// runs on a thread and runtime of its own, so it outlives the runtimes of
/// the tests that use it. Faults:
///
/// - [`cut`](Self::cut): every open connection is reset at once;
/// - [`refuse_for`](Self::refuse_for) / [`set_refusing`](Self::set_refusing):
///   new connections are closed as soon as they are accepted;
/// - [`pause`](Self::pause) / [`resume`](Self::resume): no byte moves in
///   either direction (a network partition that keeps sockets open);
/// - [`set_delay`](Self::set_delay): every chunk is held for a while.
///
/// A proxy in front of one Redis Cluster node only covers the seed
/// connection (nodes advertise their own ports); use node
/// [`freeze`](crate::RedisServer::freeze) or [`kill`](crate::RedisServer::kill)
/// for cluster faults.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// let server = distkit_testkit::shared_server();
/// let proxy = distkit_testkit::FaultProxy::start(server.port());
/// let client = redis::Client::open(proxy.url()).unwrap();
/// let mut conn = client.get_connection_manager().await.unwrap();
/// proxy.cut(); // the next command on `conn` fails, later ones reconnect
/// # }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    control: Arc<watch::Sender<Control>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Clone, Default)]
struct Control {
    cut_generation: u64,
    refuse_until: Option<Instant>,
    refusing: bool,
    paused: bool,
    delay: Duration,
}

impl Control {
    fn refuses_now(&self) -> bool {
        self.refusing
            || self
                .refuse_until
                .is_some_and(|until| Instant::now() < until)
    }
}

impl FaultProxy {
    /// Starts a proxy to `127.0.0.1:<target_port>`.
    pub fn start(target_port: u16) -> Self {
        Self::start_to(SocketAddr::from(([127, 0, 0, 1], target_port)))
    }

    /// Starts a proxy to `target`.
    pub fn start_to(target: SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("distkit-testkit: proxy cannot bind: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("distkit-testkit: proxy listener: {e}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("distkit-testkit: proxy address: {e}"));
        let (control, _) = watch::channel(Control::default());
        let control = Arc::new(control);
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let loop_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("distkit-fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| panic!("distkit-testkit: proxy runtime: {e}"));
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)
                        .unwrap_or_else(|e| panic!("distkit-testkit: proxy listener: {e}"));
                    tokio::select! {
                        _ = accept_loop(listener, target, loop_control) => {}
                        _ = shutdown_rx => {}
                    }
                });
            })
            .unwrap_or_else(|e| panic!("distkit-testkit: proxy thread: {e}"));
        Self {
            address,
            control,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The proxy's `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.address)
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Resets every open connection now. New connections are accepted as
    /// usual (unless refusing).
    pub fn cut(&self) {
        self.control.send_modify(|c| c.cut_generation += 1);
    }

    /// Closes new connections as soon as they are accepted, for `duration`.
    pub fn refuse_for(&self, duration: Duration) {
        self.control
            .send_modify(|c| c.refuse_until = Some(Instant::now() + duration));
    }

    /// Closes (`true`) or accepts (`false`) new connections until changed.
    pub fn set_refusing(&self, refusing: bool) {
        self.control.send_modify(|c| c.refusing = refusing);
    }

    /// Stops moving bytes in both directions; connections stay open.
    pub fn pause(&self) {
        self.control.send_modify(|c| c.paused = true);
    }

    /// Moves bytes again after [`pause`](Self::pause); held bytes are delivered.
    pub fn resume(&self) {
        self.control.send_modify(|c| c.paused = false);
    }

    /// Holds every forwarded chunk for `delay` (zero to stop delaying).
    pub fn set_delay(&self, delay: Duration) {
        self.control.send_modify(|c| c.delay = delay);
    }

    /// Cuts every connection and refuses new ones until [`heal`](Self::heal):
    /// the server looks gone.
    pub fn partition(&self) {
        self.control.send_modify(|c| {
            c.refusing = true;
            c.cut_generation += 1;
        });
    }

    /// Ends every fault: accept, forward, no delay.
    pub fn heal(&self) {
        self.control.send_modify(|c| {
            c.refusing = false;
            c.refuse_until = None;
            c.paused = false;
            c.delay = Duration::ZERO;
        });
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: Arc<watch::Sender<Control>>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if control.borrow().refuses_now() {
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        let rx = control.subscribe();
        tokio::spawn(async move {
            let generation = rx.borrow().cut_generation;
            let Ok(server) = TcpStream::connect(target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let mut cut_rx = rx.clone();
            tokio::select! {
                _ = pump(client_read, server_write, rx.clone(), generation) => {}
                _ = pump(server_read, client_write, rx.clone(), generation) => {}
                _ = cut_rx.wait_for(|c| c.cut_generation != generation) => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut control: watch::Receiver<Control>,
    generation: u64,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = control.borrow().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if control
            .wait_for(|c| !c.paused || c.cut_generation != generation)
            .await
            .is_err()
        {
            return;
        }
        if control.borrow().cut_generation != generation {
            return;
        }
        let Some(chunk) = buffer.get(..read) else {
            return;
        };
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
