//! `JailProcess`, the server's handle on a jail process: one it started with `posix_spawn`
//! (a `std::process::Child`), or one the launcher made a child of the server
//! (`launcher.rs`), known by its pid and a pidfd. Both are waited for, killed and watched the
//! same way.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStderr, ChildStdout, ExitStatus};

/// A jail process (or, without isolation, a runtime process) and its output pipes.
#[derive(Debug)]
pub struct JailProcess {
    kind: Kind,
    /// The program's stdout, until taken.
    pub stdout: Option<ChildStdout>,
    /// The program's stderr, until taken.
    pub stderr: Option<ChildStderr>,
}

#[derive(Debug)]
enum Kind {
    Spawned(std::process::Child),
    /// A child of this process created by the launcher; `status` once reaped.
    Launched {
        pid: u32,
        pidfd: OwnedFd,
        status: Option<ExitStatus>,
    },
}

impl From<std::process::Child> for JailProcess {
    fn from(mut child: std::process::Child) -> Self {
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        JailProcess { kind: Kind::Spawned(child), stdout, stderr }
    }
}

impl JailProcess {
    pub(crate) fn launched(
        pid: u32,
        pidfd: OwnedFd,
        stdout: ChildStdout,
        stderr: ChildStderr,
    ) -> Self {
        JailProcess {
            kind: Kind::Launched { pid, pidfd, status: None },
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        match &self.kind {
            Kind::Spawned(child) => child.id(),
            Kind::Launched { pid, .. } => *pid,
        }
    }

    /// Sends SIGKILL (nothing if it was already reaped).
    pub fn kill(&mut self) -> std::io::Result<()> {
        match &mut self.kind {
            Kind::Spawned(child) => child.kill(),
            Kind::Launched { status: Some(_), .. } => Ok(()),
            Kind::Launched { pidfd, .. } => {
                crate::sys::pidfd_kill(pidfd.as_fd(), libc::SIGKILL).map_err(std::io::Error::from)
            }
        }
    }

    /// Waits for the process to exit and reaps it.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match &mut self.kind {
            Kind::Spawned(child) => child.wait(),
            Kind::Launched { status: Some(status), .. } => Ok(*status),
            Kind::Launched { pidfd, status, .. } => {
                let raw = crate::sys::wait_pidfd(pidfd.as_fd(), false)?
                    .ok_or_else(|| std::io::Error::other("waitid returned no status"))?;
                Ok(*status.insert(ExitStatus::from_raw(raw)))
            }
        }
    }

    /// The exit status if the process has exited (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match &mut self.kind {
            Kind::Spawned(child) => child.try_wait(),
            Kind::Launched { status: Some(status), .. } => Ok(Some(*status)),
            Kind::Launched { pidfd, status, .. } => {
                Ok(crate::sys::wait_pidfd(pidfd.as_fd(), true)?
                    .map(|raw| *status.insert(ExitStatus::from_raw(raw))))
            }
        }
    }

    /// A descriptor that becomes readable when the process exits (a pidfd; Linux 5.3), so
    /// that an async runtime can wait for thousands of sandboxes without a thread each. The
    /// process is still reaped with [`JailProcess::wait`] afterwards.
    pub fn exit_fd(&self) -> std::io::Result<OwnedFd> {
        match &self.kind {
            Kind::Spawned(child) => {
                let pid = libc::pid_t::try_from(child.id())
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
                crate::sys::pidfd_open(pid).map_err(std::io::Error::from)
            }
            Kind::Launched { pidfd, .. } => pidfd.try_clone(),
        }
    }
}
