//! Images of pinned tools the node runs, built locally with crane (no registry is reachable
//! here, so nothing can be pulled) and cached per version under `tools/images/`: the Pod
//! sandbox ("pause") image and Traefik's. Each holds one static binary at `/` and nothing else
//! (Traefik's as upstream's own Dockerfile places it), stamped with time 0: one digest on every
//! machine.

use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::node::PAUSE_IMAGE;
use crate::oci::{ImageConfig, build_image, check_static, reproducible_tar};
use crate::pins;
use crate::registry::LocalRegistry;
use crate::util::FileLock;

/// The pause image as an archive for `ctr images import`, built on first use.
pub(crate) fn pause_image() -> Result<PathBuf> {
    let kubernetes = pins::tool("kubernetes")?;
    let pause = pins::binary("kubernetes", "pause")?;
    cached_image(
        &format!("pause-{}", kubernetes.key("kubernetes")),
        &pause,
        &ImageConfig {
            reference: PAUSE_IMAGE,
            user: "65535:65535",
            entrypoint: "/pause",
            ..ImageConfig::default()
        },
    )
}

/// The pinned Traefik's image: its archive and the reference Pods name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraefikImage {
    pub archive: PathBuf,
    pub reference: String,
}

/// The pinned Traefik (built first if needed) as an image, built on first use. Blocking.
pub fn traefik_image() -> Result<TraefikImage> {
    crate::ensure_tools(&["traefik", "crane"])?;
    let traefik = pins::tool("traefik")?;
    let binary = pins::binary("traefik", "traefik")?;
    let reference = format!("gitops-testenv.local/traefik:v{}", traefik.version);
    let labels = [
        ("org.opencontainers.image.title", "traefik".to_owned()),
        ("org.opencontainers.image.version", traefik.version.clone()),
        (
            "org.opencontainers.image.source",
            "https://github.com/traefik/traefik".to_owned(),
        ),
        ("org.opencontainers.image.licenses", "MIT".to_owned()),
    ];
    let archive = cached_image(
        &traefik.key("traefik"),
        &binary,
        &ImageConfig {
            reference: &reference,
            user: "65532:65532",
            entrypoint: "/traefik",
            ports: &["8000/tcp", "8080/tcp"],
            labels: &labels,
            ..ImageConfig::default()
        },
    )?;
    Ok(TraefikImage { archive, reference })
}

/// `tools/images/<key>.tar`: an image of the static `binary` alone, built unless cached.
fn cached_image(key: &str, binary: &Path, config: &ImageConfig<'_>) -> Result<PathBuf> {
    let images = pins::tools_dir().join("images");
    let archive = images.join(format!("{key}.tar"));
    if archive.is_file() {
        return Ok(archive);
    }
    let _lock = FileLock::acquire(&images.join(".lock"), "another build of a tool image")?;
    if archive.is_file() {
        return Ok(archive);
    }
    check_static(binary)?;
    let work = images.join(format!("{key}.partial"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).context(|| format!("creating {}", work.display()))?;
    let (dir, file) = match (binary.parent(), binary.file_name().and_then(|f| f.to_str())) {
        (Some(dir), Some(file)) => (dir, file),
        _ => {
            return Err(Error::CommandOutput {
                command: format!("building the image {}", config.reference),
                detail: format!("{} names no file", binary.display()),
            });
        }
    };
    let layer = work.join("layer.tar");
    reproducible_tar(dir, &[file], &layer, 0)?;
    let crane = pins::binary("crane", "crane")?;
    let registry = LocalRegistry::start(&crane)?;
    let config = ImageConfig {
        platform: host_platform()?,
        ..config.clone()
    };
    let built = build_image(&crane, &registry, key, &[&layer], &config, &work, 0)?;
    drop(registry);
    std::fs::rename(&built.archive, &archive)
        .context(|| format!("moving {}", archive.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(archive)
}

/// The OCI platform of this machine's binaries.
fn host_platform() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("linux/amd64"),
        "aarch64" => Ok("linux/arm64"),
        other => Err(Error::CommandOutput {
            command: "choosing an image platform".into(),
            detail: format!("no OCI platform for the architecture {other}"),
        }),
    }
}
