//! The image archives `cargo xtask image` writes (`target/images/<name>.tar`, OCI layouts as tar
//! archives): which image each holds, read before a container runtime imports it, so that a
//! missing or broken archive is one clear line rather than a runtime's error.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Annotation in the archive's index.json naming the image (`ctr images import` reads it).
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// The image an archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    /// Full reference, e.g. `ghcr.io/gitops-lifecycle-management/gitops-cleanup:0.1.0`.
    pub reference: String,
    /// Manifest digest (`sha256:…`): the image's identity in the runtime.
    pub digest: String,
}

/// `<workspace>/target/images/<name>.tar`.
pub fn archive_path(workspace_root: &Path, name: &str) -> PathBuf {
    workspace_root
        .join("target")
        .join("images")
        .join(format!("{name}.tar"))
}

/// Reads the index of the archive at `path`.
pub fn read_archive(path: &Path) -> Result<ArchivedImage> {
    let broken = |reason: String| Error::ImageArchive {
        path: path.to_owned(),
        reason,
    };
    if !path.is_file() {
        return Err(broken(
            "missing; build the images with `cargo xtask image`".into(),
        ));
    }
    let output = Command::new("tar")
        .args(["--extract", "--to-stdout", "--file"])
        .arg(path)
        .arg("index.json")
        .output()
        .map_err(|error| broken(format!("running tar: {error}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or("tar failed");
        return Err(broken(format!("not an OCI image archive ({first})")));
    }
    let index: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| broken(format!("index.json is not JSON: {error}")))?;
    let manifests = index["manifests"].as_array().map(Vec::as_slice);
    let Some([manifest]) = manifests else {
        return Err(broken("index.json does not list exactly one image".into()));
    };
    let field = |value: &serde_json::Value| value.as_str().map(str::to_owned);
    match (
        field(&manifest["annotations"][IMAGE_NAME_ANNOTATION]),
        field(&manifest["digest"]),
    ) {
        (Some(reference), Some(digest)) => Ok(ArchivedImage { reference, digest }),
        _ => Err(broken(format!(
            "index.json names no image ({IMAGE_NAME_ANNOTATION}) or digest"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_archive_is_one_line_naming_the_fix() {
        let error = read_archive(Path::new("/nonexistent/gitops-cleanup.tar"))
            .expect_err("missing archive")
            .to_string();
        assert_eq!(
            error,
            "image archive /nonexistent/gitops-cleanup.tar: missing; build the images with `cargo xtask image`"
        );
    }

    #[test]
    fn a_corrupt_archive_is_one_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("broken.tar");
        std::fs::write(&path, b"not a tar archive at all, just text\n").expect("write");
        let error = read_archive(&path)
            .expect_err("corrupt archive")
            .to_string();
        assert!(
            error.starts_with(&format!(
                "image archive {}: not an OCI image archive (",
                path.display()
            )),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
    }
}
