//! Free loopback ports for the processes the tier starts, so that two runs
//! (or a run beside anything else on the machine) never collide on a fixed
//! port.
//!
//! A port is found by binding port 0 and closing the socket again; between
//! that and the process binding it, something else could take it. Ports
//! handed out once are never handed out again by this process, which rules
//! out the collisions the tier could cause itself.

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::{Mutex, PoisonError};

use crate::support::{Context, Outcome};

static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Outcome<u16> {
    let mut given = GIVEN.lock().unwrap_or_else(PoisonError::into_inner);
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
        let port = listener
            .local_addr()
            .context("cannot read a bound port")?
            .port();
        if given.insert(port) {
            return Ok(port);
        }
    }
    Err("no free loopback port found in 100 tries".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_not_handed_out_twice() {
        let ports: HashSet<u16> = (0..20).map(|_| free_port().unwrap()).collect();
        assert_eq!(ports.len(), 20);
        assert!(!ports.contains(&0));
    }
}
