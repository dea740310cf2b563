//! Builds the pinned tools from source with the Go toolchain into the cache, once per version.
//!
//! A binary counts as built when it exists in `<name>-v<version>/bin/` and the recipe it was
//! built from (module, package, staging version, link-time variables; kept in
//! `<name>-v<version>/recipes/`) is the one tools.toml describes now. Builds
//! write into a staging directory and move finished binaries in, so an interrupted build never
//! leaves a half-written binary behind, and a file lock keeps concurrent builds (two test
//! binaries, a developer and xtask) from racing.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::pins::{self, BuildMethod, Tool};
use crate::util::{FileLock, tail, write_atomic};

/// How often a long Go command reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// Builds every pinned tool that is not in the cache yet.
pub fn ensure_all_tools() -> Result<()> {
    let names: Vec<&str> = pins::pins()?.tools.keys().map(String::as_str).collect();
    ensure_tools(&names)
}

/// Builds the named tools (keys of `[tools.*]` in tools.toml) unless they are cached.
pub fn ensure_tools(names: &[&str]) -> Result<()> {
    for name in names {
        ensure_tool(name)?;
    }
    Ok(())
}

/// Where a binary comes from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// A Go package (`go build`/`go install`).
    Go(&'a str),
    /// A C file inside the module, linked statically.
    C(&'a str),
}

/// Every binary of `tool` with its source.
fn artifacts(tool: &Tool) -> impl Iterator<Item = (&str, Source<'_>)> {
    let go = tool
        .binaries
        .iter()
        .map(|(binary, package)| (binary.as_str(), Source::Go(package)));
    let c = tool
        .c_programs
        .iter()
        .map(|(binary, file)| (binary.as_str(), Source::C(file)));
    go.chain(c)
}

/// Binaries of `tool` that are not in the cache (or were built differently).
fn missing<'a>(name: &str, tool: &'a Tool) -> Vec<(&'a str, Source<'a>)> {
    let bin_dir = tool.bin_dir(name);
    artifacts(tool)
        .filter(|(binary, source)| {
            let recorded = std::fs::read_to_string(recipe_path(name, tool, binary));
            !bin_dir.join(binary).is_file() || recorded.ok() != Some(recipe(tool, *source))
        })
        .collect()
}

/// Everything that decides what a binary is.
fn recipe(tool: &Tool, source: Source<'_>) -> String {
    match source {
        Source::Go(package) => format!(
            "{}@v{} {package} staging={} ldflags={} tags={} cgo={:?}\n",
            tool.module,
            tool.version,
            tool.staging.as_deref().unwrap_or("-"),
            tool.ldflags(),
            tool.tags.join(","),
            tool.cgo,
        ),
        Source::C(file) => format!("{}@v{} {file} {GCC_STATIC}\n", tool.module, tool.version),
    }
}

/// How C programs are compiled: a static binary runs in an image with nothing else in it.
const GCC_STATIC: &str = "gcc -static -Os -s";

fn recipe_path(name: &str, tool: &Tool, binary: &str) -> PathBuf {
    pins::tools_dir()
        .join(tool.key(name))
        .join("recipes")
        .join(binary)
}

fn ensure_tool(name: &str) -> Result<()> {
    let tool = pins::tool(name)?;
    crate::apt::ensure_packages(&tool.apt)?;
    if missing(name, tool).is_empty() {
        return Ok(());
    }
    let _lock = FileLock::acquire(
        &pins::tools_dir().join(".build.lock"),
        "another build of the pinned tools",
    )?;
    // Someone else may have built it while we waited.
    let missing = missing(name, tool);
    if missing.is_empty() {
        return Ok(());
    }
    check_go()?;

    let key = tool.key(name);
    let root = pins::tools_dir().join(&key);
    let staging = root.join("bin.partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).context(|| format!("creating {}", staging.display()))?;
    let log = root.join("build.log");
    File::create(&log).context(|| format!("creating {}", log.display()))?;

    let started = Instant::now();
    let binaries: Vec<&str> = missing.iter().map(|(binary, _)| *binary).collect();
    eprintln!(
        "==> {key}: building {} from {}@v{} with the Go toolchain (once per version; log: {})",
        binaries.join(", "),
        tool.module,
        tool.version,
        log.display()
    );
    let ldflags = tool.ldflags();
    let tags = tool.tags.join(",");
    let mut go_flags = vec!["-v", "-ldflags", &ldflags];
    if !tags.is_empty() {
        go_flags.extend(["-tags", &tags]);
    }
    let cgo_env = match tool.cgo {
        Some(false) => vec![("CGO_ENABLED", OsStr::new("0"))],
        Some(true) => vec![("CGO_ENABLED", OsStr::new("1"))],
        None => Vec::new(),
    };
    let module_src = match tool.build {
        BuildMethod::Module => Some(prepare_module(name, tool, &log)?),
        BuildMethod::Install => None,
    };
    for (binary, source) in &missing {
        let output = staging.join(binary);
        match (source, &module_src) {
            (Source::Go(package), Some(src)) => {
                let output = output.to_string_lossy();
                let mut args = vec!["build"];
                args.extend(&go_flags);
                args.extend(["-o", &output, package]);
                run_go(
                    src,
                    &args,
                    &cgo_env,
                    &log,
                    &format!("{key}: go build {binary}"),
                )?;
            }
            (Source::Go(package), None) => {
                let target = format!("{package}@v{}", tool.version);
                let mut args = vec!["install"];
                args.extend(&go_flags);
                args.push(&target);
                let mut env = cgo_env.clone();
                env.push(("GOBIN", staging.as_os_str()));
                run_go(
                    &root,
                    &args,
                    &env,
                    &log,
                    &format!("{key}: go install {binary}"),
                )?;
            }
            (Source::C(file), _) => {
                let module = go_mod_download(&tool.module, &tool.version)?;
                compile_c(&module.dir.join(file), &output, &log)?;
            }
        }
    }

    let bin_dir = tool.bin_dir(name);
    let recipes = root.join("recipes");
    for dir in [&bin_dir, &recipes] {
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
    }
    for (binary, source) in &missing {
        let built = staging.join(binary);
        if !built.is_file() {
            return Err(Error::CommandOutput {
                command: format!("the build of {key}"),
                detail: format!("{} was not produced", built.display()),
            });
        }
        let target = bin_dir.join(binary);
        std::fs::rename(&built, &target).context(|| format!("moving {}", target.display()))?;
        write_atomic(&recipe_path(name, tool, binary), recipe(tool, *source))?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    eprintln!(
        "==> {key}: built in {}s into {}",
        started.elapsed().as_secs(),
        bin_dir.display()
    );
    Ok(())
}

/// Compiles one C file into a static binary, appending the compiler's output to `log`.
fn compile_c(source: &Path, output: &Path, log: &Path) -> Result<()> {
    let mut command_line: Vec<String> = GCC_STATIC.split(' ').map(str::to_owned).collect();
    command_line.extend([
        "-o".to_owned(),
        output.to_string_lossy().into_owned(),
        source.to_string_lossy().into_owned(),
    ]);
    let log_file = File::options()
        .append(true)
        .open(log)
        .context(|| format!("opening {}", log.display()))?;
    let stderr = log_file
        .try_clone()
        .context(|| format!("opening {}", log.display()))?;
    let status = Command::new(&command_line[0])
        .args(&command_line[1..])
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .status()
        .context(|| format!("running `{}`", command_line.join(" ")))?;
    if !status.success() {
        return Err(Error::Command {
            command: command_line.join(" "),
            status: status.to_string(),
            log: log.to_owned(),
            tail: tail(log, 30),
        });
    }
    Ok(())
}

fn check_go() -> Result<()> {
    match Command::new("go").arg("version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(Error::CommandOutput {
            command: "go version".into(),
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(Error::GoMissing),
        Err(error) => Err(error).context(|| "running `go version`".to_owned()),
    }
}

/// Writes the generated module that requires `tool.module` (under `tools/src/<key>/`) and tidies
/// it, so that `go build` can build the tool's packages.
fn prepare_module(name: &str, tool: &Tool, log: &Path) -> Result<PathBuf> {
    let src = pins::tools_dir().join("src").join(tool.key(name));
    std::fs::create_dir_all(&src).context(|| format!("creating {}", src.display()))?;

    let download = go_mod_download(&tool.module, &tool.version)?;
    let upstream = std::fs::read_to_string(&download.go_mod)
        .context(|| format!("reading {}", download.go_mod.display()))?;
    let go_directive = upstream
        .lines()
        .find_map(|line| line.strip_prefix("go "))
        .map(str::trim)
        .ok_or_else(|| Error::CommandOutput {
            command: format!("go mod download {}", tool.module),
            detail: format!("{} has no `go` directive", download.go_mod.display()),
        })?;

    let mut go_mod = format!(
        "// Generated by gitops-testenv from tools.toml; rewritten on every build.\n\
         module gitops-testenv/{name}\n\ngo {go_directive}\n\nrequire {} v{}\n",
        tool.module, tool.version
    );
    if let Some(staging_version) = &tool.staging {
        let staging = staging_modules(&upstream);
        if staging.is_empty() {
            return Err(Error::CommandOutput {
                command: format!("go mod download {}", tool.module),
                detail: "no `=> ./staging/…` replace directives found".into(),
            });
        }
        // k8s.io/kubernetes replaces its staging modules with local directories, which only
        // exist inside its own tree; pin each to the published module of the same release.
        go_mod.push_str("\nreplace (\n");
        for module in staging {
            go_mod.push_str(&format!("\t{module} => {module} v{staging_version}\n"));
        }
        go_mod.push_str(")\n");
    }
    // Replace directives act only in the main module, so the upstream's forks (Traefik's
    // `github.com/gorilla/mux => github.com/containous/mux …`) must be restated here. Directory
    // replaces only work inside the upstream's own tree; the published modules stand in.
    let forks = module_replaces(&upstream);
    if !forks.is_empty() {
        go_mod.push_str("\nreplace (\n");
        for (module, target) in forks {
            go_mod.push_str(&format!("\t{module} => {target}\n"));
        }
        go_mod.push_str(")\n");
    }
    write_atomic(&src.join("go.mod"), go_mod)?;

    let mut tools_go = String::from(
        "//go:build tools\n\n// Generated by gitops-testenv: makes `go mod tidy` keep the tool's packages.\npackage tools\n\nimport (\n",
    );
    for package in tool.binaries.values() {
        tools_go.push_str(&format!("\t_ \"{package}\"\n"));
    }
    tools_go.push_str(")\n");
    write_atomic(&src.join("tools.go"), tools_go)?;

    run_go(
        &src,
        &["mod", "tidy"],
        &[],
        log,
        &format!("{}: go mod tidy", tool.key(name)),
    )?;
    Ok(src)
}

/// Every replace directive of a go.mod (single-line and block form), as (left, right) of `=>`.
fn replace_directives(go_mod: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut in_block = false;
    go_mod.lines().filter_map(move |line| {
        let line = line.split("//").next().unwrap_or_default().trim();
        if line == "replace (" {
            in_block = true;
            return None;
        }
        if in_block && line == ")" {
            in_block = false;
            return None;
        }
        let directive = line.strip_prefix("replace ").or(in_block.then_some(line))?;
        let (left, right) = directive.split_once("=>")?;
        Some((left.trim(), right.trim()))
    })
}

/// Modules that an upstream go.mod replaces with `./staging/…` directories.
fn staging_modules(go_mod: &str) -> Vec<String> {
    replace_directives(go_mod)
        .filter(|(_, right)| right.starts_with("./staging/"))
        .filter_map(|(left, _)| left.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Replace directives of an upstream go.mod that point at another module (not a directory).
fn module_replaces(go_mod: &str) -> Vec<(String, String)> {
    replace_directives(go_mod)
        .filter(|(_, right)| !right.starts_with('.') && !right.starts_with('/'))
        .map(|(left, right)| (left.to_owned(), right.to_owned()))
        .collect()
}

/// What `go mod download -json` reports about one module.
#[derive(Debug)]
pub(crate) struct Downloaded {
    /// The extracted module.
    pub dir: PathBuf,
    /// Its go.mod.
    pub go_mod: PathBuf,
}

/// Downloads `module@v<version>` through the Go module proxy into the module cache (a no-op
/// when it is there already).
pub(crate) fn go_mod_download(module: &str, version: &str) -> Result<Downloaded> {
    check_go()?;
    let target = format!("{module}@v{version}");
    let command = format!("go mod download -json {target}");
    eprintln!("==> {command}");
    let output = Command::new("go")
        .args(["mod", "download", "-json", &target])
        // Outside any module, so that no go.mod of the caller's takes part.
        .current_dir(std::env::temp_dir())
        .output()
        .context(|| format!("running `{command}`"))?;
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|error| Error::CommandOutput {
            command: command.clone(),
            detail: format!(
                "{error}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        })?;
    let field = |name: &str| report.get(name).and_then(serde_json::Value::as_str);
    if let Some(error) = field("Error") {
        return Err(Error::CommandOutput {
            command,
            detail: error.to_owned(),
        });
    }
    match (field("Dir"), field("GoMod")) {
        (Some(dir), Some(go_mod)) if output.status.success() => Ok(Downloaded {
            dir: dir.into(),
            go_mod: go_mod.into(),
        }),
        _ => Err(Error::CommandOutput {
            command,
            detail: format!(
                "exit {}, stderr: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        }),
    }
}

/// Runs a long Go command, appending everything it prints to `log` and reporting progress
/// (packages compiled, modules downloaded) on stderr.
fn run_go(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &OsStr)],
    log: &Path,
    label: &str,
) -> Result<()> {
    let command_line = format!("go {}", args.join(" "));
    let mut log_file = File::options()
        .append(true)
        .open(log)
        .context(|| format!("opening {}", log.display()))?;
    writeln!(log_file, "$ {command_line}").context(|| format!("writing {}", log.display()))?;
    let stdout = log_file
        .try_clone()
        .context(|| format!("opening {}", log.display()))?;

    let mut command = Command::new("go");
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .context(|| format!("starting `{command_line}`"))?;

    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut compiled, mut downloaded) = (0usize, 0usize);
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context(|| format!("reading output of `{command_line}`"))?;
            writeln!(log_file, "{line}").context(|| format!("writing {}", log.display()))?;
            if line.starts_with("go: downloading") {
                downloaded += 1;
            } else if !line.contains(' ') {
                // `go build -v` prints one bare package path per package it compiles.
                compiled += 1;
            }
            if last_report.elapsed() >= PROGRESS_EVERY {
                eprintln!(
                    "    {label}: {compiled} packages compiled, {downloaded} modules downloaded ({}s)",
                    started.elapsed().as_secs()
                );
                last_report = Instant::now();
            }
        }
    }
    let status = child
        .wait()
        .context(|| format!("waiting for `{command_line}`"))?;
    if !status.success() {
        return Err(Error::Command {
            command: format!("{command_line} (in {})", dir.display()),
            status: status.to_string(),
            log: log.to_owned(),
            tail: tail(log, 30),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_modules_are_read_from_the_replace_block() {
        let go_mod = "module k8s.io/kubernetes\n\ngo 1.26.0\n\nrequire (\n\tk8s.io/api v0.0.0\n)\n\n\
                      replace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\
                      \tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\
                      \tgithub.com/x/y => github.com/x/y v1.2.3\n)\n\
                      replace k8s.io/kms => ./staging/src/k8s.io/kms\n";
        assert_eq!(
            staging_modules(go_mod),
            ["k8s.io/api", "k8s.io/client-go", "k8s.io/kms"]
        );
        assert_eq!(
            module_replaces(go_mod),
            [(
                "github.com/x/y".to_owned(),
                "github.com/x/y v1.2.3".to_owned()
            )]
        );
    }

    #[test]
    fn module_replaces_keep_forks_and_drop_directories() {
        // Shapes from Traefik v3.6 and etcd's server module.
        let go_mod = "module github.com/traefik/traefik/v3\n\ngo 1.25.0\n\n\
                      require github.com/gorilla/mux v1.8.1 // indirect\n\n\
                      // Containous forks\n\
                      replace (\n\
                      \tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e\n\
                      \tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59 // fork\n\
                      \tgo.etcd.io/etcd/api/v3 => ../api\n\
                      )\n\
                      replace github.com/mailgun/minheap v0.0.1 => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595\n\
                      replace github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext\n";
        assert_eq!(
            module_replaces(go_mod),
            [
                (
                    "github.com/abbot/go-http-auth".to_owned(),
                    "github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e"
                        .to_owned()
                ),
                (
                    "github.com/gorilla/mux".to_owned(),
                    "github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59".to_owned()
                ),
                (
                    "github.com/mailgun/minheap v0.0.1".to_owned(),
                    "github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595".to_owned()
                ),
            ]
        );
        assert!(staging_modules(go_mod).is_empty());
    }
}
