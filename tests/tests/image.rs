//! The images `cargo xtask image` builds (`cargo xtask test` builds them before the tests; by
//! hand: `cargo xtask image`): each archive is a valid OCI image named as the chart's defaults
//! name it, runs its static binary as 65532:65532 with nothing else but the base files (no
//! shell), carries the OCI labels, and a rebuild of the same commit gives the same digests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use gitops_e2e::workspace_root;
use gitops_testenv::images::{ArchivedImage, read_archive};
use serde_json::Value;
use sha2::{Digest, Sha256};

const IMAGES: [&str; 3] = [
    "gitops-service-discovery",
    "gitops-cleanup",
    "authentik-double",
];

const BASE_ENTRIES: [&str; 6] = [
    "etc/",
    "etc/group",
    "etc/passwd",
    "etc/ssl/",
    "etc/ssl/certs/",
    "etc/ssl/certs/ca-certificates.crt",
];

fn images_dir() -> PathBuf {
    workspace_root().join("target").join("images")
}

/// images.json of the last `cargo xtask image`, by image name.
fn report(dir: &Path) -> Vec<Value> {
    let path = dir.join("images.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the images first with `cargo xtask image`",
            path.display()
        )
    });
    serde_json::from_str::<Vec<Value>>(&text).expect("images.json")
}

fn command(program: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The blob a descriptor names, checked against its digest and size.
fn blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
    let digest = descriptor["digest"].as_str().expect("digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob present");
    assert_eq!(format!("{:x}", Sha256::digest(&bytes)), hex, "blob content");
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "blob size"
    );
    bytes
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 path")
}

#[test]
fn archives_hold_valid_oci_images_as_the_chart_runs_them() {
    let dir = images_dir();
    let report = report(&dir);
    let head = String::from_utf8(command(
        "git",
        &["-C", path(&workspace_root()), "rev-parse", "HEAD"],
    ))
    .expect("utf-8");
    for name in IMAGES {
        let entry = report
            .iter()
            .find(|entry| entry["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from images.json"));
        let archive = dir.join(format!("{name}.tar"));
        let ArchivedImage { reference, digest } = read_archive(&archive).expect("readable archive");
        assert_eq!(
            reference,
            format!(
                "ghcr.io/gitops-lifecycle-management/{name}:{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(entry["digest"].as_str(), Some(digest.as_str()));

        let layout = tempfile::tempdir().expect("tempdir");
        command(
            "tar",
            &[
                "--extract",
                "--file",
                path(&archive),
                "--directory",
                path(layout.path()),
            ],
        );
        let layout = layout.path();
        let oci_layout: Value =
            serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).expect("oci-layout"))
                .expect("oci-layout is JSON");
        assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
                .expect("index.json");
        let descriptor = &index["manifests"][0];
        let manifest: Value = serde_json::from_slice(&blob(layout, descriptor)).expect("manifest");
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        let config: Value =
            serde_json::from_slice(&blob(layout, &manifest["config"])).expect("config");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], "amd64");
        let settings = &config["config"];
        assert_eq!(
            settings["User"], "65532:65532",
            "{name}: the chart's runAsUser/runAsGroup"
        );
        assert_eq!(
            settings["Entrypoint"],
            serde_json::json!([format!("/usr/local/bin/{name}")])
        );
        let labels = &settings["Labels"];
        assert_eq!(labels["org.opencontainers.image.title"], name);
        assert_eq!(
            labels["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
        assert_eq!(
            labels["org.opencontainers.image.source"],
            env!("CARGO_PKG_REPOSITORY")
        );
        let revision = labels["org.opencontainers.image.revision"]
            .as_str()
            .expect("revision");
        assert!(
            revision.starts_with(head.trim()),
            "{name}: built from {revision}, HEAD is {head}; rebuild with `cargo xtask image`"
        );

        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 2, "{name}: base and binary");
        let binary_entries: Vec<String> = ["usr/", "usr/local/", "usr/local/bin/"]
            .into_iter()
            .map(str::to_owned)
            .chain([format!("usr/local/bin/{name}")])
            .collect();
        let mut all = BTreeSet::new();
        for (layer, expected) in layers.iter().zip([
            BASE_ENTRIES
                .iter()
                .map(|e| (*e).to_owned())
                .collect::<Vec<_>>(),
            binary_entries,
        ]) {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            let file = layout.join("blobs/sha256").join(
                layer["digest"]
                    .as_str()
                    .expect("digest")
                    .trim_start_matches("sha256:"),
            );
            blob(layout, layer);
            let listing = String::from_utf8(command(
                "tar",
                &[
                    "--list",
                    "--verbose",
                    "--numeric-owner",
                    "--gzip",
                    "--file",
                    path(&file),
                ],
            ))
            .expect("utf-8");
            let mut names = Vec::new();
            for line in listing.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(fields[1], "0/0", "{name}: owned by root: {line}");
                names.push(fields[5].to_owned());
            }
            assert_eq!(names, expected, "{name}: layer contents");
            all.extend(names);
        }
        assert!(
            !all.iter()
                .any(|entry| entry.ends_with("/sh") || entry.starts_with("bin")),
            "{name}: no shell"
        );

        // The users and the binary, as the runtime sees them.
        let bundle = tempfile::tempdir().expect("tempdir");
        let root = bundle.path().join("rootfs");
        std::fs::create_dir(&root).expect("rootfs");
        for layer in layers {
            let file = layout.join("blobs/sha256").join(
                layer["digest"]
                    .as_str()
                    .expect("digest")
                    .trim_start_matches("sha256:"),
            );
            command(
                "tar",
                &[
                    "--extract",
                    "--gzip",
                    "--file",
                    path(&file),
                    "--directory",
                    path(&root),
                ],
            );
        }
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
        assert!(passwd.starts_with("nonroot:x:65532:65532:"), "{passwd}");
        let binary = root.join("usr/local/bin").join(name);
        let headers = String::from_utf8(command(
            "readelf",
            &["--program-headers", "--wide", path(&binary)],
        ))
        .expect("utf-8");
        assert!(
            headers.contains("LOAD") && !headers.contains("INTERP"),
            "{name}: a static executable has no program interpreter:\n{headers}"
        );
        let help = run_with_runc(bundle.path(), name, &settings["Entrypoint"]);
        assert!(help.contains("Usage"), "{name} --help printed:\n{help}");
    }
}

/// Runs the entrypoint with `--help` under runc (the test environment's pinned one) as
/// the chart's securityContext runs it: UID/GID 65532, read-only root filesystem, no
/// capabilities, no new privileges. Returns what it printed.
fn run_with_runc(bundle: &Path, name: &str, entrypoint: &Value) -> String {
    let runc = gitops_e2e::tool("runc", "runc");
    command(path(&runc), &["spec", "--bundle", path(bundle)]);
    let config_path = bundle.join("config.json");
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(&config_path).expect("config.json"))
            .expect("runc spec");
    let mut args = entrypoint.as_array().expect("entrypoint").clone();
    args.push("--help".into());
    let process = &mut config["process"];
    process["terminal"] = false.into();
    process["user"] = serde_json::json!({"uid": 65532, "gid": 65532});
    process["args"] = Value::Array(args);
    process["noNewPrivileges"] = true.into();
    process["capabilities"] = serde_json::json!({});
    config["root"]["readonly"] = true.into();
    std::fs::write(&config_path, config.to_string()).expect("writing config.json");
    let state = tempfile::tempdir().expect("tempdir");
    let id = format!("image-test-{name}-{}", std::process::id());
    String::from_utf8(command(
        path(&runc),
        &[
            "--root",
            path(state.path()),
            "run",
            "--bundle",
            path(bundle),
            &id,
        ],
    ))
    .expect("utf-8")
}

/// Two builds of one commit give the same digests (the second reuses cargo's build and
/// assembles the images again into a directory of its own).
#[test]
fn a_rebuild_gives_the_same_digests() {
    let first = report(&images_dir());
    let profile = first[0]["profile"].as_str().expect("profile").to_owned();
    let out = tempfile::tempdir().expect("tempdir");
    // The xtask binary `cargo xtask` built beside this test (target/<profile>/xtask).
    let xtask = std::env::current_exe()
        .expect("current exe")
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps")
        .join("xtask");
    assert!(
        xtask.is_file(),
        "{} is not built: run `cargo build -p xtask`",
        xtask.display()
    );
    let status = Command::new(&xtask)
        .args(["image", "--profile", &profile, "--out", path(out.path())])
        .current_dir(workspace_root())
        .status()
        .expect("running cargo xtask image");
    assert!(
        status.success(),
        "cargo xtask image --out {}",
        out.path().display()
    );
    let digests = |report: &[Value]| -> Vec<(String, String)> {
        report
            .iter()
            .map(|entry| (entry["name"].to_string(), entry["digest"].to_string()))
            .collect()
    };
    assert_eq!(digests(&report(out.path())), digests(&first));
}
