//! Which cgroup hierarchies are mounted where (`CgroupLayout`, from `/proc/self/mountinfo`)
//! and which cgroup this process is in (from `/proc/self/cgroup`). Pure parsing plus two file
//! reads; nothing here writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cgroup::CgroupError;

/// The v1 controllers a sandbox cgroup uses.
pub(crate) const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// Every v1 controller name the kernel knows, to tell controllers from mount options.
const KNOWN_V1_CONTROLLERS: [&str; 14] = [
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// Where a cgroup hierarchy is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The mount point, e.g. `/sys/fs/cgroup/memory`.
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that appears at the mount point; `/` unless a container
    /// runtime bind-mounted a sub-tree.
    pub root: PathBuf,
}

/// The machine's cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// Resource controllers on cgroup v1 hierarchies (legacy or hybrid layout).
    V1 {
        /// Controller name → its hierarchy's mount (co-mounted controllers share one).
        controllers: BTreeMap<String, CgroupMount>,
        /// A cgroup v2 tree without controllers (hybrid layout), used for `cgroup.kill` and
        /// `cgroup.freeze` if present.
        unified: Option<CgroupMount>,
    },
    /// Pure cgroup v2.
    V2 {
        /// The cgroup2 mount.
        root: CgroupMount,
    },
}

impl CgroupLayout {
    /// Reads `/proc/self/mountinfo`. Memory mounted as v1 means the V1 layout (and then cpu and
    /// pids must be v1 too); otherwise a cgroup2 mount means V2.
    pub fn detect() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = std::fs::read_to_string(path)
            .map_err(|source| CgroupError::io("read", path, source))?;
        Self::from_mountinfo(&text)
    }

    /// The layout described by the text of a mountinfo file.
    pub fn from_mountinfo(text: &str) -> Result<Self, CgroupError> {
        let mut controllers: BTreeMap<String, CgroupMount> = BTreeMap::new();
        let mut unified = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let entry = parse_mountinfo_line(line)?;
            let mount = CgroupMount { mount_point: entry.mount_point, root: entry.root };
            match entry.fstype {
                "cgroup" => {
                    for option in entry.super_options.split(',') {
                        if KNOWN_V1_CONTROLLERS.contains(&option) {
                            controllers.entry(option.to_owned()).or_insert_with(|| mount.clone());
                        }
                    }
                }
                "cgroup2" if unified.is_none() => unified = Some(mount),
                _ => {}
            }
        }
        if controllers.contains_key("memory") {
            if let Some(missing) = V1_CONTROLLERS.iter().find(|c| !controllers.contains_key(**c)) {
                return Err(CgroupError::MissingController((*missing).to_owned()));
            }
            return Ok(CgroupLayout::V1 { controllers, unified });
        }
        unified.map(|root| CgroupLayout::V2 { root }).ok_or(CgroupError::NoCgroupFs)
    }
}

struct MountinfoEntry<'a> {
    root: PathBuf,
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`: fields
/// 4 and 5 are the root and mount point; after the `-` separator come the filesystem type,
/// the source and the super-block options.
fn parse_mountinfo_line(line: &str) -> Result<MountinfoEntry<'_>, CgroupError> {
    let malformed = || CgroupError::Parse { what: "mountinfo", line: line.to_owned() };
    let mut fields = line.split(' ');
    let mut fixed = fields.by_ref().skip(3);
    let (Some(root), Some(mount_point)) = (fixed.next(), fixed.next()) else {
        return Err(malformed());
    };
    let mut after_separator = fields.skip_while(|f| *f != "-").skip(1);
    let (Some(fstype), Some(_source), Some(super_options)) =
        (after_separator.next(), after_separator.next(), after_separator.next())
    else {
        return Err(malformed());
    };
    Ok(MountinfoEntry {
        root: unescape(root).into(),
        mount_point: unescape(mount_point).into(),
        fstype,
        super_options,
    })
}

/// Undoes the octal escapes (`\040` for a space) the kernel uses in mountinfo paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        let octal = bytes
            .get(idx + 1..idx + 4)
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match (bytes[idx], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                idx += 4;
            }
            (byte, _) => {
                out.push(byte);
                idx += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// This process's cgroups, one entry per hierarchy, from `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OwnCgroups {
    /// (controllers, path) per line; the v2 line has no controllers.
    entries: Vec<(Vec<String>, PathBuf)>,
}

impl OwnCgroups {
    pub(crate) fn read() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/cgroup");
        let text = std::fs::read_to_string(path)
            .map_err(|source| CgroupError::io("read", path, source))?;
        Self::parse(&text)
    }

    /// Parses lines of the form `4:memory:/a/b`, `2:cpu,cpuacct:/`, `0::/system.slice/x`.
    pub(crate) fn parse(text: &str) -> Result<Self, CgroupError> {
        let mut entries = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.splitn(3, ':');
            let (Some(_id), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(CgroupError::Parse {
                    what: "/proc/self/cgroup",
                    line: line.to_owned(),
                });
            };
            let controllers =
                controllers.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
            entries.push((controllers, PathBuf::from(path)));
        }
        Ok(OwnCgroups { entries })
    }

    /// The cgroup path in the v1 hierarchy that holds `controller`.
    pub(crate) fn v1(&self, controller: &str) -> Option<&Path> {
        self.entries
            .iter()
            .find(|(cs, _)| cs.iter().any(|c| c == controller))
            .map(|(_, p)| p.as_path())
    }

    /// The cgroup path in the v2 hierarchy.
    pub(crate) fn v2(&self) -> Option<&Path> {
        self.entries.iter().find(|(cs, _)| cs.is_empty()).map(|(_, p)| p.as_path())
    }
}

/// The directory of `cgroup` (a path within the hierarchy) under `mount`.
pub(crate) fn dir_of(mount: &CgroupMount, cgroup: &Path) -> Result<PathBuf, CgroupError> {
    let relative = cgroup.strip_prefix(&mount.root).map_err(|_| CgroupError::OutsideMount {
        cgroup: cgroup.to_owned(),
        mount: mount.mount_point.clone(),
    })?;
    Ok(mount.mount_point.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This project's machines: v1 controllers plus an empty v2 tree at `unified`.
    const HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd host on pure v2, with optional fields before the separator.
    const PURE_V2: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// Legacy systemd layout with co-mounted controllers and a container sub-tree root.
    const COMOUNTED: &str = "\
30 25 0:27 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 /docker/abc /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
32 25 0:29 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
";

    #[track_caller]
    fn mount(point: &str, root: &str) -> CgroupMount {
        CgroupMount { mount_point: point.into(), root: root.into() }
    }

    #[test]
    fn hybrid_layout_uses_v1_controllers_and_the_unified_tree() {
        let CgroupLayout::V1 { controllers, unified } =
            CgroupLayout::from_mountinfo(HYBRID).unwrap()
        else {
            panic!("expected V1");
        };
        assert_eq!(controllers["memory"], mount("/sys/fs/cgroup/memory", "/"));
        assert_eq!(controllers["pids"], mount("/sys/fs/cgroup/pids", "/"));
        assert!(!controllers.contains_key("name=systemd"));
        assert_eq!(unified, Some(mount("/sys/fs/cgroup/unified", "/")));
    }

    #[test]
    fn pure_v2_layout() {
        assert_eq!(
            CgroupLayout::from_mountinfo(PURE_V2).unwrap(),
            CgroupLayout::V2 { root: mount("/sys/fs/cgroup", "/") }
        );
    }

    #[test]
    fn comounted_controllers_share_a_mount() {
        let CgroupLayout::V1 { controllers, unified } =
            CgroupLayout::from_mountinfo(COMOUNTED).unwrap()
        else {
            panic!("expected V1");
        };
        assert_eq!(controllers["cpu"], controllers["cpuacct"]);
        assert_eq!(controllers["cpu"], mount("/sys/fs/cgroup/cpu,cpuacct", "/docker/abc"));
        assert_eq!(unified, None);
    }

    #[test]
    fn v1_memory_without_pids_is_an_error() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert!(
            matches!(CgroupLayout::from_mountinfo(text), Err(CgroupError::MissingController(c)) if c == "pids")
        );
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let text = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n";
        assert!(matches!(CgroupLayout::from_mountinfo(text), Err(CgroupError::NoCgroupFs)));
        assert!(matches!(
            CgroupLayout::from_mountinfo("garbage\n"),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn mountinfo_paths_are_unescaped() {
        let text = "32 31 0:29 / /sys/fs/cgroup/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
        let CgroupLayout::V2 { root } = CgroupLayout::from_mountinfo(text).unwrap() else {
            panic!("expected V2")
        };
        assert_eq!(root.mount_point, Path::new("/sys/fs/cgroup/my cgroups"));
    }

    #[test]
    fn own_cgroups_per_hierarchy() {
        let own = OwnCgroups::parse(
            "9:name=systemd:/\n4:memory:/process_api/1ac\n2:cpu,cpuacct:/x\n0::/\n",
        )
        .unwrap();
        assert_eq!(own.v1("memory"), Some(Path::new("/process_api/1ac")));
        assert_eq!(own.v1("cpuacct"), Some(Path::new("/x")));
        assert_eq!(own.v1("pids"), None);
        assert_eq!(own.v2(), Some(Path::new("/")));
        let v2_only = OwnCgroups::parse("0::/system.slice/alonzo.service\n").unwrap();
        assert_eq!(v2_only.v2(), Some(Path::new("/system.slice/alonzo.service")));
    }

    #[test]
    fn directories_are_relative_to_the_mount_root() {
        let container = mount("/sys/fs/cgroup/memory", "/docker/abc");
        assert_eq!(
            dir_of(&container, Path::new("/docker/abc/srv")).unwrap(),
            Path::new("/sys/fs/cgroup/memory/srv")
        );
        assert!(matches!(
            dir_of(&container, Path::new("/other")),
            Err(CgroupError::OutsideMount { .. })
        ));
        let host = mount("/sys/fs/cgroup", "/");
        assert_eq!(dir_of(&host, Path::new("/a/b")).unwrap(), Path::new("/sys/fs/cgroup/a/b"));
    }
}
