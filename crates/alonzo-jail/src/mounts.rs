//! The sandbox's filesystem, built by G in its private mount namespace: a tmpfs root with a
//! skeleton, the spec's binds, a fresh `/proc`, a size-limited `/tmp`, a minimal `/dev`, then
//! `pivot_root` into it and a read-only remount of `/`.
//!
//! Host paths are resolved by J, still root on the host, before any namespace exists
//! (`HostPaths`): J enters `root_dir` (the working directory follows into the new mount
//! namespaces) and clones each bind source's mount tree into a detached mount (`open_tree`).
//! In the user namespace G is an unprivileged host uid and could not even traverse a host
//! directory that is not world-searchable (a 0700 data directory); it never looks a host path
//! up. It attaches a detached tmpfs over the working directory, works relative to the root of
//! that tmpfs, and attaches the cloned trees into it (`move_mount`). This needs Linux 5.2.
//!
//! Mount points are only ever created on the sandbox's own tmpfs: a bind target that would
//! have to be created inside another bind (that is, in a host directory) or that goes through
//! a symlink is refused, so building the sandbox never writes to the host.

use std::ffi::{CStr, CString};
use std::fs::{DirBuilder, OpenOptions};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{fstat, Mode, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};

use crate::error::{Context, JailError};
use crate::spawn::{Bind, JailSpec};

/// The host side of a sandbox's filesystem, prepared by J while root on the host: the working
/// directory is `root_dir` (it follows into the mount namespaces created later), and each
/// bind source is already a detached copy of its mount tree (`open_tree`), in spec order.
#[derive(Debug)]
pub(crate) struct HostPaths {
    sources: Vec<Source>,
}

#[derive(Debug)]
struct Source {
    tree: OwnedFd,
    is_dir: bool,
}

impl HostPaths {
    /// Enters `root_dir` and clones the bind sources. A missing source fails here, in J, so
    /// `spawn` reports it directly.
    pub(crate) fn open(spec: &JailSpec) -> Result<Self, JailError> {
        nix::unistd::chdir(&spec.root_dir)
            .context(|| format!("enter root_dir {}", spec.root_dir.display()))?;
        Ok(HostPaths { sources: open_sources(&spec.binds)? })
    }
}

/// Clones the mount tree of each bind's source (J, root on the host).
fn open_sources(binds: &[Bind]) -> Result<Vec<Source>, JailError> {
    let mut sources = Vec::with_capacity(binds.len());
    for bind in binds {
        let what = || format!("bind source {}", bind.source.display());
        let fd =
            open(&bind.source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).context(what)?;
        let tree = crate::sys::clone_tree(fd.as_fd()).context(what)?;
        sources.push(Source::of(tree).context(what)?);
    }
    Ok(sources)
}

impl Source {
    fn of(tree: OwnedFd) -> nix::Result<Self> {
        let kind = SFlag::from_bits_truncate(fstat(&tree)?.st_mode) & SFlag::S_IFMT;
        Ok(Source { tree, is_dir: kind == SFlag::S_IFDIR })
    }
}

/// The detached mount trees of an assignment's binds, cloned by J for G.
pub(crate) fn clone_assigned(binds: &[Bind]) -> Result<Vec<OwnedFd>, JailError> {
    Ok(open_sources(binds)?.into_iter().map(|s| s.tree).collect())
}

/// Attaches an assignment's trees at their deferred mount points, which `build_root` created
/// empty; G runs this after the pivot, so paths are the sandbox's own.
pub(crate) fn attach_assigned(binds: &[Bind], trees: Vec<OwnedFd>) -> Result<(), JailError> {
    let root = Path::new("/");
    let root_dev = std::fs::metadata(root).context(|| "stat /".to_owned())?.dev();
    for (bind, tree) in binds.iter().zip(trees) {
        let source =
            Source::of(tree).context(|| format!("inspect the tree for {}", bind.target))?;
        bind_into(root, root_dev, bind, &source)?;
    }
    Ok(())
}

/// Resizes `/tmp` to the assigned function's ephemeral storage (a remount keeps its files).
pub(crate) fn resize_tmp(size_mb: u64) -> Result<(), JailError> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let options = format!("mode=1777,size={size_mb}m");
    mount(None::<&str>, "/tmp", Some("tmpfs"), flags, Some(options.as_str()))
        .context(|| format!("resize /tmp to {size_mb} MB"))
}

fn c_path(path: &Path) -> Result<CString, JailError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| JailError::InvalidSpec(format!("{} contains NUL", path.display())))
}

/// Options of the root tmpfs: it only holds directories, mount points and `/dev` symlinks,
/// and is read-only once the sandbox is built.
const ROOT_TMPFS: &[(&CStr, &CStr)] =
    &[(c"mode", c"0755"), (c"size", c"1m"), (c"nr_inodes", c"4096")];

/// Mount attributes of every tmpfs.
const TMPFS_ATTRS: u64 = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;

/// Options of `/dev/shm`.
const SHM_TMPFS: &str = "mode=1777,size=64m";

/// Host device nodes bound into `/dev`.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// Symlinks in `/dev`, as (name, target).
const DEV_LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Creates the tmpfs root, attaches it over the working directory (`root_dir`, entered by
/// `HostPaths::open`), makes it the working directory and
/// fills it: skeleton, binds, `/proc` (of the caller's PID namespace), `/tmp` and `/dev`. Does
/// not pivot.
pub(crate) fn build_root(spec: &JailSpec, host: &HostPaths) -> Result<(), JailError> {
    let root_tmpfs = crate::sys::detached_tmpfs(ROOT_TMPFS, TMPFS_ATTRS)
        .context(|| "create the root tmpfs".to_owned())?;
    crate::sys::attach_at(root_tmpfs.as_fd(), c"")
        .context(|| format!("mount the root tmpfs on {}", spec.root_dir.display()))?;
    nix::unistd::fchdir(&root_tmpfs).context(|| "enter the root tmpfs".to_owned())?;
    let root = Path::new(".");
    let root_dev = std::fs::metadata(root).context(|| "stat the root tmpfs".to_owned())?.dev();
    for dir in ["proc", "dev", "tmp"] {
        make_dir(&root.join(dir))?;
    }
    for (bind, source) in spec.binds.iter().zip(&host.sources) {
        bind_into(root, root_dev, bind, source)?;
    }
    // A sandbox built ahead of its function: empty mount points for the assignment's binds.
    for target in spec.deferred.iter().flat_map(|d| &d.targets) {
        mount_point(root, root_dev, target, true)?;
    }
    let proc_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "proc", Some("proc"), proc_flags, None::<&str>)
        .context(|| "mount /proc".to_owned())?;
    mount_tmpfs(Path::new("tmp"), &format!("mode=1777,size={}m", spec.tmp_size_mb))?;
    populate_dev(Path::new("dev"))
}

/// Makes the working directory (the root tmpfs) the root of the mount namespace and drops
/// every host mount: the `pivot_root(".", ".")` trick stacks the old root on top of the new
/// one, and the lazy unmount removes it (allowed in a user namespace because the whole tree
/// goes at once).
pub(crate) fn pivot_into_cwd() -> Result<(), JailError> {
    nix::unistd::pivot_root(".", ".").context(|| "pivot_root".to_owned())?;
    umount2(".", MntFlags::MNT_DETACH).context(|| "detach the old root".to_owned())?;
    nix::unistd::chdir("/").context(|| "chdir /".to_owned())
}

/// Remounts `/` (the tmpfs root; not the mounts on it) read-only.
pub(crate) fn seal_root() -> Result<(), JailError> {
    let flags = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .context(|| "remount / read-only".to_owned())
}

fn mount_tmpfs(target: &Path, options: &str) -> Result<(), JailError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("tmpfs"), target, Some("tmpfs"), flags, Some(options))
        .context(|| format!("mount a tmpfs ({options}) on {}", target.display()))
}

/// Attaches the cloned source tree at `bind.target` under `root`, then makes it
/// (and every mount below it) nosuid, nodev and, unless writable, read-only.
fn bind_into(root: &Path, root_dev: u64, bind: &Bind, source: &Source) -> Result<(), JailError> {
    let target = mount_point(root, root_dev, &bind.target, source.is_dir)?;
    crate::sys::attach_at(source.tree.as_fd(), &c_path(&target)?)
        .context(|| format!("bind {} to {}", bind.source.display(), bind.target))?;
    restrict(&target, !bind.writable).context(|| format!("restrict the bind at {}", bind.target))
}

/// Adds nosuid, nodev and optionally read-only to the mount tree at `target`.
fn restrict(target: &Path, readonly: bool) -> nix::Result<()> {
    let path = CString::new(target.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut set = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    if readonly {
        set |= libc::MOUNT_ATTR_RDONLY;
    }
    match crate::sys::mount_setattr_recursive(&path, set) {
        Err(Errno::ENOSYS) => remount_restricted(target, readonly),
        other => other,
    }
}

/// Fallback for kernels before 5.12 (no `mount_setattr`): a bind remount of the top mount
/// only. Mounts below the source stay as they were. In a user namespace the kernel refuses
/// (EPERM) a remount that would clear a flag it locked on a mount inherited from the host, so
/// the current flags are read with statvfs and kept.
fn remount_restricted(target: &Path, readonly: bool) -> nix::Result<()> {
    let current = statvfs(target)?.flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (st, ms) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(st) {
            flags |= ms;
        }
    }
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// Bind-mounts the host's harmless device nodes onto empty files, adds the `/proc/self/fd`
/// symlinks, and mounts a small tmpfs on `/dev/shm`. No other device is reachable.
fn populate_dev(dev: &Path) -> Result<(), JailError> {
    for name in DEVICES {
        let target = dev.join(name);
        make_file(&target)?;
        let source = format!("/dev/{name}");
        mount(Some(source.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .context(|| format!("bind {source}"))?;
    }
    for (name, points_to) in DEV_LINKS {
        std::os::unix::fs::symlink(points_to, dev.join(name))
            .context(|| format!("create /dev/{name}"))?;
    }
    let shm = dev.join("shm");
    make_dir(&shm)?;
    mount_tmpfs(&shm, SHM_TMPFS)
}

/// Returns the host path of the sandbox path `inside`, creating it (a directory, or an empty
/// file if `!is_dir`) and missing parents on the root tmpfs. Refuses symlinks on the way and
/// refuses to create anything on another filesystem (inside an earlier bind).
fn mount_point(
    root: &Path,
    root_dev: u64,
    inside: &str,
    is_dir: bool,
) -> Result<PathBuf, JailError> {
    let components: Vec<&str> = inside.split('/').filter(|c| !c.is_empty()).collect();
    let mut path = root.to_owned();
    let mut dev = root_dev;
    for (idx, component) in components.iter().enumerate() {
        let last = idx + 1 == components.len();
        path.push(component);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refused(inside, "it goes through a symlink"));
            }
            Ok(meta) if !last && !meta.is_dir() => {
                return Err(refused(inside, "a parent is not a directory"))
            }
            Ok(meta) => dev = meta.dev(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if dev != root_dev {
                    return Err(refused(inside, "it would have to be created inside another bind"));
                }
                if last && !is_dir {
                    make_file(&path)?;
                } else {
                    make_dir(&path)?;
                }
            }
            Err(err) => {
                return Err(JailError::Io { step: format!("stat {}", path.display()), source: err })
            }
        }
    }
    Ok(path)
}

fn refused(inside: &str, why: &str) -> JailError {
    JailError::Io {
        step: format!("create the mount point {inside}"),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
    }
}

fn make_dir(path: &Path) -> Result<(), JailError> {
    DirBuilder::new().mode(0o755).create(path).context(|| format!("mkdir {}", path.display()))
}

fn make_file(path: &Path) -> Result<(), JailError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map(drop)
        .context(|| format!("create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_created_with_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let dev = std::fs::metadata(root).unwrap().dev();
        let got = mount_point(root, dev, "/var/task", true).unwrap();
        assert!(got.is_dir() && got == root.join("var/task"));
        let got = mount_point(root, dev, "/etc/resolv.conf", false).unwrap();
        assert!(got.is_file());
        // Existing mount points are reused.
        mount_point(root, dev, "/var/task", true).unwrap();
    }

    #[test]
    fn mount_points_never_go_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let dev = std::fs::metadata(root).unwrap().dev();
        std::os::unix::fs::symlink("/", root.join("lib")).unwrap();
        let err = mount_point(root, dev, "/lib/evil", true).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
    }

    #[test]
    fn mount_points_are_not_created_on_another_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("usr")).unwrap();
        // Pretend the root is a different device, as it is for the real tmpfs root versus a
        // host bind mounted on /usr.
        let err = mount_point(root, u64::MAX, "/usr/new", true).unwrap_err();
        assert!(err.to_string().contains("inside another bind"), "{err}");
    }
}
