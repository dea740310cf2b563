//! `cargo xtask image`: OCI images of both controllers (and of the authentik double, for tests
//! that run it as a Pod) without a container engine.
//!
//! Binaries: statically linked (`+crt-static` on the host's gnu target: glibc's static
//! libraries; the musl target cannot be installed on the project's machines). Images: two
//! layers (base files, binary) assembled by `gitops_testenv::oci` (crane, pinned in tools.toml,
//! in a throw-away loopback registry); this module only builds and stages the files. Two builds
//! of one commit give one digest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use gitops_testenv::oci::{ImageConfig, build_image, check_static, reproducible_tar};
use gitops_testenv::registry::LocalRegistry;
use serde_json::json;

/// `<registry>/<REPOSITORY_PREFIX>/<name>:<version>`, as the chart's default image references.
const REPOSITORY_PREFIX: &str = "gitops-lifecycle-management";
/// distroless's `nonroot`: the user the chart's restricted securityContext runs as.
const NONROOT: &str = "65532:65532";
/// Debian's ca-certificates bundle, where rustls-native-certs looks for it.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The base layer's own files (shared with the Dockerfile).
const BASE_FILES: &str = "deploy/image";
/// Where the manifest of a build is written, beside the archives.
pub const REPORT_FILE: &str = "images.json";

/// One image: which binary it runs and how it describes itself.
struct ImageSpec {
    name: &'static str,
    /// Cargo package, whose binary has the image's name.
    package: &'static str,
    description: &'static str,
    ports: &'static [&'static str],
    /// Default arguments (the image config's Cmd).
    args: &'static [&'static str],
}

const IMAGES: [ImageSpec; 3] = [
    ImageSpec {
        name: "gitops-service-discovery",
        package: "gitops-service-discovery",
        description: "Keeps authentik proxy providers, applications and outpost assignments matching ProxyConfigs",
        ports: &["8080/tcp", "8081/tcp"],
        args: &[],
    },
    ImageSpec {
        name: "gitops-cleanup",
        package: "gitops-cleanup",
        description: "Deletes finished Jobs and Pods after their retention period and sweeps orphaned authentik objects",
        ports: &["8080/tcp", "8081/tcp"],
        args: &[],
    },
    ImageSpec {
        name: "authentik-double",
        package: "authentik-double",
        description: "Test double of the authentik API for end-to-end tests (not part of the product)",
        ports: &["9000/tcp"],
        // In a Pod it must listen beyond loopback.
        args: &["--listen", "0.0.0.0:9000"],
    },
];

const DEFAULT_PROFILE: &str = "release";
const DEFAULT_REGISTRY: &str = "ghcr.io";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cargo profile of the binaries: release (what users run) or dev (builds faster).
    #[arg(long, default_value = DEFAULT_PROFILE, value_parser = ["release", "dev"])]
    profile: String,
    /// Registry named in the image references (the chart's `image.registry`).
    #[arg(long, default_value = DEFAULT_REGISTRY)]
    registry: String,
    /// Directory for the archives and layouts [default: target/images].
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            profile: DEFAULT_PROFILE.to_owned(),
            registry: DEFAULT_REGISTRY.to_owned(),
            out: None,
        }
    }
}

/// The commit the images are built from.
struct Source {
    revision: String,
    /// SOURCE_DATE_EPOCH when set, else the commit time: every file's mtime in the layers.
    epoch: u64,
}

pub fn run(root: &Path, args: &Args) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("target").join("images"));
    let source = Source::of(root)?;
    let (triple, platform) = host_target()?;
    ensure_ca_bundle()?;
    gitops_testenv::ensure_tools(&["crane"])?;
    let crane = gitops_testenv::pins::binary("crane", "crane")?;

    let started = std::time::Instant::now();
    build_binaries(root, &args.profile, triple)?;
    eprintln!(
        "==> image: static {} binaries built in {}s",
        args.profile,
        started.elapsed().as_secs()
    );
    let profile_dir = if args.profile == "dev" {
        "debug"
    } else {
        "release"
    };
    let bin_dir = root.join("target").join(triple).join(profile_dir);

    let work = out.join(".work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let base_layer = base_layer(root, &work, source.epoch)?;

    let registry = LocalRegistry::start(&crane)?;
    let mut report = Vec::new();
    for spec in &IMAGES {
        let binary = bin_dir.join(spec.name);
        check_static(&binary)?;
        let app_layer = app_layer(&work, &binary, spec.name, source.epoch)?;
        let reference = format!(
            "{}/{REPOSITORY_PREFIX}/{}:{}",
            args.registry,
            spec.name,
            env!("CARGO_PKG_VERSION")
        );
        let image = Image {
            spec,
            reference: &reference,
            platform,
            source: &source,
        };
        let digest = image.assemble(&crane, &registry, &base_layer, &app_layer, &out)?;
        let archive = out.join(format!("{}.tar", spec.name));
        let size = std::fs::metadata(&archive)
            .with_context(|| format!("reading {}", archive.display()))?
            .len();
        println!(
            "{reference}  {digest}  {:.1} MiB  {}",
            size as f64 / f64::from(1 << 20),
            archive.display()
        );
        report.push(json!({
            "name": spec.name,
            "reference": reference,
            "digest": digest,
            "archive": archive,
            "layout": out.join(spec.name),
            "size": size,
            "profile": args.profile,
            "platform": platform,
        }));
    }
    drop(registry);
    std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    let report_path = out.join(REPORT_FILE);
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", report_path.display()))?;
    eprintln!(
        "==> image: {} images in {} ({}s); import with `ctr -n k8s.io images import <archive>`",
        IMAGES.len(),
        out.display(),
        started.elapsed().as_secs()
    );
    Ok(())
}

impl Source {
    fn of(root: &Path) -> Result<Self> {
        let mut revision = git(root, &["rev-parse", "HEAD"])?;
        if !git(root, &["status", "--porcelain", "--untracked-files=no"])?.is_empty() {
            eprintln!("warning: the work tree has uncommitted changes; labelled {revision}-dirty");
            revision.push_str("-dirty");
        }
        let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(value) if !value.is_empty() => value,
            _ => git(root, &["log", "-1", "--format=%ct"])?,
        };
        let epoch = epoch
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH {epoch:?} is not a number of seconds"))?;
        Ok(Self { revision, epoch })
    }

    /// RFC 3339, for `org.opencontainers.image.created`.
    fn created(&self) -> String {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(self.epoch)).to_string()
    }
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The host's gnu target and the matching OCI platform.
fn host_target() -> Result<(&'static str, &'static str)> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(("x86_64-unknown-linux-gnu", "linux/amd64")),
        "aarch64" => Ok(("aarch64-unknown-linux-gnu", "linux/arm64")),
        other => bail!("no image platform for the host architecture {other}"),
    }
}

/// Debian's bundle is what goes into the base layer; install it when this machine lacks it.
fn ensure_ca_bundle() -> Result<()> {
    gitops_testenv::ensure_debian_packages(&["ca-certificates".to_owned()])?;
    if !Path::new(CA_BUNDLE).is_file() {
        bail!("{CA_BUNDLE} is missing although ca-certificates is installed; reinstall it");
    }
    Ok(())
}

/// Variables `cargo run` and `cargo test` set for the processes they start. Build scripts (ring's,
/// through cc) watch some of them, so a build started from xtask or from a test would not reuse
/// one started from a shell: the static build runs without them.
const RUN_ONLY_VARIABLES: [&str; 4] = [
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_TARGET_TMPDIR",
    "CARGO_CRATE_NAME",
];

fn build_binaries(root: &Path, profile: &str, triple: &str) -> Result<()> {
    let mut args = vec![
        "build",
        "--locked",
        "--profile",
        profile,
        "--target",
        triple,
    ];
    for spec in &IMAGES {
        args.extend(["--package", spec.package]);
    }
    eprintln!("==> cargo {}", args.join(" "));
    let mut command = crate::run::cargo_command();
    command.args(&args).current_dir(root);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if RUN_ONLY_VARIABLES
            .iter()
            .any(|prefix| text.starts_with(prefix))
            || [
                "LD_LIBRARY_PATH",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&text.as_ref())
        {
            command.env_remove(&name);
        }
    }
    // With an explicit --target, RUSTFLAGS reach only the target's crates, not build scripts or
    // proc-macros (which must stay dynamic to be loaded by rustc).
    let status = command
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// /etc/passwd and /etc/group (nonroot, 65532) and the CA bundle; nothing else.
fn base_layer(root: &Path, work: &Path, epoch: u64) -> Result<PathBuf> {
    let staging = work.join("base");
    let etc = staging.join("etc");
    let certs = etc.join("ssl").join("certs");
    create_dirs(&staging, &certs)?;
    for file in ["passwd", "group"] {
        copy_file(
            &root.join(BASE_FILES).join("etc").join(file),
            &etc.join(file),
            0o644,
        )?;
    }
    copy_file(
        Path::new(CA_BUNDLE),
        &certs.join("ca-certificates.crt"),
        0o644,
    )?;
    let layer = work.join("base.tar");
    reproducible_tar(&staging, &["etc"], &layer, epoch)?;
    Ok(layer)
}

/// The binary at /usr/local/bin/<name>.
fn app_layer(work: &Path, binary: &Path, name: &str, epoch: u64) -> Result<PathBuf> {
    let staging = work.join(name);
    let bin = staging.join("usr").join("local").join("bin");
    create_dirs(&staging, &bin)?;
    copy_file(binary, &bin.join(name), 0o755)?;
    let layer = work.join(format!("{name}.tar"));
    reproducible_tar(&staging, &["usr"], &layer, epoch)?;
    Ok(layer)
}

/// Creates `dir` and its parents below `staging`, each 0755 whatever the umask.
fn create_dirs(staging: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for ancestor in dir.ancestors().take_while(|path| *path != staging) {
        set_mode(ancestor, 0o755)?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    set_mode(to, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

struct Image<'a> {
    spec: &'a ImageSpec,
    reference: &'a str,
    platform: &'a str,
    source: &'a Source,
}

impl Image<'_> {
    /// Builds the image in the loopback registry and writes `<out>/<name>/` (OCI layout) and
    /// `<out>/<name>.tar` (the same, archived). Returns the manifest digest.
    fn assemble(
        &self,
        crane: &Path,
        registry: &LocalRegistry,
        base_layer: &Path,
        app_layer: &Path,
        out: &Path,
    ) -> Result<String> {
        let name = self.spec.name;
        let entrypoint = format!("/usr/local/bin/{name}");
        let labels = self.labels();
        let config = ImageConfig {
            reference: self.reference,
            platform: self.platform,
            user: NONROOT,
            entrypoint: &entrypoint,
            args: self.spec.args,
            ports: self.spec.ports,
            labels: &labels,
        };
        let built = build_image(
            crane,
            registry,
            name,
            &[base_layer, app_layer],
            &config,
            out,
            self.source.epoch,
        )?;
        Ok(built.digest)
    }

    fn labels(&self) -> [(&'static str, String); 7] {
        [
            ("org.opencontainers.image.title", self.spec.name.to_owned()),
            (
                "org.opencontainers.image.description",
                self.spec.description.to_owned(),
            ),
            (
                "org.opencontainers.image.version",
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            (
                "org.opencontainers.image.revision",
                self.source.revision.clone(),
            ),
            (
                "org.opencontainers.image.source",
                env!("CARGO_PKG_REPOSITORY").to_owned(),
            ),
            (
                "org.opencontainers.image.licenses",
                env!("CARGO_PKG_LICENSE").to_owned(),
            ),
            ("org.opencontainers.image.created", self.source.created()),
        ]
    }
}
