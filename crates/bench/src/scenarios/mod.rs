//! One module per scenario of docs/benchmarks.md.

pub mod baseline;
pub mod bulk;
pub mod cleanup;
pub mod memory;
pub mod restart;
pub mod single;
pub mod steady;
