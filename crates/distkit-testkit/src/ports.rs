use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// The offset of a Redis Cluster node's bus port from its client port.
const BUS_OFFSET: u16 = 10_000;

/// Ports are drawn from `[LOW, high)`, where `high + BUS_OFFSET` stays below
/// the kernel's ephemeral range, so an outgoing connection of this or any
/// other process can never take a server's port (or its cluster bus port)
/// between the check here and the server's `bind`, nor while a server is
/// restarted on the same port.
const LOW: u16 = 10_000;

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The first port of the kernel's ephemeral range (32768 when unknown, the
/// Linux default; macOS and Windows start higher).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port that is free now (and, with `with_bus`, whose cluster bus
/// port `port + 10000` is free too), never handed out twice by this process.
pub(crate) fn free_port(with_bus: bool) -> u16 {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let high = ephemeral_low().saturating_sub(BUS_OFFSET).max(LOW + 1_000);
    let span = u32::from(high - LOW);
    // Mix the process id in so parallel test processes (doctests) start apart.
    let start = std::process::id() % span;
    for i in 0..span {
        // below `high`, so the bus port fits in a u16 too
        let Ok(candidate) = u16::try_from(u32::from(LOW) + (start + i) % span) else {
            continue;
        };
        let bus = candidate + BUS_OFFSET;
        // A bus port handed out is as taken as a client port: a node's bus
        // port is free while the node restarts.
        if handed_out.contains(&candidate) || (with_bus && handed_out.contains(&bus)) {
            continue;
        }
        if is_free(candidate) && (!with_bus || is_free(bus)) {
            handed_out.push(candidate);
            if with_bus {
                handed_out.push(bus);
            }
            return candidate;
        }
    }
    panic!("distkit-testkit: no free loopback port between {LOW} and {high}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_bus_ports_stay_below_the_ephemeral_range() {
        let ephemeral = ephemeral_low();
        for _ in 0..20 {
            let port = free_port(true);
            assert!(port >= LOW);
            if ephemeral >= LOW + 1_000 + BUS_OFFSET {
                assert!(
                    port + BUS_OFFSET < ephemeral,
                    "bus port {} is in the ephemeral range from {ephemeral}",
                    port + BUS_OFFSET
                );
            }
        }
    }
}
