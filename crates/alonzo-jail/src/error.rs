//! `JailError`, the error of spawning and setting up a sandbox. Cgroup management has its own
//! `CgroupError` in `cgroup/mod.rs`.

use std::process::ExitStatus;

/// Why a sandbox could not be started or set up.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// The spec is unusable; nothing was started.
    #[error("invalid jail spec: {0}")]
    InvalidSpec(String),
    /// The jail process could not be started at all (missing executable, fork failure).
    #[error("cannot start the jail process {exe}")]
    Start {
        /// The executable that was to be re-executed.
        exe: String,
        /// Why `Command::spawn` failed.
        #[source]
        source: std::io::Error,
    },
    /// The jail process failed before it handed over the Runtime API listener. `message` is
    /// what it wrote on stderr.
    #[error("sandbox set-up failed ({status}): {message}")]
    Setup {
        /// The jail process's exit status (125 for a set-up failure).
        status: ExitStatus,
        /// The jail process's stderr, trimmed.
        message: String,
    },
    /// The jail process did not answer within the spawn timeout and was killed.
    #[error("the jail process did not hand over its listener within {0:?}")]
    Timeout(std::time::Duration),
    /// The spawn protocol between the server and the jail process was violated.
    #[error("spawn protocol: {0}")]
    Protocol(String),
    /// A system call failed during a named step.
    #[error("{step}: {source}")]
    Sys {
        /// What was being done, e.g. "unshare the mount namespace".
        step: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// An I/O operation failed during a named step.
    #[error("{step}: {source}")]
    Io {
        /// What was being done, e.g. "read the spec".
        step: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Attaches a step description to a failed system call or I/O operation.
pub(crate) trait Context<T> {
    fn context(self, step: impl FnOnce() -> String) -> Result<T, JailError>;
}

impl<T> Context<T> for Result<T, nix::Error> {
    fn context(self, step: impl FnOnce() -> String) -> Result<T, JailError> {
        self.map_err(|source| JailError::Sys { step: step(), source })
    }
}

impl<T> Context<T> for Result<T, std::io::Error> {
    fn context(self, step: impl FnOnce() -> String) -> Result<T, JailError> {
        self.map_err(|source| JailError::Io { step: step(), source })
    }
}
