//! Assembling an OCI image from layer tarballs without a container engine: crane (pinned in
//! tools.toml) appends the layers to an empty OCI image in a throw-away loopback registry, sets
//! the config and writes an OCI layout, archived for `ctr images import`. Used by `cargo xtask
//! image` (the product images), the node's pause image and the Traefik image. Layers made with
//! [`reproducible_tar`] and a fixed `epoch` give one digest on every build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::error::{Error, IoContext, Result};
use crate::images::IMAGE_NAME_ANNOTATION;
use crate::registry::LocalRegistry;

/// What goes into one image besides its layers.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig<'a> {
    /// Full reference the archive names (`io.containerd.image.name`), e.g.
    /// `ghcr.io/gitops-lifecycle-management/gitops-cleanup:0.1.0`.
    pub reference: &'a str,
    /// OCI platform, e.g. `linux/amd64`.
    pub platform: &'a str,
    /// `UID:GID`.
    pub user: &'a str,
    pub entrypoint: &'a str,
    /// Default arguments (the config's Cmd); none when empty.
    pub args: &'a [&'a str],
    /// Exposed ports (`8080/tcp`); none when empty.
    pub ports: &'a [&'a str],
    pub labels: &'a [(&'a str, String)],
}

/// The layout and archive [`build_image`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// Manifest digest (`sha256:…`).
    pub digest: String,
    /// `<out>/<name>/`: the OCI layout.
    pub layout: PathBuf,
    /// `<out>/<name>.tar`: the layout archived (what `ctr images import` reads).
    pub archive: PathBuf,
}

/// Builds image `name` from `layers` (bottom first) in `registry` and writes `<out>/<name>/`
/// and `<out>/<name>.tar`, the latter's entries stamped with `epoch`.
pub fn build_image(
    crane: &Path,
    registry: &LocalRegistry,
    name: &str,
    layers: &[&Path],
    config: &ImageConfig<'_>,
    out: &Path,
    epoch: u64,
) -> Result<BuiltImage> {
    let staged = format!("{}/{name}:staged", registry.address());
    let built = format!("{}/{name}:built", registry.address());
    let mut append = vec!["append".to_owned(), "--oci-empty-base".to_owned()];
    for layer in layers {
        append.extend(["--new_layer".to_owned(), layer.display().to_string()]);
    }
    append.extend(["--new_tag".to_owned(), staged.clone()]);
    crane_run(crane, &append)?;

    let mut mutate = vec![
        "mutate".to_owned(),
        staged,
        "--tag".to_owned(),
        built.clone(),
        "--set-platform".to_owned(),
        config.platform.to_owned(),
        "--user".to_owned(),
        config.user.to_owned(),
        "--entrypoint".to_owned(),
        config.entrypoint.to_owned(),
    ];
    if !config.ports.is_empty() {
        mutate.extend(["--exposed-ports".to_owned(), config.ports.join(",")]);
    }
    if !config.args.is_empty() {
        mutate.extend(["--cmd".to_owned(), config.args.join(",")]);
    }
    for (key, value) in config.labels {
        mutate.extend(["--label".to_owned(), format!("{key}={value}")]);
    }
    crane_run(crane, &mutate)?;
    let digest = crane_run(crane, &["digest".to_owned(), built.clone()])?;

    let layout = out.join(name);
    let _ = std::fs::remove_dir_all(&layout);
    crane_run(
        crane,
        &[
            "pull".to_owned(),
            "--format=oci".to_owned(),
            built,
            layout.display().to_string(),
        ],
    )?;
    name_in_index(&layout, config.reference)?;
    let archive = out.join(format!("{name}.tar"));
    reproducible_tar(
        &layout,
        &["blobs", "index.json", "oci-layout"],
        &archive,
        epoch,
    )?;
    Ok(BuiltImage {
        digest,
        layout,
        archive,
    })
}

/// crane names the layout's image by the loopback registry's address (or not at all); name it
/// by its real reference, which `ctr images import` reads from io.containerd.image.name.
fn name_in_index(layout: &Path, reference: &str) -> Result<()> {
    let path = layout.join("index.json");
    let text = std::fs::read_to_string(&path).context(|| format!("reading {}", path.display()))?;
    let mut index: Value = serde_json::from_str(&text)?;
    let tag = reference.rsplit(':').next().unwrap_or_default();
    let Some([manifest]) = index["manifests"].as_array_mut().map(Vec::as_mut_slice) else {
        return Err(Error::ImageArchive {
            path,
            reason: "crane wrote a layout that does not list exactly one manifest".into(),
        });
    };
    manifest["annotations"] = json!({
        IMAGE_NAME_ANNOTATION: reference,
        "org.opencontainers.image.ref.name": tag,
    });
    std::fs::write(&path, serde_json::to_vec(&index)?)
        .context(|| format!("writing {}", path.display()))
}

/// GNU tar with the reproducible-builds options: sorted names, one mtime, root ownership by
/// number, no atime/ctime or user names.
pub fn reproducible_tar(dir: &Path, entries: &[&str], archive: &Path, epoch: u64) -> Result<()> {
    let mut command = Command::new("tar");
    command
        .args([
            "--create",
            "--format=gnu",
            "--sort=name",
            &format!("--mtime=@{epoch}"),
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--file",
        ])
        .arg(archive)
        .arg("--directory")
        .arg(dir)
        .args(entries);
    run(&mut command, "tar").map(drop)
}

/// An image without a C library runs only binaries without a program interpreter (PT_INTERP):
/// there is no dynamic loader beside them. Uses binutils' readelf.
pub fn check_static(binary: &Path) -> Result<()> {
    let mut readelf = Command::new("readelf");
    readelf.args(["--program-headers", "--wide"]).arg(binary);
    let headers = run(&mut readelf, &format!("readelf {}", binary.display()))?;
    if headers.contains("INTERP") {
        return Err(Error::CommandOutput {
            command: format!("readelf {}", binary.display()),
            detail:
                "dynamically linked (it has a program interpreter); an image holds no loader for it"
                    .into(),
        });
    }
    Ok(())
}

/// Runs crane, returning its trimmed stdout; its stderr becomes the error.
fn crane_run(crane: &Path, args: &[String]) -> Result<String> {
    let verb = format!("crane {}", args.first().map_or("", String::as_str));
    run(Command::new(crane).args(args), &verb)
}

fn run(command: &mut Command, what: &str) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .context(|| format!("running {what}"))?;
    if !output.status.success() {
        return Err(Error::CommandOutput {
            command: what.to_owned(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_binary_is_refused_naming_it() {
        // Rust links glibc dynamically by default: this test's own binary has an interpreter.
        let own = std::env::current_exe().expect("own path");
        let error = check_static(&own).expect_err("dynamic").to_string();
        assert!(error.contains("dynamically linked"), "{error}");
        assert!(error.contains(&own.display().to_string()), "{error}");
    }
}
