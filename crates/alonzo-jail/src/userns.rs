//! The user-namespace handshake (the runc/youki pattern): the child is created in a new user
//! namespace, and the parent, which is root in the initial namespace, writes the child's uid
//! and gid maps. An unprivileged process could only map its own id; the privileged parent can
//! map a whole range, and needs no `setgroups=deny`.
//!
//! The child's other namespaces are created with it (`sys::clone_into_namespaces`) and owned
//! by its user namespace, so the parent can attach the sandbox's veth pair to its network
//! namespace as soon as the maps are written, while the child goes on building the sandbox.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use nix::unistd::{Gid, Pid, Uid};

use crate::error::{Context, JailError};
use crate::spawn::ID_RANGE;

/// The text written to `/proc/<pid>/uid_map` and `gid_map`: id 0 inside is `base` outside,
/// for `ID_RANGE` ids.
pub(crate) fn id_map(base: u32) -> String {
    format!("0 {base} {ID_RANGE}\n")
}

/// Parent side (J): writes the maps of `child`, created in a new user namespace, and tells it
/// to go on. Fails if the child died first.
pub(crate) fn map_child(sync: &mut UnixStream, child: Pid, base: u32) -> Result<(), JailError> {
    let map = id_map(base);
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{child}/{file}");
        std::fs::write(&path, &map).context(|| format!("write {path}"))?;
    }
    sync.write_all(b"m").context(|| "tell the child its ids are mapped".to_owned())
}

/// Child side (G), created in a new user namespace: waits for the parent to map it, and
/// becomes root (uid and gid 0) inside it, which is `base` on the host.
pub(crate) fn become_root(sync: &mut UnixStream) -> Result<(), JailError> {
    wait_byte(sync, "wait for the id maps")?;
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .context(|| "become gid 0 in the user namespace".to_owned())?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .context(|| "become uid 0 in the user namespace".to_owned())
}

pub(crate) fn wait_byte(sync: &mut UnixStream, step: &str) -> Result<(), JailError> {
    let mut byte = [0u8; 1];
    sync.read_exact(&mut byte).context(|| step.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_covers_65536_ids_from_the_base() {
        assert_eq!(id_map(1_000_000), "0 1000000 65536\n");
    }
}
