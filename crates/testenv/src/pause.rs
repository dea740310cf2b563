//! The node's Pod sandbox ("pause") image, built locally with crane: no registry is reachable
//! here, so it cannot be pulled. Cached per Kubernetes version under `tools/images/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::node::PAUSE_IMAGE;
use crate::pins;
use crate::util::{FileLock, tail};
use crate::wait::poll_until;

/// The pause image as a tarball for `ctr images import`, built on first use.
pub(crate) fn pause_image() -> Result<PathBuf> {
    let kubernetes = pins::tool("kubernetes")?;
    let images = pins::tools_dir().join("images");
    let archive = images.join(format!("pause-{}.tar", kubernetes.key("kubernetes")));
    if archive.is_file() {
        return Ok(archive);
    }
    let _lock = FileLock::acquire(&images.join(".lock"), "another build of the pause image")?;
    if archive.is_file() {
        return Ok(archive);
    }
    let work = images.join("pause.partial");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).context(|| format!("creating {}", work.display()))?;
    let pause = pins::binary("kubernetes", "pause")?;
    let layer = work.join("layer.tar");
    // One file, root-owned, with a fixed time: the same layer on every machine.
    run(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "--mtime=@0"])
            .arg("-C")
            .arg(pause.parent().unwrap_or(Path::new("/")))
            .arg("-cf")
            .arg(&layer)
            .arg("pause"),
        &work,
    )?;
    let built = work.join("pause.tar");
    with_local_registry(&work, |registry| {
        let staged = format!("{registry}/pause:build");
        let crane = pins::binary("crane", "crane")?;
        run(
            Command::new(&crane)
                .args(["append", "--oci-empty-base", "-f"])
                .arg(&layer)
                .args(["-t", &staged]),
            &work,
        )?;
        run(
            Command::new(&crane)
                .args(["mutate", &staged])
                .args(["--entrypoint", "/pause", "--user", "65535:65535"])
                .args(["--set-platform", "linux/amd64", "-t", PAUSE_IMAGE, "-o"])
                .arg(&built),
            &work,
        )
    })?;
    std::fs::rename(&built, &archive).context(|| format!("moving {}", archive.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(archive)
}

/// Runs `body` with a throw-away registry (`crane registry serve`) on a loopback port: crane
/// edits image configs only on a registry.
fn with_local_registry<T>(work: &Path, body: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    let port = crate::control_plane::free_port()?;
    let address = format!("127.0.0.1:{port}");
    let blobs = work.join("blobs");
    std::fs::create_dir_all(&blobs).context(|| format!("creating {}", blobs.display()))?;
    let log = work.join("registry.log");
    let out = std::fs::File::create(&log).context(|| format!("creating {}", log.display()))?;
    let mut registry = KillOnDrop(
        Command::new(pins::binary("crane", "crane")?)
            .args(["registry", "serve", "--address", &address, "--disk"])
            .arg(&blobs)
            .stdin(Stdio::null())
            .stdout(
                out.try_clone()
                    .context(|| format!("opening {}", log.display()))?,
            )
            .stderr(out)
            .spawn()
            .context(|| "starting `crane registry serve`".to_owned())?,
    );
    crate::util::block_on(poll_until(
        "the local image registry to listen",
        Duration::from_secs(30),
        move || async move {
            Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(drop))
        },
    ))??;
    if let Ok(Some(status)) = registry.0.try_wait() {
        return Err(Error::CommandOutput {
            command: "crane registry serve".into(),
            detail: format!("exited ({status}): {}", tail(&log, 10)),
        });
    }
    body(&address)
}

/// A helper process that must not outlive its use.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(command: &mut Command, work: &Path) -> Result<()> {
    let line = format!("{command:?}");
    let output = command
        .current_dir(work)
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running {line}"))?;
    if !output.status.success() {
        return Err(Error::CommandOutput {
            command: line,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
