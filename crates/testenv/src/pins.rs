//! The pin file (`tools.toml` at the repository root) and the cache layout derived from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Compiled in, so that every test binary and xtask agree on the versions.
const PIN_FILE: &str = include_str!("../../../tools.toml");

/// Everything `tools.toml` pins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pins {
    /// Binaries built from source, by name (`kubernetes`, `etcd`, …).
    pub tools: BTreeMap<String, Tool>,
    /// Third-party CRDs read out of published Go modules, by name.
    pub crds: BTreeMap<String, CrdSource>,
    /// Code generators installed from crates.io (`cargo install --locked`), by name.
    #[serde(default)]
    pub generators: BTreeMap<String, Generator>,
}

/// A code generator: a crates.io crate at a version whose binary has the crate's name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    /// Version without the leading `v`.
    pub version: String,
}

impl Generator {
    /// Directory holding the installed binary (`cargo install --root` puts it under `bin/`).
    pub fn root(&self, name: &str) -> PathBuf {
        tools_dir().join(format!("{name}-v{}", self.version))
    }
}

/// One tool: a Go module at a version and the binaries built from it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Version without the leading `v`.
    pub version: String,
    /// The Go module the binaries come from.
    pub module: String,
    /// How the binaries are built.
    pub build: BuildMethod,
    /// Version of the `k8s.io/*` staging modules (`0.<minor>.<patch>`), for k8s.io/kubernetes.
    #[serde(default)]
    pub staging: Option<String>,
    /// Go variables set at link time (`package.variable=value`, with `{version}`, `{major}`
    /// and `{minor}` substituted), as the upstream release builds set them.
    #[serde(default)]
    pub set_vars: Vec<String>,
    /// Go build tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// `false` builds with `CGO_ENABLED=0`; unset leaves Go's default (on where gcc exists).
    #[serde(default)]
    pub cgo: Option<bool>,
    /// Links without the symbol table and DWARF (`-ldflags "-s -w"`), as upstream release
    /// builds do: a binary that goes into an image stays a fraction of the size.
    #[serde(default)]
    pub strip: bool,
    /// Binary name → Go package it is built from.
    pub binaries: BTreeMap<String, String>,
    /// Binary name → C source file inside the module, linked statically with gcc.
    #[serde(default)]
    pub c_programs: BTreeMap<String, String>,
    /// Debian packages the build or the binaries need (installed with apt-get when missing).
    #[serde(default)]
    pub apt: Vec<String>,
}

/// How a tool's binaries are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildMethod {
    /// A generated module requires the tool's module; `go build` each binary.
    Module,
    /// `go install <package>@v<version>`.
    Install,
}

/// CRD manifests inside a published Go module.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrdSource {
    /// Version without the leading `v`.
    pub version: String,
    /// The Go module holding the files.
    pub module: String,
    /// Paths of the CRD manifests inside the module.
    pub files: Vec<String>,
}

/// The parsed pin file.
pub fn pins() -> Result<&'static Pins> {
    static PINS: OnceLock<Result<Pins, String>> = OnceLock::new();
    PINS.get_or_init(|| toml::from_str(PIN_FILE).map_err(|error| error.to_string()))
        .as_ref()
        .map_err(|message| Error::Pins(message.clone()))
}

/// One pinned tool by name.
pub fn tool(name: &str) -> Result<&'static Tool> {
    pins()?
        .tools
        .get(name)
        .ok_or_else(|| Error::Pins(format!("no [tools.{name}] table")))
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/gitops-lifecycle-management`: outside the repository so
/// that clones and `cargo clean` keep the (expensive) builds.
pub fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gitops-lifecycle-management")
}

/// Where built tools, generated Go modules and cached CRDs live.
pub fn tools_dir() -> PathBuf {
    cache_root().join("tools")
}

impl Tool {
    /// `<name>-v<version>`: the cache key.
    pub fn key(&self, name: &str) -> String {
        format!("{name}-v{}", self.version)
    }

    /// `-ldflags` value for `strip` and `set_vars` (empty when there are none).
    pub fn ldflags(&self) -> String {
        let mut parts = self.version.split('.');
        let major = parts.next().unwrap_or_default();
        let minor = parts.next().unwrap_or_default();
        let strip = self.strip.then(|| "-s -w".to_owned());
        let set_vars = self.set_vars.iter().map(|assignment| {
            let value = assignment
                .replace("{version}", &self.version)
                .replace("{major}", major)
                .replace("{minor}", minor);
            format!("-X {value}")
        });
        strip
            .into_iter()
            .chain(set_vars)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Directory holding this tool's binaries.
    pub fn bin_dir(&self, name: &str) -> PathBuf {
        tools_dir().join(self.key(name)).join("bin")
    }
}

impl CrdSource {
    /// Directory holding the cached copies of this source's CRD files.
    pub fn cache_dir(&self, name: &str) -> PathBuf {
        tools_dir()
            .join("crds")
            .join(format!("{name}-v{}", self.version))
    }
}

/// Path of a pinned binary (which may not be built yet; see [`crate::ensure_tools`]).
pub fn binary(tool_name: &str, binary: &str) -> Result<PathBuf> {
    let tool = tool(tool_name)?;
    if !tool.binaries.contains_key(binary) && !tool.c_programs.contains_key(binary) {
        return Err(Error::Pins(format!(
            "[tools.{tool_name}] builds no binary {binary:?}"
        )));
    }
    Ok(tool.bin_dir(tool_name).join(binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_file_parses_and_pins_what_the_environment_needs() {
        let pins = pins().expect("tools.toml parses");
        for (tool, binary) in [
            ("kubernetes", "kube-apiserver"),
            ("kubernetes", "kube-controller-manager"),
            ("etcd", "etcd"),
            ("helm", "helm"),
            ("prometheus", "promtool"),
            ("crane", "crane"),
            ("actionlint", "actionlint"),
            ("traefik", "traefik"),
        ] {
            binary_path_ends_with(tool, binary);
        }
        let kubernetes = &pins.tools["kubernetes"];
        assert_eq!(kubernetes.build, BuildMethod::Module);
        let staging = kubernetes.staging.as_deref().expect("staging version");
        // k8s.io/kubernetes v1.X.Y pairs with staging modules v0.X.Y.
        assert_eq!(
            staging,
            kubernetes.version.replacen("1.", "0.", 1),
            "staging modules must match the Kubernetes version"
        );
        assert!(pins.crds.values().all(|source| !source.files.is_empty()));
    }

    /// The Traefik Pod's image holds the binary and nothing else: no C library to load.
    #[test]
    fn traefik_is_built_static_and_stripped_like_its_releases() {
        let traefik = tool("traefik").expect("pinned");
        assert_eq!(traefik.cgo, Some(false));
        assert!(
            traefik.ldflags().starts_with("-s -w -X "),
            "{}",
            traefik.ldflags()
        );
    }

    #[test]
    fn kubernetes_binaries_are_stamped_with_their_version() {
        let ldflags = tool("kubernetes").expect("pinned").ldflags();
        assert!(ldflags.contains("-X k8s.io/component-base/version.gitVersion=v1.37.2"));
        assert!(ldflags.contains("-X k8s.io/component-base/version.gitMinor=37"));
        assert!(!ldflags.contains('{'), "{ldflags}");
    }

    /// helm's default Kubernetes version (no --kube-version) must satisfy the chart's
    /// `kubeVersion: >=1.33.0-0`, as it does in helm's release builds.
    #[test]
    fn helm_is_stamped_with_a_kubernetes_version_the_chart_accepts() {
        let ldflags = tool("helm").expect("pinned").ldflags();
        for package in ["pkg/chartutil", "pkg/lint/rules"] {
            assert!(
                ldflags.contains(&format!("-X helm.sh/helm/v3/{package}.k8sVersionMajor=1")),
                "{ldflags}"
            );
            let minor = ldflags
                .split(&format!("helm.sh/helm/v3/{package}.k8sVersionMinor="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|minor| minor.parse::<u32>().ok())
                .expect("k8sVersionMinor set");
            assert!(minor >= 33, "{package}: 1.{minor}");
        }
    }

    // Exactly one of these expands: the Kubernetes version k8s-openapi was built for.
    k8s_openapi::k8s_if_1_33! { const K8S_OPENAPI_MINOR: &str = "33"; }
    k8s_openapi::k8s_if_1_34! { const K8S_OPENAPI_MINOR: &str = "34"; }
    k8s_openapi::k8s_if_1_35! { const K8S_OPENAPI_MINOR: &str = "35"; }
    k8s_openapi::k8s_if_1_36! { const K8S_OPENAPI_MINOR: &str = "36"; }
    k8s_openapi::k8s_if_1_37! { const K8S_OPENAPI_MINOR: &str = "37"; }

    /// The API server the tests run against is the version the workspace's types describe.
    #[test]
    fn kubernetes_matches_the_k8s_openapi_feature() {
        let version = &tool("kubernetes").expect("pinned").version;
        let minor = version.split('.').nth(1).expect("minor version");
        assert_eq!(
            minor, K8S_OPENAPI_MINOR,
            "tools.toml pins Kubernetes {version}"
        );
    }

    fn binary_path_ends_with(tool: &str, name: &str) {
        let path = binary(tool, name).expect("pinned binary");
        assert!(path.ends_with(format!("bin/{name}")), "{}", path.display());
    }
}
