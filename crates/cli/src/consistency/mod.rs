//! ProxyConfigs against authentik, shared by `verify` (findings) and `report` (counts).
//!
//! What authentik should hold comes from `gitops-plan`, exactly as the controller computes
//! it; which objects are ours is judged by the controller's ownership table on the
//! `AuthentikObject` records (docs/design/ownership.md). Reading ([`gather`]) is apart from the
//! comparison ([`evaluate`], pure) and what it reports ([`Finding`]).

mod compare;
mod findings;
mod gather;

pub use compare::evaluate;
pub use findings::{Summary, Verification};
pub use gather::{gather, list_proxyconfigs};
