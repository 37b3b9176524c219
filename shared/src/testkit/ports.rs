//! Loopback ports for servers a test starts in another process (a registry, a RabbitMQ node).
//!
//! Such a port is chosen, released, and bound again by the server seconds later. A port from
//! the kernel's ephemeral range (`bind` to port 0) can be handed out in between, to another
//! test's `bind(0)` or as the local port of any outgoing connection, and the server then fails
//! with `EADDRINUSE`. So these ports are chosen at random below that range, where the kernel
//! never assigns a port by itself; what is left is two tests drawing the same port in the
//! same second, which the random draw over thousands of ports makes rare.

use std::net::TcpListener;
use std::ops::Range;

/// Where the draw starts: above the well-known ports and the usual fixed service ports.
const LOWEST: u16 = 10_000;

/// A loopback port below the ephemeral range that nothing listens on right now.
pub fn free_port() -> u16 {
    free_port_base(&[0])
}

/// A base port such that `base + offset` is below the ephemeral range and free right now for
/// every offset (for servers that derive several ports from one, like a RabbitMQ cluster's
/// distribution ports).
pub fn free_port_base(offsets: &[u16]) -> u16 {
    let widest = offsets.iter().copied().max().unwrap_or(0);
    let range = LOWEST..ephemeral_start().saturating_sub(widest);
    assert!(
        !range.is_empty(),
        "no room below the ephemeral port range for ports {offsets:?} apart"
    );
    let free = |port: u16| TcpListener::bind(("127.0.0.1", port)).is_ok();
    (0..1000)
        .map(|_| draw(&range))
        .find(|base| offsets.iter().all(|offset| free(base + offset)))
        .unwrap_or_else(|| panic!("no free loopback ports {offsets:?} apart in {range:?}"))
}

/// A random port in `range` (not empty).
fn draw(range: &Range<u16>) -> u16 {
    let span = u128::from(range.end - range.start);
    range.start + (uuid::Uuid::new_v4().as_u128() % span) as u16
}

/// The first port of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`; Linux's
/// default 32768 where it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_and_free() {
        let base = free_port_base(&[0, 1, 20_000]);
        assert!(base >= LOWEST && base + 20_000 < ephemeral_start());
        TcpListener::bind(("127.0.0.1", base)).expect("the base port is free");
    }
}
