//! Loopback ports for processes a test starts and that bind the port themselves.
//!
//! Binding port 0 and closing again yields a port from the kernel's ephemeral range, and until
//! the child binds it, any outgoing connection on the machine may get it as its local port
//! (seen in CI: a controller's metrics port taken that way, the controller exiting with
//! `Address already in use`). Ports below that range are never handed out implicitly, so only
//! another explicit bind can race for one; a random start keeps concurrent pickers apart.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};

use crate::error::{IoContext, Result};

/// Where the search starts: clear of the well-known and registered ports most services use.
const LOWEST: u16 = 10_000;

/// A loopback port that was free a moment ago and lies outside the ephemeral range when the
/// machine leaves room below it (else one from the kernel, as before).
pub fn free_port() -> Result<u16> {
    let below_ephemeral = ephemeral_range_start()
        .filter(|start| *start > LOWEST + 1_000)
        .map(|start| LOWEST..start);
    if let Some(range) = below_ephemeral {
        let size = u64::from(range.end - range.start);
        let offset = RandomState::new().build_hasher().finish() % size;
        for step in 0..size.min(2_000) {
            let port = range.start + u16::try_from((offset + step) % size).unwrap_or(0);
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return Ok(port);
            }
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context(|| "finding a free loopback port".to_owned())?;
    Ok(listener
        .local_addr()
        .context(|| "reading a bound port".to_owned())?
        .port())
}

/// The first port of `net.ipv4.ip_local_port_range`.
fn ephemeral_range_start() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_free_and_below_the_ephemeral_range() {
        let port = free_port().expect("a port");
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("still free");
        if let Some(start) = ephemeral_range_start().filter(|s| *s > LOWEST + 1_000) {
            assert!((LOWEST..start).contains(&port), "{port} not below {start}");
        }
    }

    #[test]
    fn successive_picks_differ() {
        let picks: std::collections::BTreeSet<u16> =
            (0..20).map(|_| free_port().expect("a port")).collect();
        assert!(picks.len() > 15, "{picks:?}");
    }
}
