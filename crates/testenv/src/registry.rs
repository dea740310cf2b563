//! A throw-away image registry (`crane registry serve`, in memory) on a loopback port: crane
//! edits image configs only on a registry. Used for the node's pause image and by `cargo xtask
//! image`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::error::{Error, IoContext, Result};

/// A running `crane registry serve`, stopped (by pid) when dropped.
#[derive(Debug)]
pub struct LocalRegistry {
    child: Child,
    address: String,
}

impl LocalRegistry {
    /// Starts `crane` (the pinned binary) on a port the kernel picks; returns once it serves.
    pub fn start(crane: &Path) -> Result<Self> {
        let mut child = Command::new(crane)
            .args(["registry", "serve", "--address", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context(|| format!("starting {} registry serve", crane.display()))?;
        let stderr = child.stderr.take().ok_or_else(|| Error::CommandOutput {
            command: "crane registry serve".into(),
            detail: "no stderr to read its port from".into(),
        })?;
        let mut seen = Vec::new();
        let mut lines = BufReader::new(stderr).lines();
        // The port it announces ("serving on port N") is the only race-free way to learn it.
        while let Some(Ok(line)) = lines.next() {
            if let Some(port) = line.split("serving on port ").nth(1) {
                let address = format!("127.0.0.1:{}", port.trim());
                // Keep reading its request log: a closed pipe would kill it (SIGPIPE).
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(Self { child, address });
            }
            seen.push(line);
        }
        let _ = child.kill();
        let status = child.wait().context(|| "waiting for crane".to_owned())?;
        Err(Error::CommandOutput {
            command: "crane registry serve".into(),
            detail: format!("exited ({status}) before serving: {}", seen.join(" | ")),
        })
    }

    /// `127.0.0.1:PORT`, the host part of image references in this registry.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// The announced address answers the registry API's version check, and the registry is
    /// gone once dropped.
    #[test]
    fn serves_on_the_announced_address_until_dropped() {
        crate::ensure_tools(&["crane"]).expect("crane");
        let crane = crate::pins::binary("crane", "crane").expect("crane pinned");
        let registry = LocalRegistry::start(&crane).expect("registry starts");
        let address = registry.address().to_owned();
        let mut stream = TcpStream::connect(&address).expect("connects");
        stream
            .write_all(b"GET /v2/ HTTP/1.0\r\nHost: registry\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "{answer}"
        );
        drop(registry);
        assert!(
            TcpStream::connect(&address).is_err(),
            "{address} still serves"
        );
    }
}
