//! `JailProcess`, the server's handle on a jail process: one it started with `posix_spawn`
//! (a `std::process::Child`), or one the launcher made a child of the server
//! (`launcher.rs`), known by its pid and a pidfd. Both are waited for, killed and watched the
//! same way.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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
    /// Started with `posix_spawn`; its pidfd once [`JailProcess::into_exit_watch`] opened it.
    Spawned(std::process::Child, Option<OwnedFd>),
    /// A child of this process created by the launcher; `status` once reaped.
    Launched { pid: u32, pidfd: OwnedFd, status: Option<ExitStatus> },
}

impl From<std::process::Child> for JailProcess {
    fn from(mut child: std::process::Child) -> Self {
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        JailProcess { kind: Kind::Spawned(child, None), stdout, stderr }
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
            Kind::Spawned(child, _) => child.id(),
            Kind::Launched { pid, .. } => *pid,
        }
    }

    /// Sends SIGKILL (nothing if it was already reaped).
    pub fn kill(&mut self) -> std::io::Result<()> {
        match &mut self.kind {
            Kind::Spawned(child, _) => child.kill(),
            Kind::Launched { status: Some(_), .. } => Ok(()),
            Kind::Launched { pidfd, .. } => {
                crate::sys::pidfd_kill(pidfd.as_fd(), libc::SIGKILL).map_err(std::io::Error::from)
            }
        }
    }

    /// Waits for the process to exit and reaps it.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match &mut self.kind {
            Kind::Spawned(child, _) => child.wait(),
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
            Kind::Spawned(child, _) => child.try_wait(),
            Kind::Launched { status: Some(status), .. } => Ok(Some(*status)),
            Kind::Launched { pidfd, status, .. } => {
                Ok(crate::sys::wait_pidfd(pidfd.as_fd(), true)?
                    .map(|raw| *status.insert(ExitStatus::from_raw(raw))))
            }
        }
    }

    /// This handle as one an async runtime can register to learn when the process exits (its
    /// pidfd, Linux 5.3, becomes readable), so that thousands of sandboxes are watched
    /// without a thread each. It uses the process's own pidfd (opened now for a process
    /// started with `posix_spawn`): one descriptor per process, which matters with thousands
    /// of them. The process is still reaped with [`JailProcess::wait`] afterwards.
    pub fn into_exit_watch(mut self) -> Result<ExitWatch, (std::io::Error, JailProcess)> {
        match self.pidfd() {
            Ok(fd) => Ok(ExitWatch { process: self, fd }),
            Err(e) => Err((e, self)),
        }
    }

    /// The process's pidfd, opened the first time for a process started with `posix_spawn`.
    fn pidfd(&mut self) -> std::io::Result<RawFd> {
        let (child, slot) = match &mut self.kind {
            Kind::Launched { pidfd, .. } => return Ok(pidfd.as_raw_fd()),
            Kind::Spawned(child, slot) => (child, slot),
        };
        if let Some(fd) = slot {
            return Ok(fd.as_raw_fd());
        }
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Ok(slot.insert(crate::sys::pidfd_open(pid)?).as_raw_fd())
    }
}

/// A [`JailProcess`] whose descriptor ([`AsRawFd`]) is its pidfd, readable once it exited.
#[derive(Debug)]
pub struct ExitWatch {
    process: JailProcess,
    /// The pidfd `process` owns, open for as long as `process` is.
    fd: RawFd,
}

impl ExitWatch {
    /// The process back, to reap it.
    pub fn into_process(self) -> JailProcess {
        self.process
    }
}

impl AsRawFd for ExitWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}
