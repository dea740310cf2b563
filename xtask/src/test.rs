//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

pub fn run(root: &Path) -> Result<()> {
    step(root, "formatting", &["fmt", "--all", "--", "--check"])?;
    step(
        root,
        "clippy",
        &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"],
    )?;
    step(root, "tests", &["test", "--workspace", "--locked"])?;
    Ok(())
}

fn step(root: &Path, name: &str, args: &[&str]) -> Result<()> {
    eprintln!("==> {name}: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO")).args(args).current_dir(root).status()?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
