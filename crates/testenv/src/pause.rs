//! The node's Pod sandbox ("pause") image, built locally with crane: no registry is reachable
//! here, so it cannot be pulled. Cached per Kubernetes version under `tools/images/`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::node::PAUSE_IMAGE;
use crate::pins;
use crate::registry::LocalRegistry;
use crate::util::FileLock;

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
    let crane = pins::binary("crane", "crane")?;
    let registry = LocalRegistry::start(&crane)?;
    let staged = format!("{}/pause:build", registry.address());
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
    )?;
    drop(registry);
    std::fs::rename(&built, &archive).context(|| format!("moving {}", archive.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(archive)
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
