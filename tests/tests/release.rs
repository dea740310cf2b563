//! The release workflow (.github/workflows/release.yml), checked by the pinned actionlint.

use gitops_e2e::{Output, run, tool, workspace_root};

fn actionlint(workflow: &std::path::Path) -> Output {
    // shellcheck and pyflakes are used when installed; leave them out so that the result does
    // not depend on the machine.
    run(
        &tool("actionlint", "actionlint"),
        &[
            "-shellcheck=",
            "-pyflakes=",
            workflow.to_str().expect("utf-8 path"),
        ],
        None,
        None,
    )
}

#[test]
fn the_release_workflow_passes_actionlint() {
    let workflow = workspace_root().join(".github/workflows/release.yml");
    actionlint(&workflow).ok("actionlint .github/workflows/release.yml");
}

/// The check has teeth: a job that reads an undefined matrix value fails it.
#[test]
fn actionlint_rejects_a_broken_workflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workflows = dir.path().join(".github/workflows");
    std::fs::create_dir_all(&workflows).expect("mkdir");
    let workflow = workflows.join("broken.yml");
    std::fs::write(
        &workflow,
        "on: push\njobs:\n  build:\n    runs-on: ${{ matrix.runner }}\n    steps:\n      - run: echo\n",
    )
    .expect("write");
    let output = actionlint(&workflow);
    assert!(!output.success, "{}", output.combined());
    assert!(output.stdout.contains("matrix"), "{}", output.combined());
}
