//! Telling "the port was taken" apart from other start-up failures: a component that exits
//! because it cannot listen says so in its log (Go's `listen tcp H:P: bind: address already in
//! use`), and `ss` names the process that holds the port.

use std::process::{Command, Stdio};

const GO_BIND_ERROR: &str = ": bind: address already in use";

/// The `host:port` a component could not listen on, from the tail of its log.
pub(crate) fn taken_address(log_tail: &str) -> Option<String> {
    log_tail.lines().rev().find_map(|line| {
        let before = &line[..line.find(GO_BIND_ERROR)?];
        let address = before.rsplit(' ').next()?;
        address
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
            .then(|| address.to_owned())
    })
}

/// ` by pid N (name)` for the process listening on `address`'s port, or empty when `ss` does
/// not know (it is only a hint).
pub(crate) fn holder(address: &str) -> String {
    let Some((_, port)) = address.rsplit_once(':') else {
        return String::new();
    };
    let output = Command::new("ss")
        .args(["-Hltnp", "sport", "=", &format!(":{port}")])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    output
        .ok()
        .and_then(|output| listener_process(&String::from_utf8_lossy(&output.stdout)))
        .map(|(pid, name)| format!(" by pid {pid} ({name})"))
        .unwrap_or_default()
}

/// The first process in `ss -p` output: `users:(("name",pid=N,fd=M))`.
fn listener_process(ss_output: &str) -> Option<(u32, String)> {
    let users = &ss_output[ss_output.find("users:((\"")? + "users:((\"".len()..];
    let (name, rest) = users.split_once("\",pid=")?;
    let pid = rest.split([',', ')']).next()?.parse().ok()?;
    Some((pid, name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubelets_bind_error_names_the_address() {
        let tail = "I1206 kubelet.go:1 \"Starting\"\n\
                    E1206 server.go:212 \"Failed to listen and serve\" err=\"listen tcp 10.88.0.1:10250: bind: address already in use\"";
        assert_eq!(taken_address(tail).as_deref(), Some("10.88.0.1:10250"));
    }

    #[test]
    fn a_wrapped_bind_error_and_ipv6_addresses_are_understood() {
        let tail = "Error: failed to create listener: failed to listen on 127.0.0.1:10259: \
                    listen tcp [::1]:10259: bind: address already in use";
        assert_eq!(taken_address(tail).as_deref(), Some("[::1]:10259"));
    }

    #[test]
    fn other_failures_are_not_a_taken_port() {
        assert_eq!(taken_address("E1206 open /x: permission denied"), None);
        assert_eq!(taken_address(""), None);
    }

    #[test]
    fn the_listening_process_is_read_from_ss() {
        let output =
            "LISTEN 0 128 0.0.0.0:10250 0.0.0.0:* users:((\"node_failures-1a\",pid=4242,fd=3))\n";
        assert_eq!(
            listener_process(output),
            Some((4242, "node_failures-1a".to_owned()))
        );
        assert_eq!(
            listener_process("LISTEN 0 128 0.0.0.0:10250 0.0.0.0:*\n"),
            None
        );
    }
}
