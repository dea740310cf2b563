//! The project's real Kubernetes test environment.
//!
//! - [`ensure_tools`] builds the tools pinned in `tools.toml` (Kubernetes, etcd, helm, promtool)
//!   from source with the Go toolchain into a cache outside the repository, once per version.
//! - [`ControlPlane`] runs etcd, kube-apiserver and kube-controller-manager on free loopback
//!   ports (RBAC, PodSecurity admission, service-account tokens, garbage collection, the Job
//!   controller); [`shared`] decides which environment a process uses and who stops it.
//! - [`TestEnv`], [`TestNamespace`], [`install_proxyconfig_crd`] and
//!   [`install_third_party_crds`] are what integration tests use.
//! - [`Traefik`] (a process) and [`TraefikPod`] (a Deployment on the node, from
//!   [`traefik_image`]) put the pinned Traefik in front of a test's routes; [`oci`] assembles
//!   images with crane for them and for `cargo xtask image`.
//!
//! Only xtask and dev-dependencies may depend on this crate, never a product crate.

mod apt;
mod control_plane;
mod crds;
mod error;
mod harness;
pub mod images;
mod node;
mod node_watchdog;
pub mod oci;
pub mod pins;
mod pki;
mod port_taken;
mod ports;
pub mod registry;
pub mod shared;
mod tool_images;
mod tools;
mod traefik;
mod util;
mod wait;

pub use apt::ensure_packages as ensure_debian_packages;
pub use control_plane::{COMPONENTS, ControlPlane, EnvironmentInfo, Frozen, ProcessStatus};
pub use crds::{
    install_product_crds, install_proxyconfig_crd, install_third_party_crds, third_party_crd_files,
    uninstall_crd,
};
pub use error::{Error, Result};
pub use harness::{TEST_NAMESPACE_LABEL, TestEnv, TestNamespace, apply};
pub use node::{KUBELET_PORT, NODE_COMPONENTS, NODE_IP, NODE_NAME, PAUSE_IMAGE};
pub use node_watchdog::{NODE_WATCHDOG_TEST, run_node_watchdog};
pub use ports::free_port;
pub use tool_images::{TraefikImage, traefik_image};
pub use tools::{ensure_all_tools, ensure_tools};
pub use traefik::{Traefik, TraefikPod, TraefikWeb, backend_service, set_cookie, sign_in};
pub use wait::{WAIT, eventually, metric_value, poll_until, wait_until};
