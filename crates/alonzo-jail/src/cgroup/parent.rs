//! `CgroupParent`: the cgroup `alonzo-<name>` beneath the server's own cgroup, in each
//! hierarchy used, under which all of the server's sandboxes are created.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cgroup::layout::{dir_of, OwnCgroups};
use crate::cgroup::{
    check_name, mkdir_if_missing, read, rmdir_patiently, write, CgroupError, CgroupLayout, Dirs,
    SandboxCgroup,
};

/// The v2 controllers enabled for sandboxes.
const V2_CONTROLLERS: &str = "+memory +cpu +pids";

/// The parent of all of this server's sandbox cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupParent {
    pub(crate) dirs: Dirs,
}

impl CgroupParent {
    /// Creates (or reuses) `<the server's cgroup, per /proc/self/cgroup>/alonzo-<name>` in the
    /// memory, cpu and pids hierarchies and the hybrid host's v2 tree (v1), or in the v2 tree
    /// with memory, cpu and pids enabled for its children (v2).
    ///
    /// On v2, enabling controllers below the server's cgroup is impossible while processes
    /// live in it (the no-internal-process rule). If the server is the only one there, it
    /// moves itself into a sibling leaf, `alonzo-<name>-server`, and retries; otherwise it
    /// fails with `InternalProcesses`. (The server stays in that leaf for its lifetime.)
    pub fn create(layout: &CgroupLayout, name: &str) -> Result<Self, CgroupError> {
        check_name(name)?;
        Self::create_for(layout, &OwnCgroups::read()?, name)
    }

    /// `create` for a process whose cgroups are `own`.
    pub(crate) fn create_for(
        layout: &CgroupLayout,
        own: &OwnCgroups,
        name: &str,
    ) -> Result<Self, CgroupError> {
        let leaf = format!("alonzo-{name}");
        let dirs = match layout {
            CgroupLayout::V1 { controllers, unified } => {
                let dir_for = |controller: &str| {
                    let mount = controllers
                        .get(controller)
                        .ok_or_else(|| CgroupError::MissingController(controller.to_owned()))?;
                    let cgroup = own
                        .v1(controller)
                        .ok_or_else(|| CgroupError::NotInCgroup(controller.to_owned()))?;
                    Ok::<PathBuf, CgroupError>(dir_of(mount, cgroup)?.join(&leaf))
                };
                let unified = match (unified, own.v2()) {
                    (Some(mount), Some(cgroup)) => Some(dir_of(mount, cgroup)?.join(&leaf)),
                    _ => None,
                };
                Dirs::V1 {
                    memory: dir_for("memory")?,
                    cpu: dir_for("cpu")?,
                    pids: dir_for("pids")?,
                    unified,
                }
            }
            CgroupLayout::V2 { root } => {
                let own_dir = dir_of(
                    root,
                    own.v2().ok_or_else(|| CgroupError::NotInCgroup("v2".to_owned()))?,
                )?;
                delegate_controllers(&own_dir, &format!("{leaf}-server"))?;
                Dirs::V2 { dir: own_dir.join(&leaf) }
            }
        };
        for dir in dirs.all() {
            mkdir_if_missing(dir)?;
        }
        if let Dirs::V2 { dir } = &dirs {
            write(&dir.join("cgroup.subtree_control"), V2_CONTROLLERS)?;
        }
        Ok(CgroupParent { dirs })
    }

    /// The parent's directories, one per hierarchy.
    pub fn dirs(&self) -> Vec<&Path> {
        self.dirs.all()
    }

    /// Kills and removes every sandbox cgroup left below the parent, for example by a server
    /// that crashed (its jail processes outlive it). Returns how many there were.
    pub fn clean_up_leftovers(&self) -> Result<usize, CgroupError> {
        let primary = self.dirs.primary();
        let entries = std::fs::read_dir(primary)
            .map_err(|source| CgroupError::io("read", primary, source))?;
        let mut count = 0;
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if entry.path().is_dir() && check_name(&name).is_ok() {
                let leftover = SandboxCgroup::adopt(self.dirs.child(&name));
                leftover.kill_all();
                leftover.try_remove()?;
                count += 1;
            }
        }
        Ok(count)
    }

    /// Removes the parent's directories; never panics. Fails silently (for each directory)
    /// while sandboxes remain below it; see `try_remove`.
    pub fn remove(&self) {
        let _ = self.try_remove();
    }

    /// Removes the parent's directories, reporting the first failure.
    pub fn try_remove(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for dir in self.dirs.all() {
            if let Err(err) = rmdir_patiently(dir, Duration::ZERO) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Makes memory, cpu and pids available to the children of `own_dir` (v2), moving this
/// process into the leaf `server_leaf` if the no-internal-process rule requires it.
fn delegate_controllers(own_dir: &Path, server_leaf: &str) -> Result<(), CgroupError> {
    let wanted = ["memory", "cpu", "pids"];
    let available = read(&own_dir.join("cgroup.controllers"))?;
    let missing: Vec<&str> =
        wanted.into_iter().filter(|c| !available.split_whitespace().any(|a| a == *c)).collect();
    if !missing.is_empty() {
        return Err(CgroupError::Unavailable {
            dir: own_dir.to_owned(),
            missing: missing.join(" "),
        });
    }
    let control = own_dir.join("cgroup.subtree_control");
    let enabled = read(&control)?;
    if wanted.iter().all(|c| enabled.split_whitespace().any(|e| e == *c)) {
        return Ok(());
    }
    let busy = |err: &CgroupError| matches!(err, CgroupError::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY));
    match write(&control, V2_CONTROLLERS) {
        Err(err) if busy(&err) => {
            let leaf = own_dir.join(server_leaf);
            mkdir_if_missing(&leaf)?;
            write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
            match write(&control, V2_CONTROLLERS) {
                Err(err) if busy(&err) => Err(CgroupError::InternalProcesses(own_dir.to_owned())),
                other => other,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::cgroup::CgroupMount;

    fn mount(point: &Path) -> CgroupMount {
        CgroupMount { mount_point: point.to_owned(), root: "/".into() }
    }

    #[test]
    fn v1_parent_sits_below_the_servers_cgroup_in_each_hierarchy() {
        let fs = tempfile::tempdir().unwrap();
        let mut controllers = BTreeMap::new();
        for c in ["memory", "cpu", "pids", "cpuset"] {
            std::fs::create_dir_all(fs.path().join(c).join("srv")).unwrap();
            controllers.insert(c.to_owned(), mount(&fs.path().join(c)));
        }
        std::fs::create_dir(fs.path().join("unified")).unwrap();
        let layout =
            CgroupLayout::V1 { controllers, unified: Some(mount(&fs.path().join("unified"))) };
        let own =
            OwnCgroups::parse("5:pids:/srv\n4:memory:/srv\n3:cpuset:/\n1:cpu,cpuacct:/srv\n0::/\n")
                .unwrap();
        let parent = CgroupParent::create_for(&layout, &own, "test").unwrap();
        let expected: Vec<PathBuf> = ["memory/srv", "cpu/srv", "pids/srv", "unified"]
            .iter()
            .map(|d| fs.path().join(d).join("alonzo-test"))
            .collect();
        assert_eq!(parent.dirs(), expected.iter().map(PathBuf::as_path).collect::<Vec<_>>());
        assert!(expected.iter().all(|d| d.is_dir()));
        assert!(!fs.path().join("cpuset/alonzo-test").exists(), "cpuset is never used");
        // Creating it again reuses it.
        CgroupParent::create_for(&layout, &own, "test").unwrap();
        parent.try_remove().unwrap();
        assert!(expected.iter().all(|d| !d.exists()));
    }

    #[test]
    fn v2_parent_enables_the_controllers_on_the_way_down() {
        let fs = tempfile::tempdir().unwrap();
        let own_dir = fs.path().join("system.slice/alonzo.service");
        std::fs::create_dir_all(&own_dir).unwrap();
        std::fs::write(own_dir.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        std::fs::write(own_dir.join("cgroup.subtree_control"), "").unwrap();
        let layout = CgroupLayout::V2 { root: mount(fs.path()) };
        let own = OwnCgroups::parse("0::/system.slice/alonzo.service\n").unwrap();
        let parent = CgroupParent::create_for(&layout, &own, "x").unwrap();
        assert_eq!(parent.dirs(), vec![own_dir.join("alonzo-x").as_path()]);
        assert_eq!(
            std::fs::read_to_string(own_dir.join("cgroup.subtree_control")).unwrap(),
            V2_CONTROLLERS
        );
        assert_eq!(
            std::fs::read_to_string(own_dir.join("alonzo-x/cgroup.subtree_control")).unwrap(),
            V2_CONTROLLERS
        );
    }

    #[test]
    fn v2_parent_needs_delegated_controllers() {
        let fs = tempfile::tempdir().unwrap();
        std::fs::write(fs.path().join("cgroup.controllers"), "cpu io\n").unwrap();
        let layout = CgroupLayout::V2 { root: mount(fs.path()) };
        let own = OwnCgroups::parse("0::/\n").unwrap();
        let err = CgroupParent::create_for(&layout, &own, "x").unwrap_err();
        assert!(
            matches!(&err, CgroupError::Unavailable { missing, .. } if missing == "memory pids"),
            "{err}"
        );
    }
}
