//! `SandboxCgroup`: one sandbox's cgroup below the `CgroupParent`: its limits, the
//! `cgroup.procs` files the jail process joins, memory and OOM read-outs, kill-all and removal.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cgroup::{
    check_name, keyed_value, limit_or, read, rmdir_patiently, write, write_if_changed, CgroupError,
    CgroupLimits, CgroupParent, Dirs, CPU_PERIOD_US,
};

/// How long `kill_all` waits for the processes to be gone.
const KILL_PATIENCE: Duration = Duration::from_secs(2);

/// How long `remove` retries `rmdir` while the last processes exit.
const REMOVE_PATIENCE: Duration = Duration::from_secs(1);

/// One sandbox's cgroup (a directory per hierarchy used). Dropping it does not remove it:
/// call `kill_all` and `remove`.
#[derive(Debug)]
pub struct SandboxCgroup {
    dirs: Dirs,
    /// The memory peak file, opened at its first read and kept open: it is read after every
    /// invocation, and a path lookup through cgroupfs costs more than the read.
    peak: OnceLock<File>,
}

impl PartialEq for SandboxCgroup {
    fn eq(&self, other: &Self) -> bool {
        self.dirs == other.dirs
    }
}

impl Eq for SandboxCgroup {}

impl SandboxCgroup {
    /// Creates `<parent>/<id>` in every hierarchy and writes the limits. v1: memory
    /// (`memory.limit_in_bytes`, `memory.memsw.limit_in_bytes` if swap accounting exists,
    /// `memory.swappiness` 0), cpu (`cpu.cfs_period_us`, `cpu.cfs_quota_us`), pids (`pids.max`),
    /// plus a directory in the hybrid host's v2 tree. v2: `memory.max`, `memory.swap.max` 0,
    /// `cpu.max`, `pids.max`. Fails with `Exists` if the cgroup exists already; on any failure
    /// nothing is left behind.
    pub fn create(
        parent: &CgroupParent,
        id: &str,
        limits: &CgroupLimits,
    ) -> Result<Self, CgroupError> {
        check_name(id)?;
        let dirs = parent.dirs.child(id);
        let mut created: Vec<&Path> = Vec::new();
        for dir in dirs.all() {
            if let Err(err) = std::fs::create_dir(dir) {
                for done in created.iter().rev() {
                    let _ = std::fs::remove_dir(done);
                }
                return Err(if err.kind() == std::io::ErrorKind::AlreadyExists {
                    CgroupError::Exists(dir.to_owned())
                } else {
                    CgroupError::io("mkdir", dir, err)
                });
            }
            created.push(dir);
        }
        let sandbox = SandboxCgroup { dirs: dirs.clone(), peak: OnceLock::new() };
        if let Err(err) = sandbox.apply(limits) {
            sandbox.remove();
            return Err(err);
        }
        Ok(sandbox)
    }

    /// Takes charge of an existing sandbox cgroup (for clean-up).
    pub(crate) fn adopt(dirs: Dirs) -> Self {
        SandboxCgroup { dirs, peak: OnceLock::new() }
    }

    /// Changes the limits of a cgroup made earlier (a prepared sandbox taken for a function):
    /// memory+swap is lifted first so that memory can move either way.
    pub fn set_limits(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        if let Dirs::V1 { memory, .. } = &self.dirs {
            let memsw = memory.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, "-1")?;
            }
        }
        self.apply(limits)
    }

    /// Changes limits known to be `from` (set by `create` or an earlier change) to `to`,
    /// writing only the files whose values differ: a sandbox taken from the pool for a
    /// function of the waiting size needs no write at all, on the cold-start path.
    pub fn change_limits(&self, from: &CgroupLimits, to: &CgroupLimits) -> Result<(), CgroupError> {
        match &self.dirs {
            Dirs::V1 { memory, cpu, pids, .. } => {
                if from.memory_bytes != to.memory_bytes {
                    let bytes = limit_or(to.memory_bytes, "-1");
                    // memory+swap is lifted first so that memory can move either way.
                    let memsw = memory.join("memory.memsw.limit_in_bytes");
                    let swap_accounting = memsw.exists();
                    if swap_accounting {
                        write(&memsw, "-1")?;
                    }
                    write(&memory.join("memory.limit_in_bytes"), &bytes)?;
                    if swap_accounting {
                        write(&memsw, &bytes)?;
                    }
                }
                if from.cpu_quota_us != to.cpu_quota_us {
                    write(&cpu.join("cpu.cfs_quota_us"), &limit_or(to.cpu_quota_us, "-1"))?;
                }
                if from.pids_max != to.pids_max {
                    write(&pids.join("pids.max"), &limit_or(to.pids_max, "max"))?;
                }
                Ok(())
            }
            Dirs::V2 { dir } => {
                if from.memory_bytes != to.memory_bytes {
                    write(&dir.join("memory.max"), &limit_or(to.memory_bytes, "max"))?;
                }
                if from.cpu_quota_us != to.cpu_quota_us {
                    write(
                        &dir.join("cpu.max"),
                        &format!("{} {CPU_PERIOD_US}", limit_or(to.cpu_quota_us, "max")),
                    )?;
                }
                if from.pids_max != to.pids_max {
                    write(&dir.join("pids.max"), &limit_or(to.pids_max, "max"))?;
                }
                Ok(())
            }
        }
    }

    fn apply(&self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        match &self.dirs {
            Dirs::V1 { memory, cpu, pids, .. } => {
                let bytes = limit_or(limits.memory_bytes, "-1");
                write(&memory.join("memory.limit_in_bytes"), &bytes)?;
                // memory+swap: equal to the memory limit means no swap at all.
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &bytes)?;
                }
                write(&memory.join("memory.swappiness"), "0")?;
                // A new cgroup has the kernel's default period, which is ours: every write
                // of a CPU bandwidth file walks every CPU cgroup of the machine.
                write_if_changed(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&cpu.join("cpu.cfs_quota_us"), &limit_or(limits.cpu_quota_us, "-1"))?;
                write(&pids.join("pids.max"), &limit_or(limits.pids_max, "max"))
            }
            Dirs::V2 { dir } => {
                write(&dir.join("memory.max"), &limit_or(limits.memory_bytes, "max"))?;
                let swap = dir.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                write(
                    &dir.join("cpu.max"),
                    &format!("{} {CPU_PERIOD_US}", limit_or(limits.cpu_quota_us, "max")),
                )?;
                write(&dir.join("pids.max"), &limit_or(limits.pids_max, "max"))
            }
        }
    }

    /// Sets the CPU quota per `CPU_PERIOD_US` (0: no limit) with an equal burst allowance
    /// (v1 `cpu.cfs_burst_us`, v2 `cpu.max.burst`, Linux 5.14, skipped where absent): quota
    /// a sandbox left unused in one period may be spent in the next, so a short burst after
    /// an idle spell is not throttled. The kernel refuses a burst above the quota, so a
    /// burst that must come down is lowered first. Each write walks every CPU cgroup of the
    /// machine (`tg_set_cfs_bandwidth`), so only what changes is written: a new sandbox's
    /// burst is 0, and takes two writes.
    pub fn set_cpu_quota(&self, quota_us: u64) -> Result<(), CgroupError> {
        let (quota_file, quota, burst_file) = match &self.dirs {
            Dirs::V1 { cpu, .. } => (
                cpu.join("cpu.cfs_quota_us"),
                limit_or(quota_us, "-1"),
                cpu.join("cpu.cfs_burst_us"),
            ),
            Dirs::V2 { dir } => (
                dir.join("cpu.max"),
                format!("{} {CPU_PERIOD_US}", limit_or(quota_us, "max")),
                dir.join("cpu.max.burst"),
            ),
        };
        // The burst ends equal to the quota (none without a quota).
        // Where the kernel has no burst file, there is no burst to keep below the quota.
        let current = match read(&burst_file) {
            Ok(text) => text.trim().parse::<u64>().ok(),
            Err(_) if !burst_file.exists() => return write(&quota_file, &quota),
            Err(e) => return Err(e),
        };
        match current {
            Some(current) if current <= quota_us => {
                write(&quota_file, &quota)?;
                if current != quota_us {
                    write(&burst_file, &quota_us.to_string())?;
                }
                Ok(())
            }
            // Above the new quota (or unreadable): lowered first, within the old quota.
            _ => {
                write(&burst_file, &quota_us.to_string())?;
                write(&quota_file, &quota)
            }
        }
    }

    /// The `cgroup.procs` files to put into `JailSpec::cgroup_procs`, one per hierarchy.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.all().into_iter().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// The most memory the sandbox used (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`,
    /// which needs Linux 5.19).
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        let file = match self.peak.get() {
            Some(file) => file,
            None => {
                let path = match &self.dirs {
                    Dirs::V1 { memory, .. } => memory.join("memory.max_usage_in_bytes"),
                    Dirs::V2 { dir } => dir.join("memory.peak"),
                };
                let opened = File::open(path).ok()?;
                self.peak.get_or_init(|| opened)
            }
        };
        // A read at offset 0 of a cgroup file renders its current value afresh.
        let mut buf = [0u8; 32];
        let n = file.read_at(&mut buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
    }

    /// Whether the OOM killer killed a process of the sandbox (`oom_kill` in v1
    /// `memory.oom_control` or v2 `memory.events`).
    pub fn oom_killed(&self) -> bool {
        let file = match &self.dirs {
            Dirs::V1 { memory, .. } => memory.join("memory.oom_control"),
            Dirs::V2 { dir } => dir.join("memory.events"),
        };
        read(&file).ok().and_then(|text| keyed_value(&text, "oom_kill")).is_some_and(|n| n > 0)
    }

    /// The pids in the sandbox (as seen from the host).
    pub fn pids(&self) -> Vec<Pid> {
        let file = self.dirs.primary().join("cgroup.procs");
        read(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .map(Pid::from_raw)
            .collect()
    }

    /// Kills every process in the sandbox and waits (up to two seconds) until none is left.
    /// Uses `cgroup.kill` (Linux 5.14) where a v2 directory exists (pure v2, or the hybrid
    /// host's unified tree); otherwise freezes the cgroup if it can, SIGKILLs every pid in
    /// `cgroup.procs` until it is empty, and thaws it. Never panics.
    pub fn kill_all(&self) {
        if !self.kill_by_kernel() {
            self.freeze_and_kill();
        }
        // Dying processes need CPU time to exit; a throttled cgroup would delay that by up to
        // a CFS period, so the quota is lifted once everything has been signalled.
        self.lift_cpu_quota();
        self.wait_until_empty();
    }

    /// Signals every process in the sandbox to die without waiting for any to exit: with
    /// `cgroup.kill` where it exists, else one SIGKILL to each pid in `cgroup.procs` (a
    /// process forked meanwhile is left to `kill_all`). For stopping many sandboxes at once:
    /// signal them all, then `kill_all` each, which by then mostly finds them gone.
    pub fn signal_all(&self) {
        if !self.kill_by_kernel() {
            for pid in self.pids() {
                let _ = kill(pid, Signal::SIGKILL);
            }
        }
        self.lift_cpu_quota();
    }

    /// `cgroup.kill` (Linux 5.14), where a v2 directory exists (pure v2, or the hybrid host's
    /// unified tree). Whether it was written.
    fn kill_by_kernel(&self) -> bool {
        self.dirs.v2_core().is_some_and(|dir| write(&dir.join("cgroup.kill"), "1").is_ok())
    }

    /// Waits (up to two seconds) until no process is left.
    fn wait_until_empty(&self) {
        let deadline = Instant::now() + KILL_PATIENCE;
        let mut pause = Duration::from_micros(50);
        while !self.pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    fn lift_cpu_quota(&self) {
        let _ = match &self.dirs {
            Dirs::V1 { cpu, .. } => write(&cpu.join("cpu.cfs_quota_us"), "-1"),
            Dirs::V2 { dir } => write(&dir.join("cpu.max"), "max"),
        };
    }

    /// The fallback of `kill_all` for kernels without `cgroup.kill`. Freezing (v2 only) stops
    /// a fork bomb from outrunning the kill loop; on v1 without a v2 tree `pids.max` bounds it.
    fn freeze_and_kill(&self) {
        let freezer =
            self.dirs.v2_core().map(|dir| dir.join("cgroup.freeze")).filter(|f| f.exists());
        if let Some(freezer) = &freezer {
            let _ = write(freezer, "1");
        }
        let deadline = Instant::now() + KILL_PATIENCE;
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                let _ = kill(pid, Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if let Some(freezer) = &freezer {
            let _ = write(freezer, "0");
        }
    }

    /// Removes every directory of the sandbox cgroup, retrying briefly while the last
    /// processes exit. Never panics; see `try_remove` for the error.
    pub fn remove(self) {
        let _ = self.try_remove();
    }

    /// Like `remove`, reporting the first directory that could not be removed.
    pub fn try_remove(mut self) -> Result<(), CgroupError> {
        // Closed first: the directory goes either way, but nothing should hold it.
        drop(self.peak.take());
        let mut first_error = None;
        for dir in self.dirs.all() {
            if let Err(err) = rmdir_patiently(dir, REMOVE_PATIENCE) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cgroup::layout::OwnCgroups;
    use crate::cgroup::{CgroupLayout, CgroupMount};

    fn limits() -> CgroupLimits {
        CgroupLimits { memory_bytes: 128 << 20, cpu_quota_us: 50_000, pids_max: 64 }
    }

    #[track_caller]
    fn check_files(dir: &Path, expected: &[(&str, &str)]) {
        for (file, value) in expected {
            assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), *value, "{file}");
        }
    }

    #[test]
    fn v1_limits_are_written_per_controller() {
        let fs = tempfile::tempdir().unwrap();
        let mut controllers = BTreeMap::new();
        for c in ["memory", "cpu", "pids"] {
            std::fs::create_dir(fs.path().join(c)).unwrap();
            controllers.insert(
                c.to_owned(),
                CgroupMount { mount_point: fs.path().join(c), root: "/".into() },
            );
        }
        let layout = CgroupLayout::V1 { controllers, unified: None };
        let own = OwnCgroups::parse("3:pids:/\n2:memory:/\n1:cpu:/\n").unwrap();
        let parent = CgroupParent::create_for(&layout, &own, "t").unwrap();
        let sandbox = SandboxCgroup::create(&parent, "sb1", &limits()).unwrap();
        let memory = fs.path().join("memory/alonzo-t/sb1");
        check_files(&memory, &[("memory.limit_in_bytes", "134217728"), ("memory.swappiness", "0")]);
        check_files(
            &fs.path().join("cpu/alonzo-t/sb1"),
            &[("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")],
        );
        check_files(&fs.path().join("pids/alonzo-t/sb1"), &[("pids.max", "64")]);
        assert_eq!(sandbox.procs_files()[0], memory.join("cgroup.procs"));
        assert!(matches!(
            SandboxCgroup::create(&parent, "sb1", &limits()),
            Err(CgroupError::Exists(_))
        ));
    }

    #[test]
    fn v2_limits_and_no_limits() {
        let fs = tempfile::tempdir().unwrap();
        let parent = CgroupParent { dirs: Dirs::V2 { dir: fs.path().to_owned() } };
        let no_limits = CgroupLimits { memory_bytes: 0, cpu_quota_us: 0, pids_max: 0 };
        let sandbox = SandboxCgroup::create(&parent, "a", &no_limits).unwrap();
        check_files(
            &fs.path().join("a"),
            &[("memory.max", "max"), ("cpu.max", "max 100000"), ("pids.max", "max")],
        );
        assert_eq!(sandbox.procs_files(), vec![fs.path().join("a/cgroup.procs")]);
        SandboxCgroup::create(&parent, "b", &limits()).unwrap();
        check_files(
            &fs.path().join("b"),
            &[("memory.max", "134217728"), ("cpu.max", "50000 100000"), ("pids.max", "64")],
        );
    }

    #[test]
    fn cpu_quota_comes_with_an_equal_burst_where_the_kernel_has_one() {
        let fs = tempfile::tempdir().unwrap();
        let sandbox =
            SandboxCgroup { dirs: Dirs::V2 { dir: fs.path().to_owned() }, peak: OnceLock::new() };
        sandbox.set_cpu_quota(7_235).unwrap();
        check_files(fs.path(), &[("cpu.max", "7235 100000")]);
        assert!(!fs.path().join("cpu.max.burst").exists(), "no burst file is invented");
        std::fs::write(fs.path().join("cpu.max.burst"), "0").unwrap();
        sandbox.set_cpu_quota(7_235).unwrap();
        check_files(fs.path(), &[("cpu.max", "7235 100000"), ("cpu.max.burst", "7235")]);
        sandbox.set_cpu_quota(5_000).unwrap();
        check_files(fs.path(), &[("cpu.max", "5000 100000"), ("cpu.max.burst", "5000")]);
        sandbox.set_cpu_quota(0).unwrap();
        check_files(fs.path(), &[("cpu.max", "max 100000"), ("cpu.max.burst", "0")]);
    }

    #[test]
    fn read_outs_parse_the_kernel_files() {
        let fs = tempfile::tempdir().unwrap();
        let sandbox =
            SandboxCgroup { dirs: Dirs::V2 { dir: fs.path().to_owned() }, peak: OnceLock::new() };
        assert_eq!(sandbox.memory_peak_bytes(), None);
        assert!(!sandbox.oom_killed());
        std::fs::write(fs.path().join("memory.peak"), "67108864\n").unwrap();
        std::fs::write(
            fs.path().join("memory.events"),
            "low 0\nhigh 0\nmax 40\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(sandbox.memory_peak_bytes(), Some(64 << 20));
        assert!(sandbox.oom_killed());
    }
}
