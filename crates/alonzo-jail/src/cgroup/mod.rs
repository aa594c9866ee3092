//! Cgroups for sandboxes, on cgroup v1 (legacy or hybrid) and v2 hosts.
//!
//! - `layout.rs`: [`CgroupLayout`], which hierarchies are mounted where.
//! - `parent.rs`: [`CgroupParent`], `<the server's own cgroup>/alonzo-<name>` in each used
//!   hierarchy, under which all of this server's sandboxes live.
//! - `sandbox.rs`: [`SandboxCgroup`], one per sandbox, with memory, CPU and pids limits,
//!   peak-memory and OOM read-outs, kill-all and removal.
//!
//! Only directories this module created are written or removed; the rest of the tree belongs
//! to other software. A v1 sandbox uses the memory, cpu and pids hierarchies (plus the
//! controller-less v2 tree of a hybrid host, for `cgroup.kill`); cpuset is deliberately not
//! used, because new cpuset cgroups start with no CPUs or memory nodes.

mod layout;
mod parent;
mod sandbox;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::cgroup::layout::{CgroupLayout, CgroupMount};
pub use crate::cgroup::parent::CgroupParent;
pub use crate::cgroup::sandbox::SandboxCgroup;

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither a cgroup v1 memory hierarchy nor a cgroup2 filesystem is mounted.
    #[error("no usable cgroup filesystem is mounted")]
    NoCgroupFs,
    /// The host uses v1 for memory but this v1 controller is not mounted.
    #[error("cgroup v1 controller {0} is not mounted")]
    MissingController(String),
    /// `/proc/self/cgroup` does not list the hierarchy.
    #[error("this process's cgroup in the {0} hierarchy is unknown")]
    NotInCgroup(String),
    /// This process's cgroup is not visible under the hierarchy's mount.
    #[error("cgroup {cgroup} is not below the mount at {mount}")]
    OutsideMount {
        /// The cgroup path from `/proc/self/cgroup`.
        cgroup: PathBuf,
        /// The mount point.
        mount: PathBuf,
    },
    /// cgroup v2: controllers the sandboxes need are not delegated to the server's cgroup.
    #[error("controllers {missing} are not available in {dir}; delegate them to the server's cgroup (systemd: Delegate=yes)")]
    Unavailable {
        /// The server's cgroup directory.
        dir: PathBuf,
        /// The missing controllers, space-separated.
        missing: String,
    },
    /// cgroup v2: controllers cannot be enabled below the server's cgroup because processes
    /// other than the server live in it.
    #[error(
        "{0} holds processes other than this server, so controllers cannot be enabled below it"
    )]
    InternalProcesses(PathBuf),
    /// A parent name or sandbox id that is not a plain file name.
    #[error("invalid cgroup name {0:?}: use 1 to 128 of [A-Za-z0-9_.-], not starting with a dot")]
    InvalidName(String),
    /// The sandbox cgroup exists already (an id was reused, or a stale cgroup was left).
    #[error("cgroup {0} already exists")]
    Exists(PathBuf),
    /// Text in a cgroup or proc file could not be parsed.
    #[error("malformed {what} line {line:?}")]
    Parse {
        /// Which file.
        what: &'static str,
        /// The offending line.
        line: String,
    },
    /// A file operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was done: "read", "write", "mkdir", "rmdir".
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl CgroupError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        CgroupError::Io { action, path: path.to_owned(), source }
    }
}

/// A sandbox's resource limits. Zero means "no limit" for each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory limit in bytes; swap is disabled for the sandbox.
    pub memory_bytes: u64,
    /// CPU time per `CPU_PERIOD_US` period, in microseconds (100_000 = one core).
    pub cpu_quota_us: u64,
    /// Maximum number of processes and threads, the jail's own three included.
    pub pids_max: u64,
}

/// The CFS period the CPU quota is relative to.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The directories of one cgroup (the parent or a sandbox) in every hierarchy used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dirs {
    V1 { memory: PathBuf, cpu: PathBuf, pids: PathBuf, unified: Option<PathBuf> },
    V2 { dir: PathBuf },
}

impl Dirs {
    /// Every directory, in creation order.
    pub(crate) fn all(&self) -> Vec<&Path> {
        match self {
            Dirs::V1 { memory, cpu, pids, unified } => {
                [Some(memory), Some(cpu), Some(pids), unified.as_ref()]
                    .into_iter()
                    .flatten()
                    .map(PathBuf::as_path)
                    .collect()
            }
            Dirs::V2 { dir } => vec![dir.as_path()],
        }
    }

    /// The same cgroup's child `name` in every hierarchy.
    pub(crate) fn child(&self, name: &str) -> Dirs {
        match self {
            Dirs::V1 { memory, cpu, pids, unified } => Dirs::V1 {
                memory: memory.join(name),
                cpu: cpu.join(name),
                pids: pids.join(name),
                unified: unified.as_ref().map(|u| u.join(name)),
            },
            Dirs::V2 { dir } => Dirs::V2 { dir: dir.join(name) },
        }
    }

    /// The directory whose `cgroup.procs` lists the cgroup's processes.
    pub(crate) fn primary(&self) -> &Path {
        match self {
            Dirs::V1 { memory, .. } => memory,
            Dirs::V2 { dir } => dir,
        }
    }

    /// The directory with the v2 core files (`cgroup.kill`, `cgroup.freeze`), if any.
    pub(crate) fn v2_core(&self) -> Option<&Path> {
        match self {
            Dirs::V1 { unified, .. } => unified.as_deref(),
            Dirs::V2 { dir } => Some(dir),
        }
    }
}

/// Checks that `name` can be used as one path component.
pub(crate) fn check_name(name: &str) -> Result<(), CgroupError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(CgroupError::InvalidName(name.to_owned()))
    }
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::io("write", path, source))
}

/// Writes `value` unless the file already holds it (or cannot be read): for files whose
/// every write costs the kernel more than a read.
pub(crate) fn write_if_changed(path: &Path, value: &str) -> Result<(), CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(current) if current.trim() == value => Ok(()),
        _ => write(path, value),
    }
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::io("read", path, source))
}

/// The value of `key` in a flat-keyed file such as `memory.events` (`oom_kill 1`).
pub(crate) fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `limit` as cgroup files write "no limit".
pub(crate) fn limit_or(limit: u64, unlimited: &str) -> String {
    if limit == 0 {
        unlimited.to_owned()
    } else {
        limit.to_string()
    }
}

/// `mkdir`, accepting an existing directory.
pub(crate) fn mkdir_if_missing(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => {
            Err(CgroupError::io("mkdir", path, err))
        }
        _ => Ok(()),
    }
}

/// `rmdir`, retrying while the cgroup is busy (its last processes are still exiting) for up
/// to `patience`. A missing directory counts as removed.
pub(crate) fn rmdir_patiently(path: &Path, patience: Duration) -> Result<(), CgroupError> {
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_micros(100);
    loop {
        match std::fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(err) => return Err(CgroupError::io("rmdir", path, err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_plain_components() {
        for ok in ["alonzo", "fn-1_2.v3", "0b1c9e2e-9d3f-4c4e-8f0e-1e2d3c4b5a69"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keyed_values_match_whole_keys() {
        let events = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed_value(events, "oom_kill"), Some(1));
        assert_eq!(keyed_value(events, "oom"), Some(2));
        assert_eq!(keyed_value("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"), None);
    }
}
