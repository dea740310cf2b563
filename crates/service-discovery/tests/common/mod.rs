//! The end-to-end harness, running this crate's controller binary.

#![allow(dead_code)] // each test binary uses a different part of it

pub use gitops_harness::*;

pub async fn harness(purpose: &str) -> Harness {
    Harness::new(purpose, env!("CARGO_BIN_EXE_gitops-service-discovery")).await
}
