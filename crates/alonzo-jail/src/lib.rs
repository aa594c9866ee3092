//! Alonzo's privileged sandbox: the only crate that makes raw system calls or contains
//! `unsafe`, and the only one that creates namespaces, mounts, cgroups or changes credentials.
//!
//! The main types:
//!
//! - [`spawn::JailSpec`] describes one sandbox (root, binds, ids, limits, program, environment).
//! - [`spawn::spawn`] starts a sandbox from a multithreaded server and returns a
//!   [`spawn::Jail`]: the jail process handle, the program's stdout/stderr pipes and the Runtime
//!   API listener that lives in the sandbox's network namespace.
//! - [`spawn::main_if_jail`] must be the first call in the binary's `main`: when the binary is
//!   re-executed as `exe __jail`, it runs the jail sequence (`sequence.rs`) and never returns.
//! - [`Prepared::build_ahead`] builds a whole sandbox before its function is known, leaving
//!   the function's binds, `/tmp` size and program (or the message to a program started
//!   ahead) for [`Prepared::assign`] (`assign.rs`).
//! - [`cgroup`] detects the cgroup layout (v1, hybrid or v2), creates this server's parent cgroup
//!   and one cgroup per sandbox with memory, CPU and pids limits, and kills or removes them.
//!
//! - `seccomp` holds the system-call filter compiled from `seccomp/<arch>.json` at build time,
//!   installed right before the program is executed.
//! - `launcher` is the Python zygote (`--python-zygote`): the interpreter's own executable,
//!   run up to where a runtime started ahead waits, with this crate loaded into it as an
//!   extension module (`python.rs`; the binary carries the crate built as a shared library,
//!   [`set_python_extension`]), which forks jail processes on request, whose R continues that
//!   interpreter instead of executing one; `process` is the server's handle on a jail process
//!   of either origin, and `scrub` overwrites the host details such a copy would inherit.
//!
//! The privileged work happens in a single-threaded process that is not the server (a freshly
//! executed jail process, or a copy of a launcher, itself freshly executed): the server only
//! forks and execs through `std::process::Command`.
//! See `sequence.rs` for the step-by-step sequence and the reason for each step.

#![allow(unsafe_code)]

mod assign;
pub mod cgroup;
mod error;
mod exec;
pub mod fdpass;
pub mod firewall;
mod init;
pub mod launcher;
mod mounts;
mod net;
mod netlink;
mod process;
mod python;
mod scrub;
mod seccomp;
mod sequence;
pub mod spawn;
mod sys;
mod userns;

// The façade the other crates use: the spawn API at the crate root, cgroups under `cgroup`.
pub use crate::error::JailError;
pub use crate::launcher::{set_python_extension, Launcher, PythonLauncher};
pub use crate::net::JailNetwork;
pub use crate::process::{ExitWatch, JailProcess};
pub use crate::spawn::{
    exit_code, main_if_jail, prepare, spawn, Assignment, Bind, Deferred, Jail, JailSpec, Prepared,
    Program,
};

/// Reads what `fd` has now into `buf` with one `read(2)`: on a non-blocking descriptor,
/// `WouldBlock` when nothing is waiting. For reading a pipe an async runtime owns without a
/// second descriptor (and so without waiting for its reactor to report it readable).
pub fn read_now(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    nix::unistd::read(fd, buf).map_err(std::io::Error::from)
}

/// Raises the calling process's open-file limit (soft and hard) to `wanted`, or as close to
/// it as the kernel allows (`fs.nr_open`; raising the hard limit needs `CAP_SYS_RESOURCE`,
/// without it the soft limit goes up to the hard one). Returns the limit in force. The
/// server holds 7 descriptors per execution environment (its Runtime API listener and
/// connection, two output pipes, the jail process's pidfd, the log file and the cgroup's
/// memory-peak file), so thousands of environments need more than the usual 1,024.
pub fn raise_open_file_limit(wanted: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return 0 };
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    let target = wanted.min(nr_open).max(soft);
    if target > hard && setrlimit(Resource::RLIMIT_NOFILE, target, target).is_ok() {
        return target;
    }
    let within = target.min(hard);
    if within > soft && setrlimit(Resource::RLIMIT_NOFILE, within, hard).is_ok() {
        return within;
    }
    soft
}

/// A private directory for sandbox roots on a memory filesystem: `<base>/<name>`, created
/// by us with mode 0700 when `base` is a tmpfs (such as `/dev/shm`). Sandbox roots are only
/// mount points (each jail mounts its own tmpfs there, in its own mount namespace), but on a
/// disk filesystem every one costs an inode allocation and a journalled removal (about 2 ms
/// on the project's machines, and ext4's inode search grows slower under such churn).
/// `None` when `base` is not a tmpfs or the directory cannot be made ours: whatever was at
/// the path is removed first (not followed, if a symlink), and a directory someone else
/// created in between is refused, so `base` being world-writable does not matter.
pub fn private_tmpfs_dir(base: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let fs = nix::sys::statfs::statfs(base).ok()?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return None;
    }
    let dir = base.join(name);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&dir).ok()?,
        Ok(_) => std::fs::remove_file(&dir).ok()?,
        Err(_) => {}
    }
    std::fs::DirBuilder::new().mode(0o700).create(&dir).ok()?;
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    (meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o077 == 0)
        .then_some(dir)
}

/// Sends SIGKILL to every process of a process group (used for sandboxes that run without
/// isolation, in development, where there is no cgroup to kill through). A group that no
/// longer exists is not an error.
pub fn kill_process_group(pgid: u32) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    if raw > 1 {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(raw),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::private_tmpfs_dir;

    fn shm() -> Option<&'static std::path::Path> {
        let base = std::path::Path::new("/dev/shm");
        let fs = nix::sys::statfs::statfs(base).ok()?;
        (fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC).then_some(base)
    }

    #[test]
    fn private_tmpfs_dir_is_refused_off_tmpfs() {
        // /proc is always there and never a tmpfs: refused before anything is created.
        assert_eq!(private_tmpfs_dir(std::path::Path::new("/proc"), "alonzo-test"), None);
    }

    #[test]
    fn private_tmpfs_dir_replaces_what_was_there_without_following_it() {
        let Some(base) = shm() else {
            eprintln!("skipped: /dev/shm is not a tmpfs");
            return;
        };
        let name = format!("alonzo-test-{}", std::process::id());
        let path = base.join(&name);
        // A symlink planted at the path (to a directory we must not touch) is removed, not
        // followed; the directory made in its place is ours and private.
        let target = base.join(format!("{name}-target"));
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let dir = private_tmpfs_dir(base, &name).expect("a private directory");
        assert_eq!(dir, path);
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert!(meta.is_dir() && !meta.file_type().is_symlink());
        assert_eq!(meta.mode() & 0o777, 0o700);
        assert!(target.join("keep").exists(), "the symlink's target was touched");
        // Left over from an earlier run: emptied.
        std::fs::create_dir(dir.join("old-sandbox")).unwrap();
        let again = private_tmpfs_dir(base, &name).unwrap();
        assert_eq!(std::fs::read_dir(&again).unwrap().count(), 0);
        std::fs::remove_dir_all(&again).unwrap();
        std::fs::remove_dir_all(&target).unwrap();
    }
}
