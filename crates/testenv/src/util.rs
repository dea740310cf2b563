//! Small helpers shared by the modules of this crate.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// An exclusive `flock(2)` on a file, released on drop. Compatible with `flock(1)`, which the
/// environment's watchdog script uses on the same file.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock is held; says why when another process holds it.
    pub(crate) fn acquire(path: &Path, waiting_for: &str) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "testenv: waiting for {waiting_for} (lock {})",
                    path.display()
                );
                file.lock()
                    .context(|| format!("locking {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).context(|| format!("locking {}", path.display()));
            }
        }
        Ok(Self { _file: file })
    }
}

/// Runs a future to completion on a fresh runtime in its own thread, so that synchronous code
/// can wait on the API server whether or not the caller is itself inside a Tokio runtime.
pub(crate) fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|runtime| runtime.block_on(future))
    });
    match handle.join() {
        Ok(result) => result.context(|| "starting a Tokio runtime".to_owned()),
        Err(panic) => Err(Error::HelperPanicked(panic_message(&panic))),
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// The last `lines` lines of a log file (empty when it cannot be read).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buffer))
        .context(|| "reading /dev/urandom".to_owned())?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Writes a file completely or not at all (readers never see half a file).
pub(crate) fn write_atomic(path: &Path, contents: impl AsRef<[u8]>) -> Result<()> {
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, contents).context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).context(|| format!("renaming to {}", path.display()))
}
